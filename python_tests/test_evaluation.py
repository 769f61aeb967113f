"""Per-group metrics against scikit-learn and fairlearn (independent implementations)."""
import numpy as np
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, precision_score, recall_score

from morphbias_fast.evaluation import group_metrics


@pytest.mark.parametrize("seed", range(5))
def test_matches_fairlearn_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 301
    y, p, b = rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 2, n)
    m = group_metrics(y, p, b, n_boot=200)
    frame = MetricFrame(metrics={"acc": accuracy_score, "recall": recall_score, "prec": precision_score},
                        y_true=y, y_pred=p, sensitive_features=np.where(b == 1, "B", "NB"))
    for metric in ("acc", "recall", "prec"):
        for group in ("B", "NB"):
            assert m[f"{metric}_{group}"] == pytest.approx(frame.by_group.loc[group, metric], abs=1e-12)
        assert m[f"{metric}_gap"] == pytest.approx(m[f"{metric}_B"] - m[f"{metric}_NB"], abs=1e-15)
    assert m["acc"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert m["recall_NB"] == pytest.approx(recall_score(y[b == 0], p[b == 0]), abs=1e-12)


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    y, p, b = rng.integers(0, 2, 400), rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    m1, m2 = group_metrics(y, p, b, seed=1), group_metrics(y, p, b, seed=1)
    assert m1["ci"] == m2["ci"]
    for k, (lo, hi) in m1["ci"].items():
        assert lo <= m1[k] <= hi


def test_undefined_recall_is_nan():
    m = group_metrics([0, 0, 1], [0, 1, 1], [1, 1, 0], n_boot=10)
    assert np.isnan(m["recall_B"]) and m["recall_NB"] == 1.0
