"""The run engine on the local executor: outputs, caching, --force, failures, status, rerun,
and a run killed with SIGKILL mid-way then resumed.

Runs use the quickstart with ``--steps load,plot`` (fit/limit are other modules' tests) and
PNG plots only, in temporary run directories, through the real CLI in subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import (
    DEMO_ROOT,
    QUICKSTART,
    REPO,
    cli_env,
    quickstart_child,
    run_cli_here,
    run_cli_subprocess,
    start_cli_subprocess,
)

from gprpipe.config import load_points
from gprpipe.io.atomic import CRASH_AFTER
from gprpipe.io.hdf5 import read_attr
from gprpipe.pipeline.state import read_state
from gprpipe.pipeline.store import load_run_info, task_states, tasks_of_run, write_point_configs
from gprpipe.steps.runner import run_task

FAST = ("--steps", "load,plot", "--set", 'plot.formats=["png"]')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def quick(run_dir: Path, *extra: str):
    """``gprpipe run user_configs/quickstart.toml --steps load,plot`` into ``run_dir``, in a
    subprocess as a user would: (code, stdout, stderr, seconds)."""
    t0 = time.perf_counter()
    code, out, err = run_cli_subprocess(
        "run", QUICKSTART.relative_to(REPO), *FAST, "--set", f"base.output={run_dir}", *extra
    )
    return code, out, err, time.perf_counter() - t0


def quick_in_process(cli, run_dir: Path, *extra: str):
    """The same run with the CLI called in this process (the tasks are still processes)."""
    return cli("run", QUICKSTART, *FAST, "--set", f"base.output={run_dir}", *extra)


def states(run_dir: Path) -> dict[str, str]:
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    return {tid: s for tid, (s, _) in task_states(tasks).items()}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The quickstart run twice into one folder: the first does the work, the second none."""
    run_dir = tmp_path_factory.mktemp("quick") / "run"
    first = quick(run_dir)
    load_h5 = run_dir / "nominal" / "load.h5"
    mtime = load_h5.stat().st_mtime_ns if load_h5.exists() else None
    second = quick(run_dir)
    return {"dir": run_dir, "first": first, "second": second, "load_mtime": mtime}


def test_run_writes_run_json_load_h5_and_plot(quickstart_run: dict):
    code, out, err, _ = quickstart_run["first"]
    assert code == 0, err
    run_dir: Path = quickstart_run["dir"]
    assert "2 tasks in" in out and "2 ran, 0 cached, 0 failed" in out
    point = run_dir / "nominal"

    info = json.loads((run_dir / "run.json").read_text())
    assert [t["id"] for t in info["plan"]] == ["nominal/load", "nominal/plot"]
    assert info["plan"][1]["deps"] == ["nominal/load"]
    assert info["plan"][0]["inputs"] == [str(DEMO_ROOT)]
    # the installed version, and which commit the source is at when it moved on since
    assert info["versions"]["gprpipe"].startswith(info["gprpipe_version"])
    assert {"python", "numpy", "scipy", "uproot", "h5py"} <= set(info["versions"])
    config_sha256 = hashlib.sha256((point / "config.toml").read_bytes()).hexdigest()
    assert info["grid"] == [
        {
            "name": "nominal",
            "values": {},
            "dir": "nominal",
            "seed": 20260101,
            "config_sha256": config_sha256,  # a point config edited by hand is refused
        }
    ]  # relative: the run can be moved
    # timings of the last run (the module fixture's second run found both cached)
    assert info["timings"] == {
        "nominal/load": {"state": "cached", "seconds": 0.0},
        "nominal/plot": {"state": "cached", "seconds": 0.0},
    }
    assert info["wall_seconds"] > 0 and info["engine"] == "local"
    # the command that does the same again (`python -m gprpipe` recorded as the command)
    assert info["command"] == [
        "gprpipe",
        "run",
        str(QUICKSTART.relative_to(REPO)),
        *FAST,
        "--set",
        f"base.output={run_dir}",
    ]

    with h5py.File(point / "load.h5", "r") as f:
        assert {"gprpipe_version", "cache_key", "created", "config_sha256"} <= set(f.attrs)
        g = f["demo"]
        assert g["edges"].shape == (301,) and g["counts"].shape == (300,)
        assert g["counts"][()].sum() == pytest.approx(2.1456e7, rel=1e-3)
        assert g.attrs["hist"] == "input_hist" and g.attrs["source"] == str(DEMO_ROOT)
        assert len(g.attrs["sha256"]) == 64

    png = point / "plots" / "spectrum.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    manifest = json.loads((point / "plots" / "manifest.json").read_text())
    assert manifest["files"] == ["plots/spectrum.png"]
    assert (point / "config.toml").read_text().startswith("# Fully rendered config")
    assert (point / "logs" / "load.log").is_file() and (point / "logs" / "plot.log").is_file()
    assert not temp_files(run_dir)


