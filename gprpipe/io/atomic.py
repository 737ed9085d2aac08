"""Atomic file writes: write a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from gprpipe.errors import GprpipeError

#: Fault injection for tests: a process with ``GPRPIPE_TEST_KILL_AFTER=<file name>`` in its
#: environment SIGKILLs itself right after it has renamed a file of that name into place.
CRASH_AFTER = "GPRPIPE_TEST_KILL_AFTER"

#: the temporary files of the writes in progress in this process (see :func:`discard_pending`)
_PENDING: set[Path] = set()
#: the folder this process's writes must resolve into, innermost last (see :func:`confined`)
_ROOTS: list[str] = []
#: what must hold before a write is renamed into place (see :func:`only_while`)
_WHILE: list[Callable[[], bool]] = []


@contextlib.contextmanager
def only_while(holds: Callable[[], bool]) -> Iterator[None]:
    """While the block runs, a write is renamed into place only if ``holds()``; once it
    does not, this process discards its writes in progress and SIGKILLs itself. For a task
    whose run may be killed meanwhile: SIGKILL releases the run's lock at once, and what the
    task wrote afterwards would land in a folder that a later run may hold by then (its
    fork server or its own poll ends the task too, but not before that write)."""
    _WHILE.append(holds)
    try:
        yield
    finally:
        _WHILE.remove(holds)


def end_unless_held() -> None:
    """What each rename of :func:`atomic_path` does first: SIGKILL this process (its
    writes in progress discarded) when a condition of :func:`only_while` fails; for the
    few writes of a task that are no rename of a file (removing a withdrawn record,
    swapping a folder, opening its log)."""
    if not all(holds() for holds in _WHILE):
        discard_pending()
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def confined(root: Path | str) -> Iterator[None]:
    """While the block runs, every write of :func:`atomic_path` and :func:`open_fresh` must
    resolve inside ``root`` (a task: its run directory). The run checks its folders when it
    plans; this catches a link put in place of one of them afterwards (a queued SLURM job,
    a long run), each time a file is written and again before it is renamed into place."""
    _ROOTS.append(os.path.realpath(root))
    try:
        yield
    finally:
        _ROOTS.pop()


def _refuse_outside(folder: Path, target: Path) -> None:
    if _ROOTS:
        check_within(folder, _ROOTS[-1], target)


def check_within(folder: Path | str, root: Path | str, target: Path | str | None = None) -> None:
    """A GprpipeError naming ``target`` (else ``folder``) when ``folder`` does not resolve
    inside ``root`` (a run directory): for the writes a run makes outside its tasks (their
    logs, a failed marker), which :func:`confined` does not cover."""
    real, top = _resolved(folder, root)
    if real != top and top not in real.parents:
        raise GprpipeError(
            f"{target or folder}: its folder resolves to {real}, outside the run directory "
            f"{top} (a link put in place of a folder of the run); nothing was written there."
        )


def forget_pending() -> None:
    """In a forked child: the writes in progress it inherited are its parent's to finish."""
    _PENDING.clear()


