"""The classify stage on a tiny cohort: outputs, every split predicted, determinism for a seed on the CPU."""
import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from morphbias_fast.classify import CNN
from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "cohort"
    synthesize(out, SynthConfig(n_train=16, n_val=8, n_test=8, spacing=6.0), progress=False)
    return out


def run(cohort, run_dir, *extra):
    result = CliRunner().invoke(main, ["classify", str(run_dir), "--cohort", str(cohort), "--epochs", "2",
                                       "--device", "cpu",
                                       *extra])
    assert result.exit_code == 0, result.output
    return pd.read_csv(run_dir / "classify" / "predictions.csv")


def test_outputs_and_columns(cohort, tmp_path):
    preds = run(cohort, tmp_path / "run")
    assert list(preds.columns) == ["participant_id", "split", "y_true", "prob", "y_pred"]
    assert len(preds) == 32 and set(preds.split) == {"train", "val", "test"}
    assert ((preds.prob >= 0) & (preds.prob <= 1)).all()
    assert (preds.y_pred == (preds.prob >= 0.5)).all()
    ckpt = torch.load(tmp_path / "run" / "classify" / "model.pt", weights_only=False)
    model = CNN(dim=ckpt["dim"])
    model.load_state_dict(ckpt["state_dict"])
    metrics = json.loads((tmp_path / "run" / "classify" / "metrics.json").read_text())
    # another thread count trains another model, so the record must say which one ran
    assert metrics["train_config"]["torch_threads"] == torch.get_num_threads()
    assert metrics["train_config"]["seed"] == 0


def test_deterministic_for_a_seed(cohort, tmp_path):
    a = run(cohort, tmp_path / "a", "--seed", "3")
    b = run(cohort, tmp_path / "b", "--seed", "3")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_three_d_model_shapes():
    model = CNN(dim=3)
    assert model(torch.rand(2, 1, 20, 24, 20)).shape == (2, 2)
    assert model.features(torch.rand(2, 1, 20, 24, 20)).shape == (2, 256)


def test_batchnorm_recalibration_matches_direct_statistics():
    """After recalibration the first BatchNorm holds the mean and (unbiased) variance of the first
    convolution's outputs over the whole set, computed here directly from that convolution. One batch covers
    the set, so the two are the same numbers up to float32 summation order (rtol 1e-4; atol 1e-6 for channel means
    that sum to about zero, where a relative bound means nothing)."""
    from morphbias_fast.classify.train import recalibrate_batchnorm

    torch.manual_seed(0)
    model = CNN(dim=2)
    x = torch.randn(24, 1, 16, 20) * 2 + 1
    bn = model.blocks[1]
    bn.running_mean.fill_(5.0)  # stale values that must be replaced, not averaged with
    recalibrate_batchnorm(model, x, torch.device("cpu"), batch=64)
    with torch.no_grad():
        out = model.blocks[0](x)  # the conv before the first BatchNorm
    mean = out.mean(dim=(0, 2, 3))
    var = out.permute(1, 0, 2, 3).reshape(out.shape[1], -1).var(dim=1, unbiased=True)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.1  # the layer's own momentum is given back for training


def test_val_score_by_hand():
    """Six val cases, the first three right: plain accuracy 0.5; weighted toward the first three 0.75; by
    worst group, with groups {0, 1, 2} (all right) and {3, 4, 5} (all wrong), 0."""
    import numpy as np

    from morphbias_fast.classify import val_score

    y = np.array([1, 0, 1, 1, 0, 1])
    p = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.4])
    assert val_score(p, y) == 0.5
    assert val_score(p, y, val_weight=np.array([3, 3, 3, 1, 1, 1])) == 0.75
    assert val_score(p, y, val_groups=np.array([0, 0, 0, 1, 1, 1])) == 0.0
    assert val_score(p, y, val_groups=np.array([0, 1, 0, 1, 0, 1])) == pytest.approx(1 / 3)


def test_heldout_predictions_never_predict_a_case_the_model_saw(cohort, tmp_path, monkeypatch):
    """classify/heldout.py (issue 17): each train case is predicted once, by a fold model that did not train on
    it; fold models select on val, as classify does; val and test keep the original classifier's predictions.
    fit and predict_proba are replaced by recorders, so the test checks the bookkeeping, not a CNN."""
    import numpy as np

    from morphbias_fast.classify import heldout
    from morphbias_fast.data import load_cohort
    from morphbias_fast.errors import MorphbiasError
    from morphbias_fast.runfolder import ModelFolder

    original = run(cohort, tmp_path / "run")
    c = load_cohort(cohort)
    key = lambda x: x.reshape(len(x), -1)[:, :7].numpy().round(5).tobytes()  # noqa: E731 - an image's identity
    ids_of = {key(heldout.standardise(c.images[i:i + 1])): pid for i, pid in enumerate(c.ids)}
    seen = []

    def fake_fit(x_tr, y_tr, x_va, y_va, cfg, progress=True):
        trained = {ids_of[key(x_tr[i:i + 1])] for i in range(len(x_tr))}
        assert {ids_of[key(x_va[i:i + 1])] for i in range(len(x_va))} == set(c.ids[c.index("val")])
        seen.append(trained)
        return len(seen) - 1, []

    def fake_predict(model, x, device):
        predicted = [ids_of[key(x[i:i + 1])] for i in range(len(x))]
        assert not set(predicted) & seen[model]  # never a case its model trained on
        return np.full(len(x), 0.1 + 0.2 * model)  # the fold's mark

    monkeypatch.setattr(heldout, "fit", fake_fit)
    monkeypatch.setattr(heldout, "predict_proba", fake_predict)
    out = ModelFolder(tmp_path / "heldout")
    rec = heldout.heldout_predictions(ModelFolder(tmp_path / "run" / "classify"), cohort, out, folds=3,
                                      progress=False)
    assert len(seen) == 3 and rec["folds"] == 3
    preds = out.read_predictions().set_index("participant_id")
    train = c.ids[c.index("train")]
    fold_of = preds.loc[train, "prob"].round(6)
    assert set(fold_of) == {0.1, 0.3, 0.5}  # every train case predicted by one of the three fold models
    for k, trained in enumerate(seen):
        assert set(fold_of.index[fold_of == round(0.1 + 0.2 * k, 6)]) == set(train) - trained
    assert (preds.loc[train, "y_pred"] == (preds.loc[train, "prob"] >= 0.5)).all()
    rest = original.set_index("participant_id").drop(index=train)
    pd.testing.assert_frame_equal(preds.drop(index=train).sort_index(), rest.sort_index())
    with pytest.raises(MorphbiasError, match="at least 2 folds"):
        heldout.heldout_predictions(ModelFolder(tmp_path / "run" / "classify"), cohort, out, folds=1)
