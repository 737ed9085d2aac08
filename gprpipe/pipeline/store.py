"""The run directory: point folders with their rendered configs, ``run.json``, task states."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from gprpipe import __version__
from gprpipe.config import Point, point_config_from_file
from gprpipe.config.loader import read_config_text
from gprpipe.config.schema import STEPS, Config, choices
from gprpipe.errors import GprpipeError, resolved
from gprpipe.io.atomic import (
    atomic_write_text,
    inside,
    read_json,
    read_record,
    remove_stale_temps,
)
from gprpipe.io.processes import alive
from gprpipe.io.source import git_commit, package_version
from gprpipe.io.toml_write import dumps
from gprpipe.pipeline.plan import RUN_JSON, Layout, plan_point
from gprpipe.pipeline.state import read_marker, read_state, state_dir
from gprpipe.pipeline.task import Task

_T = TypeVar("_T")

#: the files the TUI writes into a run folder to launch a run there in the background
LAUNCH_LOG = "tui-launch.log"
LAUNCH_SPEC = "tui-launch.json"
#: where a launch keeps the files of the launch before it (its SLURM jobs may still be
#: queued, and its log is their submission's): one generation
LAUNCH_PREVIOUS = {LAUNCH_SPEC: "tui-launch.previous.json", LAUNCH_LOG: "tui-launch.previous.log"}


def versions() -> dict[str, str]:
    commit = git_commit()
    out = {
        "gprpipe": package_version(commit),
        "git_commit": commit,
        "python": platform.python_version(),
    }
    for pkg in (
        "numpy",
        "scipy",
        "uproot",
        "h5py",
        "matplotlib",
        "mplhep",
        "jinja2",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def point_dir(run_dir: Path, point: Point) -> Path:
    return run_dir / point.name


def point_config_text(point: Point) -> str:
    """The text of a point's rendered ``config.toml``."""
    return (
        f"# Fully rendered config of grid point {point.name!r} (written by gprpipe "
        f"{__version__}).\n" + dumps({k: v for k, v in point.data.items() if k != "grid"})
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_point_configs(run_dir: Path, points: Sequence[Point]) -> None:
    """Write each point's rendered ``config.toml`` (untouched when unchanged)."""
    for point in points:
        path = Layout(point_dir(run_dir, point)).config
        text = point_config_text(point)
        remove_stale_temps(path)  # a run killed while writing it left its temporary file
        try:  # (a FIFO or device there is refused by the write, not waited on)
            same = read_record(path) == text
        except (OSError, ValueError):
            same = False
        if not same:
            atomic_write_text(path, text)


def plan_points(
    run_dir: Path, points: Sequence[Point], where: Callable[[str], object] = lambda key: key
) -> list[Task]:
    """Tasks of every point; refuses more than ``base.max_tasks`` tasks and any output,
    log or marker that would resolve outside ``run_dir`` (e.g. through a symlink).
    ``where(key)`` says where a key was set (``file:line: key``)."""
    tasks: list[Task] = []
    cap = points[0].config.base.max_tasks if points else 0
    for point in points:
        tasks += plan_point(point.name, point_dir(run_dir, point), point.config)
        if len(tasks) > cap:
            raise GprpipeError(
                f"{where('base.max_tasks')}: the plan has more than {cap} tasks (at "
                f"point {point.name}); raise scan.chunk_size, shrink the scan "
                "or the grid, or raise base.max_tasks."
            )
    check_inside(run_dir, tasks)
    return tasks


def check_inside(run_dir: Path, tasks: Sequence[Task]) -> None:
    """Raise unless every point folder of ``tasks`` resolves inside ``run_dir``, and the
    folder of every output, log and state marker of a task inside its point folder
    (symlinks followed; a link to another point's folder would mix their files). Files
    themselves are replaced, never written through, so a symlinked file cannot lead a
    write outside."""

    def a_folder(folder: Path, t: Task) -> None:  # else the task could not say why
        if os.path.lexists(folder) and not folder.is_dir():
            raise GprpipeError(
                f"{folder}: is a file (or a broken link), not the folder task {t.id} "
                "writes into; remove or rename it."
            )

    seen: set[Path] = set()
    for t in tasks:
        if t.point_dir not in seen:
            seen.add(t.point_dir)
            inside(t.point_dir, run_dir, f"the point folder of task {t.id}", run_dir=True)
            inside(state_dir(t.point_dir), t.point_dir, "the state folder")
            a_folder(state_dir(t.point_dir), t)
        for folder in (t.log.parent, *(p.parent for p in t.outputs)):
            if folder not in seen:
                seen.add(folder)
                inside(folder, t.point_dir, f"this folder of task {t.id}")
                a_folder(folder, t)
        if t.step == "plot":  # the folder the plot task replaces: inside its own point
            inside(t.point_dir / "hepdata", t.point_dir, "the HEPData folder", replaced=True)


def relative(path: Path | str, run_dir: Path) -> str:
    """``path`` relative to the run directory when it lies inside it, else as it is (data
    files): run.json holds no absolute path of its own, so a run can be moved or copied."""
    try:
        return Path(path).relative_to(run_dir).as_posix()
    except ValueError:
        return str(path)


def task_record(t: Task, run_dir: Path) -> dict[str, Any]:
    pdir = str(t.point_dir)
    return {
        "id": t.id,
        "point": t.point,
        "step": t.step,
        "part": t.part,
        "argv": [relative(a, run_dir) if a == pdir else a for a in t.argv],
        "inputs": [relative(p, run_dir) for p in t.inputs],
        "outputs": [relative(p, run_dir) for p in t.outputs],
        "deps": list(t.deps),
        "masses_GeV": list(t.masses),
    }


@dataclass
class RunInfo:
    """Contents of ``run.json``."""

    path: Path
    data: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, default=str) + "\n")


