"""ARFF reading: dense and sparse rows, quoted names, comments, label sources, errors, real Mulan files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kdgan.data.arff import load_mulan_pool, meka_label_count, read_arff, read_label_xml, read_mulan
from kdgan.errors import DataError

HEADER = """% Title: a tiny multi-label file
% it has comments, quoted names and a nominal feature
@relation 'not to be trusted'

@attribute 'first feature' numeric
@attribute "it's quoted" real   % an inline comment
@attribute 'esc \\'aped\\'' {low,mid,high}
@attribute lab2 {0,1}
@attribute lab1 {0,1}

@data
"""
DENSE_ROWS = """% a comment between rows
1.5,-2,mid,0,1

0,3e2,'high',1,1
0.25,0,low,0,0
"""
SPARSE_ROWS = """{0 1.5, 1 -2, 2 mid, 4 1}
{1 3e2, 2 high, 3 1, 4 1}
{0 0.25}
"""
XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab1"></label>
<label name="lab2"></label>
</labels>
"""
EXPECTED_X = np.array([[1.5, -2, 1], [0, 300, 2], [0.25, 0, 0]], dtype=np.float32)  # low/mid/high -> 0/1/2
EXPECTED_Y = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.float32)  # columns in file order: lab2, lab1


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def xml(tmp_path: Path) -> Path:
    return write(tmp_path, "tiny.xml", XML)


def test_dense_file_with_comments_quotes_and_xml_labels(tmp_path, xml):
    data = read_arff(write(tmp_path, "d.arff", HEADER + DENSE_ROWS), xml=xml)
    assert data.feature_names == ["first feature", "it's quoted", "esc 'aped'"]
    # the XML lists lab1 first, but columns keep the ARFF order
    assert data.label_names == ["lab2", "lab1"]
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    np.testing.assert_array_equal(data.x, EXPECTED_X)
    np.testing.assert_array_equal(data.y, EXPECTED_Y)
    assert data.relation == "not to be trusted"


def test_sparse_rows_equal_the_dense_ones(tmp_path, xml):
    data = read_arff(write(tmp_path, "s.arff", HEADER + SPARSE_ROWS), xml=xml)
    np.testing.assert_array_equal(data.x, EXPECTED_X)  # omitted entries are 0 (first nominal value: low)
    np.testing.assert_array_equal(data.y, EXPECTED_Y)


def test_dense_and_sparse_rows_may_mix(tmp_path, xml):
    rows = "1.5,-2,mid,0,1\n{1 3e2, 2 high, 3 1, 4 1}\n0.25,0,low,0,0"  # no final newline
    data = read_arff(write(tmp_path, "m.arff", HEADER + rows), xml=xml)
    np.testing.assert_array_equal(data.x, EXPECTED_X)
    np.testing.assert_array_equal(data.y, EXPECTED_Y)


def test_to_tensor_data(tmp_path, xml):
    pool = read_arff(write(tmp_path, "d.arff", HEADER + DENSE_ROWS), xml=xml).to_tensor_data()
    assert pool.multilabel and pool.num_classes == 2 and pool.privileged is None
    assert torch.equal(pool.y, torch.from_numpy(EXPECTED_Y))


def test_label_count_and_names(tmp_path):
    path = write(tmp_path, "d.arff", HEADER + DENSE_ROWS)
    last_two = read_arff(path, labels=-2)
    assert last_two.label_names == ["lab2", "lab1"]
    by_name = read_arff(path, labels=["lab1"])
    assert by_name.label_names == ["lab1"]
    assert by_name.feature_names[-1] == "lab2"
    np.testing.assert_array_equal(by_name.y[:, 0], [1, 1, 0])


def test_meka_relation_gives_the_label_count(tmp_path):
    first = "@relation 'Music: -C 2 -split-percentage 50'\n@attribute a {0,1}\n@attribute b {0,1}\n"
    first += "@attribute f1 numeric\n@attribute f2 numeric\n@data\n1,0,0.5,7\n0,0,1,2\n"
    data = read_arff(write(tmp_path, "meka.arff", first))
    assert data.label_names == ["a", "b"] and data.feature_names == ["f1", "f2"]
    np.testing.assert_array_equal(data.y, [[1, 0], [0, 0]])
    last = "@relation 'x: -C -1'\n@attribute f numeric\n@attribute g numeric\n@attribute c {0,1}\n@data\n1,2,1\n"
    data = read_arff(write(tmp_path, "meka_neg.arff", last))
    assert data.label_names == ["c"] and data.feature_names == ["f", "g"]
    assert meka_label_count("Yeast: -C 14 -split 3") == 14
    assert meka_label_count("MultiLabelData") is None


