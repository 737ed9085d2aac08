"""The executor interface: where and how the tasks of a plan run.

An :class:`Executor` serves one run directory with one engine: :meth:`~Executor.submit`
starts tasks (the local executor runs them to the end before it returns, SLURM queues
job arrays), :meth:`~Executor.poll` reports every task's state, :meth:`~Executor.wait`
blocks until none is active, :meth:`~Executor.cancel` stops what is queued. Executors
are registered by name (:func:`register`, :func:`get_executor`); each takes its settings
from its own section of the config (:meth:`Executor.from_config`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

from gprpipe.pipeline.task import Task

if TYPE_CHECKING:
    from gprpipe.config.schema import Config
    from gprpipe.engines.base import Engine

#: one BLAS thread per task, whatever the executor
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class TaskStatus:
    """State of one task as an executor sees it."""

    id: str
    state: str  # pending, running, done, failed
    message: str = ""
    job: str | None = None  # the scheduler's id of the task (SLURM array element "123_4")
    slurm_state: str | None = None  # the scheduler's own state of that job, if known
    log: Path | None = None
    active: bool = False  # still pending/running in the scheduler (wait() blocks on it)
    # a live process of this host that runs the task outside the scheduler (by hand)
    by_hand: int | None = None


@dataclass
class Outcome:
    """How one task ended in a run of the local executor."""

    state: str  # done | cached | failed | skipped
    seconds: float = 0.0
    message: str = ""


@dataclass
class RunReport:
    """What :meth:`Executor.submit` did: per task its outcome (blocking executors), or
    the scheduler's job ids (queueing executors)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    job_ids: dict[str, str] = field(default_factory=dict)

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes.values())

    @property
    def ok(self) -> bool:
        return not any(o.state in ("failed", "skipped") for o in self.outcomes.values())


@dataclass
class Hooks:
    """Callbacks of a blocking run: a task ended; a line to show; tasks are running; and
    ``stop``, an event that, once set, stops the run's tasks as Ctrl-C would (a cancel
    from another thread of the same process, which signals cannot reach)."""

    on_update: Callable[[Task, Outcome], None] | None = None
    on_notice: Callable[[str], None] | None = None
    on_tick: Callable[[list[Task]], None] | None = None
    stop: threading.Event | None = None


class Executor(ABC):
    """Runs the tasks of one run directory with one engine."""

    name: ClassVar[str]
    #: True: submit() returns when every task has ended (local); False: it queues them
    blocking: ClassVar[bool]

    def __init__(self, run_dir: Path, engine: Engine) -> None:
        self.run_dir = Path(run_dir)
        self.engine = engine

    @classmethod
    @abstractmethod
    def from_config(
        cls, run_dir: Path, engine: Engine, config: Config, **overrides: object
    ) -> Executor:
        """The executor with the settings of its section of ``config`` (``overrides``,
        e.g. ``jobs`` from the command line, win)."""

    @abstractmethod
    def submit(
        self,
        tasks: Sequence[Task],
        *,
        configs: dict[str, Config] | None = None,
        force: Sequence[str] | bool = False,
        resubmit: bool = False,
        hooks: Hooks | None = None,
    ) -> RunReport:
        """Start ``tasks`` (plan order; dependencies first). ``force``: every task (True)
        or the ids of tasks to redo whatever their cache says; ``resubmit``: the tasks
        were submitted before (a rerun)."""

    def poll(self, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
        """Every task's state (markers, and the scheduler's view where there is one)."""
        return self.poll_run(self.run_dir, tasks)

    @classmethod
    @abstractmethod
    def poll_run(cls, run_dir: Path, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
        """:meth:`poll` for a run directory, without an engine (watchers, ``status``)."""

    def wait(
        self, tasks: Sequence[Task], progress: Callable[[dict[str, str]], object] | None = None
    ) -> bool:
        """Block until no task is active; True when every task is done."""
        states = self.poll(tasks)
        if progress is not None:
            progress({k: s.state for k, s in states.items()})
        return all(s.state == "done" for s in states.values())

    def cancel(self, tasks: Sequence[Task] = ()) -> list[str]:
        """Stop the run's queued and running jobs (``tasks``: the run's, whose states it may
        settle); returns the ids of the scheduler's jobs it stopped ([] for executors whose
        tasks stop with the run's own process)."""
        return []

    def refuse_if_busy(  # noqa: B027 - none by default
        self, tasks: Sequence[Task], *, others: bool = True
    ) -> None:
        """Raise GprpipeError while ``tasks`` are still active elsewhere, and (``others``)
        any other job of the folder: a new plan's run must not meet an earlier plan's jobs,
        while a rerun may join the run whose tasks it follows."""

    def check(self) -> None:  # noqa: B027 - nothing to check by default
        """Raise GprpipeError when this machine cannot run the executor (no ``sbatch``),
        before a run writes anything."""

    def job_ids_by_task(self) -> dict[str, str]:
        """Task id -> the scheduler's job id of its latest submission ({} without one)."""
        return {}

    def preview(self, tasks: Sequence[Task]) -> str:
        """What :meth:`submit` would run (``--dry-run``)."""
        import shlex

        lines = [f"# {len(tasks)} tasks, run directory {self.run_dir}"]
        for t in tasks:
            deps = f"  (after {', '.join(t.deps)})" if t.deps else ""
            lines.append(f"# {t.id}{deps}")
            lines.append(
                shlex.join(
                    self.engine.command(t, run_dir=self.run_dir, env=THREAD_ENV, check_paths=False)
                )
            )
        return "\n".join(lines)

    @property
    def owns_containers(self) -> bool:
        """Whether containers of this run's tasks belong to this machine's run process
        (they are then leftovers when no run holds the directory)."""
        return self.blocking


_E = TypeVar("_E", bound=type[Executor])
EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: _E) -> _E:
    """Class decorator: make an executor available under its ``name``."""
    EXECUTORS[cls.name] = cls
    return cls
