"""Multi-label ARFF files in the Mulan and MEKA conventions, dense or sparse.

An ARFF file declares attributes (``@attribute name type``) and then lists one instance per line
after ``@data``: either dense (``v1,v2,...``) or sparse (``{index value, ...}`` with 0-based
indices; omitted values are 0, which for a nominal attribute means its first declared value).
Some attributes are labels: a Mulan XML file names them (``<labels><label name="..."/>``), or a
MEKA relation name carries ``-C N`` (the first N attributes, or the last |N| when N < 0).

The ``@relation`` name is only consulted for MEKA's ``-C N`` and only when neither ``labels`` nor
``xml`` is given: Weka filters append their options to it, so it often no longer describes the
columns (the Mulan ``medical`` files say ``-C 45`` but their labels are the *last* 45 attributes).
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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

_NUMERIC_TYPES = {"numeric", "real", "integer"}
_MEKA_C = re.compile(r"(?:^|\s)-C\s+(-?\d+)(?=\s|$|')")


@dataclass
class Attribute:
    """One declared attribute: ``values`` is None for numeric ones, the declared list for nominal."""

    name: str
    values: list[str] | None = None

    @property
    def numeric_values(self) -> np.ndarray | None:
        """The nominal values as floats when all of them are numbers (e.g. ``{0,1}``), else None."""
        if self.values is None:
            return None
        try:
            return np.array([float(v) for v in self.values])
        except ValueError:
            return None


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


# ---------------------------------------------------------------- header


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"ARFF file {path} not found; check the path (or the data directory)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            return handle.read()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{path} could not be read as UTF-8 text ({err}); is it an ARFF file?") from None


def _take_token(text: str, where: str) -> tuple[str, str]:
    """Split one name off the front of ``text``: a quoted string (with backslash escapes) or a
    run of characters up to whitespace or ``{``. Returns (token, rest)."""
    text = text.lstrip()
    if not text:
        raise DataError(f"{where}: a name was expected")
    quote = text[0]
    if quote in "'\"":
        out, i = [], 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                return "".join(out), text[i + 1 :]
            out.append(ch)
            i += 1
        raise DataError(f"{where}: unterminated quoted name {text!r}; close the {quote} quote")
    match = re.match(r"[^\s{]+", text)
    assert match is not None
    return match.group(0), text[match.end() :]


def _split_quoted(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside quotes; strip whitespace and the quotes of quoted items."""
    items, buf, quote, i = [], [], "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                buf.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
            else:
                buf.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == sep:
            items.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    items.append("".join(buf).strip())
    return items


def _strip_comment(line: str) -> str:
    """Drop a trailing ``% comment`` that is outside quotes."""
    if "%" not in line:
        return line
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "%":
            return line[:i]
    return line


def _parse_header(lines: list[str], path: Path) -> tuple[str, list[Attribute], int]:
    """Return (relation name, attributes, index of the first line after ``@data``)."""
    relation, attributes = "", []
    for i, raw in enumerate(lines):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        where = f"{path}, line {i + 1}"
        keyword = line.split(None, 1)[0].lower()
        if keyword == "@relation":
            relation, _ = _take_token(line[len("@relation") :], where)
        elif keyword == "@attribute":
            name, rest = _take_token(line[len("@attribute") :], where)
            spec = rest.strip()
            if spec.lower() in _NUMERIC_TYPES:
                attributes.append(Attribute(name))
            elif spec.startswith("{"):
                if not spec.endswith("}"):
                    raise DataError(f"{where}: nominal attribute {name!r} has no closing '}}' in {spec!r}")
                attributes.append(Attribute(name, _split_quoted(spec[1:-1])))
            else:
                raise DataError(
                    f"{where}: attribute {name!r} has type {spec!r}; only numeric/real/integer and nominal "
                    "{...} attributes are supported (convert string/date attributes first)"
                )
        elif keyword == "@data":
            if not attributes:
                raise DataError(f"{where}: @data comes before any @attribute; the header is missing")
            return relation, attributes, i + 1
        else:
            raise DataError(f"{where}: expected @relation, @attribute or @data, found {line[:60]!r}")
    raise DataError(f"{path} has no @data line; the file is truncated or not an ARFF file")


# ---------------------------------------------------------------- data


def _locate_float_error(tokens: list[list[str]], rows: np.ndarray, lines: np.ndarray, path: Path) -> DataError:
    for r in rows:
        for tok in tokens[r]:
            try:
                float(tok)
            except ValueError:
                return DataError(f"{path}, line {lines[r]}: {str(tok)!r} is not a number; the row is malformed")
    return DataError(f"{path}: a value could not be parsed as a number")


def _nominal_codes(attr: Attribute, tokens: np.ndarray, rows: np.ndarray, lines: np.ndarray, path: Path) -> np.ndarray:
    """Map tokens of a nominal attribute to numbers (numeric values) or declaration indices."""
    assert attr.values is not None
    numeric = attr.numeric_values
    clean = [str(t).strip().strip("'\"") for t in tokens]
    lookup = {v: (numeric[k] if numeric is not None else float(k)) for k, v in enumerate(attr.values)}
    out = np.empty(len(clean))
    for k, tok in enumerate(clean):
        if tok in lookup:
            out[k] = lookup[tok]
            continue
        try:
            value = float(tok)
        except ValueError:
            value = None
        if numeric is not None and value is not None and value in numeric:
            out[k] = value
            continue
        raise DataError(
            f"{path}, line {lines[rows[k]]}: value {tok!r} of nominal attribute {attr.name!r} is not one of "
            f"its declared values {{{','.join(attr.values)}}}"
        )
    return out


def _check_nominal_numeric(
    attr: Attribute, values: np.ndarray, rows: np.ndarray, lines: np.ndarray, path: Path
) -> None:
    numeric = attr.numeric_values
    assert numeric is not None
    bad = ~np.isin(values, numeric)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(
            f"{path}, line {lines[rows[k]]}: value {values[k]:g} of nominal attribute {attr.name!r} is not one "
            f"of its declared values {{{','.join(attr.values or [])}}}"
        )


def _parse_dense(
    rows_text: list[str], rows: np.ndarray, lines: np.ndarray, attrs: list[Attribute], out: np.ndarray, path: Path
) -> None:
    """Fill ``out[rows]`` from dense rows; rows with the wrong number of fields are an error."""
    width = len(attrs)
    quoted = any(("'" in t or '"' in t) for t in rows_text)
    if quoted:
        split = [_split_quoted(t) for t in rows_text]
        counts = np.array([len(s) for s in split])
    else:
        counts = np.fromiter((t.count(",") + 1 for t in rows_text), dtype=np.int64, count=len(rows_text))
    bad = np.flatnonzero(counts != width)
    if len(bad):
        k = int(bad[0])
        raise DataError(
            f"{path}, line {lines[rows[k]]}: expected {width} comma-separated values, found {counts[k]}; the row "
            "is truncated or malformed (fix or remove it)"
        )
    direct = [j for j, a in enumerate(attrs) if a.values is None or a.numeric_values is not None]
    if not quoted and len(direct) == width:
        try:  # all values are numbers: parse in C, without a Python string per value
            flat = np.fromstring(",".join(rows_text), dtype=np.float64, sep=",")
        except ValueError:
            flat = None  # fall through to the token path, which finds the bad value
        if flat is not None and flat.size == len(rows_text) * width:
            block = flat.reshape(len(rows_text), width)
            for j, attr in enumerate(attrs):
                if attr.values is not None:
                    _check_nominal_numeric(attr, block[:, j], rows, lines, path)
            out[rows] = block
            return
    if quoted:
        tokens = np.array([tok for row in split for tok in row], dtype=object).reshape(len(rows_text), width)
    else:
        tokens = np.array(",".join(rows_text).split(","), dtype=str).reshape(len(rows_text), width)
    if direct:
        try:
            block = tokens[:, direct].astype(np.float64) if not quoted else None
        except ValueError:
            block = None
        if block is None:
            try:
                block = np.char.strip(tokens[:, direct].astype(str), "'\" ").astype(np.float64)
            except ValueError:
                split_rows = [list(tokens[r, direct]) for r in range(len(rows_text))]
                raise _locate_float_error(split_rows, np.arange(len(rows_text)), lines[rows], path) from None
        for c, j in enumerate(direct):
            if attrs[j].values is not None:
                _check_nominal_numeric(attrs[j], block[:, c], rows, lines, path)
        out[np.ix_(rows, direct)] = block
    for j, attr in enumerate(attrs):
        if attr.values is not None and attr.numeric_values is None:
            out[rows, j] = _nominal_codes(attr, list(tokens[:, j]), rows, lines, path)


def _parse_sparse(
    rows_text: list[str], rows: np.ndarray, lines: np.ndarray, attrs: list[Attribute], out: np.ndarray, path: Path
) -> None:
    """Fill ``out[rows]`` from ``{index value, ...}`` rows (omitted entries keep the default)."""
    width = len(attrs)
    bodies = []
    for k, text in enumerate(rows_text):
        if not text.endswith("}"):
            raise DataError(
                f"{path}, line {lines[rows[k]]}: sparse row has no closing '}}'; the row is truncated "
                "(fix or remove it)"
            )
        bodies.append(text[1:-1].strip())
    counts = np.array([b.count(",") + 1 if b else 0 for b in bodies], dtype=np.int64)
    quoted = any(("'" in b or '"' in b) for b in bodies)
    if quoted:
        pairs = [p.split(None, 1) for b in bodies if b for p in _split_quoted(b)]
        good = all(len(p) == 2 for p in pairs)
        flat = [t.strip().strip("'\"") for p in pairs for t in p] if good else []
    else:
        flat = ",".join(b for b in bodies if b).replace(",", " ").split()
        good = len(flat) == 2 * counts.sum()
    if not good:
        for k, body in enumerate(bodies):
            for item in _split_quoted(body) if body else []:
                if len(item.split(None, 1)) != 2 or (not quoted and len(item.split()) != 2):
                    raise DataError(
                        f"{path}, line {lines[rows[k]]}: sparse entries must be 'index value' pairs separated "
                        f"by commas, found {item[:40]!r}; the row is truncated or malformed (fix or remove it)"
                    )
        raise DataError(f"{path}: malformed sparse rows")
    row_of = np.repeat(np.arange(len(bodies)), counts)
    try:
        index = np.array(flat[0::2], dtype=str).astype(np.int64)
    except ValueError:
        for k, body in enumerate(bodies):
            for p in _split_quoted(body) if body else []:
                if not re.fullmatch(r"\d+", p.split()[0]):
                    raise DataError(
                        f"{path}, line {lines[rows[k]]}: sparse index {p.split()[0]!r} is not a non-negative "
                        "integer"
                    ) from None
        raise DataError(f"{path}: a sparse index could not be read") from None
    bad = np.flatnonzero((index < 0) | (index >= width))
    if len(bad):
        k = int(row_of[bad[0]])
        raise DataError(
            f"{path}, line {lines[rows[k]]}: sparse index {index[bad[0]]} is outside 0..{width - 1} (the file "
            f"declares {width} attributes; indices are 0-based)"
        )
    raw = np.array(flat[1::2], dtype=str)
    try:
        values = raw.astype(np.float64)
    except ValueError:
        values = np.empty(len(raw))
        numeric_attr = np.array([a.values is None for a in attrs])
        for j in np.unique(index):
            sel = np.flatnonzero(index == j)
            if numeric_attr[j]:
                try:
                    values[sel] = raw[sel].astype(np.float64)
                except ValueError:
                    k = int(sel[np.argmax([not _is_float(t) for t in raw[sel]])])
                    raise DataError(
                        f"{path}, line {lines[rows[row_of[k]]]}: {str(raw[k])!r} is not a number (attribute "
                        f"{attrs[j].name!r} is numeric)"
                    ) from None
            else:
                values[sel] = _nominal_codes(attrs[j], list(raw[sel]), rows[row_of[sel]], lines, path)
    else:
        nominal = [j for j, a in enumerate(attrs) if a.values is not None]
        if nominal:
            binary = np.array([a.values is not None and sorted(a.values) == ["0", "1"] for a in attrs])
            sel = binary[index]
            bad = np.flatnonzero(sel & (values != 0) & (values != 1))
            if len(bad):
                k = int(bad[0])
                raise DataError(
                    f"{path}, line {lines[rows[row_of[k]]]}: value {values[k]:g} of attribute "
                    f"{attrs[index[k]].name!r} is not one of its declared values {{0,1}}"
                )
            for j in np.unique(index[~sel]):
                if attrs[j].values is not None:
                    where = np.flatnonzero(index == j)
                    if attrs[j].numeric_values is None:
                        values[where] = _nominal_codes(attrs[j], list(raw[where]), rows[row_of[where]], lines, path)
                    else:
                        _check_nominal_numeric(attrs[j], values[where], rows[row_of[where]], lines, path)
    out[rows[row_of], index] = values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_data(lines: list[str], start: int, attrs: list[Attribute], path: Path) -> np.ndarray:
    """All instances after ``@data`` as a float32 (N, attributes) matrix."""
    kept, numbers = [], []
    has_comment = any("%" in line for line in lines[start:])
    for i in range(start, len(lines)):
        text = lines[i]
        if has_comment:
            text = _strip_comment(text)
        text = text.strip()
        if text:
            kept.append(text)
            numbers.append(i + 1)
    line_no = np.array(numbers, dtype=np.int64)
    missing = next((k for k, t in enumerate(kept) if "?" in t), None)
    if missing is not None:
        raise DataError(
            f"{path}, line {line_no[missing]}: missing values ('?') are not supported; impute or remove them first"
        )
    default = np.zeros(len(attrs), dtype=np.float32)
    for j, attr in enumerate(attrs):
        numeric = attr.numeric_values
        if numeric is not None:
            default[j] = numeric[0]  # an omitted sparse value is the first declared one
    out = np.empty((len(kept), len(attrs)), dtype=np.float32)
    out[:] = default
    sparse_mask = np.array([t.startswith("{") for t in kept], dtype=bool)
    for mask, parse in ((sparse_mask, _parse_sparse), (~sparse_mask, _parse_dense)):
        rows = np.flatnonzero(mask)
        if len(rows):
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, reported by read_arff
                parse([kept[r] for r in rows], rows, line_no, attrs, out, path)
    return out


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
    lines = _read_text(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    relation, attrs, start = _parse_header(lines, path)
    columns = _label_columns(attrs, labels, xml, relation, path)
    label_set = set(columns)
    for j in columns:
        declared = attrs[j].values
        if declared is not None and attrs[j].numeric_values is None:
            raise DataError(
                f"{path}: label attribute {attrs[j].name!r} is declared {{{','.join(declared)}}}; labels must be "
                "declared {0,1} (or numeric with values 0 and 1)"
            )
    data = _parse_data(lines, start, attrs, path)
    if len(data) == 0:
        raise DataError(f"{path} has no data rows after its @data line (line {start}); the file is empty or "
                        "truncated: download it again")
    finite = np.isfinite(data)
    if not finite.all():
        r, c = (int(v[0]) for v in np.nonzero(~finite))
        line = _data_line_numbers(lines, start)[r]
        raise DataError(
            f"{path}, line {line}: attribute {attrs[c].name!r} has value {data[r, c]}; NaN and infinite values "
            "(or numbers beyond float32's range) are not supported: impute or remove the row"
        )
    y = np.ascontiguousarray(data[:, columns])
    bad = (y != 0) & (y != 1)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        line = _data_line_numbers(lines, start)[r]
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


def _data_line_numbers(lines: list[str], start: int) -> list[int]:
    """1-based line numbers of the instance rows (only needed to report an error)."""
    return [i + 1 for i in range(start, len(lines)) if _strip_comment(lines[i]).strip()]


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
