"""Why the paper's discovery finds the bias on val but not on train (issue 17, cause 3). On the recipe's own
runs the error-aware mixture isolates the under-represented cells B&ND and NB&D on val and not on train. Train
differs from val in two inputs, and this diagnostic swaps each for its val-like form, two by two:

  predictions  in_sample: the classifier trained on train predicts train, and fits most of it, so the mixture
               sees few errors there; cross_fitted: train is cut into k folds (stratified by the label only),
               a classifier trained on the other k - 1 with the classify stage's settings (model selection on
               val) predicts each fold, so train's errors look like val's (classify/heldout.py).
  latents      trained: the paper recipe's training latents, as published, each updated only in the steps
               that draw its subject while the network moves under it (~28 updates per latent in a 4-minute
               CPU budget, ~1000 in the paper's 1000 epochs); refit: fitted again with the network frozen,
               from the mean training latent, with the same plan as val's (the run's own number of fitting
               steps), which is how the register stage fits val and test and how our recipe fits every split
               (register/refit.py).

For each combination paper_discovery_steps.split_steps scores the discovery on train: the bias's place in
the spectrum, the probe, the grouping ceiling, and what the published rules select.

    python bench/diagnostics/train_discovery.py RUN_DIR [RUN_DIR ...] --cache DIR [--folds 5]
        [--pcs 4,16] [--mixture-weights 10,1] [--mixture-seeds 0,1,2,3,4] [--json PATH]

RUN_DIR is a paper-recipe run (register --recipe paper). DIR/<run name>/ keeps the held-out predictions
(classify_heldout, fold by fold) and the refit register folder (register_refit), so a stopped study resumes. The true
bias is used to score, never to choose."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from morphbias_fast.classify import heldout_predictions
from morphbias_fast.data import load_cohort
from morphbias_fast.files import write_json
from morphbias_fast.register import refit_latents
from morphbias_fast.runfolder import ModelFolder, RegisterFolder, RunFolder

sys.path.insert(0, str(Path(__file__).parent))
from paper_discovery_steps import split_steps


def crossfit_train(run: RunFolder, cache: Path, folds: int, ids) -> np.ndarray:
    """Held-out probabilities of participants `ids` (classify/heldout.py), kept in DIR/<run name>/classify_heldout."""
    out = ModelFolder(cache / "classify_heldout")
    if not out.predictions.exists():
        heldout_predictions(run.classify, run.resolve_cohort(), out, folds, seed=0, progress=False)
    return out.read_predictions().set_index("participant_id").loc[ids, "prob"].to_numpy()


def refit_train(run: RunFolder, cache: Path, ids) -> np.ndarray:
    """Latents of participants `ids` with train fitted again, network frozen, as the run fitted val and test
    (register/refit.py), kept in DIR/<run name>/register_refit."""
    out = RegisterFolder(cache / "register_refit")
    if not out.latents.exists():
        info = refit_latents(run.register, load_cohort(run.resolve_cohort()), out, progress=False)
        print(f"{cache.name}: train latents refit in {info['seconds']:.0f} s ({info['steps']} steps)",
              file=sys.stderr, flush=True)
    return out.latents_of(ids).astype(np.float64)


def study(run_dir: Path, cache: Path, folds: int, pcs: list[int], weights: list[float],
          mixture_seeds: list[int]) -> dict:
    run = RunFolder(run_dir)
    meta = json.loads(run.register.metrics.read_text())["config"]
    if meta.get("recipe") != "paper":
        raise SystemExit(f"{run_dir}: not a paper-recipe run (its register recipe is {meta.get('recipe')!r}); "
                         f"our recipe refits the training latents already")
    cache = cache / f"{run_dir.parent.name}_{run_dir.name}"
    cache.mkdir(parents=True, exist_ok=True)
    cohort = load_cohort(run.resolve_cohort(), load_images=False)
    rows = cohort.index("train")
    ids = cohort.ids[rows]
    preds = run.classify.read_predictions().set_index("participant_id").loc[ids]
    y = preds.y_true.to_numpy().astype(int)
    bias = cohort.participants.set_index("participant_id").loc[ids, "bias"].to_numpy().astype(int)
    latents = {"trained": run.register.latents_of(ids).astype(np.float64), "refit": refit_train(run, cache, ids)}
    probs = {"in_sample": preds.prob.to_numpy(), "cross_fitted": crossfit_train(run, cache, folds, ids)}
    out = {"run": str(run_dir), "arch": meta.get("arch"), "folds": folds, "rows": []}
    for lat_name, feats in latents.items():
        for pred_name, prob in probs.items():
            for w in weights:
                for s in mixture_seeds:
                    out["rows"].append({"latents": lat_name, "predictions": pred_name, "mixture_weight": w,
                                        "mixture_seed": s,
                                        "steps": split_steps(feats, y, (prob >= 0.5).astype(int), prob, bias, pcs,
                                                             s, w)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--cache", type=Path, required=True, help="folder for held-out predictions and refit latents")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--pcs", default="4,16")
    ap.add_argument("--mixture-weights", default="10,1")
    ap.add_argument("--mixture-seeds", default="0", help="the mixture's seeds (the recipe uses the run's seed)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.folds < 2:
        ap.error(f"--folds must be at least 2, got {a.folds}")
    pcs = [int(k) for k in a.pcs.split(",")]
    weights = [float(w) for w in a.mixture_weights.split(",")]
    results = []
    for r in a.runs:
        results.append(study(r, a.cache, a.folds, pcs, weights, [int(s) for s in a.mixture_seeds.split(",")]))
        print(json.dumps(results[-1]), flush=True)
        if a.json:  # after each run, so a stopped study keeps what it measured
            write_json(a.json, {"pcs": pcs, "folds": a.folds, "mixture_seeds": a.mixture_seeds, "results": results})


if __name__ == "__main__":
    main()
