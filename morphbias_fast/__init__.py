"""morphbias-fast: find and remove morphological bias in medical-image classifiers.

The compiled kernels (CPU always, CUDA when built with nvcc) sit behind morphbias_fast.ops;
HashGridEncoding is the public encoder. Importing never needs a GPU.
"""
from __future__ import annotations

from morphbias_fast._ext import _C
from morphbias_fast.encoding import HashGridEncoding
from morphbias_fast.gridconfig import HashGridConfig

__version__ = _C.build_info()["version"]

__all__ = ["HashGridEncoding", "HashGridConfig", "build_info", "__version__"]


def build_info() -> dict:
    """What this installation can do: version, "cuda" (CUDA kernels compiled), cuda_archs,
    OpenMP and its thread count, the compiler, and whether torch sees a GPU right now."""
    info = dict(_C.build_info())
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda_device_available"] = bool(torch.cuda.is_available())
    return info
