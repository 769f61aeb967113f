"""The detection the registration network could give at best: every subject's latent fitted to its true
displacement field (the network frozen), written as the latents of a copy of the run, on which `bench probe`
and `bench discover` then measure what a perfect latent fit would detect (bench/RESULTS.md, issue 15).

    python bench/diagnostics/supervised_latents.py RUN_DIR OUT_DIR [--steps 300] [--points 256] [--train SECONDS]

OUT_DIR gets links to RUN_DIR's cohort and classify stages and a register stage whose latents.npz holds the
supervised latents (model, atlas and metrics copied; metrics gain the supervised fit's endpoint error). The fit:
squared field error at `points` brain voxels per subject and step, Adam lr 5e-2 decayed to 0 along a half
cosine, from the stored latents, all subjects at once in batches of 128.

With --train SECONDS the network itself is first trained on the true fields of the training subjects (same
architecture, optimiser and learning rates as the register stage, squared field error instead of the image
loss) for that long, its latents started near zero: whether the architecture can carry the bias at all, apart
from what the image similarity teaches it."""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from tqdm import tqdm

from run_copy import copy_with_latents

from morphbias_fast.data import fields, load_cohort, read_nifti
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.decode import Decoder
from morphbias_fast.register.model import build_model
from morphbias_fast.register.train import make_optimizer
from morphbias_fast.runfolder import RunFolder

BATCH = 128


def train_on_truth(x, t, is_train, dim: int, latent_dim: int, seconds: float):
    """A fresh network and training latents fitted to the true fields of the training subjects (mse) for
    `seconds`; returns (model, latents for every subject: the mean training latent for the others, info)."""
    cfg = INRConfig(latent_dim=latent_dim)
    torch.manual_seed(0)
    model = build_model("hashgrid", dim, latent_dim)
    rows = torch.as_tensor(np.nonzero(is_train)[0])
    lat = torch.nn.Parameter(torch.randn(len(rows), latent_dim, generator=torch.Generator().manual_seed(0)) * 0.01)
    opt = make_optimizer(model, lat, cfg)
    gen = torch.Generator().manual_seed(1)
    start, steps = time.monotonic(), 0
    bar = tqdm(desc="network on true fields", unit="step")
    while time.monotonic() - start < seconds:
        b = torch.randperm(len(rows), generator=gen)[: cfg.batch_subjects]
        sel = torch.randint(0, len(x), (len(b), cfg.points), generator=gen)
        u, _ = model(x[sel], lat[b])
        target = torch.stack([t[rows[i], s] for i, s in zip(b.tolist(), sel)])
        opt.zero_grad()
        (((u - target) ** 2).mean() + cfg.beta * (lat[b] ** 2).mean()).backward()
        opt.step()
        steps += 1
        bar.update(1)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(False)
    z = lat.detach().mean(0).expand(len(is_train), -1).clone()
    z[rows] = lat.detach()
    return model, z, {"seconds": seconds, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--train", type=float, default=0.0, help="seconds of supervised network training first")
    args = ap.parse_args()
    run = RunFolder(args.run)
    cohort = load_cohort(run.resolve_cohort())
    mask = read_nifti(cohort.mask_path)[0] > 0.5
    atlas, aff = read_nifti(cohort.atlas_path)
    spacing = np.sqrt((aff[:3, :atlas.ndim] ** 2).sum(0))
    dec = Decoder.load(run.register)
    for p in dec.model.parameters():
        p.requires_grad_(False)
    lat = np.load(run.register.latents, allow_pickle=True)
    ids = list(lat["participant_id"])
    where = np.nonzero(mask)
    truth = np.stack([fields.from_itk(sitk.ReadImage(str(cohort.displacement_path(pid)), sitk.sitkVectorFloat64))
                      [(slice(None),) + where] for pid in tqdm(ids, desc="true fields")])  # [S, D, V]
    t = torch.as_tensor(truth, dtype=torch.float32).permute(0, 2, 1)  # [S, V, D]
    vox = np.argwhere(mask).astype(np.float32)
    x = torch.as_tensor(vox / np.array([max(s - 1, 1) for s in mask.shape], np.float32))
    z0 = torch.as_tensor(lat["z"], dtype=torch.float32)
    train_info = None
    if args.train > 0:
        dec.model, z0, train_info = train_on_truth(x, t, lat["split"] == "train", atlas.ndim, z0.shape[1], args.train)
    z = torch.nn.Parameter(z0.clone())
    opt = torch.optim.Adam([z], lr=5e-2)
    gen = torch.Generator().manual_seed(0)
    for s in tqdm(range(args.steps), desc="supervised fit"):
        opt.param_groups[0]["lr"] = 5e-2 * 0.5 * (1 + math.cos(math.pi * s / args.steps))
        opt.zero_grad()
        for b in range(0, len(ids), BATCH):
            sel = torch.randint(0, len(x), (args.points,), generator=gen)
            u, _ = dec.model(x[sel].expand(min(BATCH, len(ids) - b), -1, -1), z[b:b + BATCH])
            (((u - t[b:b + BATCH, sel]) ** 2).mean(2).mean(1).sum()).backward()
        opt.step()
    with torch.no_grad():
        u = torch.cat([dec.model(x.expand(min(BATCH, len(ids) - b), -1, -1), z[b:b + BATCH])[0]
                       for b in range(0, len(ids), BATCH)]).numpy()  # [S, V, D]
    sp = spacing.reshape(1, 1, -1)
    err = np.sqrt((((u - truth.transpose(0, 2, 1)) * sp) ** 2).sum(2)).mean(1)
    mag = np.sqrt(((truth.transpose(0, 2, 1) * sp) ** 2).sum(2)).mean(1)
    epe = {split: float(err[lat["split"] == split].mean() / mag[lat["split"] == split].mean())
           for split in ("train", "val", "test")}
    print("supervised EPE / true displacement:", epe)
    copy_with_latents(args.run, args.out, lat, z.detach().numpy(),
                      {"supervised_fit": {"steps": args.steps, "points": args.points, "epe_share": epe,
                                          "network_trained_on_truth": train_info}})

if __name__ == "__main__":
    main()
