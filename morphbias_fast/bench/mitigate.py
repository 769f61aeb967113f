"""Mitigation benchmark: the paper's table and the gap closed for every model found in finished run folders
(`morphbias-fast bench mitigate`). A run folder is one seed's run (what `morphbias-fast run ... --baselines
paper,oracle,groupbal,jtt` leaves), or a `--seeds` folder: then every finished seed is tabled and the mean
+- std over seeds (ddof 1) follows, with the gap closed of the seed means.

A multi-seed study outlives the run folders it was measured in (they are large and a machine may be wiped), so
`--archive DIR` keeps each finished seed's table as DIR/FOLDER/seed_K.json, and a folder of such files is tabled
like the run folder it came from: seeds gathered over several sessions make one table."""
from __future__ import annotations

import json
from pathlib import Path

from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import write_json
from morphbias_fast.report import COLUMNS, aggregate, table
from morphbias_fast.runfolder import RunFolder

HEADLINE_COLUMNS = ("wga", "wga_gap_closed", "wga_gap_closed_of_means", "shortcut_effect", "cf_sensitivity",
                    "cf_flip_rate", "bal_acc", "eo_gap", "acc_NBND")
PAPER_COLUMNS = (*COLUMNS, "gap_closed", "acc_B_drop", "gap_closed_of_means")


def one_run(run: RunFolder) -> dict:
    """The report's table of one finished run, recomputed from its files."""
    return table(run, run.resolve_cohort())[0]


def _cell(r: dict, k: str) -> str:
    """value ± std [interval]: the bootstrap interval of one run, the t-interval of a seed mean."""
    v = r.get(k)
    if v is None:
        return "-"
    if isinstance(v, int):  # a count (n_seeds)
        return str(v)
    sd, ci = r.get(f"{k}_std"), r.get(f"{k}_ci95") or r.get("ci", {}).get(k)
    return f"{v:.3f}" + (f" ± {sd:.3f}" if sd is not None else "") + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_table(title: str, rows: list[dict], columns=HEADLINE_COLUMNS, keys=("model",)) -> str:
    """A markdown table: the `keys` fields of each row as they are, then each column as value ± std [interval]."""
    present = [k for k in columns if any(r.get(k) is not None for r in rows)]
    lines = [f"\n{title}\n| " + " | ".join((*keys, *present)) + " |", "|---" * (len(keys) + len(present)) + "|"]
    lines += ["| " + " | ".join([*(str(r[k]) for k in keys), *(_cell(r, k) for k in present)]) + " |" for r in rows]
    return "\n".join(lines)


def levels_table(results: dict[str, dict], columns=HEADLINE_COLUMNS) -> str:
    """One table over several `--seeds` folders (e.g. one per bias level): a row per (folder, model) with the
    folder's bias level, mean ± std [t-interval] over its seeds."""
    rows = [{**r, "bias level": res.get("bias_level") or "-", "folder": Path(p).name}
            for p, res in results.items() if "mean_std" in res for r in res["mean_std"]["rows"]]
    return format_table("Every folder, mean ± std [95% t-interval] over its seeds", rows, columns,
                        keys=("bias level", "folder", "model"))


def _bias_level(seeds) -> float | None:
    """The bias level of the first seed whose cohort is a synthetic one (None for real cohorts)."""
    for _, r in seeds:
        cfg = read_synth_config(r.resolve_cohort()) if r.done("classify") else None
        if cfg is not None:
            return cfg.bias_level
    return None


def _run_record(run: RunFolder) -> dict:
    """What the run says beside the table: its seed, cohort and the stages' warnings (metrics.json), the
    synthetic cohort's appearance and shortcut (its SynthConfig, so that an archive says which cohort it
    measured after the cohort is gone), and how its discovery did (summary.json): train precision and recall
    of the re-balanced set against the true bias (null on a real cohort) and the held-out split check's p, so
    that an archived seed shows whether a warning was a false alarm."""
    out = {}
    if run.metrics.exists():
        out = {k: v for k, v in json.loads(run.metrics.read_text()).items() if k in ("seed", "cohort", "warnings")}
    cfg = read_synth_config(run.resolve_cohort()) if run.done("classify") else None
    if cfg is not None:
        out["synth"] = {"appearance": cfg.appearance, "shortcut": cfg.shortcut, "site_confound": cfg.site_confound}
    if run.discover.summary.exists():
        s = json.loads(run.discover.summary.read_text())
        train = s.get("splits", {}).get("train", {})
        out["discovery"] = {"train_precision": train.get("precision"), "train_recall": train.get("recall"),
                            "split_check_p": (s.get("split_check") or {}).get("p")}
    return out


def archived_seeds(path: Path) -> list[Path]:
    """The seed tables of an archive folder (`--archive` wrote them), in seed order; [] for any other folder."""
    files = [f for f in Path(path).glob("seed_*.json") if f.stem[5:].isdigit()]
    return sorted(files, key=lambda f: int(f.stem[5:]))


def read_archive(path: Path) -> tuple[dict, float | None]:
    """Every archived seed table of `path` and their common bias level."""
    per_seed = {f.stem: json.loads(f.read_text()) for f in archived_seeds(path)}
    levels = {t.get("bias_level") for t in per_seed.values()}
    if len(levels) > 1:
        raise MorphbiasError(f"{path}: the archived seeds come from different bias levels {sorted(levels, key=str)}; "
                             f"one folder must hold one study")
    return per_seed, (levels.pop() if levels else None)


def run(paths: list[Path], echo=print, archive: Path | None = None) -> dict:
    """Table every path (a run folder, a `--seeds` folder or an archive folder); with `archive`, also keep each
    finished seed's table of the `--seeds` folders as archive/FOLDER/seed_K.json (replacing an older copy)."""
    out = {}
    for path in paths:
        root = RunFolder(path)
        seeds = root.seeds()
        if not seeds and archived_seeds(path):
            per_seed, level = read_archive(path)
        elif not seeds:
            out[str(path)] = one_run(root)
            echo(format_table(str(path), out[str(path)]["rows"]))
            continue
        else:
            per_seed, level = {}, _bias_level(seeds)
            for _, r in seeds:
                if r.done("unbiased"):  # a finished seed
                    per_seed[r.root.name] = {**_run_record(r), **one_run(r), "bias_level": level}
                    if archive is not None:
                        write_json(Path(archive) / Path(path).name / f"{r.root.name}.json", per_seed[r.root.name])
        for name, t in per_seed.items():
            echo(format_table(f"{path}: {name}", t["rows"]))
        if not per_seed:
            echo(f"{path}: no finished seed yet")
            continue
        agg = aggregate(list(per_seed.values()))
        out[str(path)] = {"seeds": list(per_seed), "per_seed": per_seed, "mean_std": agg, "bias_level": level}
        echo(format_table(f"{path}: mean ± std [95% t-interval] over {', '.join(per_seed)}", agg["rows"]))
        echo(format_table(f"{path}: the paper's columns, mean ± std", agg["rows"], PAPER_COLUMNS))
        for t in agg["paired_tests"]:
            p = "-" if t["p_wilcoxon"] is None else f"{t['p_wilcoxon']:.3f}"
            echo(f"  {t['a']} vs {t['b']} on {t['metric']}: mean difference {t['mean_difference']:+.3f}, "
                 f"higher on {t['wins_of_a']} of {t['n']} seeds, Wilcoxon p {p}")
    if sum("mean_std" in v for v in out.values()) > 1:
        echo(levels_table(out))
    return out
