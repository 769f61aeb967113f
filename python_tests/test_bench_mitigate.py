"""`bench mitigate --archive`: a seed's table kept as a file tables like the run folder it came from."""
import json

import pandas as pd
from click.testing import CliRunner
from sklearn.metrics import precision_score, recall_score

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


def test_archive_keeps_how_discovery_did(two_runs, tmp_path):
    # A warning in an archived seed is read against how discovery did, so the archive carries its train
    # precision and recall, checked here against sklearn on the run's own subgroups.csv and participants.tsv.
    _bench(two_runs / "hg", "--archive", tmp_path)
    archived = json.loads((tmp_path / "hg" / "seed_0.json").read_text())
    # which cohort it measured, read here from the cohort's own dataset_description.json
    made = json.loads((two_runs / "cohort" / "dataset_description.json").read_text())["SynthConfig"]
    assert archived["synth"] == {"appearance": made["appearance"], "shortcut": made["shortcut"],
                                 "site_confound": made["site_confound"]} == {
        "appearance": "template", "shortcut": "morphology", "site_confound": 0.0}
    rec = archived["discovery"]
    seed = two_runs / "hg" / "seed_0"
    sel = pd.read_csv(seed / "discover" / "subgroups.csv").query("split == 'train'").set_index("participant_id")
    truth = pd.read_csv(two_runs / "cohort" / "participants.tsv", sep="\t").set_index("participant_id").loc[sel.index]
    target = (truth.bias != truth.disease).astype(int)  # the under-represented cells B&ND and NB&D
    # exact: both sides are one float division of the same two integer counts
    assert rec["train_precision"] == precision_score(target, sel.selected)
    assert rec["train_recall"] == recall_score(target, sel.selected)
    check = json.loads((seed / "discover" / "summary.json").read_text())["split_check"]
    assert rec["split_check_p"] == check["p"]
