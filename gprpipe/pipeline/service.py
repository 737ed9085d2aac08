"""The run service: plan, run, watch, cancel, rerun and summarise runs.

Both front ends call these functions and nothing below them: the CLI (``gprpipe run``,
``rerun``, ``status``, ``cancel``, ``summary``) in its own process, with a
:class:`RunObserver` that draws progress; the TUI through :mod:`gprpipe.pipeline.launch`,
which runs the same :func:`run` / :func:`rerun` in a background process (a run outlives
the TUI that started it), and :func:`watch` / :func:`cancel` in its own.

- :func:`run`: every grid point of a config through its steps, locally (the executor
  returns when the tasks have ended) or queued (SLURM job arrays; ``wait`` follows them),
  through the executor registry, under the run directory's lock.
- :func:`rerun`: the failed tasks, or those owning some masses, and what follows them.
- :func:`status`, :func:`watch`: every task's state from the run's executor (markers of
  :mod:`gprpipe.pipeline.state`, and the scheduler's queue).
- :func:`cancel`: stop the run holding the directory (and a background launch), mark its
  tasks that were running ``failed``, cancel its scheduler jobs. A run of this very
  process (a program running the service in a thread) is stopped through its stop event,
  the others by signals.
- :func:`summarise`: the run's summary lines.

User mistakes raise :class:`~gprpipe.errors.GprpipeError` or
:class:`~gprpipe.errors.ConfigError` (one sentence each); Ctrl-C or SIGTERM during a local
run raises :class:`Interrupted`, which says what is kept and how to resume.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import math
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gprpipe.errors import ConfigError, GprpipeError, cli_command, os_error_sentence
from gprpipe.executors.base import Hooks, Outcome, RunReport, TaskStatus
from gprpipe.io.atomic import loads_json, read_record
from gprpipe.io.processes import alive, as_pid
from gprpipe.pipeline.commit import with_damage
from gprpipe.pipeline.lock import (
    LOCK_NAME,
    cancel_request,
    cancel_requested,
    describe,
    flock_holders,
    holder,
    in_use_by,
    is_locked,
    run_lock,
)
from gprpipe.pipeline.plan import RUN_JSON
from gprpipe.pipeline.state import fmt_duration, unmarkable
from gprpipe.pipeline.store import (
    LAUNCH_LOG,
    LAUNCH_PREVIOUS,
    LAUNCH_SPEC,
    RunInfo,
    check_inside,
    earlier_unblinded_runs,
    last_run_blind,
    load_run_info,
    new_run_info,
    plan_points,
    point_dir,
    rerun_record,
    run_plan,
    task_states,
    tasks_of_run,
    write_point_configs,
)
from gprpipe.pipeline.task import Task
from gprpipe.pipeline.watch import RunView, RunWatcher, mark_cancelled, watch
from gprpipe.units import fmt_mass, parse_masses, same_mass

if TYPE_CHECKING:
    from gprpipe.config import Point
    from gprpipe.config.issues import Issue, Where
    from gprpipe.config.loader import Loaded
    from gprpipe.config.schema import Config
    from gprpipe.engines.base import Engine
    from gprpipe.executors.base import Executor
    from gprpipe.pipeline.summary import RunSummary
    from gprpipe.results.summary import FailedRows

__all__ = [
    "Cancelled",
    "Interrupted",
    "Outcome",
    "RunObserver",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "RunView",
    "RunWatcher",
    "cancel",
    "config_of_run",
    "count",
    "failed_rows_of",
    "load_points",
    "rerun",
    "run",
    "run_dir_of",
    "sigterm_interrupts",
    "status",
    "submitted_line",
    "summarise",
    "task_line",
    "validate",
    "watch",
]


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While a run started in this thread runs: SIGTERM (``gprpipe cancel``) stops it as
    Ctrl-C does (:func:`gprpipe.executors.local.sigterm_interrupts`)."""
    from gprpipe.executors.local import sigterm_interrupts as interrupts

    with interrupts():
        yield


# ---------------------------------------------------------------- what a front end sees


class RunObserver:
    """What happens during a run, as it happens (every method does nothing here; a front
    end overrides what it shows). Called in the run's thread."""

    def notice(self, line: str) -> None:
        """A ``notice:`` line (lock taken over, leftover containers, damaged outputs)."""

    def rerunning(self, tasks: Sequence[Task]) -> None:
        """:func:`rerun` chose these tasks (before it starts them)."""

    def submitted(
        self, executor: str, tasks: Sequence[Task], job_ids: dict[str, str], cached: int = 0
    ) -> None:
        """A queueing executor accepted ``tasks`` as jobs ``job_ids`` (``cached``: tasks
        already up to date, not submitted)."""

    def started(self, tasks: Sequence[Task], executor: str) -> None:
        """Execution (local) or following the queue (``wait``) begins."""

    def task_ended(self, task: Task, outcome: Outcome) -> None:
        """Local: a task ended (done, cached, failed or skipped)."""

    def tick(self, running: list[Task]) -> None:
        """Local: about twice a second while ``running`` tasks run."""

    def queue(self, states: dict[str, str]) -> None:
        """Queued, with ``wait``: every task's state after a poll."""

    def stopped(self) -> None:
        """Execution ended (also when interrupted): after :meth:`started`."""


def task_line(task: Task, outcome: Outcome) -> str:
    """``<task id>: done (4.2 s)`` for a task that ran ('' for cached and skipped ones)."""
    if outcome.state not in ("done", "failed"):
        return ""
    return f"{task.id}: {outcome.state} ({fmt_duration(outcome.seconds)})"


def submitted_line(
    executor: str, tasks: Sequence[Task], job_ids: dict[str, str], cached: int = 0
) -> str:
    jobs = ", ".join(f"{k}={v}" for k, v in job_ids.items())
    kept = f" ({cached} up to date, not submitted)" if cached else ""
    return f"Submitted {len(tasks)} tasks to {executor.upper()} as job arrays{kept}: {jobs}"


def count(states: dict[str, str]) -> dict[str, int]:
    """How many tasks are in each state (in order of first appearance)."""
    out: dict[str, int] = {}
    for s in states.values():
        out[s] = out.get(s, 0) + 1
    return out


class Interrupted(Exception):
    """A local run stopped by Ctrl-C, SIGTERM or :func:`cancel`; the message says what is
    kept and how to resume (exit code 130)."""


# The runs of this process, by resolved run directory: the event that stops each (set by
# cancel() from another thread of the process, which signals cannot reach).
_STOPS: dict[Path, threading.Event] = {}
_STOPS_LOCK = threading.Lock()


@contextmanager
def _stoppable(run_dir: Path) -> Iterator[threading.Event]:
    """Register the stop event of a run of this process while it holds its lock."""
    key, stop = Path(run_dir).resolve(), threading.Event()
    with _STOPS_LOCK:
        _STOPS[key] = stop
    try:
        yield stop
    finally:
        with _STOPS_LOCK:
            if _STOPS.get(key) is stop:
                del _STOPS[key]


@dataclass
class RunResult:
    """What :func:`run` or :func:`rerun` did."""

    run_dir: Path
    tasks: list[Task]
    executor: str
    preview: str | None = None  # --dry-run: what would run
    queued: bool = False  # a queueing executor (SLURM) took the tasks
    waited: bool = False  # ... and the run followed them to their end
    report: RunReport = field(default_factory=RunReport)
    wall: float = 0.0
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # after wait
    failed_rows: list[FailedRows] = field(default_factory=list)
    ok: bool = True

    def headline(self) -> str:
        """The one line a local run ends with (how many tasks ran, cached, failed)."""
        r = self.report
        done, cached = r.count("done"), r.count("cached")
        failed, skipped = r.count("failed"), r.count("skipped")
        if done == 0 and not failed and not skipped:
            return f"Nothing to do: all {cached} tasks are up to date ({self.run_dir})."
        counts = (
            f"{len(self.tasks)} tasks in {fmt_duration(self.wall)}: {done} ran, {cached} "
            f"cached, {failed} failed, {skipped} skipped."
        )
        if failed or skipped:
            return (
                f"{counts} The run is incomplete: fix the cause below, then run the same "
                f"command again (finished tasks are kept) or "
                f"{cli_command('rerun', self.run_dir, '--failed')}."
            )
        return f"{counts} Results in {self.run_dir}"

    def failures(self) -> list[tuple[Task, str]]:
        """Local: the failed tasks with their messages, in the order they ended."""
        by_id = {t.id: t for t in self.tasks}
        return [
            (by_id[tid], o.message)
            for tid, o in self.report.outcomes.items()
            if o.state == "failed"
        ]

    def state_counts(self) -> dict[str, int]:
        """Queued with wait: tasks per final state."""
        return count({k: v[0] for k, v in self.states.items()})


@dataclass
class RunOptions:
    """How to run a config (the options of ``gprpipe run``)."""

    engine: str | None = None
    executor: str | None = None
    jobs: int | None = None  # local workers
    dry_run: bool = False
    force: bool = False
    steps: Sequence[str] | None = None
    points: str | None = None  # grid points: 0,2-3,name,glob*
    wait: bool = False  # queued: follow the jobs to their end
    wait_lock: float = 0.0  # seconds to wait for another run of the directory
    unblind: bool = False
    overrides: Sequence[str] = ()  # --set key=VALUE
    command: str = "gprpipe run"  # who holds the lock (shown to a second run)
    record: Sequence[str] | None = None  # the command recorded in run.json (default argv)


# ---------------------------------------------------------------- plan


def load_points(
    config: Path,
    overrides: Sequence[str] = (),
    *,
    check: bool = False,
    inputs: bool = False,
    text: str | None = None,
) -> tuple[Loaded, list[Point]]:
    """Every grid point (of ``text`` standing for ``config``, if given). ``check``: refuse
    (ConfigError) what ``run`` could not do (nothing to scan, masses not in GeV or out of
    range); ``inputs``: also refuse a data file that does not exist."""
    from gprpipe.config import load_points as load
    from gprpipe.config.checks import check_plan, missing_files

    loaded, points = load(config, list(overrides), text)
    where = _where_of(config, loaded, points)
    errors = check_plan(points, where) if check or inputs else []
    if inputs and not errors:  # the histograms are read by config.check_inputs next
        errors = missing_files(points, where)
    if errors:
        raise ConfigError(errors)
    return loaded, points


