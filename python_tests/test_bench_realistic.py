"""`bench realistic`: the issue-15 table read back from the four files mri_line.sh archives per seed, on
hand-made archives whose figures are worked out here by hand."""
import json

import pytest
from click.testing import CliRunner

from morphbias_fast.bench import realistic
from morphbias_fast.cli import main
from morphbias_fast.errors import MorphbiasError


def _model(name, recall_b, recall_nb, wga, **extra):
    return {"model": name, "recall_B": recall_b, "recall_NB": recall_nb, "wga": wga, "shortcut_effect": 0.1, **extra}


def _seed(folder, k, level=0.9, shortcut="morphology", epe=0.30, folds=(0, 0, 0), inr=(0.9, 0.8), pca=(0.5, 0.5)):
    rows = [_model("biased", 0.9, 0.5, 0.5), _model("unbiased", 0.8, 0.85, 0.8),
            _model("mitigated", 0.8, 0.7, 0.7, wga_gap_closed=(0.7 - 0.5) / (0.8 - 0.5))]
    synth = {"appearance": "mri", "shortcut": shortcut, "site_confound": 0.0}
    (folder / f"seed_{k}.json").write_text(json.dumps({"rows": rows, "bias_level": level, "synth": synth}))
    splits = {s: {"epe_ratio": epe, "subjects_over_0.1pct_folded": f} for s, f in zip(("train", "val", "test"), folds)}
    (folder / f"register_seed_{k}.json").write_text(json.dumps({"splits": splits}))
    disc = [{"features": f, "method": "shortcut", "split": split, "seed": i, "precision": p if split == "train" else 0}
            for f, ps in (("inr", inr), ("pca", pca)) for i, p in enumerate(ps) for split in ("train", "val")]
    (folder / f"discover_seed_{k}.json").write_text(json.dumps({"rows": disc}))
    probe = [{"features": f, "bias_auc_in_diseased": 0.6, "bias_auc_in_healthy": 0.7} for f in ("inr", "pca")]
    (folder / f"probe_seed_{k}.json").write_text(json.dumps({"rows": probe}))


def test_figures_and_targets(tmp_path):
    a = tmp_path / "m09"
    a.mkdir()
    _seed(a, 0, epe=0.30, folds=(1, 0, 2), inr=(0.9, 0.8), pca=(0.5, 0.6))
    _seed(a, 1, epe=0.50, inr=(0.6, 0.6), pca=(0.2, 0.2))
    steps = [{"features": f, "aimed": {"in_diseased": 0.6}, "final": {"in_diseased": 0.7}} for f in ("inr", "pca")]
    (a / "discovery_steps_seed_1.json").write_text(json.dumps({"rows": steps}))
    res = realistic.run([a], echo=lambda s: None)[str(a)]
    s0, s1 = res["per_seed"]
    assert s1["final_auc_in_diseased_inr"] == 0.7 and s1["aimed_auc_in_diseased_pca"] == 0.6
    assert s0["final_auc_in_diseased_inr"] is None  # not measured on seed 0: neither a number nor an error
    assert s0["subjects_over_0.1pct_folded"] == 3                  # every split counts
    assert s0["recall_gap_biased"] == pytest.approx(0.4)          # 0.9 - 0.5
    assert s0["abs_recall_gap_unbiased"] == pytest.approx(0.05)   # |0.8 - 0.85|
    assert s0["detection_inr"] == pytest.approx(0.85)             # mean of the two discovery seeds, train only
    assert s0["detection_inr_minus_pca"] == pytest.approx(0.85 - 0.55)
    assert s0["detection_autoencoder"] is None and s0["detection_inr_minus_autoencoder"] is None
    st = res["stats"]["epe_ratio_test"]
    assert (st["mean"], st["min"], st["max"], st["n"]) == (pytest.approx(0.4), 0.3, 0.5, 2)
    checks = {c["figure"]: c for c in res["checks"]}
    assert checks["epe_ratio_test"]["holds_on_mean"] is False        # 0.40 > 0.35
    assert checks["detection_inr"]["holds_on_mean"] is False         # (0.85 + 0.6) / 2 = 0.725
    assert checks["detection_inr_minus_pca"]["holds_on_mean"] is True  # 0.725 - 0.375 = 0.35
    assert checks["detection_inr_minus_pca"]["holds_on_every_seed"] is True
    assert checks["subjects_over_0.1pct_folded"]["holds_on_every_seed"] is False
    assert checks["detection_inr_minus_autoencoder"]["holds_on_mean"] is None  # not measured: neither yes nor no
    assert checks["wga_gap_closed"]["mean"] == pytest.approx(2 / 3)


def test_targets_follow_the_level_and_the_control_has_none(tmp_path):
    m08, mi09 = tmp_path / "m08", tmp_path / "mi09"
    m08.mkdir(), mi09.mkdir()
    _seed(m08, 0, level=0.8)
    _seed(mi09, 0, shortcut="intensity")
    res = realistic.run([m08, mi09], echo=lambda s: None)
    at08 = {c["figure"] for c in res[str(m08)]["checks"]}
    assert "detection_inr" in at08 and "recall_gap_biased" not in at08 and "wga_gap_closed" not in at08
    assert res[str(mi09)]["checks"] == [] and res[str(mi09)]["stats"]["detection_inr"]["n"] == 1


def test_bad_archives_are_refused_by_name(tmp_path):
    a = tmp_path / "m09"
    a.mkdir()
    with pytest.raises(MorphbiasError, match="no archived seed"):
        realistic.run([a])
    _seed(a, 0)
    _seed(a, 1, level=0.8)
    with pytest.raises(MorphbiasError, match="different bias levels"):
        realistic.run([a], echo=lambda s: None)
    _seed(a, 1, shortcut="intensity")
    with pytest.raises(MorphbiasError, match="different cohorts"):
        realistic.run([a], echo=lambda s: None)
    (a / "probe_seed_1.json").unlink()
    res = CliRunner().invoke(main, ["bench", "realistic", str(a)])
    assert res.exit_code != 0 and "probe_seed_1.json is missing" in res.output


def test_cli_writes_strict_json(tmp_path):
    a = tmp_path / "m09"
    a.mkdir()
    _seed(a, 3)
    res = CliRunner().invoke(main, ["bench", "realistic", str(a), "--json", str(tmp_path / "out.json")])
    assert res.exit_code == 0, res.output
    assert "| detection_inr | 0.850 |" in res.output
    out = json.loads((tmp_path / "out.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert out[str(a)]["seeds"] == [3]
