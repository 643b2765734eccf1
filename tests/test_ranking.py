"""Ranking metrics: hand-worked values, conventions (ties, empty rows), and scikit-learn where it agrees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, ndcg_score

from kdgan.evaluation.ranking import (
    average_precision,
    f_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank,
)

# Row A ranks labels 0,1,2,3,4; relevant = {0, 2}    -> relevance by rank [1,0,1,0,0]
# Row B ranks labels 4,1,2,3,0; relevant = {3}       -> relevance by rank [0,0,0,1,0]
# Row C has no relevant label.
SCORES = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.4, 0.3, 0.2, 0.5], [0.3, 0.1, 0.2, 0.5, 0.4]])
TARGETS = torch.tensor([[1.0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]])
LOG3 = math.log2(3)


def test_precision_includes_rows_without_relevant_labels():
    # P@3: A 2/3, B 0/3, C 0/3 -> mean 2/9
    assert precision_at_k(SCORES, TARGETS, 3).item() == pytest.approx(2 / 9)
    # P@5: A 2/5, B 1/5, C 0 -> 3/15
    assert precision_at_k(SCORES, TARGETS, 5).item() == pytest.approx(0.2)


def test_recall_and_f_exclude_rows_without_relevant_labels():
    # R@3: A 2/2 = 1, B 0/1 = 0 (C excluded) -> 0.5
    assert recall_at_k(SCORES, TARGETS, 3).item() == pytest.approx(0.5)
    # F@3: A 2 * (2/3) * 1 / (2/3 + 1) = 0.8, B 0 (both P and R are 0) -> 0.4
    assert f_at_k(SCORES, TARGETS, 3).item() == pytest.approx(0.4)
    # R@1: A 1/2, B 0 -> 0.25.  F@5: A 2 * 0.4 * 1 / 1.4 = 4/7, B 2 * 0.2 * 1 / 1.2 = 1/3
    assert recall_at_k(SCORES, TARGETS, 1).item() == pytest.approx(0.25)
    assert f_at_k(SCORES, TARGETS, 5).item() == pytest.approx((4 / 7 + 1 / 3) / 2)


def test_ndcg_hand_worked():
    # A: DCG@3 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@3 = 1 + 1/log2(3) (only 2 relevant labels)
    # B: DCG@3 = 0 (its relevant label is at rank 4)
    ndcg_a = 1.5 / (1 + 1 / LOG3)
    assert ndcg_at_k(SCORES, TARGETS, 3).item() == pytest.approx(ndcg_a / 2)
    # at k = 5, B: DCG = 1/log2(5), IDCG = 1
    assert ndcg_at_k(SCORES, TARGETS, 5).item() == pytest.approx((ndcg_a + 1 / math.log2(5)) / 2)
    # more relevant labels than k: relevance by rank [0,1,1,1,1], k=2: DCG = 1/log2(3), IDCG = 1 + 1/log2(3)
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    targets = torch.tensor([[0.0, 1, 1, 1, 1]])
    assert ndcg_at_k(scores, targets, 2).item() == pytest.approx((1 / LOG3) / (1 + 1 / LOG3))


def test_average_precision_and_reciprocal_rank_hand_worked():
    # A: relevant at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2 = 5/6, RR = 1
    # B: relevant at rank 4         -> AP = 1/4, RR = 1/4
    assert average_precision(SCORES, TARGETS).item() == pytest.approx((5 / 6 + 1 / 4) / 2)
    assert reciprocal_rank(SCORES, TARGETS).item() == pytest.approx((1 + 1 / 4) / 2)


def test_ties_go_to_the_lower_label_index():
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    targets = torch.tensor([[0.0, 0, 1], [1.0, 0, 0]])
    # row 0: ranking 0,1,2 -> first relevant at rank 3; row 1: at rank 1 -> MRR = (1/3 + 1) / 2
    assert reciprocal_rank(scores, targets).item() == pytest.approx(2 / 3)
    assert precision_at_k(scores, targets, 1).item() == pytest.approx(0.5)


def test_ranking_metrics_bundle_equals_the_single_functions():
    out = ranking_metrics(SCORES, TARGETS, ks=(1, 3))
    assert list(out) == ["p@1", "r@1", "f@1", "ndcg@1", "p@3", "r@3", "f@3", "ndcg@3", "map", "mrr"]
    assert all(v.ndim == 0 for v in out.values())
    assert out["p@3"] == precision_at_k(SCORES, TARGETS, 3)
    assert out["ndcg@3"] == ndcg_at_k(SCORES, TARGETS, 3)
    assert out["map"] == average_precision(SCORES, TARGETS)
    assert out["mrr"] == reciprocal_rank(SCORES, TARGETS)


def test_empty_batch_of_relevant_labels_is_nan_and_bad_shapes_raise():
    zeros = torch.zeros(2, 4)
    assert torch.isnan(recall_at_k(torch.rand(2, 4), zeros, 2))
    assert precision_at_k(torch.rand(2, 4), zeros, 2).item() == 0.0
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.4"):
        precision_at_k(torch.rand(2, 4), zeros, 5)
    with pytest.raises(ValueError, match="shape"):
        average_precision(torch.rand(2, 4), torch.zeros(2, 3))


def random_case(n: int = 200, labels: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous scores (no ties) and targets with at least one relevant label per row."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n, labels))
    targets = (rng.random((n, labels)) < 0.25).astype(np.float64)
    targets[np.arange(n), rng.integers(0, labels, n)] = 1
    return scores, targets


def test_map_matches_sklearn_lrap_and_samples_ap_without_ties():
    # LRAP averages, over relevant labels j, |relevant ranked at or above j| / rank(j): with no ties
    # and a relevant label in every row, that is exactly AP, so LRAP = our MAP (not our MRR).
    scores, targets = random_case()
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(targets)).item()
    assert ours == pytest.approx(label_ranking_average_precision_score(targets, scores), abs=1e-6)
    assert ours == pytest.approx(average_precision_score(targets, scores, average="samples"), abs=1e-6)
    mrr = reciprocal_rank(torch.from_numpy(scores), torch.from_numpy(targets)).item()
    assert abs(mrr - ours) > 0.01  # several relevant labels per row: MRR is a different measure


def test_lrap_equals_mrr_with_one_relevant_label_per_row():
    rng = np.random.default_rng(1)
    scores = rng.random((100, 8))
    targets = np.zeros((100, 8))
    targets[np.arange(100), rng.integers(0, 8, 100)] = 1  # AP = RR = 1 / rank of the one relevant label
    mrr = reciprocal_rank(torch.from_numpy(scores), torch.from_numpy(targets)).item()
    assert mrr == pytest.approx(label_ranking_average_precision_score(targets, scores), abs=1e-6)


def test_rows_without_relevant_labels_differ_from_sklearn_by_design():
    scores, targets = random_case(n=50)
    targets[:10] = 0  # sklearn: LRAP gives such rows 1, ndcg_score gives them 0; we leave them out
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    ours_map = average_precision(s, t).item()
    assert label_ranking_average_precision_score(targets, scores) == pytest.approx((40 * ours_map + 10) / 50)
    ours_ndcg = ndcg_at_k(s, t, 5).item()
    assert ndcg_score(targets, scores, k=5) == pytest.approx(40 * ours_ndcg / 50)


@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_ndcg_matches_sklearn_without_ties(k):
    scores, targets = random_case(seed=k)
    ours = ndcg_at_k(torch.from_numpy(scores), torch.from_numpy(targets), k).item()
    assert ours == pytest.approx(ndcg_score(targets, scores, k=k), abs=1e-6)
