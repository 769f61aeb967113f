"""What the command line does when a user's request would lose or mix up work: results are not replaced
without --overwrite, an interrupted registration's checkpoint is not deleted without --resume or --overwrite,
a folder that cannot be written and a --cohort from another run end in one line naming the path."""
import pytest
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize

TINY = dict(n_train=8, n_val=4, n_test=4, spacing=8.0)


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    root = tmp_path_factory.mktemp("guards")
    synthesize(root / "cohort", SynthConfig(seed=1, **TINY), progress=False)
    run = root / "run"
    res = CliRunner().invoke(main, ["classify", str(run), "--cohort", str(root / "cohort"), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    return root, run


def _one_line_error(res, *needles):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output


def test_classify_refuses_to_replace_results_without_overwrite(classified):
    root, run = classified
    before = (run / "classify" / "predictions.csv").read_bytes()
    res = CliRunner().invoke(main, ["classify", str(run), "--cohort", str(root / "cohort"), "--epochs", "1"])
    _one_line_error(res, "--overwrite", "classify")
    assert (run / "classify" / "predictions.csv").read_bytes() == before
    res = CliRunner().invoke(main, ["classify", str(run), "--cohort", str(root / "cohort"), "--epochs", "1",
                                    "--overwrite"])
    assert res.exit_code == 0, res.output


def test_register_keeps_an_interrupted_runs_checkpoint(classified):
    root, run = classified
    ckpt = run / "register" / "train_state.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"an interrupted run's state")
    res = CliRunner().invoke(main, ["register", str(run), "--steps", "1", "--time-budget", "0"])
    _one_line_error(res, "--resume", "--overwrite")
    assert ckpt.read_bytes() == b"an interrupted run's state"
    ckpt.unlink()


def test_a_folder_that_cannot_be_written_is_one_line(classified, tmp_path):
    root, _ = classified
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(main, ["classify", str(blocker / "run"), "--cohort", str(root / "cohort"),
                                    "--epochs", "1"])
    _one_line_error(res, str(blocker))


def test_a_cohort_from_another_run_is_refused(classified, tmp_path):
    root, run = classified
    other = tmp_path / "other"
    synthesize(other, SynthConfig(seed=2, n_train=10, n_val=4, n_test=4, spacing=8.0), progress=False)
    for cmd in (["discover", str(run), "--cohort", str(other)], ["mitigate", str(run), "--cohort", str(other)]):
        _one_line_error(CliRunner().invoke(main, cmd), "does not belong", str(other))
