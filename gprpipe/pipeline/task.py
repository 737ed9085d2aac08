"""A task: one ``gprpipe step ...`` command line with declared inputs and outputs.

Engines wrap ``Task.argv`` (to run it in a container); executors schedule tasks (local
process pool, SLURM arrays). The same argv runs on a laptop, in a container and in a SLURM
array task, because every path in it is absolute and mounted at the same place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Task:
    """One schedulable unit of work.

    ``id`` is unique within a run (``<point>/<step>[/<part>]``), and is also the stem of the
    task's log file and state markers. ``deps`` are ids of tasks that must finish first.
    """

    id: str
    point: str
    step: str  # load, fit, limit, inject, plot (chunked steps have a part and a merge task)
    point_dir: Path
    argv: tuple[str, ...]  # the gprpipe part: ("step", "fit", "--point-dir", ...)
    inputs: tuple[Path, ...] = ()
    outputs: tuple[Path, ...] = ()
    deps: tuple[str, ...] = ()
    part: str | None = None  # e.g. "2015-003" for chunk 3 of dataset 2015; None for whole
    masses: tuple[float, ...] = ()  # GeV, for per-mass chunks (rerun --masses selects on it)
    env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def slug(self) -> str:
        """File-name-safe name within the point folder (logs, markers): ``fit__2015-003``."""
        return slug_of(self.id)

    @property
    def log(self) -> Path:
        return self.point_dir / "logs" / f"{self.slug}.log"


#: the options of a task command line that take a value (``--force`` takes none)
_VALUED = ("--point-dir", "--part", "--task")


@dataclass(frozen=True)
class TaskLine:
    """A task command line, ``step NAME --point-dir DIR [--part P] [--task ID] [--force]``:
    written by the plan (``Task.argv``), run by SLURM jobs, containers and warm workers."""

    name: str
    point_dir: Path
    part: str | None = None
    task: str | None = None
    force: bool = False

    def argv(self) -> tuple[str, ...]:
        """The words after ``gprpipe``, in the order :meth:`parse` reads."""
        words = ["step", self.name, "--point-dir", str(self.point_dir)]
        if self.part:
            words += ["--part", self.part]
        if self.task:
            words += ["--task", self.task]
        if self.force:
            words.append("--force")
        return tuple(words)

    @classmethod
    def parse(cls, argv: Sequence[str]) -> TaskLine | None:
        """The task line ``argv`` states, or None if it is not in this form (each option
        once, a value that is not empty and not an option, ``--point-dir`` given)."""
        if len(argv) < 4 or argv[0] != "step" or not argv[1] or argv[1].startswith("-"):
            return None
        values: dict[str, str] = {}
        force = False
        rest = list(argv[2:])
        while rest:
            word = rest.pop(0)
            if word in values or (word == "--force" and force):
                return None
            if word == "--force":
                force = True
                continue
            if word not in _VALUED or not rest or not rest[0] or rest[0].startswith("-"):
                return None
            values[word] = rest.pop(0)
        if "--point-dir" not in values:
            return None
        return cls(
            name=argv[1],
            point_dir=Path(values["--point-dir"]),
            part=values.get("--part"),
            task=values.get("--task"),
            force=force,
        )


def slug_of(task_id: str) -> str:
    """The slug of a task id (``nominal/fit/2015-003`` -> ``fit__2015-003``)."""
    return "__".join(task_id.split("/")[1:])


def task_id_of(point: str, slug: str) -> str:
    """The task id of a slug in point ``point`` (the inverse of :func:`slug_of`)."""
    return "/".join([point, *slug.split("__")])
