"""Warm worker: one process that imports the numerics once and runs many local tasks.

The local executor has ``jobs`` of these, with one BLAS thread each: forked by the fork
server (:mod:`gprpipe.executors.forkserver`), or each started as ``python -m
gprpipe.executors.worker``. A worker reads one request per line on its request pipe (the
standard input of a started one; JSON: the task's ``gprpipe step ...`` argv, its log
file, the command line written at the top of the log, the working folder) and answers
one line (JSON: ``{"code": N}``) on its answer pipe (the standard output it had at
start-up). In between it runs the task exactly as
``python -m gprpipe step ...`` would (the same command-line entry point, so the same
markers, commit records, one-sentence errors and exit codes), with file descriptors 1
and 2 sent to the task's log. A task that kills its process (a crash, SIGKILL) ends
the worker; the executor sees the end of the pipe, fails that task and starts a new
worker. SIGINT is ignored: the executor decides when tasks stop (it terminates its
workers on Ctrl-C or cancel); a started worker whose run dies ends within half a second
(:mod:`gprpipe.io.processes`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: modules most tasks need: imported once per worker, before the first request (a step
#: that needs more, e.g. plot's matplotlib, imports it on its first task in that worker)
WARM_MODULES = (
    "numpy",
    "scipy.linalg",
    "scipy.optimize",
    "uproot",
    "h5py",
    "gprpipe.steps.runner",
    "gprpipe.steps.load",
    "gprpipe.steps.fit",
    "gprpipe.steps.limit",
    "gprpipe.steps.merge",
)

#: modules of a step that the fork server imports for the workers forked after it was
#: told that the plan has such a task (see ``WarmWorkers.preload``)
STEP_MODULES = {
    "plot": (
        "matplotlib.pyplot",
        "mplhep",
        "hepdata_lib",
        "gprpipe.steps.plot",
        "gprpipe.plotting.suite",
        "gprpipe.plotting.overlay",
        "gprpipe.plotting.spectrum",
        "gprpipe.plotting.lee",
        "gprpipe.plotting.inject",
        "gprpipe.plotting.toyscan",
        "gprpipe.plotting.displays",
        "gprpipe.steps.displays",
        "gprpipe.steps.hepdata",
        "gprpipe.steps.reach",
        "gprpipe.steps.report",
        "gprpipe.plotting.grid",
    ),
}


def warm_up(modules: Sequence[str] = WARM_MODULES) -> None:
    """Import ``modules`` (a module that fails to import is left to the task, which then
    reports the error in its own log)."""
    import importlib

    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def run_step(argv: Sequence[str]) -> int:
    """Run the task command line ``argv`` (``step ...``) in this process; returns its exit
    code."""
    from gprpipe.steps.runner import run_argv

    try:
        return run_argv(argv)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1


def _reset_after_task() -> None:
    """Leave no figure of a task open in the next one."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        with contextlib.suppress(Exception):
            plt.close("all")
    gc.collect()


def serve_one(request: dict[str, Any], devnull: int) -> int:
    """Run one task with its output in its log; returns the exit code. The task's writes
    are renamed into place only while the run that sent it (``run``: its pid and
    :func:`~gprpipe.io.processes.identity`) lives; once it is gone the worker ends itself
    (:func:`~gprpipe.io.atomic.only_while`)."""
    from gprpipe.errors import GprpipeError
    from gprpipe.io.atomic import end_unless_held, only_while, open_fresh
    from gprpipe.io.processes import alive
    from gprpipe.pipeline.state import within

    run_pid, run_started = request.get("run") or (None, None)

    def run_lives() -> bool:
        return run_pid is None or alive(run_pid, run_started)

    log = Path(request["log"])
    cwd = os.getcwd()
    try:
        within(log.parent)  # (a link put in place of the logs folder during the run)
    except GprpipeError:
        return 1  # the executor says why (and writes no log there either)
    with only_while(run_lives):
        end_unless_held()  # (the log too: a later run of the task may be writing it)
        with open_fresh(log) as fh:  # replaced, never written through a symlink
            fh.write("$ " + " ".join(request.get("command") or request["argv"]) + "\n")
            fh.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                os.chdir(request.get("cwd") or cwd)
                with warnings.catch_warnings():  # each task shows its warnings afresh
                    code = run_step(request["argv"])
            except BaseException:  # a task never ends its worker by an exception
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                os.chdir(cwd)
    _reset_after_task()
    return code


def serve(requests_fd: int, answers_fd: int, devnull: int) -> None:
    """Answer the requests read from ``requests_fd`` on ``answers_fd`` until the requests
    end (file descriptors 0, 1 and 2 are ``devnull`` between tasks)."""
    requests = os.fdopen(requests_fd, "r", encoding="utf-8")
    answers = os.fdopen(answers_fd, "w", encoding="utf-8", buffering=1)
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        t0 = time.perf_counter()
        code = serve_one(request, devnull)
        answers.write(json.dumps({"code": code, "seconds": time.perf_counter() - t0}) + "\n")


def detach_std_streams() -> int:
    """Point file descriptors 0, 1 and 2 at the null device; returns its descriptor."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return devnull


def main() -> None:
    """Serve requests (standard input) until it ends; answers on the standard output."""
    from gprpipe.io.processes import end_with_run

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_run()  # a worker the run started itself (no fork server) ends with that run
    requests, answers = os.dup(0), os.dup(1)
    devnull = detach_std_streams()
    warm_up()
    serve(requests, answers, devnull)


if __name__ == "__main__":
    main()
