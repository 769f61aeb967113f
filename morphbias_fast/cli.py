"""The `morphbias-fast` command line: a thin click layer over the package's entry points."""
from __future__ import annotations

from pathlib import Path

import click

from morphbias_fast.io import write_json


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="morphbias-fast")
def main() -> None:
    """morphbias-fast: find and remove morphological bias in medical-image classifiers.

    Registers every image to an atlas with one hash-grid implicit neural representation, uses each
    subject's latent code to find the subgroups where a classifier fails, and retrains on a re-balanced,
    INR-augmented set. The compiled kernels run on the CPU everywhere and on CUDA GPUs when built with nvcc.
    """


@main.command()
def info() -> None:
    """Show what this installation was built with and what it can use right now."""
    import morphbias_fast as mbf
    from morphbias_fast.discover.backends import cuml_status

    for key, value in mbf.build_info().items():
        click.echo(f"{key:<24}{value}")
    ok, why = cuml_status()
    click.echo(f"{'discover_backend':<24}{'cuml (' + why + ')' if ok else 'sklearn (cuML not usable: ' + why + ')'}")


def _fail(exc: Exception):
    """A MorphbiasError becomes a one-line message and exit status 1 (no traceback)."""
    raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bias-level", type=float, default=0.9, show_default=True,
              help="P(bias | disease); P(bias | no disease) = 1 - level. 0.5 = unbiased.")
@click.option("--n-train", type=int, default=1000, show_default=True)
@click.option("--n-val", type=int, default=500, show_default=True)
@click.option("--n-test", type=int, default=500, show_default=True, help="Balanced over (bias, disease).")
@click.option("--dim", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="2 = an axial slice through insula and putamen (fast); 3 = whole volume.")
@click.option("--spacing", type=float, default=2.0, show_default=True, help="Voxel size in mm.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists and is not empty.")
def synth(out_dir, bias_level, n_train, n_val, n_test, dim, spacing, seed, overwrite) -> None:
    """Write a synthetic cohort with a known morphological bias to OUT_DIR (BIDS-style).

    Subjects are the MNI152 template (shipped with nilearn) warped by diffeomorphic deformations: a subject
    effect, a disease effect on the right insula and, for cases with the bias, a bias effect on the left
    putamen. OUT_DIR gets participants.tsv, sub-*/anat/*_T1w.nii.gz, the true ITK displacement fields under
    derivatives/synth/, and the atlas under atlas/.
    """
    from morphbias_fast.data.synth import SynthConfig, synthesize
    from morphbias_fast.errors import MorphbiasError

    try:
        cfg = SynthConfig(bias_level=bias_level, n_train=n_train, n_val=n_val, n_test=n_test, dim=int(dim),
                          spacing=spacing, seed=seed)
        synthesize(out_dir, cfg, overwrite=overwrite)
    except MorphbiasError as exc:
        _fail(exc)
    click.echo(f"wrote {n_train + n_val + n_test} subjects to {out_dir}")


