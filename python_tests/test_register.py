"""Registration INR: forward-mode Jacobians against autograd, the stage's outputs on a tiny cohort, decoding
into ITK fields that SimpleITK applies, and resume after an interruption."""
import os
import signal

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from click.testing import CliRunner

from morphbias_fast import register
from morphbias_fast.cli import main
from morphbias_fast.data import load_cohort
from morphbias_fast.data.fields import read_grid
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.register import INRConfig, build_model, det_identity_plus
from morphbias_fast.register.train import fit_horizon as train_fit_horizon
from morphbias_fast.runfolder import RunFolder


def run_register(cohort, run_dir, inr: INRConfig, resume: bool = False) -> dict:
    """The register stage, quietly, on RUN_DIR; its metrics."""
    return register.run(RunFolder(run_dir), register.Config(cohort, inr, resume=resume)).metrics


TINY = dict(steps=30, time_budget=None, fit_steps=8, batch_subjects=4, points=256, seed=0, device="cpu")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg") / "cohort"
    synthesize(out, SynthConfig(n_train=8, n_val=4, n_test=4, spacing=6.0), progress=False)
    return out


@pytest.mark.parametrize("arch", ["hashgrid", "siren"])
@pytest.mark.parametrize("dim", [2, 3])
def test_forward_mode_jacobian_equals_autograd(arch, dim):
    torch.manual_seed(0)
    model = build_model(arch, dim, latent_dim=8).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # leave the zero initialisation so every term is exercised
    x = torch.rand(3, 7, dim, dtype=torch.float64, requires_grad=True)
    z = torch.randn(3, 8, dtype=torch.float64)
    u, J = model(x, z, with_jacobian=True)
    rows = [torch.autograd.grad(u[..., k].sum(), x, retain_graph=True)[0] for k in range(dim)]
    J_auto = torch.stack(rows, dim=-2)
    # float64, the same operations in another order: errors ~1e-16 relative (measured); 1e-10 leaves margin
    assert (J - J_auto).abs().max() <= 1e-10 * J_auto.abs().max()


@pytest.mark.parametrize("dim", [2, 3])
def test_explicit_determinant(dim):
    J = torch.randn(50, dim, dim, dtype=torch.float64)
    want = torch.linalg.det(torch.eye(dim, dtype=torch.float64) + J)
    assert torch.allclose(det_identity_plus(J), want, rtol=1e-12, atol=1e-12)  # float64 rounding only


def test_stage_outputs(cohort, tmp_path):
    m = run_register(cohort, tmp_path, INRConfig(**TINY))
    lat = np.load(tmp_path / "register" / "latents.npz")
    assert len(lat["participant_id"]) == 16 and lat["z"].shape == (16, 128)
    assert set(lat["split"]) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        s = m["splits"][split]
        assert s["epe_mm"] >= 0 and s["true_displacement_mm"] > 0 and 0 <= s["folded_fraction_max"] <= 1
    assert m["train"]["steps"] == 30 and m["fit"]["steps"] == 8
    assert not (tmp_path / "register" / "train_state.pt").exists()


def test_every_latent_is_fitted_and_the_paper_keeps_its_training_ones(cohort, tmp_path, monkeypatch):
    """Ours fits every subject to the frozen network (train too); the paper's recipe fits val and test only.
    Seen from what fit_latents is handed: the images it fits and the subjects among them."""
    from morphbias_fast.register import stage, train

    seen = []
    real = train.fit_latents

    def spy(model, imgs, subjects, cfg, *a, **k):
        seen.append((cfg.recipe, imgs.images.shape[0], len(subjects)))
        return real(model, imgs, subjects, cfg, *a, **k)

    monkeypatch.setattr(stage, "fit_latents", spy)
    run_register(cohort, tmp_path / "ours", INRConfig(**TINY))
    paper = INRConfig.paper(**{**TINY, "steps": 3, "fit_steps": 2, "points": 64, "latent_dim": 8})
    run_register(cohort, tmp_path / "paper", paper)
    assert seen == [("ours", 16, 16), ("paper", 8, 8)]  # 8 train, 4 val, 4 test


