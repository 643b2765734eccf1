"""A YFCC100M-style tag-recommendation folder: image features, post texts and user tags.

The folder holds, one post per row/line and in the same order:

* ``features.npy``: (N, D) float image features, the student's input ``x``;
* ``texts.txt``: the post's text (title, description), the teacher-only ``privileged`` input,
  turned into bag-of-words or TF-IDF vectors by scikit-learn, fitted on training posts only;
* ``tags.txt``: the post's tags, separated by spaces and/or commas;
* ``split.txt`` (optional): ``train`` or ``test`` per line; without it, a seeded random
  ``test_fraction`` of the posts is the test set.

The targets are multi-hot vectors over the K tags used by the most training posts (ties broken
alphabetically); posts with none of those tags are dropped from both splits, and how many were
dropped is returned and logged.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from kdgan.data.core import TensorData
from kdgan.data.files import read_npy
from kdgan.errors import DataError

if TYPE_CHECKING:
    from scipy import sparse

log = logging.getLogger(__name__)

FEATURES, TEXTS, TAGS, SPLIT = "features.npy", "texts.txt", "tags.txt", "split.txt"
_TAG_SEP = re.compile(r"[\s,]+")
_NOT_IN_TAGS = re.compile(r"[;|\[\]{}\"]")


@dataclass
class YfccData:
    """The two splits plus what is needed to read them: tag names (label order), the text
    vocabulary (privileged column order), and how many posts each split lost for having no kept tag."""

    train: TensorData
    test: TensorData
    tags: list[str]
    vocabulary: list[str]
    dropped: dict[str, int] = field(default_factory=dict)


def _read_lines(path: Path) -> list[str]:
    """One entry per line. Only ``\\n`` ends a line (texts may hold other Unicode line breaks)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); re-encode it as UTF-8") from None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def parse_tags(line: str) -> list[str]:
    """The distinct tags of one line, in order of first appearance."""
    return list(dict.fromkeys(t for t in _TAG_SEP.split(line.strip()) if t))


def check_tag_format(tag_lists: list[list[str]], path: Path) -> None:
    """Refuse tags that show a guessed file format (JSON lists, ';' or '|' separated tags), which
    would otherwise be read as odd tags such as '["beach"' without a word."""
    for number, tags in enumerate(tag_lists, start=1):
        for tag in tags:
            found = _NOT_IN_TAGS.search(tag)
            if found:
                raise DataError(
                    f"{path}, line {number}: tag {tag!r} holds {found.group()!r}; {TAGS} lists each post's tags "
                    "as plain words separated by spaces and/or commas, e.g. 'beach, sunset dog'"
                )


def top_tags(tag_lists: list[list[str]], k: int) -> list[str]:
    """The k tags used by the most posts (each post counts a tag once), ties broken alphabetically."""
    counts = Counter(t for tags in tag_lists for t in set(tags))
    return sorted(counts, key=lambda t: (-counts[t], t))[:k]


