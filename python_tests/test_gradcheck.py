"""torch.autograd.gradcheck / gradgradcheck in float64 (finite differences against our analytic
derivatives), on tiny grids with points kept 1e-3 away from cell boundaries so that the 1e-6 steps
of the finite differences never cross a cell (where the encoding is only piecewise smooth)."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from helpers import interior_points, small_encoding


def tiny_problem(device, D, interp):
    """A 3-level grid, 6 interior points and a leaf copy of the parameters, all float64."""
    enc = small_encoding(D=D, L=3, F=2, log2=10, base=3, scale=2.1, interp=interp, device=device)
    x = interior_points(enc, 6).to(device).requires_grad_(True)
    return enc, x, enc.params.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
def test_gradcheck_and_gradgradcheck_encode(device, D, interp):
    enc, x, p = tiny_problem(device, D, interp)
    # The public module with its parameters swapped for the checked leaf p (the same autograd Functions).
    fn = lambda a, b: functional_call(enc, {"params": b}, (a,))  # noqa: E731
    assert gradcheck(fn, (x, p))
    assert gradgradcheck(fn, (x, p))


@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
def test_gradcheck_jacobian_path(device, D, interp):
    enc, x, p = tiny_problem(device, D, interp)
    assert gradcheck(lambda a, b: functional_call(enc, {"params": b}, (a,), {"with_jacobian": True}), (x, p))


def test_jacobian_path_third_order_raises():
    # Its backward is once-differentiable: asking for more must fail loudly, not drop terms.
    enc = small_encoding(D=2, L=2, log2=10, base=3)
    x = interior_points(enc, 4).requires_grad_(True)
    _, J = enc(x, with_jacobian=True)
    g, = torch.autograd.grad(J.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()
