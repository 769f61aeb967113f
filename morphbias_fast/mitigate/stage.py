"""The mitigate stage: retrain the classifier from scratch on a re-balanced or augmented train set.

Strategies (METHOD.md sections 4 and 6):
counterfactual  (default, ours) originals weighted so each discovered group counts the same, + every train
                case with its bias flipped: its latent moved across the discovered split, decoded (augment.py)
paper           originals + re-balanced set with 3 latent-noise augmentations each, SMOTE to the original
                size, decoded; both halves weighted equally; checkpoint by val accuracy as in classify
oracle          reweighing with the TRUE bias: w = P(g) P(y) / P(g, y) (needs the cohort's bias column)
groupbal        weights 1 / size of the discovered (subgroup) over the original train set
jtt             Just Train Twice: the biased classifier's train errors up-weighted to the weight of the rest

Every strategy but `paper` picks its checkpoint by accuracy averaged over the discovered val subgroups
(the oracle: over the true val groups), because plain val accuracy rewards the shortcut on a biased val split.
Writes OUT/predictions.csv (classify's columns), OUT/metrics.json, OUT/model.pt and, for the augmenting
strategies, OUT/augmentations.png."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from morphbias_fast.errors import MorphbiasError
from morphbias_fast.io import atomic_path, write_json

STRATEGIES = ("counterfactual", "paper", "oracle", "groupbal", "jtt")
DEFAULT = "counterfactual"


def default_out(run_dir: Path, strategy: str) -> Path:
    return run_dir / "mitigate" if strategy == DEFAULT else run_dir / f"mitigate_{strategy}"


def _balanced_weights(groups: np.ndarray) -> np.ndarray:
    """1 / group size, normalised to mean 1: every group counts the same."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv]
    return w / w.mean()