def test_second_run_does_nothing(quickstart_run: dict):
    code, out, err, _ = quickstart_run["second"]
    assert code == 0, err
    assert "Nothing to do: all 2 tasks are up to date" in out
    load_h5 = quickstart_run["dir"] / "nominal" / "load.h5"
    assert load_h5.stat().st_mtime_ns == quickstart_run["load_mtime"]
    assert states(quickstart_run["dir"]) == {"nominal/load": "done", "nominal/plot": "done"}


def test_force_reruns_and_plot_only_change_keeps_load(quickstart_run: dict, cli, tmp_path: Path):
    run_dir = tmp_path / "run"  # a copy: the other tests read the shared run as it was made
    shutil.copytree(quickstart_run["dir"], run_dir, symlinks=True)
    key = read_attr(run_dir / "nominal" / "load.h5", "cache_key")
    code, out, err = quick_in_process(cli, run_dir, "--force")
    assert code == 0, err
    assert "2 ran, 0 cached" in out
    assert read_attr(run_dir / "nominal" / "load.h5", "cache_key") == key  # same inputs
    # a plot-only setting: load stays cached, plot reruns
    code, out, err = quick_in_process(cli, run_dir, "--set", "plot.style=plain")
    assert code == 0, err
    assert "1 ran, 1 cached" in out


def test_dry_run_prints_commands_and_writes_nothing(tmp_path: Path, cli):
    run_dir = tmp_path / "run"
    code, out, err = cli("run", QUICKSTART, *FAST, "--set", f"base.output={run_dir}", "--dry-run")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == f"# 2 tasks, run directory {run_dir}"
    assert lines[1] == "# nominal/load"
    assert lines[2].split()[1:] == [
        "-m",
        "gprpipe",
        "step",
        "load",
        "--point-dir",
        str(run_dir / "nominal"),
        "--task",
        "nominal/load",
    ]
    assert lines[3] == "# nominal/plot  (after nominal/load)"
    assert not run_dir.exists()
    # the full quickstart plan: load, fit and limit chunk + merge, plot; a dataset's limit
    # chunk reads its own fit chunk, so it waits for that chunk, not for the fit merge
    code, out, _ = cli("run", QUICKSTART, "--set", f"base.output={run_dir}", "--dry-run")
    assert code == 0
    assert [ln[2:] for ln in out.splitlines() if ln.startswith("# nominal")] == [
        "nominal/load",
        "nominal/fit/demo-000  (after nominal/load)",
        "nominal/fit/merge  (after nominal/fit/demo-000)",
        "nominal/limit/demo-000  (after nominal/load, nominal/fit/demo-000)",
        "nominal/limit/merge  (after nominal/limit/demo-000)",
        "nominal/plot  (after nominal/load, nominal/fit/merge, nominal/limit/merge)",
    ]
    assert not run_dir.exists()
    # after a run, the tasks a run would not run again are said, not previewed (they were
    # previewed as if they would run; on SLURM as scripts a real run never submits)
    steps = ("--steps", "load", "--set", f"base.output={run_dir}")
    assert cli("run", QUICKSTART, *steps)[0] == 0
    code, out, _ = cli("run", QUICKSTART, *steps, "--dry-run")
    assert (code, out) == (0, "# up to date, not run again: nominal/load\n# nothing to run\n")
    code, out, _ = cli("run", QUICKSTART, *steps, "--dry-run", "--force")
    assert code == 0 and out.startswith(f"# 1 tasks, run directory {run_dir}\n# nominal/load\n")
    # the line the forced run runs (pasted without --force, it said "cached": a review)
    assert out.rstrip("\n").splitlines()[-1].endswith(" --force")


