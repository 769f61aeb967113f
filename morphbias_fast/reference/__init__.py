"""Pure-PyTorch references of every kernel: the test oracle and a slow fallback."""
from morphbias_fast.reference.hashgrid import (  # noqa: F401
    Level,
    corner_index,
    encode,
    encode_with_jacobian,
    level_table,
)
