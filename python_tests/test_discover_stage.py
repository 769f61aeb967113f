"""The discover stage and command: our method against a planted structure it must recover, the files it
writes, and its errors. The planted data are built here (not by the package), so they are an independent
oracle: we know which subjects are the under-represented groups."""
import functools
import shutil
import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.discover.backends import get_backend
from morphbias_fast.discover import features as discover_features
from morphbias_fast.discover.autoencoder import fit_autoencoder
from morphbias_fast.discover.shortcut import nearest_non_gaussian, shortcut_discovery
from morphbias_fast.errors import MorphbiasError


def planted(bias, disease, seed=0, dim=48, anatomy_sd=3.0, shift=4.0):
    """Features where the bias and the disease are each a shift of `shift` noise SDs along one direction,
    hidden under `anatomy_sd` times larger variation in 8 other directions (so PCA's leading components are
    anatomy), and a classifier that leans on the bias more than on the disease (the shortcut)."""
    rng = np.random.default_rng(seed)
    n = len(bias)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    coords = rng.normal(size=(n, dim))
    coords[:, :8] *= anatomy_sd
    coords[:, 8] += shift * bias
    coords[:, 9] += shift * disease
    logit = 3.0 * bias + 1.0 * disease - 2.0 + rng.normal(0, 0.5, n)
    return coords @ q.T, 1 / (1 + np.exp(-logit))


