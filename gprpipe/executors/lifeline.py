"""A task process started by the local executor ends with the run that started it.

A run killed with SIGKILL (``kill -9``, the out-of-memory killer) releases its run
directory's lock at once; a task process it started and left running would finish its
task and write outputs and a ``done`` marker into a directory that a later run may hold
by then. Workers forked by the fork server are killed by that server when the run's end
of its socket closes; the processes the executor starts itself (warm workers where there
is no fork server, ``GPRPIPE_FORK_SERVER=0``, and the fresh ``gprpipe step`` processes
of ``GPRPIPE_FRESH_PROCESSES=1``) get the run's pid in :data:`RUN_PID_ENV` and check
twice a second that it is still their parent: once it is not, they SIGKILL themselves
(the same end as a forked worker's; ``gprpipe status`` then reports the task failed).
Polling with a timer signal works on every POSIX platform (``PR_SET_PDEATHSIG`` is
Linux-only and follows the thread that started the child, not the process).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading

#: the pid of the run process that started this task process (set by the local executor)
RUN_PID_ENV = "GPRPIPE_RUN_PID"
#: seconds between two checks that the run is still this process's parent
PERIOD = 0.5
_armed = False  # the timer is disarmed at exit


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a task process started by this (the run's) process."""
    return {**env, RUN_PID_ENV: str(os.getpid())}


def end_with_run() -> None:
    """In a task process with :data:`RUN_PID_ENV`: SIGKILL this process as soon as the
    run process is no longer its parent (checked now, then every :data:`PERIOD` seconds
    by ``SIGALRM``). Elsewhere (a forked worker, a SLURM job, a container, a call from a
    thread other than the main one): nothing."""
    run_pid = os.environ.get(RUN_PID_ENV, "")
    if not run_pid.isdigit() or not hasattr(signal, "setitimer"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    parent = int(run_pid)

    def check(signum: int = 0, frame: object = None) -> None:
        if os.getppid() != parent:  # the run is gone (its orphans are re-parented)
            os.kill(os.getpid(), signal.SIGKILL)

    global _armed
    check()
    signal.signal(signal.SIGALRM, check)
    signal.siginterrupt(signal.SIGALRM, False)  # system calls resume (SA_RESTART), no EINTR
    signal.setitimer(signal.ITIMER_REAL, PERIOD, PERIOD)
    if not _armed:  # at exit the default action of SIGALRM would kill the process
        atexit.register(signal.setitimer, signal.ITIMER_REAL, 0)
        _armed = True
