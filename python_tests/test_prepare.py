"""`prepare` on a real-style BIDS dataset made here from the MNI152 template: 3-D scans on their own grids,
each moved by a known random affine and scaled by its own intensity factor (x0.01 to x1000). The affines
prepare recovers must be within 1 mm (mean over the brain) and 1 degree of the ones applied, the images must
land on the atlas grid with the same intensity scale, and the prepared cohort must go through `run`."""
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data import load_cohort
from morphbias_fast.data.prepare import PrepareConfig, prepare, read_affine
from morphbias_fast.data.template import load_template

pytest.importorskip("bids", reason="prepare reads BIDS with pybids: pip install '.[bids]'")

N = 12
SPACING = 4.0        # the atlas grid of the test (the default is 2 mm; 4 keeps the test fast)
SUBJECT_MM = 2.5     # the scans' own voxel size


def _template_itk(spacing):
    tpl = load_template(3, spacing)
    img = nib.Nifti1Image(tpl.image, tpl.affine)
    return img, tpl


def _random_affine(rng) -> sitk.AffineTransform:
    """Atlas point -> subject point: rotation up to 8 degrees about each axis, shift up to 8 mm, scale 0.93-1.07,
    about the brain's centre."""
    angles = np.deg2rad(rng.uniform(-8, 8, 3))
    tx = sitk.Euler3DTransform((0.0, 0.0, 0.0), *angles)
    m = np.array(tx.GetMatrix()).reshape(3, 3) * rng.uniform(0.93, 1.07)
    aff = sitk.AffineTransform(3)
    aff.SetMatrix(m.ravel().tolist())
    aff.SetCenter((0.0, -18.0, 10.0))
    aff.SetTranslation(rng.uniform(-8, 8, 3).tolist())
    return aff


@pytest.fixture(scope="module")
def bids_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids") / "raw"
    root.mkdir()
    nii, _ = _template_itk(2.0)
    nib.save(nii, str(root.parent / "template.nii.gz"))
    template = sitk.ReadImage(str(root.parent / "template.nii.gz"), sitk.sitkFloat32)
    rng = np.random.default_rng(7)
    truth, rows = {}, []
    for i in range(N):
        pid = f"sub-{i + 1:02d}"
        aff = _random_affine(rng)
        grid = sitk.Image([int(s * 2.0 / SUBJECT_MM) + 8 for s in template.GetSize()], sitk.sitkFloat32)
        grid.SetSpacing([SUBJECT_MM] * 3)
        grid.SetOrigin([o - 10.0 for o in template.GetOrigin()])
        scan = sitk.Resample(template, grid, aff.GetInverse(), sitk.sitkLinear, 0.0)  # subject(y) = T(A^-1 y)
        scale = float(10.0 ** rng.uniform(-2, 3))
        anat = root / pid / "anat"
        anat.mkdir(parents=True)
        sitk.WriteImage(scan * scale, str(anat / f"{pid}_T1w.nii.gz"))
        truth[pid] = aff
        split = "test" if i < 4 else "val" if i < 8 else "train"  # the test split holds all four cells
        rows.append({"participant_id": pid, "split": split, "disease": i % 2, "bias": (i // 2) % 2})
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.9.0"}))
    return root, truth


@pytest.fixture(scope="module")
def prepared(bids_dataset, tmp_path_factory):
    root, _ = bids_dataset
    out = tmp_path_factory.mktemp("prepared") / "cohort"
    prepare(root, out, PrepareConfig(spacing=SPACING), progress=False)
    return out


def test_recovered_affines_are_within_1mm_and_1_degree(bids_dataset, prepared):
    _, truth = bids_dataset
    tpl = load_template(3, SPACING)
    ijk = np.argwhere(tpl.mask)
    ras = ijk @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]
    lps = ras * np.array([-1, -1, 1])  # ITK's physical frame
    for pid, aff in truth.items():
        found = read_affine(prepared, pid)
        err = [np.linalg.norm(np.array(found.TransformPoint(p)) - np.array(aff.TransformPoint(p)))
               for p in lps[::7].tolist()]
        assert np.mean(err) <= 1.0, (pid, np.mean(err))
        a = np.array(sitk.AffineTransform(found).GetMatrix()).reshape(3, 3)
        b = np.array(aff.GetMatrix()).reshape(3, 3)
        u, _, vt = np.linalg.svd(a @ np.linalg.inv(b))
        rot = u @ vt
        angle = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
        assert angle <= 1.0, (pid, angle)


def test_images_are_on_the_atlas_grid_with_one_intensity_scale(prepared):
    c = load_cohort(prepared)
    atlas = nib.load(prepared / "atlas" / "atlas_T1w.nii.gz")
    assert c.images.shape[1:] == atlas.shape and np.allclose(c.affine, atlas.affine)
    mask = nib.load(prepared / "atlas" / "atlas_mask.nii.gz").get_fdata() > 0.5
    p99 = [np.percentile(img[mask], 99) for img in c.images]
    np.testing.assert_allclose(p99, 1.0, rtol=1e-5)  # x0.01 to x1000 scans, one scale after prepare


def test_prepared_cohort_runs_end_to_end(prepared, tmp_path):
    res = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "--cohort", str(prepared), "--epochs", "1",
                                    "--steps", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "report.html").exists()


def test_not_a_bids_dataset_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["prepare", str(tmp_path), str(tmp_path / "out")])
    assert res.exit_code == 1 and "not a BIDS dataset" in res.output and "Traceback" not in res.output
