"""Thin wrappers over the compiled kernels (loaded by compiled.py): validate, make contiguous, allocate, call."""
