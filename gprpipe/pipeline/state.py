"""Task state from marker files that the tasks write themselves.

Markers live in ``<point_dir>/.state/<task.slug>.<state>``; the ``gprpipe step`` command
writes ``running`` when it starts and replaces it by ``done`` or ``failed`` (whose text is
the error sentence) when it ends. The local executor writes ``running`` itself before it
launches a task (with its own pid and host as ``run_pid``/``run_host``, and the container
name), and the task keeps these fields: a task killed during its start-up, before it
wrote anything, is still seen, and counts as failed once the run that launched it is
gone. This works the same for local processes, containers and SLURM array tasks, with no
accounting database.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import (
    atomic_write_text,
    check_within,
    end_unless_held,
    inside,
    read_json,
    remove_stale_temps,
)
from gprpipe.io.processes import identity

STATES = ("done", "failed", "running")
#: fields of a launcher's ``running`` marker that the task's own ``running`` marker keeps
LAUNCH_FIELDS = ("run_pid", "run_pid_started", "run_host", "container")


def state_dir(point_dir: Path) -> Path:
    return Path(point_dir) / ".state"


def marker_stem(point_dir: Path, slug: str) -> Path:
    """A task's markers without their state suffix (what job scripts are given)."""
    return state_dir(point_dir) / slug


def marker(point_dir: Path, slug: str, state: str) -> Path:
    return state_dir(point_dir) / f"{slug}.{state}"


def read_marker(point_dir: Path, slug: str, state: str) -> dict[str, Any]:
    """The JSON of one marker ({} when missing or unreadable)."""
    try:
        info = read_json(marker(point_dir, slug, state))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def write_state(
    point_dir: Path, slug: str, state: str, message: str = "", launch: dict[str, Any] | None = None
) -> None:
    """Record ``state`` for a task, removing its other markers.

    ``launch``: the launcher's fields (:data:`LAUNCH_FIELDS`); a ``running`` marker written
    without them keeps those of the ``running`` marker it replaces.
    """
    if state not in STATES:
        raise ValueError(f"unknown task state {state!r}")
    d = state_dir(point_dir)
    within(d)  # (not made yet: its point folder is checked, where mkdir would make it)
    d.mkdir(parents=True, exist_ok=True)
    if launch is None and state == "running":
        old = read_marker(point_dir, slug, "running")
        launch = {k: old[k] for k in LAUNCH_FIELDS if k in old}
    info = {
        "state": state,
        "time": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": identity(os.getpid()),
        "slurm_job": os.environ.get("SLURM_JOB_ID", ""),
        "message": message,
        **(launch or {}),
    }
    end_unless_held()  # (before removing temporary files a later run may be writing)
    for any_state in STATES:  # a writer killed mid-write leaves a temporary file
        remove_stale_temps(marker(point_dir, slug, any_state))
    remove_stale_temps(progress_file(point_dir, slug))  # (no run removed these)
    atomic_write_text(marker(point_dir, slug, state), json.dumps(info) + "\n")
    for other in STATES:
        if other != state:
            marker(point_dir, slug, other).unlink(missing_ok=True)
    if state != "running":
        progress_file(point_dir, slug).unlink(missing_ok=True)


def within(path: Path) -> None:
    """A GprpipeError when ``path`` (a point folder, its state or log folder) resolves
    outside its run directory (the point folder's parent): a link put in place of it after
    the run checked its folders would lead a marker or a log elsewhere."""
    path = Path(path)
    point = path if path.name not in (".state", "logs") else path.parent
    existing = path if path.exists() else point  # (a folder not made yet: where it would be)
    if existing.exists():
        check_within(existing, point.parent, path)


def progress_file(point_dir: Path, slug: str) -> Path:
    return state_dir(point_dir) / f"{slug}.progress"


def write_progress(
    point_dir: Path, slug: str, done: int, total: int, unit: str, started: float
) -> None:
    """Record how far a running task is (``done`` of ``total`` ``unit``, since ``started``)."""
    info = {"done": done, "total": total, "unit": unit, "started": started, "time": time.time()}
    atomic_write_text(progress_file(point_dir, slug), json.dumps(info) + "\n")


