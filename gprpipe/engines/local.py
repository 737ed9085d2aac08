"""The local engine: run the task with this Python (``python -m gprpipe step ...``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from gprpipe.engines.base import Engine
from gprpipe.pipeline.task import Task


class LocalEngine(Engine):
    """``[sys.executable, "-m", "gprpipe", *task.argv]``; the executor sets the env."""

    name = "local"

    def __init__(self, *, check_version: bool = True) -> None:
        self.image = None
        self.gpu = False
        self.check_version = check_version

    def command(
        self,
        task: Task,
        *,
        run_dir: Path,
        env: Mapping[str, str],
        check_paths: bool = True,
    ) -> list[str]:
        return [sys.executable, "-m", "gprpipe", *task.argv]
