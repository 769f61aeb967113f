"""Loads the compiled module once, with a message that says how to get it when it is missing."""
from __future__ import annotations

try:
    from morphbias_fast import _C  # noqa: F401
except ImportError as exc:  # pragma: no cover - only in a source tree without a build
    raise ImportError(
        "morphbias_fast._C (the compiled kernels) is missing: install the package with `pip install .` "
        f"from the project root instead of importing the source folder ({exc})"
    ) from exc