def test_fit_plans_its_steps_to_the_time_left():
    cfg = INRConfig(**TINY)  # fit_steps 8
    assert train_fit_horizon(cfg, 1.0, None) == 8          # no deadline: all of them
    assert train_fit_horizon(cfg, 1.0, 4.0) == 2 + 3       # two taken, then 0.95 * 4 s at 1 s a step
    assert train_fit_horizon(cfg, 0.01, 100.0) == 8        # never more than asked
    assert train_fit_horizon(cfg, 1.0, -5.0) == 2          # past the deadline: the two already taken
    with pytest.raises(MorphbiasError, match="--fit-steps"):
        INRConfig(**{**TINY, "fit_steps": 0})


def test_decode_writes_a_field_simpleitk_applies(cohort, tmp_path):
    run_register(cohort, tmp_path, INRConfig(**TINY))
    out_dir = tmp_path / "decoded"
    result = CliRunner().invoke(main, ["decode", str(tmp_path), "--subject", "sub-0002", "--out", str(out_dir),
                                       "--warped", "--h5"])
    assert result.exit_code == 0, result.output
    field = out_dir / "sub-0002_desc-displacement_xfm.nii.gz"
    warped = out_dir / "sub-0002_desc-warped_T1w.nii.gz"
    atlas = read_grid(tmp_path / "register" / "atlas_T1w.nii.gz", sitk.sitkFloat64)  # the 2-D slice
    disp = sitk.ReadImage(str(field), sitk.sitkVectorFloat64)
    out = sitk.Resample(atlas, atlas, sitk.DisplacementFieldTransform(sitk.Image(disp)), sitk.sitkLinear, 0.0)
    ours = sitk.GetArrayFromImage(read_grid(warped, sitk.sitkFloat64))
    # Both are linear interpolation of the same atlas at the same points: equal up to float32 storage.
    assert np.abs(sitk.GetArrayFromImage(out) - ours).max() < 1e-5
    # the .h5 is an ITK transform file SimpleITK reads back as the same warp
    tx = sitk.ReadTransform(str(out_dir / "sub-0002_desc-displacement_xfm.h5"))
    from_h5 = sitk.GetArrayFromImage(sitk.Resample(atlas, atlas, tx, sitk.sitkLinear, 0.0))
    assert np.abs(from_h5 - sitk.GetArrayFromImage(out)).max() < 1e-9  # the same float64 field, the same filter
    bad = CliRunner().invoke(main, ["decode", str(tmp_path), "--subject", "sub-9999", "--out", str(out_dir)])
    assert bad.exit_code == 1 and "sub-9999" in bad.output
    not_a_folder = CliRunner().invoke(main, ["decode", str(tmp_path), "--subject", "sub-0002", "--out", str(field)])
    assert not_a_folder.exit_code == 2 and "is a file" in not_a_folder.output  # click refuses it as a usage error


def test_resume_ends_where_the_uninterrupted_run_ends(cohort, tmp_path, monkeypatch):
    cfg = INRConfig(**{**TINY, "steps": 24})
    full = run_register(cohort, tmp_path / "full", cfg)
    assert full["train"]["steps"] == 24

    import morphbias_fast.register.train as train_mod

    real = train_mod.loss_terms
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:  # Ctrl-C during step 10: the step finishes, a checkpoint is written, then stop
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "loss_terms", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_register(cohort, tmp_path / "cut", cfg)
    assert (tmp_path / "cut" / "register" / "train_state.pt").exists()
    monkeypatch.setattr(train_mod, "loss_terms", real)
    resumed = run_register(cohort, tmp_path / "cut", cfg, resume=True)
    assert resumed["train"]["steps"] == 24
    a = np.load(tmp_path / "full" / "register" / "latents.npz")["z"]
    b = np.load(tmp_path / "cut" / "register" / "latents.npz")["z"]
    # Same batches (a function of seed and step), same optimiser state: equal up to float32 noise.
    assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-3)


def test_refuses_cohort_without_atlas(cohort, tmp_path):
    import shutil

    broken = tmp_path / "c"
    shutil.copytree(cohort, broken)
    shutil.rmtree(broken / "atlas")
    with pytest.raises(MorphbiasError, match="atlas"):
        run_register(broken, tmp_path / "run", INRConfig(**TINY))


