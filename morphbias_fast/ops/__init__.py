"""Thin wrappers over the compiled kernels: validate, make contiguous, allocate, call _C."""
