"""`run --recipe` and its three overrides reach the stages: the representation in register's INRConfig, the
discovery method in discover's Config, the strategy of the "mitigated" row (written to RUN/mitigate) in
mitigate's Config; baselines keep their own folders."""
from pathlib import Path

import pytest

from morphbias_fast import classify, discover, mitigate, pipeline, register
from morphbias_fast.pipeline import recipe_parts
from morphbias_fast.runfolder import RunFolder


@pytest.mark.parametrize("recipe,overrides,want", [
    ("ours", (None, None, None), {"arch": "hashgrid", "discovery": "shortcut", "mitigation": "counterfactual"}),
    ("paper", (None, None, None), {"arch": "siren", "discovery": "paper", "mitigation": "paper"}),
    ("paper", ("hashgrid", None, "ours"), {"arch": "hashgrid", "discovery": "paper", "mitigation": "counterfactual"}),
])
def test_recipe_parts(recipe, overrides, want):
    assert recipe_parts(recipe, *overrides) == want


def test_the_parts_reach_the_stages(monkeypatch, tmp_path):
    seen = {}
    for module, name in ((classify, "classify"), (register, "register"), (discover, "discover")):
        monkeypatch.setattr(module, "run", lambda run, cfg, name=name: seen.setdefault(name, cfg))
    monkeypatch.setattr(mitigate, "run", lambda run, cfg: seen.setdefault(f"mitigate {cfg.strategy}", cfg))
    s = pipeline.Settings(baselines=("oracle",), **recipe_parts("paper", None, None, None))
    run = RunFolder(tmp_path / "run")
    for step in pipeline.steps(s, synthetic=False):
        step.call(run, Path("cohort"), 3)
    assert seen["register"].inr.arch == "siren" and seen["discover"].method == "paper"
    assert seen["register"].inr == register.INRConfig.paper(seed=3, steps=None, time_budget=240.0, device="auto")
    assert seen["mitigate paper"].out == run.mitigate().path  # the run's own mitigation: the "mitigated" row
    assert seen["mitigate oracle"].out is None                  # a baseline: RUN/mitigate_oracle


def test_run_with_the_papers_recipe_end_to_end(tmp_path):
    """`run --recipe paper` on a CI-sized cohort: the paper's SIREN registration (a 20 s budget, of which a quarter
    fits the new subjects), its mixture discovery and its mitigation reach a report."""
    import json

    from click.testing import CliRunner

    from morphbias_fast.cli import main
    from morphbias_fast.data.synth import SynthConfig, synthesize

    cohort = tmp_path / "cohort"
    synthesize(cohort, SynthConfig(n_train=60, n_val=30, n_test=20, spacing=8.0, bias_level=0.9), progress=False)
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--cohort", str(cohort), "--recipe", "paper",
                                    "--time-budget", "20", "--epochs", "2", "--device", "cpu", "--seed", "3"])
    assert res.exit_code == 0, res.output[-3000:]
    reg = json.loads((out / "register" / "metrics.json").read_text())
    assert (reg["config"]["recipe"], reg["config"]["arch"], reg["config"]["latent_dim"]) == ("paper", "siren", 256)
    assert reg["train"]["steps"] >= 1 and reg["fit"]["steps"] >= 1
    assert json.loads((out / "discover" / "summary.json").read_text())["method"] == "paper"
    assert [r["model"] for r in json.loads((out / "metrics.json").read_text())["rows"]] == [
        "biased", "mitigated", "unbiased"]
    # The paper's unpublished mixture settings as a variant beside it (bench variants, issue 17): its own
    # discovery folder with those settings, the paper's mitigation from it, and a row in the report.
    res = CliRunner().invoke(main, ["bench", "variants", str(out), "--variant", "paper_w1_confusion"])
    assert res.exit_code == 0, res.output[-3000:]
    found = json.loads((out / "discover_paper_w1_confusion" / "summary.json").read_text())
    assert found["method"] == "paper"
    assert (found["config"]["mixture_weight"], found["config"]["mixture_init"]) == (1.0, "confusion")
    assert found["seed"] == 3  # the run's own seed (a run folder without seed_K folders), not 0
    assert (out / "mitigate_paper_w1_confusion" / "predictions.csv").exists()
    rows = [r["model"] for r in json.loads((out / "metrics.json").read_text())["rows"]]
    assert "paper_w1_confusion" in rows
    # The recipe with its training latents refit, network frozen (register/refit.py): a register folder of its
    # own that only the variant reads, its discovery, the paper's mitigation, and our checkpoint rule beside it.
    for variant in ("paper_refit_w1", "paper_refit_w1_checkpoint", "paper_refit_heldout_w10"):
        res = CliRunner().invoke(main, ["bench", "variants", str(out), "--variant", variant])
        assert res.exit_code == 0, res.output[-3000:]
        assert (out / f"mitigate_{variant}" / "predictions.csv").exists()
    assert json.loads((out / "register_refit" / "metrics.json").read_text())["train_refit"]["splits"] == ["train"]
    found = json.loads((out / "discover_paper_refit_w1" / "summary.json").read_text())
    assert (found["method"], found["config"]["mixture_weight"]) == ("paper", 1.0)
    assert json.loads((out / "register" / "metrics.json").read_text()).get("train_refit") is None
    # held out: only the discovery reads classify_heldout, whose val and test rows are the classifier's
    held = json.loads((out / "classify_heldout" / "metrics.json").read_text())["heldout"]
    assert held["folds"] == 5 and held["from"] == str(out / "classify")
    found = json.loads((out / "discover_paper_refit_heldout_w10" / "summary.json").read_text())
    assert found["config"]["mixture_weight"] == 10.0
    rows = [r["model"] for r in json.loads((out / "metrics.json").read_text())["rows"]]
    assert {"paper_refit_w1", "paper_refit_w1_checkpoint", "paper_refit_heldout_w10"} <= set(rows)
    # The paper's ablation (its Table 3): re-balancing alone makes no images and counts the selected cases twice.
    res = CliRunner().invoke(main, ["bench", "variants", str(out), "--variant", "paper_rebalance"])
    assert res.exit_code == 0, res.output[-3000:]
    assert "paper_rebalance" in [r["model"] for r in json.loads((out / "metrics.json").read_text())["rows"]]


def test_paper_with_our_checkpoint_rule_changes_only_the_checkpoint(monkeypatch):
    """bench variants paper_disc_checkpoint: the paper's plan as it is, with the val weights of the discovered
    groups (each group counted the same) in place of plain val accuracy."""
    import numpy as np

    from morphbias_fast.bench import variants

    paper_plan = mitigate.Plan(np.ones(4), None, np.zeros((2, 3)), np.array([0, 1]))
    monkeypatch.setitem(mitigate.STRATEGIES, "paper", mitigate.strategies.Strategy(lambda inp: paper_plan, ""))

    class Inp:
        def discovered_val_weight(self):
            return np.array([0.5, 1.5])

    fn, _ = variants.VARIANTS["paper_disc_checkpoint"]
    plan = fn(Inp())
    assert plan.val_weight.tolist() == [0.5, 1.5]
    assert plan.latents is paper_plan.latents and plan.weights.tolist() == [1, 1, 1, 1]
