"""`bench mitigate --archive`: a seed's table kept as a file tables like the run folder it came from."""
import json

from click.testing import CliRunner

from morphbias_fast.cli import main


def _bench(*args):
    res = CliRunner().invoke(main, ["bench", "mitigate", *map(str, args)])
    assert res.exit_code == 0, res.output[-3000:]
    return res


def test_archive_tables_like_the_run_folder(two_runs, tmp_path):
    # two_runs (conftest.py): finished `--seeds 0` folders at bias 0.9
    _bench(two_runs / "hg", "--archive", tmp_path / "archive", "--json", tmp_path / "live.json")
    assert sorted(p.name for p in (tmp_path / "archive" / "hg").iterdir()) == ["seed_0.json"]
    _bench(tmp_path / "archive" / "hg", "--json", tmp_path / "archived.json")
    live = json.loads((tmp_path / "live.json").read_text())[str(two_runs / "hg")]
    archived = json.loads((tmp_path / "archived.json").read_text())[str(tmp_path / "archive" / "hg")]
    # the same numbers, compared after one JSON round trip each (no tolerance: nothing is recomputed)
    assert archived == live
    assert live["bias_level"] == 0.9 and live["seeds"] == ["seed_0"]


def test_an_archive_of_two_bias_levels_is_refused(two_runs, tmp_path):
    _bench(two_runs / "hg", "--archive", tmp_path)
    table = json.loads((tmp_path / "hg" / "seed_0.json").read_text())
    (tmp_path / "hg" / "seed_1.json").write_text(json.dumps({**table, "bias_level": 0.7}))
    res = CliRunner().invoke(main, ["bench", "mitigate", str(tmp_path / "hg")])
    assert res.exit_code != 0 and "different bias levels" in res.output
