"""Commit records: a task's outputs count only together, and only while undamaged.

A task writes each output atomically (temporary file, then rename), then, last, its commit
record ``<point_dir>/.state/<slug>.commit``: the cache key and the sha256 of every file it
wrote (paths relative to the point folder, so a moved or copied run stays valid). The
record is removed before the task writes anything, so a task killed between two outputs
(``limit.h5`` and ``scan.csv``) leaves no record, and its outputs are not fresh. Before an
output is reused (skipped as cached, or read as another task's input) its digest is
compared with the record; a mismatch (an emptied ``scan.csv``, a deleted plot, flipped
bytes in an HDF5 payload) makes the task run again.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path, PurePosixPath
from typing import Any

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import (
    REPLACED,
    absent,
    atomic_write_text,
    end_unless_held,
    inside,
    read_json,
)
from gprpipe.io.hdf5 import sha256_file
from gprpipe.pipeline.state import marker, read_state, state_dir
from gprpipe.pipeline.task import Task

SUFFIX = ".commit"


def commit_path(task: Task) -> Path:
    return state_dir(task.point_dir) / f"{task.slug}{SUFFIX}"


def read_commit(task: Task) -> dict[str, Any] | None:
    """The task's commit record, or None when there is none (or it is unreadable)."""
    return _read_record(commit_path(task))


def _read_record(path: Path) -> dict[str, Any] | None:
    """A commit record file, or None when it is missing or unreadable."""
    try:
        rec = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("files"), dict):
        return None
    if not all(isinstance(d, str) and _in_point(rel) for rel, d in rec["files"].items()):
        return None  # not what gprpipe writes: nothing to vouch for, nothing to read out there
    return rec


def _in_point(rel: object) -> bool:
    """Whether ``rel`` is a path inside a point folder as commit records name them."""
    if not isinstance(rel, str) or not rel:
        return False
    parts = PurePosixPath(rel)
    return not parts.is_absolute() and ".." not in parts.parts


def clear_commit(task: Task) -> None:
    """Withdraw the record: from now on the task's outputs are not fresh."""
    end_unless_held()  # (after a freshness check that may have taken seconds)
    commit_path(task).unlink(missing_ok=True)


def write_commit(task: Task, cache_key: str, files: Iterable[Path]) -> None:
    """Record ``cache_key`` and the digest of every file the task wrote (written last)."""
    point = Path(task.point_dir)
    paths = dict.fromkeys([*task.outputs, *files])
    digests = {}
    for p in paths:
        rel = Path(p).relative_to(point).as_posix()
        digests[rel] = sha256_file(p)
    rec = {"task": task.id, "cache_key": cache_key, "time": time.time(), "files": digests}
    atomic_write_text(commit_path(task), json.dumps(rec, indent=1, sort_keys=True) + "\n")


def check_outputs(task: Task, cache_key: str) -> tuple[bool, str]:
    """(fresh, notice). Fresh: a record with ``cache_key`` whose every file is intact.

    ``notice`` is a short reason when a committed output was damaged or removed (the
    caller says it reruns the task); it is empty when the task simply has not run yet
    or its inputs or config changed.
    """
    rec = read_commit(task)
    if rec is None or rec.get("cache_key") != cache_key:
        return False, ""
    point = Path(task.point_dir)
    files: dict[str, str] = rec["files"]
    for out in task.outputs:
        if Path(out).relative_to(point).as_posix() not in files:
            return False, ""
    for rel, digest in files.items():
        p = point / rel
        if there := absent(p):
            return False, f"{rel} {there}"
        if sha256_file(p) != digest:
            return False, f"{rel} differs from what the task wrote (sha256 mismatch)"
    return True, ""


