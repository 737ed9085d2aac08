"""Structured config issues: where (file, line, column, dotted key) and what (message).

Every config check returns :class:`Issue` objects; ``str(issue)`` is the one sentence the
command line prints (``file:line: key: message``), and the TUI reads the fields directly.
A ``Where`` callback maps a dotted key to the :class:`Loc` where it was set.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


def _prefix(file: str | None, line: int | None, key: str | None) -> str:
    """``file:line: key``; a ``--set key`` file already names the key; no file: the key."""
    if file is None:
        return key or ""
    head = f"{file}:{line}" if line else file
    if key is None or file == f"--set {key}":
        return head
    return f"{head}: {key}"


@dataclass(frozen=True)
class Loc:
    """Where a key was set: a file (or ``--set key`` / ``grid``), its line and column."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        return _prefix(self.file, self.line, self.key)

    def issue(self, message: str, severity: Severity = "error") -> Issue:
        """An issue at this location."""
        return Issue(message, self.file, self.line, self.column, self.key, severity)


@dataclass(frozen=True)
class Issue:
    """One config problem. ``prefix`` overrides the location part of the sentence when it
    is not the standard ``file:line: key`` (``None``: the standard one; ``""``: none)."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None
    severity: Severity = "error"
    prefix: str | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """The location part of the sentence."""
        return self.prefix if self.prefix is not None else _prefix(self.file, self.line, self.key)

    def __str__(self) -> str:
        where = self.where
        return f"{where}: {self.message}" if where else self.message


#: Maps a dotted key to where it was set (a :class:`Loc`, or a plain text location).
Where = Callable[[str], "Loc | str"]


def key_only(key: str) -> Loc:
    """The default ``Where``: nothing known but the key."""
    return Loc(key=key)


def at(where: Loc | str, message: str, severity: Severity = "error") -> Issue:
    """An issue at ``where`` (a plain text location keeps its exact spelling)."""
    if isinstance(where, Loc):
        return where.issue(message, severity)
    return Issue(message, severity=severity, prefix=where)


def as_issue(item: object) -> Issue:
    """``item`` as an Issue (a plain sentence becomes an issue without location)."""
    return item if isinstance(item, Issue) else Issue(str(item), prefix="")


def unique(items: Iterable[Issue]) -> list[Issue]:
    """Issues in order, each sentence once."""
    seen: dict[str, Issue] = {}
    for item in items:
        seen.setdefault(str(item), item)
    return list(seen.values())


def issues_of(exc: BaseException) -> list[Issue]:
    """The issues of a ``ConfigError`` (or of any error: its message, no location)."""
    items = getattr(exc, "issues", None)
    if isinstance(items, list):
        return [as_issue(i) for i in items]
    return [as_issue(str(exc))]


def _edits(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            sub = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + sub)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def name_hint(name: str, candidates: Iterable[str]) -> str:
    """:func:`did_you_mean` for a template or card name, else the closest name by shared
    characters (``hps2015_combined``: ``hps2015_2016_combined``, five edits away)."""
    names = list(candidates)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return did_you_mean(name, names) or (f"; did you mean {close[0]!r}?" if close else "")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the candidates fewest edits from ``name`` (at most two,
    and fewer than half its length; every one of them on a tie), else empty: a typo of a
    known name, not a guess. (Lengths two apart are at least two edits apart: only names
    as long are compared, or a key of a megabyte took minutes.)"""
    dist = {c: _edits(name, c) for c in candidates if abs(len(c) - len(name)) <= 2}
    best = min(dist.values(), default=3)
    if best > 2 or 2 * best >= len(name):
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in dist if dist[c] == best)}?"
