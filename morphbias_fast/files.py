"""File helpers shared by the stages: every result is written to a temporary name, then renamed, so a crash
never leaves a half-written file that looks complete; the file then has the permissions the umask gives."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def current_umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def as_if_created(path, directory: bool = False) -> None:
    """Give a file or folder made by tempfile (0600 / 0700, private by design) the permissions a plain
    open() or mkdir() would have given it under the umask, so that colleagues on a shared server can read the
    results the umask lets them read."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends with the target's suffixes (".nii.gz"), so writers that pick the format from
    # the extension (nibabel, SimpleITK) write the same format.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        as_if_created(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside `path`; on success it replaces `path` (with the umask's permissions),
    on any error, Ctrl-C included, it is deleted: a cohort is complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        as_if_created(tmp, directory=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def strict(value):
    """`value` with every NaN or infinity as None (JSON null) and numpy scalars as Python numbers: strict JSON
    parsers reject NaN, and an undefined rate (no positives) is missing, not a number."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(strict(data), indent=2, allow_nan=False) + "\n")