def test_xml_reader_keeps_document_order(xml):
    assert read_label_xml(xml) == ["lab1", "lab2"]


# ---------------------------------------------------------------- errors


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.arff not found"):
        read_arff(tmp_path / "nope.arff", labels=1)


def test_missing_mulan_files_say_what_is_expected_where(tmp_path):
    with pytest.raises(DataError, match=r"needs yeast-train\.arff, yeast-test\.arff and yeast\.xml, but none") as err:
        load_mulan_pool("yeast", tmp_path)
    assert str(tmp_path / "yeast") in str(err.value) and str(tmp_path / "multilabel" / "yeast") in str(err.value)
    (tmp_path / "yeast-train.arff").write_text("")
    with pytest.raises(DataError, match=r"yeast-test\.arff not found"):
        load_mulan_pool("yeast", tmp_path)
    with pytest.raises(DataError, match="unknown Mulan dataset 'mnist'"):
        load_mulan_pool("mnist", tmp_path)


def test_truncated_dense_row_gives_file_and_line(tmp_path, xml):
    # header lines 1-11, then the comment row (12) and rows on lines 13, 15, 16
    path = write(tmp_path, "t.arff", HEADER + DENSE_ROWS + "0.5,1")
    with pytest.raises(DataError, match=r"t\.arff, line 17: expected 5 comma-separated values, found 2"):
        read_arff(path, xml=xml)


def test_truncated_sparse_row_gives_file_and_line(tmp_path, xml):
    path = write(tmp_path, "t.arff", HEADER + SPARSE_ROWS + "{0 1, 3")
    with pytest.raises(DataError, match=r"t\.arff, line 15: sparse row has no closing '\}'"):
        read_arff(path, xml=xml)
    path = write(tmp_path, "u.arff", HEADER + "{0 1, 3}\n")
    with pytest.raises(DataError, match=r"u\.arff, line 12: .*'index value' pairs"):
        read_arff(path, xml=xml)


def test_sparse_index_out_of_range(tmp_path, xml):
    path = write(tmp_path, "o.arff", HEADER + "{0 1, 5 1}\n")
    with pytest.raises(DataError, match=r"line 12: sparse index 5 is outside 0\.\.4"):
        read_arff(path, xml=xml)


def test_xml_label_missing_from_arff(tmp_path):
    path = write(tmp_path, "d.arff", HEADER + DENSE_ROWS)
    other = write(tmp_path, "other.xml", XML.replace("lab2", "Class7"))
    with pytest.raises(DataError, match=r"label\(s\) named in label XML .*other\.xml are not attributes.*'Class7'"):
        read_arff(path, xml=other)


def test_non_binary_label_values(tmp_path):
    rows = "@relation r\n@attribute f numeric\n@attribute c numeric\n@data\n1,0\n2,1\n3,2\n"
    with pytest.raises(DataError, match=r"line 7: label 'c' has value 2; label values must be 0 or 1"):
        read_arff(write(tmp_path, "b.arff", rows), labels=-1)
    declared = "@relation r\n@attribute f numeric\n@attribute c {yes,no}\n@data\n1,yes\n"
    with pytest.raises(DataError, match=r"label attribute 'c' is declared \{yes,no\}"):
        read_arff(write(tmp_path, "n.arff", declared), labels=-1)
    sparse = "@relation r\n@attribute f numeric\n@attribute c {0,1}\n@data\n{1 1}\n{1 3}\n"
    with pytest.raises(DataError, match=r"line 6: value 3 of attribute 'c' is not one of its declared values"):
        read_arff(write(tmp_path, "s.arff", sparse), labels=-1)


