"""Subgroup discovery (METHOD.md section 3). In progress: the error-aware mixture and the subgroup rules
exist; features, backends and the `discover` command come next."""
from morphbias_fast.discover.mixture import ErrorAwareGMM  # noqa: F401
from morphbias_fast.discover.subgroups import knee_index, subgroup_table  # noqa: F401
