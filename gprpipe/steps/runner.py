"""Run one task of a point: ``gprpipe step NAME --point-dir DIR [--part P]``.

The task re-derives itself from the point's ``config.toml`` (the plan is a pure function
of the config), writes its state markers, skips itself when its output already holds its
cache key, and reports user mistakes as one sentence (exit 1).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gprpipe.config import point_config_from_file
from gprpipe.config.loader import read_config_text
from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError, os_error_sentence, resolved
from gprpipe.io.atomic import confined, remove_stale_temps
from gprpipe.io.hdf5 import provenance, sha256_file
from gprpipe.pipeline.cache import freshness, made_with_other_settings, task_key
from gprpipe.pipeline.commit import clear_commit, verify_inputs, write_commit
from gprpipe.pipeline.plan import Layout, find_task, plan_point, producers
from gprpipe.pipeline.state import write_progress, write_state
from gprpipe.pipeline.store import check_point_config
from gprpipe.pipeline.task import Task, TaskLine


@dataclass
class StepContext:
    """What a step function gets: its task, the point config, where to write, its key."""

    task: Task
    config: Config
    layout: Layout
    cache_key: str
    config_sha256: str
    #: files written besides ``task.outputs`` (the plots): committed with them
    written: list[Path] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _last: float = 0.0

    def attrs(self) -> dict[str, str | bool]:
        """Provenance attrs of every output, and whether it is blinded."""
        return {
            **provenance(self.cache_key, self.config_sha256),
            "blinded": bool(self.config.base.blind),
        }

    def progress(self, done: int, total: int, unit: str) -> None:
        """Record progress within the task (at most twice a second, always the last)."""
        now = time.time()
        if done < total and now - self._last < 0.5:
            return
        self._last = now
        with contextlib.suppress(OSError):  # informative only: never fail a task for it
            write_progress(self.task.point_dir, self.task.slug, done, total, unit, self.started)


def seed_for(base_seed: int, *parts: str | float | int) -> np.random.SeedSequence:
    """A seed that depends only on the master seed and names (dataset, mass, strength...).

    Masses enter in keV so that a result never depends on chunking or worker count.
    """
    words = [int(base_seed)]
    for p in parts:
        if isinstance(p, float):
            words.append(round(p * 1e6))
        elif isinstance(p, int):
            words.append(p)
        else:
            words.append(zlib.crc32(str(p).encode()))
    return np.random.SeedSequence(words)


StepFunc = Callable[[StepContext], None]


def step_function(step: str) -> StepFunc:
    """The ``run(ctx)`` function of ``gprpipe.steps.<step>``."""
    return importlib.import_module(f"gprpipe.steps.{step}").run


def _point_plan(point_dir: Path, point: str | None = None) -> tuple[Path, Config, list[Task]]:
    """The point folder (resolved), its config and its plan (tasks named ``point``,
    default the folder's name)."""
    point_dir = resolved(point_dir)
    config_path = Layout(point_dir).config
    if not config_path.is_file():
        raise GprpipeError(f"{point_dir}: not a point folder of a gprpipe run (no config.toml).")
    text = read_config_text(config_path)  # read once: the text checked is the text used
    # edited by hand since its run wrote it: a task would compute with a config that the
    # run's record, status, summary and the exports refuse (a blinded run unblinded so)
    check_point_config(point_dir, text, damaged_ok=True)
    config = point_config_from_file(config_path, text)
    return point_dir, config, plan_point(point or point_dir.name, point_dir, config)


def resolve_task(
    point_dir: Path, step: str, part: str | None, task_id: str | None
) -> tuple[Task, Config]:
    point_dir, config, plan = _point_plan(point_dir, task_id.split("/")[0] if task_id else None)
    tid = task_id or f"{point_dir.name}/{step}" + (f"/{part}" if part else "")
    task = find_task(plan, tid)
    if task is None:
        raise GprpipeError(f"{point_dir}: no task {tid!r} in this point's plan.")
    if task.step != step or (part is not None and task.part != part):
        said = step + (f" --part {part}" if part is not None else "")
        raise GprpipeError(
            f"--task {tid}: a task of step {task.step}"
            + (f", part {task.part}" if task.part else "")
            + f", not of {said}; give the task's own step and part."
        )
    return task, config


def part_of_masses(point_dir: Path, step: str, masses: str, dataset: str | None = None) -> str:
    """The part of ``step`` (of ``dataset``, or ``combined``) that owns every mass of
    ``masses`` (``37MeV,48MeV``): what ``gprpipe step NAME --masses`` runs (a task is a
    chunk of masses, never a subset)."""
    from gprpipe.units import fmt_mass, parse_masses, same_mass

    def dataset_of(t: Task) -> str:  # a chunk's part is DATASET-NNN
        return str(t.part).rsplit("-", 1)[0]

    point_dir, _, plan = _point_plan(point_dir)
    chunks = [t for t in plan if t.step == step and t.masses]
    if not chunks:
        raise GprpipeError(f"--masses: step {step} of {point_dir} has no per-mass tasks.")
    if dataset is not None:
        names = sorted({dataset_of(t) for t in chunks})
        chunks = [t for t in chunks if dataset_of(t) == dataset]
        if not chunks:
            raise GprpipeError(
                f"--dataset {dataset}: step {step} of {point_dir} has tasks of "
                f"{', '.join(names)} only."
            )
    owners: dict[str, Task] = {}
    for m in parse_masses(masses, "--masses"):
        hit = [t for t in chunks if any(same_mass(x, m) for x in t.masses)]
        if not hit:
            raise GprpipeError(f"--masses: no {step} task of {point_dir} owns {fmt_mass(m)}.")
        owners |= {t.id: t for t in hit}
    if len(owners) > 1:
        parts = ", ".join(str(t.part) for t in owners.values())
        datasets = {dataset_of(t) for t in owners.values()}
        how = "name one with --dataset" if len(datasets) > 1 else "run one chunk at a time (--part)"
        raise GprpipeError(
            f"--masses {masses}: the masses belong to {len(owners)} tasks ({parts}); {how}, "
            "or gprpipe rerun RUN_DIR --masses for all of them."
        )
    (task,) = owners.values()
    return str(task.part)


def remove_task_temps(task: Task) -> None:
    """Remove temporary files that a killed earlier attempt of ``task`` left behind (only
    while the task is not running elsewhere: it owns its outputs)."""
    for out in task.outputs:
        remove_stale_temps(out)
    plots = Layout(task.point_dir).plots
    if task.step == "plot" and plots.is_dir():  # the plot task owns plots/
        for tmp in plots.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _refuse_other_settings(task: Task, made: dict[Path, Task], config: Config) -> None:
    """An input that its task committed under other settings or inputs (an earlier
    config's, left because its task failed or was stopped in this run: a SLURM merge
    starts after its chunks however they ended) is not computed on. (The SLURM executor
    also clears the commit records of the tasks it submits, which covers containers,
    where the producer's own inputs may not be at hand to judge it.)"""
    for p in task.inputs:
        producer = made.get(Path(p))
        if task.step == "plot" and producer is not None and producer.step not in config.steps.run:
            continue  # a step left out: the plot draws of its outputs what is this config's
        if producer is not None and made_with_other_settings(producer, config):
            raise GprpipeError(
                f"{p}: made by {producer.id} with other settings or inputs than this "
                "config (its task did not run to the end in this run?); run the point "
                "again to recompute it"
            )


def run_task(
    point_dir: Path,
    step: str,
    part: str | None = None,
    task_id: str | None = None,
    force: bool = False,
) -> int:
    """Run one task; returns the exit code (0 done or cached, 1 failed). Its writes stay in
    the run directory (:func:`~gprpipe.io.atomic.confined`)."""
    task: Task | None = None
    try:  # (a point folder that is a link leading back to itself: one sentence)
        run_dir = resolved(point_dir).parent
    except GprpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with confined(run_dir):
        try:
            task, config = resolve_task(point_dir, step, part, task_id)
            return _run(task, config, force)
        except GprpipeError as exc:
            msg = str(exc)
            print(f"error: {msg}", file=sys.stderr)
        except Exception as exc:  # a bug: keep the traceback in the task log
            traceback.print_exc()
            msg = os_error_sentence(exc) or (
                f"internal error in step {step}: {type(exc).__name__}: {exc}"
            )
            print(f"error: {msg}", file=sys.stderr)
        if task is not None:
            try:  # one line: readers of the marker show its last (a message may hold lines)
                write_state(task.point_dir, task.slug, "failed", _one_line(msg))
            except GprpipeError as exc:  # its .state folder led out of the run
                print(f"error: {exc}", file=sys.stderr)
    return 1


def _one_line(msg: str) -> str:
    """``msg`` with its lines joined by "; " (a marker's message is one line)."""
    return "; ".join(line.strip() for line in msg.splitlines() if line.strip()) or msg


def _run(task: Task, config: Config, force: bool) -> int:
    """:func:`run_task` once the task is known: its outputs (0), or cached (0)."""
    write_state(task.point_dir, task.slug, "running")
    remove_task_temps(task)
    t0 = time.perf_counter()
    fresh, notice = (False, "") if force else freshness(task, config)
    if fresh:
        print(f"{task.id}: cached (inputs and config unchanged)")
        write_state(task.point_dir, task.slug, "done", "cached")
        return 0
    if notice:
        print(f"notice: {task.id}: {notice}; running the task again")
    clear_commit(task)  # from here on, the old outputs are not fresh
    made = producers(task.point, task.point_dir, config)
    verify_inputs(task, made)
    _refuse_other_settings(task, made, config)
    layout = Layout(task.point_dir)
    ctx = StepContext(task, config, layout, task_key(task, config), sha256_file(layout.config))
    step_function(task.step)(ctx)
    if task_key(task, config) != ctx.cache_key:  # e.g. the data file rewritten meanwhile
        raise GprpipeError(
            f"{task.id}: an input changed while the task ran (e.g. a data file being "
            "rewritten), so what it read may not be what its cache key names; its "
            "outputs are not committed: run it again once the input is final."
        )
    write_commit(task, ctx.cache_key, ctx.written)  # last: the outputs count from now
    dt = time.perf_counter() - t0
    print(f"{task.id}: done in {dt:.2f} s")
    write_state(task.point_dir, task.slug, "done", f"{dt:.3f} s")
    return 0


def run_argv(argv: Sequence[str]) -> int:
    """Run a task from its command line (:class:`~gprpipe.pipeline.task.TaskLine`, what
    ``gprpipe step`` runs): the entry of the warm local workers, which thereby need no
    command-line layer."""
    line = TaskLine.parse(argv)
    if line is None:  # the plan wrote argv: a mistake is a bug
        print(f"error: not a task command line: {' '.join(argv)}", file=sys.stderr)
        return 2
    return run_task(line.point_dir, line.name, line.part, line.task, line.force)
