"""Mitigation pieces against constructions with known answers, and the one-command run end to end on a
tiny synthetic cohort, with its metrics.json checked against fairlearn's MetricFrame (an independent
implementation) on the prediction files it names."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.decomposition import PCA

from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.mitigate import oracle_weights
from morphbias_fast.mitigate.augment import counterfactual_latents, paper_latents


def test_counterfactual_moves_each_case_across_by_the_planted_shift():
    # Within each label the two sides share the same base points, so the side means differ by exactly delta.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 6))
    delta = rng.normal(size=6)
    Z, y, side = [], [], []
    for c in (0, 1):
        for s in (0, 1):
            Z.append(base + c + s * delta)
            y += [c] * 10
            side += [s] * 10
    Z, y, side = np.concatenate(Z), np.array(y), np.array(side)
    moved, ym = counterfactual_latents(Z, y, side)
    # exact up to float64 rounding of means of ~10 values of size ~3 (~1e-15); 1e-12 leaves room, nothing more
    np.testing.assert_allclose(moved, Z + np.where(side[:, None] == 1, -delta, delta), atol=1e-12)
    assert (ym == y).all()
    side[:3] = -1  # cases without a side are left out
    moved, ym = counterfactual_latents(Z, y, side)
    assert len(moved) == len(Z) - 3
    side[:3] = 0
    side[30:39] = -1  # label 1, side 1 keeps one case: delta comes from label 0 alone, still exact here
    moved, _ = counterfactual_latents(Z, y, side)
    keep = side >= 0
    np.testing.assert_allclose(moved, Z[keep] + np.where(side[keep, None] == 1, -delta, delta), atol=1e-12)
    side[10:19] = -1
    with pytest.raises(ValueError, match="no label"):
        counterfactual_latents(Z, y, side)


def _paper_case():
    """200 latents of width 16 with random labels; the first 30 are the re-balanced set."""
    rng = np.random.default_rng(1)
    selected = np.zeros(200, bool)
    selected[:30] = True
    return rng.normal(size=(200, 16)), rng.integers(0, 2, 200), selected


def test_paper_latents_reach_the_target_size_per_label():
    Z, y, selected = _paper_case()
    Zx, yx = paper_latents(Z, y, selected, n_target=200, seed=0)
    assert Zx.shape == (200, 16)
    assert np.bincount(yx).tolist() == [100, 100]


def test_paper_ablation_latents_drop_one_step_each():
    # The paper's Table 3 rows: without SMOTE the pool keeps its own size (the re-balanced cases, plus 3 noise
    # copies each with augmentation); without noise copies SMOTE still reaches the target, equal per label.
    Z, y, selected = _paper_case()
    Zr, yr = paper_latents(Z, y, selected, n_target=200, seed=0, augment=False, smote=False)
    assert len(Zr) == 30 and (yr == y[:30]).all()
    # no noise and no resampling: the PCA round trip (95% of the variance) of the selected latents themselves
    pca = PCA(0.95, random_state=0).fit(Z)
    # the same PCA fitted twice on the same data (deterministic solver, fixed random_state): equal up to the
    # float64 rounding of a 16-wide round trip of O(1) values, ~1e-15; 1e-10 leaves room and nothing more
    np.testing.assert_allclose(Zr, pca.inverse_transform(pca.transform(Z[:30])), atol=1e-10)
    Za, ya = paper_latents(Z, y, selected, n_target=200, seed=0, augment=True, smote=False)
    assert len(Za) == 30 * 4 and np.bincount(ya).tolist() == (np.bincount(y[:30], minlength=2) * 4).tolist()
    assert not np.allclose(Za[30:60], Zr)  # the copies carry noise
    Zs, ys = paper_latents(Z, y, selected, n_target=200, seed=0, augment=False, smote=True)
    assert Zs.shape == (200, 16) and np.bincount(ys).tolist() == [100, 100]
    with pytest.raises(ValueError, match="empty"):
        paper_latents(Z, y, np.zeros(200, bool), n_target=200, augment=False, smote=False)


def test_oracle_weights_make_group_and_label_independent():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    g = np.where(rng.random(1000) < np.where(y == 1, 0.9, 0.1), 1, 0)
    w = oracle_weights(g, y)
    for c in (0, 1):  # weighted P(g = 1 | y = c) is the same for both labels (= P(g = 1))
        assert np.average(g[y == c], weights=w[y == c]) == pytest.approx(g.mean(), abs=1e-12)


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    cohort = root / "cohort"
    synthesize(cohort, SynthConfig(n_train=120, n_val=60, n_test=40, spacing=8.0, bias_level=0.9), progress=False)
    out = root / "run"
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--cohort", str(cohort), "--baselines", "oracle",
                                    "--steps", "150"])
    assert res.exit_code == 0, res.output[-3000:]
    return cohort, out, res.output


def test_run_writes_every_stage_and_a_report(run_out):
    _, out, output = run_out
    # (No augmentations.png check here: at 8 mm voxels the 2 mm bias is invisible to this classifier, so
    # discovery may find no split; test_generating_strategies_decode_new_cases covers generation.)
    for f in ("classify/predictions.csv", "register/latents.npz", "discover/subgroups.csv",
              "mitigate/predictions.csv", "mitigate_oracle/predictions.csv",
              "unbiased/predictions.csv", "metrics.json", "report.html"):
        assert (out / f).exists(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["model"] for r in metrics["rows"]] == ["biased", "mitigated", "oracle", "unbiased"]
    html = (out / "report.html").read_text()
    assert "gap closed" in html and "data:image/png;base64" in html
    assert "gap closed" in output


def test_metrics_agree_with_fairlearn(run_out):
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    cohort, out, _ = run_out
    parts = pd.read_csv(cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})
    bias = parts.set_index("participant_id").bias
    metrics = json.loads((out / "metrics.json").read_text())
    for row in metrics["rows"]:
        p = pd.read_csv(row["predictions"], dtype={"participant_id": str})
        p = p[p.split == "test"]
        mf = MetricFrame(metrics={"acc": accuracy_score, "recall": recall_score,
                                  "prec": lambda a, b: precision_score(a, b, zero_division=np.nan)},
                         y_true=p.y_true, y_pred=p.y_pred, sensitive_features=bias.reindex(p.participant_id).values)
        for stat in ("acc", "recall", "prec"):
            for g, name in ((1, "B"), (0, "NB")):
                theirs, ours = mf.by_group.loc[g, stat], row[f"{stat}_{name}"]
                if ours is None:  # undefined (no predicted positives): fairlearn gives NaN there
                    assert np.isnan(theirs)
                else:
                    assert ours == theirs  # the same counts and one division: exactly equal
        b = bias.reindex(p.participant_id).to_numpy()
        cells = np.array([f"{'B' if bb else 'NB'}{'D' if yy else 'ND'}" for bb, yy in zip(b, p.y_true)])
        by_cell = MetricFrame(metrics=accuracy_score, y_true=p.y_true, y_pred=p.y_pred, sensitive_features=cells)
        for c in ("BD", "BND", "NBD", "NBND"):
            assert row[f"acc_{c}"] == pytest.approx(by_cell.by_group[c], abs=1e-12)
        assert row["wga"] == pytest.approx(by_cell.by_group.min(), abs=1e-12)
        # every model has its counterfactual-twin figures (a synthetic cohort), with intervals
        assert -1 <= row["cf_sensitivity"] <= 1 and 0 <= row["cf_flip_rate"] <= 1
        assert {"wga", "shortcut_effect", "eo_gap", "cf_sensitivity"} <= set(row["ci"])
    by = {r["model"]: r for r in metrics["rows"]}
    if by["unbiased"]["wga"] > by["biased"]["wga"]:
        want = (by["mitigated"]["wga"] - by["biased"]["wga"]) / (by["unbiased"]["wga"] - by["biased"]["wga"])
        assert by["mitigated"]["wga_gap_closed"] == pytest.approx(want, abs=1e-12)


def test_rerun_skips_finished_stages(run_out):
    cohort, out, _ = run_out
    before = {p: p.stat().st_mtime_ns for p in (out / "classify/predictions.csv", out / "register/latents.npz",
                                                 out / "mitigate/predictions.csv")}
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--cohort", str(cohort), "--baselines", "oracle"])
    assert res.exit_code == 0, res.output
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_run_rejects_unknown_baseline(tmp_path):
    res = CliRunner().invoke(main, ["run", "--out", str(tmp_path), "--baselines", "magic"])
    assert res.exit_code == 2 and "magic" in res.output


@pytest.mark.parametrize("strategy", ["counterfactual", "paper"])
def test_generating_strategies_decode_new_cases(run_out, strategy):
    """Mitigation from planted subgroups (roles = the true bias), on the run's registration."""
    cohort, out, _ = run_out
    parts = pd.read_csv(cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})
    parts = parts[parts.split.isin(["train", "val"])]
    minority = (parts.bias != parts.disease).astype(int)
    planted = out / f"planted_{strategy}"
    planted.mkdir()
    pd.DataFrame({"participant_id": parts.participant_id, "split": parts.split,
                  "subgroup": 2 * parts.bias + parts.disease, "selected": minority,
                  "role": np.where(parts.bias == 1, "S_B", "S_NB")}).to_csv(planted / "subgroups.csv", index=False)
    dest = out / f"mit_{strategy}"
    res = CliRunner().invoke(main, ["mitigate", str(out), "--strategy", strategy, "--discover-dir", str(planted),
                                    "--out", str(dest), "--epochs", "2", "--cohort", str(cohort)])
    assert res.exit_code == 0, res.output[-3000:]
    metrics = json.loads((dest / "metrics.json").read_text())
    n_train = int((parts.split == "train").sum())
    # counterfactual: one flipped copy per train case; paper: SMOTE up to the train size
    assert metrics["generated"] == n_train and metrics["warning"] is None
    assert metrics["train_size"] == 2 * n_train
    assert (dest / "augmentations.png").stat().st_size > 0