def rerecord(point_dir: Path, files: Iterable[Path]) -> None:
    """Record the new sha256 of ``files`` that gprpipe itself wrote again (the report and
    index, rewritten to list an export) in the commit records of ``point_dir`` that name
    them: a rewrite by the tool is not damage (``status`` read it as a failed plot task)."""
    point = Path(point_dir)
    for path in state_dir(point).glob(f"*{SUFFIX}"):
        rec = _read_record(path)
        if rec is None:
            continue
        named = {
            rel: f
            for f in map(Path, files)
            if f.resolve().is_relative_to(point.resolve())
            and (rel := f.resolve().relative_to(point.resolve()).as_posix()) in rec["files"]
        }
        if named:
            rec["files"].update({rel: sha256_file(f) for rel, f in named.items()})
            atomic_write_text(path, json.dumps(rec, indent=1, sort_keys=True) + "\n")


def run_files(run_dir: Path) -> set[Path]:
    """The files a run keeps (resolved paths): ``run.json``, ``index.html`` and the grid's
    figures, and per
    point folder (``run_dir`` itself, or its subfolders holding ``.state``) ``config.toml``,
    ``report.html`` and every file that a commit record there names."""
    from gprpipe.pipeline.plan import GRID_FIGURES, INDEX, RUN_JSON, Layout

    run_dir = Path(run_dir).resolve()
    out = {run_dir / RUN_JSON, run_dir / INDEX}
    out |= {p for pattern in GRID_FIGURES for p in run_dir.glob(pattern)}
    points = [run_dir, *(d for d in run_dir.iterdir() if d.is_dir())]
    for point in (d for d in points if state_dir(d).is_dir()):
        out |= {Layout(point).config, Layout(point).report}
        for path in state_dir(point).glob(f"*{SUFFIX}"):
            if (rec := _read_record(path)) is not None:
                out |= {point / rel for rel in rec["files"]}
    return out


def damage_signature(task: Task) -> tuple[tuple[str, int, int, int], ...]:
    """What :func:`damage` depends on, from ``stat`` alone: the commit record and every file
    it names (path, inode, size, mtime), so a caller may keep its answer while this stays."""

    def sig(path: Path) -> tuple[str, int, int, int]:
        try:
            st = path.stat()
        except OSError:
            return (str(path), -1, -1, -1)
        return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)

    rec = read_commit(task)
    files = sorted(rec["files"]) if rec is not None else []
    return (sig(commit_path(task)), *(sig(Path(task.point_dir) / rel) for rel in files))


def damage(task: Task) -> str:
    """Why the committed outputs of a finished ``task`` are no longer what it wrote (a file
    edited, truncated or removed since, or its commit record unreadable or gone: every task
    that finishes writes one), or '' when they are intact."""
    rec = read_commit(task)
    if rec is None:
        record = commit_path(task).relative_to(task.point_dir)
        return f"{record} is {'unreadable' if commit_path(task).exists() else 'missing'}"
    return check_outputs(task, str(rec.get("cache_key")))[1]


def with_damage(
    tasks: Iterable[Task],
    states: dict[str, tuple[str, str]],
    damage_of: Callable[[Task], str] | None = None,
) -> None:
    """Turn the state of each finished task whose outputs were damaged since (``damage_of``,
    default :func:`damage`; a watcher passes a memo of it) into ``failed``, with the reason:
    what ``status`` and ``summary`` show, and the finished tasks that ``rerun --failed``
    redoes. A task whose marker is no longer ``done`` by then is being redone (a run
    marks it running, then withdraws its record): its marker's state, not a damage; one
    whose ``done`` marker was written anew meanwhile (redone whole) is checked again."""
    for t in tasks:
        if states[t.id][0] != "done":
            continue
        seen = done_marker_id(t)
        if not (why := (damage_of or damage)(t)):
            continue
        now = read_state(t.point_dir, t.slug)
        if now[0] == "done" and done_marker_id(t) != seen:
            why = damage(t)
        if now[0] == "done" and why:
            redo = (
                "remove it, then rerun --failed" if REPLACED in why else "rerun --failed redoes it"
            )
            now = ("failed", f"{why} since the task finished; {redo}")
        states[t.id] = now


def done_marker_id(task: Task) -> tuple[int, int] | None:
    """The inode and mtime of ``task``'s ``done`` marker (None: none): what tells a marker
    written anew from the one read before."""
    try:
        st = marker(task.point_dir, task.slug, "done").stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def recorded_digest(producer: Task, path: Path) -> str | None:
    """The sha256 that ``producer``'s commit record holds for ``path``, or None when it
    committed no such file (no record: killed, running, or never run)."""
    rec = read_commit(producer)
    rel = Path(path).relative_to(producer.point_dir).as_posix()
    return None if rec is None else rec["files"].get(rel)


