"""Processes at the edge: whether one is alive, and task processes that end with the run.

A run killed with SIGKILL (``kill -9``, the out-of-memory killer) releases its run
directory's lock at once; a task process it started and left running would finish its
task and write outputs and a ``done`` marker into a directory that a later run may hold
by then. Workers forked by the fork server are killed by that server when the run's end
of its socket closes; the processes the local executor starts itself (warm workers where
there is no fork server, ``GPRPIPE_FORK_SERVER=0``, and the fresh ``gprpipe step``
processes of ``GPRPIPE_FRESH_PROCESSES=1``) get the run's pid in :data:`RUN_PID_ENV` and
check every :data:`PERIOD` seconds that it is still their parent; once it is not, they
SIGKILL themselves. So do the plot step's figure workers where ``PR_SET_PDEATHSIG`` is
missing (not Linux), watching their task process. The check runs on a timer signal
between two Python bytecodes, and again before each write is renamed into place
(:func:`~gprpipe.io.atomic.only_while`): a task whose run has gone renames no output,
marker or record into place.
Polling works on every POSIX
platform (``PR_SET_PDEATHSIG`` is Linux-only and follows the thread that started the
child, not the process).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from pathlib import Path

from gprpipe.io.atomic import discard_pending, only_while

#: the pid of the run process that started this task process (set by the local executor)
RUN_PID_ENV = "GPRPIPE_RUN_PID"
#: seconds between two checks that the run is still this process's parent
PERIOD = 0.5
_armed = False  # the timer is disarmed at exit
#: the conditions :func:`end_with` set for the rest of the process
_held = contextlib.ExitStack()


def identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later process given the same pid (after it ended,
    or after a reboot): this boot's id and the process's start time; None without
    ``/proc``."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
        fields = Path(f"/proc/{int(pid)}/stat").read_bytes().rpartition(b")")[2].split()
    except (OSError, ValueError):
        return None
    return f"{boot}:{fields[19].decode()}" if len(fields) > 19 else None  # (starttime)


#: above Linux's largest process id (``/proc/sys/kernel/pid_max`` is at most 2**22)
_PID_LIMIT = 2**22


def as_pid(value: object) -> int:
    """``value`` of a record (which a hand edit may have made anything) as a process id;
    0 when it names none (``kill(0 or -N)`` would mean a process group)."""
    if isinstance(value, bool):
        return 0
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    return n if 0 < n < _PID_LIMIT else 0


def alive(pid: object, started: str | None = None) -> bool:
    """Whether a local process ``pid`` exists and has not ended: a zombie (ended, and not
    reaped by a parent that is gone or by a PID 1 that never reaps) has ended, and so has
    one whose :func:`identity` is not ``started`` (when given: its pid was reused)."""
    n = as_pid(pid)
    if not n:
        return False
    try:
        os.kill(n, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: its /proc says whether it is the one named
        pass  # (a reused pid made a task look running for ever: a review)
    try:
        stat = Path(f"/proc/{n}/stat").read_bytes()
    except OSError:  # no /proc (macOS): it exists
        return True
    fields = stat.rpartition(b")")[2].split()
    if fields and fields[0] in (b"Z", b"X"):
        return False
    return not started or identity(n) in (None, started)


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a task process started by this (the run's) process."""
    return {**env, RUN_PID_ENV: str(os.getpid())}


def end_with_run() -> None:
    """In a task process with :data:`RUN_PID_ENV`: :func:`end_with` that run. Elsewhere
    (a forked worker, a SLURM job, a container): nothing."""
    run_pid = os.environ.get(RUN_PID_ENV, "")
    if run_pid.isdigit():
        end_with(int(run_pid))


def end_with(parent: int) -> None:
    """SIGKILL this process as soon as ``parent`` is no longer its parent: checked now,
    then every :data:`PERIOD` seconds by ``SIGALRM`` (with SA_RESTART: an interrupted
    read or write resumes; Python retries the calls it does not). Nothing where there is
    no interval timer, or when called from a thread other than the main one. Its writes
    are renamed into place only while ``parent`` lives (checked before each rename; so are
    those of the processes it forks, e.g. the plot step's figure workers, which inherit
    that condition but not the timer)."""
    global _armed
    if not hasattr(signal, "setitimer"):
        return
    if threading.current_thread() is not threading.main_thread():
        return

    def check(signum: int = 0, frame: object = None) -> None:
        if os.getppid() != parent:  # the parent is gone (its orphans are re-parented)
            discard_pending()  # no half-written file of this process is left behind
            os.kill(os.getpid(), signal.SIGKILL)

    check()
    started = identity(parent)
    _held.enter_context(only_while(lambda: alive(parent, started)))  # (between two checks)
    signal.signal(signal.SIGALRM, check)
    signal.siginterrupt(signal.SIGALRM, False)
    signal.setitimer(signal.ITIMER_REAL, PERIOD, PERIOD)
    if not _armed:  # at exit the default action of SIGALRM would kill the process
        atexit.register(signal.setitimer, signal.ITIMER_REAL, 0)
        _armed = True
