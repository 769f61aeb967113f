"""morphbias-fast: find and remove morphological bias in medical-image classifiers.

The compiled kernels (CPU always, CUDA when built with nvcc) sit behind morphbias_fast.ops;
HashGridEncoding is the public encoder. Importing never needs a GPU.

The public names are loaded on first use (PEP 562): importing the package, as the command line does before it
knows which command runs, does not import torch."""
from __future__ import annotations

import importlib
from importlib import metadata

__all__ = ["HashGridEncoding", "HashGridConfig", "build_info", "__version__"]
__version__ = metadata.version("morphbias-fast")

_LAZY = {"HashGridEncoding": "morphbias_fast.encoding", "HashGridConfig": "morphbias_fast.gridconfig"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'morphbias_fast' has no attribute {name!r}")


def build_info() -> dict:
    """What this installation can do: version, "cuda" (CUDA kernels compiled), cuda_archs,
    OpenMP and its thread count, the compiler, and whether torch sees a GPU right now."""
    torch = importlib.import_module("torch")
    info = dict(importlib.import_module("morphbias_fast.ops.compiled").kernels.build_info())
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["cuda_device_available"] = bool(torch.cuda.is_available())
    return info
