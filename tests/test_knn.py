"""KNN tag propagation: hand-worked votes, chunking, leave-one-out, and scikit-learn's KNN regressor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsRegressor

from kdgan.data.core import TensorData
from kdgan.evaluation.knn import knn_predict, knn_scores

# four 1-d training points and their tags (3 labels)
TRAIN_X = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
TRAIN_Y = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_uniform_and_distance_weighted_votes_by_hand():
    query = torch.tensor([[0.9]])  # distances 0.9, 0.1, 2.1, 9.1: the 2 nearest are rows 1 and 0
    uniform = knn_scores(query, TRAIN_X, TRAIN_Y, k=2, metric="euclidean")
    assert torch.allclose(uniform, torch.tensor([[0.5, 0.5, 0.0]]))
    # weights 1/0.1 = 10 (row 1) and 1/0.9 (row 0): label 0 gets (1/0.9) / (10 + 1/0.9) = 0.1
    weighted = knn_scores(query, TRAIN_X, TRAIN_Y, k=2, metric="euclidean", weights="distance")
    assert torch.allclose(weighted, torch.tensor([[0.1, 0.9, 0.0]]))
    # k = 3 adds row 2 (distance 2.1): uniform votes (1, 2, 1) / 3
    three = knn_scores(query, TRAIN_X, TRAIN_Y, k=3, metric="euclidean")
    assert torch.allclose(three, torch.tensor([[1 / 3, 2 / 3, 1 / 3]]))


def test_a_neighbour_at_distance_zero_takes_the_whole_vote():
    scores = knn_scores(torch.tensor([[3.0]]), TRAIN_X, TRAIN_Y, k=3, metric="euclidean", weights="distance")
    assert torch.equal(scores, torch.tensor([[0.0, 1.0, 1.0]]))


def test_cosine_ignores_length():
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    train_y = torch.eye(3)
    # [5, 0.1] points almost along [1, 0]: cosine distances ~0.0002, ~0.98, ~0.28 -> nearest rows 0 then 2
    scores = knn_scores(torch.tensor([[5.0, 0.1]]), train_x, train_y, k=2, metric="cosine")
    assert torch.allclose(scores, torch.tensor([[0.5, 0.0, 0.5]]))
    # [3, 0.6] is nearer [1, 1] in euclidean distance (2.04 against 2.09) but nearer [1, 0] in angle
    # (cosine 0.98 against 0.83)
    query = torch.tensor([[3.0, 0.6]])
    assert knn_scores(query, train_x, train_y, k=1, metric="cosine").argmax() == 0
    assert knn_scores(query, train_x, train_y, k=1, metric="euclidean").argmax() == 2


def test_exclude_self_is_leave_one_out():
    scores = knn_scores(TRAIN_X, TRAIN_X, TRAIN_Y, k=1, metric="euclidean", exclude_self=True)
    # nearest other point: 0 -> 1, 1 -> 0, 2 -> 1, 3 -> 2
    assert torch.equal(scores, TRAIN_Y[[1, 0, 1, 2]])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_matches_sklearn_knn_regressor_and_chunking_does_not_matter(metric, weights):
    rng = np.random.default_rng(0)
    x, q = rng.normal(size=(120, 6)), rng.normal(size=(37, 6))
    y = (rng.random((120, 9)) < 0.3).astype(np.float64)
    reference = KNeighborsRegressor(n_neighbors=7, weights=weights, metric=metric, algorithm="brute").fit(x, y)
    expected = torch.from_numpy(reference.predict(q)).float()
    t = [torch.from_numpy(a).float() for a in (q, x, y)]
    whole = knn_scores(*t, k=7, metric=metric, weights=weights)
    chunked = knn_scores(*t, k=7, metric=metric, weights=weights, chunk_size=5)
    assert whole.shape == (37, 9)
    assert torch.allclose(whole, expected, atol=1e-5)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_knn_predict_one_hots_class_targets_and_flattens_images():
    pool = TensorData(torch.arange(8.0).reshape(4, 1, 2), torch.tensor([0, 2, 2, 1]), num_classes=3)
    scores = knn_predict(pool, torch.tensor([[[2.1, 3.1]]]), k=3, metric="euclidean")
    # rows [0,1], [2,3], [4,5], [6,7]; distances 2.97, 0.14, 2.69, 5.52: rows 1, 2, 0 -> classes 2, 2, 0
    assert torch.allclose(scores, torch.tensor([[1 / 3, 0.0, 2 / 3]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.4"):
        knn_scores(TRAIN_X, TRAIN_X, TRAIN_Y, k=5)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.3"):
        knn_scores(TRAIN_X, TRAIN_X, TRAIN_Y, k=4, exclude_self=True)
    with pytest.raises(ValueError, match="metric"):
        knn_scores(TRAIN_X, TRAIN_X, TRAIN_Y, k=1, metric="manhattan")
    with pytest.raises(ValueError, match="weights"):
        knn_scores(TRAIN_X, TRAIN_X, TRAIN_Y, k=1, weights="rank")
