"""Two-view (privileged information) splits of the real yeast and emotions files."""

from __future__ import annotations

import pytest
import torch

from kdgan.data.arff import read_mulan
from kdgan.data.twoview import TWO_VIEWS, load_two_view_pool, split_views, two_view
from kdgan.errors import DataError


def test_definitions_are_disjoint_and_cover_the_features():
    assert len(two_view("emotions").views["rhythmic"]) == 8 and len(two_view("emotions").views["timbre"]) == 64
    assert len(two_view("yeast").views["expression"]) == 79 and len(two_view("yeast").views["phylogenetic"]) == 24
    for spec in TWO_VIEWS.values():
        a, b = spec.views.values()
        assert not set(a) & set(b)
    assert two_view("emotions").verified and not two_view("yeast").verified
    with pytest.raises(DataError, match="no two-view split is defined for 'scene'"):
        two_view("scene")


def test_emotions_views_are_the_named_columns(shared_data):
    train, test = load_two_view_pool("emotions", shared_data)
    raw_train, _ = read_mulan("emotions", shared_data)
    assert train.x.shape == (391, 8) and train.privileged.shape == (391, 64) and test.x.shape == (202, 8)
    # the student (rhythmic) columns are the last 8 features, BH_LowPeakAmp .. BHSUM3
    assert raw_train.feature_names[64:] == two_view("emotions").views["rhythmic"]
    assert torch.equal(train.x, torch.from_numpy(raw_train.x[:, 64:]))
    assert torch.equal(train.privileged, torch.from_numpy(raw_train.x[:, :64]))
    assert torch.equal(train.y, torch.from_numpy(raw_train.y))


def test_yeast_student_choice(shared_data):
    train, test = load_two_view_pool("yeast", shared_data)
    raw_train, _ = read_mulan("yeast", shared_data)
    assert train.x.shape == (1500, 24) and train.privileged.shape == (1500, 79) and test.privileged.shape == (917, 79)
    assert torch.equal(train.x, torch.from_numpy(raw_train.x[:, 79:]))
    swapped, _ = load_two_view_pool("yeast", shared_data, student="expression")
    assert torch.equal(swapped.x, train.privileged) and torch.equal(swapped.privileged, train.x)
    with pytest.raises(DataError, match="student='text' is not one of them"):
        split_views(raw_train, two_view("yeast"), student="text")


def test_wrong_file_is_caught(shared_data):
    scene, _ = read_mulan("scene", shared_data)  # also named Att1..Att294: the names alone would match
    with pytest.raises(DataError, match="has 294 features but the two views of yeast cover 103"):
        split_views(scene, two_view("yeast"))
    emotions, _ = read_mulan("emotions", shared_data)
    with pytest.raises(DataError, match="the phylogenetic view of yeast needs attributes Att80, Att81"):
        split_views(emotions, two_view("yeast"))
