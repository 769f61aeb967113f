"""Why classify recomputes BatchNorm statistics before validating (`morphbias-fast bench batchnorm`): one
training run of the CNN through classify's own `fit`, and after every epoch the validation accuracy
(group-balanced over the discovered subgroups, as mitigate selects) and the test recall in cases without the
bias, once with the running averages and once with the statistics recomputed. The weights are the same for
both columns. The run needs its cohort (with the bias column) and discover's subgroups."""
from __future__ import annotations

import copy

import numpy as np
import torch

from morphbias_fast.classify import BN_STATS_IMAGES, TrainConfig, fit, predict_proba, recalibrate_batchnorm, standardise
from morphbias_fast.data import load_cohort
from morphbias_fast.mitigate import balanced_weights
from morphbias_fast.runfolder import RunFolder


def run(path, weights: str = "groupbal", epochs: int = 30, seed: int = 0, echo=print) -> list[dict]:
    r = RunFolder(path)
    cohort = load_cohort(r.resolve_cohort())
    tr, va, te = cohort.index("train"), cohort.index("val"), cohort.index("test")
    y, x, cpu = cohort.labels, standardise(cohort.images), torch.device("cpu")
    sub = r.discover.read_subgroups()
    w = balanced_weights(sub.reindex(cohort.ids[tr]).subgroup.to_numpy()) if weights == "groupbal" \
        else np.ones(len(tr))
    vw = balanced_weights(sub.reindex(cohort.ids[va]).subgroup.to_numpy())
    nb_pos = te[(y[te] == 1) & (cohort.bias[te] == 0)]
    # the same images fit() recomputes its statistics on
    stats_rows = torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed + 1))[:BN_STATS_IMAGES]
    rows = []
    echo("| epoch | val acc, running stats | val acc, recomputed | test recall NB, running | recomputed |")
    echo("|---|---|---|---|---|")

    def both_statistics(model, epoch):
        cells = []
        for recompute in (False, True):
            m = copy.deepcopy(model)
            if recompute:
                recalibrate_batchnorm(m, x[tr][stats_rows], cpu)
            p = predict_proba(m, x, cpu)
            cells += [float(np.average((p[va] >= 0.5) == y[va], weights=vw)), float((p[nb_pos] >= 0.5).mean())]
        rows.append({"epoch": epoch + 1, "val_acc_running": cells[0], "val_acc_recomputed": cells[2],
                     "recall_NB_running": cells[1], "recall_NB_recomputed": cells[3]})
        echo(f"| {epoch + 1} | {cells[0]:.3f} | {cells[2]:.3f} | {cells[1]:.3f} | {cells[3]:.3f} |")

    fit(x[tr], y[tr], x[va], y[va], TrainConfig(epochs=epochs, seed=seed, device="cpu"), sample_weight=w,
        progress=False, val_weight=vw, epoch_hook=both_statistics)
    return rows
