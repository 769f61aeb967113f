"""The paper's Tables 1-3 beside the same rows measured here (`morphbias-fast bench paper-tables`, issue 17).

The published rows are the paper's means over five seeds (docs/METHOD.md section 5). The measured rows come
from two `--seeds` folders per bias level (run folders or `bench mitigate --archive` folders): OURS, a
`morphbias-fast run` (hash grid, our discovery and mitigation), which also gives the biased and unbiased
classifiers, and PAPER, a `run --recipe paper` on the same cohorts (SIREN, the paper's discovery and
mitigation), whose `paper_rebalance`, `paper_augment` and `paper_smote` rows (`bench variants`) are the
ablation, tabled also as paired steps (`ablation_steps`: does each component add recall NB, seed by seed).
Measured cells are mean ± std [95% t-interval] over seeds; the gap closed is of the seed means, the paper's
way (one ratio of means), so the two sources are compared on the same definition. Where both sources of a level
are given, both are taken over the seeds they share: a row over seeds 0-4 beside one over seeds 0-2 would
compare cohorts, not methods (the seeds used are in the JSON and the n_seeds column). The two must also
share their biased classifiers (a rerun of a seed can train another one), and are refused where they do not."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morphbias_fast.bench import mitigate as bench_mitigate
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.report import (
    COLUMNS,
    aggregate,
    gap_closed,
    t_interval,
    table_html,
    write_page,
)

# docs/METHOD.md section 5: acc B, acc NB, recall B, recall NB, prec B, prec NB.
PUBLISHED = {
    0.9: {"unbiased": (0.87, 0.87, 0.88, 0.88, 0.87, 0.87),
          "biased": (0.73, 0.64, 1.00, 0.30, 0.65, 0.98),
          "CLIP features": (0.75, 0.67, 0.99, 0.37, 0.67, 0.97),
          "BiomedCLIP features": (0.76, 0.67, 0.99, 0.37, 0.68, 0.96),
          "paper (INR latents)": (0.75, 0.73, 0.98, 0.49, 0.67, 0.94)},
    0.7: {"biased": (0.85, 0.81, 0.92, 0.66, 0.81, 0.95),
          "BiomedCLIP features": (0.84, 0.84, 0.95, 0.75, 0.78, 0.93),
          "paper (INR latents)": (0.82, 0.83, 0.93, 0.77, 0.77, 0.89)},
}
# Its ablation at 0.7 reports recall NB only (same section).
PUBLISHED_ABLATION = {"re-balancing alone": 0.66, "+ augmentation": 0.73, "+ SMOTE": 0.72, "both": 0.77}
# The unbiased classifier is trained at bias 0.5 whatever the level, so Table 2's gap closed uses Table 1's
# (the paper's own 0.50 at 0.7 comes out of the same recall NB 0.88).
UNBIASED_RECALL_NB = PUBLISHED[0.9]["unbiased"][3]

# (label, source, model row of the source's table)
MEASURED = (("unbiased", "ours", "unbiased"), ("biased", "ours", "biased"),
            ("paper, reproduced (SIREN, its discovery and mitigation)", "paper", "mitigated"),
            ("ours (hash grid, our discovery and mitigation)", "ours", "mitigated"))
ABLATION = (("re-balancing alone", "paper_rebalance"), ("+ augmentation", "paper_augment"),
            ("+ SMOTE", "paper_smote"), ("both", "mitigated"))
TABLE_COLUMNS = (*COLUMNS, "gap_closed_of_means", "wga", "wga_gap_closed_of_means", "n_seeds")
ABLATION_COLUMNS = ("recall_NB", "gap_closed_of_means", "wga", "n_seeds")
# Table 3 read as steps, each against the row it adds to (the paper's "each component adds recall NB"):
# (label, the step's model row, the row it is compared with).
STEPS = (("re-balancing alone - biased", "paper_rebalance", "biased"),
         ("+ augmentation - re-balancing alone", "paper_augment", "paper_rebalance"),
         ("+ SMOTE - re-balancing alone", "paper_smote", "paper_rebalance"),
         ("both - re-balancing alone", "mitigated", "paper_rebalance"))
STEP_COLUMNS = ("recall_NB_difference", "seeds_up", "seeds_down", "n_seeds")


def finished_seeds(path: Path, level: float) -> dict[str, dict]:
    """The finished seed tables of `path` (a `--seeds` run folder or an archive), which must be at bias `level`."""
    res = bench_mitigate.run([Path(path)], echo=lambda *_: None)[str(path)]
    if "mean_std" not in res:
        raise MorphbiasError(f"{path}: not a `--seeds` run folder or archive with a finished seed")
    if res["bias_level"] is not None and abs(res["bias_level"] - level) > 1e-9:
        raise MorphbiasError(f"{path} is at bias level {res['bias_level']}, not {level}")
    return res["per_seed"]


def seed_means(per_seed: dict[str, dict], seeds: list[str]) -> dict[str, dict]:
    """Each model's row of mean ± std over `seeds` of `per_seed`."""
    agg = aggregate([per_seed[k] for k in seeds])
    return {r["model"]: {**r, "n_seeds": len(seeds)} for r in agg["rows"]}