def _where_of(config: Path, loaded: Loaded, points: Sequence[Point]) -> Where:
    from gprpipe.config.issues import Loc

    def where(key: str) -> Loc | str:
        if key == "datasets" and not points[0].config.datasets:
            # the user's file, not the defaults; absolute, as every other location
            return Loc(file=str(Path(config).absolute()), key="datasets")
        return loaded.where(key)

    return where


def _refuse_missing_files(config: Path, loaded: Loaded, points: Sequence[Point]) -> None:
    """A data (or toy) file that does not exist: refused before anything starts, in the
    sentence of ``validate`` (file, line, key), as a workflow refuses a missing input."""
    from gprpipe.config.checks import missing_files

    errors = missing_files(points, _where_of(config, loaded, points))
    if errors:
        raise ConfigError(errors)


def run_dir_of(points: Sequence[Point], loaded: Loaded | None = None) -> Path:
    """The run directory: ``base.output``, which must be the same for every grid point
    (``loaded`` locates the [grid] keys that make it differ)."""
    outputs = {p.config.base.output: p.name for p in points}
    if len(outputs) > 1:
        (a, pa), (b, pb) = list(outputs.items())[:2]
        varied = [k for k in points[0].values if k.startswith("base.")] or list(points[0].values)
        at = f"{loaded.where(varied[0])}: " if loaded is not None and varied else ""
        raise GprpipeError(
            f"{at}base.output differs between grid points ({a} at {pa}, {b} at {pb}): the "
            "points of one run share one run directory (vary the point folder names through "
            "other keys instead)."
        )
    return Path(next(iter(outputs)))


@dataclass
class Validated:
    """What :func:`validate` found: the points, the plan, and the warnings (a missing data
    file, where the caller lets a config be written before its data are at hand)."""

    loaded: Loaded
    points: list[Point]
    tasks: list[Task]
    warnings: list[Issue] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def _toy_sources(cfg: Config) -> list[tuple[str, str, str, str, str]]:
    """The toy histograms a point's steps fit with the GP: (file, pattern, dataset, the
    key that names them, what a toy that does not follow the data spoils)."""
    out = []
    if "toyscan" in cfg.steps.run and cfg.toyscan.file:
        what = "the toy scan then checks a background the data do not have"
        out.append(
            (cfg.toyscan.file, cfg.toyscan.pattern, cfg.toyscan_dataset(), "toyscan.file", what)
        )
    if "inject" in cfg.steps.run and cfg.inject.background == "histograms":
        from gprpipe.pipeline.plan import inject_parts
        from gprpipe.results.schema import COMBINED

        what = "the injections then measure a background the data do not have"
        into = {name for name, _ in inject_parts(cfg).values()}  # (combined: every dataset)
        for name in [n for n in cfg.scanned() if n in into or COMBINED in into]:
            pattern = str(cfg.inject.histograms)
            out.append((cfg.datasets[name].path, pattern, name, "inject.histograms", what))
    return out


def toy_range_notices(points: Sequence[Point]) -> list[str]:
    """``notice:`` lines for toy scans and injections on toy histograms whose GP trains
    beyond the range of the fit that generated the toys (``fit_metadata/<family>_metadata``
    of a functional-form toy file): outside it the toys need not follow the data. The 2016
    fShiftSigPowTail toys, trained over the whole histogram, gave sigma_A 30-60 times the
    data's with no word said."""
    from gprpipe.io.root import match_hists, read_hist, read_text

    out: list[str] = []
    seen: set[tuple[object, ...]] = set()
    for p in points:
        cfg = p.config
        for file, pattern, name, key_name, spoils in _toy_sources(cfg):
            trains = cfg.datasets[name].data_range
            key = (file, pattern, name, trains, key_name)
            if key in seen or not Path(file).is_file():
                continue
            seen.add(key)
            try:
                found = match_hists(file, pattern, key_name)
            except GprpipeError:  # said by the config's checks
                continue
            span = trains
            if span is None:  # the whole histogram: its edges
                try:
                    edges = read_hist(cfg.datasets[name].path, cfg.datasets[name].hist)[1]
                    span = (float(edges[0]), float(edges[-1]))
                except GprpipeError:
                    continue
            for family in dict.fromkeys(h.split("/")[0] for h in found if "/" in h):
                try:
                    meta = json.loads(read_text(file, f"fit_metadata/{family}_metadata"))
                    lo, hi = float(meta["fit_min_GeV"]), float(meta["fit_max_GeV"])
                except Exception:  # advice only: a record it cannot read says nothing
                    continue
                if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                    continue
                if span[0] >= lo - 1e-9 and span[1] <= hi + 1e-9:
                    continue
                over = (
                    f"the whole histogram ({span[0] * 1e3:g}-{span[1] * 1e3:g} MeV)"
                    if trains is None
                    else f"{trains[0] * 1e3:g}-{trains[1] * 1e3:g} MeV"
                )
                line = (
                    f"notice: {key_name}: the {family} toys were generated by a fit over "
                    f"{lo * 1e3:g}-{hi * 1e3:g} MeV (the file's fit_metadata), and the GP "
                    f"trains on {over} (datasets.{name}.data_range): outside the fit's range "
                    f"the toys need not follow the data, and {spoils}; "
                    f"datasets.{name}.data_range = [{lo:g}, {hi:g}] trains within it."
                )
                if line not in out:
                    out.append(line)
    return out


def config_notices(loaded: Loaded, points: Sequence[Point]) -> list[str]:
    """The ``notice:`` lines of a config that ``validate`` and ``run`` print alike."""
    return (
        unused_settings(loaded, points)
        + toy_range_notices(points)
        + folder_mount_notices(loaded, points)
        + demo_label_notices(loaded, points)
    )


def _same_file(path: Path, demo: Path) -> bool:
    """Whether ``path`` is the shipped demo spectrum, or a copy of it."""
    import filecmp

    try:
        return path.resolve() == demo or (path.is_file() and filecmp.cmp(path, demo, shallow=False))
    except OSError:
        return False


def demo_label_notices(loaded: Loaded, points: Sequence[Point]) -> list[str]:
    """``notice:`` lines for a dataset labelled as the shipped demo whose file is another:
    a config of ``gprpipe init`` with only its path replaced drew real data as "Demo
    (synthetic)" in every figure and HEPData table (a newcomer audit)."""
    from gprpipe.config.init import DEMO_LABEL
    from gprpipe.config.render import shipped_data_dir
    from gprpipe.io.paths import absolute

    demo = (shipped_data_dir() / "demo_2015.root").resolve()
    out: list[str] = []
    for p in points:
        for key, ds in p.config.datasets.items():
            label = ds.label or ""
            if label != DEMO_LABEL or _same_file(absolute(ds.path), demo):
                continue
            line = (
                f"notice: {loaded.where(f'datasets.{key}.label')}: {label!r} labels "
                f"{ds.path}, which is not the shipped demo spectrum: if it holds real data, "
                "its figures and HEPData tables would call it synthetic; set its label."
            )
            if line not in out:
                out.append(line)
    return out


def folder_mount_notices(loaded: Loaded, points: Sequence[Point]) -> list[str]:
    """``notice:`` lines for data files that a container mounts by their folder: a name
    holding ':' or ',' cannot be written in a bind spec (:func:`~gprpipe.io.paths.
    mount_files`), so the task sees every file beside it (said nowhere: a review)."""
    from gprpipe.io.paths import absolute, mount_files

    out: list[str] = []
    for p in points:
        cfg = p.config
        if cfg.base.engine == "local":
            continue
        for file, key in cfg.data_files():
            path = absolute(file)
            folders = [f for f in mount_files([path], absolute(cfg.base.output)) if f != path]
            line = (
                f"notice: {loaded.where(key)}: the name of {path} holds ':' or ',', which a "
                f"bind spec cannot write: {'an' if cfg.base.engine[0] == 'a' else 'a'} "
                f"{cfg.base.engine} container mounts "
                f"{', '.join(map(str, folders))} (read-only) and shows the task every file "
                "there; under a plain name it is mounted alone."
            )
            if folders and line not in out:
                out.append(line)
    return out


def unused_settings(loaded: Loaded, points: Sequence[Point]) -> list[str]:
    """``notice:`` lines for settings the config sets that no scanned dataset uses:
    ``fit.ls_hi_factor`` where a dataset (its card) sets its own ``ls_hi_factor``. A
    systematic variation of the fit-level key (a grid, a ``--set``) would otherwise give
    identical points without a word. Not for the value of the shipped defaults (also
    where a rendered point config.toml, which holds every key, repeats it)."""
    import tomllib

    from gprpipe.config.loader import shipped_dir

    idle = _idle_grid_axes(loaded, points)
    origin = loaded.origin("fit.ls_hi_factor")
    defaults = shipped_dir("templates") / "defaults.toml"
    default = tomllib.loads(defaults.read_text(encoding="utf-8"))["fit"]["ls_hi_factor"]
    if origin is None or all(p.config.fit.ls_hi_factor == default for p in points):
        return idle
    names = sorted(
        {
            d
            for p in points
            for d in p.config.scanned()
            if p.config.datasets[d].ls_hi_factor is not None
        }
    )
    if not names:
        return idle
    value = ", ".join(f"{v:g}" for v in sorted({p.config.fit.ls_hi_factor for p in points}))
    where = "; ".join(f"{loaded.where(f'datasets.{d}.ls_hi_factor')}" for d in names)
    return [
        *idle,
        f"notice: fit.ls_hi_factor = {value} ({origin}) is not used for dataset"
        f"{'s' * (len(names) > 1)} {', '.join(names)}, which set{'s' * (len(names) == 1)} "
        f"its own ({where}); set datasets.<name>.ls_hi_factor instead.",
    ]


