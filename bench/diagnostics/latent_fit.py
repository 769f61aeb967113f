"""Why the mri registration's endpoint error sits at ~45%: the loss's optimum, the network's reach, or the
latent fit? Run on a finished register stage of a cohort with true fields (bench/RESULTS.md, "The latent fit").

    python bench/diagnostics/latent_fit.py RUN_DIR --n 60 --json OUT.json

On the first N test subjects (and N train subjects for the refit), one thread:
- lncc (the training loss, at every brain voxel) of the unwarped atlas, the stored fields and the true fields;
- the network's reach: latents fitted to the true fields directly (frozen network), their EPE and lncc;
- latent fits under the training loss from the mean training latent, by schedule, steps, rate, points, eps,
  and without the Jacobian terms (gamma = fold_weight = 0), each with its folded subjects;
- the seconds of one fit step (128 subjects, two threads) with and without the Jacobian terms.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import SimpleITK as sitk
import torch

from morphbias_fast.data import fields, load_cohort, read_nifti
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.decode import Decoder
from morphbias_fast.register.images import Images
from morphbias_fast.register.loss import _ncc, loss_terms, patch_offsets
from morphbias_fast.register.train import draw_points, step_generator
from morphbias_fast.runfolder import RunFolder

FITS = [dict(sched="const"), dict(sched="cos"), dict(sched="cos", steps=50), dict(sched="cos", steps=100),
        dict(sched="cos", steps=150), dict(sched="cos", steps=1000), dict(sched="cos", lr=0.01),
        dict(sched="cos", lr=0.1), dict(sched="cos", points=512), dict(sched="cos", points=64, steps=150),
        dict(sched="cos", eps=1e-4), dict(sched="cos", eps=1e-4, split="train"),
        dict(sched="cos", eps=1e-4, jacobian=False), dict(sched="cos", eps=1e-4, jacobian=False, split="train")]


class Case:
    def __init__(self, run: RunFolder, split: str, n: int):
        self.cohort = load_cohort(run.resolve_cohort())
        atlas, aff = read_nifti(self.cohort.atlas_path)
        self.mask = read_nifti(self.cohort.mask_path)[0] > 0.5
        self.imgs = Images(self.cohort.images, atlas, torch.device("cpu"))
        self.dec = Decoder.load(run.register)
        for p in self.dec.model.parameters():
            p.requires_grad_(False)
        lat = np.load(run.register.latents, allow_pickle=True)
        ids, splits = list(lat["participant_id"]), lat["split"]
        rows = [i for i in range(len(ids)) if splits[i] == split][:n]
        self.stored = torch.as_tensor(lat["z"][rows], dtype=torch.float32)
        self.mean_train = torch.as_tensor(lat["z"][splits == "train"].mean(0), dtype=torch.float32)
        cohort_ids = list(self.cohort.ids)
        self.subjects = torch.as_tensor([cohort_ids.index(ids[i]) for i in rows])
        self.truth = np.stack([fields.from_itk(sitk.ReadImage(str(self.cohort.displacement_path(ids[i])),
                                                              sitk.sitkVectorFloat64)) for i in rows])
        self.grid = fields.read_grid(self.cohort.atlas_path)
        self.spacing = np.sqrt((aff[:3, :atlas.ndim] ** 2).sum(0)).reshape(-1, *[1] * atlas.ndim)

    def epe(self, u: np.ndarray) -> float:
        err = np.sqrt((((u - self.truth) * self.spacing) ** 2).sum(1))[:, self.mask].mean()
        return float(err / np.sqrt(((self.truth * self.spacing) ** 2).sum(1))[:, self.mask].mean())

    def lncc(self, u: np.ndarray) -> np.ndarray:
        """Per subject: 1 - lncc over 5x5 windows at every brain voxel, the field held constant over a window
        as in training (loss.py)."""
        where = np.nonzero(self.mask)
        uu = torch.as_tensor(u[(slice(None), slice(None)) + where], dtype=torch.float32).permute(0, 2, 1)
        vox = torch.as_tensor(np.argwhere(self.mask).astype(np.float32))[None].expand(len(u), -1, -1)
        off = patch_offsets(self.imgs.dim)
        a = self.imgs.patches(self.subjects, vox, off)
        b = self.imgs.atlas_at(vox[:, :, None] + off, uu[:, :, None])
        return (1 - _ncc(a, b, -1)).mean(1).numpy()

    def fields(self, z: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.dec.fields(z).numpy()


def supervised(case: Case, steps: int = 1500) -> torch.Tensor:
    """Latents fitted to the true fields (squared field error, 1024 brain voxels per step): the network's reach."""
    vox = np.argwhere(case.mask).astype(np.float32)
    x = torch.as_tensor(vox / np.array([max(s - 1, 1) for s in case.mask.shape], np.float32))
    t = torch.as_tensor(case.truth[(slice(None), slice(None)) + np.nonzero(case.mask)], dtype=torch.float32)
    t = t.permute(0, 2, 1)
    z = torch.nn.Parameter(case.stored.clone())
    opt = torch.optim.Adam([z], lr=5e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        sel = torch.randint(0, len(x), (1024,), generator=gen)
        u, _ = case.dec.model(x[sel].expand(len(z), -1, -1), z)
        opt.zero_grad()
        ((u - t[:, sel]) ** 2).mean().backward()
        opt.step()
    return z.detach()


def fit(case: Case, sched="cos", steps=300, lr=5e-2, points=128, eps=1e-8, similarity="lncc", jacobian=True,
        **_) -> torch.Tensor:
    """The register stage's latent fit (loss.py's loss, `points` voxels per subject and step, Adam from the mean
    training latent) with the given schedule: const, or cos (half cosine to 0 over `steps`)."""
    cfg = INRConfig(similarity=similarity, points=2 * points, **({} if jacobian else dict(gamma=0.0, fold_weight=0.0)))
    z = torch.nn.Parameter(case.mean_train.expand(len(case.subjects), -1).clone())
    opt = torch.optim.Adam([z], lr=lr, eps=eps)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * (0.5 * (1 + math.cos(math.pi * s / steps)) if sched == "cos" else 1)
        flat = draw_points(case.imgs, len(z), cfg, step_generator(0, s, 1), points)
        opt.zero_grad()
        (loss_terms(case.dec.model, case.imgs, z, case.subjects, flat, cfg)["total"] * len(z)).backward()
        opt.step()
    return z.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=RunFolder)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--similarity", default="lncc")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    test = Case(args.run, "test", args.n)
    out = {"run": str(args.run.root), "n": args.n, "similarity": args.similarity}
    sup = supervised(test)
    for name, u in (("identity", 0 * test.truth), ("stored", test.fields(test.stored)), ("truth", test.truth),
                    ("supervised", test.fields(sup))):
        loss = test.lncc(u)
        out[name] = {"epe": test.epe(u), "lncc": float(loss.mean())}
    out["share_stored_lncc_above_truth"] = float((test.lncc(test.fields(test.stored)) > test.lncc(test.truth)).mean())
    cases = {"test": test}
    out["fits"] = []
    for spec in FITS:
        split = spec.get("split", "test")
        case = cases.setdefault(split, Case(args.run, split, args.n))
        t0 = time.perf_counter()
        z = fit(case, similarity=args.similarity, **spec)
        u = case.fields(z)
        folded = [fields.folded_fraction(fields.to_itk(uk, case.grid), case.mask) for uk in u]
        row = {**spec, "split": split, "epe": case.epe(u), "stored_epe": case.epe(case.fields(case.stored)),
               "subjects_over_0.1pct_folded": int(np.sum(np.array(folded) > 1e-3)), "folded_max": float(max(folded)),
               "lncc": float(case.lncc(u).mean()), "seconds": time.perf_counter() - t0}
        out["fits"].append(row)
        print(json.dumps(row), flush=True)
    torch.set_num_threads(2)
    out["step_seconds_128_subjects"] = {}
    for jac in (True, False):
        cfg = INRConfig(similarity=args.similarity, **({} if jac else dict(gamma=0.0, fold_weight=0.0)))
        z = torch.nn.Parameter(test.mean_train.expand(128, -1).clone())
        subjects = torch.arange(128)
        flat = draw_points(test.imgs, 128, cfg, step_generator(0, 0, 1), cfg.points // 2)
        t0 = time.perf_counter()
        for _ in range(5):
            loss_terms(test.dec.model, test.imgs, z, subjects, flat, cfg)["total"].backward()
        key = "with_jacobian" if jac else "without_jacobian"
        out["step_seconds_128_subjects"][key] = (time.perf_counter() - t0) / 5
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
