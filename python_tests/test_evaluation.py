"""Per-group metrics against scikit-learn and fairlearn (independent implementations)."""
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, precision_score, recall_score

from morphbias_fast.evaluation import cell_metrics, group_metrics, twin_metrics
from morphbias_fast.report.metrics import val_discovered


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


@pytest.mark.parametrize("seed", range(5))
def test_cell_metrics_match_fairlearn(seed):
    """Cell accuracies from MetricFrame over the four (bias, disease) cells; the equalized-odds gap from
    fairlearn's equalized_odds_difference; the shortcut effect from MetricFrame's per-group TPR and FPR;
    balanced accuracy from scikit-learn. The same counts and one division each: equal to rounding (1e-12)."""
    from fairlearn.metrics import equalized_odds_difference, false_positive_rate, true_positive_rate
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    n = 400
    y, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.7, y, 1 - y)
    m = cell_metrics(y, p, b, n_boot=200)
    cells = np.array([f"{'B' if bb else 'NB'}{'D' if yy else 'ND'}" for bb, yy in zip(b, y)])
    by_cell = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=cells).by_group
    for c in ("BD", "BND", "NBD", "NBND"):
        assert m[f"acc_{c}"] == pytest.approx(by_cell[c], abs=1e-12)
    assert m["wga"] == pytest.approx(by_cell.min(), abs=1e-12)
    assert m["eo_gap"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=b), abs=1e-12)
    rates = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate}, y_true=y, y_pred=p,
                        sensitive_features=b).by_group
    effect = ((rates.loc[1, "tpr"] - rates.loc[0, "tpr"]) + (rates.loc[1, "fpr"] - rates.loc[0, "fpr"])) / 2
    assert m["shortcut_effect"] == pytest.approx(effect, abs=1e-12)
    assert m["bal_acc"] == pytest.approx(balanced_accuracy_score(y, p), abs=1e-12)
    # A percentile interval holds the estimate for statistics that are means of the resampled cells; not
    # necessarily for wga (a minimum) or eo_gap (an absolute value), whose resampled values lean up or down
    # (seen on a real run: eo_gap 0.008 with interval [0.01, 0.11]).
    for k in ("acc_BD", "acc_BND", "acc_NBD", "acc_NBND", "bal_acc", "shortcut_effect"):
        lo, hi = m["ci"][k]
        assert lo <= m[k] <= hi, k


def test_shortcut_effect_sign_and_stratified_bootstrap():
    """A model that predicts disease exactly when the bias is present has effect +1 (its TPR and FPR in B are 1,
    in NB 0); the opposite model -1. Resampling within cells keeps cell sizes, so a cell that is all correct stays
    all correct in every resample: its interval is a point."""
    b = np.repeat([1, 1, 0, 0], 25)
    y = np.tile(np.repeat([1, 0], 25), 2)
    m = cell_metrics(y, b, b, n_boot=100)
    assert m["shortcut_effect"] == 1.0 and m["wga"] == 0.0 and m["ci"]["acc_BD"] == [1.0, 1.0]
    assert cell_metrics(y, 1 - b, b, n_boot=100)["shortcut_effect"] == -1.0
    with pytest.raises(ValueError, match="cell"):
        cell_metrics(y[:50], y[:50], b[:50])


def test_twin_metrics_by_hand():
    """Subjects with the bias: p 0.9 on themselves, 0.6 on their bias-free twins (+0.3); subjects without: p 0.2
    on themselves, 0.6 on their twins with the bias (+0.4). Every NB subject's label flips (0.2 -> 0.6 crosses
    0.5), no B subject's (0.9 -> 0.6): half of all."""
    b = np.repeat([1, 1, 0, 0], 10)
    y = np.tile(np.repeat([1, 0], 10), 2)
    own = np.where(b == 1, 0.9, 0.2)
    twin = np.full(40, 0.6)
    t = twin_metrics(own, twin, b, y, n_boot=50)
    assert t["cf_sensitivity"] == pytest.approx(0.35, abs=1e-12)
    assert t["cf_flip_rate"] == pytest.approx(0.5, abs=1e-12)
    assert t["ci"]["cf_sensitivity"] == pytest.approx([0.35, 0.35], abs=1e-12)  # constant within each cell


def test_val_discovered_uses_val_rows_and_the_discovered_side_only():
    """By hand: on val, the model predicts disease for every S_B case and for no S_NB case, so TPR and FPR both
    differ by 1 between the sides (shortcut +1) and the worst cell (S_NB & diseased) is 0. Test rows and
    subjects without a side must not count."""
    ids = [f"s{i}" for i in range(10)]
    preds = pd.DataFrame({"participant_id": ids, "split": ["val"] * 8 + ["test"] * 2,
                          "y_true": [1, 0, 1, 0, 1, 0, 1, 0, 1, 1], "y_pred": [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]})
    roles = pd.Series(["S_B", "S_B", "S_NB", "S_NB", "none", "none", "S_NB", "S_NB", "S_B", "S_B"], index=ids)
    out = val_discovered(preds, roles)
    assert out == {"val_disc_wga": 0.0, "val_disc_shortcut": 1.0}
    roles[:] = "S_B"  # one side only: the cells are undefined, reported as None
    assert val_discovered(preds, roles) == {"val_disc_wga": None, "val_disc_shortcut": None}
