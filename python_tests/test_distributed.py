"""torchrun on GPUs, checked on a CPU machine with a fake environment: each rank takes the GPU of its
LOCAL_RANK (and makes it current), and the collectives put their tensors on the rank's device (NCCL refuses
CPU tensors)."""
import pytest
import torch

from morphbias_fast.register import distributed
from morphbias_fast.register.distributed import Dist, rank_device


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    made_current = []
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert rank_device(torch.device("cuda")) == torch.device("cuda", 3) and made_current == [3]
    assert rank_device(torch.device("cpu")) == torch.device("cpu")  # gloo ranks stay on the CPU
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert rank_device(torch.device("cuda")) == torch.device("cuda")  # a plain process: untouched
    assert made_current == [3]


def test_the_stop_vote_is_on_the_ranks_device(monkeypatch):
    seen = []

    def all_reduce(t, op=None):
        seen.append(t.device)

    monkeypatch.setattr(distributed.tdist, "all_reduce", all_reduce)
    meta = torch.device("meta")  # stands for a GPU: any device but the CPU shows where the tensor goes
    with pytest.raises((NotImplementedError, RuntimeError)):  # a meta tensor cannot be read back; the vote's
        Dist(rank=1, world=2, device=meta).all_continue(True)  # device is what this test is about
    assert seen == [meta]