@main.command()
@click.argument("cohort_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label-column", default="disease", show_default=True, help="0/1 column of participants.tsv.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def classify(cohort_dir, run_dir, label_column, epochs, batch_size, lr, seed, device) -> None:
    """Train the paper's 5-layer CNN on COHORT_DIR's train split (model selection on val) and write
    RUN_DIR/classify/predictions.csv (every split), model.pt and metrics.json (accuracy, and recall/precision
    within cases with and without the bias when the cohort has a bias column)."""
    from morphbias_fast.classify import TrainConfig, run_classify
    from morphbias_fast.errors import MorphbiasError

    try:
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
        preds = run_classify(cohort_dir, run_dir, label_column=label_column, cfg=cfg)
    except MorphbiasError as exc:
        _fail(exc)
    test = preds[preds.split == "test"]
    if len(test):
        click.echo(f"test accuracy {(test.y_pred == test.y_true).mean():.3f} ({len(test)} participants); "
                   f"details in {run_dir}/classify/metrics.json")


@main.command()
@click.argument("cohort_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["hashgrid", "siren"]), default="hashgrid", show_default=True,
              help="hashgrid: our hash-grid encoder + FiLM MLP; siren: the paper's SIREN 4x256.")
@click.option("--time-budget", type=float, default=240.0, show_default=True,
              help="Wall-clock seconds for the stage; a quarter goes to fitting val/test latents.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Training steps (reproducible; the time budget still caps the run unless --time-budget 0).")
@click.option("--fit-steps", type=click.IntRange(min=0), default=300, show_default=True,
              help="Latent-fitting steps for val/test subjects (cut short by the time budget).")
@click.option("--batch-subjects", type=click.IntRange(min=1), default=32, show_default=True,
              help="Subjects per training step.")
@click.option("--points", type=click.IntRange(min=1), default=256, show_default=True,
              help="Sampled voxels per subject and step.")
@click.option("--similarity", type=click.Choice(["mse", "ncc"]), default="mse", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from RUN_DIR/register/train_state.pt.")
def register(cohort_dir, run_dir, arch, time_budget, steps, fit_steps, batch_subjects, points, similarity, seed,
             device, resume) -> None:
    """Register every image of COHORT_DIR to its atlas with one generalizable INR and a latent per subject.

    Trains on the train split, then fits latents of val/test subjects with the network frozen. Writes
    RUN_DIR/register/latents.npz (participant_id, split, z), model.pt and metrics.json (per split: image MSE,
    endpoint error against the true displacement when the cohort has it, folded voxels, seconds, steps).
    A checkpoint is written every two minutes and on Ctrl-C; --resume continues from it.

    Several processes: `torchrun --nproc_per_node=N -m morphbias_fast register ...` shards subjects over the
    processes (gloo on CPU, NCCL on GPU); the result equals the one-process run up to floating-point noise.
    """
    from morphbias_fast.errors import MorphbiasError
    from morphbias_fast.register import RegisterConfig, run_register

    try:
        cfg = RegisterConfig(arch=arch, steps=steps, time_budget=time_budget or None, fit_steps=fit_steps,
                             batch_subjects=batch_subjects, points=points, similarity=similarity, seed=seed,
                             device=device)
        metrics = run_register(cohort_dir, run_dir, cfg, resume=resume)
    except MorphbiasError as exc:
        _fail(exc)
    for split, m in metrics.get("splits", {}).items():  # empty on ranks > 0 of a torchrun job
        epe = f", endpoint error {m['epe_mm']:.2f} mm ({100 * m['epe_ratio']:.0f}% of the true displacement)" \
            if "epe_mm" in m else ""
        click.echo(f"{split}: image MSE {m['image_mse']:.2e}{epe}, max folded share {m['folded_fraction_max']:.2%}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subject", required=True, help="participant_id, e.g. sub-0001.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Displacement field to write (ITK convention: LPS mm, vector NIfTI).")
@click.option("--warped", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the atlas warped by the field (the model's picture of the subject).")
def decode(run_dir, subject, out, warped) -> None:
    """Decode one subject's latent into its displacement field, usable by SimpleITK/ANTs as a
    DisplacementFieldTransform: subject(x) = atlas(x + u(x))."""
    from morphbias_fast.errors import MorphbiasError
    from morphbias_fast.register.decode import decode_subject

    try:
        decode_subject(run_dir, subject, out, warped)
    except MorphbiasError as exc:
        _fail(exc)
    click.echo(f"wrote {out}" + (f" and {warped}" if warped else ""))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--features", type=click.Choice(["inr", "pca", "embedding", "clip"]), default="inr",
              show_default=True,
              help="inr: registration latents; pca: intensity PCA of the images; embedding: the classifier's "
                   "penultimate layer; clip: a CLIP image encoder (needs --clip-model and `pip install .[clip]`).")
@click.option("--clip-model", default=None,
              help="For --features clip: a local CLIP model folder or an already-downloaded Hugging Face hub id "
                   "(e.g. openai/clip-vit-base-patch32 in the local cache); nothing is downloaded.")
@click.option("--method", type=click.Choice(["shortcut", "paper"]), default="shortcut", show_default=True,
              help="shortcut: the direction the classifier uses beyond the label, split in two (ours, measured "
                   "better, bench/RESULTS.md); paper: error-aware mixture, K=7 on PCA(features, 4), knee rule.")
@click.option("--backend", type=click.Choice(["auto", "cuml", "sklearn"]), default="auto", show_default=True,
              help="PCA and logistic regression on the GPU with cuML (auto: when it imports).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder.  [default: RUN_DIR/discover]")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The cohort RUN_DIR was made from.  [default: RUN_DIR/cohort, else the one classify used]")
@click.option("--seed", type=int, default=0, show_default=True)
def discover(run_dir, features, clip_model, method, backend, out_dir, cohort_dir, seed) -> None:
    """Find the subgroups where RUN_DIR's classifier fails, on train and on val separately.

    Needs RUN_DIR/classify (and RUN_DIR/register for --features inr). Writes subgroups.csv
    (participant_id, split, subgroup, selected, role) and summary.json (per subgroup: size, dTPR, FPR/FNR
    ratio; with a synthetic cohort also the bias and disease shares, and the precision and recall of the
    re-balanced set and the AMI against the four true groups).
    """
    from morphbias_fast.discover.stage import run_discover
    from morphbias_fast.errors import MorphbiasError

    try:
        summary = run_discover(run_dir, features=features, method=method, backend=backend, out_dir=out_dir,
                               seed=seed, cohort_dir=cohort_dir, clip_model=clip_model)
    except MorphbiasError as exc:
        _fail(exc)
    for split, s in summary["splits"].items():
        line = f"{split}: {s['selected']} of {s['n']} in the re-balanced set"
        if s.get("precision") is not None:
            line += f" (precision {s['precision']:.2f}, recall {s['recall']:.2f}, AMI {s['ami']:.2f})"
        click.echo(line + f" [{summary['backend']}, {s['seconds']:.1f} s]")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--strategy", type=click.Choice(["counterfactual", "paper", "oracle", "groupbal", "jtt"]),
              default="counterfactual", show_default=True,
              help="counterfactual: add every train case decoded with its bias flipped (ours); paper: latent "
                   "noise + SMOTE on the re-balanced set; oracle: reweighing with the true bias; groupbal: "
                   "discovered groups weighted equally; jtt: up-weight the first model's errors.")
@click.option("--discover-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where discover wrote subgroups.csv.  [default: RUN_DIR/discover]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="[default: RUN_DIR/mitigate for counterfactual, RUN_DIR/mitigate_STRATEGY otherwise]")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="[default: RUN_DIR/cohort, else the cohort classify used]")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def mitigate(run_dir, strategy, discover_dir, out_dir, cohort_dir, epochs, seed, device) -> None:
    """Retrain RUN_DIR's classifier from scratch so that it stops using the discovered shortcut.

    Writes predictions.csv (same columns as classify), metrics.json (accuracy, recall and precision in B and
    NB on val and test when the cohort has a bias column), model.pt and, for counterfactual and paper,
    augmentations.png (train cases and generated images).
    """
    from morphbias_fast.errors import MorphbiasError
    from morphbias_fast.mitigate.stage import default_out, run_mitigate

    try:
        preds = run_mitigate(run_dir, strategy=strategy, seed=seed, discover_dir=discover_dir, out_dir=out_dir,
                             cohort_dir=cohort_dir, epochs=epochs, device=device)
    except MorphbiasError as exc:
        _fail(exc)
    test = preds[preds.split == "test"]
    out = out_dir or default_out(Path(run_dir), strategy)
    if len(test):
        click.echo(f"test accuracy {(test.y_pred == test.y_true).mean():.3f}; details in {out}/metrics.json")


@main.command(name="run")
@click.argument("cohort_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: every stage writes a subfolder; metrics.json and report.html at the top.")
@click.option("--bias-level", type=float, default=0.9, show_default=True,
              help="For the synthetic cohort made when no COHORT_DIR is given.")
@click.option("--dim", type=click.Choice(["2", "3"]), default="2", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seeds", default=None, help="Comma-separated seeds (e.g. 0,1,2,3,4): one run each under "
                                           "OUT/seed_K, and mean +- std at the top.")
@click.option("--baselines", default="", show_default=True,
              help="Also run these mitigation strategies for comparison: any of paper,oracle,groupbal,jtt "
                   "(each retrains the classifier, ~2-5 min on 2 cores).")
@click.option("--register-budget", type=float, default=240.0, show_default=True,
              help="Seconds for the registration stage.")
@click.option("--register-steps", type=click.IntRange(min=1), default=None,
              help="Fixed registration training steps instead of the time budget (reproducible across machines).")
def run_cmd(cohort_dir, out_dir, bias_level, dim, seed, seeds, baselines, register_budget, register_steps) -> None:
    """The whole pipeline in one command: synth (when no COHORT_DIR) -> classify -> register -> discover ->
    mitigate -> report.

    A stage whose output exists is skipped, so rerunning the same command resumes. With a synthetic cohort
    the unbiased reference (a classifier trained at bias 0.5) is trained too. OUT/metrics.json holds the
    paper's table on the test split (acc, recall and precision in cases with (B) and without (NB) the bias)
    and the gap closed; OUT/report.html shows it with the figures.
    """
    from morphbias_fast.errors import MorphbiasError
    from morphbias_fast.pipeline import run_pipeline

    names = tuple(b for b in baselines.split(",") if b)
    bad = [b for b in names if b not in ("paper", "oracle", "groupbal", "jtt")]
    if bad:
        raise click.BadParameter(f"unknown baseline {bad[0]!r} (choose from paper, oracle, groupbal, jtt)",
                                 param_hint="--baselines")
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers",
                                 param_hint="--seeds") from None
    try:
        metrics = run_pipeline(out_dir, cohort_dir, bias_level, int(dim), seed_list, names, register_budget,
                               register_steps, seed_folders=seeds is not None)
    except MorphbiasError as exc:
        _fail(exc)
    for r in metrics["rows"]:
        gap = r.get("gap_closed")
        click.echo(f"{r['model']:<12} recall NB {r['recall_NB']:.2f}  recall B {r['recall_B']:.2f}  "
                   f"acc B {r['acc_B']:.2f}  acc NB {r['acc_NB']:.2f}"
                   + (f"  gap closed {gap:.2f}" if gap is not None else "")
                   + (f" (of the seed means: {r['gap_closed_of_means']:.2f})"
                      if r.get("gap_closed_of_means") is not None else ""))
    click.echo(f"report: {out_dir / 'report.html'}")


@main.group()
def bench() -> None:
    """Benchmarks: our kernels against the alternative a user would pick, in the same run."""


@bench.command("encode")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to run both implementations.")
@click.option("--dims", type=click.IntRange(2, 3), default=3, show_default=True, help="Input dimensions D.")
@click.option("--n", "n", type=click.IntRange(min=1), default=2**18, show_default=True, help="Query points.")
@click.option("--log2-hashmap-size", type=click.IntRange(10, 24), default=19, show_default=True,
              help="Entries per hashed level (2^19 is tiny-cuda-nn's default; 2^15 stays in cache).")
@click.option("--levels", type=click.IntRange(1, 32), default=16, show_default=True)
@click.option("--features", type=click.Choice(["1", "2", "4", "8"]), default="2", show_default=True,
              help="Features per level F.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed repetitions after one warm-up; the median is reported.")
@click.option("--no-reference", is_flag=True, help="Skip the (slow) pure-PyTorch reference.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures to this JSON file.")
def bench_encode(device, dims, n, log2_hashmap_size, levels, features, repeats, no_reference, json_path) -> None:
    """Million queries/s of the hash-grid encoder: forward, forward+backward and the Jacobian path,
    ours against the pure-PyTorch reference (and tiny-cuda-nn when it imports), with ratios."""
    import torch

    from morphbias_fast.bench import encode as bench_mod
    from morphbias_fast.ops.hashgrid import cuda_compiled

    if device == "cuda" and not (torch.cuda.is_available() and cuda_compiled()):
        raise click.UsageError("--device cuda needs a GPU visible to torch and a build with CUDA kernels "
                               "(see `morphbias-fast info`)")
    res = bench_mod.run(device=device, dims=dims, n=n, log2_hashmap_size=log2_hashmap_size, n_levels=levels,
                        n_features_per_level=int(features), repeats=repeats, reference=not no_reference,
                        progress=lambda msg: click.echo(f"  timing {msg} ...", err=True))
    click.echo(bench_mod.format_table(res))
    if json_path:
        data = res.as_dict()
        import morphbias_fast as mbf

        data["build_info"] = mbf.build_info()
        if device == "cuda":
            data["gpu"] = torch.cuda.get_device_name(torch.device(device))
        write_json(json_path, data)
        click.echo(f"wrote {json_path}")


if __name__ == "__main__":  # pragma: no cover
    main()


@bench.command("register")
@click.option("--cohort", "cohort_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cohort to register (default: a new 200-subject synthetic cohort in a temporary folder).")
@click.option("--hashgrid-budget", type=float, default=30.0, show_default=True, help="Seconds for the hash grid.")
@click.option("--siren-budget", type=float, default=300.0, show_default=True, help="Seconds for SIREN.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def bench_register(cohort_dir, hashgrid_budget, siren_budget, device, json_path) -> None:
    """Training-subject endpoint error reached by the hash-grid INR and by SIREN within their budgets
    (same cohort, loss, batches and seed), and steps per second of each."""
    import tempfile

    from morphbias_fast.bench import register as bench_mod
    from morphbias_fast.data.synth import SynthConfig, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        if cohort_dir is None:
            cohort_dir = Path(tmp) / "cohort"
            synthesize(cohort_dir, SynthConfig(n_train=200, n_val=4, n_test=4), progress=False)
        res = bench_mod.run(cohort_dir, {"hashgrid": hashgrid_budget, "siren": siren_budget}, device=device,
                            progress=lambda msg: click.echo(f"  {msg} ...", err=True))
    click.echo(bench_mod.format_table(res))
    if json_path:
        write_json(json_path, res)
        click.echo(f"wrote {json_path}")