def new_run_info(
    run_dir: Path,
    config_path: Path,
    overrides: Sequence[str],
    points: Sequence[Point],
    tasks: Sequence[Task],
    *,
    engine: str,
    executor: str,
    command: Sequence[str] | None = None,
    others: Sequence[Point] = (),
) -> RunInfo:
    """``run.json`` of a new run; ``command``: the command line to record (default: this
    process's); ``others``: the config's grid points this run leaves out (``--points``),
    kept with their plan where an earlier run of the same point config made them."""
    info = RunInfo(run_dir / RUN_JSON, {})
    try:
        old = load_run_info(run_dir, missing_ok=True)
    except GprpipeError:  # damaged: this run rewrites it
        old = None
    kept = _points_run_before(old, run_dir, others)
    entries = {p.name: _grid_entry(p) for p in points} | {g["name"]: g for g in kept}
    order = {p.name: p.index for p in [*points, *others]}
    earlier = (
        [t for t in old.data["plan"] if t.get("point") in {g["name"] for g in kept}] if old else []
    )
    info.data = {
        "gprpipe_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": list(command) if command else this_command(),
        "config": str(config_path),
        "overrides": list(overrides),
        "engine": engine,
        "executor": executor,
        "versions": versions(),
        "grid": [entries[name] for name in sorted(entries, key=order.__getitem__)],
        "plan": [*earlier, *[task_record(t, run_dir) for t in tasks]],
        "timings": (old.data.get("timings", {}) if old else {}),
        "slurm": (old.data.get("slurm", {}) if old else {}),
    }
    return info


def this_command() -> list[str]:
    """This process's command line, as run.json records it."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def rerun_record(command: Sequence[str] | None, tasks: Sequence[Task]) -> dict[str, Any]:
    """One entry of run.json's ``reruns``: the command, when, with which code, what ran."""
    return {
        "command": list(command) if command else this_command(),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gprpipe_version": package_version(),
        "tasks": [t.id for t in tasks],
    }


def _grid_entry(p: Point) -> dict[str, Any]:
    return {
        "name": p.name,
        "values": p.values,
        "dir": p.name,
        "seed": p.config.base.seed,
        "config_sha256": _sha256(point_config_text(p).encode()),
    }


