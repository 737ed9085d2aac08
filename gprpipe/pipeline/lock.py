"""One writer per run directory: ``<run_dir>/.gprpipe.lock``.

``gprpipe run`` and ``gprpipe rerun`` (and the TUI, which launches them) hold an exclusive
``flock`` on the lock file while they plan, execute or submit; the file names the holder
(pid, host, since, command). The kernel drops the lock when its holder dies, however it
dies, so the lock of a dead holder is taken over (with a notice naming it); a live holder
makes a second run refuse with one sentence naming it, or wait with ``--wait-lock``.
A released lock is emptied, so a non-empty file found unlocked is a stale one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gprpipe.errors import GprpipeError, cli_command
from gprpipe.io.atomic import loads_json, read_json, read_record
from gprpipe.io.processes import RUN_PID_ENV, as_pid

LOCK_NAME = ".gprpipe.lock"
#: held by a plot task while it rebuilds the run's index (:func:`index_lock`)
INDEX_LOCK_NAME = ".index.lock"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_NAME


def holder(run_dir: Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder; {} when empty or unreadable."""
    path = lock_path(run_dir)
    if path.is_symlink():  # not gprpipe's (run_lock replaces it)
        return {}
    try:
        info = loads_json(read_record(path) or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def in_use_by(run_dir: Path) -> str:
    """Who holds the run directory's lock now (:func:`describe`), '' when nobody. A holder
    writes its record just after it takes the lock and empties it just before it lets go:
    an empty record is read again for a moment (it said "gprpipe (pid ? on host ?)")."""
    for _ in range(10):
        if not is_locked(run_dir):
            return ""
        if info := holder(run_dir):
            return describe(info)
        time.sleep(0.01)
    return describe({})


#: the commands whose lock is a run's: they run (or submit) the folder's tasks
RUN_COMMANDS = ("gprpipe run", "gprpipe rerun")


def run_holding(run_dir: Path) -> str:
    """:func:`describe` of the run (``gprpipe run`` or ``rerun``) that holds the folder's
    lock now, '' when none does (nobody, or a command that only reads or cleans up: what
    a run going on is said to do must not be said of ``gprpipe status``, a review)."""
    return by_run(in_use_by(run_dir))


def by_run(who: str) -> str:
    """``who`` (:func:`describe` of a lock's holder) when it names a run, else ''."""
    return who if who.startswith(RUN_COMMANDS) else ""


def describe(info: dict[str, Any]) -> str:
    if not info:
        return "a process that left no record of itself (not a gprpipe run)"
    cmd = info.get("command") or "gprpipe"
    return (
        f"{cmd} (pid {info.get('pid', '?')} on host {info.get('host', '?')} since "
        f"{info.get('since', '?')})"
    )


def flock_holders(run_dir: Path, exclusive: bool = False) -> set[int] | None:
    """The pids that hold the run's lock (``exclusive``: as a run does, not as a reader
    trying it), as the kernel lists them (``/proc/locks``); None where it cannot tell (no
    ``/proc``, no lock file). The pid in the lock's record is what its holder wrote, and
    anyone who can write the run folder can change it."""
    try:
        st = os.stat(Path(run_dir) / LOCK_NAME, follow_symlinks=False)
        lines = Path("/proc/locks").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids: set[int] = set()
    for line in lines:  # "3: FLOCK  ADVISORY  WRITE 30502 fe:00:2146824 0 EOF"
        f = line.split()
        if len(f) < 6 or f[1] != "FLOCK":  # (a waiter's line reads "3: -> FLOCK ...")
            continue
        if exclusive and f[3] != "WRITE":
            continue
        try:
            major, minor, inode = f[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                pids.add(int(f[4]))
        except ValueError:
            continue
    return pids


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock now. Read from the kernel's
    list of locks where it has one: a reader that tried the lock itself held it for a
    moment, and a run starting then was refused, naming the last holder (a review)."""
    path = lock_path(run_dir)
    if path.is_symlink() or not path.is_file():
        return False
    writers = flock_holders(run_dir, exclusive=True)
    if writers:
        return True
    # no holder listed: free when its record is empty (a holder empties it as it lets go);
    # with a record, its holder may be one the list does not show (another PID namespace,
    # e.g. a container with its own /proc, or another host: a review), so try the lock
    if writers is not None and not holder(run_dir):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


#: set in the environment of a container's task process (its engine, as provenance),
#: where no run pid names the run
_LAUNCHED = "GPRPIPE_ENGINE"


def refuse_beside_a_run(point_dir: Path) -> None:
    """Refuse a task started by hand (``gprpipe step``) while a run holds the lock of its
    run directory, or while the SLURM jobs of its run are queued or running: both would
    clear, write and commit the task's outputs, each from the config it read. A run's own
    task processes say whose they are: a local one names the run's process (which holds
    the lock), a container its engine, a SLURM array task a job that the run submitted."""
    env = os.environ
    if env.get(_LAUNCHED):
        return
    try:
        run_dir = Path(point_dir).resolve().parent
    except (OSError, RuntimeError):  # (the task says what is wrong with its folder)
        return
    slurm = env.get("SLURM_JOB_ID") or (run_dir / "slurm").is_dir()
    if slurm:  # (the SLURM executor is imported only where it can say something)
        from gprpipe.executors.slurm import own_job

        if own_job(run_dir, env):
            return
    if is_locked(run_dir):
        holders = flock_holders(run_dir)
        if holders is not None and as_pid(env.get(RUN_PID_ENV, "")) not in holders:
            raise GprpipeError(
                f"{run_dir} is in use by {describe(holder(run_dir))}: a task run by hand "
                "beside it would write the same outputs; wait for it to finish (or stop "
                f"it: {cli_command('cancel', run_dir)}), then run the task."
            )
    if slurm and not env.get(RUN_PID_ENV):  # (a local run's task: its run checked)
        from gprpipe.executors.slurm import refuse_beside_jobs

        refuse_beside_jobs(run_dir)


def refuse_reader_beside_a_run(run_dir: Path) -> None:
    """Refuse an export (or a reach projection) of ``run_dir`` while a run holds its lock
    or the SLURM jobs of its run are queued or running: it reads results the run
    rewrites and adds its files to the reports the run's plot task writes (it failed
    mid-run, or wrote beside the run: a race audit and a review). A brief holder
    (``status``, ``cancel``, a command taking or letting go of the lock) is waited for."""
    deadline = time.monotonic() + BRIEF_WAIT
    while is_locked(run_dir) and _brief(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    why = "it would read results the run rewrites and write beside it"
    if who := in_use_by(run_dir):
        raise GprpipeError(f"{run_dir} is in use by {who}: {why}; try again when it has ended.")
    if (run_dir / "slurm").is_dir():
        from gprpipe.executors.slurm import refuse_beside_jobs

        refuse_beside_jobs(run_dir, why)


def _open_lock(path: Path) -> int:
    """The lock file, opened for writing and never through a link: a link put in its
    place (gprpipe never makes one, so no live run holds it) is removed first, lest the
    run write its holder record to a file outside the run directory."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        path.unlink()
        fd = os.open(path, flags, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO there: every command waited
        os.close(fd)
        raise OSError(errno.EINVAL, "it is not a regular file; remove it", str(path))
    return fd


@contextlib.contextmanager
def index_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN/.index.lock`` (:data:`INDEX_LOCK_NAME`) for the block: the plot tasks
    of a grid's points (run in parallel) each rebuild the run's index and grid figures
    from every point's results, and one that read them earlier must not write over a
    later one's."""
    fd = _open_lock(Path(run_dir) / INDEX_LOCK_NAME)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: unguarded, as before
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)  # (releases the lock)


