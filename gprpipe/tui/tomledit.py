"""Minimal, layout-preserving edits of TOML text: set or remove one key.

The form view edits the same file as the text editor, so it must not rewrite the file:
comments, order and formatting stay; only the value of the key changes (or one line is
added to its table, or a new table is appended). A scanner, not a parser: enough for the
files gprpipe users write. An edit it cannot make safely (a key inside an inline table),
or whose result would not be TOML, is refused with :class:`TomlEditError`.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from gprpipe.config.loader import get_dotted
from gprpipe.io.toml_write import KEY_PART, split_key, toml_key

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<name>[^\]]+?)\s*\]\s*(#.*)?$")
_KEYLINE = re.compile(rf"^(?P<indent>\s*)(?P<key>{KEY_PART}(?:\s*\.\s*{KEY_PART})*)\s*=\s*")


class TomlEditError(ValueError):
    """An edit :func:`set_key` / :func:`remove_key` cannot make safely; the message names
    the key and says to edit it in the text."""


def parses(text: str) -> bool:
    """Whether ``text`` is valid TOML."""
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    return True


def literal(value: Any) -> str:
    """A TOML literal for a Python value (str, bool, int, float, list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _skip_string(text: str, i: int) -> int:
    """Index just after the string starting at ``text[i]``."""
    for q in ('"""', "'''"):
        if text.startswith(q, i):
            j = text.find(q, i + 3)
            if j < 0:
                return len(text)
            while text.startswith(q[0], j + 3):  # """a"""" : quotes before the closing ones
                j += 1
            return j + 3
    q = text[i]
    j = i + 1
    while j < len(text) and text[j] != "\n":
        if q == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            return j + 1
        j += 1
    return j


def value_end(text: str, i: int) -> int:
    """End index of the TOML value starting at ``text[i]``."""
    if i >= len(text):
        return i
    c = text[i]
    if c in "\"'":
        return _skip_string(text, i)
    if c in "[{":
        depth = 0
        j = i
        while j < len(text):
            ch = text[j]
            if ch in "\"'":
                j = _skip_string(text, j)
                continue
            if ch == "#":
                nl = text.find("\n", j)
                j = len(text) if nl < 0 else nl
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return len(text)
    m = re.compile(r"[^\s,#\]}]*").match(text, i)
    return m.end() if m else i


class _Layout(NamedTuple):
    """What :func:`_scan` finds in a TOML text."""

    headers: dict[tuple[str, ...], int]  # table path -> line index of its [header]
    keys: dict[tuple[str, ...], tuple[int, int]]  # full path -> (line index, value offset)
    scopes: dict[tuple[str, ...], tuple[str, ...]]  # full path -> the [table] it is under
    starts: list[int]  # the line start offsets


def _scan(text: str) -> _Layout:
    """Table headers, keys (with the table each is written under) and line starts."""
    headers: dict[tuple[str, ...], int] = {}
    keys: dict[tuple[str, ...], tuple[int, int]] = {}
    scopes: dict[tuple[str, ...], tuple[str, ...]] = {}
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    table: tuple[str, ...] = ()
    pos = 0
    line_of = lambda off: bisect.bisect_right(starts, off) - 1  # noqa: E731
    while pos < len(text):
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        raw = text[pos:eol]
        h = _HEADER.match(raw)
        if raw.lstrip().startswith("[["):
            table = ("[[array]]",)
            pos = eol + 1
            continue
        if h:
            table = tuple(split_key(h.group("name")))
            headers.setdefault(table, line_of(pos))
            pos = eol + 1
            continue
        k = _KEYLINE.match(raw)
        if k:
            path = (*table, *split_key(k.group("key")))
            vstart = pos + k.end()
            keys.setdefault(path, (line_of(pos), vstart))
            scopes.setdefault(path, table)
            end = value_end(text, vstart)
            nl = text.find("\n", max(end, vstart))
            pos = len(text) + 1 if nl < 0 else nl + 1
            continue
        pos = eol + 1
    return _Layout(headers, keys, scopes, starts)


def get_span(text: str, parts: Sequence[str]) -> tuple[int, int] | None:
    """(start, end) offsets of the value of key ``parts`` in ``text``, if set there."""
    hit = _scan(text).keys.get(tuple(parts))
    if hit is None:
        return None
    return hit[1], value_end(text, hit[1])


def _refuse_inside_value(text: str, layout: _Layout, parts: tuple[str, ...], verb: str) -> None:
    """A TomlEditError when a table of ``parts`` is written as one value (an inline table
    ``a = { b = 1 }``, or not a table at all): a line added or removed would break it."""
    for cut in range(1, len(parts)):
        hit = layout.keys.get(parts[:cut])
        if hit is not None:
            what = "an inline table" if text.startswith("{", hit[1]) else "a value, not a table"
            raise TomlEditError(
                f"Cannot {verb} {toml_key(*parts)} from here: {toml_key(*parts[:cut])} is "
                f"{what} in the text; edit it in the text."
            )


def _insert_line(text: str, starts: list[int], line: int, new: str) -> str:
    """``text`` with the line ``new`` inserted before line index ``line``."""
    if line < len(starts):
        return text[: starts[line]] + new + text[starts[line] :]
    return text + ("" if not text or text.endswith("\n") else "\n") + new


def _set(text: str, parts: tuple[str, ...], value_literal: str) -> str:
    layout = _scan(text)
    headers, keys, scopes, starts = layout
    if parts in keys:
        _, vstart = keys[parts]
        return text[:vstart] + value_literal + text[value_end(text, vstart) :]
    _refuse_inside_value(text, layout, parts, "set")
    lines = text.splitlines(keepends=True)
    for cut in range(len(parts) - 1, 0, -1):
        table = parts[:cut]
        # a table made by dotted keys (``base.output = ...``): one more such key beside them
        dotted = [k for k in keys if len(k) > cut and k[:cut] == table and len(scopes[k]) < cut]
        if dotted:
            scope = scopes[dotted[0]]
            last = max(bisect.bisect_right(starts, value_end(text, keys[k][1])) for k in dotted)
            line = f"{toml_key(*parts[len(scope) :])} = {value_literal}\n"
            return _insert_line(text, starts, last, line)
        if table in headers:
            key = toml_key(*parts[cut:])
            start = headers[table]
            nxt = [ln for ln in headers.values() if ln > start]
            arrays = [i for i, ln in enumerate(lines) if i > start and ln.lstrip().startswith("[[")]
            end = min([*nxt, *arrays, len(lines)])
            while end - 1 > start and (
                not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")
            ):
                end -= 1
            if end > 0 and not lines[end - 1].endswith("\n"):
                lines[end - 1] += "\n"
            lines.insert(end, f"{key} = {value_literal}\n")
            return "".join(lines)
    if len(parts) == 1:
        return f"{toml_key(parts[0])} = {value_literal}\n" + text
    header = toml_key(*parts[:-1])
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}[{header}]\n{toml_key(parts[-1])} = {value_literal}\n"