def _points_run_before(
    old: RunInfo | None, run_dir: Path, others: Sequence[Point]
) -> list[dict[str, Any]]:
    """Grid entries of ``old`` (the folder's last run.json) for the points of ``others``
    that an earlier run of the same point config made, with that config still on disk
    unchanged: a grid run point by point (``--points``) stays one run for status, summary,
    compare and the exports. A point whose config differs now belongs to an earlier config
    and is left out."""
    if old is None:
        return []
    now = {p.name: p for p in others}
    kept = []
    for g in old.data["grid"]:
        name, sha = g.get("name"), g.get("config_sha256")
        if name not in now:
            continue
        try:
            text = read_config_text(Layout(run_dir / name).config)
        except GprpipeError:  # missing or unreadable: not kept
            continue
        if _sha256(text.encode()) == sha and same_point_config(text, now[name]):
            kept.append(g)
    return kept


#: what a run's options (``--steps``, ``--engine``, ``--executor``, ``--jobs``) set in
#: every point's config: how the point runs, not what it computes
RUN_OPTION_KEYS = (("steps", "run"), ("base", "engine"), ("base", "executor"), ("base", "jobs"))


def same_point_config(text: str, point: Point, *, same_version: bool = True) -> bool:
    """``text`` (a point's config.toml) is the config ``point`` would write, but for
    where it writes (``base.output``), ``base.blind`` (``--unblind`` lifts it; a blinded
    run refuses unblinded points beside it) and :data:`RUN_OPTION_KEYS` (a grid point left out
    of ``gprpipe run --steps plot --points 0`` was dropped from run.json, and so from the
    index and the summary, for the steps it did not run: a review); ``same_version``: the
    gprpipe version in its first line too."""
    import tomllib

    mine = point_config_text(point)
    if text == mine:  # (the common case: no TOML to parse)
        return True
    if same_version and text.partition("\n")[0] != mine.partition("\n")[0]:
        return False

    def computed(t: str) -> dict[str, Any]:
        data: dict[str, Any] = tomllib.loads(t)
        # (where it writes: a folder copied; base.blind: what --unblind lifted)
        for table, key in (*RUN_OPTION_KEYS, ("base", "output"), ("base", "blind")):
            if isinstance(data.get(table), dict):
                data[table].pop(key, None)
        return data

    try:
        return computed(text) == computed(mine)
    except tomllib.TOMLDecodeError:  # (a config.toml edited since: no point of this run)
        return False


