"""Engines: how a task's command runs (local Python, Docker, Podman, Apptainer).

``get_engine(name, image=..., gpu=..., check_version=...)`` returns an :class:`Engine`;
executors call ``engine.check()`` once before scheduling, then ``engine.command(task,
run_dir=..., env=...)`` for each task and run the returned argument list. See the module
docstrings of :mod:`.oci` and :mod:`.apptainer` for the exact command lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from gprpipe.engines.apptainer import ApptainerEngine
from gprpipe.engines.base import (
    PROVENANCE_VARS,
    VERSION_LABEL,
    Engine,
    build_command,
    default_image,
)
from gprpipe.engines.local import LocalEngine
from gprpipe.engines.oci import DockerEngine, OciEngine, PodmanEngine
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.task import Task

ENGINE_NAMES = ("local", "docker", "podman", "apptainer")


def get_engine(
    name: str,
    *,
    image: str | None = None,
    gpu: bool = False,
    check_version: bool = True,
) -> Engine:
    """The engine called ``name``; it is not checked here (call ``engine.check()``).

    ``image`` is ignored by the local engine; None means the default image
    (``localhost/gprpipe:<version>``, or ``gprpipe_<version>.sif`` for apptainer).
    One engine serves one image: use one engine per distinct (per-step) image.
    """
    key = name.strip().lower()
    if key == "local":
        return LocalEngine(check_version=check_version)
    if key == "docker":
        return DockerEngine(image=image, gpu=gpu, check_version=check_version)
    if key == "podman":
        return PodmanEngine(image=image, gpu=gpu, check_version=check_version)
    if key in ("apptainer", "singularity"):
        return ApptainerEngine(image=image, gpu=gpu, check_version=check_version)
    raise GprpipeError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}")


class StepImages(Engine):
    """A container engine that runs some steps in their own image (``base.step_images``).

    Tasks of a step named in ``images`` run in that step's image; the others in the default
    engine's image. The engine of each image is built once and checked by :meth:`check`.
    """

    def __init__(self, default: Engine, images: Mapping[str, Engine]) -> None:
        self.default = default
        self.images = dict(images)
        self.name = default.name  # type: ignore[misc]
        self.image = default.image
        self.leaves_containers = default.leaves_containers
        self.gpu = default.gpu
        self.check_version = default.check_version

    def engine_for(self, task: Task) -> Engine:
        return self.images.get(task.step, self.default)

    def command(
        self, task: Task, *, run_dir: Path, env: Mapping[str, str], check_paths: bool = True
    ) -> list[str]:
        return self.engine_for(task).command(
            task, run_dir=run_dir, env=env, check_paths=check_paths
        )

    def check(self) -> None:
        for engine in (self.default, *self.images.values()):
            engine.check()

    def stop_command(self, argv: Iterable[str]) -> list[str] | None:
        return self.default.stop_command(argv)

    # every image runs under the same client and run label: the default engine's
    # watchdog and cleanup cover the containers of the others
    def watchdog_argv(self, run_dir: Path) -> list[str] | None:
        return self.default.watchdog_argv(run_dir)

    def cleanup(self, run_dir: Path) -> list[str]:
        return self.default.cleanup(run_dir)

    def __repr__(self) -> str:
        return f"StepImages({self.default!r}, {self.images!r})"


def engine_for_config(
    name: str,
    *,
    image: str | None,
    step_images: Mapping[str, str],
    gpu: bool = False,
    check_version: bool = True,
) -> Engine:
    """:func:`get_engine`, with a per-step image for the steps in ``step_images``
    (container engines only; the local engine runs every step on this Python)."""
    default = get_engine(name, image=image, gpu=gpu, check_version=check_version)
    if isinstance(default, LocalEngine) or not step_images:
        return default
    per_step = {
        step: get_engine(name, image=img, gpu=gpu, check_version=check_version)
        for step, img in step_images.items()
        if img != default.image
    }
    return StepImages(default, per_step) if per_step else default


__all__ = [
    "ENGINE_NAMES",
    "PROVENANCE_VARS",
    "VERSION_LABEL",
    "ApptainerEngine",
    "DockerEngine",
    "Engine",
    "LocalEngine",
    "OciEngine",
    "PodmanEngine",
    "StepImages",
    "build_command",
    "default_image",
    "engine_for_config",
    "get_engine",
]