def test_failures_status_and_rerun_failed(tmp_path: Path, cli, run_cli):
    """A bad histogram name (refused before the run; then run with the right one), a data
    file that went away (refused before the run, as validate refuses it: the finished
    tasks stay as they are), then a task killed while it ran (``rerun --failed``)."""
    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    run_dir = tmp_path / "run"
    at_data = ("--set", f"datasets.demo.path={data}")
    code, out, err = quick_in_process(cli, run_dir, *at_data, "--set", "datasets.demo.hist=nope")
    assert code == 1  # refused before the run starts: the histogram is read first
    assert (
        f"--set datasets.demo.hist: {data}: histogram 'nope' not found; closest of its 1 "
        "1-D histogram: input_hist."
    ) in err
    assert "Results in" not in out
    assert "Traceback" not in out + err
    assert not run_dir.exists()

    code, out, err = quick_in_process(cli, run_dir, *at_data)  # the corrected config
    assert code == 0, err
    assert "2 ran, 0 cached, 0 failed" in out
    assert states(run_dir) == {"nominal/load": "done", "nominal/plot": "done"}

    data.rename(tmp_path / "away.root")  # e.g. a disk that went away
    code, out, err = quick_in_process(cli, run_dir, *at_data, "--force")
    assert code == 1 and out == ""
    assert err.strip() == f"error: --set datasets.demo.path: {data}: data file not found."
    assert states(run_dir) == {"nominal/load": "done", "nominal/plot": "done"}
    (tmp_path / "away.root").rename(data)

    # the load task's process killed (the fault hook: SIGKILL right after load.h5)
    code, out, err = run_cli_here(
        "run",
        QUICKSTART,
        *FAST,
        "--set",
        f"base.output={run_dir}",
        *at_data,
        "--force",
        env={CRASH_AFTER: "load.h5"},
    )
    assert code == 1
    assert (
        "nominal/load: the task's process was killed (SIGKILL: out of memory, or killed by "
        "hand)" in out
    )
    # the skipped plot is pending again, not 'done' from the previous run
    assert states(run_dir) == {"nominal/load": "failed", "nominal/plot": "pending"}

    code, out, err = run_cli("rerun", run_dir, "--failed")
    assert code == 0, err
    assert "Rerunning 2 tasks: nominal/load, nominal/plot" in out
    assert states(run_dir) == {"nominal/load": "done", "nominal/plot": "done"}
    # run.json and the report keep the rerun after the command that created the run
    info = json.loads((run_dir / "run.json").read_text())
    assert info["command"][:2] == ["gprpipe", "run"]
    (rerun,) = info["reruns"]
    assert rerun["command"] == ["gprpipe", "rerun", str(run_dir), "--failed"]
    assert rerun["tasks"] == ["nominal/load", "nominal/plot"]
    report = (run_dir / "nominal" / "report.html").read_text()
    assert f"then <code>gprpipe rerun {run_dir} --failed</code> at {rerun['at']} (2 tasks" in report
    code, out, _ = cli("rerun", run_dir, "--failed")
    assert code == 0 and "Nothing to rerun" in out
    code, _, err = cli("rerun", run_dir, "--masses", "37MeV")
    assert code == 1 and err.strip() == (  # the run planned no per-mass task: it says so
        f"error: --masses: no task of {run_dir} owns 0.037 GeV (37 MeV) (its last run "
        "planned only load, plot, and a rerun redoes tasks of the last run: run the config "
        "again with its fit and limit steps)."
    )
    code, _, err = cli("rerun", run_dir, "--masses", "37")  # a bare value > 1 is a unit slip
    assert code == 1 and "did you mean 0.037 GeV?" in err


def test_status_and_rerun_errors(tmp_path: Path, cli):
    code, _, err = cli("status", tmp_path)
    assert code == 1
    assert err.strip() == f"error: {tmp_path}: not a gprpipe run directory (no run.json)."
    code, _, err = cli("rerun", tmp_path)
    assert code == 1 and "rerun needs --failed or --masses" in err
    code, _, err = cli("rerun", tmp_path, "--masses", "")  # given, but empty: it says so
    assert code == 1 and err.strip() == (
        "error: --masses: no mass given; write e.g. 37MeV,48MeV or 0.037,0.048."
    )


