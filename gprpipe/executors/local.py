"""Local executor: run tasks as processes on this machine, ``jobs`` at a time.

Each task's command comes from the engine (local Python or a container); every process
gets one BLAS thread. With the local engine the tasks run in ``jobs`` warm worker
processes (:mod:`gprpipe.executors.worker`; on Linux forked by the fork server of
:mod:`gprpipe.executors.forkserver`, which imports the numerics once) that run many
tasks, each exactly as its ``gprpipe step ...`` command line would (``GPRPIPE_FRESH_PROCESSES=1``
starts one fresh process per task instead). Tasks whose outputs already hold their cache
key are skipped without starting anything, so an unchanged second run does no work.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.executors import forkserver
from gprpipe.executors.base import (
    THREAD_ENV,
    Executor,
    Hooks,
    Outcome,
    RunReport,
    TaskStatus,
    register,
)
from gprpipe.executors.forkserver import FRESH_ENV as FRESH_ENV  # re-exported
from gprpipe.executors.forkserver import ForkedWorker, ForkServer
from gprpipe.executors.worker import STEP_MODULES
from gprpipe.io.atomic import open_fresh
from gprpipe.io.processes import child_env, identity
from gprpipe.pipeline.cache import damaged_notice, freshness
from gprpipe.pipeline.state import (
    clear_state,
    forget_done,
    read_marker,
    read_state,
    within,
    write_state,
)
from gprpipe.pipeline.store import wait_for_orphan
from gprpipe.pipeline.task import Task
from gprpipe.steps.runner import remove_task_temps

if TYPE_CHECKING:
    from gprpipe.engines.base import Engine


def tail(path: Path, n: int = 8, size: int = 1 << 16) -> str:
    """The last ``n`` lines of a task's log, read from its last ``size`` bytes (a task that
    printed hundreds of MB had the run read all of it into memory, twice, a review)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - size, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-n:])


def ended_how(code: int) -> str:
    """How a task process ended, from its exit code (negative: the signal that killed it,
    as :attr:`subprocess.Popen.returncode` gives it; 128 + N: a shell's way)."""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        name = signal.Signals(number).name if number else ""
    except ValueError:
        name = ""
    if name == "SIGKILL":
        return "the task's process was killed (SIGKILL: out of memory, or killed by hand)"
    if name:
        return f"the task's process was killed ({name})"
    return f"the task's process ended with exit code {code}"


Worker = subprocess.Popen[str] | ForkedWorker  # a warm worker, spawned or forked
Children = set[subprocess.Popen[Any] | ForkedWorker]  # the task processes of one run


def _run_one(
    cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path, children: Children
) -> tuple[int, float]:
    t0 = time.perf_counter()
    within(log.parent)  # (a link put in place of the logs folder during the run)
    with open_fresh(log) as fh:  # replaced, never written through a symlink
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
        children.add(proc)
        try:
            code = proc.wait()
        finally:
            children.discard(proc)
    return code, time.perf_counter() - t0


