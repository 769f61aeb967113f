"""The synthetic cohort: layout, exact group counts, ground-truth displacements checked with SimpleITK
(an independent implementation of ITK's displacement-field convention), reproducibility, and refusal of
bad arguments without leaving files behind."""
import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data.fields import read_grid
from morphbias_fast.data.synth import SynthConfig, read_synth_config, synthesize

SMALL = dict(n_train=12, n_val=8, n_test=8, spacing=4.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synthesize(out, SynthConfig(bias_level=0.75, seed=3, **SMALL), progress=False)
    return out


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_participants(cohort):
    df = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert list(df.columns[:4]) == ["participant_id", "split", "disease", "bias"]
    assert {"disease_coef", "bias_coef", "subject_coef_0", "subject_coef_9"} <= set(df.columns)
    assert df.participant_id.str.fullmatch(r"sub-\d{4}").all()
    for pid in df.participant_id:
        assert (cohort / pid / "anat" / f"{pid}_T1w.nii.gz").is_file()
        assert (cohort / "derivatives" / "synth" / pid / "anat" / f"{pid}_desc-displacement_xfm.nii.gz").is_file()
    assert (cohort / "atlas" / "atlas_T1w.nii.gz").is_file() and (cohort / "atlas" / "atlas_mask.nii.gz").is_file()
    assert (cohort / "dataset_description.json").is_file()
    assert not list(cohort.parent.glob(".*partial*"))


def test_group_counts_are_exact(cohort):
    df = pd.read_csv(cohort / "participants.tsv", sep="\t")
    test = df[df.split == "test"]
    assert test.groupby(["bias", "disease"]).size().tolist() == [2, 2, 2, 2]  # balanced: 8 / 4
    for split, n in (("train", 12), ("val", 8)):
        part = df[df.split == split]
        assert len(part) == n and part.disease.sum() == n // 2  # prevalence 0.5
        # bias level 0.75: P(bias | disease) = 0.75, P(bias | control) = 0.25, rounded to whole subjects
        assert part[part.disease == 1].bias.sum() == round(0.75 * (n // 2))
        assert part[part.disease == 0].bias.sum() == round(0.25 * (n // 2))
    # the bias coefficient is drawn for everyone (the twins need it); it acts only where bias = 1
    assert df.bias_coef.notna().all() and (df.bias_coef[df.bias == 0] != 0).all()


def test_simpleitk_reproduces_subjects_from_true_displacements(cohort):
    df = pd.read_csv(cohort / "participants.tsv", sep="\t")
    # the 2-D cohort's single-slice volumes as the 2-D images its 2-D fields apply to
    atlas = read_grid(cohort / "atlas" / "atlas_T1w.nii.gz", sitk.sitkFloat64)
    for pid in df.participant_id[:10]:
        subj = read_grid(cohort / pid / "anat" / f"{pid}_T1w.nii.gz", sitk.sitkFloat64)
        disp = sitk.ReadImage(str(cohort / "derivatives" / "synth" / pid / "anat" /
                                  f"{pid}_desc-displacement_xfm.nii.gz"), sitk.sitkVectorFloat64)
        tx = sitk.DisplacementFieldTransform(sitk.Image(disp))
        warped = sitk.GetArrayFromImage(sitk.Resample(atlas, subj, tx, sitk.sitkLinear, 0.0)).ravel()
        r = np.corrcoef(warped, sitk.GetArrayFromImage(subj).ravel())[0, 1]
        assert r >= 0.98  # the Cohort issue's bar; the same linear interpolation gives r ~ 1 - 1e-12


def test_true_displacements_do_not_fold(cohort):
    df = pd.read_csv(cohort / "participants.tsv", sep="\t")
    for pid in df.participant_id:
        disp = sitk.ReadImage(str(cohort / "derivatives" / "synth" / pid / "anat" /
                                  f"{pid}_desc-displacement_xfm.nii.gz"), sitk.sitkVectorFloat64)
        # DisplacementFieldJacobianDeterminant ignores direction cosines; our grids have identity direction
        # (LPS-aligned voxel axes), which is what makes its measurement valid here.
        assert np.allclose(disp.GetDirection(), np.eye(2).ravel())
        det = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(disp))
        assert det.min() > 0


def test_images_are_warped_atlases_in_mni_space(cohort):
    atlas = nib.load(cohort / "atlas" / "atlas_T1w.nii.gz")
    img = nib.load(cohort / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz")
    assert img.shape == atlas.shape and np.allclose(img.affine, atlas.affine)
    assert img.header.get_xyzt_units()[0] == "mm"
    data = img.get_fdata()
    assert np.isfinite(data).all() and data.max() > 0.5


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    cfg = SynthConfig(n_train=4, n_val=4, n_test=4, spacing=6.0, seed=7)
    synthesize(a, cfg, progress=False)
    synthesize(b, cfg, progress=False)
    synthesize(c, SynthConfig(n_train=4, n_val=4, n_test=4, spacing=6.0, seed=8), progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_three_d_cohort(tmp_path):
    out = tmp_path / "c3"
    synthesize(out, SynthConfig(n_train=2, n_val=2, n_test=4, dim=3, spacing=8.0), progress=False)
    img = nib.load(out / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz")
    assert img.ndim == 3
    disp = sitk.ReadImage(str(out / "derivatives" / "synth" / "sub-0001" / "anat" /
                              "sub-0001_desc-displacement_xfm.nii.gz"))
    assert disp.GetNumberOfComponentsPerPixel() == 3 and disp.GetDimension() == 3


@pytest.mark.parametrize("args,needle", [
    (["--bias-level", "1.5"], "--bias-level"), (["--bias-level", "-0.1"], "--bias-level"),
    (["--n-train", "0"], "--n-train"), (["--n-test", "-3"], "--n-test"), (["--spacing", "0.1"], "--spacing"),
])
def test_bad_arguments_fail_cleanly(tmp_path, args, needle):
    out = tmp_path / "cohort"
    result = CliRunner().invoke(main, ["synth", str(out), *args])
    assert result.exit_code != 0 and needle in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_non_empty_dir_needs_overwrite(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    small = ["--n-train", "2", "--n-val", "2", "--n-test", "4", "--spacing", "8"]
    result = CliRunner().invoke(main, ["synth", str(out), *small])
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "user data"
    result = CliRunner().invoke(main, ["synth", str(out), *small, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "participants.tsv").exists()


def test_crash_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sitk.WriteImage

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(sitk, "WriteImage", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        synthesize(tmp_path / "cohort", SynthConfig(n_train=4, n_val=4, n_test=4, spacing=6.0), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_shared_subject_effect_is_one_scalar_and_moves_no_other_draw(tmp_path):
    """--subject-effect shared (SimBA's draw): every global mode gets the subject's one scalar; the labels and
    the other coefficients are those of the default cohort of the same seed, and the cohort remembers the
    setting (the unbiased reference re-draws the cohort from it)."""
    a, b = tmp_path / "independent", tmp_path / "shared"
    base = ["--n-train", "8", "--n-val", "4", "--n-test", "4", "--spacing", "6", "--seed", "5"]
    for out, extra in ((a, []), (b, ["--subject-effect", "shared"])):
        result = CliRunner().invoke(main, ["synth", str(out), *base, *extra])
        assert result.exit_code == 0, result.output
    pa, pb = (pd.read_csv(p / "participants.tsv", sep="\t") for p in (a, b))
    modes = [c for c in pa.columns if c.startswith("subject_coef_")]
    assert len(modes) == 10
    assert (pb[modes].to_numpy() == pb[["subject_coef_0"]].to_numpy()).all()
    assert (pa[modes].nunique(axis=1) == len(modes)).all()  # independent draws: no two equal
    same = ["participant_id", "split", "disease", "bias", "disease_coef", "bias_coef", "subject_coef_0"]
    pd.testing.assert_frame_equal(pa[same], pb[same])
    assert read_synth_config(b).subject_effect == "shared" and read_synth_config(a).subject_effect == "independent"
