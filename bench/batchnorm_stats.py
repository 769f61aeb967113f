"""Why classify recomputes BatchNorm statistics before validating: one training run of the CNN, and after
every epoch the validation accuracy (group-balanced over the discovered subgroups, as mitigate selects) and
the test recall in cases without the bias, once with the running averages and once with the statistics
recomputed (classify.train.recalibrate_batchnorm). The weights are the same for both columns.

    python bench/batchnorm_stats.py RUN_DIR [--weights groupbal|none] [--epochs 30] [--seed 0]

RUN_DIR needs cohort/ (with the bias column) and discover/subgroups.csv."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from morphbias_fast.classify.model import CNN
from morphbias_fast.classify.train import (
    BN_STATS_IMAGES,
    predict_proba,
    recalibrate_batchnorm,
    standardise,
)
from morphbias_fast.data import load_cohort
from morphbias_fast.mitigate.stage import _balanced_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--weights", choices=("groupbal", "none"), default="groupbal")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cohort = load_cohort(args.run / "cohort")
    tr, va, te = cohort.index("train"), cohort.index("val"), cohort.index("test")
    y, x, cpu = cohort.labels, standardise(cohort.images), torch.device("cpu")
    sub = pd.read_csv(args.run / "discover" / "subgroups.csv", dtype={"participant_id": str}).set_index("participant_id")
    w = (_balanced_weights(sub.reindex(cohort.ids[tr]).subgroup.to_numpy()) if args.weights == "groupbal"
         else np.ones(len(tr)))
    vw = _balanced_weights(sub.reindex(cohort.ids[va]).subgroup.to_numpy())
    nb_pos = te[(y[te] == 1) & (cohort.bias[te] == 0)]

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = CNN(dim=x.dim() - 2)  # the optimiser and schedule of classify.train.TrainConfig's defaults
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    xt, yt, wt = x[tr], torch.as_tensor(y[tr]), torch.as_tensor(w, dtype=torch.float32)
    stats_rows = torch.randperm(len(tr), generator=torch.Generator().manual_seed(args.seed + 1))[:BN_STATS_IMAGES]
    print("| epoch | val acc, running stats | val acc, recomputed | test recall NB, running | recomputed |")
    print("|---|---|---|---|---|")
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        for lo in range(0, len(perm), 32):
            idx = perm[lo: lo + 32]
            if len(idx) < 2:
                continue
            loss = (F.cross_entropy(model(xt[idx]), yt[idx], reduction="none") * wt[idx]).sum() / wt[idx].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        cells = []
        for recompute in (False, True):
            m = copy.deepcopy(model)
            if recompute:
                recalibrate_batchnorm(m, xt[stats_rows], cpu)
            p = predict_proba(m, x, cpu)
            cells.append((np.average((p[va] >= 0.5) == y[va], weights=vw), (p[nb_pos] >= 0.5).mean()))
        print(f"| {epoch + 1} | {cells[0][0]:.3f} | {cells[1][0]:.3f} | {cells[0][1]:.3f} | {cells[1][1]:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
