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


@pytest.mark.parametrize("threads", [2, 24])  # 24 threads over 8 levels: each level's gradient split in 3
def test_thread_count_does_not_change_bits(problem, threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = run_all(*problem)
        torch.set_num_threads(threads)
        b = run_all(*problem)
    finally:
        torch.set_num_threads(before)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


# The CPU kernels are compiled per instruction set (csrc/hashgrid/cpu_isa.h) and the best one this CPU runs is
# chosen at import; each must give the baseline build's bits (the baseline locates points with the per-point
# code the CUDA kernels share). On a CPU without AVX2 the list holds the baseline alone.
@pytest.mark.parametrize("dims,interpolation", [(2, "linear"), (3, "smoothstep")])
def test_every_cpu_build_gives_the_baseline_bits(dims, interpolation):
    from morphbias_fast.ops.compiled import kernels

    torch.manual_seed(1)
    enc = mbf.HashGridEncoding(n_input_dims=dims, n_levels=8, log2_hashmap_size=12, base_resolution=8,
                               interpolation=interpolation)
    with torch.no_grad():
        enc.params.uniform_(-1, 1)
    n = 20_003  # not a multiple of the 32-point chunks
    x = torch.rand(n, dims) * 1.5 - 0.25  # some points outside [0, 1]
    w, W = torch.randn(n, enc.n_output_dims), torch.randn(n, enc.n_output_dims, dims)
    before = kernels.cpu_isa()
    try:
        kernels.set_cpu_isa("baseline")
        ref = run_all(enc, x, w, W)
        for isa in kernels.cpu_isas():
            kernels.set_cpu_isa(isa)
            for u, v in zip(run_all(enc, x, w, W), ref):
                assert torch.equal(u, v), isa
    finally:
        kernels.set_cpu_isa(before)


def test_unknown_cpu_build_is_a_clear_error():
    from morphbias_fast.ops.compiled import kernels

    with pytest.raises(ValueError, match="choose one of: baseline"):
        kernels.set_cpu_isa("sse9")


def test_cpu_build_can_be_chosen_by_environment(tmp_path):
    import os
    import subprocess
    import sys

    # Run outside the source tree: `python -c` puts the working directory first on sys.path, and the
    # repository's morphbias_fast/ (without the compiled module) would shadow the installed package.
    code = "import morphbias_fast as m; print(m.build_info()['cpu_isa'])"
    env = dict(os.environ, MORPHBIAS_CPU_ISA="baseline")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "baseline"
    env["MORPHBIAS_CPU_ISA"] = "sse9"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "MORPHBIAS_CPU_ISA=sse9" in bad.stderr
