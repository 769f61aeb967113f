import os

import torch

import morphbias_fast as mbf


def test_build_info_reports_what_was_compiled():
    info = mbf.build_info()
    for key in ("version", "cuda", "cuda_archs", "openmp", "openmp_max_threads", "torch"):
        assert key in info
    assert info["version"] == mbf.__version__
    assert isinstance(info["cuda"], bool)
    # An architecture list exists exactly when CUDA kernels were compiled.
    assert bool(info["cuda_archs"]) == info["cuda"]


def test_ci_build_has_the_kernels_it_promises():
    # .ci/run sets MORPHBIAS_EXPECT_CUDA=1 for the build where nvcc is present, so a build that silently
    # dropped the CUDA kernels fails here instead of passing with CPU kernels only.
    expected = os.environ.get("MORPHBIAS_EXPECT_CUDA")
    if expected is not None:
        assert mbf.build_info()["cuda"] == (expected == "1")


def test_import_needs_no_gpu():
    # Building an encoder and running it on the CPU must work whatever the GPU situation.
    enc = mbf.HashGridEncoding(n_input_dims=2, n_levels=2, log2_hashmap_size=10)
    assert enc(torch.rand(3, 2)).shape == (3, 4)


def test_cuda_cases_of_the_device_fixture_carry_the_cuda_marker():
    """`pytest -m cuda` must select the CUDA case of every test that takes the `device` fixture."""
    from helpers import device_params

    params = device_params(True)
    marks = {p.values[0]: [m.name for m in p.marks] for p in params}
    assert marks == {"cpu": [], "cuda": ["cuda"]}
    assert [p.values[0] for p in device_params(False)] == ["cpu"]