class WarmWorkers:
    """Up to ``size`` warm worker processes (:mod:`gprpipe.executors.worker`), each running
    one task at a time for the executor's threads. On Linux the workers are forked by a
    fork server (:mod:`gprpipe.executors.forkserver`: one process imports the numerics,
    ideally prestarted by ``gprpipe run`` before it read the config, or kept from this
    process's previous run); elsewhere, or with
    ``GPRPIPE_FORK_SERVER=0``, each is a ``python`` process of its own. A worker that dies
    (its task crashed or was killed) is replaced by a new one for the next task; a worker
    is also replaced after ``recycle_after`` tasks, which bounds what a long run can
    accumulate in one process. :meth:`preload` lets workers forked later import the
    modules of a step (the plot step's matplotlib) while other tasks run."""

    def __init__(
        self,
        size: int,
        env: Mapping[str, str],
        children: Children,
        *,
        recycle_after: int = 200,
    ) -> None:
        self.size = max(1, size)
        self.children = children  # the run's, stopped by stop_children on a cancel
        self.env = dict(env)
        self.recycle_after = recycle_after
        self._idle: list[tuple[Worker, int]] = []  # (worker, tasks it ran)
        self._lock = threading.Lock()
        self._busy = 0  # workers running a task
        self._closed = False
        self._server: ForkServer | None = None
        self._step_preloads: dict[str, int] = {}  # step -> server preloads it needs
        self._preloads: list[tuple[str, tuple[str, ...]]] = []  # to send after prestart
        # the run (this process): a worker commits a task's writes only while it lives
        self._run = [os.getpid(), identity(os.getpid())]
        if forkserver.supported():
            self._server = forkserver.take_spare(self.env)
            if self._server is None:
                with contextlib.suppress(OSError):
                    self._server = ForkServer(self.env)

    def _spawn(self) -> Worker:
        if self._server is not None and self._server.usable(self.env):
            try:
                worker: Worker = self._server.fork()
                self.children.add(worker)
                return worker
            except OSError:
                pass
        proc = subprocess.Popen(
            [sys.executable, "-m", "gprpipe.executors.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_env(self.env),
            text=True,
            bufsize=1,
        )
        self.children.add(proc)
        return proc

    def preload(self, step: str, modules: Sequence[str]) -> None:
        """Have the fork server import ``modules`` once the first workers are forked
        (:meth:`prestart`); tasks of ``step`` then go to a worker forked after that."""
        if self._server is not None:
            self._preloads.append((step, tuple(modules)))

    def prestart(self, n: int) -> None:
        """Have up to ``n`` workers, idle or busy (new ones import while tasks start)."""
        with self._lock:
            while len(self._idle) + self._busy < min(n, self.size) and not self._closed:
                self._idle.append((self._spawn(), 0))
            preloads, self._preloads = self._preloads, []
        server = self._server
        for step, modules in preloads:
            if server is not None and server.usable(self.env):
                with contextlib.suppress(OSError):
                    server.preload(modules)
                    self._step_preloads[step] = server.preloads

    def _take(self, step: str = "") -> tuple[Worker, int]:
        """An idle worker (one with the preloads of ``step``), else a new one."""
        need = self._step_preloads.get(step, 0)
        old = None
        with self._lock:
            if self._closed:
                raise OSError("the run is stopping")
            self._busy += 1
            for item in list(self._idle):
                proc = item[0]
                if proc.poll() is not None:
                    self._idle.remove(item)
                    self.children.discard(proc)
                elif getattr(proc, "preloads", 0) >= need:
                    self._idle.remove(item)
                    return item
            if self._idle and len(self._idle) + self._busy > self.size:
                old = self._idle.pop(0)[0]  # replaced by one with the preloads
            new = self._spawn(), 0
        if old is not None:
            self._retire(old)
        return new

    def _retire(self, proc: Worker) -> None:
        self.children.discard(proc)
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def run(self, task: Task, cmd: Sequence[str], cwd: Path) -> tuple[int, float]:
        """Run ``task`` in a worker (its log begins with ``cmd``); (exit code, seconds)."""
        t0 = time.perf_counter()
        proc, used = self._take(task.step)
        request = {
            "argv": list(task.argv),
            "log": str(task.log),
            "command": list(cmd),
            "cwd": str(cwd),
            "run": self._run,
        }
        answer = ""
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            answer = proc.stdout.readline()
        except (OSError, ValueError):
            answer = ""
        if not answer:  # the worker died with its task (crash, kill, cancel)
            code = proc.wait()
            self.children.discard(proc)
            with self._lock:
                self._busy -= 1
            return (code if code != 0 else 1), time.perf_counter() - t0
        code = int(json.loads(answer)["code"])
        with self._lock:
            self._busy -= 1
            keep = not self._closed and used + 1 < self.recycle_after
            if keep:
                self._idle.append((proc, used + 1))
        if not keep:
            self._retire(proc)
        return code, time.perf_counter() - t0

    def close(self) -> None:
        """Stop every idle worker (busy ones are stopped by :func:`stop_children`); the fork
        server stays for this process's next run (:func:`forkserver.keep`)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for proc, _ in idle:
            self._retire(proc)
        if self._server is not None:
            forkserver.keep(self._server)  # for this process's next run


def warm_workers_wanted(engine: Engine) -> bool:
    """Warm workers serve the local engine (containers and SLURM run ``gprpipe step``
    command lines); ``GPRPIPE_FRESH_PROCESSES=1`` selects one fresh process per task."""
    return getattr(engine, "name", "") == "local" and os.environ.get(FRESH_ENV, "") != "1"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While a run's tasks run: SIGTERM (``gprpipe cancel``) raises KeyboardInterrupt, so
    that the run stops its tasks like Ctrl-C; the previous handler comes back after (a
    program that calls the run service keeps its own). Python delivers signals to the main
    thread only: a run in another thread leaves SIGTERM as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_children(children: Children, timeout: float = 10.0) -> None:
    """Terminate a run's running task processes and reap them (on cancel or SIGTERM)."""
    procs = list(children)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)  # a worker of a fork server that was killed too cannot be reaped


