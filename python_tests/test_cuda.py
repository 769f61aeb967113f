"""CUDA-only behaviour (the parity tests in the other files also run on CUDA through the `device`
fixture whenever a GPU and a CUDA build are present)."""
import pytest
import torch

from helpers import CUDA_READY, interior_points, max_rel_err, small_encoding

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not CUDA_READY, reason="needs a CUDA GPU visible to torch and a CUDA build")]

# float32 CPU vs CUDA: both run the same MB_HD math; they differ in the order of the atomic additions
# of the parameter gradient and in fma contraction, each a few float32 ulps (eps 6e-8) of the largest
# term: 1e-5 relative of the max-norm leaves a wide margin.
FLOAT32_RTOL = 1e-5


def test_cpu_and_cuda_agree_at_default_size():
    enc = small_encoding(D=3, L=16, log2=19, base=16, scale=2.0, dtype=torch.float32, spread=1.0)
    x = torch.rand(1 << 16, 3)
    w = torch.randn(1 << 16, enc.n_output_dims)
    y_cpu, J_cpu = enc(x, with_jacobian=True)
    torch.autograd.backward([y_cpu, J_cpu], [w, torch.ones_like(J_cpu)])
    g_cpu = enc.params.grad.clone()
    enc.params.grad = None
    enc = enc.cuda()
    y, J = enc(x.cuda(), with_jacobian=True)
    torch.autograd.backward([y, J], [w.cuda(), torch.ones_like(J)])
    assert max_rel_err(y, y_cpu) < FLOAT32_RTOL
    assert max_rel_err(J, J_cpu) < FLOAT32_RTOL
    assert max_rel_err(enc.params.grad, g_cpu) < FLOAT32_RTOL


def test_runs_on_a_non_default_stream():
    enc = small_encoding(D=3, device="cuda")
    x = interior_points(enc, 5000).cuda()
    want = enc(x)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x_s = x.clone()
        y = enc(x_s)
        y.sum().backward()
    stream.synchronize()
    assert torch.equal(y, want)
    assert torch.isfinite(enc.params.grad).all()


def test_tensor_on_another_device_than_params_is_refused():
    enc = small_encoding(D=3, device="cuda")
    with pytest.raises(ValueError, match="cpu"):
        enc(torch.rand(4, 3, dtype=torch.float64))


def test_forward_and_backward_do_not_synchronise_with_the_host():
    """No device->host read per call (the finiteness check is off on GPUs by default): under sync debug mode
    "error", any synchronising call raises."""
    enc = small_encoding(D=3, dtype=torch.float32, device="cuda")
    x = interior_points(enc, 4096).float().cuda().requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y, J = enc(x, with_jacobian=True)
        torch.autograd.backward([y, J], [torch.ones_like(y), torch.ones_like(J)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x.grad).all()
