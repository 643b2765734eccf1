"""Multi-label ARFF files in the Mulan and MEKA conventions, dense or sparse.

An ARFF file declares attributes (``@attribute name type``) and then lists one instance per line
after ``@data``: either dense (``v1,v2,...``) or sparse (``{index value, ...}`` with 0-based
indices; omitted values are 0, which for a nominal attribute means its first declared value).
Some attributes are labels: a Mulan XML file names them (``<labels><label name="..."/>``), or a
MEKA relation name carries ``-C N`` (the first N attributes, or the last |N| when N < 0).

The ``@relation`` name is only consulted for MEKA's ``-C N`` and only when neither ``labels`` nor
``xml`` is given: Weka filters append their options to it, so it often no longer describes the
columns (the Mulan ``medical`` files say ``-C 45`` but their labels are the *last* 45 attributes).

This module picks the label columns and reads Mulan datasets; arff_header parses the header and
arff_rows the instances.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdgan.data.arff_header import Attribute, parse_header, read_arff_text
from kdgan.data.arff_rows import data_line_numbers, parse_data
from kdgan.data.core import TensorData
from kdgan.data.location import dataset_dir
from kdgan.errors import DataError

# name -> (folder, training file, test file, label XML), as distributed in Mulan's repository
MULAN_FILES: dict[str, tuple[str, str, str, str]] = {
    "bibtex": ("bibtex", "bibtex-train.arff", "bibtex-test.arff", "bibtex.xml"),
    "corel5k": ("corel5k", "Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff", "Corel5k.xml"),
    "delicious": ("delicious", "delicious-train.arff", "delicious-test.arff", "delicious.xml"),
    "emotions": ("emotions", "emotions-train.arff", "emotions-test.arff", "emotions.xml"),
    "enron": ("enron", "enron-train.arff", "enron-test.arff", "enron.xml"),
    "medical": ("medical", "medical-train.arff", "medical-test.arff", "medical.xml"),
    "scene": ("scene", "scene-train.arff", "scene-test.arff", "scene.xml"),
    "yeast": ("yeast", "yeast-train.arff", "yeast-test.arff", "yeast.xml"),
}

_MEKA_C = re.compile(r"(?:^|\s)-C\s+(-?\d+)(?=\s|$|')")


@dataclass
class ArffData:
    """A parsed multi-label ARFF file: features and multi-hot labels as float32 arrays.

    Columns keep the ARFF file's order (labels too, whatever order the XML lists them in).
    Nominal features with non-numeric values are encoded as the index of the value in their
    declaration; nominal features with numeric values (``{0,1}``) keep the value.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    label_names: list[str]
    relation: str
    path: Path

    def to_tensor_data(self) -> TensorData:
        return TensorData(torch.from_numpy(self.x), torch.from_numpy(self.y), num_classes=self.y.shape[1])


# ---------------------------------------------------------------- labels


