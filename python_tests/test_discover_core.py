"""Subgroup discovery core: the error-aware mixture against scikit-learn's GaussianMixture on data with a
known partition, the knee rule on a curve worked by hand, and the S_B / S_NB rules on a constructed case."""
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, homogeneity_score
from sklearn.mixture import GaussianMixture

from morphbias_fast.discover import ErrorAwareGMM, knee_index, subgroup_table
from morphbias_fast.discover.subgroups import rebalanced_set


def blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0]], dtype=float)
    truth = np.repeat(np.arange(3), n)
    feats = centres[truth] + rng.normal(0, 1, (3 * n, 4))
    y = (truth == 1).astype(int)
    prob = np.clip(0.2 + 0.6 * (truth > 0) + rng.normal(0, 0.05, 3 * n), 0, 1)
    return feats, y, prob, truth


def test_mixture_recovers_a_known_partition_like_sklearn():
    feats, y, prob, truth = blobs()
    ours = ErrorAwareGMM(n_components=3, y_weight=1.0, p_weight=1.0, seed=0).fit_predict(feats, y, prob)
    X = np.column_stack([feats, prob])
    X = (X - X.mean(0)) / X.std(0)
    theirs = GaussianMixture(3, covariance_type="diag", random_state=0, n_init=5).fit_predict(X)
    assert adjusted_rand_score(truth, ours) > 0.98  # well separated blobs: both recover them
    assert adjusted_rand_score(theirs, ours) > 0.98


def test_error_columns_steer_the_mixture():
    # Two groups identical in feature space that differ only in label and prediction: only the weighted
    # error-aware columns can separate them.
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 1, (400, 4))
    truth = np.repeat([0, 1], 200)
    y = truth
    prob = np.where(truth == 1, 0.9, 0.1) + rng.normal(0, 0.02, 400)
    labels = ErrorAwareGMM(n_components=2, seed=0).fit_predict(feats, y, prob)
    assert adjusted_rand_score(truth, labels) > 0.98


def test_confusion_start_by_hand():
    # y = 0 with P(class 1) = 0.2 sits in cells (0, 0) and (0, 1) with weights 0.8 and 0.2; y = 1 with 0.7 in
    # (1, 0) and (1, 1) with 0.3 and 0.7. Cell j goes to components j and j + 4 (K = 7: cells 0-3, 0-2).
    gmm = ErrorAwareGMM(n_components=7, init="confusion", confusion_noise=0.0)
    resp = gmm._confusion_resp(torch.tensor([0.0, 1.0], dtype=torch.float64),
                               torch.tensor([0.2, 0.7], dtype=torch.float64), torch.Generator().manual_seed(0))
    row0 = np.array([0.8, 0.2, 0, 0, 0.8, 0.2, 0]) / 2.0
    row1 = np.array([0, 0, 0.3, 0.7, 0, 0, 0.3]) / 1.3
    # entries <= 1 made by one product and one division in float64 on each side: a few ulps of 1 (2.2e-16)
    np.testing.assert_allclose(resp.numpy(), np.stack([row0, row1]), rtol=0, atol=1e-15)


def test_confusion_start_separates_error_only_groups():
    # As test_error_columns_steer_the_mixture, from the confusion start: the groups differ only in label
    # and prediction, which is what that start encodes. With K = 4 cells for 2 groups a group may take two
    # components, so the check is that no component mixes the groups (homogeneity 1).
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 1, (400, 4))
    truth = np.repeat([0, 1], 200)
    prob = np.where(truth == 1, 0.9, 0.1) + rng.normal(0, 0.02, 400)
    for weight in (1.0, 10.0):
        labels = ErrorAwareGMM(n_components=4, init="confusion", y_weight=weight, p_weight=weight,
                               seed=0).fit_predict(feats, truth, prob)
        assert homogeneity_score(truth, labels) == pytest.approx(1.0)


def test_mixture_start_errors():
    feats, y, prob, _ = blobs()
    with pytest.raises(ValueError, match="init must be one of"):
        ErrorAwareGMM(n_components=3, init="random").fit_predict(feats, y, prob)
    with pytest.raises(ValueError, match="at least 4 components"):
        ErrorAwareGMM(n_components=3, init="confusion").fit_predict(feats, y, prob)


def test_knee_by_hand():
    # normalised curve y = (v - 1) / 9 = [0, .011, .022, .033, .444, 1] vs the chord x = [0, .2, ..., 1]:
    # the largest gap |y - x| is 0.567 at index 3 (value 1.3), the last value before the jump.
    assert knee_index([10, 1.2, 1, 5, 1.1, 1.3]) == 3


def test_roles_and_rebalanced_set():
    groups = np.repeat([0, 1, 2], 20)
    y_true = np.tile([1, 0], 30)
    y_pred = y_true.copy()
    y_pred[:20] = 1                                  # group 0: every case predicted positive (FPs, no FN)
    y_pred[20:40] = 0                                # group 1: every case predicted negative (FNs)
    y_pred[40:60][[2, 3]] = [0, 1]                   # group 2: mostly right, one FN and one FP (ratio 1)
    table = subgroup_table(groups, y_true, y_pred, min_size=10).set_index("subgroup")
    assert table.loc[0, "dtpr"] > 0 and np.isinf(table.loc[0, "ratio"]) and table.loc[0, "role"] == "S_B"
    assert table.loc[1, "dtpr"] < 0 and table.loc[1, "ratio"] == 0 and table.loc[1, "role"] == "S_NB"
    mask = rebalanced_set(groups, y_true, table.reset_index())
    assert mask[:20].sum() == 10 and (y_true[:20][mask[:20]] == 0).all()     # negatives of S_B
    assert mask[20:40].sum() == 10 and (y_true[20:40][mask[20:40]] == 1).all()  # positives of S_NB
    assert not mask[40:].any()


def test_small_subgroups_are_dropped():
    table = subgroup_table(np.r_[np.zeros(12), np.ones(5)], np.r_[np.ones(9), np.zeros(8)], np.ones(17))
    assert table["subgroup"].tolist() == [0]


def test_a_split_whose_subgroups_are_all_small_gives_an_empty_table_and_selects_nothing():
    """Seen on a 30-subject val split with the paper's 7 components: every subgroup under min_size."""
    groups, y = np.arange(14) % 7, np.r_[np.ones(7), np.zeros(7)]
    table = subgroup_table(groups, y, y, min_size=10)
    assert len(table) == 0 and {"subgroup", "ratio", "role"} <= set(table.columns)
    assert not rebalanced_set(groups, y, table).any()
