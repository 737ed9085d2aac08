"""Fault suite, data integrity: every case reproduces a defect first found by hand, through
the real CLI (the runs that are killed or stopped in subprocesses of their own, the other
commands through the same entry point in this process), on the shipped demo spectrum.

Cases: a kill between the two outputs of the limit merge and of the inject merge; a
``fit.h5`` and a fit chunk whose payload bytes were flipped with their attributes intact;
an emptied and a garbled ``scan.csv``; a deleted plot; a copied and a moved run directory;
two concurrent runs of one directory (refused, or waiting with ``--wait-lock``); the stale
lock of a dead run; a task killed during its start-up; cache keys that follow the numerics
version, not the package version; and (marker ``podman``) SIGKILL and SIGTERM of a Podman
run.

Cases that run the whole reference pipeline are marked ``slow`` (about 9 minutes for
the 13 non-container cases on a loaded 2-core machine).
The kill between two outputs uses the fault-injection hook ``GPRPIPE_TEST_KILL_AFTER``:
the task SIGKILLs itself right after renaming the named file into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import (
    DEMO_ROOT,
    QUICKSTART,
    REPO,
    TEST_IMAGE,
    cli_env,
    quickstart_child,
    require_podman,
    require_slurm,
    run_cli_here,
    run_cli_subprocess,
    settings,
    shared_folder,
    shared_run,
    start_cli_subprocess,
)

from gprpipe.config import point_config_from_file
from gprpipe.executors.local import FRESH_ENV
from gprpipe.io.atomic import CRASH_AFTER
from gprpipe.pipeline.lock import LOCK_NAME
from gprpipe.pipeline.store import load_run_info, task_states, tasks_of_run
from gprpipe.results.schema import SCAN
from gprpipe.steps.inject import inject_csv, read_inject
from gprpipe.steps.limit import read_scan, scan_csv

BODY = """
[scan]
masses = [0.030, 0.060, 0.100]
[inject]
masses = [0.060]
strengths = [0.0, 3.0]
n_toys = 200
[steps]
run = ["load", "fit", "limit", "inject"]
"""
OUTPUTS = ("load.h5", "fit.h5", "limit.h5", "scan.csv", "inject.h5", "inject.csv")


def gp(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600):
    """``gprpipe ARGS`` in this process (a run's tasks are processes: the crash hooks end
    those), ``step`` (a task process itself) in a subprocess."""
    if args[0] != "step":
        return run_cli_here(*args, env=env)
    return run_cli_subprocess(*args, env=env, timeout=timeout)


def run(cfg: Path, run_dir: Path, *extra: str, env: dict[str, str] | None = None):
    return gp("run", cfg, "--set", f"base.output={run_dir}", *extra, env=env)


def start_run(cfg: Path, run_dir: Path, *extra: str, **popen: Any) -> subprocess.Popen[str]:
    """:func:`run` started in the background (see ``start_cli_subprocess``)."""
    return start_cli_subprocess("run", cfg, "--set", f"base.output={run_dir}", *extra, **popen)


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by its path (the payload, not the attributes)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def assert_same_results(a: Path, b: Path) -> None:
    """Two point folders hold the same results: CSVs byte for byte, HDF5 payloads equal
    (HDF5 files differ in their ``created`` attribute and measured run times only)."""
    for name in OUTPUTS:
        if name.endswith(".csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
            continue
        x, y = h5_arrays(a / name), h5_arrays(b / name)
        assert x.keys() == y.keys(), name
        for k in x:
            if k.endswith("seconds"):  # the measured run time of each injection
                continue
            if x[k].dtype.kind in "fc":
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{name}:{k}")
            else:
                assert np.array_equal(x[k], y[k]), f"{name}:{k}"


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def states(run_dir: Path) -> dict[str, tuple[str, str]]:
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    return task_states(tasks)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config, at one path for all pytest-xdist workers (written atomically)."""
    folder = shared_folder(tmp_path_factory, "faults-cfg")
    staged = quickstart_child(folder / f"faults.{os.getpid()}.toml", BODY)
    os.replace(staged, folder / "faults.toml")
    return folder / "faults.toml"


@pytest.fixture(scope="module")
def base(cfg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete run (load, fit, limit, inject at 3 masses): the reference, made once
    per session (read-only; tests change a copy)."""
    run_dir = shared_run(tmp_path_factory, "faults-base", cfg)
    assert "0 failed" in json.loads((run_dir.parent / "result.json").read_text())["out"]
    return run_dir


@pytest.fixture
def copy(base: Path, tmp_path: Path) -> Path:
    """A copy of the reference run, in another place."""
    dst = tmp_path / "copy"
    shutil.copytree(base, dst, symlinks=True)
    return dst


# ----------------------------------------------------------------- 6: commit as one


@pytest.mark.slow
def test_kill_between_limit_h5_and_scan_csv(cfg: Path, copy: Path):
    """Killed after limit.h5 and before scan.csv: the next run must not call the stale
    scan.csv fresh; it redoes the merge, and scan.csv then matches limit.h5."""
    point = copy / "nominal"
    old_csv = (point / "scan.csv").read_text()
    code, _, err = run(cfg, copy, "--set", "limit.alpha=0.1", env={CRASH_AFTER: "limit.h5"})
    assert code == 1, err
    assert "failed nominal/limit/merge" in err
    assert (point / "scan.csv").read_text() == old_csv  # stale, beside a new limit.h5
    assert scan_csv(read_scan(point / "limit.h5")) != old_csv

    code, out, err = run(cfg, copy, "--set", "limit.alpha=0.1")
    assert code == 0, err
    assert "Nothing to do" not in out and "1 ran" in out  # just the merge
    new_csv = (point / "scan.csv").read_text()
    assert new_csv != old_csv
    assert new_csv == scan_csv(read_scan(point / "limit.h5"))
    code, out, _ = run(cfg, copy, "--set", "limit.alpha=0.1")
    assert code == 0 and "Nothing to do" in out


def test_a_merge_never_merges_a_part_of_other_settings(cfg: Path, copy: Path):
    """A chunk that did not run in this run (on SLURM a merge starts after its chunks
    however they ended: one cancelled before it started left the earlier config's part,
    its commit record intact): the merge refuses that part instead of writing the earlier
    config's limits under this config's name."""
    point = copy / "nominal"
    old_csv = (point / "scan.csv").read_text()
    # the run stops right after it wrote the new point config: no task of it ran
    code, _, _ = run_cli_subprocess(  # (the run's own process dies: not this one)
        "run",
        cfg,
        *settings(f"base.output={copy}", "limit.alpha=0.3"),
        env={CRASH_AFTER: "config.toml"},
    )
    assert code == -9 and "alpha = 0.3\n" in (point / "config.toml").read_text()
    # run.json still records the earlier config: a task by hand refuses the new one
    code, _, err = gp("step", "limit", "--point-dir", point, "--part", "merge")
    assert code == 1 and "config.toml: changed since the run wrote it" in err, err
    # as a run that recorded it (the SLURM case: its merge starts after its chunks)
    info = json.loads((copy / "run.json").read_text())
    text = (point / "config.toml").read_text(encoding="utf-8")
    info["grid"][0]["config_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (copy / "run.json").write_text(json.dumps(info))
    code, _, err = gp("step", "limit", "--point-dir", point, "--part", "merge")
    assert code == 1 and err.strip() == (
        f"error: {point / 'parts' / 'limit' / 'demo-000.h5'}: made by nominal/limit/demo-000 "
        "with other settings or inputs than this config (its task did not run to the end in "
        "this run?); run the point again to recompute it"
    )
    assert (point / "scan.csv").read_text() == old_csv  # nothing written
    code, _, err = run(cfg, copy, "--set", "limit.alpha=0.3")
    assert code == 0, err
    assert (point / "scan.csv").read_text() != old_csv


@pytest.mark.slow
def test_kill_between_inject_h5_and_inject_csv(cfg: Path, copy: Path):
    point = copy / "nominal"
    old_csv = (point / "inject.csv").read_text()
    strengths = ("--set", "inject.strengths=[0.0, 2.0]")
    code, _, err = run(cfg, copy, *strengths, env={CRASH_AFTER: "inject.h5"})
    assert code == 1, err
    assert (point / "inject.csv").read_text() == old_csv
    code, out, err = run(cfg, copy, *strengths)
    assert code == 0, err
    assert "Nothing to do" not in out
    new_csv = (point / "inject.csv").read_text()
    assert new_csv == inject_csv(read_inject(point / "inject.h5"))
    z = {line.split(",")[2] for line in new_csv.splitlines()[1:]}
    assert z == {"0", "2"}  # the new strengths, not the stale 0 and 3


# ----------------------------------------------------------------- 7: verified reuse


def flip_payload(path: Path, dataset: str) -> None:
    """Flip bytes inside one dataset's stored data, leaving the attributes intact."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset, size = ds.id.get_offset(), ds.id.get_storage_size()
    assert offset is not None and size >= 8
    with open(path, "r+b") as fh:
        fh.seek(offset)
        raw = bytearray(fh.read(8))
        fh.seek(offset)
        fh.write(bytes(b ^ 0x5A for b in raw))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damaged", "writer", "reader"),
    [
        ("fit.h5", "nominal/fit/merge", ("inject", "demo-60MeV")),
        ("parts/fit/demo-000.h5", "nominal/fit/demo-000", ("limit", "demo-000")),
    ],
    ids=["fit.h5-read-by-inject", "fit-chunk-read-by-limit"],
)
def test_fit_payload_flipped_with_attrs_intact(
    cfg: Path, copy: Path, base: Path, damaged: str, writer: str, reader: tuple[str, str]
):
    """Flipped payload bytes of a fit file (the merged fit.h5, or the fit chunk that a
    dataset's limit chunk reads): the task reading it refuses it, the next run redoes the
    task that wrote it and gets the same results."""
    point = copy / "nominal"
    path = point / damaged
    name = next(k for k in h5_arrays(path) if k.endswith("/b"))
    before = h5_arrays(path)[name]
    flip_payload(path, name)
    with h5py.File(path, "r") as f:  # attributes intact, payload changed
        assert f.attrs["cache_key"]
    assert not np.array_equal(h5_arrays(path)[name], before)

    # a task that reads the damaged file refuses it (one sentence naming it)
    step, part = reader
    code, out, err = gp("step", step, "--point-dir", point, "--part", part, "--force")
    assert code == 1
    lines = [x for x in (out + err).splitlines() if x.startswith("error:")]
    assert lines == [
        f"error: {path}: input damaged since its task {writer} wrote it (sha256 mismatch); "
        "run the point again to recompute it"
    ]

    code, out, err = run(cfg, copy)
    assert code == 0, err
    assert (
        f"notice: {writer}: {damaged} differs from what the task wrote (sha256 "
        "mismatch); running the task again"
    ) in err
    assert_same_results(point, base / "nominal")


@pytest.mark.slow
def test_emptied_scan_csv_is_recomputed(cfg: Path, copy: Path, base: Path):
    point = copy / "nominal"
    (point / "scan.csv").write_text("")
    code, out, err = run(cfg, copy)
    assert code == 0, err
    assert "notice: nominal/limit/merge: scan.csv differs from what the task wrote" in err
    assert "1 ran" in out
    assert_same_results(point, base / "nominal")


