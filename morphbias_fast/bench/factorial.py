"""The factorial table (issue 17; `morphbias-fast bench factorial`): representation (hashgrid | siren) x
discovery (ours | paper) x mitigation (ours | paper), to say how much of the difference between our method and
the paper's each part brings.

It starts from two finished multi-seed runs on the same cohorts: one with hash-grid latents (`run`), one with
SIREN latents (`run --recipe paper`). Every combination is a folder OUT/<arch>-<discovery>-<mitigation> whose
seed folders link the source's classifier, registration and unbiased reference (the same for every
combination of a representation) and run only discovery and mitigation, a few minutes a seed instead of a full
run. Where the source's own discovery is the combination's, it is linked (both mitigations then start from the
same subgroups), and so is its mitigation where that is the combination's too (the source's own recipe).

Per seed, the main effect of a part is the mean over the other two parts' four combinations of (ours minus
the paper's); across seeds: mean, standard deviation and the 95% t-interval. The metric is that of the
"mitigated" row of each combination's report (recall NB, WGA, its gap closed, the shortcut effect, cf
sensitivity).

With an archive folder, each combination's finished seeds are also kept as ARCHIVE/<combination>/seed_K.json
(as `bench mitigate --archive` keeps a run's), and the effects are taken over every seed archived for all eight
combinations: a factorial run a few seeds per session adds up to one table."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from morphbias_fast import pipeline
from morphbias_fast.bench import mitigate as bench_mitigate
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import write_json
from morphbias_fast.report import t_interval
from morphbias_fast.runfolder import RunFolder

PARTS = ("arch", "discovery", "mitigation")
OURS = {"arch": "hashgrid", "discovery": "ours", "mitigation": "ours"}
PAPER = {"arch": "siren", "discovery": "paper", "mitigation": "paper"}
# recall NB is the paper's own measure (its Tables 1-3); the others are ours (docs/METHOD.md section 7).
METRICS = ("recall_NB", "wga", "wga_gap_closed", "shortcut_effect", "cf_sensitivity")
SHARED_STAGES = ("classify", "register", "unbiased")


def combinations() -> list[dict]:
    """The eight combinations, ours first in every part."""
    return [dict(zip(PARTS, c)) for c in itertools.product(*[(OURS[p], PAPER[p]) for p in PARTS])]


def combo_name(c: dict) -> str:
    return f"{c['arch']}-{c['discovery']}-{c['mitigation']}"


def _source_did(src: RunFolder, settings: dict) -> tuple[bool, bool]:
    """Whether the source seed's own discovery is this combination's, and whether its mitigated row is too."""
    if not src.discover.summary.exists():
        return False, False
    same_discovery = json.loads(src.discover.summary.read_text()).get("method") == settings["discovery"]
    mitigated = src.mitigate().metrics
    strategy = json.loads(mitigated.read_text()).get("strategy") if mitigated.exists() else None
    return same_discovery, same_discovery and strategy == settings["mitigation"]


def _link(dst: Path, src: Path) -> None:
    if dst.is_symlink() or dst.exists():
        if dst.resolve() != src.resolve():
            raise MorphbiasError(f"{dst} exists and is not a link to {src}: use a fresh --out")
        return
    dst.symlink_to(src.resolve(), target_is_directory=True)


def _check_sources(sources: dict[str, RunFolder], seeds: list[int]) -> None:
    for arch, root in sources.items():
        for seed in seeds:
            r = root.seed(seed)
            missing = [s for s in SHARED_STAGES if not r.done(s)]
            if missing:
                raise MorphbiasError(f"{r.root}: {', '.join(missing)} not finished (the {arch} source must be a "
                                     f"finished `run --seeds` folder)")
    for seed in seeds:
        configs = {arch: read_synth_config(root.seed(seed).resolve_cohort()) for arch, root in sources.items()}
        if configs["hashgrid"] != configs["siren"]:
            raise MorphbiasError(f"seed {seed}: the two sources were not run on the same synthetic cohort "
                                 f"({configs['hashgrid']} vs {configs['siren']})")


def effects(per_combo: dict[str, list[dict]], seeds: list[int]) -> dict:
    """Main effect of each part per metric: per seed the mean of (ours - paper's) over the other parts, then
    mean, std (ddof 1) and 95% t-interval over seeds."""
    out = {}
    for part in PARTS:
        out[part] = {}
        for metric in METRICS:
            diffs = []
            for i in range(len(seeds)):
                pairs = []
                for c in combinations():
                    if c[part] != OURS[part]:
                        continue
                    other = {**c, part: PAPER[part]}
                    a, b = per_combo[combo_name(c)][i].get(metric), per_combo[combo_name(other)][i].get(metric)
                    if a is not None and b is not None:
                        pairs.append(a - b)
                diffs.append(float(np.mean(pairs)) if len(pairs) == 4 else None)
            vals = np.array([d for d in diffs if d is not None])
            row = {"per_seed": diffs, "mean": float(vals.mean()) if len(vals) else None}
            if len(vals) > 1:
                row.update(std=float(vals.std(ddof=1)), ci95=t_interval(list(vals)))
            out[part][metric] = row
    return out


def _mitigated(metrics: dict) -> dict:
    return next(r for r in metrics["rows"] if r["model"] == "mitigated")


def archived(archive: Path) -> tuple[list[int], dict[str, list[dict]]]:
    """The seeds archived for all eight combinations, and each combination's mitigated row per such seed."""
    found = {combo_name(c): {int(f.stem[5:]): f for f in bench_mitigate.archived_seeds(Path(archive) / combo_name(c))}
             for c in combinations()}
    seeds = sorted(set.intersection(*(set(files) for files in found.values())))
    return seeds, {name: [_mitigated(json.loads(files[k].read_text())) for k in seeds]
                   for name, files in found.items()}


def run(hashgrid: Path, siren: Path, out: Path, seeds: list[int], epochs: int = 30, device: str = "auto",
        echo=print, archive: Path | None = None) -> dict:
    """Build and finish every combination for `seeds`, then table them and their main effects (over every
    archived seed, with `archive`)."""
    sources = {"hashgrid": RunFolder(hashgrid), "siren": RunFolder(siren)}
    _check_sources(sources, seeds)
    per_combo: dict[str, list[dict]] = {}
    for c in combinations():
        name = combo_name(c)
        settings = pipeline.recipe_parts("ours", c["arch"], c["discovery"], c["mitigation"])
        per_combo[name] = []
        for seed in seeds:
            src = sources[c["arch"]].seed(seed)
            dst = RunFolder(out / name).seed(seed)
            dst.root.mkdir(parents=True, exist_ok=True)
            for stage in SHARED_STAGES:
                _link(dst.root / stage, src.root / stage)
            same_discovery, same_mitigation = _source_did(src, settings)
            if same_discovery:  # the same subgroups for both mitigations: a paired comparison
                _link(dst.root / "discover", src.discover.path)
            if same_mitigation:
                _link(dst.root / "mitigate", src.mitigate().path)
            echo(f"{name} seed {seed}")
            cohort = src.resolve_cohort()
            s = pipeline.Settings(cohort=cohort, epochs=epochs, device=device, **settings)
            metrics = pipeline.run_one(dst.root, s, seed).metrics
            per_combo[name].append(_mitigated(metrics))
            if archive is not None:
                level = getattr(read_synth_config(cohort), "bias_level", None)
                write_json(Path(archive) / name / f"seed_{seed}.json", {**metrics, "bias_level": level})
    if archive is not None:
        seeds, per_combo = archived(archive)
        echo(f"effects over the seeds archived in {archive}: {', '.join(map(str, seeds))}")
    rows = {name: {k: [r.get(k) for r in mitigated] for k in METRICS} for name, mitigated in per_combo.items()}
    return {"seeds": seeds, "sources": {k: str(v.root) for k, v in sources.items()}, "combinations": rows,
            "effects": effects(per_combo, seeds)}


def format_effects(result: dict) -> str:
    lines = ["| part (ours - paper's) | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for part, by_metric in result["effects"].items():
        cells = []
        for m in METRICS:
            r = by_metric[m]
            cell = "-" if r["mean"] is None else f"{r['mean']:+.3f}"
            if r.get("ci95"):
                cell += f" [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
            cells.append(cell)
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
