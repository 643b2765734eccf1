"""YFCC-style folders: top-K tags from training posts, dropped posts, train-only text vocabulary, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from kdgan.data.yfcc import load_yfcc_pool, parse_tags, read_yfcc, top_tags
from kdgan.errors import DataError

TEXTS = [
    "red sunset over the sea",
    "a cat on a red sofa",
    "sunset beach",
    "dog in the park",
    "cat and dog",
    "zebra only in test",
    "sunset\u2028again",  # a Unicode line separator inside a text must not start a new post
    "nothing",
    "grey cat",
]
TAGS = ["sunset,sea red", "cat red", "sunset beach", "dog", "cat, dog", "zebra", "sunset", "", "cat"]
SPLIT = ["train"] * 5 + ["test"] * 4
# training tag counts: cat 2, dog 2, red 2, sunset 2, sea 1, beach 1 (ties are broken alphabetically)


def make_folder(tmp_path: Path, texts=TEXTS, tags=TAGS, split=SPLIT) -> Path:
    np.save(tmp_path / "features.npy", np.arange(len(TAGS) * 3, dtype=np.float64).reshape(-1, 3))
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (tmp_path / "tags.txt").write_text("\n".join(tags) + "\n", encoding="utf-8")
    if split is not None:
        (tmp_path / "split.txt").write_text("\n".join(split) + "\n")
    return tmp_path


def test_tag_parsing_and_ranking():
    assert parse_tags(" a, b  c,,a ") == ["a", "b", "c"]
    assert top_tags([["b", "a"], ["b"], ["c", "a"], ["d"]], 2) == ["a", "b"]  # a 2, b 2, c 1, d 1


def test_top4_tags_keep_all_training_posts(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kdgan.data.yfcc"):
        data = read_yfcc(make_folder(tmp_path), top_k=4, text_features="count")
    assert data.tags == ["cat", "dog", "red", "sunset"]
    assert data.dropped == {"train": 0, "test": 2}  # test posts 5 (zebra) and 7 (no tags)
    assert "dropped 0 training and 2 test posts" in caplog.text
    train, test = data.train, data.test
    assert torch.equal(train.y, torch.tensor([[0.0, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]]))
    assert torch.equal(test.y, torch.tensor([[0.0, 0, 0, 1], [1, 0, 0, 0]]))  # posts 6 and 8
    assert train.x.dtype == torch.float32 and torch.equal(test.x[:, 0], torch.tensor([18.0, 24.0]))
    # the vocabulary comes from training texts only ("a" is too short for the default token pattern)
    assert data.vocabulary == [
        "and", "beach", "cat", "dog", "in", "on", "over", "park", "red", "sea", "sofa", "sunset", "the",
    ]
    assert "zebra" not in data.vocabulary and "grey" not in data.vocabulary
    column = data.vocabulary.index
    assert train.privileged[1, column("red")] == 1 and train.privileged[1].sum() == 4  # cat on red sofa
    assert torch.equal(test.privileged[0].nonzero().flatten(), torch.tensor([column("sunset")]))
    assert torch.equal(test.privileged[1].nonzero().flatten(), torch.tensor([column("cat")]))


def test_top3_tags_drop_posts_without_a_kept_tag(tmp_path):
    data = read_yfcc(make_folder(tmp_path), top_k=3)
    assert data.tags == ["cat", "dog", "red"]
    assert data.dropped == {"train": 1, "test": 3}  # post 2 (sunset beach); posts 5, 6, 7
    assert len(data.train) == 4 and len(data.test) == 1
    assert data.train.num_classes == 3 and data.train.multilabel


def test_tfidf_rows_are_unit_length_and_max_features_caps_the_vocabulary(tmp_path):
    folder = make_folder(tmp_path)
    data = read_yfcc(folder, top_k=4, text_features="tfidf")
    norms = data.train.privileged.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    capped = read_yfcc(folder, top_k=4, max_features=3)
    assert len(capped.vocabulary) == 3 and capped.train.privileged.shape == (5, 3)


def test_random_split_without_split_file(tmp_path):
    folder = make_folder(tmp_path, split=None)
    a_train, a_test = load_yfcc_pool(folder, top_k=10, test_fraction=1 / 3, seed=3)
    b_train, b_test = load_yfcc_pool(folder, top_k=10, test_fraction=1 / 3, seed=3)
    assert torch.equal(a_train.x, b_train.x) and torch.equal(a_test.x, b_test.x)  # seeded
    data = read_yfcc(folder, top_k=10, test_fraction=1 / 3, seed=3)
    assert len(data.train) + len(data.test) + sum(data.dropped.values()) == 9
    assert len(data.test) + data.dropped["test"] == 3


def test_row_count_mismatch_names_counts_and_files(tmp_path):
    folder = make_folder(tmp_path, texts=TEXTS[:-1])
    with pytest.raises(DataError, match=r"features\.npy: 9, texts\.txt: 8, tags\.txt: 9"):
        read_yfcc(folder)
    folder = make_folder(tmp_path, split=SPLIT[:-1])
    with pytest.raises(DataError, match=r"split\.txt has 8 lines but .*features\.npy has 9 rows"):
        read_yfcc(folder)


def test_other_bad_folders(tmp_path):
    with pytest.raises(DataError, match=r"lacks features\.npy, texts\.txt, tags\.txt"):
        read_yfcc(tmp_path)
    folder = make_folder(tmp_path, split=["train"] * 5 + ["val"] + ["test"] * 3)
    with pytest.raises(DataError, match=r"split\.txt, line 6: expected 'train' or 'test', found 'val'"):
        read_yfcc(folder)
    make_folder(tmp_path)
    np.save(tmp_path / "features.npy", np.zeros(9))
    with pytest.raises(DataError, match=r"must be a 2-d numeric \(N, D\) array"):
        read_yfcc(tmp_path)
