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
    """What to mount read-only for the input ``files`` outside ``run_dir``: each file
    alone at its own path, never its folder (a folder's mount showed the task every file
    beside an input: a data file in a home folder mounted the home folder, its keys). An
    engine mounts a link as the file it leads to; a link inside ``run_dir`` is mounted as
    that file, at the file's path. A file whose name holds ':' or ',' (which a bind spec
    cannot write) is mounted by its folder, with the folder of the file a link of such a
    name leads to. Sorted, so an argument list does not depend on the order of the files.
    """
    run_dir = absolute(run_dir)
    found: set[Path] = set()
    for item in files:
        path = absolute(item)
        real = Path(os.path.realpath(path))
        if within(path, run_dir):
            if within(real, run_dir):
                continue
            path = real
        if unwritable_in_bind(Path(path.name)):
            found |= {f.parent for f in (path, real) if not within(f.parent, run_dir)}
        else:
            found.add(path)
    return sorted(found)