def test_a_registered_toy_strategy_runs(run_out, tmp_path, monkeypatch):
    """Adding a strategy is one function: this one up-weights diseased cases and asks for every train case's
    own registered latent to be decoded as an extra image, the odd ones weighing 3x the even ones. The stage
    must train on the originals plus one generated image per train case, the generated ones in those
    proportions and together as heavy as the originals' count, and write classify's files."""
    from morphbias_fast import mitigate
    from morphbias_fast.mitigate import stage
    from morphbias_fast.runfolder import RunFolder

    cohort, out, _ = run_out
    seen, weights = [], []
    real_fit = stage.fit

    def fit(*args, sample_weight=None, **kwargs):
        weights.append(sample_weight)
        return real_fit(*args, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(stage, "fit", fit)

    @mitigate.strategy("toy", "test only: diseased x2, each train case's latent decoded once more")
    def toy(inp):
        seen.append(inp.seed)
        y = inp.cohort.labels[inp.tr]
        return mitigate.Plan(weights=np.where(y == 1, 2.0, 1.0), val_weight=None, latents=inp.train_latents(),
                             labels=y, examples=inp.cohort.images[inp.tr][:6], caption="toy",
                             generated_weights=np.arange(len(y)) % 2 * 2.0 + 1.0)

    try:
        res = mitigate.run(RunFolder(out), mitigate.Config(strategy="toy", seed=5, epochs=2, out=tmp_path / "toy",
                                                           cohort=cohort, progress=False))
    finally:
        del mitigate.STRATEGIES["toy"]
    assert seen == [5]
    metrics = json.loads((tmp_path / "toy" / "metrics.json").read_text())
    n_train = int((pd.read_csv(cohort / "participants.tsv", sep="\t").split == "train").sum())
    assert metrics["strategy"] == "toy" and metrics["generated"] == n_train and metrics["train_size"] == 2 * n_train
    gen = weights[0][n_train:]
    np.testing.assert_allclose(gen[1::2], 3 * gen[0::2])
    assert gen.sum() == pytest.approx(n_train)
    assert len(res.predictions) == len(pd.read_csv(cohort / "participants.tsv", sep="\t"))
    assert (tmp_path / "toy" / "predictions.csv").exists() and (tmp_path / "toy" / "augmentations.png").exists()
    assert "test accuracy" in res.summary()


def test_seed_aggregate_by_hand():
    from morphbias_fast.report.metrics import aggregate

    def row(model, r, g=None):
        d = {"model": model, "acc_B": r, "acc_NB": r, "recall_B": r, "recall_NB": r, "prec_B": r, "prec_NB": r,
             "acc": r}
        if g is not None:
            d["gap_closed"], d["acc_B_drop"] = g, 0.0
        return d

    seeds = [{"rows": [row("biased", 0.6), row("mitigated", 0.8, 0.5)]},
             {"rows": [row("biased", 0.7), row("mitigated", 0.9, 0.7), row("oracle", 0.9, 0.9)]}]
    out = {r["model"]: r for r in aggregate(seeds)["rows"]}
    assert set(out) == {"biased", "mitigated"}  # a model missing from one seed is not averaged
    assert out["mitigated"]["recall_NB"] == pytest.approx(0.85)
    assert out["mitigated"]["recall_NB_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert out["mitigated"]["gap_closed"] == pytest.approx(0.6)
    assert "gap_closed" not in out["biased"]
    assert "gap_closed_of_means" not in out["mitigated"]  # no unbiased row: no gap to close


def test_gap_closed_of_means_by_hand():
    """Seed 1 has a gap of 0.02, seed 2 of 0.30: the ratio of means is (0.85 - 0.7) / (0.86 - 0.7)."""
    from morphbias_fast.report.metrics import aggregate

    def row(model, r):
        return {"model": model, "acc_B": r, "acc_NB": r, "recall_B": r, "recall_NB": r, "prec_B": r,
                "prec_NB": r, "acc": r}

    seeds = [{"rows": [row("biased", 0.8), row("mitigated", 0.81), row("unbiased", 0.82)]},
             {"rows": [row("biased", 0.6), row("mitigated", 0.89), row("unbiased", 0.9)]}]
    out = {r["model"]: r for r in aggregate(seeds)["rows"]}
    assert out["mitigated"]["gap_closed_of_means"] == pytest.approx((0.85 - 0.7) / (0.86 - 0.7))
    assert "gap_closed_of_means" not in out["biased"] and "gap_closed_of_means" not in out["unbiased"]


def test_run_needs_a_bias_column_before_any_work(tmp_path, run_out):
    import shutil

    cohort, _, _ = run_out
    copy = tmp_path / "cohort"
    shutil.copytree(cohort, copy)
    parts = pd.read_csv(copy / "participants.tsv", sep="\t")
    parts.drop(columns="bias").to_csv(copy / "participants.tsv", sep="\t", index=False)
    res = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "--cohort", str(copy)])
    assert res.exit_code == 1 and "'bias' column" in res.output
    assert not (tmp_path / "run" / "classify").exists()  # failed before training anything


