"""Executors by name: :func:`executor_class` and :func:`get_executor` (the executors
register themselves in :data:`gprpipe.executors.base.EXECUTORS` when imported)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gprpipe.errors import GprpipeError
from gprpipe.executors.base import EXECUTORS, Executor

if TYPE_CHECKING:
    from gprpipe.config.schema import Config
    from gprpipe.engines.base import Engine


def _registered() -> dict[str, type[Executor]]:
    import gprpipe.executors.local
    import gprpipe.executors.slurm  # noqa: F401 - both register themselves

    return EXECUTORS


def executor_class(name: str) -> type[Executor]:
    """The registered executor called ``name``."""
    executors = _registered()
    key = name.strip().lower()
    if key not in executors:
        raise GprpipeError(
            f"unknown executor {name!r}: choose one of {', '.join(sorted(executors))}"
        )
    return executors[key]


def queued_executors() -> list[str]:
    """The names of the registered executors that queue their tasks (a scheduler holds
    them after the run's process has returned)."""
    return sorted(n for n, cls in _registered().items() if not cls.blocking)


def get_executor(
    name: str, run_dir: Path, engine: Engine, config: Config, **overrides: object
) -> Executor:
    """The executor ``name`` for ``run_dir``, set up from its section of ``config``."""
    return executor_class(name).from_config(run_dir, engine, config, **overrides)