def _idle_grid_axes(loaded: Loaded, points: Sequence[Point]) -> list[str]:
    """``notice:`` lines for grid axes that no step this config runs computes with (an
    ``inject`` key without the inject step; ``limit.n_toys`` with asymptotic limits): their
    points would give identical results without a word. The plot step counts as a reader
    of ``plot`` and ``base`` keys only (it draws what the other steps computed); an axis
    of ``steps`` itself changes what runs."""
    from gprpipe.config.loader import get_dotted
    from gprpipe.pipeline.cache import STEP_SECTIONS

    if len(points) < 2:
        return []

    def read(key: str, cfg: Config) -> bool:
        if key.startswith("steps."):
            return True
        if key in TOY_COUNTS and _idle_toys(key, cfg):
            return False
        for step in cfg.steps.run:
            sections = ("plot", "base") if step == "plot" else STEP_SECTIONS[step]
            if any(key == sec or key.startswith(f"{sec}.") for sec in sections):
                return True
        return False

    def computed(p: Point) -> str:
        """What the point's steps read of its rendered config, but the grid's axes
        themselves (whether a step reads one is :func:`read`'s to say; a zipped partner's
        own values made an idle axis look read: the whole-diff review)."""
        read_by = {
            sec
            for step in p.config.steps.run
            for sec in (("plot", "base") if step == "plot" else STEP_SECTIONS[step])
        }
        got = copy.deepcopy({sec: get_dotted(p.data, sec) for sec in sorted(read_by)})
        for key in keys:
            *table, leaf = key.split(".")
            node: Any = got
            for part in table:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return json.dumps(got, sort_keys=True, default=str)

    reads: dict[int, str] = {}

    def read_of(p: Point) -> str:
        """:func:`computed`, once per point (the same for every axis)."""
        if p.index not in reads:
            reads[p.index] = computed(p)
        return reads[p.index]

    def changes_results(key: str) -> bool:
        """The axis moves what the steps read (a template of a read key that reads it,
        ``n_restarts = "{{ 8 if inject.refit_gp else 2 }}"``, was taken for idle; a
        review): among points alike in the other axes, or, where none are (zipped axes),
        among all."""
        others = [k for k in keys if k != key]
        groups: dict[str, list[str]] = {}
        for p in points:
            alike = json.dumps([p.values.get(k) for k in others], default=str)
            groups.setdefault(alike, []).append(read_of(p))
        pairs = [g for g in groups.values() if len(g) > 1]
        if pairs:
            return any(len(set(g)) > 1 for g in pairs)
        return len({read_of(p) for p in points}) > 1

    keys = sorted({k for p in points for k in p.values})
    idle = [
        k for k in keys if not any(read(k, p.config) for p in points) and not changes_results(k)
    ]
    cfg = points[0].config
    return [
        f"notice: {loaded.where(key)}: a [grid] axis that no step this config runs "
        f"computes with (steps.run = {list(cfg.steps.run)}"
        + (f"; {TOY_COUNTS[key]} is asymptotic" if key in TOY_COUNTS else "")
        + "): its points give identical results."
        for key in idle
    ]


#: toy counts and the switch that leaves them unused when it is "asymptotic"
TOY_COUNTS = {"limit.n_toys": "limit.mode", "limit.band_toys": "limit.bands"}


def _idle_toys(key: str, cfg: Config) -> bool:
    switch = cfg.limit.mode if key == "limit.n_toys" else cfg.limit.bands
    return switch == "asymptotic"


def validate(
    config: Path,
    overrides: Sequence[str] = (),
    *,
    text: str | None = None,
    missing_inputs: Literal["error", "warning"] = "error",
) -> Validated:
    """Everything ``run`` would refuse, inputs (data files, histograms) included, of the
    config at ``config`` (or of ``text`` standing for it: the TUI's editor). A data file
    that does not exist is an error, or a warning with ``missing_inputs="warning"``."""
    from gprpipe.config import check_inputs
    from gprpipe.config.checks import missing_files

    refuse_set_unblind(overrides, config, text)
    strict = missing_inputs == "error"
    loaded, points = load_points(config, overrides, check=True, inputs=strict, text=text)
    warnings = [] if strict else missing_files(points, _where_of(config, loaded, points))
    run_dir = run_dir_of(points, loaded)
    refuse_non_utf8(run_dir, str(loaded.where("base.output")))
    refuse_foreign_folder(run_dir, str(loaded.where("base.output")))
    tasks = plan_points(run_dir, points, loaded.where)
    _refuse_silent_unblinding(run_dir, points)  # (validate has no --unblind: run has)
    _refuse_observed_exports(run_dir, points)
    _refuse_unplanned_inputs(run_dir, points, tasks)  # what the folder lacks now
    _refuse_unpassable_images((p.config, loaded.where) for p in points)
    check_inputs(loaded, points)
    return Validated(
        loaded,
        points,
        tasks,
        [replace(w, severity="warning") for w in warnings],
        config_notices(loaded, points),
    )


def select_points(points: Sequence[Point], sel: str | None) -> list[Point]:
    """``--points``: comma-separated indices, ranges (0-3), names or glob patterns; None
    selects every point."""
    if sel is None:
        return list(points)
    items = [s.strip() for s in sel.split(",") if s.strip()]
    if not items:
        raise GprpipeError(
            f"--points {sel!r}: name at least one grid point (an index, a range 0-3, a "
            "name or a glob; leave the option out for all)."
        )
    chosen: list[Point] = []
    for item in items:
        if item.isdigit():
            hits = [p for p in points if p.index == int(item)]
        elif "-" in item and all(x.isdigit() for x in item.split("-", 1)):
            a, b = (int(x) for x in item.split("-", 1))
            hits = [p for p in points if a <= p.index <= b]
        else:
            hits = [p for p in points if fnmatch.fnmatch(p.name, item)]
        if not hits:
            names = ", ".join(f"{p.index}:{p.name}" for p in points)
            raise GprpipeError(f"--points {item!r} matches no grid point (have {names}).")
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen, key=lambda p: p.index)


