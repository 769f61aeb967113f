"""The quality gates fire on broken results and stay silent on good ones, and --strict turns a finding into
exit status 3 while a plain run prints it and succeeds."""
import numpy as np
import pandas as pd
from click.testing import CliRunner

from morphbias_fast import classify, gates
from morphbias_fast.cli import main


def _preds(y_true, y_pred, split="test"):
    return pd.DataFrame({"participant_id": [f"s{i}" for i in range(len(y_true))], "split": split,
                         "y_true": y_true, "y_pred": y_pred, "prob": np.asarray(y_pred, float)})


def test_registration_gate():
    good = {"splits": {"test": {"image_mse": 0.01, "identity_mse": 0.03, "epe_ratio": 0.2}}}
    assert gates.registration(good) == []
    worse_than_identity = {"splits": {"test": {"image_mse": 0.03, "identity_mse": 0.03, "epe_ratio": 1.02}}}
    found = gates.registration(worse_than_identity)
    assert len(found) == 2 and all("no better than identity" in f for f in found)


def test_classifier_gates():
    y = np.tile([0, 1], 50)
    assert gates.classifier(_preds(y, y)) == []
    collapsed = gates.classifier(_preds(y, np.ones(100, int)))
    assert len(collapsed) == 1 and "collapsed" in collapsed[0]
    biased = _preds(y, np.where(np.arange(100) < 80, y, 1 - y))          # balanced accuracy 0.80
    slightly_worse = _preds(y, np.where(np.arange(100) < 77, y, 1 - y))  # 0.77: within ACC_DROP
    much_worse = _preds(y, np.where(np.arange(100) < 70, y, 1 - y))      # 0.70: 0.10 below
    assert gates.classifier(slightly_worse, biased) == []
    assert "fell below the biased one" in gates.classifier(much_worse, biased)[0]
    one_sided = _preds(np.ones(100, int), np.ones(100, int))  # the labels are one class too: not a collapse
    assert gates.classifier(one_sided) == []


def _frame(side, y):
    return pd.DataFrame({"split": "train", "subgroup": 2 * np.asarray(side) + np.asarray(y),
                         "role": np.where(np.asarray(side) == 1, "S_B", "S_NB"), "y_true": y})


def test_discovery_gates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    side = np.where(rng.random(400) < 0.8, y, 1 - y)  # the side follows the label 80% of the time
    assert gates.discovery(_frame(side, y)) == []
    found = gates.discovery(_frame(y, y))  # the side is the label: two empty cells and a label-pure side
    assert any("the label itself" in f for f in found)
    side = y.copy()
    side[:5] = 1 - side[:5]  # 5 cases in the off-label cells: under max(10, 2% of 400 = 8)
    assert any("tiny discovered subgroups" in f for f in gates.discovery(_frame(side, y)))


def _val_frame(side, y, y_pred):
    return pd.DataFrame({"split": "val", "role": np.where(np.asarray(side) == 1, "S_B", "S_NB"),
                         "y_true": y, "y_pred": y_pred})


def test_split_check_fires_when_the_split_does_not_explain_val_errors():
    rng = np.random.default_rng(1)
    n = 500
    y = rng.integers(0, 2, n)
    side = rng.integers(0, 2, n)
    # A shortcut split: the classifier follows the side, so it misses disease on S_NB (40%) and raises false
    # alarms on S_B (40%), against 5% elsewhere.
    disfavoured = ((y == 1) & (side == 0)) | ((y == 0) & (side == 1))
    wrong = rng.random(n) < np.where(disfavoured, 0.4, 0.05)
    check = gates.split_errors(_val_frame(side, y, np.where(wrong, 1 - y, y)))
    assert check["p"] < 1e-6 and gates.split_check(check) == []
    assert check["disease"]["error_disfavoured"] > check["disease"]["error_favoured"]
    # The same errors, but a split drawn independently of them: no evidence, and the gate fires.
    other = rng.integers(0, 2, n)
    check = gates.split_errors(_val_frame(other, y, np.where(wrong, 1 - y, y)))
    assert check["p"] > gates.SPLIT_ALPHA and "does not explain" in gates.split_check(check)[0]
    # Errors on the favoured side only (the split points the wrong way): one-sided, so it fires too.
    wrong = rng.random(n) < np.where(disfavoured, 0.02, 0.3)
    assert gates.split_check(gates.split_errors(_val_frame(side, y, np.where(wrong, 1 - y, y))))
    # Only train rows, or one side empty within a label: nothing to test.
    assert gates.split_errors(_val_frame(side, y, y).assign(split="train")) is None
    assert gates.split_errors(_val_frame(np.ones(n, int), y, y)) is None


