"""`bench factorial`: main effects against a construction with known effects (and scipy's t interval, an
independent implementation), and the eight combinations built end to end from two tiny runs."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from morphbias_fast.bench import factorial
from morphbias_fast.cli import main
from morphbias_fast.data.synth import SynthConfig, synthesize

# two_runs (conftest.py): one tiny `--seeds 0` run of each recipe on one cohort


def test_main_effects_recover_planted_additive_effects():
    # metric = seed offset + a*[hashgrid] + b*[our discovery] + c*[our mitigation]: each main effect is its
    # coefficient exactly (per seed), whatever the other parts and the seed do.
    rng = np.random.default_rng(0)
    seeds = [0, 1, 2, 3]
    coef = {"arch": rng.normal(size=4), "discovery": rng.normal(size=4), "mitigation": rng.normal(size=4)}
    offset = rng.normal(size=4)
    per_combo = {}
    for c in factorial.combinations():
        rows = []
        for i in range(len(seeds)):
            v = offset[i] + sum(coef[p][i] * (c[p] == factorial.OURS[p]) for p in factorial.PARTS)
            rows.append({m: v for m in factorial.METRICS})
        per_combo[factorial.combo_name(c)] = rows
    eff = factorial.effects(per_combo, seeds)
    for part in factorial.PARTS:
        r = eff[part]["wga"]
        # float64 sums of four O(1) numbers: rounding ~1e-15; 1e-12 leaves room and nothing more
        np.testing.assert_allclose(r["per_seed"], coef[part], atol=1e-12)
        lo, hi = stats.t.interval(0.95, len(seeds) - 1, loc=coef[part].mean(), scale=stats.sem(coef[part]))
        # our mean +- t * sd / sqrt(n) against scipy's interval of the same four numbers: the same float64
        # quantile and a few roundings apart, ~1e-16 relative on O(1) values
        np.testing.assert_allclose(r["ci95"], [lo, hi], atol=1e-12)


def test_effects_leave_a_seed_out_when_a_combination_lacks_the_metric():
    per_combo = {factorial.combo_name(c): [{"wga": 0.5}, {"wga": 0.5}] for c in factorial.combinations()}
    per_combo["siren-paper-paper"][1] = {"wga": None}
    r = factorial.effects(per_combo, [0, 1])["arch"]["wga"]
    assert r["per_seed"] == [0.0, None] and r["mean"] == 0.0 and "ci95" not in r


def test_factorial_builds_every_combination_from_two_runs(two_runs):
    root = two_runs
    res = CliRunner().invoke(main, ["bench", "factorial", str(root / "hg"), str(root / "siren"), "--out",
                                    str(root / "fact"), "--seeds", "0", "--epochs", "2", "--device", "cpu",
                                    "--json", str(root / "fact.json")])
    assert res.exit_code == 0, res.output[-3000:]
    out = json.loads((root / "fact.json").read_text())
    assert set(out["combinations"]) == {factorial.combo_name(c) for c in factorial.combinations()}
    for c in factorial.combinations():
        seed = root / "fact" / factorial.combo_name(c) / "seed_0"
        src = root / ("hg" if c["arch"] == "hashgrid" else "siren") / "seed_0"
        # the representation's stages are the source's own, not recomputed
        assert (seed / "register").resolve() == (src / "register").resolve()
        # the source's own discovery is linked where the combination uses it, its mitigation only in its own
        # recipe; everything else ran here
        own_discovery = c["discovery"] == ("ours" if c["arch"] == "hashgrid" else "paper")
        assert (seed / "discover").is_symlink() == own_discovery
        assert (seed / "mitigate").is_symlink() == (c in (factorial.OURS, factorial.PAPER))
        method = json.loads((seed / "discover" / "summary.json").read_text())["method"]
        assert method == ("shortcut" if c["discovery"] == "ours" else "paper")
        strategy = json.loads((seed / "mitigate" / "metrics.json").read_text())["strategy"]
        assert strategy == ("counterfactual" if c["mitigation"] == "ours" else "paper")
    assert set(out["effects"]) == set(factorial.PARTS)
    assert len(out["effects"]["arch"]["wga"]["per_seed"]) == 1
    # rerunning resumes: nothing is trained again, the same table comes back
    again = CliRunner().invoke(main, ["bench", "factorial", str(root / "hg"), str(root / "siren"), "--out",
                                      str(root / "fact"), "--seeds", "0", "--epochs", "2", "--device", "cpu"])
    assert again.exit_code == 0, again.output[-3000:]
    assert "seed 0" in again.output


def test_factorial_refuses_sources_on_different_cohorts(two_runs, tmp_path):
    # a "siren" source whose stages are finished but whose cohort is another synthetic cohort
    seed = tmp_path / "other" / "seed_0"
    seed.mkdir(parents=True)
    for stage in factorial.SHARED_STAGES:
        (seed / stage).symlink_to(two_runs / "siren" / "seed_0" / stage)
    synthesize(seed / "cohort", SynthConfig(n_train=60, n_val=30, n_test=20, spacing=8.0, bias_level=0.7),
               progress=False)
    res = CliRunner().invoke(main, ["bench", "factorial", str(two_runs / "hg"), str(tmp_path / "other"), "--out",
                                    str(tmp_path / "fact"), "--seeds", "0"])
    assert res.exit_code != 0
    assert "same synthetic cohort" in res.output
    assert not (tmp_path / "fact").exists()  # refused before anything was built


def test_factorial_archive_adds_seeds_up_across_calls(two_runs, tmp_path):
    """--archive keeps each combination's seed; a later call takes the effects over every seed archived for all
    eight combinations (a seed archived for only some is left out)."""
    archive = tmp_path / "archive"

    def factorial_json(*extra):
        out = tmp_path / "f.json"
        res = CliRunner().invoke(main, ["bench", "factorial", str(two_runs / "hg"), str(two_runs / "siren"), "--out",
                                        str(two_runs / "fact"), "--seeds", "0", "--epochs", "2", "--device", "cpu",
                                        "--json", str(out), *extra])
        assert res.exit_code == 0, res.output[-3000:]
        return json.loads(out.read_text())

    plain = factorial_json()
    first = factorial_json("--archive", str(archive))
    assert first["seeds"] == [0] and first["effects"] == plain["effects"]
    names = [factorial.combo_name(c) for c in factorial.combinations()]
    assert sorted(p.name for p in archive.iterdir()) == sorted(names)
    # a second seed, as another session would archive it: seed 0's tables with WGA raised by 0.1 wherever the
    # representation is ours, so the representation's effect on WGA rises by exactly 0.1 there
    for c in factorial.combinations():
        table = json.loads((archive / factorial.combo_name(c) / "seed_0.json").read_text())
        for r in table["rows"]:
            if r["model"] == "mitigated" and c["arch"] == "hashgrid":
                r["wga"] += 0.1
        (archive / factorial.combo_name(c) / "seed_1.json").write_text(json.dumps(table))
    (archive / names[0] / "seed_2.json").write_text((archive / names[0] / "seed_0.json").read_text())
    both = factorial_json("--archive", str(archive))
    assert both["seeds"] == [0, 1]
    e0, e1 = both["effects"]["arch"]["wga"]["per_seed"]
    assert e0 == plain["effects"]["arch"]["wga"]["per_seed"][0]
    # differences of sums of four floats near 0.8: float64 rounding is ~1e-16, far under 1e-12
    assert abs((e1 - e0) - 0.1) < 1e-12
    assert both["effects"]["discovery"]["wga"]["per_seed"] == [pytest.approx(x, abs=1e-12) for x in
                                                               plain["effects"]["discovery"]["wga"]["per_seed"] * 2]
