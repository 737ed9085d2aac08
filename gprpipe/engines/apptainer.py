"""The Apptainer (formerly Singularity) engine, for clusters.

Argument list of one task (``<...>`` are filled in; ``[...]`` only when it applies)::

    apptainer exec --contain --cleanenv --no-home
        --bind <run_dir>                        # the binds by depth, stable: a parent first
        [--bind <point_dir>]                    # only if point_dir is outside run_dir
        --bind <file>:<file>:ro ...             # each input file outside them, alone
        --pwd <point_dir>
        --env K=V,K=V,...                       # task env + given env sorted by name, then
                                                # GPRPIPE_ENGINE, GPRPIPE_IMAGE[, _DIGEST]
        [--nv]                                  # only with gpu=True
        <image> gprpipe <task.argv...>

``<image>`` is a ``.sif`` file (made absolute), a sandbox directory, or a URI
(``docker://``, ``library://``, ``oras://``, ``docker-archive:``, ...); a bare reference such
as ``ghcr.io/org/gprpipe:0.1.0`` becomes ``docker://ghcr.io/org/gprpipe:0.1.0``. The default
is ``gprpipe_<version>.sif`` in the current directory (what ``scripts/build-image.sh
--engine apptainer`` writes). Apptainer splits ``--env`` and ``--bind`` values on commas
(``--env`` as CSV), so values containing commas or double quotes, and paths containing
commas, are refused. Apptainer writes each ``--env`` value into a shell script of the
container as ``export K="V"``, where ``$``, a backquote or a backslash would be evaluated
(``--no-eval`` stops that only from Apptainer 1.1 on): values holding one are refused too.
``--contain`` gives the task an empty ``/tmp`` and ``/var/tmp`` of its own (by default
Apptainer shares the host's, where the image keeps matplotlib's configuration and cache,
and where another user of the node could plant a ``matplotlibrc``). Apptainer before 1.2
mounts the binds in the order given: a folder given after one inside it would hide that
mount, so parents come first. An input is mounted as a file, not its folder (which would
show the task every file beside it).
The image digest is the sha256 of a local image file (computed once
per engine); the gprpipe version check reads the image label
``org.gprpipe.version`` of local images only (a ``docker://`` image is not pulled to check).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gprpipe.engines.base import (
    INPUT,
    SKIP_VERSION_CHECK_HINT,
    VERSION_LABEL,
    Engine,
    absolute,
    build_command,
    host_version,
    merged_env,
    mounts,
)
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.task import Task

_UNSET = object()
#: characters a shell evaluates inside double quotes (how apptainer writes --env values)
_EVALUATED = {"$": "a '$'", "`": "a backquote", "\\": "a backslash"}
_URI_PREFIXES = ("docker-archive:", "oci-archive:", "docker-daemon:", "oci:", "shub:")


def normalise_image(image: str) -> str:
    """``docker://...`` and other URIs as given; local files absolute; bare refs docker://."""
    if "://" in image or image.startswith(_URI_PREFIXES):
        return image
    path = Path(os.path.expanduser(image))
    looks_local = (
        image.endswith((".sif", ".simg", ".img"))
        or image.startswith(("/", "./", "../", "~"))
        or path.exists()
    )
    return str(absolute(path)) if looks_local else f"docker://{image}"


def env_value_problem(value: str) -> str | None:
    """Why apptainer ``--env`` cannot pass ``value`` to a task unchanged (it reads the
    option as one line of CSV, and evaluates each value in a shell of the container), as
    the end of a sentence; None when it can."""
    if "," in value or '"' in value:
        return "contains a comma or a double quote, which apptainer --env cannot pass"
    bad = sorted(set(value) & set(_EVALUATED))
    if bad:
        return (
            f"contains {' and '.join(_EVALUATED[c] for c in bad)}, which apptainer --env "
            f"would evaluate in the container's shell: {value!r}"
        )
    return None


def image_problem(image: str | None) -> str | None:
    """Why the image a task would run (``image`` as configured, made absolute, or the
    default ``.sif`` in the working folder) cannot be passed to it (its provenance
    variable ``GPRPIPE_IMAGE``): a run refused it only at its first task, naming neither
    key nor file, with run.json and the point's config.toml written (a review)."""
    path = normalise_image(image) if image else default_sif()
    why = env_value_problem(path)
    if why is None:
        return None
    if not image:  # the default, in the folder gprpipe runs from
        return (
            f"the default image {path} (in the folder gprpipe runs from) {why}; set "
            "base.image, or run from another folder"
        )
    return f"the image {path} {why}; move or rename it"