@overload
def load_run_info(run_dir: Path, missing_ok: Literal[False] = False) -> RunInfo: ...
@overload
def load_run_info(run_dir: Path, missing_ok: bool) -> RunInfo | None: ...
def load_run_info(run_dir: Path, missing_ok: bool = False) -> RunInfo | None:
    """The run's ``run.json``; None when it is missing and ``missing_ok``."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        if missing_ok:
            return None
        parent = resolved(run_dir).parent
        if Path(run_dir).is_file() and (parent / RUN_JSON).is_file():
            raise GprpipeError(f"{run_dir}: a file of a run; give its run folder {parent}.")
        if (Path(run_dir) / "config.toml").is_file() and (parent / RUN_JSON).is_file():
            raise GprpipeError(f"{run_dir}: a point folder; give its run folder {parent}.")
        # (it said "not a gprpipe run directory (no run.json)" of a folder that is not
        # there, or of the config itself: a review)
        if not Path(run_dir).exists():
            raise GprpipeError(
                f"{run_dir}: no such folder (a relative base.output is relative to the "
                "folder gprpipe run was started in)."
            )
        if Path(run_dir).suffix == ".toml" and Path(run_dir).is_file():
            raise GprpipeError(
                f"{run_dir}: a config; give the run folder it writes (its base.output, e.g. "
                "runs/<name>)."
            )
        raise NoRunJson(f"{run_dir}: not a gprpipe run directory (no {RUN_JSON}).")
    try:
        data = read_json(path)
    except (ValueError, OSError) as exc:
        raise GprpipeError(f"{path}: unreadable ({exc}).") from None
    wrong = _run_json_errors(data)
    if wrong:
        raise GprpipeError(
            f"{path}: {wrong}; it was edited or damaged: run the config again "
            "(gprpipe run CONFIG) to rewrite it."
        )
    return RunInfo(path.absolute(), data)


def point_blinded(point_dir: Path) -> bool | None:
    """Whether a point's config.toml says ``base.blind = true``; None when it cannot be
    read or does not say (one rule for a blinded run's check of the other point folders
    and for compare). Read as TOML, not validated: a point of an older gprpipe's config
    says it too."""
    import tomllib

    try:
        text = read_record(Path(point_dir) / "config.toml")  # (a FIFO: no wait)
        blind = tomllib.loads(text)["base"]["blind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return blind if isinstance(blind, bool) else None


def last_run_blind(run_dir: Path) -> bool:
    """Whether the folder's last run was blinded (run.json; False without one, or with a
    damaged one, which the next run rewrites)."""
    try:
        info = load_run_info(run_dir, missing_ok=True)
    except GprpipeError:
        return False
    blinding = info.data.get("blinding") if info is not None else None
    return isinstance(blinding, dict) and blinding.get("blind") is True


def earlier_unblinded_runs(run_dir: Path) -> list[str]:
    """When the earlier runs of the folder that computed observed results ran (run.json's
    ``blinding.unblinded_runs``, kept from run to run; a run.json of an older gprpipe
    without it: its own run, if that was not blinded)."""
    try:
        info = load_run_info(run_dir, missing_ok=True)
    except GprpipeError:  # damaged: the next run rewrites it
        return []
    blinding = info.data.get("blinding") if info is not None else None
    if info is None or not isinstance(blinding, dict):
        return []
    runs = blinding.get("unblinded_runs")
    if isinstance(runs, list):
        return [str(r) for r in runs]
    return [str(info.data.get("created", ""))] if blinding.get("blind") is False else []


def _run_json_errors(data: object) -> str:
    """What makes ``data`` no run.json that gprpipe wrote ('' when nothing)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    grid, plan = data.get("grid"), data.get("plan")
    if not isinstance(grid, list) or not grid:
        return "'grid' is not a list of points"
    names: set[str] = set()
    for k, p in enumerate(grid):
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            return f"grid[{k}].name is not the name of a point folder"
        if name in names:
            return f"grid[{k}].name {name!r} is given twice"
        if not isinstance(p.get("config_sha256", ""), str):
            return f"grid[{k}].config_sha256 is not a string"
        if not isinstance(p.get("values", {}), dict):
            return f"grid[{k}].values is not a JSON object"
        folder = p.get("dir", name)  # (older run.json files: the folder's absolute path)
        if not isinstance(folder, str) or Path(folder).name != name:
            return f"grid[{k}].dir is not its point folder {name!r}"
        names.add(name)
    if not isinstance(plan, list) or not plan:
        return "'plan' is not a list of tasks"
    for k, t in enumerate(plan):
        if not isinstance(t, dict) or not isinstance(t.get("id"), str):
            return f"plan[{k}] has no task id"
        part = t["id"].split("/")  # point/step or point/step/part
        if not (part[0] in names and len(part) in (2, 3) and part[1] in STEPS and all(part)):
            return f"plan[{k}].id {t['id']!r} is no task of a point of 'grid'"
    for key in ("engine", "executor"):
        if key in data and data[key] not in choices(f"base.{key}"):
            return f"{key!r} {data[key]!r} is none of {', '.join(choices(f'base.{key}'))}"
    for key, kind in _RUN_JSON_TYPES.items():
        if key in data and not isinstance(data[key], kind):
            return f"{key!r} is not a {'JSON object' if kind is dict else 'list'}"
    bad = next((k for k, v in data.get("timings", {}).items() if not isinstance(v, dict)), None)
    if bad is not None:
        return f"timings[{bad!r}] is not a JSON object"
    bad = next((k for k, r in enumerate(data.get("reruns", [])) if not isinstance(r, dict)), None)
    if bad is not None:
        return f"reruns[{bad}] is not a JSON object"
    return ""


#: the optional run.json entries that later commands read, and their JSON types
_RUN_JSON_TYPES: dict[str, type] = {
    "timings": dict,
    "slurm": dict,
    "blinding": dict,
    "reruns": list,
    "overrides": list,
    "command": list,
    "versions": dict,
}