def read_progress(point_dir: Path, slug: str) -> dict[str, Any] | None:
    """The progress record of a running task, or None."""
    try:
        info = read_json(progress_file(point_dir, slug))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def progress_text(
    info: dict[str, Any] | None, now: float | None = None, *, count: bool = True
) -> str:
    """``12/16 masses, 0.8/s, ETA 5 s`` from a progress record ('' when unknown);
    ``count=False``: ``masses, 0.8/s, ETA 5 s`` (beside a bar that shows the count)."""
    if not info or not info.get("total"):
        return ""
    done, total, unit = int(info["done"]), int(info["total"]), str(info.get("unit", ""))
    text = f"{done}/{total} {unit}" if count else unit
    elapsed = max(1e-9, (now or time.time()) - float(info.get("started", time.time())))
    if done > 0:
        rate = done / elapsed
        eta = (total - done) / rate
        shown = f"{rate:.2g}/s" if rate < 10 else f"{rate:.0f}/s"
        text += f", {shown}, ETA {fmt_duration(eta)}"
    return text


def fmt_duration(seconds: float) -> str:
    """One format for durations everywhere (terminal and TUI): ``4.2 s``, ``3 min 05 s``."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s"


def unmarkable(run_dir: Path, point_dir: Path) -> str:
    """Why no marker of a task of ``point_dir`` may be written from outside the task
    (status, cancel): its point or state folder resolves outside the run directory (the
    marker would land beside the link's target); "" when it may."""
    try:
        inside(point_dir, run_dir, "the point folder", run_dir=True)
        inside(state_dir(point_dir), point_dir, "the state folder")
    except GprpipeError as exc:
        return str(exc)
    return ""


def finished_slugs(point_dir: Path) -> list[str]:
    """The slugs of the tasks of ``point_dir`` with a done or failed marker, sorted."""
    return sorted(
        {p.stem for state in ("done", "failed") for p in state_dir(point_dir).glob(f"*.{state}")}
    )


def read_state(point_dir: Path, slug: str) -> tuple[str, str]:
    """Return (state, message); state is ``pending`` when no marker exists."""
    state, info = read_state_marker(point_dir, slug)
    return state, str(info.get("message", ""))


def read_state_marker(point_dir: Path, slug: str) -> tuple[str, dict[str, Any]]:
    """The state and the JSON of the marker that says it (``pending`` and {} when no
    marker exists; {} when it is damaged, as :func:`read_marker` reads it): one read for
    a reader that needs its time or writer too. A writer puts its new marker, then
    removes the old one: a reader that looked for the new one just before it was written
    and for the old one just after it was gone found none, and a task going from running
    to done read as pending (a race audit); no marker is looked for once more."""
    for _ in range(2):
        for state in STATES:
            p = marker(point_dir, slug, state)
            if p.exists():
                try:
                    info = read_json(p)
                except (OSError, ValueError):
                    info = {}
                return state, info if isinstance(info, dict) else {}
    return "pending", {}


def shell_write_failed(
    stem: str = "$marker", message: str = "$why", indent: str = "        "
) -> str:
    """Bash lines that record ``failed`` for a task, in the format of :func:`write_state`
    (the fields a shell knows: no pid), for job scripts whose task died before writing
    its own marker. ``stem`` and ``message`` are shell words (variables) holding the
    marker path without its state suffix (``<point_dir>/.state/<slug>``) and the
    message, which must hold no double quote, backslash or control character. The time
    and host are bash's own variables, not command substitutions: bash (5.2) loses a
    SIGTERM that arrives during the first of two substitutions in one command. The
    temporary file is made anew with ``noclobber`` (``O_EXCL``): a link put in its place
    (by anyone who can write the run folder) is never written through."""
    tmp = '"' + stem + '.failed.tmp"'
    lines = [  # written whole, never through a link (noclobber: O_EXCL), then renamed
        f"rm -f {tmp}",
        "set -o noclobber",
        'if printf \'{"state": "failed", "time": %s, "host": "%s", "slurm_job": "%s", %s}\\n\' \\',
        '    "${EPOCHSECONDS:-$(date +%s)}" "$HOSTNAME" "${SLURM_JOB_ID:-}" \\',
        '    "\\"message\\": \\"' + message + f'\\"" >{tmp}; then',
        f'    mv -f {tmp} "' + stem + '.failed"',
        "fi",
        "set +o noclobber",
        'rm -f "' + stem + '.running" "' + stem + '.progress"',
    ]
    return "\n".join(indent + line for line in lines)


def forget_done(point_dir: Path, slug: str) -> None:
    """Remove a task's ``done`` marker (a run about to judge the task afresh)."""
    marker(point_dir, slug, "done").unlink(missing_ok=True)


def clear_state(point_dir: Path, slug: str) -> None:
    for state in STATES:
        marker(point_dir, slug, state).unlink(missing_ok=True)
    progress_file(point_dir, slug).unlink(missing_ok=True)