@contextlib.contextmanager
def run_lock(
    run_dir: Path, command: str = "", wait: float = 0.0, notice: Callable[[str], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Hold the run directory's lock for the block; yields what the file records.

    ``wait``: seconds to wait for a live holder before refusing (0: refuse at once).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise GprpipeError(f"{run_dir}: the run directory (base.output) is a file.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GprpipeError(
            f"{run_dir}: cannot create the run directory (base.output): {exc.strerror}."
        ) from None
    path = lock_path(run_dir)
    try:
        fd = _open_lock(path)
    except OSError as exc:
        raise GprpipeError(f"{path}: cannot create the run lock ({exc.strerror}).") from None
    try:
        start = time.monotonic()
        deadline = start + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline and not (now < start + BRIEF_WAIT and _brief(run_dir)):
                    then = (  # (the waiting run suggested the option it was given)
                        f"still in use after {wait:g} s (--wait-lock): wait longer"
                        if wait > 0
                        else "wait for it to finish (or use --wait-lock SECONDS)"
                    )
                    raise GprpipeError(
                        f"{run_dir} is in use by {describe(holder(run_dir))}: {then}, or "
                        "stop it first."
                    ) from None
                time.sleep(0.2)
            except OSError as exc:  # a file system without locks
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                break
        old = holder(run_dir)
        if old and notice:
            notice(
                f"notice: taking over the lock of {run_dir} left by {describe(old)}, which is gone"
            )
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command or " ".join(["gprpipe", *sys.argv[1:2]]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield info
        finally:
            os.ftruncate(fd, 0)  # released cleanly: an empty file
    finally:
        os.close(fd)  # drops the flock


#: seconds a run waits for a lock held briefly (:func:`_brief`) before it refuses
BRIEF_WAIT = 3.0
#: the commands that hold a run's lock for a moment only (to remove a killed run's
#: containers)
_BRIEF_COMMANDS = ("gprpipe status", "gprpipe cancel")


def _brief(run_dir: Path) -> bool:
    """Whether the lock's holder will let it go within a moment: ``status`` or ``cancel``
    removing containers, or a command taking or releasing it (its record empty). A run
    started then was refused as "in use by gprpipe status" (a race audit)."""
    info = holder(run_dir)
    if not info or info.get("command") in _BRIEF_COMMANDS:
        return True
    writers = flock_holders(run_dir, exclusive=True)  # (None: cannot tell)
    # a record no holder of the lock wrote: a process trying it (an older gprpipe's
    # reader) holds it for a moment over a record left by an earlier run
    return writers is not None and as_pid(info.get("pid")) not in writers


CANCEL_NAME = ".gprpipe.cancel"


@contextlib.contextmanager
def cancel_request(run_dir: Path) -> Iterator[None]:
    """Say, while the block runs, that this process (``gprpipe cancel``) stops the run of
    ``run_dir``: the run it signals reads why it was stopped (written before the signal,
    so without a race) and does not tell that its scheduler jobs go on."""
    path = Path(run_dir) / CANCEL_NAME
    with contextlib.suppress(OSError, GprpipeError):
        from gprpipe.io.atomic import atomic_write_text

        atomic_write_text(path, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    try:
        yield
    finally:
        if not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def cancel_requested(run_dir: Path) -> bool:
    """Whether a live ``gprpipe cancel`` of this host is stopping the run of ``run_dir``."""
    path = Path(run_dir) / CANCEL_NAME
    if path.is_symlink():
        return False
    try:
        info = read_json(path)
        pid = as_pid(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not pid or info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