def earlier_point_notice(point_dir: Path) -> str:
    """A notice when ``point_dir`` is no point of its run's last config (a grid point of
    an earlier config kept on disk); '' when it is one, or lies in no run folder."""
    point_dir = Path(point_dir)
    name = Path(os.path.abspath(point_dir)).name  # (of ``.`` too)
    try:
        info = load_run_info(resolved(point_dir).parent, missing_ok=True)
    except GprpipeError:
        return ""
    if info is None or name in {g["name"] for g in info.data["grid"]}:
        return ""
    return (
        f"notice: {point_dir} is no point of its run's last config ({info.path}); its "
        "results are those of an earlier config of that run."
    )


def tasks_of_run(info: RunInfo) -> tuple[list[Task], dict[str, Config]]:
    """Re-derive the plan from the point configs in the run directory (the plan is a pure
    function of them), restricted to the tasks recorded in run.json. Point folders are
    found in the run directory that holds this run.json (a moved or copied run works on
    itself, never on the original)."""
    tasks: list[Task] = []
    configs: dict[str, Config] = {}
    for p in info.data.get("grid", []):
        pdir = info.run_dir / p["name"]
        path = Layout(pdir).config
        text = read_config_text(path)  # read once: the text checked is the text used
        _check_config_sha(path, text, p.get("config_sha256"))
        cfg = point_config_from_file(path, text)
        configs[p["name"]] = cfg
        tasks += plan_point(p["name"], pdir, cfg)
    planned = {t["id"] for t in info.data.get("plan", [])}
    return [t for t in tasks if t.id in planned], configs


class ConfigChanged(GprpipeError):
    """A point's config.toml differs from the sha256 that run.json records for it."""


class NoRunJson(GprpipeError):
    """A folder without run.json (no run folder, or a first run that has not written it)."""


#: seconds a command reading a run waits for a run that holds the folder to write its
#: point configs and run.json (:func:`while_written`)
WRITE_WAIT = 3.0


def while_written(run_dir: Path, read: Callable[[], _T]) -> _T:
    """``read()`` of a run folder, read again while a run holds its lock and is writing
    it: a first run takes the lock before it writes run.json, and any run writes its point
    configs before run.json. Read between, the folder was "not a gprpipe run directory" or
    a point's config "changed since the run wrote it" (summary, status, compare and the
    exports of a run that had just started; CI and a race audit). After
    :data:`WRITE_WAIT` s the error stands; a folder without run.json names the run."""
    from gprpipe.pipeline.lock import in_use_by, is_locked

    deadline = time.monotonic() + WRITE_WAIT
    while True:
        try:
            return read()
        except (ConfigChanged, NoRunJson):
            if not is_locked(run_dir):
                raise
            if time.monotonic() >= deadline:
                if (Path(run_dir) / RUN_JSON).is_file():
                    raise
                who = in_use_by(run_dir) or "a run"  # (let go just now: read it again)
                raise GprpipeError(
                    f"{run_dir} is in use by {who}, which has not written its {RUN_JSON} "
                    "yet: try again in a moment."
                ) from None
            time.sleep(0.1)


def run_plan(run_dir: Path) -> tuple[RunInfo, list[Task], dict[str, Config]]:
    """run.json and the tasks it records (:func:`tasks_of_run`), for a command that reads
    a run (status, summary, cancel, the TUI), as written (:func:`while_written`)."""

    def read() -> tuple[RunInfo, list[Task], dict[str, Config]]:
        info = load_run_info(run_dir)
        return (info, *tasks_of_run(info))

    return while_written(run_dir, read)


def _check_config_sha(path: Path, text: str, recorded: str | None) -> None:
    if recorded and _sha256(text.encode()) != recorded:
        raise ConfigChanged(
            f"{path}: changed since the run wrote it (run.json records another sha256): its "
            "results and a rerun would follow two configs; run the config again (gprpipe "
            "run CONFIG)."
        )


def check_point_config(point_dir: Path, text: str | None = None, damaged_ok: bool = False) -> None:
    """:func:`_check_point_config`, as written (:func:`while_written`): compare and the
    exports said "changed since the run wrote it" of a run that had just started."""
    run_dir = Path(point_dir).parent
    while_written(run_dir, lambda: _check_point_config(point_dir, text, damaged_ok))


