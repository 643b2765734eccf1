"""The header of an ARFF file: its text, ``@relation`` and the ``@attribute`` declarations.

Names may be quoted (with backslash escapes), ``%`` starts a comment outside quotes, and an
attribute is numeric (``numeric``/``real``/``integer``) or nominal (``{v1,v2,...}``).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdgan.errors import DataError

_NUMERIC_TYPES = {"numeric", "real", "integer"}


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


def read_arff_text(path: Path) -> str:
    """The file's text, gunzipped when its name ends in .gz."""
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


def split_quoted(text: str, sep: str = ",") -> list[str]:
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


def strip_comment(line: str) -> str:
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


def parse_header(lines: list[str], path: Path) -> tuple[str, list[Attribute], int]:
    """Return (relation name, attributes, index of the first line after ``@data``)."""
    relation, attributes = "", []
    for i, raw in enumerate(lines):
        line = strip_comment(raw).strip()
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
                attributes.append(Attribute(name, split_quoted(spec[1:-1])))
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
