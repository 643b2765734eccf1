"""The instances after an ARFF file's ``@data`` line, dense or sparse, as one float32 matrix.

A dense row lists every value (``v1,v2,...``); a sparse row lists ``{index value, ...}`` with
0-based indices, and an omitted value is 0, which for a nominal attribute means its first
declared value. Nominal values become numbers (``{0,1}``) or declaration indices.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kdgan.data.arff_header import Attribute, split_quoted, strip_comment
from kdgan.data.files import is_number
from kdgan.errors import DataError


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
        split = [split_quoted(t) for t in rows_text]
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


def _sparse_bodies(rows_text: list[str], rows: np.ndarray, lines: np.ndarray, path: Path) -> list[str]:
    """The text between the braces of each sparse row; a row without its closing brace is an error."""
    bodies = []
    for k, text in enumerate(rows_text):
        if not text.endswith("}"):
            raise DataError(
                f"{path}, line {lines[rows[k]]}: sparse row has no closing '}}'; the row is truncated "
                "(fix or remove it)"
            )
        bodies.append(text[1:-1].strip())
    return bodies


def _sparse_pairs(bodies: list[str], rows: np.ndarray, lines: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """(entries per row, flat index/value tokens of all rows: index, value, index, value, ...)."""
    counts = np.array([b.count(",") + 1 if b else 0 for b in bodies], dtype=np.int64)
    quoted = any(("'" in b or '"' in b) for b in bodies)
    if quoted:
        pairs = [p.split(None, 1) for b in bodies if b for p in split_quoted(b)]
        good = all(len(p) == 2 for p in pairs)
        flat = [t.strip().strip("'\"") for p in pairs for t in p] if good else []
    else:
        flat = ",".join(b for b in bodies if b).replace(",", " ").split()
        good = len(flat) == 2 * counts.sum()
    if not good:
        for k, body in enumerate(bodies):
            for item in split_quoted(body) if body else []:
                if len(item.split(None, 1)) != 2 or (not quoted and len(item.split()) != 2):
                    raise DataError(
                        f"{path}, line {lines[rows[k]]}: sparse entries must be 'index value' pairs separated "
                        f"by commas, found {item[:40]!r}; the row is truncated or malformed (fix or remove it)"
                    )
        raise DataError(f"{path}: malformed sparse rows")
    return counts, flat


def _sparse_indices(
    tokens: list[str], bodies: list[str], row_of: np.ndarray, width: int, rows: np.ndarray, lines: np.ndarray,
    path: Path,
) -> np.ndarray:
    """The 0-based attribute index of each entry; non-integers and indices beyond the header are errors."""
    try:
        index = np.array(tokens, dtype=str).astype(np.int64)
    except ValueError:
        for k, body in enumerate(bodies):
            for p in split_quoted(body) if body else []:
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
    return index


def _sparse_values(
    raw: np.ndarray, index: np.ndarray, row_of: np.ndarray, attrs: list[Attribute], rows: np.ndarray,
    lines: np.ndarray, path: Path,
) -> np.ndarray:
    """The value of each entry as a number, checked against its attribute's declaration."""
    try:
        values = raw.astype(np.float64)
    except ValueError:  # some value is not a number: parse attribute by attribute to find which
        return _sparse_values_by_attribute(raw, index, row_of, attrs, rows, lines, path)
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
    return values


def _sparse_values_by_attribute(
    raw: np.ndarray, index: np.ndarray, row_of: np.ndarray, attrs: list[Attribute], rows: np.ndarray,
    lines: np.ndarray, path: Path,
) -> np.ndarray:
    """The slow path of _sparse_values: numbers for numeric attributes, codes for nominal ones."""
    values = np.empty(len(raw))
    numeric_attr = np.array([a.values is None for a in attrs])
    for j in np.unique(index):
        sel = np.flatnonzero(index == j)
        if numeric_attr[j]:
            try:
                values[sel] = raw[sel].astype(np.float64)
            except ValueError:
                k = int(sel[np.argmax([not is_number(t) for t in raw[sel]])])
                raise DataError(
                    f"{path}, line {lines[rows[row_of[k]]]}: {str(raw[k])!r} is not a number (attribute "
                    f"{attrs[j].name!r} is numeric)"
                ) from None
        else:
            values[sel] = _nominal_codes(attrs[j], list(raw[sel]), rows[row_of[sel]], lines, path)
    return values


def _parse_sparse(
    rows_text: list[str], rows: np.ndarray, lines: np.ndarray, attrs: list[Attribute], out: np.ndarray, path: Path
) -> None:
    """Fill ``out[rows]`` from ``{index value, ...}`` rows (omitted entries keep the default)."""
    bodies = _sparse_bodies(rows_text, rows, lines, path)
    counts, flat = _sparse_pairs(bodies, rows, lines, path)
    row_of = np.repeat(np.arange(len(bodies)), counts)
    index = _sparse_indices(flat[0::2], bodies, row_of, len(attrs), rows, lines, path)
    raw = np.array(flat[1::2], dtype=str)
    out[rows[row_of], index] = _sparse_values(raw, index, row_of, attrs, rows, lines, path)


def parse_data(lines: list[str], start: int, attrs: list[Attribute], path: Path) -> np.ndarray:
    """All instances after ``@data`` as a float32 (N, attributes) matrix."""
    kept, numbers = [], []
    has_comment = any("%" in line for line in lines[start:])
    for i in range(start, len(lines)):
        text = lines[i]
        if has_comment:
            text = strip_comment(text)
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


def data_line_numbers(lines: list[str], start: int) -> list[int]:
    """1-based line numbers of the instance rows (only needed to report an error)."""
    return [i + 1 for i in range(start, len(lines)) if strip_comment(lines[i]).strip()]
