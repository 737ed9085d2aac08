"""Docker and Podman engines (the same OCI ``run`` command line).

Argument list of one task (``<...>`` are filled in; ``[...]`` only when it applies)::

    <exe> run --rm --init --name gprpipe-<run token>-<task id, / as __>
        --label org.gprpipe.run=<run token> [--replace]   # --replace: podman only
        --network=none
        [--userns=keep-id]                      # podman run by a non-root user only
        --user <uid>:<gid> --security-opt label=disable
        -v <run_dir>:<run_dir>
        [-v <point_dir>:<point_dir>]            # only if point_dir is outside run_dir
        -v <file>:<file>:ro ...                 # each input file outside them, alone
        -w <point_dir>
        -e K=V ...                              # task env + given env, sorted by name
        -e GPRPIPE_ENGINE=<name> -e GPRPIPE_IMAGE=<image> [-e GPRPIPE_IMAGE_DIGEST=<digest>]
        [--gpus all | --device nvidia.com/gpu=all]   # docker | podman, only with gpu=True
        <image> gprpipe <task.argv...>

The name is one per (run directory, task), the label one per run directory: the executor
stops a run's containers by name when the run stops (Ctrl-C, SIGTERM), a watchdog process
(``python -m gprpipe.engines.oci watchdog``) removes them by label when the run is killed,
and the next run of the directory removes any still left. ``--init`` runs a minimal init
as PID 1 that forwards SIGTERM to the task and reaps it.
Mounts keep host paths, so the task's absolute paths work unchanged; an input is mounted
as a file, not its folder (which would show the task every file beside it). ``--user`` makes the
outputs belong to the calling user; ``label=disable`` lets bind mounts be read on SELinux
hosts (Fedora, RHEL) without relabelling the user's files, and is ignored elsewhere.
Steps need no network: ``--network=none`` keeps them hermetic and starts containers faster
(0.27 s instead of 0.45 s per task with podman here).
The image digest is looked up once per engine (``image inspect``), not once per task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

from gprpipe.engines.base import (
    INPUT,
    RUN_LABEL,
    SKIP_VERSION_CHECK_HINT,
    VERSION_LABEL,
    Engine,
    absolute,
    build_command,
    container_name,
    default_image,
    host_version,
    merged_env,
    mounts,
    run_token,
)
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.task import Task

_UNSET = object()
_MISSING_IMAGE = ("no such image", "image not known", "not found", "unable to find")
_INSPECT_TIMEOUT = 60.0


class OciEngine(Engine):
    """Common code of docker and podman; ``exe`` is the client program."""

    exe: ClassVar[str]
    digest_format: ClassVar[str] = "{{.Id}}"
    leaves_containers = True
    image: str  # always set: the default image when none is given

    def __init__(
        self,
        *,
        image: str | None = None,
        gpu: bool = False,
        check_version: bool = True,
        digest: str | None = None,
    ) -> None:
        """``digest``: the image digest if already known (skips the ``image inspect``)."""
        self.image = image or default_image()
        self.gpu = gpu
        self.check_version = check_version
        self._digest: object = _UNSET if digest is None else digest

    # -- the command ---------------------------------------------------------------------
    def user_args(self) -> list[str]:
        return ["--user", f"{os.getuid()}:{os.getgid()}", "--security-opt", "label=disable"]

    @abstractmethod
    def gpu_args(self) -> list[str]:
        """Flags that expose the GPUs (engine specific)."""

    def command(
        self,
        task: Task,
        *,
        run_dir: Path,
        env: Mapping[str, str],
        check_paths: bool = True,
    ) -> list[str]:
        binds = mounts(task, run_dir, check_paths)
        argv = [
            self.exe,
            "run",
            "--rm",
            "--init",
            "--name",
            container_name(task, run_dir),
            "--label",
            f"{RUN_LABEL}={run_token(run_dir)}",
            *self.replace_args(),
            "--network=none",
        ]
        argv += self.user_args()
        for path, what in binds:
            spec = f"{path}:{path}:ro" if what == INPUT else f"{path}:{path}"
            argv += ["-v", spec]
        argv += ["-w", str(absolute(task.point_dir))]
        task_env = merged_env(task, env)
        for key in sorted(task_env):
            argv += ["-e", f"{key}={task_env[key]}"]
        for key, value in self.provenance().items():
            argv += ["-e", f"{key}={value}"]
        if self.gpu:
            argv += self.gpu_args()
        return [*argv, self.image, "gprpipe", *task.argv]

    def replace_args(self) -> list[str]:
        """Flags that replace a leftover container of the same name (podman only)."""
        return []

    def stop_command(self, argv: Iterable[str]) -> list[str] | None:
        args = list(argv)
        if "--name" not in args[:-1]:
            return None
        return [self.exe, "rm", "-f", *self.rm_now_args(), args[args.index("--name") + 1]]

    def rm_now_args(self) -> list[str]:
        """Flags of ``rm -f`` that kill at once (docker's does; podman's waits 10 s)."""
        return []

    def watchdog_argv(self, run_dir: Path) -> list[str] | None:
        return ["-m", "gprpipe.engines.oci", "watchdog", self.exe, run_token(run_dir)]

    def cleanup(self, run_dir: Path) -> list[str]:
        return remove_run_containers(self.exe, run_token(run_dir))

    # -- image inspection ----------------------------------------------------------------
    def _inspect(self, fmt: str) -> subprocess.CompletedProcess[str]:
        exe = shutil.which(self.exe)
        if exe is None:
            raise FileNotFoundError(self.exe)
        return subprocess.run(
            [exe, "image", "inspect", "--format", fmt, self.image],
            capture_output=True,
            text=True,
            timeout=_INSPECT_TIMEOUT,
            check=False,
        )

    @property
    def image_digest(self) -> str | None:
        if self._digest is _UNSET:
            self._digest = self._lookup_digest()
        return self._digest or None  # type: ignore[return-value]

    def _lookup_digest(self) -> str:
        for fmt in (self.digest_format, "{{.Id}}"):
            try:
                proc = self._inspect(fmt)
            except (OSError, subprocess.SubprocessError):
                return ""
            value = proc.stdout.strip()
            if proc.returncode == 0 and value and value != "<none>":
                return value if ":" in value else f"sha256:{value}"
        return ""

    @abstractmethod
    def not_installed_message(self) -> str:
        """The sentence shown when the client program is missing."""

    def check(self) -> None:
        if shutil.which(self.exe) is None:
            raise GprpipeError(self.not_installed_message())
        build = build_command(self.name, self.image)
        try:
            proc = self._inspect(f'{{{{ index .Config.Labels "{VERSION_LABEL}" }}}}')
        except subprocess.TimeoutExpired as exc:
            raise GprpipeError(
                f"{self.exe} image inspect {self.image} did not answer within "
                f"{_INSPECT_TIMEOUT:.0f} s: check that {self.exe} works ({self.exe} info)"
            ) from exc
        if proc.returncode != 0:
            err = proc.stderr.strip()
            last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
            if "daemon" in err.lower() and "connect" in err.lower():
                raise GprpipeError(
                    f"the {self.name.capitalize()} daemon is not reachable ({last}): start it or "
                    "use --engine podman or --engine local"
                )
            if any(word in err.lower() for word in _MISSING_IMAGE):
                raise GprpipeError(
                    f"image {self.image} not found for {self.name}: build it with {build}"
                )
            raise GprpipeError(f"{self.exe} cannot inspect image {self.image}: {last}")
        if not self.check_version:
            return
        found = proc.stdout.strip()
        if found in ("", "<no value>"):
            raise GprpipeError(
                f"image {self.image} does not record its gprpipe version (label "
                f"{VERSION_LABEL}): rebuild it with {build} or skip the check with "
                f"{SKIP_VERSION_CHECK_HINT}"
            )
        if found != host_version():
            raise GprpipeError(
                f"image {self.image} has gprpipe {found} but this host has {host_version()}: "
                f"rebuild it with {build} or skip the check with {SKIP_VERSION_CHECK_HINT}"
            )
        _ = self.image_digest  # look it up now, once, rather than from the first task


class DockerEngine(OciEngine):
    name = "docker"
    exe = "docker"

    def gpu_args(self) -> list[str]:
        return ["--gpus", "all"]

    def not_installed_message(self) -> str:
        return (
            "docker not found: install Docker, or use --engine podman "
            "(scripts/setup-podman.sh) or --engine local"
        )


class PodmanEngine(OciEngine):
    name = "podman"
    exe = "podman"
    digest_format = "{{.Digest}}"

    def replace_args(self) -> list[str]:
        return ["--replace"]

    def rm_now_args(self) -> list[str]:
        return ["-t", "0"]

    def user_args(self) -> list[str]:
        # Rootless podman maps container uids through a user namespace: keep-id makes the
        # container user the calling user, so files in the run directory stay theirs.
        keep = ["--userns=keep-id"] if os.getuid() != 0 else []
        return [*keep, *super().user_args()]

    def gpu_args(self) -> list[str]:
        return ["--device", "nvidia.com/gpu=all"]

    def not_installed_message(self) -> str:
        return "podman not found: install it (scripts/setup-podman.sh) or use --engine local"


def remove_run_containers(exe: str, token: str) -> list[str]:
    """Remove every container (running or not) labelled with run ``token``; their names."""
    path = shutil.which(exe)
    if path is None:
        return []
    try:
        found = subprocess.run(
            [path, "ps", "-a", "--filter", f"label={RUN_LABEL}={token}", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            timeout=_INSPECT_TIMEOUT,
            check=False,
        )
        names = found.stdout.split() if found.returncode == 0 else []
        if names:
            subprocess.run(
                [path, "rm", "-f", *names],
                capture_output=True,
                timeout=_INSPECT_TIMEOUT,
                check=False,
            )
    except (OSError, subprocess.SubprocessError):
        return []
    return names


def _watchdog(exe: str, token: str) -> None:
    """Block until standard input ends (the run that started us ended, however), then
    remove the run's containers."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, KeyboardInterrupt):
        pass
    remove_run_containers(exe, token)


if __name__ == "__main__":  # python -m gprpipe.engines.oci watchdog EXE TOKEN
    if len(sys.argv) == 4 and sys.argv[1] == "watchdog":
        _watchdog(sys.argv[2], sys.argv[3])