def damaged(producer: Task, path: Path) -> bool:
    """Whether ``path``, which ``producer`` committed, differs from what it wrote (False
    when it committed no such file, or the file is gone)."""
    digest = recorded_digest(producer, path)
    return digest is not None and Path(path).is_file() and sha256_file(path) != digest


def verify_inputs(task: Task, producers: dict[Path, Task]) -> None:
    """Raise a GprpipeError when an input that another task wrote is damaged or was never
    committed (its task was killed before it finished)."""
    for p in task.inputs:
        producer = producers.get(Path(p))
        if producer is None:
            continue
        digest = recorded_digest(producer, Path(p))
        if digest is None:
            if read_state(producer.point_dir, producer.slug)[0] == "failed":
                # e.g. a SLURM array after one whose element failed (afterany)
                raise GprpipeError(
                    f"{p}: its task {producer.id} failed; rerun --failed redoes it and "
                    "what follows it"
                )
            raise GprpipeError(
                f"{p}: input not committed by its task {producer.id} (killed before it "
                "finished?); run the point again to recompute it"
            )
        if not Path(p).is_file() or sha256_file(p) != digest:
            raise GprpipeError(
                f"{p}: input damaged since its task {producer.id} wrote it (sha256 "
                "mismatch); run the point again to recompute it"
            )


def unplanned_inputs(
    tasks: Sequence[Task],
    producers: Mapping[str, dict[Path, Task]],
    current: Callable[[Task], bool],
) -> list[str]:
    """Why ``tasks`` cannot start: an input whose producing task (``producers`` per point)
    is not among them and which the run does not hold finished (committed), or holds made
    by other settings or inputs (``current(producer)`` is False: e.g. ``load.h5`` of
    another rebinning, when only fit and limit run). One sentence per point for the steps
    it lacks (e.g. a limit planned without load and fit in a new run directory), one per
    point and step for a damaged or other input."""
    planned = {t.id for t in tasks}
    # point -> step -> (reading task, what it reads, None: not finished, else the sentence
    # of a damaged or other input)
    found: dict[str, dict[str, tuple[str, str, str | None]]] = {}
    folder: dict[str, Path] = {}
    for t in tasks:
        for p in t.inputs:
            producer = producers[t.point].get(Path(p))
            if producer is None or producer.id in planned:
                continue
            if producer.step in found.get(t.point, {}):  # one reason per step
                continue
            rel = Path(p).relative_to(producer.point_dir).as_posix()
            what = f"{rel} of the {producer.step} step"
            reads = f"{t.id} reads {what}"
            add = f": add '{producer.step}' to steps.run (or --steps)."
            why: str | None
            if recorded_digest(producer, Path(p)) is None or not Path(p).is_file():
                why = None
            elif damaged(producer, Path(p)):  # a rerun of t alone would fail again
                why = (
                    f"{reads}, which steps.run leaves out, and the one in "
                    f"{producer.point_dir} differs from what its task wrote (sha256 "
                    f"mismatch){add}"
                )
            elif not current(producer):
                why = (
                    f"{reads}, which steps.run leaves out, and the one in "
                    f"{producer.point_dir} was made with other settings or inputs than this "
                    f"config's (or by another gprpipe version){add}"
                )
            else:
                continue
            found.setdefault(t.point, {})[producer.step] = (t.id, what, why)
            folder[t.point] = producer.point_dir
    out: list[str] = []
    for point, steps in found.items():  # per point: one sentence for the steps it lacks
        absent = {step: (tid, what) for step, (tid, what, why) in steps.items() if why is None}
        if absent:
            first = next(iter(absent.values()))[0]
            phrases = [  # the first reading task named once
                what if i and tid == first else f"{tid} reads {what}"
                for i, (tid, what) in enumerate(absent.values())
            ]
            ones = "one" if len(absent) == 1 else "ones"
            out.append(
                f"{_and(phrases)}, which steps.run leaves out, and {folder[point]} holds no "
                f"finished {ones}: add {_and([repr(s) for s in absent])} to steps.run (or "
                "--steps)."
            )
        out += [why for _, _, why in steps.values() if why is not None]
    return out


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def as_recorded(path: Path | str) -> tuple[bool, str] | None:
    """Whether ``path`` (a file of a point folder) holds the bytes the commit record naming
    it recorded, and the task of that record; None when no record names it."""
    path = Path(path)
    for record in sorted(state_dir(path.parent).glob(f"*{SUFFIX}")):
        try:
            rec = read_json(record)
            digest = rec["files"][path.name]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        same = path.is_file() and sha256_file(path) == digest  # (a folder at its name: not)
        return same, str(rec.get("task", "?"))
    return None


