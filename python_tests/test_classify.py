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
    result = CliRunner().invoke(main, ["classify", str(cohort), str(run_dir), "--epochs", "2", "--device", "cpu",
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
