"""CPU results are bitwise reproducible: no float sum depends on thread scheduling. The parameter
gradient gives each level's entries to one thread and adds points in order, so even a different
thread count gives the same bits."""
import pytest
import torch

import morphbias_fast as mbf


def run_all(enc, x, w, W):
    enc.params.grad = None
    xx = x.clone().requires_grad_(True)
    y, J = enc(xx, with_jacobian=True)
    torch.autograd.backward([y, J], [w, W])
    out = [y.detach(), J.detach(), enc.params.grad.clone(), xx.grad.clone()]
    enc.params.grad = None
    xx.grad = None
    y = enc(xx)
    y.backward(w)
    return out + [enc.params.grad.clone(), xx.grad.clone()]


@pytest.fixture
def problem():
    torch.manual_seed(0)
    # Many points per hashed entry so that the scatter really sums colliding contributions.
    enc = mbf.HashGridEncoding(n_input_dims=3, n_levels=8, log2_hashmap_size=12, base_resolution=8)
    with torch.no_grad():
        enc.params.uniform_(-1, 1)
    x = torch.rand(70_000, 3)
    w = torch.randn(70_000, enc.n_output_dims)
    W = torch.randn(70_000, enc.n_output_dims, 3)
    return enc, x, w, W


def test_same_threads_same_bits(problem):
    a = run_all(*problem)
    b = run_all(*problem)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_thread_count_does_not_change_bits(problem):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = run_all(*problem)
        torch.set_num_threads(2)
        b = run_all(*problem)
    finally:
        torch.set_num_threads(before)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
