"""A copy of an mri cohort whose scans are the noiseless renderings of the same warped anatomy (no site
contrast, blur, bias field or noise; the same fields, labels and atlas): registered like the original, it
says how much of the registration's error the scanner model causes, which is the most any denoising could
give back (bench/RESULTS.md, issue 15).

    python bench/diagnostics/noiseless_cohort.py COHORT_DIR OUT_DIR

OUT_DIR gets links to COHORT_DIR's tables, atlas and true fields, and its own sub-*/anat/*_T1w.nii.gz."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from morphbias_fast.data import appearance
from morphbias_fast.data.synth import Generator, _nifti, _save_gz, read_synth_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    cfg = read_synth_config(args.cohort)
    if cfg is None or cfg.appearance != "mri":
        raise SystemExit(f"{args.cohort}: an mri cohort written by synth is needed")
    gen = Generator(cfg)
    args.out.mkdir(parents=True)
    for entry in args.cohort.iterdir():
        if not entry.name.startswith("sub-"):
            (args.out / entry.name).symlink_to(entry.resolve())
    ids = gen.participants["participant_id"].to_numpy()
    for lo in tqdm(range(0, len(ids), 32), desc="noiseless", unit="batch"):
        rows = np.arange(lo, min(lo + 32, len(ids)))
        u, _ = gen.render(rows)
        clean = appearance.noiseless(gen.warped_tissues(u))
        for b, row in enumerate(rows):
            anat = args.out / ids[row] / "anat"
            anat.mkdir(parents=True)
            _save_gz(_nifti(clean[b].astype(np.float32), gen.tpl.affine), anat / f"{ids[row]}_T1w.nii.gz")


if __name__ == "__main__":
    main()
