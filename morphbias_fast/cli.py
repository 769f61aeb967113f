"""The `morphbias-fast` command line: each command builds a stage's Config, calls the stage and prints its
summary. A MorphbiasError anywhere becomes one line on stderr and exit status 1 (CLIGroup)."""
from __future__ import annotations

from pathlib import Path

import click
import torch

import morphbias_fast as mbf
from morphbias_fast import classify, discover, gates, mitigate, pipeline, register
from morphbias_fast.bench import batchnorm as bench_batchnorm
from morphbias_fast.bench import cohort as bench_cohort
from morphbias_fast.bench import discover as bench_discover
from morphbias_fast.bench import encode as bench_encode
from morphbias_fast.bench import factorial as bench_factorial
from morphbias_fast.bench import mitigate as bench_mitigate
from morphbias_fast.bench import paper_tables as bench_paper_tables
from morphbias_fast.bench import prepare as bench_prepare
from morphbias_fast.bench import probe as bench_probe
from morphbias_fast.bench import realistic as bench_realistic
from morphbias_fast.bench import register as bench_register
from morphbias_fast.bench import same_run as bench_same_run
from morphbias_fast.bench import variants as bench_variants
from morphbias_fast.data.appearance import APPEARANCES, SHORTCUTS
from morphbias_fast.data import load_cohort
from morphbias_fast.data.prepare import PrepareConfig, prepare
from morphbias_fast.data.synth import SUBJECT_EFFECTS, SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import write_json
from morphbias_fast.launcher import CLIGroup
from morphbias_fast.ops.hashgrid import cuda_compiled
from morphbias_fast.runfolder import ModelFolder, RunFolder


# Options several commands share, defined once.
def seed_option(f):
    return click.option("--seed", type=int, default=0, show_default=True,
                        help="Random seed: the same seed gives the same result on the CPU at the same torch "
                             "thread count (recorded in metrics.json).")(f)


def device_option(f):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                        help="Where to compute (auto: a GPU when torch sees one).")(f)


def epochs_option(f):
    return click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True,
                        help="Classifier training epochs.")(f)


def cohort_option(f):
    return click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="The cohort RUN_DIR was made from.  [default: RUN_DIR/cohort, else the one "
                             "classify used]")(f)


def appearance_options(f):
    f = click.option("--subject-effect", type=click.Choice(list(SUBJECT_EFFECTS)), default="independent",
                     show_default=True,
                     help="independent: each global subject mode has its own coefficient (the subject effect "
                          "spans as many directions as modes); shared: one scalar times all of them, as SimBA "
                          "draws it (one direction; the cohort of the paper's own experiments).")(f)
    f = click.option("--shortcut", type=click.Choice(list(SHORTCUTS)), default="morphology", show_default=True,
                     help="morphology: the bias enlarges the left putamen; intensity: it brightens the same "
                          "region and moves no tissue (the negative control for deformation features).")(f)
    return click.option("--appearance", type=click.Choice(list(APPEARANCES)), default="template",
                        show_default=True,
                        help="template: subjects are the warped MNI152 T1 itself (noise-free, one contrast); "
                             "mri: warped tissue maps rendered as scans from three sites (contrast, bias "
                             "field, Rician noise, blur) with a larger subject effect (3 mm RMS, 20 modes).")(f)


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True,
                        help="Replace this stage's earlier results in RUN_DIR (without it the command refuses).")(f)


def strict_option(f):
    return click.option("--strict", is_flag=True,
                        help=f"Exit with status {gates.STRICT_EXIT} when a quality gate fires: registration no better "
                             "than identity, a classifier collapsed to one class or (retrained) more than "
                             f"{gates.ACC_DROP} balanced accuracy below the biased one, discovered subgroups under "
                             f"max({gates.TINY_MIN}, {gates.TINY_SHARE:.0%} of the split), a discovered side that "
                             "is the label itself, or a discovered split that does not explain the classifier's val "
                             f"errors (p > {gates.SPLIT_ALPHA}) (thresholds explained in morphbias_fast/gates.py).")(f)


def finish(summary: str, warnings, strict: bool) -> None:
    """Print a stage's summary (its warnings included); with --strict, any warning is a failure."""
    click.echo(summary)
    if strict and warnings:
        click.echo(f"--strict: {len(warnings)} quality warning(s)", err=True)
        raise click.exceptions.Exit(gates.STRICT_EXIT)


def refuse_overwrite(done: bool, where: Path, stage: str, overwrite: bool) -> None:
    """A stage run by hand must not silently replace results it (or `run`) wrote before."""
    if done and not overwrite:
        raise MorphbiasError(f"{where} already has {stage} results: pass --overwrite to replace them")


def atlas_option(f):
    return click.option("--atlas", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        help="Register to this atlas image instead of the cohort's atlas/atlas_T1w.nii.gz; it must "
                             "be on the cohort's grid (as `prepare` makes it).")(f)


def json_option(f):
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Also write the figures to this JSON file.")(f)