def vouched(path: Path | str) -> Path:
    """``path``, an output in a point folder, once the commit record of the task that wrote
    it vouches for its bytes; a GprpipeError saying why otherwise.

    For the commands that read a run's outputs outside a run (exports, reach, compare): they
    never pass on a damaged file, nor one that no task finished writing.
    """
    path = Path(path)
    match = as_recorded(path)
    if match is None:
        raise GprpipeError(
            f"{path}: no task of this run has committed it (its task is running or was "
            "killed before it finished, or the file was copied in); run the point again to "
            "recompute it."
        )
    if (there := absent(path)).startswith(REPLACED):  # (a task never writes over it)
        raise GprpipeError(
            f"{path} {there} since its task {match[1]} wrote it: remove it, then run the "
            "point again to recompute it."
        )
    if not match[0]:
        what = "is no file, unlike" if not path.is_file() else "differs from"
        raise GprpipeError(
            f"{path}: {what} what its task {match[1]} wrote"
            + (" (sha256 mismatch)" if path.is_file() else "")
            + "; run the point again to recompute it."
        )
    return path


EXPORTS = "exports.json"  # in .state/: which fit an export of the point folder came from


def record_export(
    point_dir: Path,
    files: Iterable[Path],
    source: Path,
    digest: str | None = None,
    *,
    observed: bool = True,
    forget: Iterable[Path] = (),
    also: Iterable[Path] = (),
) -> None:
    """Note, for the files an export command wrote into ``point_dir``, the sha256 of the
    ``source`` output (``fit.h5``) they were made from (``digest``, if the caller has it)
    and of the outputs ``also`` read (``limit.h5`` for the statuses that leave masses out;
    None where absent); :func:`stale_exports` compares. ``observed``: they may carry
    observed counts (made from an unblinded fit; a blinded run refuses a folder that holds
    such files). ``forget``: files of earlier exports the command removed."""
    point_dir = Path(point_dir)
    inside(state_dir(point_dir), point_dir, "the state folder")
    known = _export_record(point_dir)
    for f in forget:  # files the command removed (not those merely absent now: a moved
        if Path(f).resolve().is_relative_to(point_dir.resolve()):  # export may come back)
            known.pop(Path(f).resolve().relative_to(point_dir.resolve()).as_posix(), None)
    digest = digest or sha256_file(source)
    read = {Path(a).name: sha256_file(a) if Path(a).is_file() else None for a in also}
    for f in files:
        if Path(f).resolve().is_relative_to(point_dir.resolve()):
            rel = Path(f).resolve().relative_to(point_dir.resolve()).as_posix()
            known[rel] = {"source": Path(source).name, "sha256": digest}
            if Path(f).is_file():  # the export as written: a hand edit makes it not current
                known[rel]["file_sha256"] = sha256_file(f)
            if read:
                known[rel]["also"] = read
            if not observed:
                known[rel]["observed"] = False
    text = json.dumps(known, indent=1, sort_keys=True) + "\n"
    atomic_write_text(state_dir(point_dir) / EXPORTS, text)


def _export_record(point_dir: Path) -> dict[str, Any]:
    """``.state/exports.json`` of the point folder: export file -> its source's digest
    ({} when there is none, or it is unreadable)."""
    try:
        known = read_json(state_dir(point_dir) / EXPORTS)
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