def oracle_weights(group: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reweighing: w = P(g) P(y) / P(g, y), under which group and label are independent."""
    group, y = np.asarray(group).astype(int), np.asarray(y).astype(int)
    n = len(y)
    pg = np.bincount(group)[group] / n
    py = np.bincount(y)[y] / n
    gy = group * 2 + y
    return pg * py / (np.bincount(gy)[gy] / n)


def _read_subgroups(discover_dir: Path) -> pd.DataFrame:
    path = discover_dir / "subgroups.csv"
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: run `morphbias-fast discover` first")
    return pd.read_csv(path, dtype={"participant_id": str}).set_index("participant_id")


def _save_examples(path: Path, originals: np.ndarray, made: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(6, len(originals), len(made))
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.4), squeeze=False)
    for i in range(n):
        for r, (img, label) in enumerate(((originals[i], "train case"), (made[i], "generated"))):
            sl = img if img.ndim == 2 else img[img.shape[0] // 2]
            axes[r, i].imshow(np.rot90(sl), cmap="gray")
            axes[r, i].set_axis_off()
            axes[r, i].set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run_mitigate(run_dir, strategy: str = DEFAULT, seed: int = 0, discover_dir=None, out_dir=None,
                 cohort_dir=None, epochs: int = 30, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    from morphbias_fast.classify.train import (
        TrainConfig,
        fit,
        predict_proba,
        predictions_frame,
        standardise,
    )
    from morphbias_fast.data import load_cohort
    from morphbias_fast.devices import resolve_device
    from morphbias_fast.discover.stage import read_predictions, resolve_cohort
    from morphbias_fast.evaluation import group_metrics

    run_dir = Path(run_dir)
    if strategy not in STRATEGIES:
        raise MorphbiasError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    out_dir = Path(out_dir) if out_dir is not None else default_out(run_dir, strategy)
    discover_dir = Path(discover_dir) if discover_dir is not None else run_dir / "discover"
    cohort = load_cohort(resolve_cohort(run_dir, cohort_dir))
    tr, va = cohort.index("train"), cohort.index("val")
    y = cohort.labels
    x = standardise(cohort.images)
    weights, val_weight, extra, extra_y, warning = np.ones(len(tr)), None, None, None, None
    sub = None if strategy == "oracle" else _read_subgroups(discover_dir)

    if strategy in ("counterfactual", "paper"):
        from morphbias_fast.mitigate.augment import (
            counterfactual_latents,
            decode_images,
            paper_latents,
        )
        from morphbias_fast.register.stage import load_registration

        model_reg, latents, _ = load_registration(run_dir, device=str(resolve_device(device)))
        import nibabel as nib

        atlas = np.asarray(nib.load(str(run_dir / "register" / "atlas_T1w.nii.gz")).dataobj, dtype=np.float32)
        Z = np.stack([latents[p].cpu().numpy() for p in cohort.ids[tr]])
        s = sub.reindex(cohort.ids[tr])
        if s.subgroup.isna().any():
            raise MorphbiasError(f"{discover_dir / 'subgroups.csv'} does not cover every train participant")
        try:
            if strategy == "paper":
                Zx, extra_y = paper_latents(Z, y[tr], s.selected.to_numpy().astype(bool), len(tr), seed)
            else:
                side = np.select([s.role == "S_B", s.role == "S_NB"], [1, 0], -1)
                Zx, extra_y = counterfactual_latents(Z, y[tr], side)
                # The originals too are weighted so that each discovered group counts the same (groupbal),
                # so both halves of the training set have the bias independent of the label.
                weights = _balanced_weights(s.subgroup.to_numpy())
        except ValueError as exc:
            # Discovery found no usable split (or too small a re-balanced set): nothing to generate from.
            # Retrain on the originals (still with group-balanced checkpoint selection) and say so.
            warning = f"{strategy}: {exc} ({discover_dir / 'subgroups.csv'}); retrained without generated images"
            import click

            click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
            Zx = None
        if Zx is not None:
            # The atlas warped by the decoded field: interpolated once, like the cohort's own images. Warping
            # each case's own image by u' - u (shift_images) interpolates twice, and the classifier then
            # told generated from real by blur and kept the shortcut on real ones (bench/RESULTS.md).
            extra = decode_images(model_reg, atlas, Zx, progress=progress)
            out_dir.mkdir(parents=True, exist_ok=True)
            first = cohort.images[tr][:6] if strategy == "paper" else cohort.images[tr][side >= 0][:6]
            _save_examples(out_dir / "augmentations.png", first, extra[:6],
                           f"{strategy}: train cases (top) and generated images (bottom; "
                           f"{'same case, bias flipped' if strategy == 'counterfactual' else 'not paired'})")
    elif strategy == "oracle":
        if cohort.bias is None:
            raise MorphbiasError(f"--strategy oracle needs a bias column in {cohort.root / 'participants.tsv'}")
        weights = oracle_weights(cohort.bias[tr], y[tr])
        val_weight = _balanced_weights(cohort.bias[va] * 2 + y[va])
    elif strategy == "groupbal":
        weights = _balanced_weights(sub.reindex(cohort.ids[tr]).subgroup.to_numpy())
    elif strategy == "jtt":
        preds = read_predictions(run_dir).set_index("participant_id").reindex(cohort.ids[tr])
        err = (preds.y_pred.to_numpy() != preds.y_true.to_numpy())
        if not err.any():
            raise MorphbiasError("jtt: the biased classifier makes no train errors to up-weight")
        weights = np.where(err, (~err).sum() / err.sum(), 1.0)  # errors weigh as much as all the rest
    if strategy != "paper" and val_weight is None:
        val_weight = _balanced_weights(sub.reindex(cohort.ids[va]).subgroup.to_numpy())

    x_train, y_train = x[tr], y[tr]
    if extra is not None:  # originals and generated images weigh the same in total
        x_train = torch.cat([x_train, standardise(extra)])
        y_train = np.concatenate([y_train, extra_y])
        weights = np.concatenate([weights, np.full(len(extra), len(tr) / len(extra))])
    cfg = TrainConfig(epochs=epochs, seed=seed, device=device)
    model, history = fit(x_train, y_train, x[va], y[va], cfg, sample_weight=weights, progress=progress,
                         val_weight=val_weight)
    prob = predict_proba(model, x, resolve_device(device))
    preds = predictions_frame(cohort, prob)

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "dim": model.dim, "strategy": strategy}, tmp)
    metrics = {"strategy": strategy, "seed": seed, "warning": warning, "train_size": len(y_train), "generated": 0 if extra is None
               else len(extra), "train_config": asdict(cfg), "history": history, "splits": {}}
    for split in ("val", "test"):
        sel = (preds.split == split).to_numpy()
        if sel.any() and cohort.bias is not None:
            metrics["splits"][split] = group_metrics(preds.y_true[sel], preds.y_pred[sel], cohort.bias[sel])
    write_json(out_dir / "metrics.json", metrics)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False, float_format="%.6f")
    return preds