def test_split_check_p_values_against_the_hypergeometric_sum():
    # Independent oracle: the one-sided Fisher p is P(X >= a) for X hypergeometric (population = all cases of a
    # label, successes = its errors, draws = the disfavoured side); and Fisher's method with two p-values has
    # the closed form q (1 - ln q) with q = p1 p2 (chi-square with 4 degrees of freedom).
    from math import comb, log
    # disease: 6 of 10 disfavoured wrong, 2 of 20 favoured wrong; no disease: 3 of 12 vs 1 of 15.
    rows = []
    for label, against, (a, n_a, b, n_b) in ((1, 0, (6, 10, 2, 20)), (0, 1, (3, 12, 1, 15))):
        for side, k, m in ((against, a, n_a), (1 - against, b, n_b)):
            rows += [(side, label, 1 - label)] * k + [(side, label, label)] * (m - k)
    side, y, pred = map(np.array, zip(*rows))
    check = gates.split_errors(_val_frame(side, y, pred))

    def tail(a, n_a, b, n_b):
        errors, total = a + b, n_a + n_b
        ways = sum(comb(errors, x) * comb(total - errors, n_a - x) for x in range(a, min(errors, n_a) + 1))
        return ways / comb(total, n_a)  # integers divided: the exact ratio rounded once

    p1, p2 = tail(6, 10, 2, 20), tail(3, 12, 1, 15)
    # 1e-12: the oracle is an exact integer ratio rounded once; scipy sums the same hypergeometric terms in
    # float64, a few ulps (1e-16 each) per term over at most 8 terms
    assert np.isclose(check["disease"]["p"], p1, rtol=1e-12) and np.isclose(check["no_disease"]["p"], p2, rtol=1e-12)
    q = p1 * p2
    assert np.isclose(check["p"], q * (1 - log(q)), rtol=1e-9)  # 1e-9: scipy's chi2 survival function, not exact


def test_strict_turns_a_warning_into_exit_status_3(monkeypatch, tmp_path):
    preds = _preds(np.tile([0, 1], 10), np.ones(20, int))

    def collapsed_run(run, cfg):
        return classify.Result(preds, run.classify, gates.classifier(preds))

    monkeypatch.setattr(classify, "run", collapsed_run)
    (tmp_path / "cohort").mkdir()
    args = ["classify", str(tmp_path / "run"), "--cohort", str(tmp_path / "cohort")]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0 and "warning: the classifier collapsed" in plain.output
    strict = CliRunner().invoke(main, [*args, "--strict"])
    assert strict.exit_code == gates.STRICT_EXIT and "--strict" in strict.output


def test_intensity_scale_gate():
    rng = np.random.default_rng(0)
    atlas = rng.random((20, 20))
    mask = np.ones((20, 20), bool)
    same = np.stack([atlas * rng.uniform(0.8, 1.2) for _ in range(5)])
    assert gates.intensity_scale(same, atlas, mask) == []
    assert "another intensity scale" in gates.intensity_scale(same * 1000, atlas, mask)[0]  # the case
    assert "another intensity scale" in gates.intensity_scale(same / 50, atlas, mask)[0]