def shared_seeds(ours: dict | None, paper: dict | None) -> list[str]:
    """The seeds both sources finished (or the one source's), in seed order (finished_seeds keeps it); an error
    when they share none."""
    given = [s for s in (ours, paper) if s is not None]
    common = [k for k in (given[0] if given else []) if all(k in s for s in given)]
    if given and not common:
        raise MorphbiasError(f"the two folders of a level share no finished seed ({list(given[0])} and "
                             f"{list(given[-1])}): their rows would compare different cohorts")
    return common


def check_same_classifiers(ours: dict, paper: dict, seeds: list[str], level: float) -> None:
    """Refuse two sources whose biased models differ on a shared seed: then they were not run on the same
    classifiers (a rerun can train another biased model), and the recipe's row would sit beside another
    model's biased row. The rows are recomputed from the same kind of files, so equal models give equal floats."""
    def biased(per_seed, seed):
        return next((r for r in per_seed[seed]["rows"] if r["model"] == "biased"), None)

    for seed in seeds:
        a, b = biased(ours, seed), biased(paper, seed)
        if a is not None and b is not None and any(a.get(c) != b.get(c) for c in COLUMNS):
            raise MorphbiasError(
                f"at bias {level}, {seed}: the two folders' biased models differ (recall NB {a['recall_NB']:.3f} "
                f"against {b['recall_NB']:.3f}), so they were not run on the same classifiers; give the folder "
                f"of ours that shares the recipe's (e.g. `bench factorial --archive`'s hashgrid-ours-ours)")


def _published_row(model: str, values, biased_recall_nb: float) -> dict:
    row = {"source": "published", "model": model, **dict(zip(COLUMNS, values))}
    if model not in ("biased", "unbiased"):
        row["gap_closed_of_means"] = gap_closed(row["recall_NB"], biased_recall_nb, UNBIASED_RECALL_NB)
    return row


def main_table(level: float, ours: dict | None, paper: dict | None) -> list[dict]:
    """Table 1 (0.9) or 2 (0.7): the published rows, then each measured row its sources have. The biased and
    unbiased rows come from OURS, or from PAPER when only it is given (the two share their cohorts and
    classifiers)."""
    pub = PUBLISHED[level]
    rows = [_published_row(m, v, pub["biased"][3]) for m, v in pub.items()]
    reference = ours if ours is not None else paper
    for label, source, model in MEASURED:
        table = reference if model in ("biased", "unbiased") else {"ours": ours, "paper": paper}[source]
        if table is not None and model in table:
            rows.append({**table[model], "source": "measured", "model": label})
    return rows


def ablation_table(paper: dict | None) -> list[dict]:
    """Table 3 (0.7): recall NB of each step of the paper's mitigation, published and measured."""
    biased_nb = PUBLISHED[0.7]["biased"][3]
    rows = [{"source": "published", "model": m, "recall_NB": v,
             "gap_closed_of_means": gap_closed(v, biased_nb, UNBIASED_RECALL_NB)}
            for m, v in PUBLISHED_ABLATION.items()]
    for label, model in ABLATION:
        if paper is not None and model in paper:
            rows.append({**paper[model], "source": "measured", "model": label})
    return rows


