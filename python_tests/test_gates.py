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
