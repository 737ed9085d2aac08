"""Which gprpipe is running: its installed version and, for a git checkout (an editable
install), the commit its source is at. Recorded in run.json, every HDF5 output and the
exports' provenance: a reviewer reads the version of the code that ran."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from gprpipe import __version__


def git_commit() -> str:
    """The git commit of the gprpipe source in use (``+dirty`` with local changes), or ""
    when it is not a git checkout (an installed wheel)."""
    import subprocess

    src = Path(__file__).resolve().parents[1]  # the package folder
    if not (src.parent / "pyproject.toml").is_file():  # installed (site-packages), not a
        return ""  # source tree, even inside some git checkout (a venv in the repository)
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # (no index refresh: task processes ask too, beside a developer's git commit)
            ["git", "--no-optional-locks", "-C", str(src), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")


def package_version(commit: str | None = None) -> str:
    """gprpipe's version as installed, and, when the source in use is a git checkout that
    has moved on since (an editable install keeps the version of its install), which
    commit it is at: a reviewer reads the version of the code that ran."""
    head = git_commit() if commit is None else commit
    changed = " with local changes" if head.endswith("+dirty") else ""
    installed = re.search(r"\+g([0-9a-f]{7,})", __version__)
    if not head or not installed or head.startswith(installed.group(1)):
        return __version__ + (f" ({changed.strip()})" if changed else "")
    return f"{__version__} as installed; the source in use is git commit {head[:12]}{changed}"


@functools.cache
def source_version() -> str:
    """:func:`package_version`, once per process (two git calls, ~10 ms)."""
    return package_version()
