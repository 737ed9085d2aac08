"""Minimal, layout-preserving edits of TOML text: set or remove one key.

The form view edits the same file as the text editor, so it must not rewrite the file:
comments, order and formatting stay; only the value of the key changes (or one line is
added to its table, or a new table is appended). A scanner, not a parser: enough for the
files gprpipe users write; the result is validated like any other edit.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from gprpipe.io.toml_write import toml_key

_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<name>[^\]]+?)\s*\]\s*(#.*)?$")
_KEYPART = r"""(?:[A-Za-z0-9_\-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEYLINE = re.compile(rf"^(?P<indent>\s*)(?P<key>{_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*=\s*")


def split_key(s: str) -> list[str]:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]``."""
    parts = re.findall(rf"\s*({_KEYPART})\s*(?:\.|$)", s)
    return [json.loads(p) if p.startswith('"') else p.strip("'") for p in parts]


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


def _scan(
    text: str,
) -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], tuple[int, int]], list[int]]:
    """Table headers (path -> line index), keys (full path -> (line index, offset of the
    value)) and the line start offsets."""
    headers: dict[tuple[str, ...], int] = {}
    keys: dict[tuple[str, ...], tuple[int, int]] = {}
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
            end = value_end(text, vstart)
            nl = text.find("\n", max(end, vstart))
            pos = len(text) + 1 if nl < 0 else nl + 1
            continue
        pos = eol + 1
    return headers, keys, starts


def get_span(text: str, parts: Sequence[str]) -> tuple[int, int] | None:
    """(start, end) offsets of the value of key ``parts`` in ``text``, if set there."""
    _, keys, _ = _scan(text)
    hit = keys.get(tuple(parts))
    if hit is None:
        return None
    return hit[1], value_end(text, hit[1])


def set_key(text: str, parts: Sequence[str], value_literal: str) -> str:
    """``text`` with key ``parts`` (table path + key) set to ``value_literal``."""
    parts = tuple(parts)
    headers, keys, _ = _scan(text)
    if parts in keys:
        _, vstart = keys[parts]
        return text[:vstart] + value_literal + text[value_end(text, vstart) :]
    lines = text.splitlines(keepends=True)
    for cut in range(len(parts) - 1, 0, -1):
        table = parts[:cut]
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


def remove_key(text: str, parts: Sequence[str]) -> str:
    """``text`` without the line(s) setting key ``parts`` (unchanged if not set there)."""
    _, keys, starts = _scan(text)
    hit = keys.get(tuple(parts))
    if hit is None:
        return text
    line, vstart = hit
    end = value_end(text, vstart)
    nl = text.find("\n", end)
    stop = len(text) if nl < 0 else nl + 1
    return text[: starts[line]] + text[stop:]
