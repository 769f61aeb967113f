"""Subgroup discovery (METHOD.md section 3): features -> subgroups -> roles -> the re-balanced set.

features.py   inr / pca / embedding features per subject
backends.py   PCA and logistic regression with cuML or scikit-learn
shortcut.py   our default method; mixture.py + subgroups.py: the paper's
stage.py      the `discover` command's work: subgroups.csv and summary.json
"""
from morphbias_fast.discover.mixture import ErrorAwareGMM  # noqa: F401
from morphbias_fast.discover.subgroups import knee_index, subgroup_table  # noqa: F401
