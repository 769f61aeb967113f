import pytest
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize
from helpers import CUDA_READY, device_params


@pytest.fixture(params=device_params(CUDA_READY))
def device(request):
    """Every CPU test also runs on CUDA when a GPU and a CUDA build are present."""
    return request.param


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two finished `run --seeds 0` folders on one tiny cohort at bias 0.9: "hg" (our recipe) and "siren" (the
    paper's), for the commands that table or recombine finished runs (`bench factorial`, `bench mitigate`)."""
    root = tmp_path_factory.mktemp("two_runs")
    synthesize(root / "cohort", SynthConfig(n_train=60, n_val=30, n_test=20, spacing=8.0, bias_level=0.9),
               progress=False)
    for name, extra in (("hg", []), ("siren", ["--recipe", "paper"])):
        res = CliRunner().invoke(main, ["run", "--out", str(root / name), "--cohort", str(root / "cohort"),
                                        "--seeds", "0", "--time-budget", "10", "--epochs", "2", "--device", "cpu",
                                        *extra])
        assert res.exit_code == 0, res.output[-3000:]
    return root