#: folders of a point whose files (any depth) are exports (hepdata*: the plot step's own)
EXPORT_DIRS = ("export*", "hepdata*", "pyhf*", "spey*")
#: the point folder's own files that are exports (written there with -o)
EXPORT_SUFFIXES = (".json", ".yaml", ".yml", ".csv", ".tar.gz", ".tgz", ".zip")
#: what the plot step writes among them (not recorded: it is no export command's)
PLOT_STEP_EXPORTS = "hepdata*"


def export_files(point_dir: Path, folders: Sequence[str] = EXPORT_DIRS) -> list[str]:
    """Relative paths of the export products of a point (or run) folder: files under
    ``folders`` (name patterns; any depth) and JSON, YAML, CSV and archive files of the
    folder itself (an export written there with ``-o``), never the run's own tables and
    bookkeeping."""
    from gprpipe.pipeline.plan import RUN_JSON, Layout  # (plan imports the config layer)

    point_dir = Path(point_dir)
    found: list[str] = []
    for folder in sorted({f for pat in folders for f in point_dir.glob(pat) if f.is_dir()}):
        found += [
            p.relative_to(point_dir).as_posix()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        ]
    own = {p.name for p in Layout(point_dir).tables()} | {RUN_JSON}
    found += [
        p.name
        for p in sorted(point_dir.glob("*"))
        if p.is_file()
        and p.name.endswith(EXPORT_SUFFIXES)
        and p.name not in own
        and not p.name.startswith(".")
    ]
    return found


def unrecorded_exports(point_dir: Path) -> set[str]:
    """Export products of the point folder (:func:`export_files`, and project-reach's
    ``reach/``) that no export command recorded: copied in by hand, or their record lost
    or damaged. Nothing tells what they were made from, nor whether they hold observed
    counts."""
    known = _export_record(Path(point_dir))
    return {
        f
        for f in export_files(point_dir, (*EXPORT_DIRS, "reach"))
        if f not in known and not fnmatch.fnmatch(f.split("/")[0], PLOT_STEP_EXPORTS)
    }


def stale_exports(
    point_dir: Path, not_current: AbstractSet[str] = frozenset(), *, unrecorded: bool = True
) -> set[str]:
    """Exports of the point folder (relative paths) made from another ``fit.h5`` (or
    ``limit.h5``, their source or the statuses they read) than the one it holds now (an
    earlier config's), from one named in ``not_current`` (the folder's ``fit.h5`` made
    with other settings or inputs than the point's config), edited since they were
    written, or with no record of what they were made from (:func:`unrecorded_exports`;
    ``unrecorded=False``: not these, for a folder that keeps no record, the run's own):
    not to be offered with this config's results."""
    point_dir = Path(point_dir)
    digests: dict[str, str | None] = {}

    def now(name: str) -> str | None:
        if name not in digests:
            src = point_dir / name
            digests[name] = sha256_file(src) if src.is_file() else None
        return digests[name]

    out = set()
    for rel, entry in _export_record(point_dir).items():
        try:
            read = {str(entry["source"]): entry["sha256"], **dict(entry.get("also", {}))}
            written = entry.get("file_sha256")  # (absent in records of older gprpipes)
            if (
                any(now(name) != digest for name, digest in read.items())
                or set(read) & set(not_current)
                or (
                    written
                    and (point_dir / rel).is_file()
                    and sha256_file(point_dir / rel) != written
                )
            ):
                out.add(str(rel))
        except (KeyError, TypeError, ValueError):
            out.add(str(rel))
    return out | unrecorded_exports(point_dir) if unrecorded else out


def recorded_exports(point_dir: Path, *, observed_only: bool = True) -> list[Path]:
    """The export files of the point folder that an export command recorded from an
    unblinded fit (they may hold its observed counts; ``observed_only=False``: every
    recorded export) and that are still there."""
    record = _export_record(Path(point_dir))
    files = [
        Path(point_dir) / str(rel)
        for rel, what in record.items()
        if not (observed_only and isinstance(what, dict) and what.get("observed") is False)
    ]
    return sorted(f for f in files if f.is_file())