@pytest.mark.parametrize("args, folder", [(["--seeds", "4"], "seed_4"), (["--seed", "4"], None)])
def test_seeds_always_means_seed_folders(tmp_path, monkeypatch, args, folder):
    """`--seeds 4` adds seed 4 to a multi-seed folder (OUT/seed_4), as --help says; `--seed 4` runs in OUT.
    The stages are stubbed: this is about where the run goes."""
    from morphbias_fast import pipeline, report
    from morphbias_fast.report import stage as report_stage

    where = []
    row = {"recall_NB": 0.5, "recall_B": 0.5, "acc_B": 0.5, "acc_NB": 0.5, "prec_B": 0.5, "prec_NB": 0.5}

    def fake_run_one(run_dir, *a, **k):
        where.append(run_dir)
        return report.Result({"rows": [{"model": "biased", **row}]}, run_dir / "report.html")

    monkeypatch.setattr(pipeline, "run_one", fake_run_one)
    monkeypatch.setattr(report_stage, "write_report", lambda *a, **k: None)
    res = CliRunner().invoke(main, ["run", "--out", str(tmp_path), *args])
    assert res.exit_code == 0, res.output
    assert where == [tmp_path / folder if folder else tmp_path]


def test_seed_statistics_by_hand():
    """Five seeds: the t-interval of the mean with t(0.975, 4) = 2.776445 from a printed table, and the paired
    Wilcoxon test of the default against oracle where the default is higher on all five seeds: the exact
    two-sided p of n = 5 is 2 / 2^5 = 0.0625 (the smallest five seeds can give)."""
    from morphbias_fast.report.metrics import aggregate

    def row(model, wga):
        return {"model": model, "acc_B": 0.5, "acc_NB": 0.5, "recall_B": 0.5, "recall_NB": 0.5, "prec_B": 0.5,
                "prec_NB": 0.5, "acc": 0.5, "wga": wga}

    seeds = [{"rows": [row("biased", 0.1), row("mitigated", 0.5 + k / 10), row("oracle", 0.4 + k / 20)]}
             for k in range(5)]
    out = aggregate(seeds)
    m = {r["model"]: r for r in out["rows"]}["mitigated"]
    h = 2.776445 * np.std([0.5, 0.6, 0.7, 0.8, 0.9], ddof=1) / np.sqrt(5)
    assert m["wga_ci95"] == pytest.approx([0.7 - h, 0.7 + h], abs=1e-6)  # the table's 7 digits
    test = next(t for t in out["paired_tests"] if t["b"] == "oracle" and t["metric"] == "wga")
    assert test["wins_of_a"] == 5 and test["p_wilcoxon"] == pytest.approx(0.0625, abs=1e-12)