def _checked_wait(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise GprpipeError(f"--wait-lock {seconds:g}: seconds to wait, a number of at least 0.")


def _checked_choice(option: str, value: str) -> str:
    """``--engine`` / ``--executor``: one of the names ``base.<option>`` takes."""
    from typing import get_args

    from gprpipe.config.issues import did_you_mean
    from gprpipe.config.schema import Base

    names = [str(n) for n in get_args(Base.model_fields[option].annotation)]
    if value not in names:
        hint = did_you_mean(value, names) or f"; the {option}s are {', '.join(names)}."
        raise GprpipeError(f"--{option} {value}: {value!r} is not an {option}{hint}")
    return value


def _checked_steps(steps: Sequence[str]) -> list[str]:
    """``--steps``: known step names, at least one (a sentence naming the option if not)."""
    from gprpipe.config.issues import did_you_mean
    from gprpipe.config.schema import STEPS

    given = ",".join(steps)
    for s in steps:
        if s not in STEPS:
            hint = did_you_mean(s, STEPS) or f"; the steps are {', '.join(STEPS)}."
            raise GprpipeError(f"--steps {given}: {s!r} is not a step{hint}")
    if not steps:
        raise GprpipeError(f"--steps {given!r}: name one or more of {', '.join(STEPS)}.")
    return list(steps)


def _run_arguments(opts: RunOptions) -> list[str]:
    """The options of ``gprpipe run`` that ``opts`` stand for, but ``--force``: the
    command that resumes the run (made of the loader's overrides, it dropped --points and
    turned --unblind into the refused ``--set base.blind=false``; a review)."""
    args: list[str] = []
    for option, value in (("--engine", opts.engine), ("--executor", opts.executor)):
        if value:
            args += [option, value]
    if opts.steps is not None:
        args += ["--steps", ",".join(opts.steps)]
    if opts.jobs is not None:
        args += ["-j", str(int(opts.jobs))]
    if opts.points is not None:
        args += ["--points", opts.points]
    # (not --force: the resumed run would redo what this one finished; a review)
    args += ["--unblind"] * opts.unblind
    return args + [x for o in opts.overrides for x in ("--set", o)]


def _refuse_unpassable_images(
    configs: Iterable[tuple[Config, Callable[[str], object]]], engine: str | None = None
) -> None:
    """An Apptainer image path its tasks cannot be given, at its key (each config with
    its locator), before anything is written (:func:`image_errors`); ``engine``: the run's
    (a rerun), else each config's."""
    for cfg, where in configs:
        if errors := image_errors(cfg, engine or cfg.base.engine):
            key, why = errors[0]
            raise GprpipeError(f"{where(key)}: {why}.")


def image_errors(cfg: Config, engine: str) -> list[tuple[str, str]]:
    """``(key, why)`` of each image of ``cfg`` that ``engine`` (apptainer) cannot pass to
    its tasks (:func:`~gprpipe.engines.apptainer.image_problem`): a run refused it only at
    its first task, naming neither key nor file, with run.json written (a review)."""
    if engine != "apptainer":
        return []
    from gprpipe.engines.apptainer import image_problem

    b = cfg.base
    images = {
        "base.image": b.image,
        **{f"base.step_images.{k}": v for k, v in b.step_images.items()},
    }
    return [(key, why) for key, image in images.items() if (why := image_problem(image))]


def _refuse_observed_exports(run_dir: Path, points: Sequence[Point]) -> None:
    """A blinded run refuses a point folder that holds exports of an unblinded fit (they
    carry observed counts; a blinded run may not leave any behind), and a run folder whose
    ``compare/`` holds observed limit ratios."""
    from gprpipe.pipeline.commit import recorded_exports, unrecorded_exports
    from gprpipe.results.compare import observed_ratios

    def listed(found: Sequence[Path]) -> str:
        return ", ".join(str(f) for f in found[:3]) + (", ..." if len(found) > 3 else "")

    for p in points:
        if not p.config.base.blind:
            continue
        pdir = point_dir(run_dir, p)
        if found := recorded_exports(pdir):
            raise GprpipeError(
                f"{listed(found)}: exports of an unblinded fit (observed counts) in a run "
                "that is blinded now; remove them, or run into another folder (base.output)."
            )
        if unknown := sorted(unrecorded_exports(pdir)):
            raise GprpipeError(
                f"{listed([pdir / rel for rel in unknown])}: files no export command of this "
                "folder recorded (they may hold observed counts) in a run that is blinded "
                "now; remove them, or run into another folder (base.output)."
            )
    if any(p.config.base.blind for p in points):
        if other := _unblinded_point_folder(run_dir, {p.name for p in points}):
            raise GprpipeError(
                f"{other}: results of an unblinded run (observed counts, limits or "
                "significances) in a point folder this blinded run does not run, so it "
                "would leave them in a folder that says it is blinded; remove that "
                "folder, or run into another folder (base.output)."
            )
        for table in sorted((run_dir / "compare").glob("*.csv")):
            observed = observed_ratios(table)
            if observed is None:
                raise GprpipeError(
                    f"{table}: unreadable, so a run that is blinded now cannot tell whether "
                    "it compares observed limits; remove it, or run into another folder "
                    "(base.output)."
                )
            if observed:
                raise GprpipeError(
                    f"{table}: a comparison of unblinded results (observed limits) in a "
                    "run that is blinded now; remove the folder, or run into another "
                    "folder (base.output)."
                )


def _unblinded_point_folder(run_dir: Path, running: set[str]) -> Path | None:
    """A point folder of ``run_dir`` not among ``running`` whose config.toml is not blinded
    (or unreadable) and that holds more than its markers (a task's log may print
    observed numbers: the limit merge's largest Z_local):
    an earlier config's point (a grid point, or ``nominal`` before a grid), left as it is
    by the run (a review)."""
    from gprpipe.pipeline.store import point_blinded

    try:
        folders = sorted(
            (e for e in os.scandir(run_dir) if e.is_dir(follow_symlinks=False)),
            key=lambda e: e.name,
        )
    except OSError:
        return None
    for e in folders:
        config = Path(e.path) / "config.toml"
        if e.name in running or not config.is_file():
            continue
        if point_blinded(Path(e.path)) is not True and any(
            n not in ("config.toml", ".state") for n in os.listdir(e.path)
        ):
            return Path(e.path)
    return None


def _refuse_silent_unblinding(run_dir: Path, points: Sequence[Point]) -> None:
    """A folder whose last run was blinded (run.json) is not run unblinded without
    ``--unblind``: e.g. the config run again without the ``--set base.blind=true`` that
    blinded it, or the TUI launching the config of a blinded run."""
    if any(p.config.base.blind for p in points):
        return
    if last_run_blind(run_dir):
        raise GprpipeError(
            f"{run_dir}: its last run was blinded (run.json) and this config is not; "
            "blinding is lifted only by 'gprpipe run --unblind' (recorded in run.json), "
            "else blind this run too (base.blind = true) or run into another folder "
            "(base.output)."
        )


def _observed_replaced(run_dir: Path, points: Sequence[Point]) -> str:
    """The notice for a blinded run into a folder whose points hold observed (unblinded)
    results: the run replaces them with expected limits only (nothing is seen that was
    not seen; they come back with ``--unblind``). '' when there are none."""
    from gprpipe.results.schema import csv_header, has_observed

    names = []
    for p in points:
        scan = point_dir(run_dir, p) / "scan.csv"
        if p.config.base.blind and scan.is_file():
            try:
                if has_observed(csv_header(scan)):
                    names.append(p.name)
            except (OSError, GprpipeError):  # damaged: the run redoes or refuses it
                continue
    if not names:
        return ""
    steps = {p.name: p.config.steps.run for p in points if p.name in names}
    kept = [n for n in names if "limit" not in steps[n]]
    undrawn = [n for n in names if "plot" not in steps[n]]
    replaced = [n for n in names if n not in kept]
    out = f"notice: {', '.join(names)}: observed (unblinded) results in {run_dir}; "
    if replaced:
        which = "them" if replaced == names else f"those of {', '.join(replaced)}"
        out += (
            f"this blinded run replaces {which} with expected limits only ('gprpipe run "
            "--unblind' computes them again)."
        )
    if kept:
        out += (
            f"{' W' if replaced else 'w'}ithout the limit step, scan.csv and limit.h5 of "
            f"{', '.join(kept)} keep them (not current) until it runs; the report of this "
            "blinded run shows none of them."
        )
    if undrawn:
        out += (
            " Without the plot step, the figures, combination and allocation tables, "
            f"HEPData tables and report of {', '.join(undrawn)} stay those of the observed "
            "results (not current) until it runs."
        )
    return out


def _refuse_unplanned_inputs(run_dir: Path, points: Sequence[Point], tasks: Sequence[Task]) -> None:
    """Refuse, before anything starts, tasks that read what a step left out of the run
    would write and the run directory does not hold (it failed later as 'not committed'),
    or holds made by other settings or inputs (it was used as it was), or made from what
    a task of this run makes anew."""
    from gprpipe.pipeline.cache import made_by, output_of
    from gprpipe.pipeline.commit import damaged, unplanned_inputs
    from gprpipe.pipeline.plan import Layout, producers

    prods = {p.name: producers(p.name, point_dir(run_dir, p), p.config) for p in points}
    configs = {p.name: p.config for p in points}
    # the plot task draws what it finds of a step left out (checked below), not only
    # what this config made: its inputs are not refused for being of other settings
    unplotted = [t for t in tasks if t.step != "plot"]
    ours: dict[str, bool] = {}

    def current(t: Task) -> bool:
        """:func:`made_by` of a producer, once (both checks below ask it)."""
        if t.id not in ours:
            ours[t.id] = made_by(t, configs[t.point])
        return ours[t.id]

    why = unplanned_inputs(unplotted, prods, current)
    why += _made_from_what_runs_anew(unplotted, prods, configs, current)
    planned = {t.id for t in tasks}
    for p in points:
        mine = [t for t in tasks if t.point == p.name]
        lay = Layout(point_dir(run_dir, p))
        there = [f for f in (lay.load, lay.fit, lay.limit, lay.inject, lay.toyscan) if f.exists()]
        if any(t.step == "plot" for t in mine):  # it draws what it finds: none damaged
            tables = (lay.scan_csv, lay.inject_csv, lay.toyscan_csv, lay.toyscan_summary_csv)
            for f in [*there, *(t for t in tables if t.exists())]:
                made = prods[p.name].get(f)
                if made is not None and made.id not in planned and damaged(made, f):
                    why.append(
                        f"{f}: differs from what its task {made.id} wrote (sha256 mismatch), "
                        f"and the plot step would draw it: add '{made.step}' to steps.run "
                        "(or --steps)."
                    )
        if not mine or {t.step for t in mine} != {"plot"}:  # a plot step alone, with
            continue  # nothing to draw (its task would fail)
        if not there:
            why.append(
                f"{lay.point_dir} holds no results to plot (no output of load, fit, limit, "
                "inject or toyscan): add the steps that make them to steps.run (or --steps)."
            )
        elif not any(output_of(f, p.config, prods[p.name]) for f in there):
            why.append(
                f"{lay.point_dir} holds no results of this config to plot "
                f"({', '.join(f.name for f in there)} were made with other settings or "
                "inputs): add the steps that make them to steps.run (or --steps)."
            )
    if why:
        raise ConfigError(why)


def _plot_leaves_out(run_dir: Path, points: Sequence[Point], tasks: Sequence[Task]) -> list[str]:
    """One notice per output that a plot task of this run will leave out: lent by a step
    left out of the run and made with other settings or inputs than this config's (only
    the plot task's log said "not drawn", and the figures and HEPData of the step were
    gone after a run that ended "done": a newcomer audit)."""
    from gprpipe.pipeline.cache import output_of
    from gprpipe.pipeline.plan import Layout, producers

    out = []
    for p in points:
        steps = {t.step for t in tasks if t.point == p.name}
        if "plot" not in steps:
            continue
        lay = Layout(point_dir(run_dir, p))
        made = producers(p.name, lay.point_dir, p.config)
        for f in (lay.load, lay.fit, lay.limit, lay.inject, lay.toyscan):
            task = made.get(f)
            if task is None or task.step in steps or not f.is_file():
                continue
            if not output_of(f, p.config, made):
                out.append(
                    f"notice: {f} was made with other settings or inputs than this config's: "
                    f"the plot step leaves out its figures and tables (add '{task.step}' to "
                    "--steps to redraw them)."
                )
    return out


def _made_from_what_runs_anew(
    tasks: Sequence[Task],
    prods: Mapping[str, Mapping[Path, Task]],
    configs: Mapping[str, Config],
    current: Callable[[Task], bool],
) -> list[str]:
    """A task reading an output of a step left out of the run that was made from what a
    task of the run makes anew (``--steps load,inject`` after the data file changed: load
    reran, and inject computed on the fits of the old data and exited 0; a review): one
    sentence per point and step left out; ``current``: whether a producer's outputs are
    of this config (:func:`~gprpipe.pipeline.cache.made_by`). (A task forced to run again
    with the same inputs and settings makes them under the same key: what was made from
    them stays current.)"""
    from gprpipe.pipeline.cache import up_to_date

    planned = {t.id for t in tasks}
    anew: dict[str, bool] = {}

    def runs_anew(q: Task) -> bool:
        if q.id not in anew:
            anew[q.id] = not up_to_date([q], configs)
        return anew[q.id]

    why: list[str] = []
    said: set[tuple[str, str]] = set()
    for t in tasks:
        for f in t.inputs:
            made = prods[t.point].get(Path(f))
            if made is None or made.id in planned or (t.point, made.step) in said:
                continue
            if not Path(f).is_file() or not current(made):
                continue  # (said by unplanned_inputs: not there, or of other settings)
            stack, seen = [made], {made.id}
            while stack:
                u = stack.pop()
                for g in u.inputs:
                    q = prods[t.point].get(Path(g))
                    if q is None or q.id in seen:
                        continue
                    seen.add(q.id)
                    if q.id not in planned:
                        stack.append(q)
                    elif runs_anew(q) and (t.point, made.step) not in said:
                        said.add((t.point, made.step))
                        rel = Path(f).relative_to(made.point_dir).as_posix()
                        src = Path(g).relative_to(q.point_dir).as_posix()
                        why.append(
                            f"{t.id} reads {rel} of the {made.step} step, which steps.run "
                            f"leaves out, made from {src}, which {q.id} of this run makes "
                            f"anew (its inputs or settings changed): add '{made.step}' to "
                            "steps.run (or --steps)."
                        )
    return why


def refuse_set_unblind(
    overrides: Sequence[str], config: Path | None = None, text: str | None = None
) -> None:
    """Blinding is lifted only by ``run --unblind``, never by ``--set``: neither by
    ``base.blind=false`` (refused whatever the config says) nor by any value that renders
    a point of ``config`` (or of ``text`` standing for it) unblind that is blind without
    the overrides (``{{ false }}``, a key its Jinja2 reads). A config that loads only with
    some override (a data path) is blind when its base.blind as written is anything but
    false (true, or a template)."""
    from pydantic import TypeAdapter, ValidationError

    from gprpipe.config.loader import override_leaves

    def lifting(o: str) -> GprpipeError:
        return GprpipeError(
            f"--set {o}: blinding is lifted only by 'gprpipe run --unblind' (recorded in run.json)."
        )

    def says_false(value: object) -> bool:
        """Whether a base.blind value, as written, says false (read as the config's schema
        reads a bool)."""
        try:
            return TypeAdapter(bool).validate_python(value) is False
        except ValidationError:
            return False

    for o in overrides:
        try:
            if says_false(override_leaves(o).get("base.blind", True)):
                raise lifting(o)
        except ConfigError:
            continue  # not key=VALUE: the loader says so
    if config is None or not overrides:
        return
    try:
        blind: list[bool] | None = [p.config.base.blind for p in load_points(config, text=text)[1]]
    except GprpipeError:
        # it loads only with some override (a data path): judged by base.blind as written
        from gprpipe.config import load as load_merged

        try:
            merged = load_merged(config, (), text).data.get("base") or {}
            written = merged.get("blind", False) if isinstance(merged, dict) else True
        except GprpipeError:
            written = True  # (unreadable: the loader says why when the run loads it)
        if says_false(written):
            return
        blind = None  # written true, or a template: every point blind unless lifted
    if blind is not None and not any(blind):
        return
    try:
        with_set = [p.config.base.blind for p in load_points(config, overrides, text=text)[1]]
    except GprpipeError:  # the loader names the bad override when the run loads it
        return
    was = blind if blind is not None else [True] * len(with_set)
    if any(b and not s for b, s in zip(was, with_set, strict=True)):
        for o in overrides:  # the override without which every point stays blind
            rest = [x for x in overrides if x != o]
            try:
                alone = [p.config.base.blind for p in load_points(config, rest, text=text)[1]]
            except GprpipeError:
                continue
            if all(alone):
                raise lifting(o)
        raise lifting(" --set ".join(overrides))


def engine_for(name: str, config: Config, check: bool = True) -> Engine:
    """The engine ``name`` with the image settings of ``config`` (checked: its program
    and image exist)."""
    from gprpipe.engines import engine_for_config

    engine = engine_for_config(
        name,
        image=config.base.image,
        gpu=config.base.gpu,
        step_images={str(k): v for k, v in config.base.step_images.items()},
        check_version=config.base.check_image_version,
    )
    if check:
        engine.check()
    return engine


def refuse_non_utf8(run_dir: Path, where: str) -> None:
    """Refuse a run directory whose path is not UTF-8: its name is written into run.json
    and every point's config (the run crashed there, having written its lock)."""
    try:
        os.fsencode(run_dir).decode("utf-8")
    except UnicodeDecodeError:
        raise GprpipeError(
            f"{where}: the run directory {run_dir!s} holds bytes that are not UTF-8 (in its "
            "name or a parent folder's); run it in a folder whose path is UTF-8."
        ) from None


def refuse_foreign_folder(run_dir: Path, where: str) -> None:
    """A run writes into ``base.output`` (run.json, index.html, point folders) and may
    replace or remove its own files there: a folder that holds other files and no
    run.json is someone else's (``/``, a home folder, a project) and is refused in one
    sentence. Empty, new, or an earlier run's folder (or one a run began: its lock and
    point folders) are fine; a file (``/dev/null``) is no folder, said by validate too."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GprpipeError(f"{where}: {run_dir} is a file, not a folder for the run.")
    above = next((p for p in Path(os.path.abspath(run_dir)).parents if p.exists()), None)
    if not run_dir.exists() and above is not None and not above.is_dir():
        raise GprpipeError(  # (the run said "Not a directory" when it made the folder)
            f"{where}: {above} is a file: no folder for the run ({run_dir}) can be made in it."
        )
    ours = _a_runs_json(run_dir / RUN_JSON)
    if not run_dir.is_dir() or ours:
        return
    import re

    from gprpipe.executors.slurm.render import JOBS_FILE

    def a_runs(e: os.DirEntry[str]) -> bool:
        """Made by a run that stopped before it wrote run.json: a point folder (empty,
        its config.toml, or the temporary file of one being written), the SLURM folder
        (scripts, logs, jobs.json), a temporary file, the write probe, the lock. A folder
        merely named like a point or ``slurm`` may be someone's: the run would replace
        the files in it."""
        if e.name in (
            LOCK_NAME,
            LAUNCH_SPEC,
            LAUNCH_LOG,
            *LAUNCH_PREVIOUS.values(),
        ) or e.name.startswith((".gprpipe-", f".{RUN_JSON}.")):
            return True
        if e.name == "slurm" and e.is_symlink():
            return True  # (refused as a link out of the run, naming it, when it is used)
        if not e.is_dir(follow_symlinks=False):
            return False
        try:
            held = os.listdir(e.path)
        except OSError:
            return False
        if e.name == "slurm":
            return all(
                n in ("logs", JOBS_FILE)
                or n.startswith(".gprpipe-")
                or re.fullmatch(r"\d+_[\w.-]+\.sbatch", n)
                for n in held
            )
        return os.path.isfile(os.path.join(e.path, "config.toml")) or all(
            re.fullmatch(r"\.config\.toml\..+\.tmp", n) for n in held
        )

    try:
        foreign = sorted(e.name for e in os.scandir(run_dir) if not a_runs(e))
    except OSError:
        return  # (unreadable: making the run folder says why)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        which = (
            f"a {RUN_JSON} that gprpipe did not write"
            if (run_dir / RUN_JSON).exists()
            else f"no {RUN_JSON}"
        )
        raise GprpipeError(
            f"{where}: {run_dir} holds files of its own ({shown}) and {which}: it is no "
            "run folder; name a new or empty folder for the run, e.g. runs/{{ base.name }}."
        )


def _a_runs_json(path: Path) -> bool:
    """``path`` is a run.json that gprpipe wrote (a JSON object naming the gprpipe that
    wrote it), damaged or not (the next run rewrites it); another tool's file of that name
    is not: a run would overwrite it and write beside that tool's files (a review)."""
    try:
        text = read_record(path)  # (a FIFO there: not gprpipe's, and no wait)
    except (OSError, ValueError):
        return False
    if not text.strip():  # empty: nothing of another tool, a damaged one of gprpipe's
        return True
    try:
        data = loads_json(text)
    except ValueError:  # cut short or edited: gprpipe's begins by naming its version
        return text.lstrip().startswith('{\n  "gprpipe_version"')
    return isinstance(data, dict) and "gprpipe_version" in data


def make_run_dir(run_dir: Path, where: str) -> None:
    """Create the run directory, or say in one sentence why it cannot be (``where``: the
    file, line and key that set it)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GprpipeError(f"{where}: {run_dir} is a file, not a folder for the run.")
    refuse_non_utf8(run_dir, where)
    new = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # a new file of a name no one knows beforehand (O_EXCL): never through a link
        # someone placed at a name of its own (pid-named, it was)
        fd, probe = tempfile.mkstemp(prefix=".gprpipe-write-test-", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        for folder in new:  # a refused run leaves no folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise GprpipeError(
            f"{where}: cannot write the run directory {run_dir} ({exc.strerror or exc})."
        ) from None


# ---------------------------------------------------------------- run and rerun


@contextmanager
def _steps_named(steps: str | Sequence[str] | None) -> Iterator[None]:
    """Config errors of the block that name ``--set steps.run`` name ``--steps`` instead
    when the user chose the steps with it (the run gives the loader that override)."""
    try:
        yield
    except ConfigError as exc:
        from gprpipe.config.issues import Issue

        named = [isinstance(e, Issue) and e.where == "--set steps.run" for e in exc.issues]
        if steps is None or not any(named):
            raise
        given = steps if isinstance(steps, str) else ",".join(steps)
        issues = [
            replace(e, prefix=f"--steps {given}") if isinstance(e, Issue) and hit else e
            for e, hit in zip(exc.issues, named, strict=True)
        ]
        raise ConfigError(issues) from None


def run(
    config: Path, options: RunOptions | None = None, observer: RunObserver | None = None
) -> RunResult:
    """Run every (selected) grid point of ``config`` through its steps (see the module
    docstring). ``result.ok`` is False when a task or a table row failed."""
    from gprpipe.config import BlindingVaries, check_inputs
    from gprpipe.executors.registry import get_executor, queued_executors

    opts = options or RunOptions()
    _checked_wait(opts.wait_lock)
    obs = observer or RunObserver()
    overrides = list(opts.overrides)
    refuse_set_unblind(overrides, config)
    if opts.engine:
        overrides.append(f"base.engine={_checked_choice('engine', opts.engine)}")
    if opts.executor:
        overrides.append(f"base.executor={_checked_choice('executor', opts.executor)}")
    if opts.steps is not None:
        overrides.append("steps.run=" + json.dumps(_checked_steps(opts.steps)))
    if opts.jobs is not None:  # the task workers, and the plot task's figure workers
        overrides.append(f"base.jobs={int(opts.jobs)}")
    blind_in_config = False
    with _steps_named(opts.steps):  # --steps reaches the loader as --set steps.run
        if opts.unblind:
            try:
                _, as_written = load_points(config, overrides)
                blind_in_config = any(p.config.base.blind for p in as_written)
            except BlindingVaries:  # blind at some grid points: --unblind lifts it at all
                blind_in_config = True
            overrides.append("base.blind=false")
        loaded, all_points = load_points(config, overrides, check=True)
    points = select_points(all_points, opts.points)
    _refuse_missing_files(config, loaded, points)
    for line in config_notices(loaded, points):
        obs.notice(line)
    if any(p.config.base.blind and p.config.limit.global_toys > 0 for p in points):
        obs.notice(
            "notice: limit.global_toys: no look-elsewhere toys in a blinded run (their mean "
            "is a GP fit of every bin, windows included); they run once it is unblinded."
        )
    _refuse_unpassable_images((p.config, loaded.where) for p in points)
    cfg0 = points[0].config
    run_dir = run_dir_of(all_points, loaded)
    tasks = plan_points(run_dir, points, loaded.where)
    eng = engine_for(cfg0.base.engine, cfg0, check=not opts.dry_run)
    ex = get_executor(cfg0.base.executor, run_dir, eng, cfg0, jobs=opts.jobs)
    result = RunResult(run_dir, tasks, ex.name)

    def folder_checks() -> None:
        """What the folder's contents refuse (again under the lock: while this run
        waited for it, another may have run there, e.g. blinded)."""
        refuse_foreign_folder(run_dir, str(loaded.where("base.output")))
        _refuse_unplanned_inputs(run_dir, points, tasks)  # a dry run says it too
        _refuse_observed_exports(run_dir, points)
        if not opts.unblind:
            _refuse_silent_unblinding(run_dir, points)

    folder_checks()
    if replaced := _observed_replaced(run_dir, points):
        obs.notice(replaced)
    for line in _plot_leaves_out(run_dir, points, tasks):
        obs.notice(line)
    check_inputs(loaded, points)  # (a dry run too: a histogram the file lacks)
    if opts.dry_run:  # what a run would run: the tasks whose outputs are not fresh
        from gprpipe.pipeline.cache import up_to_date

        configs = {p.name: p.config for p in points}
        fresh = [] if opts.force else up_to_date(tasks, configs)
        todo = [t for t in tasks if t not in fresh]
        if opts.force:  # the lines the run runs (without it, a pasted line was cached)
            todo = [replace(t, argv=(*t.argv, "--force")) for t in todo]
        note = f"# up to date, not run again: {', '.join(t.id for t in fresh)}\n" if fresh else ""
        result.preview = note + (ex.preview(todo) if todo else "# nothing to run")
        return result
    ex.check()  # no sbatch here: said before the run folder is written
    if eng.name != "local":  # a folder a container cannot mount: said before, too
        from gprpipe.engines.base import mounts

        for t in tasks:
            mounts(t, run_dir, check_paths=False)
    make_run_dir(run_dir, str(loaded.where("base.output")))
    resume = cli_command("run", config, *_run_arguments(opts))
    if opts.force:
        resume += (
            " (without --force: the tasks not finished reuse their earlier outputs where "
            "those are up to date; with it every task runs again)"
        )
    with (
        run_lock(run_dir, command=opts.command, wait=opts.wait_lock, notice=obs.notice),
        _stoppable(run_dir) as stop,
    ):
        folder_checks()
        folder_was_blind = last_run_blind(run_dir)
        ex.refuse_if_busy(tasks)
        for name in queued_executors():  # jobs an earlier run of the folder left queued
            if name != ex.name:
                get_executor(name, run_dir, eng, cfg0).refuse_if_busy(tasks)
        write_point_configs(run_dir, points)
        info = new_run_info(
            run_dir,
            config.resolve(),
            overrides,
            points,
            tasks,
            engine=cfg0.base.engine,
            executor=cfg0.base.executor,
            command=opts.record,
            others=[p for p in all_points if p not in points],
        )
        info.data["blinding"] = {
            "blind": any(p.config.base.blind for p in points),
            "unblind_option": opts.unblind,
            # of the whole config (all grid points), as with --unblind
            "config_was_blind": blind_in_config
            if opts.unblind
            else any(p.config.base.blind for p in all_points),
            # the folder's last run: --unblind after --set base.blind=true lifts this
            "folder_was_blind": folder_was_blind,
        }
        # when runs of this folder computed observed results, whatever ran since: a
        # blinded run replaces them, and its record still says the folder was unblinded
        unblinded = earlier_unblinded_runs(run_dir)
        if not info.data["blinding"]["blind"]:
            unblinded.append(info.data["created"])
        info.data["blinding"]["unblinded_runs"] = unblinded
        info.save()
        configs = {p.name: p.config for p in points}
        _execute(
            ex,
            tasks,
            configs,
            info,
            result,
            obs,
            force=opts.force,
            wait=opts.wait,
            resume=resume,
            stop=stop,
        )
        if not result.queued or result.waited:
            if result.ok or not result.queued:
                result.failed_rows = failed_rows_of(tasks)
            result.ok = result.ok and not [r for r in result.failed_rows if not r.toys]
            _mark_reports_not_current(run_dir, obs)
    return result


def _mark_reports_not_current(run_dir: Path, obs: RunObserver) -> None:
    """Reports and indexes left of other results (this run had no plot step) say so in the
    page itself (:func:`~gprpipe.steps.report.mark_not_current`); a page that cannot be
    marked is said here (the summary says "not current" either way)."""
    from gprpipe.steps.report import mark_not_current

    try:  # every point of the run: the index is theirs together
        mark_not_current(run_dir)
    except (GprpipeError, OSError) as exc:
        why = str(exc) if isinstance(exc, GprpipeError) else os_error_sentence(exc)
        obs.notice(f"notice: a report of {run_dir} could not be marked not current: {why}")


def rerun(
    run_dir: Path,
    *,
    failed: bool = False,
    masses: str | None = None,
    jobs: int | None = None,
    wait: bool = False,
    wait_lock: float = 0.0,
    command: str = "gprpipe rerun",
    observer: RunObserver | None = None,
    record: Sequence[str] | None = None,
) -> RunResult | None:
    """Redo the failed tasks and those that never ran (``failed``) and/or those owning
    ``masses`` (``37MeV,48MeV``), and every task that follows them; None when no task
    matches. run.json keeps the command (``record``, default this process's) under
    ``reruns``, after the command that created the run."""
    from gprpipe.pipeline.plan import downstream

    if not failed and masses is None:
        raise GprpipeError("rerun needs --failed or --masses (e.g. --masses 37MeV,48MeV).")
    if masses is not None:
        parse_masses(masses, "--masses")  # an empty or wrong list, before the lock is taken
    _checked_wait(wait_lock)
    obs = observer or RunObserver()
    if not is_locked(run_dir):  # a run directory? (one in use may not have its run.json yet)
        load_run_info(run_dir)
    with (
        run_lock(run_dir, command=command, wait=wait_lock, notice=obs.notice),
        _stoppable(run_dir) as stop,
    ):
        run_dir = run_dir.absolute()
        info = load_run_info(run_dir)
        tasks, configs = tasks_of_run(info)
        check_inside(run_dir, tasks)  # as a run does: no write through a link out of it
        ex = _run_executor(run_dir, info, configs, jobs)
        chosen: set[str] = set()
        if failed:  # and what never ran (an interrupted run): the merges need those parts
            polled, states = _checked_states(ex, tasks)  # and what was damaged since it ran
            chosen |= {t.id for t in tasks if states[t.id][0] != "done" and not polled[t.id].active}
        if masses is not None:
            for m in parse_masses(masses, "--masses"):
                owners = [t for t in tasks if any(same_mass(x, m) for x in t.masses)]
                if not owners:
                    steps = list(dict.fromkeys(t.step for t in tasks))
                    why = (
                        f" (its last run planned only {', '.join(steps)}, and a rerun redoes "
                        "tasks of the last run: run the config again with its fit and limit "
                        "steps)"
                        if not any(t.masses for t in tasks)
                        else ""
                    )
                    raise GprpipeError(f"--masses: no task of {run_dir} owns {fmt_mass(m)}{why}.")
                chosen |= {t.id for t in owners}
        said: list[str] = []  # the notices of what is redone, once the rerun is sure
        chosen |= _stale_upstream(tasks, configs, chosen, said.append)
        if not chosen:
            return None
        todo = downstream(tasks, chosen)
        # the merges (and later tasks) a rerun adds read the other parts of their step too:
        # those of other settings are redone as well, or the merge refuses them
        while extra := _stale_upstream(tasks, configs, {t.id for t in todo}, said.append) - chosen:
            chosen |= extra
            todo = downstream(tasks, chosen)
        _refuse_unreadable_data(todo, configs)
        folders = {t.point: t.point_dir for t in todo}

        def in_file(folder: Path) -> Callable[[str], object]:
            return lambda key: f"{folder / 'config.toml'}: {key}"

        _refuse_unpassable_images(
            ((configs[point], in_file(d)) for point, d in folders.items()),
            str(info.data.get("engine", "local")),
        )
        for line in dict.fromkeys(said):
            obs.notice(line)
        ex.check()
        ex.refuse_if_busy(todo, others=False)  # before anything is said, recorded or cleared
        obs.rerunning(todo)
        ex.engine.check()
        result = RunResult(run_dir, todo, ex.name)
        info.data.setdefault("reruns", []).append(rerun_record(record, todo))
        info.save()  # before the tasks: the report a plot task writes shows it
        _execute(
            ex,
            todo,
            configs,
            info,
            result,
            obs,
            force=[t.id for t in todo],
            wait=wait,
            resume=cli_command("rerun", run_dir, "--failed"),
            resubmit=True,
            stop=stop,
        )
    return result


def _refuse_unreadable_data(todo: Sequence[Task], configs: dict[str, Config]) -> None:
    """The inputs of the points whose data the rerun reads again (its load, toyscan or
    inject tasks), checked as ``run`` checks them: a data file damaged or changed since
    the run failed its load task and skipped every task after it, the finished run turned
    failed (a review), where ``run`` refuses it in one sentence naming the key."""
    from gprpipe.config import check_config_inputs
    from gprpipe.config.checks import missing_config_files
    from gprpipe.config.issues import Loc
    from gprpipe.pipeline.plan import Layout

    points = {t.point: t.point_dir for t in todo if t.step in ("load", "toyscan", "inject")}
    for point, folder in points.items():
        file = str(Layout(folder).config)

        def where(key: str, file: str = file) -> Loc:
            return Loc(file=file, key=key)

        missing = missing_config_files([configs[point]], where)
        if missing:
            raise ConfigError(missing)
        check_config_inputs([configs[point]], where)


def _checked_states(
    ex: Executor, tasks: Sequence[Task]
) -> tuple[dict[str, TaskStatus], dict[str, tuple[str, str]]]:
    """The executor's view of ``tasks`` and their (state, message), in which a finished task
    whose outputs were damaged since is failed (:func:`~gprpipe.pipeline.commit.with_damage`)."""
    polled = ex.poll(tasks)
    states = {t.id: (polled[t.id].state, polled[t.id].message) for t in tasks}
    with_damage(tasks, states)
    return polled, states


def _stale_upstream(
    tasks: Sequence[Task],
    configs: dict[str, Config],
    chosen: set[str],
    notice: Callable[[str], None],
) -> set[str]:
    """The finished tasks that ``chosen`` tasks read from (directly or further up) whose
    outputs the run's config would no longer make (an input changed since, e.g. the data
    file), or whose outputs were damaged since they finished: a rerun redoes them too, or
    the chosen tasks would refuse their inputs again."""
    from gprpipe.pipeline.cache import made_by, made_with_other_settings
    from gprpipe.pipeline.commit import damage, read_commit

    by_id = {t.id: t for t in tasks}
    found: set[str] = set()
    seen = set(chosen)
    stack = [by_id[i] for i in chosen if i in by_id]
    while stack:
        for dep in stack.pop().deps:
            d = by_id.get(dep)
            if d is None or d.id in seen:
                continue
            seen.add(d.id)
            stack.append(d)
            if made_with_other_settings(d, configs[d.point]):
                why = (
                    "made by an earlier version of gprpipe's numerics"
                    if made_by(d, configs[d.point], any_version=True)
                    else "made with other settings or inputs than the run's config gives now "
                    "(by an earlier config's run, or a data file changed since)"
                )
                notice(f"notice: {d.id}: its outputs were {why}; running it again")
                found.add(d.id)
            elif read_commit(d) is not None and (why := damage(d)):  # committed, damaged
                notice(f"notice: {d.id}: {why} since it finished; running it again")
                found.add(d.id)
    return found


def _execute(
    ex: Executor,
    tasks: list[Task],
    configs: dict[str, Config],
    info: RunInfo,
    result: RunResult,
    obs: RunObserver,
    *,
    force: Sequence[str] | bool,
    wait: bool,
    resume: str,
    resubmit: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Run ``tasks`` with ``ex``: to their end (local; ``stop`` stops them), or queue them
    (and follow them with ``wait``); fills ``result``."""
    run_dir = result.run_dir
    if not ex.blocking:
        if stop is not None and stop.is_set():  # cancelled while the run was planned
            raise Interrupted(f"interrupted: nothing was submitted from {run_dir}.")
        try:
            result.report = ex.submit(
                tasks,
                configs=configs,
                force=force,
                resubmit=resubmit,
                hooks=Hooks(on_notice=obs.notice),
            )
        except KeyboardInterrupt:  # (the submission itself takes it at its end: every
            # job it queued is recorded, for status and cancel)
            if cancel_requested(run_dir):
                raise Interrupted(
                    f"stopped: gprpipe cancel is cancelling any {ex.name.upper()} jobs "
                    f"submitted from {run_dir}. See what was kept with: "
                    f"{cli_command('status', run_dir)}"
                ) from None
            raise Interrupted(
                f"interrupted; any {ex.name.upper()} jobs submitted from {run_dir} go on. "
                f"Watch them with: {cli_command('status', run_dir)}; stop them with: "
                f"{cli_command('cancel', run_dir)}"
            ) from None
        if not result.report.job_ids:  # every task up to date: nothing was queued
            return
        result.queued = True
        queued = [t for t in tasks if t.id not in result.report.outcomes]
        obs.submitted(ex.name, queued, result.report.job_ids, len(tasks) - len(queued))
        if wait:
            result.waited = True
            obs.started(tasks, ex.name)
            try:
                result.ok = ex.wait(tasks, progress=obs.queue)
            except KeyboardInterrupt:  # only the waiting stops: the jobs go on
                if cancel_requested(run_dir):  # unless gprpipe cancel stopped it
                    raise Interrupted(
                        f"stopped the wait: gprpipe cancel is cancelling the "
                        f"{ex.name.upper()} jobs of {run_dir}. See what was kept with: "
                        f"{cli_command('status', run_dir)}"
                    ) from None
                raise Interrupted(
                    f"interrupted the wait; the {ex.name.upper()} jobs of {run_dir} go on. "
                    f"Watch them with: {cli_command('status', run_dir)}; stop them with: "
                    f"{cli_command('cancel', run_dir)}"
                ) from None
            finally:
                obs.stopped()
            result.states = task_states(tasks)
        return
    clean_containers(ex.engine, run_dir, obs.notice)
    t0 = time.perf_counter()
    obs.started(tasks, ex.name)
    try:
        report = ex.submit(
            tasks,
            configs=configs,
            force=force,
            hooks=Hooks(
                on_update=obs.task_ended, on_notice=obs.notice, on_tick=obs.tick, stop=stop
            ),
        )
    except KeyboardInterrupt:
        states = ex.poll(tasks)  # the markers: what is really on disk
        kept = sum(states[t.id].state == "done" for t in tasks)
        stopped = len(tasks) - kept
        # the tasks have stopped: pages whose figures are not of the results kept now
        # (new tables, or figures redrawn before the plot task stopped) say so, as after
        # a run without a plot step (they kept their old tables without a word, a review)
        _mark_reports_not_current(run_dir, obs)
        raise Interrupted(
            f"interrupted: {kept} finished task{'s' * (kept != 1)} kept in {run_dir} "
            f"(a new run skips them); {stopped} not finished (stopped or not started). "
            f"Resume with: {resume}"
        ) from None
    finally:
        obs.stopped()
    result.wall = time.perf_counter() - t0
    timings = info.data.setdefault("timings", {})
    for tid, o in report.outcomes.items():
        timings[tid] = {"state": o.state, "seconds": round(o.seconds, 3)}
    info.data["wall_seconds"] = round(result.wall, 4)
    info.save()
    result.report = report
    result.ok = report.ok


