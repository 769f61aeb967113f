"""The cohort reader refuses broken cohorts before any result is written, naming the file, participant or
column at fault; `classify` turns that into a one-line error without a traceback."""
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from morphbias_fast.cli import main
from morphbias_fast.data import load_cohort
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "cohort"
    synthesize(out, SynthConfig(n_train=6, n_val=4, n_test=4, spacing=6.0), progress=False)
    return out


@pytest.fixture
def cohort(pristine, tmp_path):
    dst = tmp_path / "cohort"
    shutil.copytree(pristine, dst)
    return dst


def image(root, pid="sub-0003"):
    return root / pid / "anat" / f"{pid}_T1w.nii.gz"


def test_reads_a_good_cohort(cohort):
    c = load_cohort(cohort)
    assert c.images.shape[0] == 14 and c.labels.tolist() == pd.read_csv(cohort / "participants.tsv", sep="\t").disease.tolist()
    assert set(c.splits) == {"train", "val", "test"} and c.bias is not None
    assert c.displacement_path("sub-0001").exists() and c.atlas_path.exists()


def break_truncated(root):
    p = image(root)
    p.write_bytes(p.read_bytes()[:200])
    return "sub-0003_T1w.nii.gz"


def break_garbage(root):
    image(root).write_bytes(b"not a nifti file at all")
    return "sub-0003_T1w.nii.gz"


def break_nonfinite(root):
    img = nib.load(image(root))
    data = img.get_fdata().astype(np.float32)
    data[3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), image(root))
    return "NaN"


def break_shape(root):
    img = nib.load(image(root))
    nib.save(nib.Nifti1Image(img.get_fdata()[:-1].astype(np.float32), img.affine), image(root))
    return "has shape"


def break_missing_image(root):
    image(root, "sub-0005").unlink()
    return "sub-0005"


def break_label_column(root):
    df = pd.read_csv(root / "participants.tsv", sep="\t").drop(columns=["disease"])
    df.to_csv(root / "participants.tsv", sep="\t", index=False)
    return "'disease'"


def break_label_values(root):
    df = pd.read_csv(root / "participants.tsv", sep="\t")
    df.loc[2, "disease"] = 3
    df.to_csv(root / "participants.tsv", sep="\t", index=False)
    return "only 0 and 1"


def break_no_tsv(root):
    (root / "participants.tsv").unlink()
    return "participants.tsv"


BREAKERS = [break_truncated, break_garbage, break_nonfinite, break_shape, break_missing_image, break_label_column,
            break_label_values, break_no_tsv]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__)
def test_reader_names_the_problem(cohort, breaker):
    needle = breaker(cohort)
    with pytest.raises(MorphbiasError, match=needle.replace("(", r"\(")) as err:
        load_cohort(cohort)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__)
def test_classify_refuses_before_writing(cohort, tmp_path, breaker):
    needle = breaker(cohort)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["classify", str(run), "--cohort", str(cohort), "--epochs", "1"])
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (run / "classify").exists()


def test_other_label_column_and_missing_split(cohort):
    df = pd.read_csv(cohort / "participants.tsv", sep="\t").drop(columns=["split"])
    df["outcome"] = 1 - df["disease"]
    df.to_csv(cohort / "participants.tsv", sep="\t", index=False)
    c = load_cohort(cohort, label_column="outcome")
    assert (c.labels == 1 - df["disease"].to_numpy()).all()
    assert set(c.splits) == {"train", "val", "test"}  # assigned, stratified, with a fixed seed