def _split_mask(folder: Path, n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the training posts."""
    path = folder / SPLIT
    if not path.is_file():
        if not 0 < test_fraction < 1:
            raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
        rng = np.random.default_rng(seed)
        train = np.ones(n, dtype=bool)
        train[rng.permutation(n)[: round(n * test_fraction)]] = False
        return train
    marks = [m.strip().lower() for m in _read_lines(path)]
    if len(marks) != n:
        raise DataError(
            f"{path} has {len(marks)} lines but {folder / FEATURES} has {n} rows; give one train/test mark per post"
        )
    bad = next((i for i, m in enumerate(marks) if m not in ("train", "test")), None)
    if bad is not None:
        raise DataError(f"{path}, line {bad + 1}: expected 'train' or 'test', found {marks[bad]!r}")
    return np.array([m == "train" for m in marks])


def _check_folder_and_options(folder: Path, text_features: str, top_k: int) -> None:
    """Refuse a folder without its three files, or options read_yfcc does not know."""
    missing = [name for name in (FEATURES, TEXTS, TAGS) if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}; a YFCC folder needs {FEATURES} (N x D image features), "
            f"{TEXTS} (one text per line) and {TAGS} (one line of tags per post), and may hold {SPLIT}"
        )
    if text_features not in ("tfidf", "count"):
        raise DataError(f"text_features must be 'tfidf' or 'count', got {text_features!r}")
    if top_k < 1:
        raise DataError(f"top_k must be at least 1, got {top_k}")


def _read_features(folder: Path) -> np.ndarray:
    """The (N, D) image features: numeric, finite, at least one row."""
    features = read_npy(folder / FEATURES)  # the reader `kdgan predict` uses: no pickles, numbers only
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise DataError(
            f"{folder / FEATURES} must be a 2-d numeric (N, D) array, got shape {features.shape} of {features.dtype}"
        )
    finite = np.isfinite(features).all(1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{folder / FEATURES} holds NaN or infinite values (first in row {row}, counting from 0); "
                        "clean or impute them first")
    if len(features) == 0:
        raise DataError(f"{folder / FEATURES} has no rows; it needs one row of features per post")
    return features


def _read_texts_and_tags(folder: Path, n: int) -> tuple[list[str], list[str]]:
    """The lines of texts.txt and tags.txt, refused unless both have one line per feature row."""
    texts = _read_lines(folder / TEXTS)
    tag_lines = _read_lines(folder / TAGS)
    counts = {FEATURES: n, TEXTS: len(texts), TAGS: len(tag_lines)}
    if len(set(counts.values())) != 1:
        found = ", ".join(f"{name}: {c}" for name, c in counts.items())
        raise DataError(f"{folder}: the files must describe the same posts, one per row/line, but have {found}")
    return texts, tag_lines


def _multi_hot(tag_lists: list[list[str]], vocab_tags: list[str]) -> np.ndarray:
    """(N, K) float32 targets: 1 where post i carries kept tag j."""
    column = {t: j for j, t in enumerate(vocab_tags)}
    y = np.zeros((len(tag_lists), len(vocab_tags)), dtype=np.float32)
    for i, tags in enumerate(tag_lists):
        for t in tags:
            if t in column:
                y[i, column[t]] = 1.0
    return y


def _text_vectors(
    texts: list[str], train_idx: np.ndarray, folder: Path, text_features: str, max_features: int
) -> tuple[sparse.csr_matrix, list[str]]:
    """Bag-of-words or TF-IDF vectors of every text (sparse float32), fitted on training posts only,
    and the vocabulary in column order."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    vectorizer_cls = TfidfVectorizer if text_features == "tfidf" else CountVectorizer
    vectorizer = vectorizer_cls(max_features=max_features)
    try:
        vectorizer.fit([texts[i] for i in train_idx])
    except ValueError as err:  # "empty vocabulary": every training text is empty or stop words
        raise DataError(f"{folder / TEXTS}: no words found in the training posts' texts ({err})") from None
    return vectorizer.transform(texts).astype(np.float32), list(vectorizer.get_feature_names_out())


def read_yfcc(
    directory: str | Path,
    top_k: int = 200,
    max_features: int = 2000,
    text_features: str = "tfidf",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> YfccData:
    """Read a YFCC-style folder (see the module docstring) into train and test TensorData.

    ``x`` = image features (float32), ``privileged`` = dense (N, <= max_features) text vectors
    (``text_features`` "tfidf" or "count"), ``y`` = multi-hot over the ``top_k`` tags. Note that
    the text matrix is stored dense: N * max_features * 4 bytes.
    """
    folder = Path(directory).expanduser()
    _check_folder_and_options(folder, text_features, top_k)
    features = _read_features(folder)
    n = len(features)
    texts, tag_lines = _read_texts_and_tags(folder, n)
    is_train = _split_mask(folder, n, test_fraction, seed)
    tag_lists = [parse_tags(line) for line in tag_lines]
    check_tag_format(tag_lists, folder / TAGS)
    vocab_tags = top_tags([t for t, keep in zip(tag_lists, is_train, strict=True) if keep], top_k)
    if not vocab_tags:
        raise DataError(f"{folder / TAGS}: the training posts have no tags at all; check the file and the split")
    y = _multi_hot(tag_lists, vocab_tags)
    kept = y.any(1)
    dropped = {"train": int((is_train & ~kept).sum()), "test": int((~is_train & ~kept).sum())}
    train_idx = np.flatnonzero(is_train & kept)
    test_idx = np.flatnonzero(~is_train & kept)
    if len(train_idx) == 0:
        raise DataError(f"{folder}: no training post is left after keeping the top {top_k} tags")
    log.info(
        "%s: dropped %d training and %d test posts with none of the top %d tags",
        folder, dropped["train"], dropped["test"], len(vocab_tags),
    )
    text_x, vocabulary = _text_vectors(texts, train_idx, folder, text_features, max_features)

    def make(index: np.ndarray) -> TensorData:
        return TensorData(
            x=torch.from_numpy(np.ascontiguousarray(features[index], dtype=np.float32)),
            y=torch.from_numpy(y[index]),
            num_classes=len(vocab_tags),
            privileged=torch.from_numpy(text_x[index].toarray()),
        )

    return YfccData(train=make(train_idx), test=make(test_idx), tags=vocab_tags, vocabulary=vocabulary,
                    dropped=dropped)


def load_yfcc_pool(directory: str | Path, **kwargs) -> tuple[TensorData, TensorData]:
    """(training pool, test set) of a YFCC-style folder; keyword arguments go to read_yfcc."""
    data = read_yfcc(directory, **kwargs)
    return data.train, data.test
