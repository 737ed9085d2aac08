"""The engine interface and the helpers shared by the container engines.

An engine turns a :class:`~gprpipe.pipeline.task.Task` into the argument list of the process
that runs it (never a shell string). Executors start that process, capture its output in the
task log and check its exit code.

Container engines mount the run directory read-write and the folder of every input file that
lies outside it read-only, each at the *same* path inside as outside, so the task's argv
(absolute paths) works unchanged. They also pass ``GPRPIPE_ENGINE``, ``GPRPIPE_IMAGE`` and
``GPRPIPE_IMAGE_DIGEST``, which the step writers record as the HDF5 attrs ``engine``,
``image`` and ``image_digest`` (provenance).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

import gprpipe
from gprpipe.errors import GprpipeError
from gprpipe.io.paths import absolute, mount_files, unwritable_in_bind, within
from gprpipe.pipeline.task import Task

#: Image label (and image env ``GPRPIPE_VERSION``) recording the gprpipe version inside.
VERSION_LABEL = "org.gprpipe.version"
#: Environment variables set by the engines and recorded by the step writers.
PROVENANCE_VARS = ("GPRPIPE_ENGINE", "GPRPIPE_IMAGE", "GPRPIPE_IMAGE_DIGEST")
#: How a user skips the image version check (quoted in error messages).
SKIP_VERSION_CHECK_HINT = "--set base.check_image_version=false"

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
#: the longest task part of a container name
_NAME_MAX = 80


def host_version() -> str:
    """The gprpipe version of this (host) installation."""
    return gprpipe.__version__


def default_image() -> str:
    """Default container image: what ``scripts/build-image.sh`` tags by default."""
    return f"localhost/gprpipe:{host_version().replace('+', '-')}"


def build_command(engine: str, image: str) -> str:
    """The exact command that builds ``image`` for ``engine`` (quoted in error messages),
    shell-quoted: an Apptainer image is a free-form path, which may hold ``$(...)``."""
    return shlex.join(["scripts/build-image.sh", "--engine", engine, "--tag", image])


def input_files(task: Task, run_dir: Path) -> list[Path]:
    """Distinct files to mount read-only: ``task.inputs`` outside ``run_dir``
    (:func:`~gprpipe.io.paths.mount_files`)."""
    return mount_files(task.inputs, run_dir)


#: what :func:`mounts` calls an input (mounted read-only)
INPUT = "input file"


def check_bind_name(path: Path, task: Task, what: str = INPUT) -> None:
    """Raise a GprpipeError when a bind source cannot be written in a bind spec."""
    if unwritable_in_bind(path):
        raise GprpipeError(
            f"cannot mount {what} {path} for task {task.id} in a container because its path "
            "contains ':' or ','"
        )


def check_bind_path(path: Path, task: Task, what: str = INPUT) -> None:
    """Raise a GprpipeError when a bind source is missing or unusable in a bind spec."""
    check_bind_name(path, task, what)
    if not (path.exists() if what == INPUT else path.is_dir()):
        raise GprpipeError(f"bind path {path} ({what} of task {task.id}) does not exist")


def mounts(task: Task, run_dir: Path, check_paths: bool = True) -> list[tuple[Path, str]]:
    """What a container mounts, as (path, what): the run directory, the point directory
    when it lies outside it, and each input file outside them (what == :data:`INPUT`:
    read-only).
    Each must be writable in a bind spec; with ``check_paths`` each must exist (dry runs,
    and the check before a run's folder is made, skip that)."""
    run_dir = absolute(run_dir)
    point_dir = absolute(task.point_dir)
    out: list[tuple[Path, str]] = [(run_dir, "run directory")]
    if not within(point_dir, run_dir):
        out.append((point_dir, "point directory"))
    out += [(f, INPUT) for f in input_files(task, run_dir) if not within(f, point_dir)]
    for path, what in out:
        (check_bind_path if check_paths else check_bind_name)(path, task, what)
    return out


def merged_env(task: Task, env: Mapping[str, str]) -> dict[str, str]:
    """``task.env`` overlaid by ``env``, without the provenance variables the engine sets."""
    merged = {**task.env, **env}
    for key in merged:
        if not _ENV_KEY.fullmatch(key):
            raise GprpipeError(f"invalid environment variable name {key!r} for task {task.id}")
    return {k: str(v) for k, v in merged.items() if k not in PROVENANCE_VARS}


#: Label carried by every container of a run (value: :func:`run_token` of its directory).
RUN_LABEL = "org.gprpipe.run"


def run_token(run_dir: Path) -> str:
    """Short name of a run directory (its absolute path, hashed): two copies differ."""
    return hashlib.sha256(str(absolute(run_dir)).encode()).hexdigest()[:10]


def container_name(task: Task, run_dir: Path) -> str:
    """Container name ``gprpipe-<run token>-<point>__<step>[__<part>]`` (docker, podman):
    one per task of a run, so a leftover is found, stopped and replaced by name. A task id
    that a name cannot hold as it is (too long, or with characters a name may not have)
    ends in a hash of the whole id: cut or rewritten alone, the chunks of a long point
    name shared one name, and podman's ``--replace`` removed a running sibling."""
    natural = task.id.replace("/", "__")
    slug = _NAME_BAD.sub("-", natural).strip("-.")
    if slug != natural or len(slug) > _NAME_MAX:
        digest = hashlib.sha256(task.id.encode()).hexdigest()[:10]
        slug = f"{slug[: _NAME_MAX - 11].rstrip('-.')}-{digest}".lstrip("-")
    return f"gprpipe-{run_token(run_dir)}-{slug}"


class Engine(ABC):
    """How a task's command runs. Subclasses: local, docker, podman, apptainer.

    ``command`` may be called from several threads; engines keep no per-task state.
    """

    name: ClassVar[str]
    image: str | None = None
    gpu: bool = False
    check_version: bool = True
    #: whether a killed run can leave containers behind (:meth:`cleanup` removes them)
    leaves_containers: bool = False

    @abstractmethod
    def command(
        self,
        task: Task,
        *,
        run_dir: Path,
        env: Mapping[str, str],
        check_paths: bool = True,
    ) -> list[str]:
        """Full argument list of the process that runs ``task``.

        ``check_paths=False`` skips the existence checks of bind paths (for ``--dry-run``,
        where the run directory may not exist yet).
        """

    def check(self) -> None:  # noqa: B027 - a no-op is the right default (local engine)
        """Raise GprpipeError (one sentence) when the engine or its image cannot run tasks."""

    @property
    def image_digest(self) -> str | None:
        """Digest (or id) of the image, when known; looked up once per engine."""
        return None

    def provenance(self) -> dict[str, str]:
        """``GPRPIPE_ENGINE``/``GPRPIPE_IMAGE``/``GPRPIPE_IMAGE_DIGEST`` for the task env."""
        out = {"GPRPIPE_ENGINE": self.name}
        if self.image:
            out["GPRPIPE_IMAGE"] = self.image
        digest = self.image_digest
        if digest:
            out["GPRPIPE_IMAGE_DIGEST"] = digest
        return out

    def stop_command(self, argv: Iterable[str]) -> list[str] | None:
        """Command that removes the container started by ``argv`` (None: nothing to stop).

        Killing the ``docker``/``podman run`` client does not always stop the container;
        executors call this after killing a task (timeout, Ctrl-C).
        """
        return None

    def watchdog_argv(self, run_dir: Path) -> list[str] | None:
        """Arguments (after the Python executable) of a watchdog that removes the run's
        containers when the run ends; None when tasks are plain processes."""
        return None

    def cleanup(self, run_dir: Path) -> list[str]:
        """Remove containers left by an earlier run of ``run_dir`` (killed with its
        watchdog); returns their names. Call it only while holding the run's lock."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image={self.image!r}, gpu={self.gpu})"