@pytest.mark.slow
def test_garbled_scan_csv_is_recomputed(cfg: Path, copy: Path, base: Path):
    point = copy / "nominal"
    text = (point / "scan.csv").read_text()
    row = text.splitlines()[2].split(",")
    row[5] = str(float(row[5]) * 100)  # A_up of the second mass
    lines = text.splitlines()
    lines[2] = ",".join(row)
    (point / "scan.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run(cfg, copy)
    assert code == 0, err
    assert "scan.csv differs from what the task wrote" in err
    assert_same_results(point, base / "nominal")


def test_deleted_plot_is_redrawn(tmp_path: Path):
    cfg = quickstart_child(
        tmp_path / "plot.toml",
        """
        [plot]
        formats = ["png"]
        [steps]
        run = ["load", "plot"]
    """,
    )
    run_dir = tmp_path / "run"
    code, _, err = run(cfg, run_dir)
    assert code == 0, err
    png = run_dir / "nominal" / "plots" / "spectrum.png"
    original = png.read_bytes()
    png.unlink()
    code, out, err = run(cfg, run_dir)
    assert code == 0, err
    assert "notice: nominal/plot: plots/spectrum.png is missing; running the task again" in err
    assert "1 ran, 1 cached" in out
    assert png.read_bytes()[:8] == original[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(cfg, run_dir)
    assert code == 0 and "Nothing to do" in out


def test_summary_and_status_agree_on_damaged_outputs(copy: Path):
    """A truncated fit.h5 and a garbled commit record: status, summary and rerun --failed
    all count the task failed (the summary gave the full results with no failure, the
    garbled record passed for done), and rerun --failed redoes it."""
    fit = copy / "nominal" / "fit.h5"
    with fit.open("r+b") as f:
        f.truncate(2000)
    code, out, _ = gp("summary", copy)
    assert code == 0
    assert "  failed tasks: 1\n    nominal/fit/merge: fit.h5 differs from what the task " in out
    assert f"To finish the run (once any cause above is fixed): gprpipe rerun {copy} " in out
    code, out, err = gp("rerun", copy, "--failed")
    assert code == 0, out + err
    assert "failed=" not in gp("status", copy)[1]
    (copy / "nominal" / ".state" / "fit__merge.commit").write_text('{"garbage":\n')
    code, out, _ = gp("status", copy)
    assert "failed   nominal/fit/merge: .state/fit__merge.commit is unreadable since the " in out
    assert "failed tasks: 1" in gp("summary", copy)[1]
    code, out, err = gp("rerun", copy, "--failed")
    assert code == 0, out + err
    assert "failed=" not in gp("status", copy)[1]
    assert "failed tasks" not in gp("summary", copy)[1]
    # a record gone (a submission that withdrew it and never ran) is damage too: it was
    # taken for done, and rerun --failed found nothing to redo
    (copy / "nominal" / ".state" / "fit__merge.commit").unlink()
    code, out, _ = gp("status", copy)
    assert "failed   nominal/fit/merge: .state/fit__merge.commit is missing since the " in out
    code, out, err = gp("rerun", copy, "--failed")
    assert code == 0 and "Rerunning" in out, out + err
    assert "failed=" not in gp("status", copy)[1]


def test_an_interrupted_reach_projection_leaves_none_of_its_files(
    copy: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ctrl-C while project-reach saves its figure (after the PNG, before the PDF): none
    of reach.csv, reach.png, reach.pdf is left (reach.png alone was), nor the earlier
    projection's files beside the new ones."""
    from gprpipe.plotting import style
    from gprpipe.steps import reach

    assert gp("project-reach", copy, "--scale", "demo=2")[0] == 0
    folder = copy / "nominal" / "reach"
    assert sorted(p.name for p in folder.iterdir()) == ["reach.csv", "reach.pdf", "reach.png"]

    def png_then_ctrl_c(fig, out, stem, formats):
        style.save(fig, out, stem, formats[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(reach, "save", png_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        reach.project_reach(copy, "demo=4")
    assert sorted(p.name for p in folder.iterdir()) == []


def test_a_folder_in_place_of_an_output_is_a_damaged_output(copy: Path):
    """A folder put in place of fit.h5 stopped summary (and status, the exports, rerun)
    with "fit.h5: is a directory." (a review), where an emptied or deleted fit.h5 shows
    the task failed and the rest of the summary."""
    fit = copy / "nominal" / "fit.h5"
    fit.unlink()
    fit.mkdir()
    code, out, err = gp("summary", copy)
    assert code == 0, out + err
    assert "    nominal/fit/merge: fit.h5 was replaced by a folder since the task finished; " in out
    assert "remove it, then rerun --failed" in out  # (a task never writes over a folder)


def test_reach_and_compare_figures_are_labelled_as_the_run_says(copy: Path, tmp_path: Path):
    """project-reach and compare drew "HPS Preliminary" whatever plot.experiment and
    plot.status said, and no BLINDED mark on a blinded run (a review): they draw with the
    label the point's config gives, as the plot step does (the labels are module state
    of the drawing process, set here to other values first)."""
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.compare import write_comparison
    from gprpipe.plotting import style
    from gprpipe.steps import reach

    plot = point_config_from_file(copy / "nominal" / "config.toml").plot
    said = (plot.experiment, plot.status, False)
    other = shutil.copytree(copy, tmp_path / "other", symlinks=True)
    for draw in (
        lambda: reach.project_reach(copy, "demo=2", formats=["png"]),
        lambda: write_comparison([copy, other], tmp_path / "cmp", ["png"]),
    ):
        style.set_labels("Other", "Internal", True)
        draw()
        labels = style.LABELS
        assert (labels.experiment, labels.status, labels.blinded) == said


def test_a_projection_of_a_run_without_a_usable_mass_is_refused(cfg: Path, tmp_path: Path):
    """project-reach of a run whose every mass is flagged (here: a GOF threshold no fit
    meets) wrote a reach.csv of NaN and an empty figure, and said "0 masses ... median gain
    nanx" with exit 0 (a review), where compare and the exports refuse. One sentence and
    exit 1 now; nothing is written."""
    run_dir = tmp_path / "flagged"
    code, out, err = run(cfg, run_dir, "--steps", "load,fit,limit", "--set", "fit.gof_p_min=0.99")
    assert code == 0, out + err
    code, out, err = gp("project-reach", run_dir, "--scale", "demo=2")
    assert (code, out) == (1, "")
    assert err == (
        f"error: {run_dir / 'nominal' / 'scan.csv'}: no mass with an expected limit to "
        "project (each of its 3 masses failed or is flagged).\n"
    )
    assert not (run_dir / "nominal" / "reach").exists()


def test_a_projection_in_fewer_formats_leaves_no_figure_of_the_earlier_one(copy: Path):
    """project-reach x10 in png and pdf, then x4 in png alone (plot.formats changed): the
    x10 reach.pdf stayed beside the x4 files, recorded as current (a review). It is
    removed and the record forgets it."""
    import json

    from gprpipe.steps import reach

    reach.project_reach(copy, "demo=10")
    folder = copy / "nominal" / "reach"
    assert sorted(p.name for p in folder.iterdir()) == ["reach.csv", "reach.pdf", "reach.png"]
    (folder / "reach.x4.txt").write_text("a note of mine\n")  # not the projection's
    # an export moved away meanwhile keeps its record (a blinded run must still refuse it
    # once it is back; the first fix forgot every absent file's record)
    assert gp("export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV")[0] == 0
    exports = copy / "nominal" / "exports"
    exports.rename(copy / "away")
    reach.project_reach(copy, "demo=4", formats=["png"])
    (copy / "away").rename(exports)
    assert sorted(p.name for p in folder.iterdir()) == ["reach.csv", "reach.png", "reach.x4.txt"]
    record = json.loads((copy / "nominal" / ".state" / "exports.json").read_text())
    assert sorted(record) == [
        "exports/pyhf_demo_60MeV.json",
        "reach/reach.csv",
        "reach/reach.png",
    ]


def test_step_outputs_missing_an_array_are_one_sentence(copy: Path):
    """load.h5 without its counts, a fit part or fit.h5 without a window's C (the commit
    record updated, so the digest passes): "internal error in step fit: KeyError:
    'counts'" with a traceback, likewise limit and the exports (a review). Now one
    sentence naming the file, the group and what it lacks."""
    import hashlib

    point = copy / "nominal"

    def damage(rel: str, record: str, *groups: str) -> Path:
        with h5py.File(point / rel, "a") as f:
            for g in groups:
                del f[g]
        path = point / ".state" / f"{record}.commit"
        commit = json.loads(path.read_text())
        commit["files"][rel] = hashlib.sha256((point / rel).read_bytes()).hexdigest()
        path.write_text(json.dumps(commit))
        return point / rel

    def one_sentence(err: str) -> str:
        assert "Traceback" not in err and "internal error" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        return err.strip()

    steps = ("--point-dir", point, "--force", "--part", "demo-000")
    part = damage("parts/fit/demo-000.h5", "fit__demo-000", "demo/blind/1/C")
    code, _, err = gp("step", "limit", *steps)
    assert code == 1 and one_sentence(err).endswith(
        f"{part}: /demo/blind/1 has no C (a damaged or foreign file); run the point again "
        "to recompute it."
    )
    fit = damage("fit.h5", "fit__merge", "demo/blind/1")
    code, _, err = gp("export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV")
    assert code == 1 and one_sentence(err) == (
        f"error: {fit}: has no blind window /demo/blind/1 (a damaged or foreign file); run "
        "the point again to recompute it."
    )
    load = damage("load.h5", "load", "demo/counts")
    code, _, err = gp("step", "fit", *steps)
    assert code == 1 and one_sentence(err).endswith(
        f"{load}: /demo has no counts (a damaged or foreign file); run the point again to "
        "recompute it."
    )


def test_a_rerun_after_the_data_file_changed_redoes_what_read_it(tmp_path: Path):
    """The data file is replaced after a run (same path, other counts): rerun --masses
    (and rerun --failed) refused the 30 MeV fit's load.h5 ("made with other settings or
    inputs") and the summary's advice, rerun --failed, failed the same way every time.
    A rerun now redoes the load task as well, saying why, and everything after it."""
    from gprpipe.demo import demo_spectrum
    from gprpipe.io.root import read_hist, write_hist
    from gprpipe.steps.load import read_load

    data = tmp_path / "d.root"
    shutil.copy(DEMO_ROOT, data)
    run_dir = tmp_path / "run"
    sets = settings(f"datasets.demo.path={data}", "scan.masses=[0.03, 0.06]")
    code, out, err = gp(
        "run", QUICKSTART, "--steps", "load,fit,limit", *sets, "--set", f"base.output={run_dir}"
    )
    assert code == 0, out + err
    counts, edges = demo_spectrum(seed=7)
    write_hist(data, counts, edges)
    code, out, err = gp("rerun", run_dir, "--masses", "30MeV")
    assert code == 0, out + err
    assert (
        "notice: nominal/load: its outputs were made with other settings or inputs than the "
        "run's config gives now (by an earlier config's run, or a data file changed since); "
        "running it again" in err
    )
    loaded = read_load(run_dir / "nominal" / "load.h5", "demo")[0]
    assert loaded.sum() == read_hist(data, "input_hist")[0].sum() == counts.sum()
    status = gp("status", run_dir)[1]
    assert "failed=" not in status and "done=5" in status
    # a data file damaged since: run refuses it in one sentence; rerun started, failed the
    # load task, skipped the rest and turned the finished run failed (a review)
    data.write_bytes(b"junk")
    code, out, err = gp("rerun", run_dir, "--masses", "30MeV")
    assert (code, out) == (1, "")
    assert err.endswith(
        f"error: {run_dir / 'nominal' / 'config.toml'}: datasets.demo.path: {data}: cannot "
        "open as a ROOT file (not a ROOT file: first four bytes are b'junk').\n"
    ), err
    assert "notice:" not in err  # (it said the load task would run again, then refused)
    # a readable histogram that does not cover the dataset's range: checked as run checks
    write_hist(data, counts[-100:], edges[-101:])
    code, out, err = gp("rerun", run_dir, "--failed", "--masses", "30MeV")
    assert code == 1 and "notice:" not in err
    assert err.startswith(f"error: {run_dir / 'nominal' / 'config.toml'}: datasets.demo.range: "), (
        err
    )
    status = gp("status", run_dir)[1]
    assert "failed=" not in status and "done=5" in status


# ----------------------------------------------------------------- 8: relocatable


@pytest.mark.slow
def test_rerun_of_a_copy_touches_only_the_copy(copy: Path, base: Path):
    before = mtimes(base)
    original_csv = (base / "nominal" / "scan.csv").read_bytes()
    info = json.loads((copy / "run.json").read_text())
    assert str(base) not in json.dumps({k: info[k] for k in ("grid", "plan")})
    stamp = (copy / "nominal" / "scan.csv").stat().st_mtime_ns
    code, out, err = gp("rerun", copy, "--masses", "60MeV")
    assert code == 0, err
    assert (
        "Rerunning 6 tasks: nominal/fit/demo-000, nominal/fit/merge, "
        "nominal/limit/demo-000, nominal/limit/merge, nominal/inject/demo-60MeV, "
        "nominal/inject/merge"
    ) in out
    assert (copy / "nominal" / "scan.csv").stat().st_mtime_ns > stamp
    assert mtimes(base) == before  # the original is untouched
    assert (base / "nominal" / "scan.csv").read_bytes() == original_csv
    assert (copy / "nominal" / "scan.csv").read_bytes() == original_csv  # same numbers


@pytest.mark.slow
def test_moved_run_recomputes_nothing(cfg: Path, base: Path, tmp_path: Path):
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.copytree(base, tmp_path / "staging", symlinks=True)
    (tmp_path / "staging").rename(moved)  # a move (of a copy: the reference stays)
    before = mtimes(moved)
    code, out, err = run(cfg, moved)
    assert code == 0, err
    assert out.startswith("Nothing to do: all 7 tasks are up to date"), out
    code, out, _ = gp("status", moved)
    assert code == 0 and "done=7" in out
    code, out, _ = gp("rerun", moved, "--failed")
    assert code == 0 and "Nothing to rerun" in out
    changed = {k for k, v in mtimes(moved).items() if before.get(k) != v}
    assert changed <= {"run.json", LOCK_NAME, "nominal/config.toml"} | {
        k for k in changed if k.startswith("nominal/.state/")
    }


@pytest.mark.slow
def test_commands_that_read_a_run_refuse_what_no_commit_vouches_for(copy: Path):
    """export-pyhf, export-spey, project-reach, compare and summary read a run's outputs
    outside a run: a damaged file (flipped bytes, an edited scan.csv) or one whose task never
    committed it is one sentence naming the file, never numbers from it."""
    point = copy / "nominal"
    intact = shutil.copytree(copy, copy.parent / "intact")  # what compare compares it with
    ok = run_cli_here(
        "export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV", "-o", point / "ws.json"
    )
    assert ok[0] == 0, ok[2]
    h5 = point / "fit.h5"
    data = bytearray(h5.read_bytes())
    data[-100] ^= 0xFF
    h5.write_bytes(bytes(data))
    for args in (
        ("export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV", "-o", point / "x.json"),
        ("export-spey", copy, "--dataset", "demo", "-o", point / "spey"),
    ):
        code, _, err = run_cli_here(*args)
        assert code == 1 and err.strip() == (
            f"error: {h5}: differs from what its task nominal/fit/merge wrote (sha256 "
            "mismatch); run the point again to recompute it."
        )
    # a folder at its name: said so, not "is a directory." (a review), and to remove it
    # (a rerun does not write over it: a later review)
    damaged = h5.rename(point / "fit.damaged")
    h5.mkdir()
    code, _, err = run_cli_here("export-spey", copy, "--dataset", "demo", "-o", point / "spey")
    assert code == 1 and err.strip() == (
        f"error: {h5} was replaced by a folder since its task nominal/fit/merge wrote it: "
        "remove it, then run the point again to recompute it."
    )
    h5.rmdir()
    damaged.rename(h5)
    with open(point / "scan.csv", "a") as fh:
        fh.write("\n")
    code, _, err = run_cli_here("compare", intact, copy)
    assert code == 1 and "scan.csv: differs from what its task nominal/limit/merge" in err
    code, out, _ = run_cli_here("summary", copy)  # it printed this with exit code 0
    assert code == 1 and f"  not summarised: {point / 'scan.csv'}: differs" in out
    assert "most significant" not in out
    (point / ".state" / "limit__merge.commit").unlink()
    code, _, err = run_cli_here("project-reach", copy, "--scale", "demo=2")
    assert code == 1 and err.strip() == (
        f"error: {point / 'limit.h5'}: no task of this run has committed it (its task is "
        "running or was killed before it finished, or the file was copied in); run the point "
        "again to recompute it."
    )
    assert not (copy / "x.json").exists() and not (copy / "spey").exists()
    assert not (point / "reach").exists()


def test_a_plot_step_alone_over_a_damaged_fit_is_refused_before_it_starts(cfg: Path, copy: Path):
    """``--steps plot`` over a damaged fit.h5 started the plot task, which failed, and
    advised ``rerun --failed``, which reran the plot alone and failed alike (and the run's
    plan then held the plot task alone): refused first, naming the file and the step."""
    point = copy / "nominal"
    with h5py.File(point / "fit.h5", "a") as f:
        del f["demo/blind/1"]
    before = mtimes(point)
    code, out, err = run(cfg, copy, "--steps", "plot")
    assert (
        code == 1
        and out == ""
        and err.strip()
        == (
            f"error: {point / 'fit.h5'}: differs from what its task nominal/fit/merge wrote "
            "(sha256 mismatch), and the plot step would draw it: add 'fit' to steps.run (or "
            "--steps)."
        )
    )
    assert mtimes(point) == before
    # likewise a damaged input of a planned task whose step is left out
    part = point / "parts" / "fit" / "demo-000.h5"
    with h5py.File(part, "a") as f:
        f["demo"].attrs["x"] = 1
    code, out, err = run(cfg, copy, "--steps", "limit", "--force")
    assert (
        code == 1
        and out == ""
        and err.strip().startswith(
            "error: nominal/limit/demo-000 reads parts/fit/demo-000.h5 of the fit step, which "
            f"steps.run leaves out, and the one in {point} differs from what its task wrote "
            "(sha256 mismatch): add 'fit' to steps.run (or --steps)."
        )
    )


def test_a_hand_edited_point_config_is_refused_until_the_config_runs_again(
    cfg: Path, copy: Path, base: Path
):
    """A point's config.toml edited by hand (another blind window) would make a rerun
    compute some masses with it and keep the others: status, summary, rerun and a task run
    by hand refuse it in one sentence; running the config again rewrites it, with the same
    results."""
    point_cfg = copy / "nominal" / "config.toml"
    text = point_cfg.read_text()
    assert "blind_nsigma = 1.64\n" in text
    point_cfg.write_text(text.replace("blind_nsigma = 1.64\n", "blind_nsigma = 3.0\n"))
    before = mtimes(copy / "nominal")
    exports = (
        ("export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV"),
        ("export-spey", copy, "--dataset", "demo"),
        ("project-reach", copy, "--scale", "demo=2"),
    )  # (the exports wrote the edited config's window with exit 0)
    for args in (
        ("status", copy),
        ("summary", copy),
        ("rerun", copy, "--masses", "60MeV"),
        # a task run by hand computed with it (a blinded run's edited config unblinded so)
        ("step", "load", "--point-dir", copy / "nominal", "--force"),
        *exports,
    ):
        code, _, err = gp(*args)
        assert code == 1 and err.strip() == (
            f"error: {point_cfg}: changed since the run wrote it (run.json records another "
            "sha256): its results and a rerun would follow two configs; run the config "
            "again (gprpipe run CONFIG)."
        ), args
    # compare refuses its table too (it compared it as the edited config's)
    code, _, err = gp("compare", copy, base)
    assert code == 1 and err.strip() == (
        f"error: {point_cfg}: changed since the run wrote it (run.json records another "
        "sha256): its results and a rerun would follow two configs; run the config "
        "again (gprpipe run CONFIG)."
    )
    assert mtimes(copy / "nominal") == before
    code, _, err = run(cfg, copy)
    assert code == 0, err
    assert "blind_nsigma = 1.64\n" in point_cfg.read_text()
    assert gp("status", copy)[0] == 0
    assert_same_results(copy / "nominal", base / "nominal")


def test_a_task_run_by_hand_runs_beside_a_damaged_run_json(copy: Path):
    """A task checks its point's config against run.json; a damaged run.json (cut short)
    refused the task (the own-diff review): it runs as before, and status says what is
    wrong with the record."""
    text = (copy / "run.json").read_text()
    (copy / "run.json").write_text(text[:200])
    code, _, err = gp("step", "load", "--point-dir", copy / "nominal", "--force")
    assert code == 0, err
    code, _, err = gp("status", copy)
    assert code == 1 and "run.json: unreadable" in err, err


def test_a_step_left_out_lends_no_output_of_other_settings(cfg: Path, copy: Path, tmp_path):
    """A run that leaves out the step whose settings changed (other rebinning, only fit
    and limit run; another blind window, only limit runs) used that step's old outputs
    and labelled the results with the new config: it is refused before anything starts,
    naming the step to add. A fit.h5 of another config, copied in with its commit record,
    is refused by the exports; the run itself recomputes it."""
    before = mtimes(copy / "nominal")
    for change, steps, step in (
        ("datasets.demo.rebin=20", "fit,limit", "load"),
        ("fit.blind_nsigma=2.5", "limit", "fit"),
    ):
        for dry in ((), ("--dry-run",)):  # a dry run says what the run refuses
            code, out, err = run(cfg, copy, "--set", change, "--steps", steps, *dry)
            assert code == 1 and out == "", err
            assert "was made with other settings or inputs than this config's (or by " in err
            assert f"gprpipe version): add '{step}' to steps.run (or --steps)." in err
    assert mtimes(copy / "nominal") == before
    other = tmp_path / "other"
    code, _, err = run(cfg, other, "--set", "fit.blind_nsigma=1.96", "--steps", "load,fit")
    assert code == 0, err
    point = copy / "nominal"
    shutil.copy(other / "nominal" / "fit.h5", point / "fit.h5")
    shutil.copy(other / "nominal" / ".state" / "fit__merge.commit", point / ".state")
    code, _, err = gp("export-pyhf", copy, "--dataset", "demo", "--mass", "60MeV")
    assert code == 1 and err.strip() == (
        f"error: {point / 'fit.h5'}: made with other settings or inputs than the point's "
        f"config ({point / 'config.toml'}); run the point again to recompute it."
    )
    assert not list(point.rglob("pyhf_*.json"))


def test_results_of_an_older_numerics_version_stay_readable(copy: Path, monkeypatch):
    """After an upgrade (a higher NUMERICS_VERSION) the run's outputs are still its
    config's: compare and the exports read them; a step left out of a new run refuses to
    compute on them (another gprpipe version)."""
    from gprpipe.pipeline import cache
    from gprpipe.pipeline.plan import Layout, producers

    point = copy / "nominal"
    cfg = point_config_from_file(point / "config.toml")
    limit = producers("nominal", point, cfg)[Layout(point).scan_csv]
    assert cache.made_by(limit, cfg)
    monkeypatch.setattr(cache, "NUMERICS_VERSION", cache.NUMERICS_VERSION + 1)
    assert not cache.made_by(limit, cfg)
    assert cache.made_by(limit, cfg, any_version=True)
    assert cache.vouched_for(point / "scan.csv", cfg) == point / "scan.csv"


def test_export_spey_without_limit_h5_is_refused(copy: Path):
    """Without limit.h5 export-spey wrote its windows without the limits (eps2_up, A_up)
    and exited 0; it refuses, and writes nothing."""
    (copy / "nominal" / "limit.h5").unlink()
    code, _, err = gp("export-spey", copy, "--dataset", "demo")
    assert code == 1 and err.strip() == (
        f"error: {copy / 'nominal'}: no limit.h5 (run the limit step first)."
    )
    assert not (copy / "nominal" / "exports").exists()


def test_a_damaged_output_is_a_failed_task_that_rerun_failed_repairs(
    copy: Path, base: Path, monkeypatch
):
    """A truncated fit.h5 left status at 'done' and rerun --failed found nothing to do
    (only the exports noticed); status names it, and rerun --failed recomputes it. The
    TUI's watcher says what status says (it counted the task done, and its rerun key
    found no failed task), within its DAMAGE_PERIOD."""
    from gprpipe.pipeline import watch

    watcher = watch.RunWatcher()
    assert watcher.poll(copy).counts()["failed"] == 0
    fit = copy / "nominal" / "fit.h5"
    with open(fit, "r+b") as f:
        f.truncate(100)
    code, out, _ = gp("status", copy)
    assert code == 0
    why = (
        "fit.h5 differs from what the task wrote (sha256 mismatch) since the task finished; "
        "rerun --failed redoes it"
    )
    assert f"failed   nominal/fit/merge: {why}" in out
    assert watcher.poll(copy).counts()["failed"] == 0  # within the period: not checked yet
    monkeypatch.setattr(watch, "DAMAGE_PERIOD", 0.0)  # the period has passed
    for _ in range(2):  # the second poll from the watcher's memo
        view = watcher.poll(copy)
        assert [(t, s) for t, s in view.states.items() if s[0] != "done"] == [
            ("nominal/fit/merge", ("failed", why))
        ]
    code, out, err = gp("rerun", copy, "--failed")
    assert code == 0, err
    assert gp("status", copy)[1].strip().endswith("done=" + str(len(states(copy))))
    assert watcher.poll(copy).all_done
    assert_same_results(copy / "nominal", base / "nominal")


def test_rerun_of_masses_redoes_a_damaged_task_upstream(copy: Path, base: Path):
    """``rerun --masses`` over a truncated load.h5 (status: load failed) ran the fit on it:
    the fit failed, and so did every chosen task after it. The damaged task upstream is
    now redone first, with a notice, and the results are the reference's."""
    load = copy / "nominal" / "load.h5"
    with open(load, "r+b") as f:
        f.truncate(500)
    code, out, err = gp("rerun", copy, "--masses", "60MeV")
    assert code == 0, out + err
    assert (
        "notice: nominal/load: load.h5 differs from what the task wrote (sha256 mismatch) "
        "since it finished; running it again"
    ) in out + err
    assert gp("status", copy)[1].strip().endswith("done=" + str(len(states(copy))))
    assert_same_results(copy / "nominal", base / "nominal")


def three_fit_parts(path: Path) -> Path:
    """The quickstart with three masses, one per fit and limit part (no plot step)."""
    return quickstart_child(
        path,
        """
        [scan]
        masses = [0.03, 0.06, 0.1]
        chunk_size = 1
        [steps]
        run = ["load", "fit", "limit"]
        """,
    )


def test_rerun_failed_finishes_an_interrupted_run(tmp_path: Path):
    """Ctrl-C while the second of three fit parts runs: it is cancelled (failed) and the
    third never ran. rerun --failed redid only the failed part and what follows it, so the
    merge found the third part missing, failed, and rerun --failed said so again each time.
    It now also runs what never ran, and the table is that of an uninterrupted run."""
    cfg = three_fit_parts(tmp_path / "c.toml")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert run(cfg, ref, "-j", "1")[0] == 0
    proc = start_run(cfg, cut, "-j", "1")
    first = cut / "nominal" / ".state" / "fit__demo-000.done"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    st = states(cut)
    assert st["nominal/fit/demo-002"][0] == "pending" and st["nominal/fit/merge"][0] != "done"
    code, out, err = gp("rerun", cut, "--failed")
    assert code == 0, out + err
    assert (cut / "nominal" / "scan.csv").read_bytes() == (
        ref / "nominal" / "scan.csv"
    ).read_bytes()


@pytest.mark.parametrize("rerun", [("--failed",), ("--masses", "100MeV")])
def test_an_interrupted_run_of_other_settings_leaves_no_earlier_task_done(
    tmp_path: Path, rerun: tuple[str, ...]
):
    """A run with changed settings over a finished run folder, interrupted after its first
    fit part: the parts it had not redone kept the earlier run's done markers, so status
    said done, rerun --failed had "nothing to rerun" and summary showed the earlier
    settings' numbers (a review). They are pending now, and rerun --failed finishes the
    run with the new settings. So does a rerun of one mass: it redid that mass's parts,
    and their merges refused the other parts, of the earlier settings (a review)."""
    cfg = three_fit_parts(tmp_path / "c.toml")
    new = ("--set", "fit.blind_nsigma=1.96")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert run(cfg, ref, "-j", "1", *new)[0] == 0
    assert run(cfg, cut, "-j", "1")[0] == 0
    record = cut / "nominal" / ".state" / "fit__demo-000.commit"
    earlier = record.read_bytes()
    proc = start_run(cfg, cut, "-j", "1", *new)
    deadline = time.monotonic() + 120

    def redone() -> bool:  # (the task removes its record while it runs: read it once)
        try:
            return record.read_bytes() not in (b"", earlier)
        except FileNotFoundError:
            return False

    while not redone() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    st = states(cut)
    assert st["nominal/fit/demo-000"][0] == "done"
    assert st["nominal/fit/demo-002"][0] == "pending", st
    assert st["nominal/limit/merge"][0] != "done", st
    code, out, err = gp("rerun", cut, *rerun)
    assert code == 0, out + err
    assert (cut / "nominal" / "scan.csv").read_bytes() == (
        ref / "nominal" / "scan.csv"
    ).read_bytes()


def test_a_folder_in_place_of_the_data_file_is_a_changed_input(tmp_path: Path):
    """A folder put at the data file's name stopped summary and status with "is a
    directory.", then (the first fix) passed the summary as current with no note (a
    review); it is a changed input now, as an emptied data file is."""
    data = tmp_path / "d.root"
    shutil.copy(DEMO_ROOT, data)
    run_dir = tmp_path / "run"
    sets = settings(f"datasets.demo.path={data}", "scan.masses=[0.06]")
    code, out, err = gp(
        "run", QUICKSTART, "--steps", "load,fit,limit", *sets, "--set", f"base.output={run_dir}"
    )
    assert code == 0, out + err
    assert "NOT CURRENT" not in gp("summary", run_dir)[1]
    data.unlink()
    data.mkdir()
    code, out, err = gp("summary", run_dir)
    assert code == 0, out + err
    assert "  NOT CURRENT: the numbers below are of scan.csv, made with other settings" in out


def test_an_interrupted_run_marks_the_pages_of_other_results(tmp_path: Path):
    """A run with other settings interrupted (Ctrl-C) before its plot task: report.html
    kept the earlier results' tables and figures without the NOT CURRENT banner a run
    without a plot step puts there (a review); the interrupted run puts it too."""
    from gprpipe.steps.report import NOT_CURRENT

    cfg = three_fit_parts(tmp_path / "c.toml")
    cut = tmp_path / "cut"
    steps = ("--steps", "load,fit,limit,plot", "--set", 'plot.formats=["png"]')
    assert run(cfg, cut, "-j", "1", *steps)[0] == 0
    report = cut / "nominal" / "report.html"
    assert NOT_CURRENT not in report.read_text()
    record = cut / "nominal" / ".state" / "fit__demo-000.commit"
    earlier = record.read_bytes()
    proc = start_run(cfg, cut, "-j", "1", *steps, "--set", "fit.blind_nsigma=1.96")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if record.is_file() and record.read_bytes() not in (b"", earlier):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert NOT_CURRENT in report.read_text()


def test_an_output_deleted_after_its_task_finished_is_a_failed_task(copy: Path, base: Path):
    """status and summary called the point done with no scan results; the task is failed
    with the reason, and rerun --failed recomputes the same table."""
    (copy / "nominal" / "scan.csv").unlink()
    why = "scan.csv deleted after the task finished; rerun --failed recomputes it"
    assert states(copy)["nominal/limit/merge"] == ("failed", why)
    code, out, _ = gp("summary", copy)  # exit 1: there is no scan.csv to summarise
    assert code == 1 and f"nominal/limit/merge: {why}" in out
    assert f"  not summarised: {copy / 'nominal' / 'scan.csv'}: not there (its task " in out
    code, _, err = gp("rerun", copy, "--failed")
    assert code == 0, err
    assert states(copy)["nominal/limit/merge"][0] == "done"
    assert (copy / "nominal" / "scan.csv").read_bytes() == (
        base / "nominal" / "scan.csv"
    ).read_bytes()


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d["grid"][0].update(name=5), "grid[0].name is not the name of a point folder"),
        (
            lambda d: d["grid"][0].update(name="../x"),
            "grid[0].name is not the name of a point folder",
        ),
        (lambda d: d.pop("plan"), "'plan' is not a list of tasks"),
        (lambda d: d.update(grid=[]), "'grid' is not a list of points"),
        # these gave "internal error" in run (for ever: run.json was never rewritten),
        # rerun, the exports (after writing their file) and the report
        (lambda d: d.update(timings="x"), "'timings' is not a JSON object"),
        (lambda d: d.update(timings={"a": 3}), "timings['a'] is not a JSON object"),
        (lambda d: d.update(blinding="x"), "'blinding' is not a JSON object"),
        (lambda d: d["grid"][0].update(dir=5), "grid[0].dir is not its point folder 'nominal'"),
        # status and rerun said "unknown engine 'sh -c ...'" naming no file, summary exit 0,
        # and a plan of foreign ids an empty table (a review)
        (
            lambda d: d.update(engine="sh -c x"),
            "'engine' 'sh -c x' is none of local, docker, podman, apptainer",
        ),
        (lambda d: d.update(executor="pbs"), "'executor' 'pbs' is none of local, slurm"),
        (
            lambda d: d["plan"][0].update(id="../../x"),
            "plan[0].id '../../x' is no task of a point of 'grid'",
        ),
    ],
)
def test_a_damaged_run_json_is_one_sentence(copy: Path, edit, why: str):
    path = copy / "run.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    for args in (
        ("status", copy),
        ("summary", copy),
        ("rerun", copy, "--failed"),
        ("export-spey", copy, "--dataset", "demo"),
    ):
        code, _, err = gp(*args)
        assert code == 1 and err.strip() == (
            f"error: {path}: {why}; it was edited or damaged: run the config again "
            "(gprpipe run CONFIG) to rewrite it."
        ), args
    assert not (copy / "nominal" / "exports").exists()


def test_an_older_run_json_with_absolute_point_folders_is_read(copy: Path):
    """run.json files of earlier versions recorded grid[].dir as the point folder's path."""
    path = copy / "run.json"
    data = json.loads(path.read_text())
    data["grid"][0]["dir"] = str(copy / "nominal")
    path.write_text(json.dumps(data))
    code, _, err = gp("status", copy)
    assert code == 0, err


# ----------------------------------------------------------------- 9: lock


def wait_for_holder(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    lock = run_dir / LOCK_NAME
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = lock.read_text()
        except OSError:
            text = ""
        if text.strip():
            return json.loads(text)
        assert proc.poll() is None, "the first run ended before it was seen holding the lock"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_rerun_of_a_folder_in_use_before_its_run_json_says_in_use(tmp_path: Path):
    """A rerun while the first run of a fresh folder has not yet written run.json names the
    run in use (it said 'not a gprpipe run directory'); once nobody holds the folder, a
    folder without run.json is no run directory."""
    from gprpipe.pipeline.lock import run_lock

    run_dir = tmp_path / "run"
    with run_lock(run_dir, command="gprpipe run"):
        code, _, err = run_cli_here("rerun", run_dir, "--failed")
    assert code == 1 and f"{run_dir} is in use by gprpipe run (pid {os.getpid()}" in err, err
    code, _, err = run_cli_here("rerun", run_dir, "--failed")
    assert code == 1 and "not a gprpipe run directory (no run.json)" in err, err


@pytest.mark.slow
def test_two_concurrent_runs(cfg: Path, tmp_path: Path, base: Path):
    """A second run on a directory in use refuses, naming the holder; with --wait-lock it
    waits and then finds everything done; the outputs equal a single run's."""
    run_dir = tmp_path / "run"
    # one fresh process per task (same results): the run must outlast the calls below
    first = start_run(cfg, run_dir, env={FRESH_ENV: "1"})
    try:
        holder = wait_for_holder(run_dir, first)
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        waiter = start_run(cfg, run_dir, "--wait-lock", "600")
        code, _out, err = run(cfg, run_dir, "--set", "limit.alpha=0.1")
        assert code == 1
        assert err.strip() == (
            f"error: {run_dir} is in use by gprpipe run (pid {first.pid} on host "
            f"{holder['host']} since {holder['since']}): wait for it to finish (or use "
            "--wait-lock SECONDS), or stop it first."
        )
        code, _, err = gp("rerun", run_dir, "--failed")
        assert code == 1 and f"is in use by gprpipe run (pid {first.pid}" in err
        code, out, _ = gp("status", run_dir)
        assert code == 0 and f"in use by gprpipe run (pid {first.pid} on host" in out
        _out1, err1 = first.communicate(timeout=600)
        assert first.returncode == 0, err1
        out2, err2 = waiter.communicate(timeout=600)
        assert waiter.returncode == 0, err2
        assert "Nothing to do: all 7 tasks are up to date" in out2
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
    assert_same_results(run_dir / "nominal", base / "nominal")
    cfg_text = (run_dir / "nominal" / "config.toml").read_text()
    assert "alpha = 0.1\n" not in cfg_text  # the refused run wrote nothing


def test_a_wait_for_the_lock_that_runs_out_says_it_waited(tmp_path: Path):
    """``--wait-lock 5`` that ran out suggested "(or use --wait-lock SECONDS)", the option
    it was given, without a word of its wait (a review)."""
    from gprpipe.errors import GprpipeError
    from gprpipe.pipeline.lock import run_lock

    run_dir = tmp_path / "run"
    with (
        run_lock(run_dir, command="gprpipe run a.toml"),
        pytest.raises(GprpipeError) as info,
        run_lock(run_dir, wait=0.3),
    ):
        pass
    said = str(info.value)
    assert said.startswith(f"{run_dir} is in use by gprpipe run a.toml (pid {os.getpid()}")
    assert said.endswith(": still in use after 0.3 s (--wait-lock): wait longer, or stop it first.")


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path: Path):
    """The lock file of a run that died (its pid is gone) is taken over with a notice;
    a live holder is named and refused."""
    cfg = quickstart_child(tmp_path / "c.toml", '[steps]\nrun = ["load"]\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {
        "pid": dead.pid,
        "host": socket.gethostname(),
        "since": "2026-01-01T00:00:00",
        "command": "gprpipe run",
    }
    (run_dir / LOCK_NAME).write_text(json.dumps(stale))
    code, out, err = run(cfg, run_dir)
    assert code == 0, err
    assert (
        f"notice: taking over the lock of {run_dir} left by gprpipe run (pid {dead.pid} "
        f"on host {stale['host']} since 2026-01-01T00:00:00), which is gone"
    ) in err
    assert (run_dir / LOCK_NAME).read_text() == ""  # released cleanly

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom gprpipe.pipeline.lock import run_lock\n"
            f"with run_lock({str(run_dir)!r}, command='gprpipe rerun'):\n"
            "    print('held', flush=True)\n    time.sleep(120)\n",
        ],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run(cfg, run_dir)
        assert code == 1
        assert f"is in use by gprpipe rerun (pid {holder.pid} on host" in err
    finally:
        holder.kill()
        holder.wait()
    code, out, err = run(cfg, run_dir)  # the killed holder's lock is free again
    assert code == 0 and "Nothing to do" in out, err
    assert "taking over the lock" in err  # it was killed: its record stayed


# ----------------------------------------------------------------- 12: start-up kill


def test_task_killed_during_startup_is_failed_and_rerun(tmp_path: Path):
    """SIGKILL of the run while its first task is still starting (its process has not
    written a marker yet): status says failed, and rerun --failed redoes it."""
    cfg = quickstart_child(tmp_path / "c.toml", '[steps]\nrun = ["load"]\n')
    run_dir = tmp_path / "run"
    marker = run_dir / "nominal" / ".state" / "load.running"
    for _attempt in range(5):
        shutil.rmtree(run_dir, ignore_errors=True)
        proc = start_run(
            cfg,
            run_dir,
            session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        info = json.loads(marker.read_text())
        if info["pid"] == info["run_pid"] == proc.pid:  # the launcher's, the task's never
            break
    else:
        pytest.fail("the task always wrote its marker before the kill")
    state, msg = states(run_dir)["nominal/load"]
    assert state == "failed"
    assert msg == (
        f"the run that launched it (pid {proc.pid}) ended before the task finished (killed?)"
    )
    code, out, _ = gp("status", run_dir)
    assert code == 0 and "failed=1" in out
    code, out, err = gp("rerun", run_dir, "--failed")
    assert code == 0, err
    assert "Rerunning 1 tasks: nominal/load" in out
    assert states(run_dir)["nominal/load"][0] == "done"


# ----------------------------------------------------------------- 11: numerics version


def test_cache_key_follows_numerics_version_not_package_version(tmp_path: Path, monkeypatch):
    import gprpipe
    from gprpipe.config import load_points
    from gprpipe.pipeline import cache
    from gprpipe.pipeline.plan import plan_point

    _, points = load_points(REPO / "user_configs" / "quickstart.toml", [])
    p = points[0]
    load = plan_point(p.name, tmp_path / "a" / p.name, p.config)[0]
    moved = plan_point(p.name, tmp_path / "b" / p.name, p.config)[0]
    key = cache.task_key(load, p.config)
    assert cache.task_key(moved, p.config) == key  # no absolute path in the key
    monkeypatch.setattr(gprpipe, "__version__", "9.9.9.dev1+gdeadbee")
    assert cache.task_key(load, p.config) == key
    monkeypatch.setattr(cache, "NUMERICS_VERSION", gprpipe.NUMERICS_VERSION + 1)
    assert cache.task_key(load, p.config) != key


def test_summary_says_the_tables_of_an_older_gprpipe_are_not_current(
    shared_quickstart: Path, tmp_path: Path, monkeypatch
):
    """Tables of an earlier NUMERICS_VERSION were summarised as current, although a run
    recomputes them all (a review); they are summarised as they are and said not to be."""
    import shutil

    from gprpipe.pipeline import cache
    from gprpipe.pipeline.summary import point_currency

    copy = tmp_path / "run"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    code, out, _ = gp("summary", copy)
    assert code == 0 and "not current" not in out
    monkeypatch.setattr(cache, "NUMERICS_VERSION", cache.NUMERICS_VERSION + 1)  # a newer one
    code, out, _ = gp("summary", copy)
    assert code == 0 and "most significant: " in out
    assert out.index(  # before the numbers, not after them alone (a review)
        "\n  NOT CURRENT: the numbers below are of scan.csv, made with other settings or inputs "
        "than the point's config, or by an older gprpipe\n"
    ) < out.index("most significant: ")
    assert (
        "  tables not current: scan.csv (made with other settings or inputs than the point's "
        "config, or by an older gprpipe; run their steps again to recompute them)\n"
    ) in out
    # and its figures, and the TUI's Results, which judged by either version (a review)
    assert "  plots: " not in out and "  HEPData: " not in out
    assert "  not current: plots, HEPData, report (drawn from other results" in out
    assert point_currency(copy / "nominal") == (False, False)


def test_the_not_current_line_stands_before_the_numbers_it_is_about(tmp_path: Path):
    """An inject.csv of other settings beside a current scan.csv: its NOT CURRENT line
    stood at the top of the point, above the current scan's numbers (a review); it now
    stands right before the injection's."""
    from gprpipe.pipeline.summary import PointSummary, RunSummary, summary_lines
    from gprpipe.results.summary import DatasetSummary, InjectionSummary

    inj = InjectionSummary(
        "demo", 1, 2, (20, 20), 20, [], (0.1, 0.1), (1.0, 1.0), (0.7,) * 2, (0.95,) * 2
    )
    point = PointSummary("nominal", tmp_path, [DatasetSummary("demo", 5)], injections=[inj])
    point.not_current = ["inject.csv"]
    lines = summary_lines(RunSummary(tmp_path, [point]))
    at = lines.index(
        "  NOT CURRENT: the numbers below are of inject.csv, made with other settings or "
        "inputs than the point's config, or by an older gprpipe"
    )
    assert lines[2:at] == ["  demo (5 masses)", "    flagged: 0; GP fits not converged: 0"]
    assert lines[at + 1].startswith("  injection demo (1 mass x 2 strengths"), lines


def test_products_of_a_plot_task_that_did_not_finish_are_not_offered(
    shared_quickstart: Path, tmp_path: Path
):
    """A plot task stopped while it drew (it had removed its commit record) left figures,
    HEPData tables and an archive, which summary offered as the point's products (a
    review); they are said not to be current."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    point = copy / "nominal"
    for marker in ("plot.commit", "plot.done"):  # as a killed plot task leaves them
        (point / ".state" / marker).unlink()
    code, out, _ = gp("summary", copy)
    assert code == 0
    assert "  HEPData: " not in out and "  plots: " not in out and "  report: " not in out
    assert (
        "  not current: plots, HEPData, report (drawn from other results, or left by a plot "
        "task that did not finish; run the config again, with the plot step, to redraw them)\n"
    ) in out


def test_plot_version_changes_the_plot_key_alone(shared_quickstart: Path, monkeypatch):
    """A change of what only the plot task writes (PLOT_VERSION) reruns the plot task, not
    the scans before it (keys of the session's quickstart run, read only)."""
    from gprpipe.pipeline import cache

    tasks, configs = tasks_of_run(load_run_info(shared_quickstart))
    before = {t.id: cache.task_key(t, configs[t.point]) for t in tasks}
    monkeypatch.setattr(cache, "PLOT_VERSION", cache.PLOT_VERSION + 1)
    after = {t.id: cache.task_key(t, configs[t.point]) for t in tasks}
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["nominal/plot"] and len(before) == 6


# ----------------------------------------------------------------- 10: containers


def run_containers(run_dir: Path) -> list[str]:
    """Names of the containers (running or not) of the run in ``run_dir``."""
    from gprpipe.engines.base import RUN_LABEL, run_token

    res = subprocess.run(
        [
            "podman",
            "ps",
            "-a",
            "--filter",
            f"label={RUN_LABEL}={run_token(run_dir)}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.split()


def watchdogs(token: str) -> list[int]:
    """Pids of the container watchdogs of run ``token`` (started by our runs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gprpipe.engines.oci" in cmd and token.encode() in cmd:
            pids.append(int(proc.name))
    return pids


PODMAN_ARGS = ("--engine", "podman", "--set", f"base.image={TEST_IMAGE}", "-j", "1")


@pytest.fixture(scope="module")
def podman_fitted(cfg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The load and fit steps of ``cfg`` run in Podman, once per session: the stop tests
    start from a copy of it, so that the first task they run is the limit chunk."""
    require_podman()
    return shared_run(tmp_path_factory, "podman-fitted", cfg, *PODMAN_ARGS, "--steps", "load,fit")


@pytest.mark.podman
@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL-run", "SIGKILL-group", "SIGTERM-run", "SIGKILL-all"])
def test_podman_run_stopped_leaves_no_container(
    cfg: Path, base: Path, podman_fitted: Path, tmp_path: Path, how: str
):
    """SIGKILL (of the run process, or of its whole process group) or SIGTERM of a
    ``--engine podman`` run while a container computes: within 15 s no container of the
    run is left, no marker says running, and running again completes with the results of
    a local run. SIGKILL-all also kills the watchdog: ``gprpipe status`` then removes the
    leftover container. Each case starts from a copy of one Podman run of load and fit
    (cached), so its first container is the limit chunk's."""
    from gprpipe.engines.base import run_token

    require_podman()
    run_dir = tmp_path / "run"
    shutil.copytree(podman_fitted, run_dir, symlinks=True)
    # a limit chunk that outlasts the signal (a demo chunk of 0.3 s finished in its
    # container before a SIGTERM under load and was done, not failed) and, for
    # SIGKILL-all, the start of `gprpipe status`
    args = [*PODMAN_ARGS, "--set", "limit.bands=toys", "--set", "limit.band_toys=100000"]
    proc = start_run(
        cfg,
        run_dir,
        *args,
        session=True,
        stdout=subprocess.DEVNULL,
    )
    marker = run_dir / "nominal" / ".state" / "limit__demo-000.running"

    def computing() -> bool:  # the limit chunk's container has started its task
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        return info.get("container", "") != "" and info.get("pid") != info.get("run_pid")

    deadline = time.monotonic() + 300
    try:  # kill while the container of the limit chunk computes
        while not computing():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no container seen running"
            time.sleep(0.05)
        signum = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGKILL
        if how.endswith("all"):
            (dog,) = watchdogs(run_token(run_dir))
            os.kill(dog, signal.SIGKILL)
        if how.endswith(("group", "all")):
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        proc.wait(timeout=60)
        if how.endswith("all"):
            time.sleep(3)
            left = run_containers(run_dir)
            assert left  # nobody removed it: the next status does
            code, out, err = gp("status", run_dir)
            assert code == 0
            assert (
                f"notice: removed 1 container(s) left by an earlier run of {run_dir}: {left[0]}"
            ) in err
        killed = time.monotonic()
        while run_containers(run_dir):
            assert time.monotonic() - killed < 15, f"containers left: {run_containers(run_dir)}"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    after = states(run_dir)
    assert "running" not in {s for s, _ in after.values()}, after
    assert after["nominal/limit/demo-000"][0] == "failed", after
    time.sleep(2)  # nothing flips a marker later
    assert states(run_dir) == after

    # run again without the slow toy bands, which only made the killed chunk outlast the
    # signal (the chunk recomputes either way, its marker says failed)
    code, out, err = gp("run", cfg, "--set", f"base.output={run_dir}", *PODMAN_ARGS)
    assert code == 0, err
    assert "0 failed" in out
    assert not run_containers(run_dir)
    assert_same_results(run_dir / "nominal", base / "nominal")


def _waiting_slurm_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    """`run --executor slurm --wait` started in the background and waiting for its jobs:
    (process, run folder, its jobs.json). One mass per task: 5 fit and 5 limit tasks on
    the cluster's 2 CPUs before the limit merge, so that it is still waiting when it is
    interrupted or cancelled (with one task per step the chain could reach it within
    those ~3 s on a fast host)."""
    require_slurm()
    cfg = quickstart_child(
        tmp_path / "c.toml", '[scan]\nchunk_size = 1\n[steps]\nrun = ["load", "fit", "limit"]\n'
    )
    run_dir = tmp_path / "run"
    proc = start_run(cfg, run_dir, "--executor", "slurm", "--wait")
    jobs = run_dir / "slurm" / "jobs.json"
    deadline = time.monotonic() + 120
    while not jobs.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1)  # into the wait
    return proc, run_dir, jobs


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_of_a_slurm_wait_says_the_jobs_go_on(tmp_path: Path, sig: int):
    """Ctrl-C of `run --executor slurm --wait` printed nothing (exit 130) while the jobs
    stayed queued: it says they go on and how to watch or stop them. SIGTERM (`gprpipe
    cancel` of the waiting run) killed it silently (exit 143) with its lock left behind:
    the same now, the lock released."""
    proc, run_dir, jobs = _waiting_slurm_run(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert (run_dir / ".gprpipe.lock").read_text() == ""  # released
    assert err.strip().endswith(
        f"interrupted the wait; the SLURM jobs of {run_dir} go on. Watch them with: gprpipe "
        f"status {run_dir}; stop them with: gprpipe cancel {run_dir}"
    ), err
    # cancel names the jobs it stopped, of this run; the last task waited for the others:
    # it never starts, and status says so at once (it said "running" until SLURM forgot it)
    code, out, _ = gp("cancel", run_dir)
    assert code == 0
    ids = {j["job_id"] for s in json.loads(jobs.read_text())["submissions"] for j in s["jobs"]}
    stopped = out.split("Cancelled SLURM jobs:")[1].split()
    assert stopped and set(stopped) <= ids, out
    out = gp("status", run_dir)[1]
    assert re.search(
        r"^failed   nominal/limit/merge \[job \d+_0\]: cancelled before it started "
        r"\(gprpipe cancel\)",
        out,
        re.M,
    ), out
    # once its jobs have ended, nothing is left to cancel (finished jobs are not listed)
    deadline = time.monotonic() + 120
    while (out := gp("cancel", run_dir)[1]) != f"Nothing running in {run_dir}.\n":
        assert time.monotonic() < deadline, out
        time.sleep(2)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "gprpipe-cancel"])
def test_ctrl_c_while_sbatch_submits_leaves_no_job_unrecorded(tmp_path: Path, how: str):
    """Ctrl-C (or `gprpipe cancel`) while sbatch was submitting killed it after SLURM had
    taken the job: the job ran while jobs.json recorded none, so cancel could not stop it,
    and the run exited 130 saying nothing (a review, with an sbatch slowed as on a busy
    controller; here a wrapper that answers 2 s after the real sbatch). The sbatch in
    flight ends and its job is recorded at once; no later script is submitted; the run
    says its jobs go on, and cancel stops them. `gprpipe cancel` during the submission
    likewise (a first version let the whole submission end first: past cancel's 10 s, its
    SIGKILL left every job unrecorded)."""
    require_slurm()
    shim, calls = tmp_path / "bin", tmp_path / "sbatch-calls"
    shim.mkdir()
    real = shutil.which("sbatch")
    (shim / "sbatch").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *--test-only*) exec {real} "$@" ;; esac\n'
        f"echo >> {shlex.quote(str(calls))}\n"
        f'out=$({real} "$@") || exit $?\nsleep 2\necho "$out"\n'
    )
    (shim / "sbatch").chmod(0o755)
    cfg = quickstart_child(tmp_path / "c.toml", '[steps]\nrun = ["load", "fit", "limit"]\n')
    run_dir = tmp_path / "run"
    proc = start_run(
        cfg,
        run_dir,
        "--executor",
        "slurm",
        *settings("limit.bands=toys", "limit.band_toys=100000"),  # a limit job that lasts
        session=True,
        env={"PATH": f"{shim}:{os.environ['PATH']}"},
    )
    deadline = time.monotonic() + 120
    # load, fit, fit-merge, limit, limit-merge: interrupted while the limit is submitted
    while not calls.exists() or len(calls.read_text().splitlines()) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # the limit job is SLURM's; its id not yet given back
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        _, err = proc.communicate(timeout=120)
        said = f"interrupted; any SLURM jobs submitted from {run_dir} go on. Watch them with"
        said += f": gprpipe status {run_dir}; stop them with: gprpipe cancel {run_dir}"
        code, out, _ = gp("cancel", run_dir)
    else:
        code, out, _ = gp("cancel", run_dir)
        assert out.startswith(f"Stopped the run of {run_dir} (pid {proc.pid})."), out
        _, err = proc.communicate(timeout=120)
        said = f"stopped: gprpipe cancel is cancelling any SLURM jobs submitted from {run_dir}."
        said += f" See what was kept with: gprpipe status {run_dir}"
    assert proc.returncode == 130, err
    assert err.strip().endswith(said), err
    jobs = json.loads((run_dir / "slurm" / "jobs.json").read_text())
    (sub,) = jobs["submissions"]
    ids = [j["job_id"] for j in sub["jobs"]]
    assert len(ids) == 5 and all(ids[:4]) and ids[4] is None, ids  # limit-merge: not sent
    assert len(calls.read_text().splitlines()) == 4
    stopped = out.split("Cancelled SLURM jobs:")[-1].split()
    assert code == 0 and ids[3] in stopped and set(stopped) <= set(ids), out
    while subprocess.run(
        ["squeue", "-h", "-j", ",".join(ids[:4])], capture_output=True, text=True
    ).stdout.strip():
        assert time.monotonic() < deadline + 60, "jobs left after cancel"
        time.sleep(0.5)


@pytest.mark.slurm
@pytest.mark.slow
def test_gprpipe_cancel_of_a_slurm_wait_says_it_cancels_the_jobs(tmp_path: Path):
    """`gprpipe cancel` of a waiting `run --executor slurm --wait` stops the wait and then
    the jobs: the waiting run says so (it said its jobs go on, and how to stop them, while
    the cancel was stopping them). A plain SIGTERM or Ctrl-C still says they go on (above)."""
    proc, run_dir, _ = _waiting_slurm_run(tmp_path)
    code, out, err = gp("cancel", run_dir)
    assert code == 0 and "Cancelled SLURM jobs:" in out, out + err
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().endswith(
        f"stopped the wait: gprpipe cancel is cancelling the SLURM jobs of {run_dir}. See "
        f"what was kept with: gprpipe status {run_dir}"
    ), err
    assert "go on" not in err
    assert not (run_dir / ".gprpipe.cancel").exists()  # the request ends with the cancel


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_run_refused_while_its_jobs_are_queued(tmp_path: Path):
    """A SLURM run holds the lock only while it submits; a second run of the directory is
    refused while the first one's jobs are queued or running, naming the job."""
    require_slurm()
    cfg = quickstart_child(tmp_path / "c.toml", '[steps]\nrun = ["load", "fit", "limit"]\n')
    run_dir = tmp_path / "run"
    code, out, err = run(cfg, run_dir, "--executor", "slurm")
    assert code == 0, err
    code, _, err = run(cfg, run_dir, "--executor", "slurm")
    assert code == 1
    jobs = json.loads((run_dir / "slurm" / "jobs.json").read_text())
    ids = [j["job_id"] for j in jobs["submissions"][0]["jobs"]]
    assert err.startswith(f"error: {run_dir} is in use by SLURM job "), err
    assert err.split("SLURM job ")[1].split("_")[0] in ids
    assert err.strip().endswith(
        f"wait for it or cancel the run's jobs with: gprpipe cancel {run_dir}"
    )
    # a local run of the folder is refused too (it found every task "up to date", switched
    # run.json to local, and the jobs went on rewriting the outputs out of sight)
    code, _, err = run(cfg, run_dir)
    assert code == 1 and err.startswith(f"error: {run_dir} is in use by SLURM job "), err
    deadline = time.monotonic() + 600
    while True:
        code, out, _ = gp("status", run_dir)
        if out.strip().endswith("done=5"):
            break
        assert "failed=" not in out and time.monotonic() < deadline, out
        time.sleep(2)
    # once they are done, a run of the folder asks SLURM once about them (it asked twice:
    # the plan's jobs, then every job of the folder)
    shim, calls, real = tmp_path / "bin", tmp_path / "squeue.calls", shutil.which("squeue")
    shim.mkdir()
    (shim / "squeue").write_text(
        f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\nexec {shlex.quote(str(real))} "$@"\n'
    )
    (shim / "squeue").chmod(0o755)
    path = {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    code, out, err = run(cfg, run_dir, "--executor", "slurm", env=path)
    assert code == 0 and out.startswith("Nothing to do: all 5 tasks are up to date"), out + err
    assert len(calls.read_text().splitlines()) == 1, calls.read_text()


def test_damaged_markers_and_manifest_are_read_as_unreadable(
    shared_quickstart: Path, tmp_path: Path, cli
):
    """A task marker holding JSON that is no object, and a plots/manifest.json whose
    ``files`` is no list, made status, summary, cancel and rerun (and every later plot
    task) fail with "internal error"; they read as an unreadable marker (the state, no
    message) and no manifest (a fuzzing audit)."""
    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    (run / "nominal" / ".state" / "load.done").write_text("[1]")
    (run / "nominal" / "plots" / "manifest.json").write_text('{"files": 5}')
    code, out, err = cli("status", run)
    assert code == 0 and "internal error" not in err, err
    # load reads as done; the plot task's committed manifest was edited: failed, and why
    assert re.search(r"│ nominal │ load  │ +1 │ +0 │ +0 │ +0 │", out), out
    assert "plots/manifest.json" in " ".join(out.split()), out
    code, out, err = cli("summary", run)
    assert code == 0 and "internal error" not in err, err
    from gprpipe.results.schema import plot_manifest_files

    assert plot_manifest_files(run / "nominal") is None
    (run / "nominal" / "plots" / "manifest.json").write_text('{"files": ["a", 5]}')
    assert plot_manifest_files(run / "nominal") is None


def _quickstart_and_other_data(
    shared_quickstart: Path, tmp_path: Path
) -> tuple[Path, Path, tuple[str | Path, ...]]:
    """A copy of the shared quickstart run, a data file of other counts (a Poisson draw of
    the demo spectrum) and the command line that runs the quickstart into that copy."""
    import uproot

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    ds = point_config_from_file(run / "nominal" / "config.toml").datasets["demo"]
    counts, edges = uproot.open(ds.path)[ds.hist].to_numpy()
    changed = tmp_path / "demo_changed.root"
    with uproot.recreate(changed) as f:
        f[ds.hist] = (np.random.default_rng(1).poisson(counts).astype(float), edges)
    args = ("run", QUICKSTART, "--set", f"base.output={run}", "--set", 'plot.formats=["png"]')
    return run, changed, args


def test_limits_of_an_earlier_data_file_are_not_current_after_load_and_fit_alone(
    tmp_path: Path, cli, shared_quickstart: Path
):
    """Another data file (same path key, other counts) with only load and fit run again:
    the limit merge still matched its parts (made from the earlier fit), so summary,
    compare, the plot step and the exports (all through ``output_of``) took the earlier
    data's limits for this config's. The whole chain back to the data file is checked
    now, and an upstream task with nothing committed (a load stopped after it cleared its
    record) counts against it too."""

    from gprpipe.pipeline.cache import output_of

    run, changed, args = _quickstart_and_other_data(shared_quickstart, tmp_path)
    code, _, err = cli(*args, "--set", f"datasets.demo.path={changed}", "--steps", "load,fit")
    assert code == 0, err
    point = run / "nominal"
    cfg = point_config_from_file(point / "config.toml")
    assert output_of(point / "fit.h5", cfg) and not output_of(point / "limit.h5", cfg)
    code, out, err = cli("summary", run)
    assert code == 0 and "tables not current: scan.csv (made with other settings or inputs" in (
        " ".join(out.split())
    ), out + err
    code, out, err = cli("compare", shared_quickstart, run, "-o", tmp_path / "cmp")
    assert code == 0 and f"notice: {point / 'scan.csv'} was made with other settings" in out
    # the original run with its load's record gone: nothing downstream is current
    again = tmp_path / "again"
    shutil.copytree(shared_quickstart, again, symlinks=True)
    cfg = point_config_from_file(again / "nominal" / "config.toml")
    assert output_of(again / "nominal" / "limit.h5", cfg)
    (again / "nominal" / ".state" / "load.commit").unlink()
    assert not output_of(again / "nominal" / "fit.h5", cfg)
    assert not output_of(again / "nominal" / "limit.h5", cfg)


def test_a_step_left_out_between_two_that_run_is_refused_when_its_input_changes(
    tmp_path: Path, cli, shared_quickstart: Path
):
    """``--steps load,limit`` (or load,inject) after the data file changed: load reran on
    the new data, and the limit chunks failed on fits of the old data, again at every
    ``rerun --failed``; an inject task computed on them and exited 0 (a review). Refused
    before anything starts, naming the step to add; the same data (a byte-identical
    copy) runs."""

    run, changed, args = _quickstart_and_other_data(shared_quickstart, tmp_path)
    point = run / "nominal"
    ds = point_config_from_file(point / "config.toml").datasets["demo"]
    before = mtimes(point)
    for dry in ((), ("--dry-run",)):
        code, out, err = cli(
            *args, "--set", f"datasets.demo.path={changed}", "--steps", "load,limit", *dry
        )
        assert (code, out) == (1, ""), err
        assert err.strip() == (
            "error: nominal/limit/demo-000 reads parts/fit/demo-000.h5 of the fit step, which "
            "steps.run leaves out, made from load.h5, which nominal/load of this run makes "
            "anew (its inputs or settings changed): add 'fit' to steps.run (or --steps)."
        )
    assert mtimes(point) == before
    same = tmp_path / "demo_same.root"
    shutil.copy(ds.path, same)
    code, out, err = cli(*args, "--set", f"datasets.demo.path={same}", "--steps", "load,limit")
    assert code == 0 and "Nothing to do" in out, out + err


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_config_that_is_no_regular_file_is_one_sentence(tmp_path: Path, cli, kind: str):
    """``validate /dev/zero`` ate memory without end and a FIFO blocked for ever (a fuzzing
    audit); a config larger than 10 MB is a mistake too."""
    path = {"device": Path("/dev/zero"), "fifo": tmp_path / "f.toml", "huge": tmp_path / "b.toml"}
    target = path[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "huge":
        target.write_text("#" * 11_000_000)
    code, _, err = cli("validate", target)
    want = (
        f"error: {target}: 11.0 MB, too large for a config file (at most 10 MB)."
        if kind == "huge"
        else f"error: {target}: not a regular file (a config file is needed)."
    )
    assert (code, err.strip()) == (1, want)


def test_summary_and_compare_say_when_limits_are_of_other_settings(tmp_path: Path, cli):
    """A run of fewer steps with other settings (``--steps load,fit``, another
    blind_nsigma) left the first run's scan.csv in the folder, intact and committed:
    ``summary`` showed its limits as the point's results and ``compare`` compared them
    without a word (a fuzzing audit). Both still show them (an older gprpipe's results
    look the same, and comparing across an update is what compare is for) and say so."""
    run = tmp_path / "run"
    base = ("run", QUICKSTART, "--set", f"base.output={run}")
    assert cli(*base, "--steps", "load,fit,limit")[0] == 0
    shutil.copytree(run, tmp_path / "first", symlinks=True)  # its limits, intact
    code, out, err = cli(*base, "--steps", "load,fit", "--set", "fit.blind_nsigma=2")
    assert code == 0, err
    note = (
        "tables not current: scan.csv (made with other settings or inputs than the point's "
        "config, or by an older gprpipe; run their steps again to recompute them)"
    )
    code, out, err = cli("summary", run)
    assert code == 0, err
    flat = " ".join(out.split())
    assert note in flat and "eps^2 limits: strongest" in flat, out
    code, out, err = cli("compare", tmp_path / "first", run, "-o", tmp_path / "cmp")
    assert code == 0, err
    assert (
        f"notice: {run / 'nominal' / 'scan.csv'} was made with other settings or inputs than "
        "its point's config, or by an older gprpipe; compared as it is."
    ) in " ".join(out.split())
    assert f"notice: {tmp_path / 'first'}" not in out
    # the limits of the settings now in force: no note
    assert cli(*base, "--steps", "limit", "--set", "fit.blind_nsigma=2")[0] == 0
    code, out, _ = cli("summary", run)
    assert "eps^2 limits: strongest" in out and "not current" not in out
    # an uncommitted scan.csv (a SLURM merge that cleared its record and was lost) is
    # not summarised, exit 1, as before
    (run / "nominal" / ".state" / "limit__merge.commit").unlink()
    code, out, _ = cli("summary", run)
    assert code == 1 and "not summarised:" in out and "tables not current" not in out


def test_a_data_file_rewritten_while_the_load_task_reads_it_is_not_committed(
    tmp_path: Path, monkeypatch
):
    """The load task hashed the data file for its cache key and read it again to load it: a
    file rewritten in between (hadd, rsync) left load.h5 holding the new spectrum under the
    old file's key, and once the old file was back the run said 'Nothing to do' over it
    (a later rerun found Z_local 32 from a bump the file on disk does not have). The key is
    taken again after the step: a changed input fails the task, nothing is committed."""
    from conftest import DEMO_ROOT, QUICKSTART, run_cli_here, settings

    from gprpipe.io.root import read_hist, write_hist
    from gprpipe.pipeline.commit import commit_path
    from gprpipe.pipeline.state import read_state
    from gprpipe.steps import runner

    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    run = tmp_path / "run"
    sets = settings(f"datasets.demo.path={data}", f"base.output={run}")
    code, _, err = run_cli_here("run", QUICKSTART, "--steps", "load", *sets)
    assert code == 0, err
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    bumped = counts.copy()
    bumped[1200] += 15_000
    write_hist(tmp_path / "bumped.root", bumped, edges)
    key_of = runner.task_key

    def key_then_rewrite(task, config, *args):
        key = key_of(task, config, *args)
        # the file changes right after the key is taken (by another program: a rename,
        # which the task's own write confinement does not see)
        os.replace(tmp_path / "bumped.root", data)
        monkeypatch.setattr(runner, "task_key", key_of)
        return key

    monkeypatch.setattr(runner, "task_key", key_then_rewrite)
    point = run / "nominal"
    assert runner.run_task(point, "load", task_id="nominal/load", force=True) == 1
    state, message = read_state(point, "load")
    assert state == "failed" and message == (
        "nominal/load: an input changed while the task ran (e.g. a data file being rewritten), "
        "so what it read may not be what its cache key names; its outputs are not committed: "
        "run it again once the input is final."
    )
    load = next(t for t in tasks_of_run(load_run_info(run))[0] if t.id == "nominal/load")
    assert not commit_path(load).exists()
    shutil.copy(DEMO_ROOT, data)  # the old file back: the load task runs again
    code, out, err = run_cli_here("run", QUICKSTART, "--steps", "load", *sets)
    assert code == 0 and "Nothing to do" not in out, out


# ------------------------------------------------------------------------------------------
# Figures, report and exports are current only with the results they were made from
# ------------------------------------------------------------------------------------------
def _qs(out: Path, *more: str) -> list[str]:
    return [str(QUICKSTART), *settings(f"base.output={out}", 'plot.formats=["png"]', *more)]


def _other_spectrum(tmp_path: Path) -> Path:
    alt = tmp_path / "alt.root"
    code, _, err = run_cli_here("demo-data", alt, "--seed", "7")
    assert code == 0, err
    return alt


def test_figures_of_replaced_data_are_not_current_and_steps_plot_redraws(tmp_path: Path):
    """After the data changed, ``--steps plot`` said "Nothing to do" and the summary offered
    the old figures, HEPData and report (its key held no upstream digest when plot ran
    alone); a data file replaced in place left them current too (a review)."""
    out = tmp_path / "run"
    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    args = _qs(out, f"datasets.demo.path={data}")
    assert run_cli_here("run", *args)[0] == 0
    hep = out / "nominal" / "hepdata" / "limits_eps2_demo.csv"
    drawn = hep.read_text()
    shutil.copy(_other_spectrum(tmp_path), data)  # replaced in place
    code, so, _ = run_cli_here("summary", out)
    assert code == 0 and "  not current: plots, HEPData, report (drawn from other" in so, so
    code, so, se = run_cli_here("run", *args, "--steps", "load,fit,limit")
    assert code == 0, so + se
    assert "  not current: plots, HEPData, report" in so
    code, so, se = run_cli_here("run", *args, "--steps", "plot")
    assert code == 0 and "1 ran, 0 cached" in so, so + se
    assert hep.read_text() != drawn and "not current" not in so
    # the data file gone: the scan was current and the figures drawn from it not (a
    # review); both are shown as recorded now, under one line naming the missing file
    data.unlink()
    code, so, _ = run_cli_here("summary", out)
    assert code == 0 and "not current" not in so, so
    assert (
        f"  not checked against the data: {data} (datasets.demo.path) is not there; what "
        "follows is as the run recorded it" in so
    )
    from gprpipe.pipeline.summary import point_currency

    assert point_currency(out / "nominal") == (True, True)  # the TUI's Results alike


def test_outputs_copied_from_another_run_stay_not_current_when_an_input_is_deleted(
    tmp_path: Path,
):
    """A missing data file leaves results as recorded (above); any other input gone must
    not: B's scan.csv, limit.h5 and figures copied into A with their commit records
    passed as A's once a limit part or limit.h5 was deleted (a review of that change)."""
    a, b = tmp_path / "A", tmp_path / "B"
    assert run_cli_here("run", *_qs(a))[0] == 0
    assert run_cli_here("run", *_qs(b, "limit.alpha=0.1"))[0] == 0
    pa, pb = a / "nominal", b / "nominal"
    for name in ("scan.csv", "limit.h5", ".state/limit__merge.commit", ".state/plot.commit"):
        shutil.copy(pb / name, pa / name)
    for name in ("plots", "hepdata"):
        shutil.rmtree(pa / name)
        shutil.copytree(pb / name, pa / name)
    shutil.copy(pb / "report.html", pa / "report.html")
    next((pa / "parts" / "limit").glob("*.h5")).unlink()
    from gprpipe.pipeline.summary import point_currency

    assert point_currency(pa) == (False, False)
    _, so, _ = run_cli_here("summary", a)
    assert "NOT CURRENT" in so and "not current: plots, HEPData, report" in so, so
    assert "not checked against the data" not in so


def test_a_hand_edited_report_is_never_vouched_and_the_banner_goes_with_its_cause(
    tmp_path: Path,
):
    """Marking a report NOT CURRENT recorded the digest of whatever the page held, so a
    hand edit became the tool's and the cached plot step never redrew it; and the banner
    stayed after a later run brought the drawn results back (a review)."""
    out = tmp_path / "run"
    report = out / "nominal" / "report.html"
    assert run_cli_here("run", *_qs(out))[0] == 0
    drawn = report.read_text()
    steps = ("--steps", "load,fit,limit")
    assert run_cli_here("run", *_qs(out, "limit.alpha=0.1"), *steps)[0] == 0
    assert 'id="not-current"' in report.read_text()
    code, so, _ = run_cli_here("run", *_qs(out), *steps)  # the drawn limits again
    assert code == 0 and "  report: " in so and "not current" not in so, so
    assert report.read_text() == drawn  # banner gone, nothing else changed
    report.write_text(drawn.replace("<h1>", "<h1>TAMPERED ", 1))
    assert run_cli_here("run", *_qs(out, "limit.alpha=0.1"), *steps)[0] == 0
    assert 'id="not-current"' not in report.read_text()  # damaged: left as it is
    code, so, se = run_cli_here("run", *_qs(out))
    assert code == 0, so + se
    assert "notice: nominal/plot: report.html differs from what the task wrote" in so + se
    assert "TAMPERED" not in report.read_text()


def test_steps_plot_refuses_a_hand_edited_scan_csv(tmp_path: Path):
    """The report showed the numbers of a hand-edited scan.csv (exit 0; a review): the plot
    task reads it as an input, and refuses it as it refuses a damaged limit.h5."""
    out = tmp_path / "run"
    assert run_cli_here("run", *_qs(out))[0] == 0
    scan = out / "nominal" / "scan.csv"
    lines = scan.read_text().splitlines()
    cells = lines[1].split(",")
    cells[SCAN.names.index("eps2_up")] = "1e-09"
    scan.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    code, so, se = run_cli_here("run", *_qs(out), "--steps", "plot")
    assert code == 1, so + se
    assert (
        f"{scan}: differs from what its task nominal/limit/merge wrote (sha256 mismatch), "
        "and the plot step would draw it: add 'limit' to steps.run (or --steps)." in se
    ), se
    assert "1e-09" not in (out / "nominal" / "report.html").read_text()


def test_a_patchset_is_not_current_once_the_limits_that_chose_its_masses_change(tmp_path):
    """A pyhf PatchSet takes its masses by the statuses of limit.h5 (a failed limit is left
    out, an observed toy limit alone unresolved is held without it), but its record named
    fit.h5 alone: once a rerun with more toys made that limit ok, the summary still
    offered the patchset made of the earlier limits (a review)."""
    out = tmp_path / "run"
    steps = ("--steps", "load,fit,limit")
    toys = ("limit.mode=toys", "limit.n_toys=60")
    code, so, _ = run_cli_here("run", *_qs(out, *toys), *steps)
    assert (
        code == 1
        and "failed (no observed limit; its fit, significance and expected limits kept): 1 "
        "(limit failed: observed toy limit unresolved: 3 of 60 "
        in so
        and "failed (no limit)" not in so
    ), so
    code, so, se = run_cli_here("export-pyhf", out, "--dataset", "demo", "--patchset")
    assert code == 0 and "(5 patches, one per mass not left out)" in so, so + se
    assert "held without an observed limit in the scan's tables (too few toys " in so
    # one mass's workspace: its content is the fit's alone (not judged by the limits)
    code, so, se = run_cli_here("export-pyhf", out, "--dataset", "demo", "--mass", "60MeV")
    assert code == 0, so + se
    code, so, _ = run_cli_here("run", *_qs(out, "limit.mode=toys", "limit.n_toys=2000"), *steps)
    assert code == 0
    assert (
        "  not current: exports/pyhf_demo_bkgonly.json, exports/pyhf_demo_patchset.json "
        "(made from other results than the current ones" in so
    ), so


def test_exports_of_results_no_longer_current_or_edited_are_not_offered(tmp_path: Path):
    """The summary listed the pyhf and Spey exports as current after the data file was
    replaced in place (it compared only their source file's digest, which had not
    changed), and after a hand edit of an export (a review)."""
    out = tmp_path / "run"
    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    args = _qs(out, f"datasets.demo.path={data}")
    assert run_cli_here("run", *args, "--steps", "load,fit,limit")[0] == 0
    for cmd in (("export-pyhf", "--patchset"), ("export-spey",)):
        code, so, se = run_cli_here(cmd[0], out, "--dataset", "demo", *cmd[1:])
        assert code == 0, so + se
    exports = "pyhf_demo_bkgonly.json, pyhf_demo_patchset.json, spey_demo.json"
    code, so, _ = run_cli_here("summary", out)
    assert code == 0 and f"/exports/ ({exports})" in so and "not current" not in so, so
    spey = out / "nominal" / "exports" / "spey_demo.json"
    spey.write_text(spey.read_text().replace('"eps2_up": ', '"eps2_up": 0.5 * ', 1))
    code, so, _ = run_cli_here("summary", out)
    assert "  not current: exports/spey_demo.json (made from other results" in so, so
    assert "pyhf_demo_patchset.json, spey" not in so
    shutil.copy(_other_spectrum(tmp_path), data)  # replaced in place
    code, so, _ = run_cli_here("summary", out)
    assert (
        "  not current: exports/pyhf_demo_bkgonly.json, exports/pyhf_demo_patchset.json, "
        "exports/spey_demo.json (made from other results" in so
    ), so
    assert "/exports/ (" not in so


def test_the_index_compares_no_point_of_other_data(tmp_path: Path):
    """After the data changed and one grid point ran again, index.html compared it with the
    other point's limits of the earlier data, without a note (a review): that point is
    said to be of other inputs, and neither summarised nor compared."""
    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    cfg = quickstart_child(
        tmp_path / "g.toml",
        f"""
        output = "{tmp_path / "run"}"
        [datasets.demo]
        path = "{data}"
        [plot]
        formats = ["png"]
        [grid]
        "fit.blind_nsigma" = [1.64, 1.96]
        """,
    )
    assert run_cli_here("run", cfg)[0] == 0
    index = tmp_path / "run" / "index.html"
    assert "grid_compare_demo.png" in index.read_text()
    shutil.copy(_other_spectrum(tmp_path), data)
    code, so, se = run_cli_here("run", cfg, "--points", "blind_nsigma-1.96")
    assert code == 0, so + se
    page = " ".join(index.read_text().split())
    assert page.count("was made with other settings or inputs than this point") == 1
    assert "grid_compare_demo.png" not in page
    assert "not summarised nor compared (run the point again)" in page
    # written by a plot task of a run that has yet to redo the other point (its done
    # markers taken back, under the run's lock): not one to "run again" (a race audit);
    # of a run that leaves it out (--points, as above): to run again
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.lock import run_lock
    from gprpipe.pipeline.state import forget_done, write_state
    from gprpipe.steps.report import write_reports

    point = tmp_path / "run" / "blind_nsigma-1.96"
    other = tmp_path / "run" / "blind_nsigma-1.64"
    cfg96 = point_config_from_file(point / "config.toml")
    redo = "not summarised nor compared (the run that wrote this page had not redone it "
    with run_lock(tmp_path / "run", command="gprpipe run"):
        write_reports(cfg96, point)
        assert "(run the point again)" in " ".join(index.read_text().split())
        forget_done(other, "limit__merge")  # (as a run of both points does as it starts)
        write_reports(cfg96, point)
        page = " ".join(index.read_text().split())
        assert redo in page and "run the point again" not in page
    # a task failed in an earlier run is this run's to redo; one failed in it is not (a
    # review: "had not redone it yet" stayed on a point that failed)
    write_state(other, "fit__demo-000", "failed", "of an earlier run")
    time.sleep(1.1)  # (the lock's record says when it was taken, to the second)
    with run_lock(tmp_path / "run", command="gprpipe run"):
        write_reports(cfg96, point)
        assert redo in " ".join(index.read_text().split())
        write_state(other, "load", "failed", "in this run")
        write_reports(cfg96, point)
    assert "(run the point again)" in " ".join(index.read_text().split())


def test_figures_that_leave_out_results_of_other_settings_are_current(tmp_path: Path):
    """``--steps plot`` with another limit.alpha draws no limits (limit.h5 is of other
    settings) and the figures it drew were then called not current for that file, so the
    report was bannered and a second ``--steps plot`` said "Nothing to do" (a review of
    the fix above): figures are judged by what they drew."""
    out = tmp_path / "run"
    assert run_cli_here("run", *_qs(out))[0] == 0
    other = _qs(out, "limit.alpha=0.1")
    code, so, se = run_cli_here("run", *other, "--steps", "plot")
    assert code == 0, so + se
    log = (out / "nominal" / "logs" / "plot.log").read_text()
    assert "limit.h5 was made with other settings or inputs; not drawn" in log
    # said on the console before the run starts (only the log said it: a newcomer audit)
    assert (
        f"notice: {out / 'nominal' / 'limit.h5'} was made with other settings or inputs than "
        "this config's: the plot step leaves out its figures and tables (add 'limit' to "
        "--steps to redraw them)."
    ) in se, se
    assert "not current: plots" not in so, so
    assert 'id="not-current"' not in (out / "nominal" / "report.html").read_text()
    code, so, _ = run_cli_here("run", *other, "--steps", "plot")
    assert code == 0 and "Nothing to do" in so


def test_the_index_keeps_its_banner_while_any_point_is_not_current(tmp_path: Path):
    """A current point took away the NOT CURRENT banner of the run's index that another
    point, not current, had just set (a review)."""
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    shutil.copy(DEMO_ROOT, a)
    shutil.copy(DEMO_ROOT, b)
    cfg = quickstart_child(
        tmp_path / "g.toml",
        f"""
        output = "{tmp_path / "run"}"
        [plot]
        formats = ["png"]
        [grid]
        "datasets.demo.path" = ["{a}", "{b}"]
        """,
    )
    assert run_cli_here("run", cfg)[0] == 0
    shutil.copy(_other_spectrum(tmp_path), a)  # point a's data change, b's do not
    code, so, se = run_cli_here("run", cfg, "--steps", "load,fit,limit")
    assert code == 0, so + se
    run = tmp_path / "run"
    banners = {
        d.name: 'id="not-current"' in (d / "report.html").read_text()
        for d in run.iterdir()
        if (d / "report.html").is_file()
    }
    assert sorted(banners.values()) == [False, True], banners
    assert 'id="not-current"' in (run / "index.html").read_text()


def test_text_outputs_are_utf8_whatever_the_locale(tmp_path: Path):
    """A review: under a locale whose encoding is not UTF-8 (here C with PYTHONUTF8=0,
    which Python reads as ASCII) a save from the TUI died with UnicodeEncodeError on a
    comment holding "ε²", and a second run of a config whose label held one died reading
    the point's config.toml the first had written. Text is written and read as UTF-8."""
    import subprocess
    import sys

    from conftest import QUICKSTART

    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
           "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "ascii:replace"}  # fmt: skip
    target = tmp_path / "c.toml"
    code = (
        "import sys; from gprpipe.io.atomic import atomic_write_text; "
        "atomic_write_text(sys.argv[1], '# \\u03b5\\u00b2 limits\\n')"
    )
    res = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    assert target.read_bytes() == "# ε² limits\n".encode()
    config = tmp_path / "label.toml"  # (a config file: an ASCII locale's argv cannot say ε)
    config.write_text(
        f'[base]\ntemplate = "{QUICKSTART}"\n[datasets.demo]\nlabel = "ε² demo"\n',
        encoding="utf-8",
    )
    args = [sys.executable, "-m", "gprpipe", "run", str(config), "--steps", "load"]
    args += ["--set", f"base.output={tmp_path / 'run'}"]
    for _ in range(2):  # the second reads the point config.toml the first wrote
        res = subprocess.run(args, env=env, capture_output=True)
        assert res.returncode == 0, res.stderr.decode(errors="replace")


@pytest.mark.parametrize("name", ["scan.csv", "load.h5", "fit.h5", "limit.h5", "config.toml"])
def test_a_fifo_or_device_at_an_output_is_one_sentence_never_a_wait(copy: Path, name: str):
    """A FIFO (or a link to /dev/zero) at a point's file: summary, compare, the exports and
    the reach projection waited for ever, in the digest of a cache check, a CSV reader or
    the blinding check of compare (a review). Each ends within seconds, a refusal in one
    sentence naming the file or its point folder."""
    other = copy.parent / "other"
    shutil.copytree(copy, other, symlinks=True)
    path = copy / "nominal" / name
    path.unlink()
    if name in ("fit.h5", "limit.h5"):
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    commands = [
        ("summary", copy),
        ("compare", other, copy, "-o", copy.parent / "cmp"),
        ("export-spey", copy, "--dataset", "demo"),
        ("export-pyhf", copy, "--dataset", "demo", "--patchset"),
        ("project-reach", copy, "--scale", "demo=2"),
        ("rerun", copy, "--masses", "60MeV"),
    ]
    for args in commands:
        code, out, err = run_cli_subprocess(*args, timeout=60)  # (it waited for ever)
        assert "internal error" not in out + err and "Traceback" not in out + err, args
        if code:  # (the point's folder, or the file itself, named)
            assert code == 1 and str(path.parent) in out + err, (args, out, err)


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_something_else_at_the_scans_name_is_said_as_it_is(copy: Path, kind: str):
    """A FIFO at scan.csv: summary said "scan.csv: not there" and listed it among the
    tables, status "scan.csv is missing ... rerun --failed redoes it" (a rerun refuses to
    write over it), compare "no scan.csv (has the limit step run?)" (a review). Each says
    what is there, and the rerun is offered once it is removed."""
    other = copy.parent / "other"
    shutil.copytree(copy, other, symlinks=True)
    scan = copy / "nominal" / "scan.csv"
    scan.unlink()
    if kind == "FIFO":
        os.mkfifo(scan)
        what = "a FIFO, device or socket"
    else:
        scan.mkdir()
        what = "a folder"
    code, out, err = run_cli_here("summary", copy)
    assert code == 1, out + err
    assert f"  not summarised: {scan}: replaced by {what} (its task failed, see below)." in out
    assert f"    nominal/limit/merge: scan.csv was replaced by {what} since the task " in out
    assert "finished; remove it, then rerun --failed" in out
    assert "  tables: " in out and "scan.csv)" not in out, out  # (it offered the FIFO)
    code, out, err = run_cli_here("status", copy)
    assert f"failed   nominal/limit/merge: scan.csv was replaced by {what} since the " in out
    code, out, err = run_cli_here("compare", other, copy, "-o", copy.parent / "cmp")
    assert code == 1 and err.strip() == (
        f"error: {scan} was replaced by {what}: its results cannot be compared."
    ), err


def test_an_edited_rerun_record_is_said_as_it_is_never_an_internal_error(
    shared_quickstart: Path, tmp_path: Path
):
    """run.json's reruns entry without its time (an edit, or an older gprpipe) made the
    report "internal error: UndefinedError", and with it every export, whose file stayed
    behind; a grid point's values that are no table did the same (an input audit). The
    report says "?" for what is missing; values that are no table are refused in one
    sentence, before anything is written."""
    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    run_json = copy / "run.json"
    data = json.loads(run_json.read_text())
    edited = {**data, "reruns": [{"command": ["gprpipe", "rerun", str(copy), "--failed"]}]}
    run_json.write_text(json.dumps(edited))
    code, out, err = run_cli_here("export-spey", copy, "--dataset", "demo")
    assert code == 0 and "notice" not in out, out + err
    report = (copy / "nominal" / "report.html").read_text()
    assert f"then <code>gprpipe rerun {copy} --failed</code> at ? (0 tasks; gprpipe ?)" in report
    data["grid"][0]["values"] = 5
    run_json.write_text(json.dumps(data))
    (copy / "nominal" / "exports" / "spey_demo.json").unlink()
    code, out, err = run_cli_here("export-spey", copy, "--dataset", "demo")
    assert code == 1 and err.strip() == (
        f"error: {run_json}: grid[0].values is not a JSON object; it was edited or damaged: "
        "run the config again (gprpipe run CONFIG) to rewrite it."
    )
    assert not (copy / "nominal" / "exports" / "spey_demo.json").exists()


def test_the_report_of_an_injection_says_its_closure_as_summary_does(copy: Path):
    """An injection point's report.html had its figures but none of the closure numbers
    the summary prints (pull mean and width, coverage, the furthest pull mean): a
    newcomer audit. It gives them as `gprpipe summary` does."""
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.report import write_reports

    point = copy / "nominal"
    _, out, _ = gp("summary", copy)
    said = [ln.strip() for ln in out.splitlines() if ln.strip().startswith(("pull mean", "cov"))]
    assert said and any(ln.startswith("pull mean furthest from 0: ") for ln in said), out
    write_reports(point_config_from_file(point / "config.toml"), point)
    page = (point / "report.html").read_text()
    assert "(inject.csv), as <code>gprpipe summary</code> gives it:" in page
    for line in said:
        assert f"<li>{line}</li>" in page, (line, page[page.find("injection-lines") :][:800])
