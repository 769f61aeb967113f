"""`morphbias-fast synth`: a cohort with a known morphological bias (docs/METHOD.md section 1).

Every subject's anatomy is the atlas warped by exp(v), v = sum_k s_k * global_mode_k (subject effect)
+ c_d * disease_mode (right insula) + bias * c_b * bias_mode (left putamen), with
s_k ~ truncated N(0,1) on [-3.5, 3.5], c_d ~ N(+1,1) for diseased and N(-1,1) for controls, c_b ~ N(2,1).
The s_k are independent by default (ours); subject_effect="shared" sets every s_k to one scalar, as SimBA does.
P(bias | disease) = bias_level, P(bias | no disease) = 1 - bias_level (c_b is drawn for every subject and
stored; it acts only where bias = 1); disease prevalence 0.5 in train and
val; the test split is balanced over the four (bias, disease) groups. Counts are exact (shuffled), not
Bernoulli draws, so every cohort has the skew it was asked for. How the warped anatomy looks (the atlas image
itself, or a multi-site MRI rendering of the warped tissue maps) and whether the bias is a shape or an
intensity change is appearance.py's part.

Output (BIDS-style, all written in a temporary folder that is renamed at the end):
  participants.tsv, dataset_description.json
  sub-<label>/anat/sub-<label>_T1w.nii.gz
  derivatives/synth/sub-<label>/anat/sub-<label>_desc-displacement_xfm.nii.gz  (ITK: LPS mm, subject(x) = atlas(x + u(x)))
  atlas/atlas_T1w.nii.gz, atlas/atlas_mask.nii.gz (the MNI152 T1 and brain mask on the cohort's grid)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from morphbias_fast.data import appearance, deform, fields
from morphbias_fast.data.cohort import SPLITS
from morphbias_fast.data.template import REGIONS, Template, load_template, load_tissues
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_folder


SUBJECT_EFFECTS = ("independent", "shared")


# A field list with defaults; `duplicates` pairs it by shape with the other config dataclasses
# (gridconfig, synth, classify.train, discover.mixture): alike in form only, nothing to share.
@dataclass(frozen=True)
class SynthConfig:
    bias_level: float = 0.9
    n_train: int = 1000
    n_val: int = 500
    n_test: int = 500
    dim: int = 2
    spacing: float = 2.0
    seed: int = 0
    appearance: str = "template"  # appearance.APPEARANCES
    shortcut: str = "morphology"  # appearance.SHORTCUTS: the bias as a shape or as an intensity change
    site_confound: float = 0.0    # mri: probability that a subject with the bias is scanned at site 0
    # Effect sizes (ours; tuned so that the classifier shows the paper's phenomenon, bench/RESULTS.md):
    disease_mm: float = 2.0     # largest displacement of the disease mode per unit coefficient
    bias_mm: float = 2.0        # same for the bias mode
    bias_intensity: float = 0.1  # --shortcut intensity: brightening at the region's centre per unit coefficient
    subject_mm: float | None = None  # RMS displacement of the whole subject effect (template 1.5, mri 3.0)
    region_radius_mm: float = 9.0
    n_modes: int | None = None  # global subject modes (template 10, mri 20)
    # independent: each global mode its own coefficient (ours: the subject effect spans n_modes directions);
    # shared: one scalar times all of them, as SimBA draws it (the subject effect is one direction).
    subject_effect: str = "independent"
    smooth_mm: float = 20.0     # smoothness of the global modes
    squaring_steps: int = 7

    def __post_init__(self):
        if self.appearance not in appearance.APPEARANCES:
            raise MorphbiasError(f"--appearance must be one of {', '.join(appearance.APPEARANCES)}, "
                                 f"got {self.appearance!r}")
        if self.shortcut not in appearance.SHORTCUTS:
            raise MorphbiasError(f"--shortcut must be one of {', '.join(appearance.SHORTCUTS)}, got {self.shortcut!r}")
        if self.subject_effect not in SUBJECT_EFFECTS:
            raise MorphbiasError(f"--subject-effect must be one of {', '.join(SUBJECT_EFFECTS)}, "
                                 f"got {self.subject_effect!r}")
        if not 0.0 <= self.site_confound <= 1.0:
            raise MorphbiasError(f"--site-confound must be in [0, 1], got {self.site_confound}")
        # Real brains differ by a few mm RMS after affine alignment, in more directions than our template
        # cohort's 1.5 mm over 10 modes; the mri cohort is meant to be the realistic one.
        realistic = self.appearance == "mri"
        if self.subject_mm is None:
            object.__setattr__(self, "subject_mm", 3.0 if realistic else 1.5)
        if self.n_modes is None:
            object.__setattr__(self, "n_modes", 20 if realistic else 10)
        if not 0.0 <= self.bias_level <= 1.0:
            raise MorphbiasError(f"--bias-level must be in [0, 1], got {self.bias_level}")
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 1:
                raise MorphbiasError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.dim not in (2, 3):
            raise MorphbiasError(f"--dim must be 2 or 3, got {self.dim}")
        if not 0.5 <= self.spacing <= 8:
            raise MorphbiasError(f"--spacing must be between 0.5 and 8 mm, got {self.spacing}")


def _truncnorm(rng, size, bound=3.5):
    out = rng.standard_normal(size)
    bad = np.abs(out) > bound
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > bound
    return out


def _exact_ones(rng, n, k):
    """A shuffled 0/1 vector of length n with exactly k ones."""
    v = np.zeros(n, dtype=int)
    v[:k] = 1
    return rng.permutation(v)


def draw_participants(cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for split, n in zip(SPLITS, (cfg.n_train, cfg.n_val, cfg.n_test)):
        if split == "test":  # balanced over (bias, disease): n/4 each, the remainder spread over the groups
            groups = np.repeat(np.arange(4), n // 4)
            groups = np.concatenate([groups, rng.permutation(4)[: n - len(groups)]])
            groups = rng.permutation(groups)
            disease, bias = groups % 2, groups // 2
        else:
            disease = _exact_ones(rng, n, n // 2 + rng.integers(0, 2) * (n % 2))
            bias = np.zeros(n, dtype=int)
            for d, p in ((1, cfg.bias_level), (0, 1 - cfg.bias_level)):
                idx = np.flatnonzero(disease == d)
                bias[idx] = _exact_ones(rng, len(idx), int(round(p * len(idx))))
        for d, b in zip(disease, bias):
            rows.append({"split": split, "disease": int(d), "bias": int(b)})
    df = pd.DataFrame(rows)
    n = len(df)
    width = max(4, len(str(n)))
    df.insert(0, "participant_id", [f"sub-{i + 1:0{width}d}" for i in range(n)])
    df["disease_coef"] = np.where(df["disease"] == 1, rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n))
    # Drawn for every subject (only cases with the bias carry the effect, bias * bias_coef), so that every
    # subject's counterfactual twin, the same subject with the bias flipped, is defined (twins.py).
    df["bias_coef"] = rng.normal(2.0, 1.0, n)
    s = _truncnorm(rng, (n, cfg.n_modes))  # drawn in full either way, so that the draws after it do not move
    if cfg.subject_effect == "shared":
        s = np.repeat(s[:, :1], cfg.n_modes, axis=1)
    for k in range(cfg.n_modes):
        df[f"subject_coef_{k}"] = s[:, k]
    return df


def build_modes(cfg: SynthConfig, tpl: Template, rng: np.random.Generator) -> torch.Tensor:
    """[n_modes + 2, D, *shape] velocity modes in voxel units: global modes, then disease, then bias."""
    sp = tpl.spacing
    glob = deform.global_modes(tpl.image.shape, cfg.n_modes, cfg.smooth_mm / sp, tpl.mask, rng)
    glob *= cfg.subject_mm / sp / np.sqrt(cfg.n_modes)
    regions = [deform.region_mode(tpl.image.shape, tpl.voxel_of(REGIONS[name]), cfg.region_radius_mm / sp) * mm / sp
               for name, mm in (("disease", cfg.disease_mm), ("bias", cfg.bias_mm))]
    return torch.from_numpy(np.concatenate([glob, np.stack(regions)]))


def coefficients(df: pd.DataFrame, cfg: SynthConfig, bias: np.ndarray | None = None) -> np.ndarray:
    """[n, n_modes + 2] float32 mode coefficients: subject modes, disease, bias * bias_coef (`bias` overrides the
    table's bias column: the counterfactual twins). With the intensity shortcut the bias moves no tissue."""
    bias = df["bias"].to_numpy() if bias is None else np.asarray(bias)
    shape_bias = bias * df["bias_coef"].to_numpy() * (cfg.shortcut == "morphology")
    return np.concatenate([df[[f"subject_coef_{k}" for k in range(cfg.n_modes)]].to_numpy(),
                           df[["disease_coef"]].to_numpy(), shape_bias[:, None]], axis=1).astype(np.float32)


class Generator:
    """What a cohort is made from, all fixed by its SynthConfig: the template (and tissue maps), the modes and
    the participants table (with each mri subject's site). `render` makes any rows of that table, with the
    table's bias or another one (the counterfactual twins)."""

    def __init__(self, cfg: SynthConfig):
        seeds = np.random.SeedSequence(cfg.seed).spawn(3)
        self.cfg = cfg
        self.tpl = load_template(cfg.dim, cfg.spacing)
        self.modes = build_modes(cfg, self.tpl, np.random.default_rng(seeds[0]))
        self.participants = draw_participants(cfg, np.random.default_rng(seeds[1]))
        self.atlas = torch.from_numpy(self.tpl.image)[None, None]
        if cfg.appearance == "mri":
            self.participants["site"] = appearance.draw_sites(len(self.participants), self.participants["bias"],
                                                              cfg.site_confound, np.random.default_rng(seeds[2]))
            self.tissues = torch.from_numpy(load_tissues(cfg.dim, cfg.spacing))[None]
        self.bump = None
        if cfg.shortcut == "intensity":
            self.bump = appearance.bump(self.tpl.image.shape, self.tpl.voxel_of(REGIONS["bias"]),
                                        cfg.region_radius_mm / self.tpl.spacing)

    def warped_tissues(self, u: torch.Tensor) -> np.ndarray:
        """[B, 3, *shape] the MNI152 tissue maps warped by displacements u [B, D, *shape] (mri only)."""
        with torch.no_grad():
            return deform.warp(self.tissues, u).numpy()

    def render(self, rows: np.ndarray, bias: np.ndarray | None = None):
        """(displacements [n, D, *shape], images [n, *shape] float32) of the participants at positions `rows`."""
        df = self.participants.iloc[np.asarray(rows)]
        b = df["bias"].to_numpy() if bias is None else np.asarray(bias)
        with torch.no_grad():
            v = torch.einsum("bk,kd...->bd...", torch.from_numpy(coefficients(df, self.cfg, b)), self.modes)
            u = deform.exp_svf(v, self.cfg.squaring_steps)
        brighten = None
        if self.bump is not None:
            brighten = (b * df["bias_coef"].to_numpy() * self.cfg.bias_intensity)[:, None] * self.bump.ravel()
            brighten = brighten.reshape(len(df), *self.bump.shape).astype(np.float32)
        if self.cfg.appearance == "template":
            with torch.no_grad():
                images = deform.warp(self.atlas, u)[:, 0].numpy()
            return u, images if brighten is None else images * (1 + brighten)
        rngs = [appearance.subject_rng(self.cfg.seed, r) for r in np.asarray(rows)]
        return u, appearance.render_mri(self.warped_tissues(u), df["site"].to_numpy(), rngs, self.tpl.mask, brighten)


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image in MNI space; a 2-D slice is stored as a single-slice volume (BIDS requires 3-D)."""
    img = nib.Nifti1Image(data[..., None] if data.ndim == 2 else data, affine)
    img.header.set_xyzt_units("mm")
    img.set_sform(affine, code=4)  # aligned to MNI152
    img.set_qform(affine, code=4)
    return img


def _save_gz(img, path: Path) -> None:
    # nibabel gzips with mtime 0, so the same data gives the same bytes.
    nib.save(img, str(path))


def synthesize(out_dir: Path, cfg: SynthConfig, overwrite: bool = False, progress: bool = True,
               batch: int = 32) -> Path:
    """Write the cohort to out_dir (see module doc). Returns out_dir."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise MorphbiasError(f"{out_dir} exists and is not empty (use --overwrite to replace it)")
    with atomic_folder(out_dir) as tmp:
        gen = Generator(cfg)
        tpl, df = gen.tpl, gen.participants

        (tmp / "atlas").mkdir()
        _save_gz(_nifti(tpl.image, tpl.affine), tmp / "atlas" / "atlas_T1w.nii.gz")
        _save_gz(_nifti(tpl.mask.astype(np.uint8), tpl.affine), tmp / "atlas" / "atlas_mask.nii.gz")
        ref_itk = fields.read_grid(tmp / "atlas" / "atlas_T1w.nii.gz")

        bar = tqdm(total=len(df), desc="synth", unit="subject", disable=not progress)
        for lo in range(0, len(df), batch):
            rows = np.arange(lo, min(lo + batch, len(df)))
            u, imgs = gen.render(rows)
            for b in range(len(rows)):
                pid = df["participant_id"].iloc[lo + b]
                anat = tmp / pid / "anat"
                anat.mkdir(parents=True)
                _save_gz(_nifti(imgs[b].astype(np.float32), tpl.affine), anat / f"{pid}_T1w.nii.gz")
                xfm = tmp / "derivatives" / "synth" / pid / "anat"
                xfm.mkdir(parents=True)
                fields.write(fields.to_itk(u[b].numpy(), ref_itk), xfm / f"{pid}_desc-displacement_xfm.nii.gz",
                             z_mm=float(tpl.affine[2, 3]))
            bar.update(len(rows))
        bar.close()

        df.to_csv(tmp / "participants.tsv", sep="\t", index=False, float_format="%.6f")
        _write_bids_metadata(tmp, cfg, df.columns)
    return out_dir


_COLUMNS = {
    "participant_id": "Subject label (sub-NNNN).",
    "split": "train, val or test: the split every stage uses (test is balanced over bias and disease).",
    "disease": "1 = diseased (the label a classifier predicts), 0 = control.",
    "bias": "1 = the bias effect is present (the shortcut), 0 = absent.",
    "disease_coef": "Coefficient of the disease mode (right insula): N(+1, 1) if diseased, N(-1, 1) if not.",
    "bias_coef": "Coefficient of the bias effect (left putamen), drawn for everyone; acts where bias = 1.",
    "site": "Scanner site (0, 1, 2) of the mri appearance: contrast, noise and bias-field strength.",
}


def _write_bids_metadata(root: Path, cfg: SynthConfig, columns) -> None:
    """dataset_description.json (with the SynthConfig), participants.json describing every column, README,
    LICENSE, .bidsignore (atlas/ is ours, not BIDS) and the derivatives' own dataset_description.json."""
    license = "CC0"  # generated data, derived from the MNI152 2009 template (free to use with attribution)
    desc = {"Name": f"morphbias-fast synthetic cohort (bias level {cfg.bias_level})", "BIDSVersion": "1.9.0",
            "DatasetType": "raw", "License": license, "Authors": ["morphbias-fast synth"],
            "GeneratedBy": [{"Name": "morphbias-fast synth"}], "SynthConfig": asdict(cfg)}
    (root / "dataset_description.json").write_text(json.dumps(desc, indent=2) + "\n")
    described = {c: {"Description": _COLUMNS.get(c, f"Coefficient of global subject mode {c.rsplit('_', 1)[-1]}: "
                                                    "truncated N(0, 1).")} for c in columns if c != "participant_id"}
    described["participant_id"] = {"Description": _COLUMNS["participant_id"]}
    (root / "participants.json").write_text(json.dumps(described, indent=2) + "\n")
    (root / "README").write_text(
        f"A synthetic cohort written by `morphbias-fast synth` ({cfg.appearance} appearance, {cfg.dim}-D, bias level "
        f"{cfg.bias_level}, seed {cfg.seed}). Each subject is the MNI152 2009 template warped by a known "
        f"deformation (derivatives/synth holds every field in ITK's convention). atlas/ holds the atlas the\n"
        f"registration uses; it is not BIDS data and is listed in .bidsignore.\n")
    (root / "LICENSE").write_text(f"{license}: these generated images and tables may be used without restriction.\n")
    (root / ".bidsignore").write_text("atlas\n")  # the folder itself: "atlas/" leaves the folder reported
    deriv = {"Name": "morphbias-fast synth: true displacement fields", "BIDSVersion": "1.9.0",
             "DatasetType": "derivative", "GeneratedBy": [{"Name": "morphbias-fast synth"}]}
    (root / "derivatives" / "synth" / "dataset_description.json").write_text(json.dumps(deriv, indent=2) + "\n")


def read_synth_config(cohort_dir) -> SynthConfig | None:
    """The SynthConfig a cohort was made with (from its dataset_description.json), or None for a cohort that
    synth did not write."""
    desc = Path(cohort_dir) / "dataset_description.json"
    if not desc.exists():
        return None
    cfg = json.loads(desc.read_text()).get("SynthConfig")
    if not cfg:
        return None
    # Cohorts written before these settings existed are template cohorts with the shape shortcut.
    return SynthConfig(**{"appearance": "template", "shortcut": "morphology", **cfg})
