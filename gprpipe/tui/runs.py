"""Runs seen from the TUI: launch ``gprpipe run`` in the background, read task states
from the run directory (the same source as ``gprpipe status``), cancel, rerun failed tasks,
and read a finished point's ``scan.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.errors import GprpipeError
from gprpipe.pipeline.plan import Layout
from gprpipe.pipeline.state import read_state, write_state
from gprpipe.pipeline.store import RUN_JSON, load_run_info, task_states, tasks_of_run
from gprpipe.pipeline.task import Task

STATES = ("done", "running", "failed", "pending")
LAUNCH_LOG = "tui-launch.log"


def run_argv(config: Path, overrides: Sequence[str], *, engine: str, executor: str,
             jobs: int) -> list[str]:
    """``gprpipe run`` command line for a config (overrides as ``--set``)."""
    argv = [sys.executable, "-m", "gprpipe", "run", str(config), "--engine", engine,
            "--executor", executor, "-j", str(jobs)]
    for o in overrides:
        argv += ["--set", o]
    return argv


def rerun_argv(run_dir: Path, *, jobs: int) -> list[str]:
    """``gprpipe rerun RUN_DIR --failed`` command line."""
    return [sys.executable, "-m", "gprpipe", "rerun", str(run_dir), "--failed", "-j", str(jobs)]


class Launch:
    """A ``gprpipe`` command started in the background (own process group), its output in
    ``log``. The run itself is independent of the TUI: quitting the TUI leaves it running."""

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd or Path.cwd()
        self.proc: subprocess.Popen | None = None
        self.cancelled = False

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "w") as fh:
            fh.write("$ " + " ".join(self.argv) + "\n")
            fh.flush()
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.cwd, env=env,
                                         start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def returncode(self) -> int | None:
        """None while running."""
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cancel(self, timeout: float = 5.0) -> None:
        """SIGTERM to the whole process group (the run and its task processes)."""
        if not self.running or self.proc is None:
            return
        self.cancelled = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def pid_gone(pid: object) -> bool:
    """True if process ``pid`` no longer runs: absent, or a zombie nobody reaped (in
    containers whose init does not reap, killed grandchildren stay zombies)."""
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()  # type: ignore[call-overload]
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _running_marker(t: Task) -> dict:
    try:
        return json.loads((t.point_dir / ".state" / f"{t.slug}.running").read_text())
    except (OSError, ValueError):
        return {}


def mark_cancelled(tasks: Sequence[Task], timeout: float = 5.0) -> list[str]:
    """After a local cancel: tasks still marked running on this host whose process is
    gone become ``failed`` ("cancelled"), so ``status`` and ``rerun --failed`` see them."""
    host = socket.gethostname()
    todo = []
    for t in tasks:
        if read_state(t.point_dir, t.slug)[0] != "running":
            continue
        info = _running_marker(t)
        if info.get("host") == host and not info.get("slurm_job"):
            todo.append((t, info.get("pid")))
    end = time.monotonic() + timeout
    marked: list[str] = []
    while todo:
        left = []
        for t, pid in todo:
            if pid_gone(pid):
                if read_state(t.point_dir, t.slug)[0] == "running":
                    write_state(t.point_dir, t.slug, "failed", "cancelled from gprpipe tui")
                    marked.append(t.id)
            else:
                left.append((t, pid))
        todo = left
        if not todo or time.monotonic() > end:
            break
        time.sleep(0.1)
    return marked


def cancel_slurm(run_dir: Path) -> list[str]:
    """``scancel`` every job of the run's SLURM submissions; returns the job ids."""
    from gprpipe.executors import slurm

    ids: list[str] = []
    for sub in slurm.load_jobs(run_dir).get("submissions", []):
        if sub.get("dry_run"):
            continue
        ids += [str(j["job_id"]) for j in sub.get("jobs", []) if j.get("job_id")]
    ids = list(dict.fromkeys(ids))
    if ids:
        try:
            subprocess.run(["scancel", *ids], check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GprpipeError(f"scancel failed: {exc}") from None
    return ids


@dataclass
class RunView:
    """Every task of a run and its state."""

    run_dir: Path
    tasks: list[Task] = field(default_factory=list)
    states: dict[str, tuple[str, str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    executor: str = "local"
    started: bool = False  # run.json exists
    error: str = ""

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for s, _ in self.states.values():
            out[s] = out.get(s, 0) + 1
        return out

    @property
    def finished(self) -> bool:
        return bool(self.tasks) and all(s in ("done", "failed") for s, _ in self.states.values())

    @property
    def all_done(self) -> bool:
        return bool(self.tasks) and all(s == "done" for s, _ in self.states.values())


class RunWatcher:
    """Reads a run directory's task states; caches the plan per ``run.json`` version."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._tasks: list[Task] = []
        self._executor = "local"

    def poll(self, run_dir: Path, planned: Sequence[Task] = ()) -> RunView:
        """States of the run's tasks (``planned`` ones, all pending, before run.json exists)."""
        view = RunView(Path(run_dir))
        rj = Path(run_dir) / RUN_JSON
        try:
            mtime = rj.stat().st_mtime
        except OSError:
            mtime = None
        if mtime is None:
            view.tasks = list(planned)
            view.states = {t.id: ("pending", "") for t in planned}
            view.logs = {t.id: t.log for t in planned}
            return view
        key = (str(rj), mtime)
        try:
            if key != self._key:
                info = load_run_info(Path(run_dir))
                assert info is not None
                self._tasks, _ = tasks_of_run(info)
                self._executor = str(info.data.get("executor", "local"))
                self._key = key
        except GprpipeError as exc:
            view.error = str(exc)
            view.tasks = list(planned)
            view.states = {t.id: ("pending", "") for t in planned}
            return view
        view.started = True
        view.executor = self._executor
        view.tasks = list(self._tasks)
        states = task_states(view.tasks)
        host = socket.gethostname()
        for t in view.tasks:  # zombies of killed tasks count as ended (see pid_gone)
            if states[t.id][0] == "running":
                info = _running_marker(t)
                if (info.get("host") == host and not info.get("slurm_job")
                        and pid_gone(info.get("pid"))):
                    states[t.id] = ("failed", "its process ended without a result (killed?)")
        view.logs = {t.id: t.log for t in view.tasks}
        if view.executor == "slurm":
            try:
                from gprpipe.executors import slurm

                for tid, st in slurm.poll_details(Path(run_dir), view.tasks).items():
                    states[tid] = (st.state, st.message)
                    if st.log is not None:
                        view.logs[tid] = st.log
            except (GprpipeError, OSError) as exc:
                view.error = f"SLURM: {exc}"
        view.states = states
        return view


def tail(path: Path | None, n: int = 12) -> str:
    """Last ``n`` lines of a text file ('' if missing)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


# ------------------------------------------------------------------ results


def result_points(run_dir: Path) -> list[tuple[str, Path]]:
    """(point name, point folder) of the run's points that have a ``scan.csv``."""
    run_dir = Path(run_dir)
    names: list[tuple[str, Path]] = []
    try:
        info = load_run_info(run_dir, missing_ok=True)
    except GprpipeError:
        info = None
    if info is not None:
        names = [(p["name"], run_dir / p["name"]) for p in info.data.get("grid", [])]
    else:
        try:
            names = [(d.name, d) for d in sorted(run_dir.iterdir()) if d.is_dir()]
        except OSError:
            names = []
    return [(n, d) for n, d in names if Layout(d).scan_csv.is_file()]


@dataclass
class Scan:
    """A ``scan.csv``: its columns and rows (numbers as floats where they parse)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, object]]

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(str(r["dataset"]) for r in self.rows))

    def of(self, dataset: str) -> list[dict[str, object]]:
        rows = [r for r in self.rows if r["dataset"] == dataset]
        return sorted(rows, key=lambda r: _num(r.get("mass_GeV")))


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _parse(v: str) -> object:
    try:
        return float(v)
    except ValueError:
        return v


def read_scan(path: Path) -> Scan:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = list(reader.fieldnames or [])
        rows: list[dict[str, object]] = [{k: _parse(v) if k != "dataset" else v
                                          for k, v in r.items()} for r in reader]
    return Scan(Path(path), cols, rows)


@dataclass
class KeyNumbers:
    best_z: float = math.nan
    best_dataset: str = ""
    best_mass: float = math.nan  # GeV
    global_z: float = math.nan
    global_p: float = math.nan
    limits: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (dataset, mass GeV, observed eps2, expected median eps2)


def key_numbers(scan: Scan, masses_gev: Sequence[float], dataset: str | None = None
                ) -> KeyNumbers:
    """Best local Z (over the ``ok`` rows: flagged rows are no discovery), global Z of that
    row, limits at the nearest masses."""
    out = KeyNumbers()
    rows = [r for r in scan.rows if not math.isnan(_num(r.get("Z_local")))
            and str(r.get("status", "ok")) == "ok"]
    if rows:
        best = max(rows, key=lambda r: _num(r["Z_local"]))
        out.best_z = _num(best["Z_local"])
        out.best_dataset = str(best["dataset"])
        out.best_mass = _num(best["mass_GeV"])
        out.global_z = _num(best.get("Z_global"))
        out.global_p = _num(best.get("p0_global"))
    names = [dataset] if dataset else scan.datasets()
    for name in names:
        rows = scan.of(name)
        if not rows:
            continue
        for m in masses_gev:
            r = min(rows, key=lambda r: abs(_num(r["mass_GeV"]) - m))
            out.limits.append((name, _num(r["mass_GeV"]), _num(r.get("eps2_up")),
                               _num(r.get("eps2_exp_med"))))
    return out


def default_masses(scan: Scan, dataset: str, wanted: Sequence[float] = ()) -> list[float]:
    """``wanted`` masses (GeV), else three across the dataset's scan."""
    if wanted:
        return list(wanted)
    ms = [_num(r["mass_GeV"]) for r in scan.of(dataset)]
    if not ms:
        return []
    if len(ms) <= 3:
        return ms
    return [ms[0], ms[len(ms) // 2], ms[-1]]


def plot_files(point_dir: Path, dataset: str) -> list[Path]:
    """PNG/PDF files of the eps^2 limit plot of a dataset (manifest first, else glob)."""
    lay = Layout(Path(point_dir))
    files: list[Path] = []
    try:
        manifest = json.loads(lay.plot_manifest.read_text())
        files = [lay.point_dir / f for f in manifest.get("files", [])]
    except (OSError, ValueError):
        files = sorted(lay.plots.glob("*")) if lay.plots.is_dir() else []
    stem = f"brazil_eps2_{dataset}"
    return [f for f in files if f.stem == stem and f.exists()]
