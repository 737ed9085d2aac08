"""Which host folders a container mounts: the one rule the engines apply to a task and the
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


def mount_folders(files: Iterable[str | os.PathLike[str]], run_dir: Path) -> list[Path]:
    """Distinct folders to mount read-only for ``files``: those outside ``run_dir``.

    For a file that is a symlink, the folder of its target is added too (the link must
    resolve inside the container). Folders nested in another listed folder are dropped.
    The result is sorted, so an argument list does not depend on the order of the files.
    """
    run_dir = absolute(run_dir)
    found: set[Path] = set()
    for item in files:
        path = absolute(item)
        for folder in (path.parent, Path(os.path.realpath(path)).parent):
            if not within(folder, run_dir):
                found.add(folder)
    return sorted(f for f in found if not any(g != f and within(f, g) for g in found))
