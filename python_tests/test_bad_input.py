"""Bad input gets a TypeError/ValueError that names the problem, never a crash."""
import pytest
import torch

import morphbias_fast as mbf
from helpers import CUDA_READY


@pytest.fixture
def enc():
    return mbf.HashGridEncoding(n_input_dims=3, n_levels=2, log2_hashmap_size=10)


def test_wrong_dtype(enc):
    with pytest.raises(TypeError, match="float64.*float32|torch.float32"):
        enc(torch.rand(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="int64"):
        enc(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="float16"):
        enc(torch.rand(4, 3).half())


def test_not_a_tensor(enc):
    with pytest.raises(TypeError, match="torch.Tensor"):
        enc([[0.1, 0.2, 0.3]])


@pytest.mark.parametrize("shape", [(4, 2), (4, 4), (2,), ()])
def test_wrong_shape(enc, shape):
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        enc(torch.rand(shape))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite(enc, bad):
    x = torch.rand(5, 3)
    x[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        enc(x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        enc(x, with_jacobian=True)


def test_wrong_device(enc):
    with pytest.raises(ValueError, match="meta"):
        enc(torch.empty(4, 3, device="meta"))


def test_bad_dtype_for_the_module():
    with pytest.raises(TypeError, match="dtype"):
        mbf.HashGridEncoding(dtype=torch.float16)


def test_ops_layer_checks_its_tensors(enc):
    from morphbias_fast.ops import hashgrid as ops
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="params must have shape"):
        ops.fwd(enc._grid, x, torch.zeros(7))
    with pytest.raises(TypeError, match="a must be"):
        ops.param_grad(enc._grid, x, a=torch.zeros(4, enc.n_output_dims, dtype=torch.float64))
    with pytest.raises(ValueError, match="b and g come together"):
        ops.param_grad(enc._grid, x, b=torch.zeros(4, enc.n_output_dims))


@pytest.mark.skipif(not torch.cuda.is_available() or CUDA_READY,
                    reason="needs a GPU visible to torch and a build without CUDA kernels")
def test_cuda_tensor_on_a_build_without_cuda(enc):
    with pytest.raises(ValueError, match="built without CUDA"):
        enc.to("cuda")(torch.rand(4, 3, device="cuda"))


def test_the_finiteness_check_is_a_choice():
    """On by default on the CPU (a cheap scan); off when asked (and by default on GPUs, where reading its
    result would stall the stream): then NaN goes in and NaN comes out, no error."""
    x = torch.rand(5, 3)
    x[1, 0] = float("nan")
    off = mbf.HashGridEncoding(n_input_dims=3, n_levels=2, log2_hashmap_size=10, check_finite=False)
    assert off.check_finite is False
    y = off(x)
    assert torch.isfinite(y[0]).all()
    on = mbf.HashGridEncoding(n_input_dims=3, n_levels=2, log2_hashmap_size=10, check_finite=True)
    with pytest.raises(ValueError, match="NaN or infinite"):
        on(x)