def test_two_gloo_processes_match_one(cohort, tmp_path):
    import shutil
    import subprocess
    import sys

    # 3 subjects per step out of 8: the two ranks get unequal shares, so a wrong loss weighting would show.
    args = ["register", "RUN", "--cohort", str(cohort), "--steps", "20", "--time-budget", "0", "--fit-steps", "3",
            "--batch-subjects", "3", "--points", "256", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = [sys.executable, "-m", "morphbias_fast", *[a.replace("RUN", str(tmp_path / "one")) for a in args]]
    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun (shipped with torch) is not on PATH"
    two = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "morphbias_fast",
           *[a.replace("RUN", str(tmp_path / "two")) for a in args]]
    for cmd in (one, two):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    a = np.load(tmp_path / "one" / "register" / "latents.npz")
    b = np.load(tmp_path / "two" / "register" / "latents.npz")
    assert (a["participant_id"] == b["participant_id"]).all()
    # Same gradients, summed in another order (allreduce): measured differences ~1e-6 of each tensor's
    # largest value. With the per-rank loss weighting broken (every rank weight 1) they were ~1 after these
    # 20 steps, so 1e-4 separates noise from a wrong gradient by two orders of magnitude either way.
    assert np.abs(a["z"] - b["z"]).max() <= 1e-4 * np.abs(a["z"]).max()
    ma = torch.load(tmp_path / "one" / "register" / "model.pt", weights_only=False)["model"]
    mb = torch.load(tmp_path / "two" / "register" / "model.pt", weights_only=False)["model"]
    for k in ma:
        assert (ma[k] - mb[k]).abs().max() <= 1e-4 * ma[k].abs().max().clamp_min(1e-12), k


def test_bench_register_reports_both_architectures(cohort, tmp_path):
    path = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "register", "--cohort", str(cohort), "--hashgrid-budget", "1",
                                       "--siren-budget", "1", "--json", str(path)])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(path.read_text())
    for arch in ("hashgrid", "siren"):
        assert data["arch"][arch]["steps"] >= 1 and data["arch"][arch]["train_epe_mm"] >= 0
    assert "steps/s" in result.output


def test_three_d_cohort_registers_and_decodes(tmp_path):
    cohort3 = tmp_path / "c3"
    synthesize(cohort3, SynthConfig(n_train=4, n_val=2, n_test=4, dim=3, spacing=8.0), progress=False)
    cfg = INRConfig(**{**TINY, "steps": 5, "fit_steps": 3, "batch_subjects": 2, "points": 128})
    m = run_register(cohort3, tmp_path / "run", cfg)
    assert set(m["splits"]) == {"train", "val", "test"}
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "run"), "--subject", "sub-0001", "--out",
                                       str(tmp_path / "dec")])
    assert result.exit_code == 0, result.output
    field = sitk.ReadImage(str(tmp_path / "dec" / "sub-0001_desc-displacement_xfm.nii.gz"))
    assert field.GetDimension() == 3 and field.GetNumberOfComponentsPerPixel() == 3


def test_transported_images_follow_the_decoded_anatomy(cohort, tmp_path):
    """Decoder.transported: a case moved to its own latent comes back bit for bit (nothing moves, every voxel
    is kept), and moved to another case's latent it changes where the two decoded anatomies differ."""
    run_register(cohort, tmp_path, INRConfig(**TINY))
    files = RunFolder(tmp_path).register
    decoder = register.Decoder.load(files)
    latents = files.read_latents()
    ids = ["sub-0001", "sub-0002"]
    Z = np.stack([latents[i] for i in ids])
    c = load_cohort(cohort)
    images = c.images[[list(c.ids).index(i) for i in ids]]
    np.testing.assert_array_equal(decoder.transported(images, Z, Z, progress=False), images)
    moved = decoder.transported(images[:1], Z[:1], Z[1:], progress=False)
    assert not np.array_equal(moved, images[:1])


def test_endpoint_error_summary_by_hand():
    from morphbias_fast.register.quality import epe_summary

    epe, mag = np.array([1.0, 1.0, 6.0]), np.array([2.0, 4.0, 3.0])
    s = epe_summary(epe, mag, np.array([0, 1, 1]))
    # by hand: mean error 8/3 over mean displacement 3; the subjects' own ratios 0.5, 0.25, 2 (median 0.5);
    # site 0: 1/2, site 1: (1 + 6) / (4 + 3)
    assert s["epe_ratio"] == pytest.approx(8 / 9) and s["epe_ratio_median"] == pytest.approx(0.5)
    assert s["epe_ratio_by_site"] == pytest.approx({"0": 0.5, "1": 1.0})
    assert "epe_ratio_by_site" not in epe_summary(epe, mag)