def failed_rows_of(tasks: Sequence[Task]) -> list[FailedRows]:
    """The tables written by ``tasks`` that hold failed masses."""
    from gprpipe.results.summary import FailedRows, failed_rows

    out: list[FailedRows] = []
    seen: set[Path] = set()
    for t in tasks:
        for path in t.outputs:
            if path.suffix != ".csv" or path in seen or not path.is_file():
                continue
            seen.add(path)
            bad, total, first = failed_rows(path)
            if bad:
                out.append(FailedRows(path, bad, total, first))
    return out


def clean_containers(engine: Engine, run_dir: Path, notice: Callable[[str], None]) -> None:
    """Remove containers an earlier, killed run of ``run_dir`` left (under its lock)."""
    left = engine.cleanup(run_dir)
    if left:
        notice(
            f"notice: removed {len(left)} container(s) left by an earlier run of "
            f"{run_dir}: {', '.join(left)}"
        )


def _run_executor(
    run_dir: Path, info: RunInfo, configs: Mapping[str, Config], jobs: int | None = None
) -> Executor:
    """The executor (and engine, unchecked) that a recorded run used."""
    from gprpipe.executors.registry import get_executor

    cfg0 = next(iter(configs.values())) if configs else None
    if cfg0 is None:
        from gprpipe.config.schema import Config

        cfg0 = Config()
    eng = engine_for(info.data.get("engine", "local"), cfg0, check=False)
    return get_executor(info.data.get("executor", "local"), run_dir, eng, cfg0, jobs=jobs)


