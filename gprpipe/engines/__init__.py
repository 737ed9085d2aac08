"""Engines: how a task's command runs (local Python, Docker, Podman, Apptainer).

``get_engine(name, image=..., gpu=..., check_version=...)`` returns an :class:`Engine`;
executors call ``engine.check()`` once before scheduling, then ``engine.command(task,
run_dir=..., env=...)`` for each task and run the returned argument list. See the module
docstrings of :mod:`.oci` and :mod:`.apptainer` for the exact command lines.
"""

from __future__ import annotations

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
    "build_command",
    "default_image",
    "get_engine",
]
