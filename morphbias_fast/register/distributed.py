"""This process's place in a torchrun job: subject i belongs to rank i % world, which keeps its latent and
computes its loss terms. gloo on the CPU, NCCL on GPUs; a plain process is rank 0 of 1 and never touches
torch.distributed."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def owned(self, n: int) -> np.ndarray:
        return np.arange(n)[self.rank:: self.world]

    def all_continue(self, mine: bool) -> bool:
        """Every rank stops at the same step: continue only while all want to."""
        if not self.active:
            return mine
        flag = torch.tensor([1 if mine else 0])
        tdist.all_reduce(flag, op=tdist.ReduceOp.MIN)
        return bool(flag.item())

    def gather(self, obj) -> list:
        """`obj` of every rank, in rank order ([obj] when alone)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def finish(self) -> None:
        if self.active:
            tdist.barrier()
            tdist.destroy_process_group()


def init_distributed(device: torch.device) -> Dist:
    """A Dist for this process: torchrun sets WORLD_SIZE/RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size())