def ablation_steps(per_seed: dict[str, dict] | None, seeds: list[str]) -> list[dict]:
    """Table 3 as paired steps at 0.7: per seed the recall-NB difference of each step from the row it adds to,
    then mean ± std [95% t-interval] over seeds and the seeds on which it went up or down. Paired, because the
    seed-to-seed spread of recall NB (about 0.1) is larger than the steps; the published row is the difference
    of the paper's means."""
    published = {"biased": PUBLISHED[0.7]["biased"][3],
                 **{model: PUBLISHED_ABLATION[label] for label, model in ABLATION}}
    rows = [{"source": "published", "model": label, "recall_NB_difference": round(published[a] - published[b], 3)}
            for label, a, b in STEPS]
    if per_seed is None:
        return rows
    for label, a, b in STEPS:
        by = [{r["model"]: r["recall_NB"] for r in per_seed[k]["rows"]} for k in seeds]
        d = [m[a] - m[b] for m in by if a in m and b in m]
        if len(d) < len(seeds):
            continue  # a step that was not run on every seed is left out, not averaged over fewer
        rows.append({"source": "measured", "model": label, "recall_NB_difference": float(np.mean(d)),
                     "recall_NB_difference_std": float(np.std(d, ddof=1)) if len(d) > 1 else None,
                     "recall_NB_difference_ci95": t_interval(d), "per_seed": d,
                     "seeds_up": sum(x > 0 for x in d), "seeds_down": sum(x < 0 for x in d), "n_seeds": len(d)})
    return rows


def run(ours09: Path | None = None, paper09: Path | None = None, ours07: Path | None = None,
        paper07: Path | None = None) -> dict:
    """The three tables and Table 3's steps from whichever folders are given (a table without measured rows keeps
    the published)."""
    tables, seeds, recipe = {}, {}, {}
    for level, ours, paper in ((0.9, ours09, paper09), (0.7, ours07, paper07)):
        o, p = (None if path is None else finished_seeds(path, level) for path in (ours, paper))
        recipe[level] = p
        seeds[level] = shared_seeds(o, p)
        if o is not None and p is not None:
            check_same_classifiers(o, p, seeds[level], level)
        tables[level] = [None if t is None else seed_means(t, seeds[level]) for t in (o, p)]
    (o9, p9), (o7, p7) = tables[0.9], tables[0.7]
    return {"sources": {k: None if v is None else str(v) for k, v in
                        (("ours09", ours09), ("paper09", paper09), ("ours07", ours07), ("paper07", paper07))},
            "seeds": {"0.9": seeds[0.9], "0.7": seeds[0.7]},
            "table_1": main_table(0.9, o9, p9), "table_2": main_table(0.7, o7, p7), "table_3": ablation_table(p7),
            "table_3_steps": ablation_steps(recipe[0.7], seeds[0.7])}


TITLES = {"table_1": "Table 1: bias level 0.9", "table_2": "Table 2: bias level 0.7",
          "table_3": "Table 3: the paper's ablation at 0.7 (recall NB)",
          "table_3_steps": "Table 3 as steps: each row's recall NB minus the row it adds to, paired by seed"}
LEVEL_OF = {"table_1": "0.9", "table_2": "0.7", "table_3": "0.7", "table_3_steps": "0.7"}
COLUMNS_OF = {"table_1": TABLE_COLUMNS, "table_2": TABLE_COLUMNS, "table_3": ABLATION_COLUMNS,
              "table_3_steps": STEP_COLUMNS}


def _title(res: dict, key: str) -> str:
    """The table's title with the seeds its measured rows are over."""
    seeds = res["seeds"][LEVEL_OF[key]]
    return TITLES[key] + (f" (measured over {', '.join(seeds)})" if seeds else "")


def format_tables(res: dict) -> str:
    """Markdown: the three tables and Table 3's steps, published rows first (gap closed = recall-NB gap closed of
    the means)."""
    return "\n".join(bench_mitigate.format_table(
        _title(res, k), res[k], COLUMNS_OF[k], keys=("source", "model")) for k in TITLES if k in res)


def write_html(path: Path, res: dict) -> None:
    """The three tables and Table 3's steps as one standalone page (published rows first, then the measured ones)."""
    intro = ("<p>Published: the paper's means over five seeds. Measured: mean &plusmn; std [95% t-interval] over "
             "this project's seeds, on the balanced test split. Gap closed = recall-NB gap closed of the seed means, "
             "the paper's measure (unbounded above); WGA = worst-group accuracy over the four bias x disease cells, "
             "which the paper does not report. Sources: " + ", ".join(f"{k} = {v}" for k, v in res["sources"].items()
                                                                  if v is not None) + ".</p>")
    parts = ["<h1>The paper's tables beside ours</h1>", intro]
    for k in (k for k in TITLES if k in res):
        parts += [f"<h2>{_title(res, k)}</h2>", table_html({"rows": res[k]}, COLUMNS_OF[k], keys=("source", "model"))]
    write_page(path, parts)
