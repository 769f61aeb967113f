"""A synthetic cohort is valid BIDS: the full validator (bids-validator-deno) reports no error for 2-D and 3-D
cohorts, pybids indexes the raw images and the derivative fields, 2-D images are single-slice volumes whose
z origin is the field's, and participants.json describes every column. The validator and pybids are the
`[bids]` extra; CI installs it, and without it the two tests that need them skip and say why."""
import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from morphbias_fast.data.fields import read_grid
from morphbias_fast.data.synth import SynthConfig, synthesize

COHORTS = {"2d": dict(n_train=8, n_val=4, n_test=4, spacing=8.0),
           "3d-mri": dict(n_train=4, n_val=4, n_test=4, spacing=8.0, dim=3, appearance="mri")}


@pytest.fixture(scope="module", params=list(COHORTS))
def cohort(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("bids") / request.param
    synthesize(out, SynthConfig(seed=3, **COHORTS[request.param]), progress=False)
    return out


def test_the_full_validator_reports_no_error(cohort):
    validator = shutil.which("bids-validator-deno")
    if validator is None:
        pytest.skip("bids-validator-deno is not installed (pip install '.[bids]')")
    out = subprocess.run([validator, str(cohort), "--json"], capture_output=True, text=True, timeout=300)
    issues = json.loads(out.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == []


def test_pybids_indexes_raw_data_and_derivatives(cohort):
    bids = pytest.importorskip("bids", reason="pybids is not installed (pip install '.[bids]')")
    layout = bids.BIDSLayout(str(cohort), derivatives=True)
    n = len(pd.read_csv(cohort / "participants.tsv", sep="\t"))
    assert len(layout.get(suffix="T1w", extension=".nii.gz", scope="raw")) == n
    assert len(layout.get(desc="displacement", suffix="xfm", scope="derivatives")) == n


def test_images_are_volumes_and_share_the_fields_origin(cohort):
    """Images are 3-D (a 2-D cohort's are single-slice volumes); a 2-D field is a 2-D ITK field on the slice's
    grid (fields.read_grid); in both NIfTI headers the first voxel sits at the same point, z included."""
    pid = "sub-0001"
    path = cohort / "derivatives" / "synth" / pid / "anat" / f"{pid}_desc-displacement_xfm.nii.gz"
    img = nib.load(cohort / pid / "anat" / f"{pid}_T1w.nii.gz")
    assert img.ndim == 3
    field = sitk.ReadImage(str(path))
    assert field.GetNumberOfComponentsPerPixel() == field.GetDimension() == (2 if img.shape[2] == 1 else 3)
    grid = read_grid(cohort / pid / "anat" / f"{pid}_T1w.nii.gz")
    assert grid.GetSize() == field.GetSize() and np.allclose(grid.GetOrigin(), field.GetOrigin())
    origin = np.array([0, 0, 0, 1.0])
    # float32 header fields: 1e-4 mm
    np.testing.assert_allclose(nib.load(path).affine @ origin, img.affine @ origin, atol=1e-4)


def test_participants_json_describes_every_column(cohort):
    columns = pd.read_csv(cohort / "participants.tsv", sep="\t").columns
    described = json.loads((cohort / "participants.json").read_text())
    assert set(described) == set(columns)
    assert all(v["Description"] for v in described.values())