# ---------------------------------------------------------------- status, cancel, summary


@dataclass
class RunStatus:
    """Every task of a run and its state, from the executor the run recorded."""

    run_dir: Path
    executor: str
    tasks: list[Task]
    states: dict[str, tuple[str, str]]
    jobs: dict[str, str]  # task id -> the scheduler's job id of its latest submission
    in_use: str = ""  # who holds the run directory's lock now ('' when nobody)

    def counts(self) -> dict[str, int]:
        return count({k: v[0] for k, v in self.states.items()})

    def held(self) -> set[str]:
        """The tasks whose jobs SLURM holds in its queue: they never start unreleased."""
        from gprpipe.executors.slurm.reconcile import HELD

        return {tid for tid, (_, msg) in self.states.items() if msg.startswith(HELD)}

    def unanswered(self) -> int:
        """Submitted tasks whose state the scheduler did not give (squeue did not answer):
        their markers alone say pending or running."""
        from gprpipe.executors.slurm.reconcile import UNANSWERED

        return sum(msg == UNANSWERED for _, msg in self.states.values())


def jobs_elsewhere(run_dir: Path) -> str:
    """A sentence when the folder's ``slurm/jobs.json`` records the SLURM jobs of another
    folder (a copy of a run folder, or one moved while its jobs waited), else "": those
    jobs never run here, and status and cancel of this folder leave them alone."""
    from gprpipe.executors.slurm.jobs import jobs_path, recorded_elsewhere

    found = recorded_elsewhere(run_dir)
    if found is None:
        return ""
    where, ids = found
    return (
        f"notice: {jobs_path(run_dir)} records the SLURM jobs of {where} (this folder was "
        "copied or moved from there): they run there or not at all, never here, and "
        "status and cancel of this folder leave them alone"
        + (
            f" (once that run is gone, cancel any still queued with: scancel {' '.join(ids)})"
            if ids
            else ""
        )
        + "."
    )


