"""The paper's registration recipe (INRConfig.paper, `register --recipe paper`): its sampler, interpolation,
learning-rate schedule and loss, each against an independent computation, and a CI-sized run end to end."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.register import INRConfig, Images
from morphbias_fast.register.loss import loss_terms
from morphbias_fast.register.model import build_model
from morphbias_fast.register.train import make_optimizer, set_learning_rate


def images(shape=(9, 11), n=3, seed=0):
    rng = np.random.default_rng(seed)
    return Images(rng.random((n, *shape)), rng.random(shape) + 0.5, torch.device("cpu"))


def test_paper_settings_are_the_published_ones():
    cfg = INRConfig.paper(schedule="published", seed=3)
    # docs/METHOD.md section 2
    assert (cfg.arch, cfg.recipe, cfg.latent_dim, cfg.batch_subjects, cfg.points) == ("siren", "paper", 256, 1, 16384)
    assert (cfg.lr_siren, cfg.weight_decay, cfg.lr_decay, cfg.alpha, cfg.coord_std) == (1e-5, 1.0, 0.999, 0.01, 0.4)
    assert cfg.gamma == 0 and cfg.fold_weight == 0 and cfg.similarity == "mse" and cfg.seed == 3
    assert INRConfig.for_recipe("ours") == INRConfig()
    with pytest.raises(MorphbiasError, match="--recipe"):
        INRConfig.for_recipe("theirs")


def test_the_cpu_schedule_changes_only_the_batch_and_the_learning_rates():
    published, cpu = INRConfig.paper(schedule="published"), INRConfig.paper(schedule="cpu")
    changed = {k for k, v in vars(published).items() if vars(cpu)[k] != v}
    assert changed == {"batch_subjects", "points", "lr_siren", "lr_latent"}
    # the same coordinates a step as published (bench/RESULTS.md): 32 subjects x 512 = 16,384
    assert cpu.batch_subjects * cpu.points == published.batch_subjects * published.points == 16384
    assert (cpu.lr_siren, cpu.lr_latent) == (1e-4, 1e-2)
    # auto: the device decides; explicit settings win over either schedule
    want = "published" if torch.cuda.is_available() else "cpu"
    assert INRConfig.paper() == INRConfig.paper(schedule=want)
    assert INRConfig.paper(device="cpu") == INRConfig.paper(schedule="cpu", device="cpu")
    assert INRConfig.paper(schedule="cpu", points=64).points == 64
    with pytest.raises(MorphbiasError, match="schedule"):
        INRConfig.paper(schedule="fast")


def test_coordinates_follow_the_papers_normal_in_minus_one_one():
    imgs = images(shape=(101, 201))
    pos = imgs.sample_positions(4, 50_000, torch.Generator().manual_seed(0), std=0.4)
    c = 2 * pos / imgs.extent - 1  # back to [-1, 1]
    assert c.min() >= -1 and c.max() <= 1
    # 200,000 draws per axis: the sample std of N(0, 0.4) clamped at 2.5 sigma is 0.3956 (clamping removes
    # 1.2% of the mass, computed below) with a standard error of ~0.0007; 0.005 is 7 standard errors.
    phi = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    a = 1 / 0.4
    tail = 1 - phi(a)
    var = 0.4 ** 2 * (1 - 2 * tail - 2 * a * math.exp(-a * a / 2) / math.sqrt(2 * math.pi) + 2 * tail * a * a)
    for d in range(2):
        assert abs(c[..., d].std().item() - math.sqrt(var)) < 0.005


def test_continuous_sampling_interpolates_the_subject_image():
    imgs = images()
    subjects = torch.tensor([2, 0])
    flat = torch.tensor([[0, 5, 17, 98], [3, 50, 60, 7]])
    x_i, vox_i, want = imgs.sample(subjects, flat)  # integer path: the voxels themselves
    x_f, vox_f, got = imgs.sample(subjects, vox_i.clone())  # the same positions as floats
    assert torch.equal(vox_f, vox_i) and torch.equal(x_f, x_i)  # the same division of the same numbers
    # Interpolation goes through grid_sample's [-1, 1] coordinates in float32, so a voxel's weight is 1 - ~1e-7
    # rather than 1: values in [0, 1] move by < 1e-6 (the same bound as test_twins.py's transport test)
    assert torch.allclose(got, want, atol=1e-6)
    # halfway between two voxels along the last axis: their mean (bilinear interpolation by hand)
    rows = imgs.images[subjects].view(2, *imgs.shape)
    mid = torch.tensor([[[4.0, 2.5]], [[7.0, 9.5]]])
    _, _, v = imgs.sample(subjects, mid)
    hand = torch.stack([(rows[0, 4, 2] + rows[0, 4, 3]) / 2, (rows[1, 7, 9] + rows[1, 7, 10]) / 2])
    assert torch.allclose(v[:, 0], hand, atol=1e-6)  # weights 0.5 +- ~1e-7 in float32, as above


def test_learning_rate_decays_by_the_factor_per_epoch():
    cfg = INRConfig.paper(schedule="published", batch_subjects=2)
    model = build_model("siren", 2, cfg.latent_dim)
    opt = make_optimizer(model, torch.nn.Parameter(torch.zeros(10, cfg.latent_dim)), cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 1.0
    assert opt.param_groups[1]["weight_decay"] == 0.0  # latents: kept small by beta * std(z), not decayed
    set_learning_rate(opt, cfg, step=5 * 3, n_subjects=10)  # 10 subjects, 2 per step: 3 epochs in 15 steps
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5 * 0.999 ** 3, rel=1e-12)
    ours = make_optimizer(model, torch.nn.Parameter(torch.zeros(10, 128)), INRConfig(arch="siren"))
    assert type(ours) is torch.optim.Adam


def test_paper_loss_terms():
    imgs = images()
    cfg = INRConfig.paper(points=32)
    model = build_model("siren", 2, cfg.latent_dim)
    with torch.no_grad():
        model.out.bias.fill_(0.5)  # a constant displacement of 0.5 voxel along both axes
    z = torch.randn(1, cfg.latent_dim)
    pos = imgs.sample_positions(1, 32, torch.Generator().manual_seed(1), cfg.coord_std)
    terms = loss_terms(model, imgs, z, torch.tensor([1]), pos, cfg)
    # |phi - x|_1 in [-1, 1] units: 0.5 voxel is 2 * 0.5 / (n - 1) there, averaged over the two axes
    want = (2 * 0.5 / 8 + 2 * 0.5 / 10) / 2
    assert terms["disp"].item() == pytest.approx(want, rel=1e-5)
    assert terms["latent"].item() == pytest.approx(z.std().item(), rel=1e-6)
    assert "jac" not in terms  # the paper has no Jacobian terms
    assert terms["total"].item() == pytest.approx(terms["sim"].item() + 0.01 * want + 1e-4 * z.std().item(),
                                                   rel=1e-5)


def test_register_with_the_papers_recipe_end_to_end(tmp_path):
    cohort = tmp_path / "cohort"
    synthesize(cohort, SynthConfig(n_train=6, n_val=4, n_test=4, spacing=6.0), progress=False)
    res = CliRunner().invoke(main, ["register", str(tmp_path / "run"), "--cohort", str(cohort), "--recipe", "paper",
                                    "--steps", "4", "--fit-steps", "2", "--points", "128", "--time-budget", "0",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    z = np.load(tmp_path / "run" / "register" / "latents.npz")["z"]
    assert z.shape == (14, 256) and np.isfinite(z).all()
    cfg = json.loads((tmp_path / "run" / "register" / "metrics.json").read_text())["config"]
    # --device cpu: the CPU schedule, recorded (--points given, so it wins over the schedule's 512)
    assert (cfg["recipe"], cfg["arch"], cfg["points"], cfg["batch_subjects"]) == ("paper", "siren", 128, 32)
    assert (cfg["lr_siren"], cfg["lr_latent"]) == (1e-4, 1e-2)


def test_refit_repeats_the_stages_fit_and_refits_train(tmp_path):
    """register/refit.py (issue 17): refitting the splits the stage fitted (val, test) with the frozen network
    gives the stage's own latents bit for bit (same start, steps, points and batches on the CPU), so a refit of
    train is the stage's fit applied to train; the refit folder keeps the network and changes train only."""
    from morphbias_fast.data import load_cohort
    from morphbias_fast.register import refit_latents
    from morphbias_fast.runfolder import RegisterFolder, RunFolder

    cohort_dir = tmp_path / "cohort"
    synthesize(cohort_dir, SynthConfig(n_train=6, n_val=4, n_test=4, spacing=6.0), progress=False)
    res = CliRunner().invoke(main, ["register", str(tmp_path / "run"), "--cohort", str(cohort_dir), "--recipe",
                                    "paper", "--steps", "4", "--fit-steps", "3", "--points", "128",
                                    "--time-budget", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    src, cohort = RunFolder(tmp_path / "run").register, load_cohort(cohort_dir)
    ids = {s: cohort.ids[cohort.index(s)] for s in ("train", "val", "test")}
    again = RegisterFolder(tmp_path / "again")
    refit_latents(src, cohort, again, splits=("val", "test"), progress=False)
    for s in ("val", "test"):
        assert np.array_equal(again.latents_of(ids[s]), src.latents_of(ids[s]))
    out = RegisterFolder(tmp_path / "refit")
    rec = refit_latents(src, cohort, out, progress=False)
    assert rec["steps"] == 3 and rec["splits"] == ["train"]
    assert not np.allclose(out.latents_of(ids["train"]), src.latents_of(ids["train"]))
    for s in ("val", "test"):
        assert np.array_equal(out.latents_of(ids[s]), src.latents_of(ids[s]))
    assert out.model.read_bytes() == src.model.read_bytes()
    assert json.loads(out.metrics.read_text())["train_refit"]["from"] == str(src.path)
    with pytest.raises(MorphbiasError, match="no participant"):
        refit_latents(src, cohort, RegisterFolder(tmp_path / "none"), splits=("holdout",), progress=False)


def test_refit_refuses_our_recipe(tmp_path):
    """Our recipe fits the training latents with the network frozen already: a refit is refused by name."""
    from morphbias_fast.data import load_cohort
    from morphbias_fast.register import refit_latents
    from morphbias_fast.runfolder import RegisterFolder, RunFolder

    cohort_dir = tmp_path / "cohort"
    synthesize(cohort_dir, SynthConfig(n_train=4, n_val=2, n_test=2, spacing=8.0), progress=False)
    res = CliRunner().invoke(main, ["register", str(tmp_path / "run"), "--cohort", str(cohort_dir), "--steps", "2",
                                    "--fit-steps", "1", "--points", "64", "--time-budget", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with pytest.raises(MorphbiasError, match="only the paper recipe"):
        refit_latents(RunFolder(tmp_path / "run").register, load_cohort(cohort_dir), RegisterFolder(tmp_path / "x"))
