import pytest

from helpers import CUDA_READY, device_params


@pytest.fixture(params=device_params(CUDA_READY))
def device(request):
    """Every CPU test also runs on CUDA when a GPU and a CUDA build are present."""
    return request.param
