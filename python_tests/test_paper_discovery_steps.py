"""bench/diagnostics/paper_discovery_steps.py on features built so that the answer is known: the bias moves a
direction with little variance (the eighth of ten by variance), as it does in the registration latents."""
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("paper_discovery_steps",
                                                  ROOT / "bench" / "diagnostics" / "paper_discovery_steps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_low_variance_bias_is_lost_by_four_components_and_found_by_all():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    bias = np.where(rng.random(n) < 0.8, y, 1 - y)  # bias level 0.8
    sd = np.array([5.0, 4.5, 4.0, 3.5, 3.0, 2.6, 2.2, 0.5, 0.3, 0.3])
    X = rng.normal(size=(n, 10)) * sd
    X[:, 7] += 3.0 * bias  # variance 0.25 + 9 * 0.25 = 2.5: the eighth largest, below 2.2**2 = 4.84
    X = X @ np.linalg.qr(rng.normal(size=(10, 10)))[0]  # rotated: no axis of the input is the bias
    prob = np.clip(0.5 + 0.4 * (y - 0.5) + 0.3 * (bias - 0.5) + rng.normal(0, 0.1, n), 0.01, 0.99)
    rows = _module().split_steps(X, y, (prob > 0.5).astype(int), prob, bias, pcs=[4, 10])
    four, full = rows
    assert four["bias_pc_rank"] == 8
    # Within a class the bias is a 3-SD shift along its own direction: the one component finds it at AUC
    # Phi(3 / sqrt(2)) = 0.98 in theory; 0.95 leaves room for 300 cases a class.
    assert four["bias_pc_auc"] > 0.95 and full["probe_in_diseased"] > 0.95 and full["probe_in_healthy"] > 0.95
    # The first four components are independent of the bias: chance, with the CV's noise on 300 cases (the
    # SD of an AUC at 0.5 with 150 + 150 cases is about 0.033; 0.62 is more than three of them).
    assert four["top4_best_auc"] < 0.62
    assert four["probe_in_diseased"] < 0.62 and four["probe_in_healthy"] < 0.62


def test_knee_inclusive_rules_give_the_knee_subgroup_its_role():
    """Four subgroups of 20 diseased + 20 healthy with FPR/FNR ratios 0, 0.4, inf and 5 (by hand below). The
    knee of the finite ratios [0, 0.4, 5] is 0.4: normalised, [0, 0.08, 1] lies farthest (0.42) from the chord
    at the middle point. Subgroup 1 has TPR 0.5 below the overall 48/80 = 0.6: the published rules (strict
    inequalities) give it no role; the knee-inclusive ones make it S_NB and keep its 20 diseased."""
    from morphbias_fast.discover.subgroups import rebalanced_set, subgroup_table

    def block(tp, fp):  # 20 diseased (tp predicted diseased) and 20 healthy (fp predicted diseased)
        return [1] * 20 + [0] * 20, [1] * tp + [0] * (20 - tp) + [1] * fp + [0] * (20 - fp)

    parts = [block(0, 0), block(10, 4), block(20, 10), block(18, 10)]  # ratios 0/1, 0.2/0.5, 0.5/0, 0.5/0.1
    y = np.array(sum((p[0] for p in parts), []))
    y_pred = np.array(sum((p[1] for p in parts), []))
    groups = np.repeat(np.arange(4), 40)
    published = rebalanced_set(groups, y, subgroup_table(groups, y, y_pred))
    inclusive = rebalanced_set(groups, y, subgroup_table(groups, y, y_pred, knee_inclusive=True))
    # published: S_NB = {0} (its diseased), S_B = {2, 3} (their healthy)
    assert published.tolist() == ((groups == 0) & (y == 1) | np.isin(groups, [2, 3]) & (y == 0)).tolist()
    assert inclusive.tolist() == (published | (groups == 1) & (y == 1)).tolist()