def set_key(text: str, parts: Sequence[str], value_literal: str) -> str:
    """``text`` with key ``parts`` (table path + key) set to ``value_literal``: its value
    replaced where it is written, else one line added to its table (a dotted key beside
    the others when the table is made of dotted keys), else a new table appended.

    Raises TomlEditError when the key is inside an inline table, or when valid TOML
    would become invalid (the edit is then for the text editor)."""
    parts = tuple(parts)
    out = _set(text, parts, value_literal)
    return _kept_valid(text, out, "set", parts)


def remove_key(text: str, parts: Sequence[str]) -> str:
    """``text`` without the line(s) setting key ``parts`` (unchanged if not set there).

    Raises TomlEditError when the key is set inside an inline table (or the removal
    would make valid TOML invalid)."""
    parts = tuple(parts)
    layout = _scan(text)
    hit = layout.keys.get(parts)
    if hit is None:
        if _is_set(text, parts):  # set, but not on a line of its own
            _refuse_inside_value(text, layout, parts, "remove")
        return text
    line, vstart = hit
    end = value_end(text, vstart)
    nl = text.find("\n", end)
    stop = len(text) if nl < 0 else nl + 1
    out = text[: layout.starts[line]] + text[stop:]
    return _kept_valid(text, out, "remove", parts)


def _kept_valid(text: str, out: str, verb: str, parts: Sequence[str]) -> str:
    """``out``, unless an edit (``verb``: set, remove) made valid TOML ``text`` invalid."""
    if parses(text) and not parses(out):
        raise TomlEditError(
            f"Cannot {verb} {toml_key(*parts)} from here without making the text invalid "
            "TOML; edit it in the text."
        )
    return out


_MISSING = object()


def _is_set(text: str, parts: tuple[str, ...]) -> bool:
    """Whether valid TOML ``text`` sets key ``parts``."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    return get_dotted(data, parts, _MISSING) is not _MISSING