def test_counterfactual_halves_are_each_balanced():
    """The default's plan: originals group-balanced over the discovered side x label cells, and each flipped copy
    weighted like its original, so in both halves every cell carries the same total weight (the bias is
    independent of the label in each). Uniform copies would carry the reverse bias (bench/RESULTS.md).
    A train set at bias level 0.9 with the discovered side equal to the bias; latents random."""
    from types import SimpleNamespace

    from morphbias_fast import mitigate

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    side = np.where(rng.random(100) < 0.9, y, 1 - y)
    table = pd.DataFrame({"subgroup": 2 * side + y, "role": np.where(side == 1, "S_B", "S_NB")})
    cohort = SimpleNamespace(labels=y, images=np.zeros((100, 4, 4)))
    inp = SimpleNamespace(tr=np.arange(100), va=np.arange(0), cohort=cohort, subgroups=lambda rows: table,
                          discovered_val_weight=lambda: None, train_latents=lambda: rng.normal(size=(100, 8)))
    plan = mitigate.STRATEGIES[mitigate.DEFAULT].fn(inp)
    np.testing.assert_allclose(plan.generated_weights, plan.weights)
    for half_side, w in ((side, plan.weights), (1 - side, plan.generated_weights)):
        totals = [w[(half_side == b) & (y == d)].sum() for b in (0, 1) for d in (0, 1)]
        # float64 sums of up to 100 equal shares (each cell's total is 1/4 of the weight by construction):
        # rounding ~100 * 2e-16, so 1e-9 is a wide margin and any real imbalance (>= one share, 1%) fails
        np.testing.assert_allclose(totals, totals[0], rtol=1e-9)


