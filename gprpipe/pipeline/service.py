"""The run service: what a front end (the CLI, the TUI's Run pane) asks of a run.

- :func:`launch` / :func:`launch_rerun`: start ``gprpipe run`` / ``gprpipe rerun --failed``
  as a background process (own process group, output in a log): the run outlives the
  front end that started it.
- :class:`RunWatcher` (:func:`watch`): every task of a run and its state, from the
  executor that the run recorded in ``run.json`` (its markers, and SLURM's queue).
- :func:`cancel`: stop a launched run (its process group) and mark its tasks that were
  still running ``failed``; cancel the run's SLURM jobs.
- :func:`summarise`: the run's summary lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.errors import GprpipeError
from gprpipe.pipeline.state import read_marker, read_state, write_state
from gprpipe.pipeline.store import RUN_JSON, load_run_info, tasks_of_run
from gprpipe.pipeline.task import Task

STATES = ("done", "running", "failed", "pending")
LAUNCH_LOG = "tui-launch.log"


def run_argv(
    config: Path, overrides: Sequence[str], *, engine: str, executor: str, jobs: int
) -> list[str]:
    """``gprpipe run`` command line for a config (overrides as ``--set``)."""
    argv = [
        sys.executable,
        "-m",
        "gprpipe",
        "run",
        str(config),
        "--engine",
        engine,
        "--executor",
        executor,
        "-j",
        str(jobs),
    ]
    for o in overrides:
        argv += ["--set", o]
    return argv


def rerun_argv(run_dir: Path, *, jobs: int) -> list[str]:
    """``gprpipe rerun RUN_DIR --failed`` command line."""
    return [sys.executable, "-m", "gprpipe", "rerun", str(run_dir), "--failed", "-j", str(jobs)]


class Launch:
    """A ``gprpipe`` command started in the background (own process group), its output in
    ``log``. The run itself is independent of its front end: quitting leaves it running."""

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd or Path.cwd()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "w") as fh:
            fh.write("$ " + " ".join(self.argv) + "\n")
            fh.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def returncode(self) -> int | None:
        """None while running."""
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cancel(self, timeout: float = 5.0) -> None:
        """SIGTERM to the whole process group (the run and its task processes)."""
        if not self.running or self.proc is None:
            return
        self.cancelled = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def launch(
    config: Path, overrides: Sequence[str], run_dir: Path, *, engine: str, executor: str, jobs: int
) -> Launch:
    """Start ``gprpipe run`` for ``config`` in the background (log: RUN_DIR/tui-launch.log)."""
    started = Launch(
        run_argv(config, overrides, engine=engine, executor=executor, jobs=jobs),
        Path(run_dir) / LAUNCH_LOG,
    )
    started.start()
    return started


def launch_rerun(run_dir: Path, *, jobs: int) -> Launch:
    """Start ``gprpipe rerun RUN_DIR --failed`` in the background."""
    started = Launch(rerun_argv(run_dir, jobs=jobs), Path(run_dir) / LAUNCH_LOG)
    started.start()
    return started


def pid_gone(pid: object) -> bool:
    """True if process ``pid`` no longer runs: absent, or a zombie nobody reaped."""
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()  # type: ignore[call-overload]
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def mark_cancelled(
    tasks: Sequence[Task], timeout: float = 5.0, why: str = "cancelled from gprpipe tui"
) -> list[str]:
    """After a local cancel: tasks still marked running on this host whose process is
    gone become ``failed`` (``why``), so ``status`` and ``rerun --failed`` see them."""
    host = socket.gethostname()
    todo = []
    for t in tasks:
        if read_state(t.point_dir, t.slug)[0] != "running":
            continue
        info = read_marker(t.point_dir, t.slug, "running")
        if info.get("host") == host and not info.get("slurm_job"):
            todo.append((t, info.get("pid")))
    end = time.monotonic() + timeout
    marked: list[str] = []
    while todo:
        left = []
        for t, pid in todo:
            if pid_gone(pid):
                if read_state(t.point_dir, t.slug)[0] == "running":
                    write_state(t.point_dir, t.slug, "failed", why)
                    marked.append(t.id)
            else:
                left.append((t, pid))
        todo = left
        if not todo or time.monotonic() > end:
            break
        time.sleep(0.1)
    return marked


def cancel_jobs(run_dir: Path) -> list[str]:
    """Cancel the run's jobs in its scheduler (SLURM: every job of its submissions);
    returns their ids."""
    from gprpipe.executors import slurm

    return slurm.cancel(Path(run_dir))


@dataclass
class RunView:
    """Every task of a run and its state."""

    run_dir: Path
    tasks: list[Task] = field(default_factory=list)
    states: dict[str, tuple[str, str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    executor: str = "local"
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
            view.tasks = list(planned)
            view.states = {t.id: ("pending", "") for t in planned}
            view.logs = {t.id: t.log for t in planned}
            return view
        key = (str(rj), mtime)
        try:
            if key != self._key:
                info = load_run_info(Path(run_dir))
                assert info is not None
                self._tasks, _ = tasks_of_run(info)
                self._executor = str(info.data.get("executor", "local"))
                self._key = key
        except GprpipeError as exc:
            view.error = str(exc)
            view.tasks = list(planned)
            view.states = {t.id: ("pending", "") for t in planned}
            return view
        view.started = True
        view.executor = self._executor
        view.tasks = list(self._tasks)
        view.logs = {t.id: t.log for t in view.tasks}
        try:
            polled = executor_class(view.executor).poll_run(Path(run_dir), view.tasks)
        except (GprpipeError, OSError) as exc:
            from gprpipe.pipeline.store import task_states

            view.error = f"{view.executor.upper()}: {exc}"
            view.states = task_states(view.tasks)
            return view
        for tid, st in polled.items():
            if st.log is not None and st.log != view.logs.get(tid):
                view.logs[tid] = st.log
        view.states = {t.id: (polled[t.id].state, polled[t.id].message) for t in view.tasks}
        return view


def watch(run_dir: Path, planned: Sequence[Task] = ()) -> RunView:
    """A run's tasks and their states (one poll)."""
    return RunWatcher().poll(run_dir, planned)


def summarise(run_dir: Path) -> list[str]:
    """The run's summary, as printed after a run."""
    from gprpipe.pipeline.summary import run_summary, summary_lines

    return list(summary_lines(run_summary(Path(run_dir))))