def groups(n, level, seed):
    rng = np.random.default_rng(seed)
    disease = rng.permutation(np.repeat([0, 1], n // 2))
    bias = np.where(rng.random(n) < np.where(disease == 1, level, 1 - level), 1, 0)
    return bias, disease


def test_shortcut_recovers_the_planted_groups():
    bias, disease = groups(1000, 0.9, 0)
    feats, prob = planted(bias, disease, dim=24)
    res = shortcut_discovery(feats, disease, prob, get_backend("sklearn"))
    target = ((bias == 1) & (disease == 0)) | ((bias == 0) & (disease == 1))
    sel = res["selected"]
    # A shift of 4 noise SDs leaves the two modes overlapping by Phi(-2) = 2.3% of each side, so at most
    # about 0.023 * 900 = 21 majority cases can pass the 0.9 posterior next to ~100 true ones: precision
    # about 0.83 or better. A method that split along the anatomy would select at the base rate, 0.1.
    assert target[sel].mean() >= 0.8
    assert sel[target].mean() >= 0.8
    # The sides are the bias: subgroup 2 * side + label equals 2 * bias + disease for most subjects.
    assert (res["subgroup"] == 2 * bias + disease).mean() > 0.95
    assert set(res["role"][res["subgroup"] >= 2]) == {"S_B"}


def test_aimed_start_reaches_the_bimodal_direction():
    """The one-unit fixed point, started 60 degrees off, must land on the one bimodal direction of whitened
    data whose other 11 directions are Gaussian (the planted direction is the oracle)."""
    rng = np.random.default_rng(3)
    n, dim = 4000, 12
    x = rng.normal(size=(n, dim))
    x[:, 0] = rng.choice([-1.0, 1.0], n) * 0.95 + rng.normal(0, np.sqrt(1 - 0.95 ** 2), n)  # unit variance
    # Whitened exactly, as discovery's PCA whitening does: x_w = (x - m) C^-1/2, so the source x[:, 0] lies
    # along C^1/2 e0 in the whitened coordinates; then rotated at random.
    evals, evecs = np.linalg.eigh(np.cov(x.T))
    xw = (x - x.mean(0)) @ (evecs / np.sqrt(evals)) @ evecs.T
    truth = (evecs * np.sqrt(evals)) @ evecs.T[:, 0]
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    truth = q @ truth / np.linalg.norm(truth)
    other = q @ np.eye(dim)[1]
    other -= (other @ truth) * truth
    start = np.cos(np.pi / 3) * truth + np.sin(np.pi / 3) * other / np.linalg.norm(other)
    w = nearest_non_gaussian(xw @ q.T, start)
    # The fixed point's error is sampling noise: its asymptotic variance for this source and tanh is about
    # 1 / n per Gaussian direction, so about sqrt(11 / 4000) = 0.05 rad in all; 0.99 in |cos| allows 0.14 rad.
    # A step that went nowhere would stay at cos 60 deg = 0.5.
    assert abs(w @ truth) > 0.99


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small synthetic cohort with planted latents and predictions in RUN_DIR/register and /classify."""
    from morphbias_fast.classify.model import CNN

    run = tmp_path_factory.mktemp("disc")
    synthesize(run / "cohort", SynthConfig(n_train=300, n_val=200, n_test=8, spacing=8.0), progress=False)
    parts = pd.read_csv(run / "cohort" / "participants.tsv", sep="\t", dtype={"participant_id": str})
    feats, prob = planted(parts.bias.to_numpy(), parts.disease.to_numpy(), dim=16)
    (run / "register").mkdir()
    np.savez(run / "register" / "latents.npz", participant_id=parts.participant_id.to_numpy().astype(str),
             split=parts.split.to_numpy().astype(str), z=feats.astype(np.float32))
    (run / "classify").mkdir()
    pd.DataFrame({"participant_id": parts.participant_id, "split": parts.split, "y_true": parts.disease,
                  "prob": prob, "y_pred": (prob >= 0.5).astype(int)}).to_csv(run / "classify" / "predictions.csv",
                                                                               index=False)
    torch.save({"state_dict": CNN(2).state_dict(), "dim": 2}, run / "classify" / "model.pt")
    return run


@pytest.mark.parametrize("method,extra", [("shortcut", []), ("paper", []),
                                          ("paper", ["--mixture-weight", "1", "--mixture-init", "confusion"])])
def test_discover_writes_subgroups_and_summary(run_dir, method, extra):
    out = run_dir / f"out_{method}_{len(extra)}"
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--method", method, "--out", str(out),
                                    "--backend", "sklearn", *extra])
    assert res.exit_code == 0, res.output
    sub = pd.read_csv(out / "subgroups.csv", dtype={"participant_id": str})
    assert list(sub.columns) == ["participant_id", "split", "subgroup", "selected", "role"]
    parts = pd.read_csv(run_dir / "cohort" / "participants.tsv", sep="\t", dtype={"participant_id": str})
    expect = parts[parts.split.isin(["train", "val"])]
    assert sorted(sub.participant_id) == sorted(expect.participant_id)
    assert set(sub.role) <= {"S_B", "S_NB", "none"}
    # Selected cases are the negatives of S_B and the positives of S_NB, nothing else.
    m = sub.merge(parts[["participant_id", "disease", "bias"]], on="participant_id")
    sel = m[m.selected == 1]
    assert (((sel.role == "S_B") & (sel.disease == 0)) | ((sel.role == "S_NB") & (sel.disease == 1))).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["backend"] == "sklearn"
    if method == "paper":
        assert summary["config"]["mixture_weight"] == (1.0 if extra else 10.0)
        assert summary["config"]["mixture_init"] == ("confusion" if extra else "kmeans")
    for split in ("train", "val"):
        s = summary["splits"][split]
        assert s["n"] == int((expect.split == split).sum())
        assert s["selected"] == int(m[m.split == split].selected.sum())
        assert sum(g["size"] for g in s["subgroups"]) == s["n"]
        for g in s["subgroups"]:
            assert {"dtpr", "ratio", "bias_share", "disease_share", "role"} <= set(g)
        # precision and recall recomputed here from the files and the truth
        part = m[m.split == split]
        target = ((part.bias == 1) & (part.disease == 0)) | ((part.bias == 0) & (part.disease == 1))
        if s["selected"]:
            assert s["precision"] == pytest.approx(target[part.selected == 1].mean())
        assert s["recall"] == pytest.approx((part.selected[target] == 1).mean())
    if method == "shortcut":
        # The same bound as test_shortcut_recovers_the_planted_groups, here through the command on 500
        # subjects in 16 columns (in 48 columns 500 subjects are too few: precision 0.52, recall 0.40).
        assert summary["splits"]["train"]["precision"] >= 0.8 and summary["splits"]["train"]["recall"] >= 0.8


@pytest.mark.parametrize("features", ["pca", "embedding", "autoencoder"])
def test_image_features_run(run_dir, features, monkeypatch):
    # the stage's plumbing, not the autoencoder's learning (test_autoencoder.py): two epochs are enough
    monkeypatch.setattr(discover_features, "fit_autoencoder", functools.partial(fit_autoencoder, epochs=2))
    out = run_dir / f"out_{features}"
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--features", features, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "subgroups.csv")) == 500


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIP vision encoder saved as a model folder (no download)."""
    transformers = pytest.importorskip("transformers", reason="the [clip] extra is not installed")
    cfg = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=64, patch_size=16, projection_dim=8)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny"
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    return path


def test_clip_features_run(run_dir, tiny_clip):
    out = run_dir / "out_clip"
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--features", "clip", "--clip-model", str(tiny_clip),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "subgroups.csv")) == 500
    assert json.loads((out / "summary.json").read_text())["clip_model"] == str(tiny_clip)


def test_clip_features_by_hand(tiny_clip):
    """One 2-D image through the model by hand (resize, grey to RGB, CLIP's published mean and std), and a
    3-D subject as the mean of its slices' embeddings."""
    from types import SimpleNamespace

    import transformers

    from morphbias_fast.discover.features import CLIP_SLICES, clip_features

    rng = np.random.default_rng(0)
    vol = rng.random((2, 20, 24, 16)).astype(np.float32) * 3
    model = transformers.CLIPVisionModelWithProjection.from_pretrained(tiny_clip).eval()
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)  # CLIP's published constants
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)

    def by_hand(img2d, cohort_images):
        scale = float(np.percentile(cohort_images, 99.5))  # the cohort's intensity scale
        x = torch.as_tensor(np.clip(img2d / scale, 0, 1))[None, None].float()
        x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        with torch.no_grad():
            return model(pixel_values=(x.repeat(1, 3, 1, 1) - mean) / std).image_embeds[0].double().numpy()

    two_d = clip_features(str(tiny_clip), SimpleNamespace(images=vol[..., 8]), np.array([1]))
    # float32 model, same operations in another order (batching): 1e-5 is ~100 float32 epsilons of O(1) values
    np.testing.assert_allclose(two_d[0], by_hand(vol[1, ..., 8], vol[..., 8]), atol=1e-5)
    z = np.unique(np.linspace(4, 12, CLIP_SLICES).round().astype(int))  # the middle half of 16 slices
    expect = np.mean([by_hand(vol[0, ..., k], vol) for k in z], axis=0)
    three_d = clip_features(str(tiny_clip), SimpleNamespace(images=vol), np.array([0]))
    np.testing.assert_allclose(three_d[0], expect, atol=1e-5)  # the same float32 bound as above