def test_one_seed_has_no_spread_and_the_levels_table_has_every_folder():
    """One finished seed (a frozen-protocol folder part way): its std is undefined, not 0; `bench mitigate A B`
    ends with one table of every folder's models and bias levels."""
    from morphbias_fast.bench.mitigate import levels_table
    from morphbias_fast.report.metrics import aggregate

    def row(model, wga):
        return {"model": model, "acc_B": 0.5, "acc_NB": 0.5, "recall_B": 0.5, "recall_NB": 0.5, "prec_B": 0.5,
                "prec_NB": 0.5, "acc": 0.5, "wga": wga}

    one = aggregate([{"rows": [row("biased", 0.4), row("mitigated", 0.7)]}])
    m = {r["model"]: r for r in one["rows"]}["mitigated"]
    assert m["wga"] == 0.7 and m["wga_std"] is None and m["wga_ci95"] is None
    two = aggregate([{"rows": [row("biased", 0.4), row("mitigated", 0.7)]},
                     {"rows": [row("biased", 0.5), row("mitigated", 0.9)]}])
    text = levels_table({"runs/b09": {"mean_std": two, "bias_level": 0.9},
                         "runs/b08": {"mean_std": one, "bias_level": 0.8}, "runs/single": {"rows": []}})
    lines = text.strip().splitlines()
    assert lines[1].startswith("| bias level | folder | model | wga |") and lines[2].startswith("|---|---|---|")
    assert "| 0.9 | b09 | mitigated | 0.800 ± 0.141" in text and "| 0.8 | b08 | mitigated | 0.700 |" in text
    assert len(lines) == 3 + 4  # title, header, rule, two models of two folders (the one-seed-run folder has none)
