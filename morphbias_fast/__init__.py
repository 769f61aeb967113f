"""morphbias-fast: find and remove morphological bias in medical-image classifiers.

The compiled kernels (CPU always, CUDA when built with nvcc) sit behind morphbias_fast.ops;
HashGridEncoding is the public encoder. Importing never needs a GPU.
"""
from __future__ import annotations

import torch

from morphbias_fast.encoding import HashGridEncoding
from morphbias_fast.gridconfig import HashGridConfig
from morphbias_fast.ops.compiled import kernels

__version__ = kernels.build_info()["version"]

__all__ = ["HashGridEncoding", "HashGridConfig", "build_info", "__version__"]


def build_info() -> dict:
    """What this installation can do: version, "cuda" (CUDA kernels compiled), cuda_archs,
    OpenMP and its thread count, the compiler, and whether torch sees a GPU right now."""
    info = dict(kernels.build_info())
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda_device_available"] = bool(torch.cuda.is_available())
    return info
