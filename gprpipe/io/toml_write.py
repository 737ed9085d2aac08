"""A small TOML writer for rendered configs (tables, scalars, arrays; None is omitted)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


#: one part of a TOML key: bare, basic-quoted (with escapes) or literal-quoted
KEY_PART = r"""(?:[A-Za-z0-9_\-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""


def split_key(s: str) -> list[str]:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]`` (the reverse of :func:`toml_key`)."""
    parts = re.findall(rf"\s*({KEY_PART})\s*(?:\.|$)", s)
    return [json.loads(p) if p.startswith('"') else p.strip("'") for p in parts]


def toml_key(*parts: str) -> str:
    """A dotted TOML key of ``parts``, quoting those that are no bare key (``"v2.run"``)."""
    return ".".join(p if _BARE.match(p) else json.dumps(p) for p in parts)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, Mapping):
        items = (f"{toml_key(k)} = {_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(data: Mapping[str, Any]) -> str:
    """Serialise nested dicts: scalars first, then one ``[table]`` per sub-dict."""
    lines: list[str] = []

    def table(node: Mapping[str, Any], path: list[str]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, Mapping) and v is not None}
        subs = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if path and (scalars or not subs):
            lines.append(f"[{toml_key(*path)}]")
        for k, v in scalars.items():
            lines.append(f"{toml_key(k)} = {_value(v)}")
        if path and (scalars or not subs):
            lines.append("")
        for k, v in subs.items():
            table(v, [*path, k])

    table(data, [])
    return "\n".join(lines).rstrip() + "\n"
