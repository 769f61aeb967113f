"""Counterfactual twins: re-rendered subjects equal the cohort's stored images, and a twin differs from its
subject only where the bias effect moves tissue; the generator's settings are required."""
import json
import shutil

import numpy as np
import torch
import pandas as pd
import pytest
from scipy import ndimage

from morphbias_fast.data import load_cohort
from morphbias_fast.data.deform import transport
from morphbias_fast.data.synth import SynthConfig, build_modes, read_synth_config, synthesize
from morphbias_fast.data.template import load_template
from morphbias_fast.data.twins import counterfactual_twins
from morphbias_fast.errors import MorphbiasError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("twins") / "cohort"
    synthesize(out, SynthConfig(n_train=4, n_val=2, n_test=8, seed=2), progress=False)
    return out


def test_twins_differ_only_where_the_bias_moves_tissue(cohort):
    c = load_cohort(cohort)
    te = c.index("test")
    own, twin = counterfactual_twins(cohort, c.ids[te])
    assert np.array_equal(own, c.images[te])  # the same renderer, the same float32 bits as the stored images
    cfg = read_synth_config(cohort)
    tpl = load_template(cfg.dim, cfg.spacing)
    modes = build_modes(cfg, tpl, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[0])).numpy()
    bias_mode = np.sqrt((modes[-1] ** 2).sum(0))  # voxels of bias displacement per unit coefficient
    coef = c.participants.bias_coef.to_numpy()[te]
    # First-order bound outside the region: a velocity change under 1e-3 voxel moves the sampled atlas point by
    # about as much, and the atlas changes by at most max|grad| per voxel there.
    bound = max(np.abs(g).max() for g in np.gradient(tpl.image)) * 1e-3
    for k in range(len(te)):
        # where the bias effect's velocity is at least 1e-3 voxel, widened by 3 voxels for interpolation
        region = ndimage.binary_dilation(bias_mode * abs(coef[k]) >= 1e-3, iterations=3)
        diff = np.abs(own[k] - twin[k])
        assert diff[~region].max() <= bound, k
        if abs(coef[k]) > 1:
            assert diff[region].max() > 100 * bound, k  # and the twin does differ inside it


def test_twins_need_the_generators_settings(cohort, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(cohort, edited)
    tsv = edited / "participants.tsv"
    df = pd.read_csv(tsv, sep="\t")
    df.loc[0, "bias"] = 1 - df.loc[0, "bias"]
    df.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(MorphbiasError, match="does not match"):
        counterfactual_twins(edited, df.participant_id[:1])
    desc = edited / "dataset_description.json"
    desc.write_text(json.dumps({k: v for k, v in json.loads(desc.read_text()).items() if k != "SynthConfig"}))
    with pytest.raises(MorphbiasError, match="not made by"):
        counterfactual_twins(edited, df.participant_id[:1])


def test_transport_keeps_an_unmoved_image_and_follows_a_known_shift():
    """deform.transport: with the same anatomy on both sides the image comes back bit for bit; with u_from = 0
    and u_to a uniform shift of one voxel along x, out(x) = image(x + 1) (linear interpolation at integer
    positions is exact), away from the border."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 12, 10, generator=g)
    u = torch.rand(2, 2, 12, 10, generator=g)
    assert torch.equal(transport(image, u, u), image)
    shift = torch.zeros(2, 2, 12, 10)
    shift[:, 0] = 1.0
    out = transport(image, torch.zeros_like(shift), shift)
    # the shift is 1 in float32 and the sample lands on a voxel, but the grid_sample coordinates go through
    # [-1, 1] normalisation in float32, which leaves weights 1 - ~1e-7: values in [0, 1] move by < 1e-6
    assert torch.allclose(out[:, :-1], image[:, 1:], atol=1e-6)
