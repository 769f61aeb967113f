"""RUN_DIR/report.html: the paper's table with the gap closed, and the figures a reader needs to trust it
(matplotlib, embedded as PNG so the file stands alone)."""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from morphbias_fast.data import Cohort
from morphbias_fast.discover import side_delta
from morphbias_fast.evaluation import CELL_METRICS
from morphbias_fast.files import atomic_path
from morphbias_fast.report.metrics import COLUMNS, HEADLINE
from morphbias_fast.runfolder import RunFolder

GROUPS = {0: "NB & no disease", 1: "NB & disease", 2: "B & no disease", 3: "B & disease"}
LABELS = {"wga": "worst-group accuracy", "wga_gap_closed": "WGA gap closed", "shortcut_effect": "shortcut effect",
          "cf_sensitivity": "counterfactual sensitivity", "cf_reduction": "cf sensitivity removed",
          "cf_flip_rate": "counterfactual flip rate", "bal_acc": "balanced accuracy", "eo_gap": "equalized-odds gap",
          "acc_BD": "acc B&D", "acc_BND": "acc B&ND", "acc_NBD": "acc NB&D", "acc_NBND": "acc NB&ND",
          "gap_closed": "recall-NB gap closed (unbounded)", "gap_closed_of_means": "of the seed means",
          "wga_gap_closed_of_means": "WGA gap closed of the seed means", "n_seeds": "seeds"}


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'>"


def _fmt(r, k):
    v = r.get(k)
    if v is None:
        return "-"
    if isinstance(v, int):  # a count (n_seeds)
        return str(v)
    sd, ci = r.get(f"{k}_std"), r.get("ci", {}).get(k) or r.get(f"{k}_ci95")
    text = f"{v:.2f}" + (f" &plusmn; {sd:.2f}" if sd is not None else "")
    return text + (f"<br><small>[{ci[0]:.2f}, {ci[1]:.2f}]</small>" if ci else "")


def table_html(metrics: dict, cols: tuple, keys: tuple = ("model",)) -> str:
    """A table of metrics["rows"]: the `keys` fields as they are, then each column as value ± std [interval]."""
    present = [c for c in cols if any(r.get(c) is not None for r in metrics["rows"])]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    head += "".join(f"<th>{LABELS.get(c, c.replace('_', ' '))}</th>" for c in present)
    body = ""
    for r in metrics["rows"]:
        body += ("<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in keys)
                 + "".join(f"<td>{_fmt(r, k)}</td>" for k in present) + "</tr>")
    return f"<table><tr>{head}</tr>{body}</table>"


def tests_html(metrics: dict) -> str:
    tests = metrics.get("paired_tests") or []
    if not tests:
        return ""

    def p_value(t):
        return "-" if t["p_wilcoxon"] is None else f"{t['p_wilcoxon']:.3f}"

    rows = "".join(f"<tr><td>{t['a']} vs {t['b']}</td><td>{t['metric']}</td><td>{t['mean_difference']:+.3f}</td>"
                   f"<td>{t['wins_of_a']} of {t['n']}</td><td>{p_value(t)}</td></tr>" for t in tests)
    return ("<h2>Paired across seeds (Wilcoxon signed-rank, two-sided)</h2><table><tr><th>models</th><th>metric</th>"
            f"<th>mean difference</th><th>seeds where the first is higher</th><th>p</th></tr>{rows}</table>")