def status(run_dir: Path, notice: Callable[[str], None] | None = None) -> RunStatus:
    """The run's task states. When no run holds the directory, containers of it that are
    still there are leftovers (the run and its watchdog were killed): they are removed.
    ``notice`` is also told of the jobs of another folder (:func:`jobs_elsewhere`)."""
    info, tasks, configs = run_plan(run_dir)
    if notice is not None and (elsewhere := jobs_elsewhere(run_dir)):
        notice(elsewhere)
    ex = _run_executor(run_dir, info, configs)
    # (the lock only where a killed run can leave containers: a run started meanwhile
    # was refused as "in use by gprpipe status", a race audit)
    if ex.owns_containers and ex.engine.leaves_containers and not is_locked(run_dir):
        try:
            with run_lock(run_dir, command="gprpipe status"):
                clean_containers(ex.engine, run_dir.absolute(), notice or (lambda line: None))
        except GprpipeError:
            pass  # a run started meanwhile: its containers are its own
    _, states = _checked_states(ex, tasks)
    return RunStatus(
        run_dir,
        str(info.data.get("executor", "local")),
        tasks,
        states,
        ex.job_ids_by_task(),
        in_use_by(run_dir),
    )


@dataclass
class Cancelled:
    """What :func:`cancel` stopped."""

    pids: list[int] = field(default_factory=list)  # run processes signalled
    marked: list[str] = field(default_factory=list)  # tasks marked failed
    jobs: list[str] = field(default_factory=list)  # scheduler jobs cancelled
    here: bool = False  # a run of this process was stopped through its stop event
    #: why tasks were not marked: their point or state folder leads outside the run
    unmarked: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # removed on this host (queued runs)

    @property
    def anything(self) -> bool:
        return bool(self.pids or self.marked or self.jobs or self.here or self.containers)