def test_clip_errors_name_the_argument(run_dir, tmp_path):
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--features", "clip", "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "--clip-model" in res.output and "Traceback" not in res.output
    pytest.importorskip("transformers", reason="the [clip] extra is not installed")
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--features", "clip", "--clip-model",
                                    str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "nowhere" in res.output and "Traceback" not in res.output


def test_mixture_options_belong_to_the_paper_method(run_dir):
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--mixture-init", "confusion"])
    assert res.exit_code != 0 and "--method paper" in res.output


def test_errors_name_what_is_missing(tmp_path, run_dir):
    res = CliRunner().invoke(main, ["discover", str(tmp_path), "--cohort", str(run_dir / "cohort")])
    assert res.exit_code == 1 and "classify/predictions.csv" in res.output and "Traceback" not in res.output
    (tmp_path / "classify").mkdir()
    (tmp_path / "classify" / "predictions.csv").write_text((run_dir / "classify" / "predictions.csv").read_text())
    res = CliRunner().invoke(main, ["discover", str(tmp_path)])  # no cohort/ and no classify/metrics.json
    assert res.exit_code == 1 and "--cohort" in res.output


def test_device_option(run_dir, tmp_path):
    """discover takes --device like the other stages (embedding features run there); a GPU that is not
    there is a one-line error, not a traceback."""
    res = CliRunner().invoke(main, ["discover", str(run_dir), "--features", "embedding", "--device", "cpu",
                                    "--out", str(tmp_path / "cpu")])
    assert res.exit_code == 0, res.output
    if not torch.cuda.is_available():
        res = CliRunner().invoke(main, ["discover", str(run_dir), "--device", "cuda", "--out", str(tmp_path / "gpu")])
        assert res.exit_code == 1 and "--device cuda" in res.output and "Traceback" not in res.output