def discard_pending() -> None:
    """Remove the temporary files of the writes in progress: for a signal handler that ends
    the process at once (no ``finally`` of :func:`atomic_path` runs then)."""
    for tmp in list(_PENDING):
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success.

    On any exception the temporary file is removed, so a killed or failed writer never
    leaves a half-written ``target``.
    """
    target = Path(target)
    if target.is_dir():  # before any work: os.replace would refuse only at the end
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", str(target))
    try:  # the file, or a link's target (-o /dev/null --force, -o /dev/stdout: a review)
        mode = os.stat(target).st_mode
    except OSError:  # none, or a dangling link: replaced
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        why = "is a device, FIFO or socket, not a file to replace"
        raise OSError(errno.EEXIST, why, str(target))
    existing = next(p for p in target.parents if p.exists() or p == p.parent)
    if not existing.is_dir():  # a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(existing))
    _refuse_outside(existing, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _refuse_outside(target.parent, target)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent
        )
    except OSError as exc:  # name the folder, not the temporary file
        why = f"cannot write {target.name} here ({(exc.strerror or str(exc)).lower()})"
        raise type(exc)(exc.errno, why, str(target.parent)) from None
    tmp_path = Path(tmp)
    _PENDING.add(tmp_path)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        _refuse_outside(target.parent, target)
        end_unless_held()
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.discard(tmp_path)
    if os.environ.get(CRASH_AFTER) == target.name:  # fault injection (tests): die right here
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_text(target: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8, whatever the locale) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for reading (binary); OSError unless it is a regular file (links
    followed), found without waiting: a FIFO there made every command that read it wait
    for ever, and /dev/zero never ended (reviews)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "is a device, FIFO or socket, not a file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def absent(path: Path | str) -> str:
    """'' when ``path`` is a regular file (links followed), else what is there instead, as
    the end of a sentence naming it: "is missing" (also a link to nothing, which a task
    replaces), "was replaced by a folder" (a FIFO, device or socket), which a task does
    not write over: summary called a FIFO "not there", status "missing", and compare
    asked whether the limit step had run (a review)."""
    if os.path.isfile(path):
        return ""
    if not os.path.exists(path):  # (a link to nothing too: a task writes over a link)
        return "is missing"
    if os.path.isdir(path):
        return f"{REPLACED} a folder"
    return f"{REPLACED} a FIFO, device or socket"


#: how :func:`absent` begins when something else is at a file's name (a task does not
#: write over it: the user removes it)
REPLACED = "was replaced by"


def read_record(path: Path | str) -> str:
    """The text of a run's record file (run.json, a marker, a lock's holder); OSError
    unless it is a regular file (:func:`open_regular`)."""
    with open_regular(path) as fh:
        return fh.read().decode("utf-8")


def read_json(path: Path | str) -> Any:
    """:func:`read_record`'s JSON; a ValueError for any malformed document, also one
    nested too deeply for the parser (which raises RecursionError: a review)."""
    return loads_json(read_record(path))


def loads_json(text: str) -> Any:
    """``json.loads``, a document nested too deeply a ValueError like any malformed one."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("a JSON document nested too deeply") from None


def remove_stale_temps(target: Path | str) -> int:
    """Remove temporary files that a killed writer of ``target`` left beside it.

    Only the owner of ``target`` may call this (a task for its own outputs), never while
    another process could be writing ``target``. Returns the number of files removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return 0
    n = 0
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def open_fresh(path: Path | str, mode: str = "w"):
    """Open a new file at ``path`` for writing, replacing what is there: an existing file
    or symlink is unlinked first (a link is never written through), and ``O_EXCL`` with
    ``O_NOFOLLOW`` refuses a link planted in between."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_outside(path.parent, path)
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o666), mode)


def _resolved(folder: Path | str, root: Path | str) -> tuple[Path, Path]:
    """``folder`` and ``root`` with every link followed (what :func:`inside` and
    :func:`check_within` compare)."""
    return Path(os.path.realpath(folder)), Path(os.path.realpath(root))


def inside(
    folder: Path, root: Path, what: str, run_dir: bool = False, replaced: bool = False
) -> Path:
    """``folder``, once it resolves (symlinks followed) inside ``root`` (a point folder, or
    the ``run_dir``; it may itself be a link); a GprpipeError otherwise: a link there would
    lead the writes elsewhere. A folder other than ``root`` that resolves to ``root``
    itself (``exports`` a link to its point folder), or one below ``root`` reached through
    a link to another of its folders, is refused too: its files would land among others'
    (not with ``replaced``: a folder that its writer replaces whole, link and all)."""
    real, top = _resolved(folder, root)
    where = "the run directory" if run_dir else "the point folder"
    if real == top and os.path.abspath(folder) != os.path.abspath(root):
        raise GprpipeError(f"{folder}: {what} is {where} itself (a link to it); remove the link.")
    if real != top and top not in real.parents:
        also = ", or choose another base.output" if run_dir else ""
        raise GprpipeError(
            f"{folder}: {what} resolves to {real}, outside {where} {top}; remove the link{also}."
        )
    lex, lroot = Path(os.path.abspath(folder)), Path(os.path.abspath(root))
    linked = real != top / lex.relative_to(lroot) if lex.is_relative_to(lroot) else False
    if linked and real.exists() and not replaced:
        # a link to another of its folders: a point folder linked to another point's,
        # parts/limit to parts/fit (their files mixed, a committed output overwritten:
        # a review)
        raise GprpipeError(
            f"{folder}: {what} is a link to {real}, another folder of {where}; a run "
            "writes its folders itself, never through a link: remove the link."
        )
    return folder
