import pytest

from helpers import DEVICES


@pytest.fixture(params=DEVICES)
def device(request):
    """Every CPU test also runs on CUDA when a GPU and a CUDA build are present."""
    return request.param
