"""Grid: number of points, their varied values and output folders, tasks per step."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from gprpipe.tui.messages import EditText
from gprpipe.tui.model import Check, show_path
from gprpipe.tui.tomledit import literal, set_key
from gprpipe.tui.widgets import StillInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _token(raw: str) -> str:
    """A TOML literal for one grid value: as written if valid TOML, else a string."""
    raw = raw.strip()
    try:
        tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return literal(raw.strip("'\""))
    return raw


def grid_values_literal(values: str) -> str:
    """The TOML array of a grid axis typed as ``v1, v2, ...``: as TOML when it reads as
    one (``"HPS, 2015", "HPS 2016"``, ``[0.02, 0.1], [0.03, 0.13]``, ``[0, 1, 2]``), else
    split at commas, each value as written if TOML, else a string (``toys, asymptotic``).
    Split at the commas outside quotes and brackets."""
    for text in (values, f"[{values}]"):
        try:
            if isinstance(tomllib.loads(f"v = {text}")["v"], list):
                return text
        except (tomllib.TOMLDecodeError, RecursionError):
            continue
    inner = values.strip("[] ")
    return "[" + ", ".join(_token(v) for v in _split_values(inner) if v.strip()) + "]"


def _split_values(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and outside quotes that open a value
    (``"a,b", c``: two values; ``Bob's fit, plain``: two as well)."""
    parts, start, depth, quote = [], 0, 0, ""
    for k, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and not text[start:k].strip():  # (Bob's: no string)
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth <= 0:
            parts.append(text[start:k])
            start = k + 1
    return [*parts, text[start:]]


class GridPane(Widget):
    """The grid of the edited config and its plan (``show_check`` down, ``EditText`` up)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="grid-summary")
        yield DataTable(id="grid-points", zebra_stripes=True, cursor_type="row")
        yield Static("Tasks per step", classes="section-title")
        yield DataTable(id="grid-steps", cursor_type="row")
        yield StillInput(
            id="grid-vary",
            compact=True,
            placeholder="vary a key: fit.blind_nsigma = 1.64, 1.96  (Enter)",
        )

    def show_check(self, check: Check) -> None:
        summary = self.query_one("#grid-summary", Static)
        points = self.query_one("#grid-points", DataTable)
        steps = self.query_one("#grid-steps", DataTable)
        points.clear(columns=True)
        steps.clear(columns=True)
        if not check.points:
            summary.update(Text("The config has errors: no grid (see Edit, F2).", style="bold red"))
            return
        n, t = len(check.points), len(check.tasks)
        lo, hi = check.tasks_per_point()
        s = Text()
        s.append(f"{n} point{'s' * (n != 1)}", style="bold")
        if n == 1:
            s.append(f", {t} tasks")
        elif lo == hi:
            s.append(f" × {lo} tasks = {t} tasks")
        else:  # points of other masses or chunk sizes
            s.append(f", {lo}-{hi} tasks each, {t} tasks")
        s.append(f"   run directory {show_path(check.run_dir)}", style="dim")
        summary.update(s)
        keys, rows = check.grid_rows()
        points.add_columns("#", "point", *keys, "output folder")
        for r in rows:
            points.add_row(*r)
        steps.add_columns("step", "chunks", "merge", "per point", "all points")
        for step, parts, merge, per_point, total in check.steps_table():
            steps.add_row(step, parts, merge, per_point, str(total))

    @on(Input.Submitted, "#grid-vary")
    def _vary(self, event: Input.Submitted) -> None:
        change = self._axis_change(event.value)
        if change is not None:
            self.post_message(EditText(change))
            event.input.value = ""

    def _axis_change(self, typed: str) -> Callable[[str], str] | None:
        """The edit that adds the grid axis ``dotted.key = v1, v2, ...`` (None, with a
        notice, when it is not written so)."""
        key, sep, values = (x.strip() for x in typed.partition("="))
        if not sep or not key or not values:
            self.notify("Write: dotted.key = v1, v2, ...", severity="error")
            return None
        lit = grid_values_literal(values)
        return lambda text: set_key(text, ["grid", key], lit)

    def pending_edit(self) -> tuple[bool, Callable[[str], str] | None]:
        """As the Form's: an axis typed into the focused field and not added yet (Enter
        adds it) is added before a save, launch or quit (False: refused, with a notice)."""
        vary = self.query_one("#grid-vary", Input)
        if self.screen.focused is not vary or not vary.value.strip():
            return True, None
        change = self._axis_change(vary.value)
        if change is not None:
            vary.value = ""
        return change is not None, change