def container_of(cmd: Sequence[str]) -> str:
    """The container name in an engine's command line ('' for the local engine)."""
    args = list(cmd)
    return args[args.index("--name") + 1] if "--name" in args[:-1] else ""


def stop_containers(engine: Engine, cmds: Sequence[Sequence[str]]) -> None:
    """Stop the containers of these task commands (the engine's ``stop_command``)."""
    for cmd in cmds:
        stop = engine.stop_command(cmd)
        if stop:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(stop, capture_output=True, timeout=60, check=False)


#: seconds a run waits at its end for its container watchdog's last removal
WATCHDOG_WAIT = 60.0


def start_watchdog(engine: Engine, run_dir: Path) -> subprocess.Popen[bytes] | None:
    """For container engines: a process in its own session that removes this run's
    containers as soon as the run ends, however it ends (even SIGKILL): it waits for the
    end of a pipe that only this process holds open."""
    argv = engine.watchdog_argv(run_dir)
    if not argv:
        return None
    try:
        return subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


def run_local(
    tasks: Sequence[Task],
    configs: Mapping[str, Config],
    engine: Engine,
    *,
    run_dir: Path,
    jobs: int = 2,
    force: Sequence[str] | bool = False,
    on_update: Callable[[Task, Outcome], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_tick: Callable[[list[Task]], None] | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Run ``tasks`` (plan order) respecting dependencies; ``configs`` maps point -> config.

    ``force`` is True (every task) or the ids of tasks to redo regardless of their cache.
    ``on_notice`` gets one line per task whose committed output was found damaged.
    Before a task is launched its ``running`` marker names this process (and the task's
    container), so a task killed during its start-up is seen as failed once the run is
    gone; containers are stopped when the run stops (and by a watchdog if it is killed).
    ``on_tick(running)`` is called about twice a second while tasks run (live progress:
    the tasks record theirs in ``.state/<slug>.progress``). Once ``stop`` is set (checked
    about twice a second) the run stops as on Ctrl-C: its tasks, and only its, are
    stopped and marked failed ("cancelled"), and KeyboardInterrupt is raised.
    """
    forced = {t.id for t in tasks} if force is True else set(force or ())
    env = {**os.environ, **THREAD_ENV}
    report = RunReport()
    pending = list(tasks)
    known = {t.id for t in tasks}
    running: dict[Future[tuple[int, float]], Task] = {}
    commands: dict[str, list[str]] = {}
    me = {
        "run_pid": os.getpid(),
        "run_pid_started": identity(os.getpid()),
        "run_host": socket.gethostname(),
    }

    def finish(task: Task, outcome: Outcome) -> None:
        report.outcomes[task.id] = outcome
        if on_update:
            on_update(task, outcome)

    watchdog = start_watchdog(engine, run_dir)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    children: Children = set()
    warm = WarmWorkers(jobs, env, children) if warm_workers_wanted(engine) else None
    # a task process of the local engine ends with this run (a container's is stopped)
    own = child_env(env) if getattr(engine, "name", "") == "local" else env
    # Ctrl-C and SIGTERM set a flag that the loop checks (about twice a second) rather
    # than raising KeyboardInterrupt wherever the main thread is: raised inside
    # concurrent.futures.wait, it left a future's lock held and the run hung for ever
    # in the pool's shutdown (seen once in CI, in test_ctrl_c_while_the_figures_are_drawn)
    interrupted = threading.Event()

    def stopping() -> bool:
        return interrupted.is_set() or (stop is not None and stop.is_set())

    if warm is None:
        forkserver.take_spare(None)  # prestarted by the command line: not needed
    else:
        for step in {t.step for t in tasks} & set(STEP_MODULES):
            warm.preload(step, STEP_MODULES[step])
    # a task is done once this run found it fresh or ran it: an earlier run's marker
    # outlived an interruption of this one, so a task of other settings was "done" (and
    # rerun --failed had nothing to rerun; a review)
    for task in tasks:
        forget_done(task.point_dir, task.slug)
    handlers = _flag_signals(interrupted)
    try:
        while pending or running:
            if stopping():
                raise KeyboardInterrupt
            progressed = False
            for task in list(pending):
                deps = [d for d in task.deps if d in known]
                if any(
                    report.outcomes.get(d, Outcome("")).state in ("failed", "skipped") for d in deps
                ):
                    pending.remove(task)
                    clear_state(task.point_dir, task.slug)  # no stale 'done' from an old run
                    finish(task, Outcome("skipped", message="an upstream task failed"))
                    progressed = True
                    continue
                if not all(d in report.outcomes for d in deps):
                    continue
                if len(running) >= max(1, jobs):
                    break
                pending.remove(task)
                progressed = True
                if task.id not in forced:
                    fresh, notice = freshness(task, configs[task.point])
                    if fresh:
                        remove_task_temps(task)  # left by a killed, forced attempt
                        write_state(task.point_dir, task.slug, "done", "cached")
                        finish(task, Outcome("cached"))
                        continue
                    if notice and on_notice:
                        on_notice(damaged_notice(task, notice))
                t = replace(task, argv=(*task.argv, "--force")) if task.id in forced else task
                cmd = engine.command(t, run_dir=run_dir, env=THREAD_ENV)
                earlier = read_marker(task.point_dir, task.slug, "running")
                if (why := wait_for_orphan(earlier, stopping)) and on_notice:
                    on_notice(f"notice: {task.id}: {why}")
                write_state(
                    task.point_dir,
                    task.slug,
                    "running",
                    launch={**me, "container": container_of(cmd)},
                )
                commands[task.id] = cmd
                if warm is not None:
                    warm.prestart(len(pending) + len(running) + 1)
                    running[pool.submit(warm.run, t, cmd, run_dir)] = task
                else:
                    running[pool.submit(_run_one, cmd, task.log, own, run_dir, children)] = task
            if running and not progressed:
                done, _ = wait(
                    list(running),
                    return_when=FIRST_COMPLETED,
                    timeout=0.5 if on_tick or stop or handlers else None,
                )
                if on_tick:
                    on_tick(list(running.values()))
                if stopping():  # a task the signal ended too is cancelled, not failed
                    raise KeyboardInterrupt
                for fut in done:
                    task = running.pop(fut)
                    commands.pop(task.id, None)
                    try:
                        code, secs = fut.result()
                    except GprpipeError:  # its logs folder leads out of the run: below
                        code, secs = 1, 0.0
                    except OSError as exc:
                        code, secs = 127, 0.0
                        with open_fresh(task.log) as fh:
                            fh.write(f"cannot start the task: {exc}\n")
                    # judged by the task's marker, as the SLURM job is: a done marker (its
                    # outputs committed) stands also when the process died after it; an
                    # exit 0 without one ran nothing (an engine's command that did not)
                    if read_state(task.point_dir, task.slug)[0] == "done":
                        finish(task, Outcome("done", secs))
                    elif code == 0:
                        why = "exited 0 without a done marker: the task did not run"
                        write_state(task.point_dir, task.slug, "failed", why)
                        finish(task, Outcome("failed", secs, why))
                    else:
                        # the task's own one-sentence error, else the end of its log
                        state, message = read_state(task.point_dir, task.slug)
                        if state != "failed" or not message:
                            how = ended_how(code)
                            try:
                                within(task.log.parent)
                                last = tail(task.log, 1)
                                if not last or last.startswith("$ "):  # it said nothing
                                    last = how
                                message = tail(task.log) + f"\n{how}"
                            except GprpipeError as exc:
                                last = message = str(exc)
                            write_state(task.point_dir, task.slug, "failed", last)
                        finish(task, Outcome("failed", secs, message))
            elif not running and not progressed:  # unreachable dependencies
                for task in pending:
                    finish(task, Outcome("skipped", message="dependencies cannot run"))
                pending.clear()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM (see sigterm_interrupts) or ``stop``
        stop_containers(engine, list(commands.values()))
        stop_children(children)
        for task in running.values():  # a task that finished just before is kept as done
            if read_state(task.point_dir, task.slug)[0] != "done":
                write_state(task.point_dir, task.slug, "failed", "cancelled")
        raise
    finally:
        stop_containers(engine, list(commands.values()))  # none left after a normal end
        pool.shutdown(wait=True, cancel_futures=True)
        if warm is not None:
            warm.close()
        if watchdog is not None and watchdog.stdin:
            watchdog.stdin.close()  # the watchdog removes what is left, then exits
            # ... before the run gives up its lock: it removes by the folder's label, so
            # the next run's first containers would be among what it finds
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(WATCHDOG_WAIT)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return report


def _flag_signals(flag: threading.Event) -> dict[int, Any]:
    """Make SIGINT and SIGTERM set ``flag`` (main thread only: Python delivers signals
    there); the handlers they had, to be put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: object) -> None:
        flag.set()

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


@register
class LocalExecutor(Executor):
    """Tasks as processes of this machine (warm workers for the local engine), ``jobs`` at
    a time; :meth:`submit` returns when every task has ended."""

    name = "local"
    blocking = True

    def __init__(self, run_dir: Path, engine: Engine, *, jobs: int = 2) -> None:
        super().__init__(run_dir, engine)
        self.jobs = max(1, int(jobs))

    @classmethod
    def from_config(
        cls, run_dir: Path, engine: Engine, config: Config, **overrides: object
    ) -> LocalExecutor:
        jobs = overrides.get("jobs") or config.base.jobs
        return cls(run_dir, engine, jobs=int(str(jobs)))

    def submit(
        self,
        tasks: Sequence[Task],
        *,
        configs: dict[str, Config] | None = None,
        force: Sequence[str] | bool = False,
        resubmit: bool = False,
        hooks: Hooks | None = None,
    ) -> RunReport:
        if configs is None:
            raise ValueError("the local executor needs the point configs")
        hooks = hooks or Hooks()
        return run_local(  # (it takes Ctrl-C and SIGTERM itself while its tasks run)
            tasks,
            configs,
            self.engine,
            run_dir=self.run_dir,
            jobs=self.jobs,
            force=force,
            on_update=hooks.on_update,
            on_notice=hooks.on_notice,
            on_tick=hooks.on_tick,
            stop=hooks.stop,
        )

    @classmethod
    def poll_run(cls, run_dir: Path, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
        """The markers; a ``running`` one whose run or process is gone is ``failed``."""
        from gprpipe.pipeline.store import task_states

        states = task_states(tasks)
        return {t.id: TaskStatus(t.id, *states[t.id], log=t.log) for t in tasks}