def test_other_malformed_inputs(tmp_path, xml):
    with pytest.raises(DataError, match="cannot tell which attributes .* are labels: pass xml="):
        read_arff(write(tmp_path, "a.arff", HEADER + DENSE_ROWS))
    with pytest.raises(DataError, match=r"line 13: missing values \('\?'\) are not supported"):
        read_arff(write(tmp_path, "b.arff", HEADER + "1,2,low,0,0\n?,2,low,0,0\n"), xml=xml)
    with pytest.raises(DataError, match=r"line 12: value 'top' of nominal attribute \"esc 'aped'\""):
        read_arff(write(tmp_path, "c.arff", HEADER + "1,2,top,0,0\n"), xml=xml)
    with pytest.raises(DataError, match=r"line 12: 'x' is not a number"):
        read_arff(write(tmp_path, "d.arff", HEADER + "x,2,low,0,0\n"), xml=xml)
    numeric = "@relation r\n@attribute f numeric\n@attribute c numeric\n@data\n1,0\n2x,1\n"
    with pytest.raises(DataError, match=r"n\.arff, line 6: '2x' is not a number"):
        read_arff(write(tmp_path, "n.arff", numeric), labels=-1)
    with pytest.raises(DataError, match="has no @data line"):
        read_arff(write(tmp_path, "e.arff", HEADER.split("@data")[0]), xml=xml)
    with pytest.raises(DataError, match="type 'string'"):
        read_arff(write(tmp_path, "f.arff", "@relation r\n@attribute s string\n@data\n"), labels=1)


def test_relation_rewritten_by_weka_filters_is_not_trusted(tmp_path):
    text = "@relation 'M: -C 1 -I 0-weka.filters.unsupervised.attribute.Remove-R1'\n"
    text += "@attribute f {0,1}\n@attribute c {0,1}\n@data\n{0 1}\n"
    path = write(tmp_path, "w.arff", text)
    with pytest.raises(DataError, match="rewritten by Weka filters.*pass xml= or labels="):
        read_arff(path)
    assert read_arff(path, labels=-1).label_names == ["c"]


# ---------------------------------------------------------------- the real Mulan files

# from the table in shared/data/README.md: instances, features, labels, label cardinality
TABLE = {
    "yeast": ((1500, 917), 103, 14, (4.228, 4.252)),
    "emotions": ((391, 202), 72, 6, (1.813, 1.975)),
    "corel5k": ((4500, 500), 499, 374, (3.522, 3.526)),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_real_mulan_files_match_the_readme(shared_data, name):
    (n_train, n_test), features, labels, (card_train, card_test) = TABLE[name]
    start = time.perf_counter()
    train, test = load_mulan_pool(name, shared_data)  # finds multilabel/<name>/ under the root
    assert time.perf_counter() - start < 10  # Corel5k's sparse files take well under a second
    assert (len(train), len(test)) == (n_train, n_test)
    for split, card in ((train, card_train), (test, card_test)):
        assert split.x.shape[1] == features and split.num_classes == labels
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.float32
        assert set(split.y.unique().tolist()) == {0.0, 1.0}
        assert split.y.sum(1).mean().item() == pytest.approx(card, abs=5e-4)


def test_yeast_labels_follow_column_order_and_kdgan_data(shared_data, monkeypatch):
    monkeypatch.setenv("KDGAN_DATA", str(shared_data / "multilabel"))
    train, test = read_mulan("yeast")
    # yeast.xml lists Class1, Class2, Class3, Class6, Class4, ...: columns keep the file's order
    assert train.label_names == [f"Class{i}" for i in range(1, 15)]
    assert train.feature_names == [f"Att{i}" for i in range(1, 104)]
    assert train.x[0, :3] == pytest.approx([0.093700, 0.139771, 0.062774])


def test_medical_relation_claims_stale_label_columns(shared_data):
    folder = shared_data / "multilabel" / "medical"
    with pytest.raises(DataError, match="rewritten by Weka filters"):
        read_arff(folder / "medical-train.arff")  # it says -C 45 (first 45) but the labels are the last 45
    data = read_arff(folder / "medical-train.arff", xml=folder / "medical.xml")
    assert data.y.shape == (333, 45) and data.label_names[0] == "Class-0-593_70"
    np.testing.assert_array_equal(data.y, read_arff(folder / "medical-train.arff", labels=-45).y)
