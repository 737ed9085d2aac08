"""Watching a run: every task of a run directory and its state, as its executor sees it.

:class:`RunWatcher` reads the plan from ``run.json`` (cached per version of the file) and
polls the executor that the run recorded (its markers, and SLURM's queue); a front end
shows the :class:`RunView` it returns and derives no state of its own. :func:`mark_cancelled`
records ``failed`` for the tasks of a stopped local run whose process is gone.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.errors import GprpipeError
from gprpipe.io.processes import alive
from gprpipe.pipeline.commit import with_damage
from gprpipe.pipeline.plan import RUN_JSON
from gprpipe.pipeline.state import (
    progress_text,
    read_marker,
    read_progress,
    read_state,
    write_state,
)
from gprpipe.pipeline.store import run_plan, task_states
from gprpipe.pipeline.task import Task

STATES = ("done", "running", "failed", "pending")
#: seconds between two checks of the finished tasks' outputs while a run is watched
DAMAGE_PERIOD = 5.0


@dataclass
class RunView:
    """Every task of a run, its state and, while it runs, its progress text."""

    run_dir: Path
    tasks: list[Task] = field(default_factory=list)
    states: dict[str, tuple[str, str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    progress: dict[str, str] = field(default_factory=dict)  # running task id -> "3/5 masses..."
    executor: str = "local"
    queued: bool = False  # its executor queues the tasks (a scheduler is asked for states)
    started: bool = False  # run.json exists
    error: str = ""

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for s, _ in self.states.values():
            out[s] = out.get(s, 0) + 1
        return out

    @property
    def finished(self) -> bool:
        return bool(self.tasks) and all(s in ("done", "failed") for s, _ in self.states.values())

    @property
    def all_done(self) -> bool:
        return bool(self.tasks) and all(s == "done" for s, _ in self.states.values())


class RunWatcher:
    """Reads a run's task states through its executor; caches the plan per ``run.json``
    version."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._tasks: list[Task] = []
        self._executor = "local"
        # task id -> (signature, why, its done marker's identity)
        self._damage: dict[str, tuple[object, str, object]] = {}
        self._damage_checked = -float("inf")  # time.monotonic() of the last full check
        self._full_check = True  # this poll checks every finished task

    def _damage_of(self, task: Task) -> str:
        """:func:`~gprpipe.pipeline.commit.damage` of a finished task, from a memo: a task
        newly done (also done anew: its done marker written again, a redo no poll saw
        running) is checked at once, the others every :data:`DAMAGE_PERIOD` seconds by a
        ``stat`` of their files (their sha256 again only when that changed)."""
        from gprpipe.pipeline.commit import damage, damage_signature, done_marker_id

        known = self._damage.get(task.id)
        marker = done_marker_id(task)
        if known is not None and not self._full_check and known[2] == marker:
            return known[1]
        sig = damage_signature(task)
        if known is not None and known[0] == sig and known[2] == marker:
            why = known[1]
        else:
            why = damage(task)
        self._damage[task.id] = (sig, why, marker)
        return why

    def poll(self, run_dir: Path, planned: Sequence[Task] = ()) -> RunView:
        """States of the run's tasks (``planned`` ones, all pending, before run.json exists)."""
        from gprpipe.executors.registry import executor_class

        view = RunView(Path(run_dir))
        rj = Path(run_dir) / RUN_JSON
        try:
            mtime = rj.stat().st_mtime
        except OSError:
            mtime = None
        if mtime is None:
            return _pending(view, planned)
        key = (str(rj), mtime)
        try:
            if key != self._key:
                info, self._tasks, _ = run_plan(Path(run_dir))
                self._executor = str(info.data.get("executor", "local"))
                self._key = key
        except GprpipeError as exc:  # no task state: the TUI showed the planned tasks
            view.error = str(exc)  # pending beside it, of a finished run (a newcomer audit)
            return view
        view.started = True
        view.executor = self._executor
        view.tasks = list(self._tasks)
        view.logs = {t.id: t.log for t in view.tasks}
        try:
            ex = executor_class(view.executor)
            view.queued = not ex.blocking
            polled = ex.poll_run(Path(run_dir), view.tasks)
        except (GprpipeError, OSError) as exc:
            view.error = f"{view.executor.upper()}: {exc}"
            view.states = task_states(view.tasks)
        else:
            for tid, st in polled.items():
                if st.log is not None and st.log != view.logs.get(tid):
                    view.logs[tid] = st.log
            view.states = {t.id: (polled[t.id].state, polled[t.id].message) for t in view.tasks}
        now = time.monotonic()  # (a finished task damaged since is failed, as status says)
        self._full_check = now - self._damage_checked >= DAMAGE_PERIOD
        if self._full_check:
            self._damage_checked = now
        with_damage(view.tasks, view.states, self._damage_of)
        for t in view.tasks:
            if view.states[t.id][0] == "running":
                text = progress_text(read_progress(t.point_dir, t.slug))
                if text:
                    view.progress[t.id] = text
        return view


def _pending(view: RunView, planned: Sequence[Task]) -> RunView:
    view.tasks = list(planned)
    view.states = {t.id: ("pending", "") for t in planned}
    view.logs = {t.id: t.log for t in planned}
    return view


def watch(run_dir: Path, planned: Sequence[Task] = ()) -> RunView:
    """A run's tasks and their states (one poll)."""
    return RunWatcher().poll(run_dir, planned)


def mark_cancelled(
    tasks: Sequence[Task], timeout: float = 5.0, why: str = "cancelled"
) -> list[str]:
    """After a local run was stopped: tasks still marked running on this host whose process
    is gone become ``failed`` (``why``), so ``status`` and ``rerun --failed`` see them."""
    host = socket.gethostname()
    todo = []
    for t in tasks:
        if read_state(t.point_dir, t.slug)[0] != "running":
            continue
        info = read_marker(t.point_dir, t.slug, "running")
        if info.get("host") == host and not info.get("slurm_job"):
            todo.append((t, info.get("pid"), info.get("pid_started")))
    end = time.monotonic() + timeout
    marked: list[str] = []
    while todo:
        left = []
        for t, pid, started in todo:
            if not alive(pid, started):
                if read_state(t.point_dir, t.slug)[0] == "running":
                    write_state(t.point_dir, t.slug, "failed", why)
                    marked.append(t.id)
            else:
                left.append((t, pid, started))
        todo = left
        if not todo or time.monotonic() > end:
            break
        time.sleep(0.1)
    return marked
