"""What the TUI knows about a config, without any widget: validate a text (saved or not)
into structured issues (file, line, column, key, message), summarise the grid and the plan.

The TUI validates the text being edited with the same code as ``gprpipe validate``
(:func:`gprpipe.config.load_points` given the text and the path it stands for, so relative
paths and template references resolve as they will once saved); the loader's issues are
shown as they are, nothing is parsed back from sentences.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gprpipe.config import Point, load, load_points
from gprpipe.config.issues import Issue, issues_of
from gprpipe.config.loader import Origin, flatten, get_dotted, read_config_text, shipped_dir
from gprpipe.errors import GprpipeError
from gprpipe.io.toml_write import dumps
from gprpipe.pipeline.plan import MERGE
from gprpipe.pipeline.store import point_dir
from gprpipe.pipeline.task import Task


def show_path(path: Path | str | None) -> str:
    """A short, stable display of ``path``: relative to the CWD when inside it, else
    ``~/...`` under the home folder, else absolute."""
    if path is None:
        return "(none)"
    p = Path(path)
    try:
        ap = p.resolve()
    except OSError:
        return str(p)
    for base, prefix in ((Path.cwd().resolve(), ""), (Path.home().resolve(), "~/")):
        try:
            rel = ap.relative_to(base)
        except ValueError:
            continue
        return prefix + (str(rel) if str(rel) != "." else ".")
    return str(ap)


def issue_location(issue: Issue) -> str:
    """``file:line`` of an issue for display (a config file's path shortened)."""
    if not issue.file:
        return ""
    f = issue.file if not issue.file.endswith(".toml") else show_path(issue.file)
    return f"{f}:{issue.line}" if issue.line else f


@dataclass
class Check:
    """Result of validating one config text: issues, chain, grid points and plan."""

    path: Path
    text: str
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what validate prints as "notice:"
    chain: list[Path] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    merged: dict[str, Any] = field(default_factory=dict)  # unrendered, inheritance applied
    origins: dict[str, Origin] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    seconds: float = 0.0
    # the run directory of a config whose points load but that validate refuses (a
    # blinded folder, a foreign one): its finished results are still shown
    output: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.points)

    @property
    def run_dir(self) -> Path | None:
        return Path(self.points[0].config.base.output) if self.points else self.output

    @property
    def steps(self) -> list[str]:
        if self.points:
            return list(self.points[0].config.steps.run)
        run = get_dotted(self.merged, "steps.run", [])
        return [str(s) for s in run] if isinstance(run, list) else []

    @property
    def style(self) -> str:
        """How :meth:`summary` is shown: red with errors, yellow with warnings, else green."""
        return "bold red" if self.errors else "bold yellow" if self.warnings else "bold green"

    def summary(self) -> str:
        """One line: validity, points, tasks."""
        if self.errors:
            n = len(self.errors)
            return f"✗ {n} error{'s' * (n != 1)}"
        n, t = len(self.points), len(self.tasks)
        plan = f"{n} point{'s' * (n != 1)}, {t} task{'s' * (t != 1)}"
        if self.warnings:  # input files not at hand: gprpipe validate (and a run) refuse it
            k = len(self.warnings)
            return f"⚠ {plan}; {k} input file{'s' * (k != 1)} not found: a run would fail"
        return f"✓ valid, {plan}"

    def rendered(self, index: int = 0) -> str:
        """TOML of one point's rendered config, with paths shown as :func:`show_path`."""
        if not self.points:
            return ""
        data = {k: v for k, v in self.points[index].data.items() if k != "grid"}
        return dumps(display_data(data))

    def steps_table(self) -> list[tuple[str, str, str, str, int]]:
        """Per step: (step, chunk tasks per point, merge tasks per point, both per point,
        tasks in total); a count that differs between points (a grid of mass steps or
        chunk sizes) is their range, ``6-18``."""
        counts: dict[str, dict[str, Counter[str]]] = {}
        total: Counter[str] = Counter()
        for t in self.tasks:
            total[t.step] += 1
            c = counts.setdefault(t.step, {}).setdefault(t.point, Counter())
            c["merge" if t.part == MERGE else "part"] += 1
        points = [p.name for p in self.points]

        def span(step: str, *kinds: str) -> str:
            each = [sum(counts[step].get(p, Counter())[k] for k in kinds) for p in points]
            lo, hi = min(each, default=0), max(each, default=0)
            return str(lo) if lo == hi else f"{lo}-{hi}"

        return [
            (s, span(s, "part"), span(s, "merge"), span(s, "part", "merge"), total[s])
            for s in total
        ]

    def tasks_per_point(self) -> tuple[int, int]:
        """The fewest and most tasks of a point."""
        each = Counter(t.point for t in self.tasks)
        n = [each.get(p.name, 0) for p in self.points]
        return min(n, default=0), max(n, default=0)

    def grid_rows(self) -> tuple[list[str], list[list[str]]]:
        """(varied keys, rows of [index, name, *values, output folder])."""
        keys: list[str] = []
        for p in self.points:
            keys += [k for k in p.values if k not in keys]
        rows = []
        for p in self.points:
            out = show_path(point_dir(Path(p.config.base.output), p))
            vals = [_fmt(p.values[k]) if k in p.values else "" for k in keys]
            rows.append([str(p.index), p.name, *vals, out])
        return keys, rows

    def varied(self, dotted: str) -> list[Any] | None:
        """The values the grid gives a key (each once, in the points' order); None when
        the grid does not vary it."""
        if not any(dotted in p.values for p in self.points):
            return None
        values: list[Any] = []
        for p in self.points:
            if dotted in p.values and p.values[dotted] not in values:
                values.append(p.values[dotted])
        return values

    def origin_of(self, dotted: str) -> str:
        """Where a key's value comes from: ``varied by the grid`` (whatever the file sets
        is overridden), ``this file``, a template or card, ``default``."""
        if self.varied(dotted) is not None:
            return "varied by the grid"
        o = self.origins.get(dotted)
        if o is None:
            return "default"
        if o.file.startswith("--set"):
            return "--set"
        if o.file == "grid":
            return "grid"
        if Path(o.file) == self.path.resolve():
            return "this file"
        f = Path(o.file)
        return f"card {f.stem}" if f.parent.name == "cards" else f.name


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def display_data(data: Any) -> Any:
    """Copy of rendered data with absolute paths under the CWD/home shortened."""
    if isinstance(data, dict):
        return {k: display_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [display_data(v) for v in data]
    if isinstance(data, str) and os.path.isabs(data):
        return show_path(data)
    return data


def _validate(text: str, path: Path, overrides: Sequence[str], check: Check) -> None:
    """Fill ``check`` from ``text`` standing for the config at ``path``: what
    ``gprpipe validate`` refuses, except that a data file not written yet is a warning
    (a config may be written before its data are at hand)."""
    try:
        loaded = load(path, overrides, text)
    except GprpipeError as exc:
        check.errors = issues_of(exc)
        return
    check.chain = loaded.chain
    check.merged = loaded.data
    check.origins = dict(loaded.origins)
    from gprpipe.pipeline import service

    try:
        found = service.validate(path, overrides, text=text, missing_inputs="warning")
    except GprpipeError as exc:
        check.errors = issues_of(exc)
        try:  # refused for its run folder, or an input: the folder is known all the same
            _, points = load_points(path, overrides, text=text)
            check.output = Path(points[0].config.base.output) if points else None
        except GprpipeError:
            pass
        return
    check.origins = dict(found.loaded.origins)
    check.points = found.points
    check.tasks = found.tasks
    check.warnings = found.warnings
    check.notices = found.notices


def check_text(text: str, path: Path | str, overrides: Sequence[str] = ()) -> Check:
    """Validate ``text`` as if it were saved at ``path`` (which need not exist)."""
    t0 = time.perf_counter()
    real = Path(path).expanduser().absolute()
    check = Check(real, text, overrides=tuple(overrides))
    _validate(text, real, overrides, check)
    check.seconds = time.perf_counter() - t0
    return check


def check_file(path: Path | str, overrides: Sequence[str] = ()) -> Check:
    """Validate a saved config file."""
    p = Path(path)
    try:
        text = read_config_text(p)
    except GprpipeError as exc:
        c = Check(p.absolute(), "")
        c.errors = [Issue(str(exc))]
        return c
    return check_text(text, p, overrides)


# ------------------------------------------------------------------ browsing and templates


def default_folders(config: Path | None = None) -> list[Path]:
    """Folders the browser lists: shipped templates, ./user_configs and the config's folder."""
    out = [shipped_dir("templates")]
    uc = Path.cwd() / "user_configs"
    if uc.is_dir():
        out.append(uc)
    if config is not None:
        out.append(config if config.is_dir() else config.parent)
    uniq: list[Path] = []
    for p in out:
        rp = p.resolve()
        if rp.is_dir() and rp not in uniq:
            uniq.append(rp)
    return uniq


def config_files(folder: Path) -> list[Path]:
    """TOML files of a folder (sorted, hidden and temporary files skipped)."""
    try:
        return sorted(
            p for p in folder.glob("*.toml") if not p.name.startswith(".") and p.is_file()
        )
    except OSError:
        return []


def template_ref(template: Path, target_dir: Path) -> str:
    """How a config in ``target_dir`` names ``template``: the shipped name, or a path."""
    template = template.resolve()
    if template.parent == shipped_dir("templates").resolve():
        return template.stem
    return os.path.relpath(template, target_dir.resolve())


def child_config_text(template: Path, target: Path) -> str:
    """Text of a new config inheriting ``template`` (to be saved at ``target``)."""
    ref = template_ref(template, target.parent)
    name = re.sub(r"[^A-Za-z0-9_]+", "_", target.stem)
    return (
        f"# New analysis inheriting {template.name} (created with gprpipe tui).\n"
        "# Override any key of the template chain here; errors show beside the text.\n"
        "[base]\n"
        f'template = "{ref}"\n'
        f'name = "{name}"\n'
    )


def unique_path(folder: Path, stem: str) -> Path:
    """``folder/stem.toml``, or ``stem_2.toml``... if taken."""
    p = folder / f"{stem}.toml"
    k = 2
    while p.exists():
        p = folder / f"{stem}_{k}.toml"
        k += 1
    return p


def flat_keys(data: dict[str, Any]) -> dict[str, Any]:
    return flatten(data)
