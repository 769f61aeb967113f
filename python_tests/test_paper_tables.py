"""`bench paper-tables`: the published rows against the paper's own stated gap closed, the measured rows
against the seed files they come from, and the folder checks."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from morphbias_fast.bench import paper_tables
from morphbias_fast.cli import main
from morphbias_fast.report import COLUMNS


def _row(rng, model):
    """One model's random row, in its own band (biased lowest, unbiased highest), so that every gap is positive."""
    band = {"biased": (0.2, 0.4), "unbiased": (0.8, 0.95)}.get(model, (0.45, 0.75))
    return {"model": model, **{c: float(rng.uniform(*band)) for c in (*COLUMNS, "acc", "wga")}}


def _archive(folder, level, models, n_seeds=3, seed=0, seeds=None, shared=None):
    """An archive folder (what `bench mitigate --archive` writes) of random seed tables (seeds 0..n_seeds-1, or
    `seeds`). `shared`: another archive's tables (seed -> rows) whose biased and unbiased rows this one reuses,
    as a recipe run on the same cohorts and classifiers does."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    tables = {}
    for k in (range(n_seeds) if seeds is None else seeds):
        reuse = {} if shared is None else {r["model"]: r for r in shared[k] if r["model"] in ("biased", "unbiased")}
        rows = [reuse.get(m) or _row(rng, m) for m in models]
        tables[k] = rows
        (folder / f"seed_{k}.json").write_text(json.dumps({"split": "test", "rows": rows, "bias_level": level}))
    return tables


def test_published_rows_give_the_gap_closed_the_paper_states():
    # docs/METHOD.md section 5: "the paper closes 0.33 of the gap at 0.9 and 0.50 at 0.7" (two decimals)
    res = paper_tables.run()
    t1 = {r["model"]: r for r in res["table_1"]}
    t2 = {r["model"]: r for r in res["table_2"]}
    assert round(t1["paper (INR latents)"]["gap_closed_of_means"], 2) == 0.33
    assert round(t2["paper (INR latents)"]["gap_closed_of_means"], 2) == 0.50
    assert all(r["source"] == "published" for r in res["table_1"] + res["table_2"] + res["table_3"])


def test_measured_rows_are_the_seed_means_of_their_folders(tmp_path):
    ours = _archive(tmp_path / "b09", 0.9, ["biased", "mitigated", "unbiased"], seed=1)
    paper = _archive(tmp_path / "p07", 0.7, ["biased", "mitigated", "unbiased", "paper_rebalance",
                                             "paper_augment", "paper_smote"], seed=2)
    out = tmp_path / "tables.json"
    res = CliRunner().invoke(main, ["bench", "paper-tables", "--ours-09", str(tmp_path / "b09"), "--paper-07",
                                    str(tmp_path / "p07"), "--json", str(out), "--html", str(tmp_path / "t.html")])
    assert res.exit_code == 0, res.output[-3000:]
    tables = json.loads(out.read_text())

    def mean(seeds, model, col):
        return np.mean([next(r for r in rows if r["model"] == model)[col] for rows in seeds.values()])

    t1 = {r["model"]: r for r in tables["table_1"] if r["source"] == "measured"}
    assert set(t1) == {"biased", "unbiased", "ours (hash grid, our discovery and mitigation)"}  # no paper09
    # float64 means of three numbers, computed twice in the same order: 1e-12 is far above their rounding
    assert t1["biased"]["recall_NB"] == pytest.approx(mean(ours, "biased", "recall_NB"), rel=1e-12)
    got = t1["ours (hash grid, our discovery and mitigation)"]
    assert got["wga"] == pytest.approx(mean(ours, "mitigated", "wga"), rel=1e-12)
    gap = (mean(ours, "mitigated", "recall_NB") - mean(ours, "biased", "recall_NB")) / (
        mean(ours, "unbiased", "recall_NB") - mean(ours, "biased", "recall_NB"))
    assert got["gap_closed_of_means"] == pytest.approx(gap, rel=1e-9)  # a ratio of those means
    # Table 2 has only PAPER at 0.7: its biased and unbiased rows come from it, beside the reproduced paper row
    t2 = {r["model"] for r in tables["table_2"] if r["source"] == "measured"}
    assert t2 == {"biased", "unbiased", "paper, reproduced (SIREN, its discovery and mitigation)"}
    t3 = {r["model"]: r for r in tables["table_3"] if r["source"] == "measured"}
    assert list(t3) == ["re-balancing alone", "+ augmentation", "+ SMOTE", "both"]
    assert t3["+ SMOTE"]["recall_NB"] == pytest.approx(mean(paper, "paper_smote", "recall_NB"), rel=1e-12)
    # Table 3 as paired steps, against scipy's t-interval of the per-seed differences (an independent route)
    published = {r["model"]: r for r in tables["table_3_steps"] if r["source"] == "published"}
    assert {r["source"] for r in tables["table_3_steps"]} == {"published", "measured"}
    got = next(r for r in tables["table_3_steps"] if r["source"] == "measured"
               and r["model"] == "+ augmentation - re-balancing alone")
    d = [next(r for r in rows if r["model"] == "paper_augment")["recall_NB"]
         - next(r for r in rows if r["model"] == "paper_rebalance")["recall_NB"] for rows in paper.values()]
    assert got["per_seed"] == pytest.approx(d, rel=1e-12)
    assert got["recall_NB_difference"] == pytest.approx(np.mean(d), rel=1e-12)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=stats.sem(d))
    assert got["recall_NB_difference_ci95"] == pytest.approx([lo, hi], rel=1e-9)
    assert (got["seeds_up"], got["seeds_down"]) == (sum(x > 0 for x in d), sum(x < 0 for x in d))
    # the published step is the difference of the paper's means: 0.73 - 0.66 (docs/METHOD.md section 5)
    assert published["+ augmentation - re-balancing alone"]["recall_NB_difference"] == pytest.approx(0.07)
    page = (tmp_path / "t.html").read_text()
    assert page.count("<table>") == 4 and "Table 3" in page and "re-balancing alone" in page


def test_a_folder_at_another_bias_level_is_refused(tmp_path):
    _archive(tmp_path / "b07", 0.7, ["biased", "mitigated", "unbiased"])
    res = CliRunner().invoke(main, ["bench", "paper-tables", "--ours-09", str(tmp_path / "b07")])
    assert res.exit_code != 0 and "not 0.9" in res.output


def test_two_sources_of_a_level_are_compared_on_the_seeds_they_share(tmp_path):
    # OURS finished seeds 0-4, PAPER seeds 0, 1 and 3: every measured row of the level is over seeds 0, 1 and 3,
    # so the biased row beside the paper's is the same cohorts' biased model
    ours = _archive(tmp_path / "b07", 0.7, ["biased", "mitigated", "unbiased"], n_seeds=5, seed=3)
    _archive(tmp_path / "p07", 0.7, ["biased", "mitigated", "unbiased"], seed=4, seeds=[0, 1, 3], shared=ours)
    res = paper_tables.run(ours07=tmp_path / "b07", paper07=tmp_path / "p07")
    assert res["seeds"]["0.7"] == ["seed_0", "seed_1", "seed_3"]
    measured = [r for r in res["table_2"] if r["source"] == "measured"]
    assert measured and all(r["n_seeds"] == 3 for r in measured)
    biased = next(r for r in measured if r["model"] == "biased")
    shared = [ours[k] for k in (0, 1, 3)]
    want = np.mean([next(r for r in rows if r["model"] == "biased")["recall_NB"] for rows in shared])
    assert biased["recall_NB"] == pytest.approx(want, rel=1e-12)  # three float64 values, as above


def test_two_sources_sharing_no_seed_are_refused(tmp_path):
    _archive(tmp_path / "b09", 0.9, ["biased", "mitigated", "unbiased"], seeds=[0, 1])
    _archive(tmp_path / "p09", 0.9, ["biased", "mitigated", "unbiased"], seeds=[2])
    res = CliRunner().invoke(main, ["bench", "paper-tables", "--ours-09", str(tmp_path / "b09"), "--paper-09",
                                    str(tmp_path / "p09")])
    assert res.exit_code != 0 and "share no finished seed" in res.output


def test_two_sources_with_different_biased_models_are_refused(tmp_path):
    # the same seeds, but PAPER's biased model is another one (a rerun): its row would sit beside OURS's biased
    _archive(tmp_path / "b09", 0.9, ["biased", "mitigated", "unbiased"], seed=5)
    _archive(tmp_path / "p09", 0.9, ["biased", "mitigated", "unbiased"], seed=6)
    res = CliRunner().invoke(main, ["bench", "paper-tables", "--ours-09", str(tmp_path / "b09"), "--paper-09",
                                    str(tmp_path / "p09")])
    assert res.exit_code != 0 and "biased models differ" in res.output
