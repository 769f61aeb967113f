"""The classify stage on a tiny cohort: outputs, every split predicted, determinism for a seed on the CPU."""
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
    assert (tmp_path / "run" / "classify" / "metrics.json").is_file()


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