def _check_point_config(point_dir: Path, text: str | None, damaged_ok: bool) -> None:
    """Raise when the point's ``config.toml`` (``text``, when already read from it) differs
    from the one its run wrote (edited by hand): its results would be shown as another
    config's. Nothing to check without a run.json that records it (nor, ``damaged_ok``,
    with a damaged one: a task runs as it did, the run's other commands say it)."""
    try:
        info = load_run_info(Path(point_dir).parent, missing_ok=True)
    except GprpipeError:
        if damaged_ok:
            return
        raise
    path = Layout(Path(point_dir)).config
    for p in info.data.get("grid", []) if info is not None else []:
        if p.get("name") == Path(point_dir).name and (text is not None or path.is_file()):
            got = read_config_text(path) if text is None else text
            _check_config_sha(path, got, p.get("config_sha256"))


def task_states(tasks: Sequence[Task]) -> dict[str, tuple[str, str]]:
    """(state, message) per task, from markers; a 'running' marker whose local run or
    process is gone, and a 'done' one whose outputs were deleted since, are failed."""
    out = {}
    for t in tasks:
        state, msg = read_state(t.point_dir, t.slug)
        if state == "running":
            why = dead_reason(read_marker(t.point_dir, t.slug, "running"))
            if why:
                state, msg = "failed", why
        elif state == "done" and (gone := [p for p in t.outputs if not p.exists()]):
            state = "failed"  # a task commits only when it wrote every output
            msg = (
                f"{', '.join(p.name for p in gone)} deleted after the task finished; "
                "rerun --failed recomputes it"
            )
        out[t.id] = (state, msg)
    return out


def dead_reason(info: dict[str, Any]) -> str:
    """Why a 'running' marker stands for no live task ('' when it may be alive): the run
    that launched it (local executor) or the task's own process on this host is gone."""
    host = socket.gethostname()
    if _run_gone(info, host):
        where = f" (container {info['container']})" if info.get("container") else ""
        return (
            f"the run that launched it (pid {info['run_pid']}) ended before the "
            f"task{where} finished (killed?)"
        )
    if (
        info.get("host") == host
        and not info.get("slurm_job")
        and not alive(info.get("pid"), info.get("pid_started"))
    ):
        return "its process ended without a result (killed?)"
    return ""


#: seconds a run waits for the task process of a killed run to end before it starts that
#: task again (such a process kills itself within about a second: gprpipe.io.processes)
ORPHAN_WAIT = 5.0


def orphan_pid(info: dict[str, Any]) -> int | None:
    """The task process named by a 'running' marker whose local run is gone but which
    still runs on this host (a task of a killed run that has not ended yet), else None.
    A container's task is left to the run's watchdog; a SLURM job to SLURM."""
    host = socket.gethostname()
    pid = info.get("pid")
    if not _run_gone(info, host):
        return None
    if info.get("host") != host or info.get("slurm_job") or info.get("container"):
        return None
    if pid is None or pid == info["run_pid"] or not alive(pid, info.get("pid_started")):
        return None
    return int(pid)


def _run_gone(info: dict[str, Any], host: str) -> bool:
    """Whether the marker names a run on ``host`` (the local executor's) that is gone."""
    return (
        info.get("run_host") == host
        and bool(info.get("run_pid"))
        and not alive(info["run_pid"], info.get("run_pid_started"))
    )


def wait_for_orphan(
    info: dict[str, Any], stop: Callable[[], bool] = lambda: False, timeout: float = ORPHAN_WAIT
) -> str:
    """Before a task starts again: wait up to ``timeout`` seconds for the process of a
    killed run that still runs it (:func:`orphan_pid`), so that the two never write the
    task's outputs at the same time. Returns a notice ('' when there was none to wait
    for, or it ended in time)."""
    pid = orphan_pid(info)
    if pid is None:
        return ""
    end = time.monotonic() + timeout
    started = info.get("pid_started")
    while alive(pid, started) and time.monotonic() < end and not stop():
        time.sleep(0.05)
    if not alive(pid, started):
        return ""
    return (
        f"process {pid} of a killed run still runs this task after {timeout:g} s (or its "
        "pid now names another process); the task starts again anyway"
    )