def bar_values(rows: list[dict], key: str) -> np.ndarray:
    """The bar heights of `key`, NaN (no bar) only where the value is missing: a real 0.0 is a bar."""
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def bars_figure(metrics: dict) -> str:
    rows = metrics["rows"]
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2)
    for ax, stat in zip(axes, ("recall", "acc")):
        x = np.arange(len(rows))
        for j, grp in enumerate(("B", "NB")):
            k = f"{stat}_{grp}"
            v = bar_values(rows, k)
            if all("ci" in r and k in r["ci"] for r in rows):
                lo = np.array([r["ci"][k][0] for r in rows])
                hi = np.array([r["ci"][k][1] for r in rows])
                err = np.vstack([v - lo, hi - v])
            else:
                err = np.array([r.get(f"{k}_std") or 0 for r in rows])
            ax.bar(x + (j - 0.5) * 0.38, v, 0.38, yerr=err, capsize=3, label="with bias (B)" if grp == "B"
                   else "without bias (NB)")
        ax.set_xticks(x, [r["model"] for r in rows], rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{stat} on the test split (95% bootstrap CI, or std over seeds)", fontsize=9)
    axes[0].legend(fontsize=8)
    return _png(fig)


def discovery_figures(run: RunFolder, cohort: Cohort) -> str:
    """Latent scatter coloured by the true and the discovered groups; subgroup composition."""
    if not run.discover.subgroups.exists() or not run.register.latents.exists() or cohort.bias is None:
        return "<p>(no discovery output or no ground truth: figures skipped)</p>"
    sub = run.discover.read_subgroups()
    sub = sub[sub.split == "train"]
    parts = cohort.participants.set_index("participant_id").reindex(sub.index)
    Z = run.register.latents_of(sub.index)
    y, b = parts[cohort.label_column].to_numpy(), parts["bias"].to_numpy()
    side = (sub.role == "S_B").to_numpy()
    # Axes: the discovered split direction (difference of side means within label) and the label direction.
    try:
        d_side = side_delta(Z, y, side.astype(int))
    except ValueError as exc:  # discovery found no split: there is no direction to draw along
        return f"<p>(discovery found no usable split: {html.escape(str(exc))}; figures skipped)</p>"
    d_lab = Z[y == 1].mean(0) - Z[y == 0].mean(0)
    d_lab = d_lab - d_side * (d_lab @ d_side) / (d_side @ d_side)
    P = np.c_[Z @ d_side / np.linalg.norm(d_side), Z @ d_lab / np.linalg.norm(d_lab)]
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    true_g = 2 * b + y
    colours = {g: f"C{g}" for g in GROUPS}  # the same colour for a true group in both panels
    for g, name in GROUPS.items():
        axes[0].scatter(*P[true_g == g].T, s=5, label=name, color=colours[g])
    axes[0].set_title("train latents, true groups", fontsize=9)
    axes[0].legend(fontsize=7, markerscale=2)
    for g in sorted(sub.subgroup.unique()):
        m = (sub.subgroup == g).to_numpy()
        axes[1].scatter(*P[m].T, s=5, label=f"subgroup {g} ({sub.role[m].iloc[0]})")
    sel = sub.selected.to_numpy().astype(bool)
    axes[1].scatter(*P[sel].T, s=14, facecolors="none", edgecolors="k", linewidths=0.5, label="re-balanced set")
    axes[1].set_title("discovered subgroups", fontsize=9)
    axes[1].legend(fontsize=7, markerscale=2)
    for ax in axes[:2]:
        ax.set_xlabel("latent along the discovered split")
        ax.set_ylabel("latent along the label (orthogonalised)")
    comp = pd.crosstab(sub.subgroup.to_numpy(), true_g, normalize="index").reindex(columns=list(GROUPS), fill_value=0)
    comp.columns = [GROUPS[g] for g in comp.columns]
    comp.plot.bar(stacked=True, ax=axes[2], width=0.8, color=[colours[g] for g in GROUPS])
    axes[2].set_title("subgroup composition (true groups)", fontsize=9)
    axes[2].legend(fontsize=7)
    axes[2].set_xlabel("subgroup")
    return _png(fig)


def write_report(run: RunFolder, metrics: dict, cohort: Cohort | None = None,
                 title: str = "morphbias-fast report") -> None:
    parts = [f"<h1>{html.escape(title)}</h1>",
             ("<p>Test split, balanced over the four bias x disease cells. B = cases with the bias, NB = without. "
              "Worst-group accuracy (WGA) is the lowest of the four cell accuracies; WGA gap closed = (WGA of the "
              "model - biased) / (unbiased - biased). Shortcut effect = ((TPR_B - TPR_NB) + (FPR_B - FPR_NB)) / 2: "
              "positive, the model takes the bias as evidence of disease; negative, it has learnt the reverse; 0 is "
              "the aim. Counterfactual sensitivity = mean over test subjects of p(disease | bias present) - "
              "p(disease | bias absent), each subject against its twin generated with the bias flipped (synthetic "
              "cohorts). Intervals: 95% bootstrap, stratified over the cells (one run), or t-intervals over seeds."
              "</p>"),
             "<h2>Headline</h2>", table_html(metrics, (*HEADLINE, "wga_gap_closed_of_means")), tests_html(metrics),
             "<h2>Cells</h2>", table_html(metrics, CELL_METRICS[:4]),
             "<h2>The paper's table</h2>",
             ("<p>The recall-NB gap closed = (recall NB of the model - biased) / (unbiased - biased) is the paper's "
              "measure. It has no upper bound: a model that calls every case without the bias diseased scores "
              "highest. acc B drop = biased acc B - model acc B.</p>"),
             table_html(metrics, (*COLUMNS, "gap_closed", "gap_closed_of_means", "acc_B_drop")),
             "<h2>Per-group results</h2>", bars_figure(metrics)]
    if cohort is not None:
        parts += ["<h2>Discovery (train split)</h2>", discovery_figures(run, cohort)]
    for name, folder in run.mitigations().items():
        png = folder.augmentations
        if png.exists():
            parts += [f"<h2>Generated images: {html.escape(name)}</h2>",
                      "<img src='data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() + "'>"]
    write_page(run.report, parts)


def write_page(path, parts: list[str]) -> None:
    """A standalone HTML page of these parts (headings, paragraphs, tables, embedded figures)."""
    style = ("<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style>")
    with atomic_path(path) as tmp:
        tmp.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>"
                       + "\n".join(parts) + "</body></html>")