def cancel(
    run_dir: Path, *, pid: int | None = None, timeout: float = 10.0, why: str = "cancelled"
) -> Cancelled:
    """Stop the run of ``run_dir``: SIGTERM to the process holding its lock on this host
    (its tasks stop and are marked ``failed``) and to ``pid`` (a background launch, with
    its process group), SIGKILL after ``timeout`` s; tasks still marked running whose
    process is gone become ``failed`` (``why``); the run's scheduler jobs are cancelled.
    A run of this very process (a program running the service in another thread) is
    never signalled, which would stop the caller: its stop event stops its local tasks
    (its thread gets :class:`Interrupted`), and this returns once it let go of the run
    directory (at most ``timeout`` s); ``out.here`` says so. A lock this process holds
    other than through :func:`run` or :func:`rerun` is refused with a GprpipeError."""
    run_dir = Path(run_dir)
    out = Cancelled()
    targets: dict[int, bool] = {}  # pid -> signal its process group
    stop: threading.Event | None = None  # a run of this process
    if pid is not None and alive(pid):
        targets[pid] = _leads_group(pid)
    if is_locked(run_dir):
        h = holder(run_dir)
        if not h.get("host"):  # (no record: "pid ? on host ?" was called another host's)
            pids = sorted(flock_holders(run_dir) or ())
            who = f"process {', '.join(map(str, pids))} of this host" if pids else "a process"
            raise GprpipeError(
                f"{run_dir} is locked by {who} that left no record of itself (no gprpipe "
                "run): stop it, then try again."
            )
        if h.get("host") != socket.gethostname():
            raise GprpipeError(
                f"{run_dir} is in use by {describe(h)}, on another host: stop it there."
            )
        hpid = as_pid(h.get("pid"))
        held = flock_holders(run_dir)
        if held and hpid not in held:  # an edited record: signal the lock's holder, not it
            hpid = min(held)
        if hpid == os.getpid():  # never signalled: it would stop the caller
            a_run = str(h.get("command", "")).startswith(("gprpipe run", "gprpipe rerun"))
            with _STOPS_LOCK:
                stop = _STOPS.get(run_dir.resolve())
            if a_run and pid is None and stop is None:
                raise GprpipeError(
                    f"{run_dir} is held by this process (pid {hpid}) outside the run "
                    "service: it cannot be cancelled from here."
                )
        elif hpid and hpid not in targets:
            targets[hpid] = False
    with cancel_request(run_dir) if targets or stop is not None else contextlib.nullcontext():
        _cancel(run_dir, targets, stop, timeout, why, out)
    return out


def _cancel(
    run_dir: Path,
    targets: dict[int, bool],
    stop: threading.Event | None,
    timeout: float,
    why: str,
    out: Cancelled,
) -> None:
    """:func:`cancel` once it knows what to stop: ``targets`` (pid -> signal its process
    group) and ``stop`` (a run of this process); fills ``out``."""
    for p, group in targets.items():
        _signal(p, group, signal.SIGTERM)
        out.pids.append(p)
    info = load_run_info(run_dir, missing_ok=True)
    try:
        tasks, configs = run_plan(run_dir)[1:] if info is not None else ([], {})
    except GprpipeError as exc:  # (a point's config changed): its jobs are the run's still
        tasks, configs = [], {}
        slurm = info is not None and info.data.get("executor") == "slurm"
        also = "the run's SLURM jobs are cancelled all the same" if slurm else "not marked failed"
        out.unmarked.append(f"{exc} (its tasks: {also})")
    ex = _run_executor(run_dir, info, configs) if info is not None else None
    deadline = time.monotonic() + timeout
    if stop is not None:
        stop.set()
        out.here = True
        # a local run lets go of its directory once its tasks are stopped; a queued run
        # followed with ``wait`` ends when its jobs are cancelled below
        blocking = ex is not None and ex.blocking
        while blocking and is_locked(run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
    while any(alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p, group in targets.items():
        if alive(p):
            _signal(p, group, signal.SIGKILL)
    if ex is None:
        return
    kept, unmarked = _markable(run_dir, tasks)
    out.unmarked += unmarked
    out.marked = mark_cancelled(kept, timeout=timeout if targets else 0.0, why=why)
    out.jobs = ex.cancel(kept)  # every job of the run; markers only where they may be written
    if not ex.owns_containers and ex.engine.leaves_containers and not is_locked(run_dir):
        # a job's containers go with its TERM trap; a job killed without it (SIGKILL, the
        # OOM killer) left its container running, to commit after the cancel (a review):
        # those on this host are removed, under the run's lock (a later run's are its own)
        try:
            with run_lock(run_dir, command="gprpipe cancel"):
                out.containers = ex.engine.cleanup(run_dir.absolute())
        except GprpipeError:
            pass


def _markable(run_dir: Path, tasks: Sequence[Task]) -> tuple[list[Task], list[str]]:
    """The tasks whose point and state folders resolve inside ``run_dir`` (a marker written
    through a link would land elsewhere), and one sentence per point folder that does not."""
    refused = {
        folder: why
        for folder in dict.fromkeys(t.point_dir for t in tasks)
        if (why := unmarkable(run_dir, folder))
    }
    return [t for t in tasks if t.point_dir not in refused], list(refused.values())


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _signal(pid: int, group: bool, sig: int) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def config_of_run(run_dir: Path) -> tuple[Path | None, tuple[str, ...]]:
    """The config a run was made from (None when it is gone, or run.json is damaged) and
    ``--set`` values that act on that run again: its recorded overrides (but
    ``base.output``, and ``base.blind=false``: ``--unblind`` is given each time) and
    ``base.blind=true`` for a blinded run, then ``base.output=RUN_DIR``."""
    from gprpipe.pipeline.store import load_run_info

    try:
        info = load_run_info(run_dir)
    except GprpipeError:
        return None, ()
    data = info.data
    config, overrides = data.get("config"), data.get("overrides") or []
    blind = (data.get("blinding") or {}).get("blind") is True
    kept = [
        o
        for o in overrides
        if isinstance(o, str)
        and o != "base.blind=false"
        and o.partition("=")[0].strip() != "base.output"
    ]
    kept += ["base.blind=true"] * (blind and "base.blind=true" not in kept)
    kept.append(f"base.output={run_dir}")
    path = Path(config) if isinstance(config, str) else None
    return (path if path is not None and path.is_file() else None), tuple(kept)


def summary(run_dir: Path) -> RunSummary:
    """The run's summary, its task states as ``status`` gives them (the executor's view:
    a SLURM job that left the queue without a marker is failed, not running)."""
    from gprpipe.pipeline.summary import run_summary

    def poll(
        info: RunInfo, tasks: Sequence[Task], configs: Mapping[str, Config]
    ) -> dict[str, tuple[str, str]]:
        return _checked_states(_run_executor(run_dir, info, configs), tasks)[1]

    return run_summary(Path(run_dir), poll)


def summarise(run_dir: Path) -> list[str]:
    """The run's summary, as printed after a run."""
    from gprpipe.pipeline.summary import summary_lines

    return list(summary_lines(summary(Path(run_dir))))