def read_label_xml(path: str | Path) -> list[str]:
    """Label names listed in a Mulan XML file, in document order (nested labels included)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label XML {path} not found; Mulan datasets come with a <name>.xml next to the ARFF files")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path} is not well-formed XML ({err}); is it a Mulan label file?") from None
    names = [el.get("name") for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "label"]
    names = [n for n in names if n is not None]
    if not names:
        raise DataError(f"{path} lists no <label name=...> elements; is it a Mulan label file?")
    return names


def meka_label_count(relation: str) -> int | None:
    """The ``-C N`` of a MEKA relation name, or None when it has none."""
    found = _MEKA_C.findall(relation)
    return int(found[0]) if found else None


def _label_columns(
    attrs: list[Attribute], labels: list[str] | int | None, xml: str | Path | None, relation: str, path: Path
) -> list[int]:
    names = [a.name for a in attrs]
    if labels is None and xml is not None:
        labels = read_label_xml(xml)
        source = f"label XML {xml}"
    else:
        source = "the labels argument"
    if labels is None:
        count = meka_label_count(relation)
        if count is None:
            raise DataError(
                f"cannot tell which attributes of {path} are labels: pass xml= (a Mulan label file), labels= "
                "(a count or a list of names), or use a MEKA relation name with -C N"
            )
        if "weka.filters" in relation or len(_MEKA_C.findall(relation)) > 1:
            raise DataError(
                f"{path}: the relation name {relation[:80]!r}... was rewritten by Weka filters, so its -C {count} "
                "may not describe the columns any more; pass xml= or labels= explicitly"
            )
        labels, source = count, f"the relation's -C {count}"
    if isinstance(labels, int):
        if labels == 0 or abs(labels) >= len(attrs):
            raise DataError(
                f"{path}: {source} asks for {labels} label attributes but the file has {len(attrs)} attributes; "
                "use N > 0 for the first N, N < 0 for the last |N|, leaving at least one feature"
            )
        return list(range(labels)) if labels > 0 else list(range(len(attrs) + labels, len(attrs)))
    position = {n: j for j, n in enumerate(names)}
    missing = [n for n in labels if n not in position]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} label(s) named in {source} are not attributes of the file: "
            f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}; check that the XML "
            "belongs to this ARFF file"
        )
    if len(set(labels)) != len(labels):
        raise DataError(f"{path}: {source} names some labels twice; list each label once")
    columns = sorted(position[n] for n in labels)
    if len(columns) == len(attrs):
        raise DataError(f"{path}: every attribute is a label; no feature columns are left")
    return columns


def read_arff(
    path: str | Path, labels: list[str] | int | None = None, xml: str | Path | None = None
) -> ArffData:
    """Read a multi-label ARFF file (dense or sparse rows, ``.gz`` allowed).

    Labels are chosen by, in order: ``labels`` (names, or a MEKA-style count: N > 0 the first N
    attributes, N < 0 the last |N|), the Mulan ``xml`` file, or ``-C N`` in the relation name.
    Label values must be 0 or 1. Raises DataError naming the file and line of any bad row.
    """
    path = Path(path)
    lines = read_arff_text(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    relation, attrs, start = parse_header(lines, path)
    columns = _label_columns(attrs, labels, xml, relation, path)
    label_set = set(columns)
    for j in columns:
        declared = attrs[j].values
        if declared is not None and attrs[j].numeric_values is None:
            raise DataError(
                f"{path}: label attribute {attrs[j].name!r} is declared {{{','.join(declared)}}}; labels must be "
                "declared {0,1} (or numeric with values 0 and 1)"
            )
    data = parse_data(lines, start, attrs, path)
    if len(data) == 0:
        raise DataError(f"{path} has no data rows after its @data line (line {start}); the file is empty or "
                        "truncated: download it again")
    finite = np.isfinite(data)
    if not finite.all():
        r, c = (int(v[0]) for v in np.nonzero(~finite))
        line = data_line_numbers(lines, start)[r]
        raise DataError(
            f"{path}, line {line}: attribute {attrs[c].name!r} has value {data[r, c]}; NaN and infinite values "
            "(or numbers beyond float32's range) are not supported: impute or remove the row"
        )
    y = np.ascontiguousarray(data[:, columns])
    bad = (y != 0) & (y != 1)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        line = data_line_numbers(lines, start)[r]
        raise DataError(
            f"{path}, line {line}: label {attrs[columns[c]].name!r} has value {y[r, c]:g}; label values must be "
            "0 or 1 (is this attribute really a label?)"
        )
    features = [j for j in range(len(attrs)) if j not in label_set]
    return ArffData(
        x=np.ascontiguousarray(data[:, features]),
        y=y,
        feature_names=[attrs[j].name for j in features],
        label_names=[attrs[j].name for j in columns],
        relation=relation,
        path=path,
    )


# ---------------------------------------------------------------- Mulan datasets


def mulan_dir(name: str, directory: str | Path | None, verify: bool = False) -> Path:
    """The folder holding Mulan dataset ``name``: the data directory's ``<name>/`` or
    ``multilabel/<name>/`` subfolder or the directory itself, whichever holds its training file."""
    key = name.lower()
    if key not in MULAN_FILES:
        raise DataError(f"unknown Mulan dataset {name!r}; known: {', '.join(MULAN_FILES)}")
    folder, train, test, xml = MULAN_FILES[key]
    return dataset_dir(name, directory, (folder, f"multilabel/{folder}", "."), lambda c: (c / train).is_file(),
                       f"{train}, {test} and {xml}", verify)


def read_mulan(name: str, directory: str | Path | None = None, verify: bool = False) -> tuple[ArffData, ArffData]:
    """The standard (train, test) split of a Mulan dataset as ArffData, labels from its XML; with
    ``verify``, the files' published checksums are checked first."""
    folder = mulan_dir(name, directory, verify)
    _, train_file, test_file, xml_file = MULAN_FILES[name.lower()]
    for needed in (test_file, xml_file):
        if not (folder / needed).is_file():
            raise DataError(
                f"{folder / needed} not found; dataset {name!r} needs {train_file}, {test_file} and {xml_file} "
                f"in {folder}"
            )
    train = read_arff(folder / train_file, xml=folder / xml_file)
    test = read_arff(folder / test_file, xml=folder / xml_file)
    if train.feature_names != test.feature_names or train.label_names != test.label_names:
        raise DataError(
            f"{folder}: {train_file} and {test_file} declare different attributes; they must come from the same "
            "dataset version"
        )
    return train, test


def load_mulan_pool(name: str, directory: str | Path | None = None) -> tuple[TensorData, TensorData]:
    """Return (training pool, test set) of a Mulan dataset: x float32 (N, F), y multi-hot (N, L)."""
    train, test = read_mulan(name, directory)
    return train.to_tensor_data(), test.to_tensor_data()
