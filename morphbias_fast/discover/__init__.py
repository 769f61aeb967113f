"""Subgroup discovery (docs/METHOD.md section 3): features -> subgroups -> roles -> the re-balanced set.

features.py   the feature kinds (inr, pca, embedding, clip), a registry: a new kind is one function
backends.py   PCA and logistic regression with cuML or scikit-learn
shortcut.py   our default method; mixture.py + subgroups.py: the paper's
subgroups.py  the paper's roles and re-balanced set; side_delta, the discovered bias direction
stage.py      the `discover` stage (Config, run, Result): subgroups.csv and summary.json
"""
from morphbias_fast.discover.backends import BACKENDS, Backend, cuml_status, get_backend
from morphbias_fast.discover.features import (FEATURES, FeatureInputs, clip_features, feature,
                                              load_features)
from morphbias_fast.discover.mixture import INITS as MIXTURE_INITS
from morphbias_fast.discover.mixture import ErrorAwareGMM
from morphbias_fast.discover.shortcut import ShortcutConfig, nearest_non_gaussian, shortcut_discovery
from morphbias_fast.discover.stage import METHODS, Config, Result, run
from morphbias_fast.discover.subgroups import knee_index, rebalanced_set, side_delta, subgroup_table

__all__ = ["Config", "Result", "run", "METHODS", "FEATURES", "FeatureInputs", "feature", "clip_features",
           "load_features", "BACKENDS", "Backend", "cuml_status", "get_backend", "ErrorAwareGMM", "MIXTURE_INITS", "ShortcutConfig",
           "nearest_non_gaussian", "shortcut_discovery", "knee_index", "rebalanced_set", "side_delta",
           "subgroup_table"]