def default_sif() -> str:
    return str(absolute(f"gprpipe_{host_version()}.sif"))


class ApptainerEngine(Engine):
    name = "apptainer"
    exe = "apptainer"
    image: str  # always set: the default .sif file when none is given

    def __init__(
        self,
        *,
        image: str | None = None,
        gpu: bool = False,
        check_version: bool = True,
        digest: str | None = None,
    ) -> None:
        """``digest``: the image digest if already known (skips hashing the .sif file)."""
        self.image = normalise_image(image) if image else default_sif()
        self.gpu = gpu
        self.check_version = check_version
        self._digest: object = _UNSET if digest is None else digest

    @property
    def local_image(self) -> Path | None:
        """The image file or sandbox directory, or None for a URI."""
        return None if ":" in self.image.split("/")[0] else Path(self.image)

    def command(
        self,
        task: Task,
        *,
        run_dir: Path,
        env: Mapping[str, str],
        check_paths: bool = True,
    ) -> list[str]:
        binds = mounts(task, run_dir, check_paths)  # refuses ',' and ':' even in a dry run
        argv = [self.exe, "exec", "--contain", "--cleanenv", "--no-home"]
        for path, what in sorted(binds, key=lambda b: len(b[0].parts)):  # stable
            argv += ["--bind", f"{path}:{path}:ro" if what == INPUT else str(path)]
        argv += ["--pwd", str(absolute(task.point_dir))]
        task_env = merged_env(task, env)
        items = [(k, task_env[k]) for k in sorted(task_env)] + list(self.provenance().items())
        for key, value in items:
            if why := env_value_problem(value):
                raise GprpipeError(f"environment variable {key} of task {task.id} {why}")
        argv += ["--env", ",".join(f"{k}={v}" for k, v in items)]
        if self.gpu:
            argv.append("--nv")
        return [*argv, self.image, "gprpipe", *task.argv]

    @property
    def image_digest(self) -> str | None:
        if self._digest is _UNSET:
            self._digest = self._file_digest()
        return self._digest or None  # type: ignore[return-value]

    def _file_digest(self) -> str:
        path = self.local_image
        if path is None or not path.is_file():
            return ""
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return f"sha256:{sha.hexdigest()}"

    def check(self) -> None:
        exe = shutil.which(self.exe)
        if exe is None:
            raise GprpipeError(
                "apptainer not found: load or install Apptainer (https://apptainer.org), "
                "or use --engine podman or --engine local"
            )
        path = self.local_image
        if path is None:  # a URI: apptainer pulls it on first use, unchecked (it ran so,
            # recording no digest, though the README promised the check: a review)
            if self.check_version:
                raise GprpipeError(
                    f"image {self.image}: a URI, whose gprpipe version cannot be checked "
                    "before the run (nor its digest recorded): pull it into a file "
                    f"({shlex.join([self.exe, 'pull', 'gprpipe.sif', self.image])}) and "
                    f"give that file as base.image, or skip the check with "
                    f"{SKIP_VERSION_CHECK_HINT}"
                )
            return
        build = build_command(self.name, self.image)
        if not path.exists():
            raise GprpipeError(f"image {path} not found for apptainer: build it with {build}")
        if not self.check_version:
            return
        proc = subprocess.run(
            [exe, "inspect", "--json", "--labels", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        found = _label_from_inspect(proc.stdout) if proc.returncode == 0 else None
        if not found:
            raise GprpipeError(
                f"image {path} does not record its gprpipe version (label {VERSION_LABEL}): "
                f"rebuild it with {build} or skip the check with {SKIP_VERSION_CHECK_HINT}"
            )
        if found != host_version():
            raise GprpipeError(
                f"image {path} has gprpipe {found} but this host has {host_version()}: "
                f"rebuild it with {build} or skip the check with {SKIP_VERSION_CHECK_HINT}"
            )
        _ = self.image_digest


def _label_from_inspect(text: str) -> str | None:
    """The version label from ``apptainer inspect --json --labels`` (or plain text) output."""
    try:
        data = json.loads(text)
        labels = data.get("data", {}).get("attributes", {}).get("labels", {}) or {}
        value = labels.get(VERSION_LABEL)
        return str(value) if value else None
    except (ValueError, AttributeError):
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == VERSION_LABEL:
                return value.strip() or None
        return None
