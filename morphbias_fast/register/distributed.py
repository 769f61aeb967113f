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
    device: torch.device = torch.device("cpu")  # where collectives put their tensors (NCCL: this rank's GPU)

    @property
    def active(self) -> bool:
        return self.world > 1

    def owned(self, n: int) -> np.ndarray:
        return np.arange(n)[self.rank:: self.world]

    def all_continue(self, mine: bool) -> bool:
        """Every rank stops at the same step: continue only while all want to."""
        if not self.active:
            return mine
        flag = torch.tensor([1 if mine else 0], device=self.device)
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


def rank_device(device: torch.device) -> torch.device:
    """This process's device: in a torchrun job on GPUs, the GPU of its LOCAL_RANK (made current, so that NCCL
    and all_gather_object use it); otherwise `device` unchanged. Without this every rank lands on cuda:0."""
    if device.type != "cuda" or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def init_distributed(device: torch.device) -> Dist:
    """A Dist for this process (`device` from rank_device): torchrun sets WORLD_SIZE/RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size(), device=device)
