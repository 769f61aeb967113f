"""Local NCC for cohorts whose contrast differs from the atlas: the patch sampler against direct indexing,
invariance to each patch's gain and offset, and on an mri subject the true field (read back through
SimpleITK's convention) scores better than no displacement."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from morphbias_fast.data import load_cohort, read_nifti
from morphbias_fast.data.fields import from_itk
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.images import Images
from morphbias_fast.register.loss import loss_terms, patch_offsets, similarity
from morphbias_fast.register.model import build_model
from morphbias_fast.register.stage import similarity_for


def test_patches_equal_direct_indexing_with_clamped_borders():
    rng = np.random.default_rng(0)
    images = rng.random((3, 7, 9)).astype(np.float32)
    imgs = Images(images, np.ones((7, 9), np.float32), torch.device("cpu"))
    vox = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]]).expand(2, 3, 2)
    off = patch_offsets(2, radius=1)
    got = imgs.patches(torch.tensor([2, 0]), vox, off).numpy()
    for b, s in enumerate((2, 0)):
        for p in range(3):
            for k, (di, dj) in enumerate(off.long().tolist()):
                i = min(max(int(vox[b, p, 0]) + di, 0), 6)
                j = min(max(int(vox[b, p, 1]) + dj, 0), 8)
                assert got[b, p, k] == pytest.approx(images[s, i, j])  # Images divides by the atlas scale (1)


def test_lncc_ignores_each_patchs_gain_and_offset():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 5, 25, generator=g), torch.rand(2, 5, 25, generator=g)
    gain, shift = torch.rand(2, 5, 1, generator=g) + 0.5, torch.rand(2, 5, 1, generator=g)
    assert similarity("lncc", a * gain + shift, b).item() == pytest.approx(similarity("lncc", a, b).item(), abs=1e-5)
    assert similarity("lncc", a, a).item() == pytest.approx(0.0, abs=1e-5)


@pytest.fixture(scope="module")
def mri(tmp_path_factory):
    out = tmp_path_factory.mktemp("lncc") / "cohort"
    synthesize(out, SynthConfig(seed=2, appearance="mri", n_train=6, n_val=2, n_test=4), progress=False)
    return out


def test_auto_similarity_is_lncc_for_mri_and_mse_for_template(mri, tmp_path):
    tpl = tmp_path / "tpl"
    synthesize(tpl, SynthConfig(n_train=2, n_val=2, n_test=4, spacing=8.0), progress=False)
    assert similarity_for(mri) == "lncc" and similarity_for(tpl) == "mse"


def test_lncc_scores_the_true_field_above_no_displacement(mri):
    """The stored field is the truth; the atlas (MNI152 T1) is not how the subjects look. LNCC must still rank
    the truth first on every subject; that is what makes it usable where mse is not."""
    c = load_cohort(mri)
    atlas = read_nifti(c.atlas_path)[0]
    imgs = Images(c.images, atlas, torch.device("cpu"))
    brain = np.flatnonzero(atlas.ravel() > 0.1)
    flat = torch.as_tensor(brain)[None]
    vox = imgs.coords(flat)
    off = patch_offsets(2)
    for row, pid in enumerate(c.ids):
        disp = sitk.ReadImage(str(mri / "derivatives" / "synth" / pid / "anat" / f"{pid}_desc-displacement_xfm.nii.gz"))
        u = torch.as_tensor(from_itk(disp), dtype=torch.float32).reshape(2, -1)[:, brain].T[None]
        subj = imgs.patches(torch.tensor([row]), vox, off)
        true = similarity("lncc", subj, imgs.atlas_at(vox[:, :, None] + off, u[:, :, None])).item()
        none = similarity("lncc", subj, imgs.atlas_at(vox[:, :, None] + off, torch.zeros_like(u)[:, :, None])).item()
        assert true < none, (pid, true, none)


def test_the_window_radius_reaches_the_loss(mri):
    # A fresh network draws u = 0 (its output layer starts at zero), so the loss's similarity term must equal
    # lncc computed by hand over (2r+1)^2 windows at the same voxels, for each radius.
    c = load_cohort(mri)
    atlas = read_nifti(c.atlas_path)[0]
    imgs = Images(c.images, atlas, torch.device("cpu"))
    flat = torch.as_tensor(np.flatnonzero(atlas.ravel() > 0.1)[:50])[None].expand(2, -1)
    subjects = torch.tensor([0, 1])
    model = build_model("hashgrid", 2)
    got = {}
    for r in (1, 3):
        cfg = INRConfig(similarity="lncc", lncc_radius=r)
        got[r] = loss_terms(model, imgs, torch.zeros(2, 128), subjects, flat, cfg)["sim"].item()
        off, vox = patch_offsets(2, r), imgs.coords(flat)
        want = similarity("lncc", imgs.patches(subjects, vox, off),
                          imgs.atlas_at(vox[:, :, None] + off, torch.zeros(2, 50, 1, 2))).item()
        assert got[r] == want  # the same float32 ops on the same inputs in the same order: bit for bit
    assert got[1] != got[3]
    with pytest.raises(MorphbiasError, match="--lncc-radius"):
        INRConfig(lncc_radius=0)
