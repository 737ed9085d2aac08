"""Which host files a container mounts: the one rule the engines apply to a task and the
config check applies to a config's files before any task runs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute, normalised path (``..`` removed) without resolving symlinks."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (both absolute)."""
    return path == folder or folder in path.parents


def unwritable_in_bind(path: Path) -> bool:
    """A bind spec (``SRC:DST[:OPTS]``, comma-separated for Apptainer) cannot say a path
    holding ':' or ','."""
    return ":" in str(path) or "," in str(path)


def mount_files(files: Iterable[str | os.PathLike[str]], run_dir: Path) -> list[Path]:
    """Distinct input files to mount read-only, each by itself at its own path: those
    outside ``run_dir``. Never their folders: a folder's mount showed the container every
    file beside an input (a data file in a home folder mounted the home folder, its keys).

    An engine mounts a link as the file it leads to; the file a link leads to is mounted
    at its own path too (a link inside the run directory then resolves in the container).
    The result is sorted, so an argument list does not depend on the order of the files.
    """
    run_dir = absolute(run_dir)
    found: set[Path] = set()
    for item in files:
        path = absolute(item)
        for file in (path, Path(os.path.realpath(path))):
            if not within(file, run_dir):
                found.add(file)
    return sorted(found)
