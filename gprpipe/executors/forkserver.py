"""Fork server of the warm workers: one process imports the numerics once and forks a
worker for each one the local executor asks for.

``python -m gprpipe.executors.forkserver FD`` imports :data:`worker.WARM_MODULES` and then
serves the executor over the Unix socket ``FD`` (messages of one datagram each):

- ``fork TOKEN`` with two file descriptors (the new worker's request and answer pipes):
  fork a worker that serves them (:func:`worker.serve`); answer ``pid TOKEN PID``;
- ``preload MODULE ...``: import these too (workers forked later have them: the plot
  step's matplotlib, for a plan with plot tasks);
- when a worker ends: ``exit PID CODE`` (``CODE`` as :attr:`subprocess.Popen.returncode`).

The server ends when the socket closes (the process that started it closed it or ended,
however it ended), or after :data:`CLAIM_TIMEOUT` seconds without a request when nothing
was ever asked of it. A worker still running when the socket closes is SIGKILLed: its
run died without stopping it, and it must not write into a run directory whose lock that
death released (a loaded machine may take seconds to schedule the server, so the worker
also checks that its run lives before each write it renames into place: see
:func:`gprpipe.executors.worker.serve_one`).

:class:`ForkServer` is the executor's side; :class:`ForkedWorker` stands for one forked
worker with the part of :class:`subprocess.Popen`'s interface the executor uses (``pid``,
``stdin``, ``stdout``, ``poll``, ``wait``, ``terminate``, ``kill``). A process has at most
one spare server for its next run: :func:`prestart` starts one at the very beginning of
``gprpipe run``/``rerun`` (from the command line's entry points), so that its imports
overlap the reading and planning of the config, and :func:`keep` keeps the server of a run
that ended, so that a process running several (a notebook calling the run service, the
test suite) imports the numerics once (until it has been idle for :data:`KEEP_TIMEOUT`
seconds); :func:`take_spare` hands the spare to the
executor. Each worker keeps the protocol of a spawned one: its own log per task,
``SIGINT`` ignored, one BLAS thread, and a crash ends only that worker. Only this
module's standard-library imports happen before the fork.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from gprpipe.io import processes
from gprpipe.io.atomic import read_json

#: seconds an unclaimed server waits for its first request before it ends (a prestarted
#: server of a run that turned out not to use local workers, e.g. SLURM)
CLAIM_TIMEOUT = 120.0
#: seconds a server kept from a run waits for this process's next run before it is closed
#: (it holds the imported numerics, about 150 MB, for nothing once the process is idle)
KEEP_TIMEOUT = 300.0
#: set to 0: spawn each warm worker as its own ``python`` process (no fork server)
FORK_ENV = "GPRPIPE_FORK_SERVER"
#: set to 1: one fresh ``python -m gprpipe step`` process per local task (no warm workers)
FRESH_ENV = "GPRPIPE_FRESH_PROCESSES"
_MSG = 4096


def supported() -> bool:
    """A fork server needs ``fork`` (Linux; macOS system libraries are not fork-safe)."""
    return sys.platform.startswith("linux") and os.environ.get(FORK_ENV, "") != "0"


# ---------------------------------------------------------------------------- server side
def _serve(sock: socket.socket) -> None:
    from gprpipe.executors import worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the executor decides when workers stop
    devnull = worker.detach_std_streams()
    worker.warm_up()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    live: set[int] = set()  # workers not yet reaped
    if _loop(sock, sel, wake_r, wake_w, devnull, live):
        _kill_orphans(live)


def _kill_orphans(live: set[int]) -> None:
    """SIGKILL the workers still running when the executor's end of the socket is closed:
    the executor stops and reaps its workers before it closes it, so these belong to a run
    that died (SIGKILL, out of memory) and released its run directory's lock; they must not
    go on writing outputs and markers there, next to a later run that took the lock."""
    for pid in live:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in live:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)


def _loop(
    sock: socket.socket,
    sel: selectors.BaseSelector,
    wake_r: int,
    wake_w: int,
    devnull: int,
    live: set[int],
) -> bool:
    """Serve requests; True when the executor's end of the socket is closed, False when
    nothing was asked in time."""
    from gprpipe.executors import worker

    claimed = False
    while True:
        events = sel.select(None if claimed else CLAIM_TIMEOUT)
        if not events:  # nobody asked for a worker in time
            return False
        for key, _ in events:
            if key.fileobj == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                continue
            msg, fds, _, _ = socket.recv_fds(sock, _MSG, 2)
            if not msg:  # the executor's end is closed
                return True
            claimed = True
            words = msg.decode().split()
            if words[0] == "fork" and len(fds) == 2:
                pid = os.fork()
                if pid == 0:  # the worker
                    code = 1
                    try:
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        sel.close()
                        sock.close()
                        os.close(wake_r)
                        os.close(wake_w)
                        worker.serve(fds[0], fds[1], devnull)
                        code = 0
                    finally:
                        os._exit(code)
                live.add(pid)
                for fd in fds:
                    os.close(fd)
                try:
                    sock.send(f"pid {words[1]} {pid}".encode())
                except OSError:  # the executor died after it asked (requests left queued)
                    return True
            elif words[0] == "preload":
                worker.warm_up(words[1:])
            else:
                for fd in fds:
                    os.close(fd)
        while True:  # report every worker that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            live.discard(pid)
            with contextlib.suppress(OSError):
                sock.send(f"exit {pid} {os.waitstatus_to_exitcode(status)}".encode())


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        _serve(sock)
    finally:
        sock.close()
        os._exit(0)  # nothing to flush: skip tearing down the imported modules


# -------------------------------------------------------------------------- executor side
class ForkServer:
    """The executor's handle on a fork server process started with ``env``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gprpipe.executors.forkserver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self.env,
            )
        finally:
            theirs.close()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pids: dict[int, int] = {}  # token -> pid
        self._exits: dict[int, int] = {}  # pid -> exit code
        self._tokens = 0
        self.preloads = 0  # preload requests sent (a worker forked after has them)
        self.alive = True
        threading.Thread(target=self._read, name="gprpipe-forkserver", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                msg = self._sock.recv(_MSG)
            except OSError:
                msg = b""
            with self._cond:
                if not msg:
                    self.alive = False
                    self._cond.notify_all()
                    return
                kind, a, b = msg.decode().split()
                if kind == "pid":
                    self._pids[int(a)] = int(b)
                elif kind == "exit":
                    self._exits[int(a)] = int(b)
                self._cond.notify_all()

    def _send(self, text: str, fds: Sequence[int] = ()) -> None:
        with self._send_lock:
            socket.send_fds(self._sock, [text.encode()], list(fds))

    def fork(self) -> ForkedWorker:
        """A new worker (forked as soon as the server has finished its imports)."""
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        with self._cond:
            self._tokens += 1
            token = self._tokens
        try:
            self._send(f"fork {token}", [req_r, ans_w])
        except OSError:
            os.close(req_w)
            os.close(ans_r)
            raise
        finally:  # the server has its own copies now
            os.close(req_r)
            os.close(ans_w)
        stdin = os.fdopen(req_w, "w", encoding="utf-8", buffering=1)
        stdout = os.fdopen(ans_r, "r", encoding="utf-8")
        return ForkedWorker(self, token, stdin, stdout, self.preloads)

    def preload(self, modules: Sequence[str]) -> None:
        """Have workers forked from now on import ``modules`` too (imported once, here)."""
        self._send("preload " + " ".join(modules))
        self.preloads += 1

    def forked_pids(self) -> set[int]:
        """The pids of the workers this server has forked so far."""
        with self._cond:
            return set(self._pids.values())

    def pid_of(self, token: int, timeout: float | None = None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: token in self._pids or not self.alive, timeout)
            return self._pids.get(token)

    def exit_of(self, pid: int, timeout: float | None = 0.0) -> int | None:
        with self._cond:
            if timeout != 0.0:
                self._cond.wait_for(lambda: pid in self._exits or not self.alive, timeout)
            return self._exits.get(pid)

    def running(self) -> bool:
        return self.alive and self.proc.poll() is None

    def usable(self, env: Mapping[str, str]) -> bool:
        return self.running() and dict(env) == self.env

    def close(self, timeout: float = 10.0, *, at_once: bool = False) -> None:
        """End the server; its workers must have been stopped before (a worker still
        running would be killed: the server takes it for a dead run's). ``at_once``:
        without waiting for it to finish what it is importing (it is terminated)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        try:
            # it ends on the closed socket, once its imports are done
            self.proc.wait(0.0 if at_once else 0.5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ForkedWorker:
    """One worker forked by a :class:`ForkServer` (a :class:`subprocess.Popen` stand-in)."""

    def __init__(
        self, server: ForkServer, token: int, stdin: IO[str], stdout: IO[str], preloads: int
    ) -> None:
        self.server, self.token = server, token
        self.stdin: IO[str] | None = stdin
        self.stdout: IO[str] | None = stdout
        self.preloads = preloads  # the server's preloads this worker was forked with
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        """The worker's pid (None while the server has not forked it yet)."""
        return self.server.pid_of(self.token, timeout=0)

    def _finish(self, code: int) -> int:
        self.returncode = code
        for f in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                if f is not None:
                    f.close()
        return code

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        pid = self.pid
        if pid is None:
            return None if self.server.alive else self._finish(1)
        code = self.server.exit_of(pid)
        if code is None and not self.server.alive:
            if processes.alive(pid):  # (a zombie, which nobody reaps, has ended)
                return None
            code = 1  # its server is gone: the exit code is lost
        return None if code is None else self._finish(code)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        pid = self.server.pid_of(self.token, timeout)
        code = None if pid is None else self.server.exit_of(pid, timeout)
        while code is None:
            if self.poll() is not None:
                return self.returncode  # type: ignore[return-value]
            # a server that ended (killed, out of memory) answers at once: the worker,
            # alive a moment longer, is waited for here (it raised at once, and the run
            # stopped with "internal error: TimeoutExpired", a review)
            if self.server.alive or (deadline is not None and time.monotonic() >= deadline):
                raise subprocess.TimeoutExpired(f"worker {pid}", timeout or 0.0)
            time.sleep(0.02)
        return self._finish(code)

    def send_signal(self, sig: int) -> None:
        pid = self.pid
        if pid is None:  # not forked yet: it ends as soon as it is, on its empty input
            if self.stdin is not None:
                with contextlib.suppress(OSError):
                    self.stdin.close()
            return
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# --------------------------------------------------------------------- spare server
#: this process's server for its next run (prestarted, or kept from its last run)
_SPARE: ForkServer | None = None
_SPARE_LOCK = threading.Lock()  # runs in threads of one process take and keep it
_EXPIRY: threading.Timer | None = None  # closes a kept spare that no run took in time


def worker_env() -> dict[str, str]:
    """The environment of the local executor's workers: this one, one BLAS thread."""
    from gprpipe.executors.base import THREAD_ENV

    return {**os.environ, **THREAD_ENV}


def _wants_workers(argv: Sequence[str]) -> bool:
    """Whether ``gprpipe ARGV`` probably runs tasks in local warm workers (a wrong guess
    costs one process's imports: an unclaimed server ends by itself)."""
    args = [a for a in argv if a != "--debug"]
    if not args or args[0] not in ("run", "rerun"):
        return False
    if any(a in ("--dry-run", "--help", "-h") for a in args):
        return False
    if args[0] == "rerun" and not _recorded_local(args[1:]):  # it runs where its run did
        return False
    for i, a in enumerate(args):
        for opt in ("--engine", "--executor", "--set"):
            value = None
            if a == opt and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(opt + "="):
                value = a.split("=", 1)[1]
            if value is None:
                continue
            if opt == "--set":
                key, _, value = value.partition("=")
                if key.strip() not in ("base.engine", "base.executor"):
                    continue
            if value.strip().strip("'\"") != "local":
                return False
    return os.environ.get(FRESH_ENV, "") != "1"


#: the options of ``gprpipe rerun`` that take a value (the command line's, checked by a
#: test: this module reads argv before the command line is imported)
RERUN_VALUE_OPTIONS = ("-j", "--jobs", "--masses", "--wait-lock")


def _recorded_local(args: Sequence[str]) -> bool:
    """Whether the run folder named in ``gprpipe rerun ARGS`` recorded the local engine
    and executor (True when it cannot tell: the guess costs at most one server). Read
    here, not through :mod:`gprpipe.pipeline.store`, which would import the config layer
    before the server starts."""
    folder = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in RERUN_VALUE_OPTIONS:
            i += 2
            continue
        if not a.startswith("-"):
            folder = a
            break
        i += 1
    if folder is None:
        return True
    try:
        info = read_json(os.path.join(folder, "run.json"))
    except (OSError, ValueError):
        return True
    if not isinstance(info, dict):
        return True
    return bool(info.get("executor", "local") == "local" == info.get("engine", "local"))


def _set_spare(server: ForkServer, expiry: threading.Timer | None = None) -> None:
    global _SPARE, _EXPIRY
    with _SPARE_LOCK:
        old, _SPARE = _SPARE, server
        old_expiry, _EXPIRY = _EXPIRY, expiry
    if old_expiry is not None:
        old_expiry.cancel()
    if old is not None and old is not server:
        old.close(at_once=True)


def prestart(argv: Sequence[str]) -> None:
    """Start a fork server now if ``gprpipe ARGV`` will probably want warm workers."""
    if _SPARE is None and supported() and _wants_workers(argv):
        with contextlib.suppress(OSError):
            _set_spare(ForkServer(worker_env()))


def keep(server: ForkServer) -> None:
    """Keep the server of a run that ended for this process's next run (its workers must
    have been stopped), for at most :data:`KEEP_TIMEOUT` seconds; a server that died is
    closed."""
    if server.running():
        expiry = threading.Timer(KEEP_TIMEOUT, _expire)
        expiry.daemon = True
        _set_spare(server, expiry)
        expiry.start()
    else:
        server.close(at_once=True)


def _expire() -> None:
    """Close the spare kept by the timer that calls this, if no run took it since."""
    global _SPARE, _EXPIRY
    with _SPARE_LOCK:
        if _EXPIRY is not threading.current_thread() or _SPARE is None:
            return
        server, _SPARE, _EXPIRY = _SPARE, None, None
    server.close(at_once=True)


def spare() -> ForkServer | None:
    """This process's spare server (prestarted, or kept from its last run), left in place;
    None if there is none."""
    with _SPARE_LOCK:
        return _SPARE


def take_spare(env: Mapping[str, str] | None) -> ForkServer | None:
    """The spare server if it serves ``env`` (else, or with ``env`` None, it is closed);
    None if there is none."""
    global _SPARE, _EXPIRY
    with _SPARE_LOCK:
        server, _SPARE = _SPARE, None
        expiry, _EXPIRY = _EXPIRY, None
    if expiry is not None:
        expiry.cancel()
    if server is not None and (env is None or not server.usable(env)):
        server.close(at_once=True)
        server = None
    return server


atexit.register(take_spare, None)  # the spare ends with this process, whatever it ran

if __name__ == "__main__":
    main()
