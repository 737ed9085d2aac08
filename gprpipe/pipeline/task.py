"""A task: one ``gprpipe step ...`` command line with declared inputs and outputs.

Engines wrap ``Task.argv`` (to run it in a container); executors schedule tasks (local
process pool, SLURM arrays). The same argv runs on a laptop, in a container and in a SLURM
array task, because every path in it is absolute and mounted at the same place.
"""

from __future__ import annotations

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
        return "__".join(self.id.split("/")[1:])

    @property
    def log(self) -> Path:
        return self.point_dir / "logs" / f"{self.slug}.log"