@click.group(cls=CLIGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Every command, imported at once: the group the launcher (the `morphbias-fast` entry point, whose help
    users see) takes a command from, and the one tests invoke."""


@main.command()
def info() -> None:
    """Show what this installation was built with and what it can use right now."""
    for key, value in mbf.build_info().items():
        click.echo(f"{key:<24}{value}")
    ok, why = discover.cuml_status()
    click.echo(f"{'discover_backend':<24}{'cuml (' + why + ')' if ok else 'sklearn (cuML not usable: ' + why + ')'}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bias-level", type=float, default=0.9, show_default=True,
              help="P(bias | disease); P(bias | no disease) = 1 - level. 0.5 = unbiased.")
@click.option("--n-train", type=int, default=1000, show_default=True, help="Train subjects (biased).")
@click.option("--n-val", type=int, default=500, show_default=True, help="Validation subjects (biased like train).")
@click.option("--n-test", type=int, default=500, show_default=True,
              help="Test subjects, balanced over (bias, disease).")
@click.option("--dim", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="2 = an axial slice through insula and putamen (fast); 3 = whole volume.")
@click.option("--spacing", type=float, default=2.0, show_default=True, help="Voxel size in mm.")
@appearance_options
@click.option("--site-confound", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="mri: probability that a subject with the bias is scanned at site 0 (0: site independent of "
                   "disease and bias).")
@seed_option
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists and is not empty.")
def synth(out_dir, bias_level, n_train, n_val, n_test, dim, spacing, appearance, shortcut, subject_effect,
          site_confound, seed, overwrite) -> None:
    """Write a synthetic cohort with a known morphological bias to OUT_DIR (BIDS-style).

    Subjects are the MNI152 template (shipped with nilearn) warped by diffeomorphic deformations: a subject
    effect, a disease effect on the right insula and, for cases with the bias, a bias effect on the left
    putamen. OUT_DIR gets participants.tsv, sub-*/anat/*_T1w.nii.gz, the true ITK displacement fields under
    derivatives/synth/, and the atlas under atlas/. With --appearance mri the warped anatomy is rendered as
    scans from three sites (participants.tsv gets a site column).
    """
    cfg = SynthConfig(bias_level=bias_level, n_train=n_train, n_val=n_val, n_test=n_test, dim=int(dim),
                      spacing=spacing, seed=seed, appearance=appearance, shortcut=shortcut,
                      subject_effect=subject_effect, site_confound=site_confound)
    synthesize(out_dir, cfg, overwrite=overwrite)
    click.echo(f"wrote {n_train + n_val + n_test} subjects to {out_dir}")


@main.command("prepare")
@click.argument("bids_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--atlas", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Atlas T1w image to align to.  [default: the MNI152 2009 template at --spacing]")
@click.option("--atlas-mask", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The atlas's brain mask (intensities are normalised inside it).  [default: the template's, or "
                   "the voxels > 0 of --atlas]")
@click.option("--spacing", type=click.FloatRange(0.5, 8), default=2.0, show_default=True,
              help="Voxel size (mm) of the default atlas grid every image is resampled onto.")
@click.option("--mask-desc", default=None,
              help="Apply per-subject brain masks sub-X_desc-<DESC>_mask.nii.gz (beside each T1w) before alignment.")
@click.option("--label-column", default="disease", show_default=True,
              help="The 0/1 column of the dataset's participants.tsv to classify.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists and is not empty.")
def prepare_cmd(bids_dir, out_dir, atlas, atlas_mask, spacing, mask_desc, label_column, overwrite) -> None:
    """Make a cohort from a BIDS dataset: every T1w affinely aligned to the atlas.

    Each T1w (pybids finds them; `pip install '.[bids]'`) is aligned to the atlas with SimpleITK (affine,
    mutual information), resampled onto its grid and divided by its 99th percentile inside the atlas's brain
    mask. OUT_DIR gets participants.tsv, sub-*/anat/*_T1w.nii.gz, atlas/ and each subject's affine under
    derivatives/prepare/ (atlas -> native, an ITK transform file). Skull stripping is out of scope.
    """
    cfg = PrepareConfig(atlas=atlas, atlas_mask=atlas_mask, spacing=spacing, mask_desc=mask_desc)
    out = prepare(bids_dir, out_dir, cfg, label_column=label_column, overwrite=overwrite)
    click.echo(f"wrote a cohort of {len(load_cohort(out, label_column, load_images=False).ids)} subjects to {out}")


@main.command("classify")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@cohort_option
@click.option("--label-column", default="disease", show_default=True, help="0/1 column of participants.tsv.")
@epochs_option
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Images per step.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW learning rate.")
@seed_option
@device_option
@overwrite_option
@strict_option
def classify_cmd(run_dir, cohort_dir, label_column, epochs, batch_size, lr, seed, device, overwrite, strict) -> None:
    """Train the paper's 5-layer CNN on COHORT_DIR's train split (model selection on val) and write
    RUN_DIR/classify/predictions.csv (every split), model.pt and metrics.json (accuracy, and recall/precision
    within cases with and without the bias when the cohort has a bias column)."""
    train = classify.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
    run = RunFolder(run_dir)
    refuse_overwrite(run.done("classify"), run.classify.path, "classify", overwrite)
    res = classify.run(run, classify.Config(run.resolve_cohort(cohort_dir), label_column=label_column, train=train))
    finish(res.summary(), res.warnings, strict)


@main.command("register")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@cohort_option
@click.option("--recipe", type=click.Choice(list(register.RECIPES)), default="ours", show_default=True,
              help="ours: hash grid, uniform voxels, Jacobian regularisers, Adam; paper: the published SIREN "
                   "registration (latent 256, 16,384 coordinates ~ N(0, 0.4) from one subject per step, AdamW lr "
                   "1e-5, weight decay 1, ExponentialLR 0.999, L2 + 0.01 L1(displacement) + beta std(z)) on a "
                   "GPU; on a CPU, where that schedule learns nothing in the budget, 512 coordinates from each of "
                   "32 subjects per step with SIREN lr 1e-4 and latent lr 1e-2 (bench/RESULTS.md). The options "
                   "below override single settings.")
@click.option("--arch", type=click.Choice(["hashgrid", "siren"]), default=None,
              help="hashgrid: our hash-grid encoder + FiLM MLP; siren: the paper's SIREN 4x256 with FiLM.  "
                   "[default: the recipe's]")
@click.option("--time-budget", type=float, default=240.0, show_default=True,
              help="Wall-clock seconds for the stage; the last quarter goes to fitting every subject's latent.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Training steps (reproducible; the time budget still caps the run unless --time-budget 0).")
@click.option("--fit-steps", type=click.IntRange(min=1), default=300, show_default=True,
              help="Latent-fitting steps (every subject, the network frozen; the learning rate decays to 0 over "
                   "them). With a time budget, as many as fit in its last quarter, at most this many.")
@click.option("--batch-subjects", type=click.IntRange(min=1), default=None,
              help="Subjects per training step.  [default: the recipe's: 32 ours, paper 1 on a GPU, 32 on a CPU]")
@click.option("--points", type=click.IntRange(min=1), default=None,
              help="Sampled points per subject and step.  [default: the recipe's: 256 ours, paper 16384 on a GPU, "
                   "512 on a CPU]")
@click.option("--similarity", type=click.Choice(["auto", "mse", "ncc", "lncc"]), default=None,
              help="Image similarity: mse (mean squared error), ncc (global normalised cross-correlation), lncc "
                   "(local NCC over (2r+1)^D windows, --lncc-radius r: robust to contrast, gain and bias field). "
                   "auto: mse for template cohorts (the atlas is the generator), lncc for mri cohorts and real scans.  "
                   "[default: ours auto, paper mse]")
@click.option("--lncc-radius", type=click.IntRange(min=1), default=None,
              help="lncc window radius in voxels (a side of 2r+1).  [default: 2]")
@click.option("--denoise", type=click.Choice(["none", "curvature"]), default=None,
              help="curvature: denoise the scans before registration with edge-preserving curvature anisotropic "
                   "diffusion (SimpleITK; registration only, the classifier sees the scans as they are). On a "
                   "synthetic mri cohort it raised the bias carried by the latents but not detection "
                   "(bench/RESULTS.md).  [default: none]")
@seed_option
@device_option
@atlas_option
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint in RUN_DIR/register.")
@overwrite_option
@strict_option
def register_cmd(run_dir, cohort_dir, recipe, arch, time_budget, steps, fit_steps, batch_subjects, points,
                 similarity, lncc_radius, denoise, seed, device, atlas, resume, overwrite, strict) -> None:
    """Register every image of COHORT_DIR to its atlas with one generalizable INR and a latent per subject.

    Trains on the train split, then fits every subject's latent (train, val and test alike) with the network
    frozen. Writes
    RUN_DIR/register/latents.npz (participant_id, split, z), model.pt and metrics.json (per split: image MSE,
    endpoint error against the true displacement when the cohort has it, folded voxels, seconds, steps).
    A checkpoint is written every two minutes and on Ctrl-C; --resume continues from it.

    Several processes: `torchrun --nproc_per_node=N -m morphbias_fast register RUN_DIR ...` shards subjects over the
    processes (gloo on CPU, NCCL on GPU); the result equals the one-process run up to floating-point noise.
    """
    given = {k: v for k, v in dict(arch=arch, batch_subjects=batch_subjects, points=points,
                                   similarity=similarity, lncc_radius=lncc_radius,
                                   denoise=denoise).items() if v is not None}
    inr = register.INRConfig.for_recipe(recipe, steps=steps, time_budget=time_budget or None, fit_steps=fit_steps,
                                        seed=seed, device=device, **given)
    run = RunFolder(run_dir)
    if not resume:
        refuse_overwrite(run.done("register"), run.register.path, "register", overwrite)
        if run.register.checkpoints() and not overwrite:
            raise MorphbiasError(f"{run.register.path} has the checkpoint of an interrupted run: --resume continues "
                                 f"it, --overwrite starts again and deletes it")
    res = register.run(run, register.Config(run.resolve_cohort(cohort_dir), inr, resume=resume, atlas=atlas))
    if res.metrics:  # empty on ranks > 0 of a torchrun job
        finish(res.summary(), res.warnings, strict)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subject", required=True, help="participant_id, e.g. sub-0001.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (made if missing): SUBJECT_desc-displacement_xfm.nii.gz, the field in "
                   "ITK's convention (LPS mm, vector NIfTI).")
@click.option("--warped", is_flag=True,
              help="Also write SUBJECT_desc-warped_T1w.nii.gz: the atlas warped by the field (the model's picture "
                   "of the subject).")
@click.option("--h5", is_flag=True,
              help="Also write SUBJECT_desc-displacement_xfm.h5, the field as an ITK transform file "
                   "(sitk.ReadTransform, antsApplyTransforms).")
def decode(run_dir, subject, out_dir, warped, h5) -> None:
    """Decode one subject's latent into its displacement field, usable by SimpleITK/ANTs as a
    DisplacementFieldTransform: subject(x) = atlas(x + u(x))."""
    written = register.decode_subject(RunFolder(run_dir).register, subject, out_dir, warped=warped, h5=h5)
    click.echo("wrote " + ", ".join(str(w) for w in written))


@main.command("discover")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--features", type=click.Choice(list(discover.FEATURES)), default="inr", show_default=True,
              help="; ".join(f"{k}: {v.help}" for k, v in discover.FEATURES.items()) + ".")
@click.option("--clip-model", default=None,
              help="For --features clip: a local CLIP model folder or an already-downloaded Hugging Face hub id "
                   "(e.g. openai/clip-vit-base-patch32 in the local cache); nothing is downloaded.")
@click.option("--method", type=click.Choice(list(discover.METHODS)), default="shortcut", show_default=True,
              help="shortcut: the direction the classifier uses beyond the label, split in two (ours, measured "
                   "better, bench/RESULTS.md); paper: error-aware mixture, K=7 on PCA(features, 4), knee rule.")
@click.option("--mixture-weight", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="--method paper: weight of the label and probability terms in the mixture's likelihood (the "
                   "paper does not say; Domino's slicer uses 1, its discover 10).")
@click.option("--mixture-init", type=click.Choice(list(discover.MIXTURE_INITS)), default="kmeans",
              show_default=True,
              help="--method paper: the mixture's start: kmeans (k-means++ on the features) or confusion "
                   "(each point in the components of its confusion-matrix cell), Domino's two options.")
@click.option("--backend", type=click.Choice(list(discover.BACKENDS)), default="auto", show_default=True,
              help="PCA and logistic regression on the GPU with cuML (auto: when it imports).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder.  [default: RUN_DIR/discover]")
@cohort_option
@seed_option
@device_option
@overwrite_option
@strict_option
def discover_cmd(run_dir, features, clip_model, method, mixture_weight, mixture_init, backend, out_dir, cohort_dir,
                 seed, device, overwrite, strict) -> None:
    """Find the subgroups where RUN_DIR's classifier fails, on train and on val separately.

    Needs RUN_DIR/classify (and RUN_DIR/register for --features inr). Writes subgroups.csv
    (participant_id, split, subgroup, selected, role) and summary.json (per subgroup: size, dTPR, FPR/FNR
    ratio; with a synthetic cohort also the bias and disease shares, and the precision and recall of the
    re-balanced set and the AMI against the four true groups).
    """
    if method != "paper" and (mixture_weight != 10.0 or mixture_init != "kmeans"):
        raise click.UsageError("--mixture-weight and --mixture-init belong to --method paper")
    cfg = discover.Config(features=features, method=method, backend=backend, out=out_dir, seed=seed,
                          cohort=cohort_dir, device=device, clip_model=clip_model, mixture_weight=mixture_weight,
                          mixture_init=mixture_init)
    files = RunFolder(run_dir, discover_dir=out_dir).discover
    refuse_overwrite(files.summary.exists(), files.path, "discover", overwrite)
    res = discover.run(RunFolder(run_dir), cfg)
    finish(res.summary(), res.warnings, strict)


@main.command("mitigate")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--strategy", type=click.Choice(list(mitigate.STRATEGIES)), default=mitigate.DEFAULT,
              show_default=True, help="; ".join(f"{k}: {v.help}" for k, v in mitigate.STRATEGIES.items()) + ".")
@click.option("--discover-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where discover wrote subgroups.csv.  [default: RUN_DIR/discover]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"[default: RUN_DIR/mitigate for {mitigate.DEFAULT}, RUN_DIR/mitigate_STRATEGY otherwise]")
@cohort_option
@epochs_option
@seed_option
@device_option
@overwrite_option
@strict_option
def mitigate_cmd(run_dir, strategy, discover_dir, out_dir, cohort_dir, epochs, seed, device, overwrite,
                 strict) -> None:
    """Retrain RUN_DIR's classifier from scratch so that it stops using the discovered shortcut.

    Writes predictions.csv (same columns as classify), metrics.json (accuracy, recall and precision in B and
    NB on val and test when the cohort has a bias column), model.pt and, for the strategies that generate
    images, augmentations.png (train cases and generated images).
    """
    cfg = mitigate.Config(strategy=strategy, seed=seed, epochs=epochs, device=device, cohort=cohort_dir,
                          out=out_dir)
    run = RunFolder(run_dir, discover_dir=discover_dir)
    folder = ModelFolder(out_dir) if out_dir is not None else run.mitigate(strategy)
    refuse_overwrite(folder.predictions.exists(), folder.path, f"mitigate ({strategy})", overwrite)
    res = mitigate.run(run, cfg)
    finish(res.summary(), res.warnings, strict)


def _baselines(value: str) -> tuple[str, ...]:
    names = tuple(b for b in value.split(",") if b)
    choices = [s for s in mitigate.STRATEGIES if s != mitigate.DEFAULT]
    bad = [b for b in names if b not in choices]
    if bad:
        raise click.BadParameter(f"unknown baseline {bad[0]!r} (choose from {', '.join(choices)})",
                                 param_hint="--baselines")
    return names


@main.command(name="run")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: every stage writes a subfolder; metrics.json and report.html at the top.")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Your cohort (BIDS-style, with the atlas under atlas/).  [default: a synthetic cohort made in "
                   "OUT/cohort with the options below]")
@click.option("--bias-level", type=float, default=0.9, show_default=True,
              help="For the synthetic cohort: P(bias | disease).")
@click.option("--dim", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="For the synthetic cohort: 2 = an axial slice (fast); 3 = whole volume.")
@click.option("--n-train", type=click.IntRange(min=4), default=1000, show_default=True,
              help="For the synthetic cohort: train subjects (e.g. 100 with --n-val 50 --n-test 52 for a smoke run).")
@click.option("--n-val", type=click.IntRange(min=4), default=500, show_default=True,
              help="For the synthetic cohort: validation subjects.")
@click.option("--n-test", type=click.IntRange(min=4), default=500, show_default=True,
              help="For the synthetic cohort: test subjects (balanced over bias and disease).")
@appearance_options
@epochs_option
@device_option
@seed_option
@click.option("--seeds", default=None, help="Comma-separated seeds (e.g. 0,1,2,3,4): one run each under "
                                           "OUT/seed_K, and mean +- std at the top.")
@click.option("--baselines", default="", show_default=True,
              help="Also run these mitigation strategies for comparison: any of "
                   + ",".join(s for s in mitigate.STRATEGIES if s != mitigate.DEFAULT)
                   + " (each retrains the classifier, ~2-5 min on 2 cores).")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=240.0, show_default=True,
              help="Seconds for the registration stage (as `register --time-budget`).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Registration training steps instead of the time budget (reproducible across machines).")
@atlas_option
@click.option("--recipe", type=click.Choice(list(pipeline.RECIPES)), default="ours", show_default=True,
              help="ours: hash-grid latents, shortcut discovery, counterfactual images; paper: the published "
                   "method (SIREN latents, the error-aware mixture with the knee rules, latent noise + SMOTE; the "
                   "SIREN trains on the published schedule on a GPU, on `register --recipe paper`'s CPU schedule "
                   "on a CPU). "
                   "--arch, --discovery and --mitigation override one part each (the factorial table).")
@click.option("--arch", type=click.Choice(["hashgrid", "siren"]), default=None,
              help="Representation: hashgrid (ours) or siren (the paper's).  [default: the recipe's]")
@click.option("--discovery", type=click.Choice(["ours", "paper"]), default=None,
              help="Discovery: ours (the shortcut direction) or paper (error-aware mixture).  [default: the recipe's]")
@click.option("--mitigation", type=click.Choice(["ours", "paper"]), default=None,
              help="Mitigation of the 'mitigated' row: ours (counterfactual) or paper (noise + SMOTE).  "
                   "[default: the recipe's]")
@strict_option
def run_cmd(out_dir, cohort_dir, bias_level, dim, n_train, n_val, n_test, appearance, shortcut, subject_effect,
            epochs, device, seed, seeds, baselines, time_budget, steps, atlas, recipe, arch, discovery, mitigation,
            strict) -> None:
    """The whole pipeline in one command: synth (without --cohort) -> classify -> register -> discover ->
    mitigate -> unbiased reference -> report.

    A stage whose output exists is skipped, so rerunning the same command resumes. With a synthetic cohort
    the unbiased reference (a classifier trained at bias 0.5) is trained too. OUT/metrics.json holds the
    paper's table on the test split (acc, recall and precision in cases with (B) and without (NB) the bias)
    and the gap closed; OUT/report.html shows it with the figures.
    """
    names = _baselines(baselines)
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers",
                                 param_hint="--seeds") from None
    settings = pipeline.Settings(cohort=cohort_dir, bias_level=bias_level, dim=int(dim), appearance=appearance,
                                 shortcut=shortcut, subject_effect=subject_effect, n_train=n_train, n_val=n_val,
                                 n_test=n_test, baselines=names,
                                 time_budget=time_budget, steps=steps, epochs=epochs, device=device, atlas=atlas,
                                 **pipeline.recipe_parts(recipe, arch, discovery, mitigation))
    res = pipeline.run_pipeline(out_dir, settings, seed_list, seed_folders=seeds is not None)
    finish(res.summary(), res.warnings, strict)


@main.group(cls=CLIGroup)
def bench() -> None:
    """Benchmarks: our kernels against the alternative a user would pick, in the same run; and the tables
    behind bench/RESULTS.md from finished runs."""


@bench.command("encode")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to run both implementations.")
@click.option("--dims", type=click.IntRange(2, 3), default=3, show_default=True, help="Input dimensions D.")
@click.option("--n", "n", type=click.IntRange(min=1), default=2**18, show_default=True, help="Query points.")
@click.option("--log2-hashmap-size", type=click.IntRange(10, 24), default=19, show_default=True,
              help="Entries per hashed level (2^19 is tiny-cuda-nn's default; 2^15 stays in cache).")
@click.option("--levels", type=click.IntRange(1, 32), default=16, show_default=True, help="Levels L.")
@click.option("--features", type=click.Choice(["1", "2", "4", "8"]), default="2", show_default=True,
              help="Features per level F.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed repetitions after one warm-up; the median is reported.")
@click.option("--no-reference", is_flag=True, help="Skip the (slow) pure-PyTorch reference.")
@json_option
def bench_encode_cmd(device, dims, n, log2_hashmap_size, levels, features, repeats, no_reference,
                     json_path) -> None:
    """Million queries/s of the hash-grid encoder: forward, forward+backward and the Jacobian path,
    ours against the pure-PyTorch reference (and tiny-cuda-nn when it imports), with ratios."""
    if device == "cuda" and not (torch.cuda.is_available() and cuda_compiled()):
        raise click.UsageError("--device cuda needs a GPU visible to torch and a build with CUDA kernels "
                               "(see `morphbias-fast info`)")
    res = bench_encode.run(device=device, dims=dims, n=n, log2_hashmap_size=log2_hashmap_size, n_levels=levels,
                           n_features_per_level=int(features), repeats=repeats, reference=not no_reference,
                           progress=lambda msg: click.echo(f"  timing {msg} ...", err=True))
    click.echo(bench_encode.format_table(res))
    if json_path:
        write_json(json_path, bench_encode.to_json(res))
        click.echo(f"wrote {json_path}")


@bench.command("cohort")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--appearance", type=click.Choice(list(APPEARANCES)), default="mri", show_default=True,
              help="The cohort kind to time and check.")
@seed_option
@click.option("--check", type=click.IntRange(min=1), default=None,
              help="Check only the first N subjects with SimpleITK.  [default: all]")
@json_option
def bench_cohort_cmd(out_dir, appearance, seed, check, json_path) -> None:
    """Time `synth` at the default size into OUT_DIR/cohort, check every subject's stored field with SimpleITK
    (its warped tissue maps against ours), and draw OUT_DIR/sites.png (the atlas and one subject per site)."""
    res = bench_cohort.run(out_dir, appearance, seed=seed, check=check)
    click.echo(f"synth {res['subjects']} subjects ({appearance}): {res['synth_seconds']:.1f} s; SimpleITK tissue "
               f"maps r min {res['tissue_r_min']:.4f}, mean {res['tissue_r_mean']:.4f} over "
               f"{res['subjects_checked']}; figure {res['figure']}")
    for kind, v in res["similarity_optimum"].items():
        click.echo(f"{kind}: optimum at the true field for {v['share_best_at_truth']:.0%} of {v['subjects']} subjects "
                   f"(mean best scale {v['mean_best_scale']:.2f} of {res['scales']})")
    if json_path:
        write_json(json_path, res)


@bench.command("prepare")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=4), default=12, show_default=True, help="Subjects to make.")
@click.option("--spacing", type=click.FloatRange(0.5, 8), default=2.0, show_default=True,
              help="Atlas grid (mm) prepare aligns to.")
@json_option
def bench_prepare_cmd(out_dir, n, spacing, json_path) -> None:
    """Make a real-style BIDS dataset from MNI152 with known random affines and intensity scales in
    OUT_DIR/raw, run `prepare` into OUT_DIR/cohort, and measure how far each recovered affine is from the
    applied one (mean mm over the brain, residual rotation in degrees)."""
    res = bench_prepare.run(out_dir, n, spacing)
    click.echo(f"prepare {n} subjects: {res['prepare_seconds']:.1f} s; worst subject: mean distance "
               f"{res['mean_mm_max']:.2f} mm, residual rotation {res['angle_deg_max']:.2f} degrees")
    if json_path:
        write_json(json_path, res)


@bench.command("register")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cohort to register (default: a new 200-subject synthetic cohort in a temporary folder).")
@click.option("--hashgrid-budget", type=float, default=30.0, show_default=True, help="Seconds for the hash grid.")
@click.option("--siren-budget", type=float, default=300.0, show_default=True, help="Seconds for SIREN.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to train both architectures.")
@json_option
def bench_register_cmd(cohort_dir, hashgrid_budget, siren_budget, device, json_path) -> None:
    """Training-subject endpoint error reached by the hash-grid INR and by SIREN within their budgets
    (same cohort, loss, batches and seed), and steps per second of each."""
    res = bench_register.run(cohort_dir, {"hashgrid": hashgrid_budget, "siren": siren_budget}, device=device,
                             progress=lambda msg: click.echo(f"  {msg} ...", err=True))
    click.echo(bench_register.format_table(res))
    if json_path:
        write_json(json_path, res)
        click.echo(f"wrote {json_path}")


@bench.command("discover")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Discovery seeds 0..N-1.")
@click.option("--features", default="inr,pca,embedding", show_default=True, help="Comma-separated feature kinds.")
@click.option("--methods", default="shortcut,paper", show_default=True, help="Comma-separated methods.")
@json_option
def bench_discover_cmd(runs, seeds, features, methods, json_path) -> None:
    """Detection scores (precision, recall, AMI of the re-balanced set) on finished runs of synthetic
    cohorts, per feature kind, method and seed, and the seconds discovery takes."""
    res = bench_discover.run(list(runs), seeds, features.split(","), methods.split(","), echo=click.echo)
    if json_path:
        write_json(json_path, res)


@bench.command("probe")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--features", default="inr,pca,embedding", show_default=True,
              help="Comma-separated feature kinds (as discover --features; autoencoder trains one, minutes).")
@seed_option
@json_option
def bench_probe_cmd(runs, features, seed, json_path) -> None:
    """How much of the true bias each representation carries: 5-fold cross-validated AUC of a linear probe
    for the bias on the train split, overall and within each disease class (synthetic cohorts; classify and
    register done). When detection fails, this says whether the features or the discovery are at fault."""
    res = bench_probe.run(list(runs), features.split(","), seed=seed, echo=click.echo)
    if json_path:
        write_json(json_path, res)


@bench.command("realistic")
@click.argument("archives", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@json_option
def bench_realistic_cmd(archives, json_path) -> None:
    """The realistic-cohort study's table from archive folders that bench/queue/mri_line.sh filled (one bias
    level and shortcut each, e.g. bench/results/archive/m09): per seed and as mean, min and max over the
    seeds, the registration's endpoint error and folds, the shortcut of the biased and unbiased classifiers,
    detection and the bias probe per feature kind (INR latents, intensity PCA, autoencoder) and the WGA gap
    closed, each against its target where one applies (none for the intensity-shortcut control)."""
    res = bench_realistic.run(list(archives), echo=click.echo)
    if json_path:
        write_json(json_path, res)


@bench.command("mitigate")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also keep each finished seed's table as ARCHIVE/FOLDER/seed_K.json; such a folder is "
                   "tabled like the run folder, so seeds run in several sessions make one table.")
@json_option
def bench_mitigate_cmd(runs, archive, json_path) -> None:
    """The paper's table and the gap closed of every model in finished run folders (a `--seeds` folder:
    every finished seed, then mean +- std and the gap closed of the seed means). RUNS may also be archive
    folders (see --archive); several folders end with one table of every folder and bias level."""
    res = bench_mitigate.run(list(runs), echo=click.echo, archive=archive)
    if json_path:
        write_json(json_path, res)


@bench.command("paper-tables")
@click.option("--ours-09", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A finished `run --seeds ...` folder (or its archive) at bias 0.9: our row, and the biased "
                   "and unbiased classifiers.")
@click.option("--paper-09", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A finished `run --recipe paper --seeds ...` folder (or archive) on the same cohorts at 0.9.")
@click.option("--ours-07", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="As --ours-09, at bias 0.7.")
@click.option("--paper-07", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="As --paper-09, at 0.7; its paper_rebalance, paper_augment and paper_smote rows (`bench "
                   "variants`) make the ablation.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the three tables as one standalone HTML page.")
@json_option
def bench_paper_tables_cmd(ours_09, paper_09, ours_07, paper_07, html_path, json_path) -> None:
    """The paper's Tables 1-3 (bias 0.9, bias 0.7, its ablation at 0.7) with its published means beside the
    same rows measured here, mean +- std over seeds, and the ablation as paired steps (each step's recall NB
    minus the row it adds to, per seed). Any folder may be left out: its rows are then missing."""
    res = bench_paper_tables.run(ours_09, paper_09, ours_07, paper_07)
    click.echo(bench_paper_tables.format_tables(res))
    if json_path:
        write_json(json_path, res)
    if html_path:
        bench_paper_tables.write_html(html_path, res)


@bench.command("batchnorm")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--weights", type=click.Choice(["groupbal", "none"]), default="groupbal", show_default=True,
              help="Train weights: the discovered groups balanced, or none.")
@epochs_option
@seed_option
@json_option
def bench_batchnorm_cmd(run_dir, weights, epochs, seed, json_path) -> None:
    """Validation accuracy and test recall NB per epoch with running vs recomputed BatchNorm statistics
    (why classify recomputes them before validating)."""
    rows = bench_batchnorm.run(run_dir, weights=weights, epochs=epochs, seed=seed, echo=click.echo)
    if json_path:
        write_json(json_path, {"run": str(run_dir), "weights": weights, "epochs": rows})


@bench.command("variants")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--variant", required=True, type=click.Choice([*bench_variants.VARIANTS,
                                                           *bench_variants.DISCOVERY_VARIANTS,
                                                           *bench_variants.REFIT_VARIANTS]),
              help="Which variant of the default strategy to train beside it (see `morphbias-fast bench variants "
                   "--help`).")
def bench_variants_cmd(runs, variant) -> None:
    """Train a variant of the default strategy in every finished seed folder of RUNS (as mitigate_VARIANT) and
    re-make each seed's report, so the variant is a row beside the default; table them with `bench mitigate`.
    Variants use only val data and discovered groups; choose between them on the val_disc_* columns.

    \b
    counterfactual_worst    the epoch kept by the worst discovered val group
    counterfactual_uniform  the generated copies weighted uniformly (the default before item 5)
    counterfactual_transport  each copy is the case's own image moved to the new anatomy (for real scans)
    paper_w{1,10}_{kmeans,confusion}  the paper's discovery with that mixture weight and start (into
                            discover_VARIANT), then the paper's mitigation: the settings the paper leaves open
    paper_rebalance, paper_augment, paper_smote  the paper's ablation (its Table 3): the re-balanced set
                            alone, + latent-noise copies without SMOTE, + SMOTE without noise copies
    paper_disc_checkpoint   the paper's plan, the epoch kept by the discovered val groups (our rule)
    paper_refit_w{1,10}     the paper's recipe with its training latents fitted again, network frozen (into
                            register_refit), as val's are, at that mixture weight
    paper_refit_heldout_w{1,10}  the same, its discovery reading held-out (5-fold) train predictions
                            (classify_heldout); a _checkpoint suffix: either with our checkpoint rule"""
    bench_variants.run(list(runs), variant)


@bench.command("factorial")
@click.argument("hashgrid_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("siren_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the eight combinations (OUT/<arch>-<discovery>-<mitigation>/seed_K).")
@click.option("--seeds", default="0,1,2,3,4", show_default=True,
              help="Comma-separated seeds; both runs must have finished these seed folders.")
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also keep each combination's finished seeds as ARCHIVE/<combination>/seed_K.json, and take the "
                   "effects over every seed archived there: seeds run in several sessions make one table.")
@epochs_option
@device_option
@json_option
def bench_factorial_cmd(hashgrid_run, siren_run, out_dir, seeds, archive, epochs, device, json_path) -> None:
    """Representation x discovery x mitigation, ours or the paper's: how much of the difference each part
    brings. HASHGRID_RUN is a finished `run --seeds ...` folder, SIREN_RUN a finished `run --recipe paper
    --seeds ...` folder on the same cohorts (same seeds and bias level). Each combination reuses its source's
    classifier, registration and unbiased reference and runs only discovery and mitigation (minutes a seed);
    rerunning resumes. Prints each part's main effect (ours minus the paper's, averaged over the other two
    parts) on the mitigated row's recall NB, WGA, WGA gap closed, shortcut effect and cf sensitivity, with the 95%
    t-interval over seeds."""
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers",
                                 param_hint="--seeds") from None
    res = bench_factorial.run(hashgrid_run, siren_run, out_dir, seed_list, epochs=epochs, device=device,
                              echo=click.echo, archive=archive)
    click.echo(bench_factorial.format_effects(res))
    if json_path:
        write_json(json_path, res)


@bench.command("same-run")
@click.argument("run_a", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("run_b", type=click.Path(file_okay=False, exists=True, path_type=Path))
@json_option
def bench_same_run_cmd(run_a, run_b, json_path) -> None:
    """Whether two finished runs give the same result: every number of metrics.json, and the predictions,
    latents and subgroups files (exit status 1 when they differ)."""
    res = bench_same_run.compare(RunFolder(run_a), RunFolder(run_b))
    if json_path:
        write_json(json_path, res)
    for d in res["metrics_differences"]:
        click.echo(d)
    for name, same in res["files_equal"].items():
        click.echo(f"{name:<34}{'-' if same is None else 'equal' if same else 'DIFFERENT'}")
    click.echo(f"{res['numbers_compared']} numbers in metrics.json compared: "
               + ("identical" if res["same"] else f"{len(res['metrics_differences'])} differ"))
    if not res["same"]:
        raise click.exceptions.Exit(1)