def test_killed_run_resumes_with_complete_outputs(tmp_path: Path, cli):
    """SIGKILL the whole run (executor and task processes) once the first task has finished,
    then run again: everything completes, nothing half-written remains."""
    run_dir = tmp_path / "run"
    cfg = quickstart_child(
        tmp_path / "grid.toml",
        f"""
        output = "{run_dir}"
        [plot]
        formats = ["png"]
        [steps]
        run = ["load", "plot"]
        [grid]
        "datasets.demo.rebin" = [5, 10]
    """,
    )
    args = ["run", str(cfg), "-j", "1"]
    proc = start_cli_subprocess(
        *args, session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = run_dir / "rebin-5" / ".state" / "load.done"  # written after load.h5
    deadline = time.monotonic() + 120
    try:
        while not first.exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the first task never finished"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "rebin-10" / "plots" / "manifest.json").exists()  # mid-way
    before = states(run_dir)
    assert before["rebin-5/load"] == "done" and before["rebin-10/plot"] == "pending"
    assert before["rebin-5/plot"] in ("pending", "failed")  # failed: killed while running
    code, out, _ = cli("status", run_dir)
    assert code == 0 and "done=1" in out.strip().splitlines()[-1]

    code, out, err = run_cli_here("run", cfg, "-j", "1")
    assert code == 0, err
    assert "cached" in out and "0 failed" in out
    assert states(run_dir) == dict.fromkeys(
        ["rebin-5/load", "rebin-5/plot", "rebin-10/load", "rebin-10/plot"], "done"
    )
    for point, nbins in (("rebin-5", 600), ("rebin-10", 300)):
        with h5py.File(run_dir / point / "load.h5", "r") as f:
            assert f.attrs["cache_key"]
            counts = f["demo/counts"][()]
        assert len(counts) == nbins and counts.sum() == pytest.approx(2.1456e7, rel=1e-3)
        png = run_dir / point / "plots" / "spectrum.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert not temp_files(run_dir)
    code, out, _ = cli("run", cfg)
    assert code == 0 and "Nothing to do: all 4 tasks are up to date" in out


def kill_while_writing(target: Path) -> None:
    """A process SIGKILLed inside an atomic HDF5 write of ``target``."""
    writer = (
        "import time\n"
        "from gprpipe.io.hdf5 import write_h5\n"
        f"with write_h5({str(target)!r}, {{'cache_key': 'half'}}) as f:\n"
        "    f.create_dataset('x', data=list(range(100000)))\n"
        "    f.flush()\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True, env=cli_env()
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_half_written_output_of_a_killed_task_is_cleaned(tmp_path: Path):
    """A writer SIGKILLed inside an atomic HDF5 write leaves only a temporary file; the
    next attempt of the task removes it and writes a complete output."""
    run_dir = tmp_path / "run"
    _, points = load_points(QUICKSTART, [f"base.output={run_dir}", 'steps.run=["load"]'])
    write_point_configs(run_dir, points)
    point = run_dir / "nominal"
    target = point / "load.h5"
    kill_while_writing(target)
    (leftover,) = temp_files(point)
    assert leftover.name.startswith(".load.h5.") and not target.exists()

    assert run_task(point, "load") == 0
    assert not temp_files(point)
    with h5py.File(target, "r") as f:
        key = f.attrs["cache_key"]
        assert key != "half"
        assert np.asarray(f["demo/counts"]).sum() > 0

    # a progress record half written when its task was killed: removed by the task's
    # next marker (it stayed through every later run: a review)
    from gprpipe.pipeline.state import progress_file

    stale = progress_file(point, "load")
    stale = stale.with_name(f".{stale.name}.i7l7smsl.tmp")
    stale.write_text("")
    assert run_task(point, "load", force=True) == 0
    assert not stale.exists()

    # killed during a forced rewrite: the complete old output stays, and is up to date
    kill_while_writing(target)
    assert len(temp_files(point)) == 1
    assert run_task(point, "load") == 0  # cached
    assert not temp_files(point)
    assert read_attr(target, "cache_key") == key


def test_a_file_system_refusal_in_a_step_is_one_sentence(tmp_path: Path, monkeypatch, capsys):
    """An OSError the file system raises inside a step (a full disk, a folder made
    read-only meanwhile) is the user's to fix: its sentence names the path, with no
    "internal error"; the traceback stays in the task's log."""
    import errno

    from gprpipe.steps import runner

    run_dir = tmp_path / "run"
    _, points = load_points(QUICKSTART, [f"base.output={run_dir}", 'steps.run=["load"]'])
    write_point_configs(run_dir, points)
    full = run_dir / "nominal" / "load.h5"

    def no_space(ctx: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(full))

    monkeypatch.setattr(runner, "step_function", lambda step: no_space)
    assert run_task(run_dir / "nominal", "load") == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"error: {full}: no space left on device."
    assert read_state(run_dir / "nominal", "load") == (
        "failed",
        f"{full}: no space left on device.",
    )
