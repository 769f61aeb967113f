"""The run folder's layout and done markers against paths written out here by hand, and the report's bars."""
import json

import numpy as np
import pytest

from morphbias_fast.errors import MorphbiasError
from morphbias_fast.report.page import bar_values
from morphbias_fast.runfolder import RunFolder


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def test_done_follows_each_stage_final_file(tmp_path):
    run = RunFolder(tmp_path)
    finals = {"classify": "classify/predictions.csv", "register": "register/latents.npz",
              "discover": "discover/summary.json", "mitigate": "mitigate/predictions.csv",
              "unbiased": "unbiased/predictions.csv", "report": "report.html"}
    for stage, rel in finals.items():
        assert not run.done(stage)
        touch(tmp_path / rel)
        assert run.done(stage)
    assert not run.done("mitigate", "jtt")
    touch(tmp_path / "mitigate_jtt" / "predictions.csv")
    assert run.done("mitigate", "jtt")
    with pytest.raises(ValueError, match="unknown stage"):
        run.done("everything")


def test_model_rows_in_table_order(tmp_path):
    run = RunFolder(tmp_path)
    for rel in ("unbiased/predictions.csv", "mitigate_paper/predictions.csv", "classify/predictions.csv",
                "mitigate_jtt/predictions.csv", "mitigate/predictions.csv"):
        touch(tmp_path / rel)
    assert list(run.model_predictions()) == ["biased", "mitigated", "jtt", "paper", "unbiased"]


def test_cohort_is_resolved_from_the_run(tmp_path):
    run = RunFolder(tmp_path / "run")
    with pytest.raises(MorphbiasError, match="--cohort"):
        run.resolve_cohort()
    (tmp_path / "run" / "classify").mkdir(parents=True)
    (tmp_path / "run" / "classify" / "metrics.json").write_text(json.dumps({"cohort": str(tmp_path / "elsewhere")}))
    assert run.resolve_cohort() == tmp_path / "elsewhere"  # what classify recorded
    touch(tmp_path / "run" / "cohort" / "participants.tsv")
    assert run.resolve_cohort() == tmp_path / "run" / "cohort"  # the run's own cohort comes first
    assert run.resolve_cohort(tmp_path / "given") == tmp_path / "given"  # and an explicit one before that


def test_a_real_zero_is_a_bar_and_only_a_missing_value_is_not():
    v = bar_values([{"recall_NB": 0.0}, {"recall_NB": None}, {}, {"recall_NB": 0.5}], "recall_NB")
    assert v[0] == 0.0 and np.isnan(v[1]) and np.isnan(v[2]) and v[3] == 0.5


def test_same_run_finds_a_changed_number_and_a_changed_prediction(tmp_path):
    """Two hand-made run folders that agree, then differ in one metric and in one prediction."""
    import shutil

    import pandas as pd

    from morphbias_fast.bench.same_run import compare

    a = tmp_path / "a"
    (a / "classify").mkdir(parents=True)
    (a / "register").mkdir()
    (a / "discover").mkdir()
    pd.DataFrame({"participant_id": ["s1", "s2"], "split": ["test", "test"], "y_true": [0, 1], "prob": [0.2, 0.7],
                  "y_pred": [0, 1]}).to_csv(a / "classify" / "predictions.csv", index=False)
    pd.DataFrame({"participant_id": ["s1"], "split": ["train"], "subgroup": [0], "selected": [1],
                  "role": ["S_B"]}).to_csv(a / "discover" / "subgroups.csv", index=False)
    np.savez(a / "register" / "latents.npz", participant_id=np.array(["s1", "s2"]), split=np.array(["test"] * 2),
             z=np.zeros((2, 3), np.float32))
    (a / "metrics.json").write_text(json.dumps({"rows": [{"model": "biased", "acc_B": 0.5,
                                                          "predictions": str(a / "classify" / "predictions.csv")}]}))
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "metrics.json").write_text((a / "metrics.json").read_text().replace(str(a), str(b)))
    res = compare(RunFolder(a), RunFolder(b))
    assert res["same"] and res["numbers_compared"] == 1  # the path differs only by the folder: not a difference
    (b / "metrics.json").write_text((b / "metrics.json").read_text().replace("0.5", "0.51"))
    p = pd.read_csv(b / "classify" / "predictions.csv")
    p.loc[1, "prob"] = 0.71
    p.to_csv(b / "classify" / "predictions.csv", index=False)
    res = compare(RunFolder(a), RunFolder(b))
    assert not res["same"] and len(res["metrics_differences"]) == 1 and "0.51" in res["metrics_differences"][0]
    assert res["files_equal"]["predictions of biased"] is False
    assert res["files_equal"]["registration latents"] is True


def test_results_get_the_permissions_the_umask_gives(tmp_path):
    """A colleague on a shared server reads what the umask lets them: 0644 files and 0755 folders under 022,
    not tempfile's private 0600 / 0700."""
    import os
    import stat

    from morphbias_fast.data.synth import SynthConfig, synthesize
    from morphbias_fast.files import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        synthesize(tmp_path / "c", SynthConfig(n_train=2, n_val=2, n_test=4, spacing=8.0), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o755


def test_json_is_strict(tmp_path):
    """NaN and infinities become null (Python's json writes NaN by default, which strict parsers reject)."""
    from morphbias_fast.files import write_json

    write_json(tmp_path / "m.json", {"prec_B": float("nan"), "ci": [np.float64(np.inf), np.float32(0.5)],
                                     "n": np.int64(3), "ok": np.bool_(True)})

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    assert data == {"prec_B": None, "ci": [None, 0.5], "n": 3, "ok": True}