def test_backend_choice():
    from morphbias_fast.discover.backends import cuml_status

    ok, _ = cuml_status()
    assert get_backend("auto").name == ("cuml" if ok else "sklearn")
    if not ok:
        with pytest.raises(MorphbiasError, match="cuML is not usable"):
            get_backend("cuml")
    with pytest.raises(MorphbiasError, match="--backend"):
        get_backend("gpu")
    res = CliRunner().invoke(main, ["info"])
    assert "discover_backend" in res.output


def test_both_backends_agree_when_cuml_is_there():
    from morphbias_fast.discover.backends import cuml_status

    if not cuml_status()[0]:
        pytest.skip("cuML is not installed here (it needs a CUDA machine: pip install .[gpu])")
    bias, disease = groups(1000, 0.9, 1)
    feats, prob = planted(bias, disease, seed=1)
    a = shortcut_discovery(feats, disease, prob, get_backend("sklearn"))
    b = shortcut_discovery(feats, disease, prob, get_backend("cuml"))
    assert (a["selected"] == b["selected"]).mean() > 0.98  # different solvers; the same split


def test_bench_probe_finds_a_planted_bias_and_nothing_in_noise(run_dir, tmp_path):
    from scipy.stats import norm

    from morphbias_fast.bench import probe

    row = probe.run([run_dir], ["inr"], echo=lambda *a: None)["rows"][0]
    # The planted bias is a 4-SD shift along one direction: the best possible AUC within a class is
    # Phi(4 / sqrt(2)) = 0.998; a cross-validated linear probe on 16 columns, with as few as ~15 minority cases in
    # a class, loses a few hundredths (measured 0.99 and above); 0.95 would still catch a probe that cannot see it.
    assert norm.cdf(4 / np.sqrt(2)) > 0.99
    assert row["bias_auc_in_diseased"] > 0.95 and row["bias_auc_in_healthy"] > 0.95
    noise_run = tmp_path / "noise"
    shutil.copytree(run_dir, noise_run, symlinks=True)
    z = np.load(noise_run / "register" / "latents.npz")
    np.savez(noise_run / "register" / "latents.npz", participant_id=z["participant_id"], split=z["split"],
             z=np.random.default_rng(5).normal(size=z["z"].shape).astype(np.float32))
    row = probe.run([noise_run], ["inr"], echo=lambda *a: None)["rows"][0]
    # 300 training subjects: the AUC of a featureless probe is 0.5 with a standard error of about 0.035
    assert abs(row["bias_auc"] - 0.5) < 0.12


def test_a_one_sided_mixture_is_not_refined(monkeypatch):
    """When the two-mode mixture puts every subject on one side (seen on a 3-step registration of a tiny
    prepared cohort, whose latents barely differ), self-training has no second class to learn: discovery keeps
    the score instead of failing in the logistic regression, and the gates then report the one-sided split."""
    from morphbias_fast import gates
    from morphbias_fast.discover import shortcut

    rng = np.random.default_rng(0)
    feats, y = rng.normal(size=(120, 6)), np.tile([0, 1], 60)
    monkeypatch.setattr(shortcut, "_two_modes", lambda s, seed: (np.ones(len(s)), 0.0))
    res = shortcut.shortcut_discovery(feats, y, rng.uniform(0.2, 0.8, 120), get_backend("sklearn"))
    assert (res["role"] == "S_B").all() and not res["selected"][y == 1].any()
    frame = pd.DataFrame({"split": "train", "subgroup": res["subgroup"], "role": res["role"], "y_true": y})
    assert any("on one side" in w for w in gates.discovery(frame))
