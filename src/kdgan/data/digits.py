"""scikit-learn's bundled 8x8 digits: the embedded default dataset (no download)."""

from __future__ import annotations

import numpy as np
import torch

from kdgan.data.core import TensorData

TEST_SIZE = 497  # 1,797 images: a fixed 1,300-image training pool and 497 test images


def load_digits_pool() -> tuple[TensorData, TensorData]:
    """Return (training pool, test set) as 1x8x8 images scaled to [0, 1]; the split is fixed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.as_tensor(np.random.default_rng(0).permutation(len(y)))
    pool, test = order[:-TEST_SIZE], order[-TEST_SIZE:]
    return TensorData(x[pool], y[pool], 10), TensorData(x[test], y[test], 10)
