"""The compiled kernels, loaded in this one place with a message that says how to get them when they are
missing. Everything else uses `kernels` from here; the extension's own name, `_C`, is the build's (CMake
target and PYBIND11_MODULE) and appears nowhere else in Python."""
from __future__ import annotations

try:
    from morphbias_fast import _C as kernels
except ImportError as exc:  # pragma: no cover - only in a source tree without a build
    raise ImportError(
        "morphbias_fast._C (the compiled kernels) is missing: install the package with `pip install .` "
        f"from the project root instead of importing the source folder ({exc})"
    ) from exc

__all__ = ["kernels"]
