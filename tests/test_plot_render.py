"""The plot step's figure drawing: figures drawn in forked workers are the same files as
figures drawn in this process, written in the order given, also the figures that a
writer returns (the displays)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gprpipe.plotting import style
from gprpipe.plotting.style import FigureJob
from gprpipe.plotting.suite import ahat_figure, brazil_figure
from gprpipe.steps.plot import render


def _figures() -> list[FigureJob]:
    m = np.linspace(0.02, 0.13, 40)
    bands = [np.exp(-10 * m) * f for f in (0.5, 0.7, 1.0, 1.4, 2.0)]
    a_hat = np.sin(60 * m) * 30
    return [
        FigureJob(
            "brazil",
            brazil_figure,
            (m, bands[2] * 1.1, bands),
            {"ylabel": "limit", "title": "HPS 2015"},
        ),
        FigureJob("ahat", ahat_figure, (m, a_hat, np.full(m.size, 20.0), "HPS 2015")),
    ]


def ahat_here(folder: Path, *args):
    """``ahat_figure``, leaving the id of the process that drew it in ``folder``."""
    (folder / f"drawn-by-{os.getpid()}").touch()
    return ahat_figure(*args)


def _render_and_check(folder: Path, n_workers: int) -> None:
    """Render with a writer in the middle and check the written paths and their order."""
    calls: list[str] = []
    figs = _figures()

    def writer():
        """Writes a sidecar here and hands a figure back to be drawn (as the displays do)."""
        calls.append("writer")
        side = folder / "side.json"
        side.write_text("{}")
        return [FigureJob("from_writer", ahat_here, (folder, *figs[1].args)), side]

    written = render([figs[:1], writer, figs[1:]], folder, ["png"], n_workers)
    assert calls == ["writer"]
    assert [p.name for p in written] == ["brazil.png", "from_writer.png", "side.json", "ahat.png"]
    assert all(p.parent == folder and p.stat().st_size > 0 for p in written)


def run_in_fork(target, *args, daemon: bool = False) -> multiprocessing.process.BaseProcess:
    """Run ``target(*args)`` in a forked process (it has this thread only); the ended process."""
    proc = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=daemon)
    proc.start()
    proc.join(300)
    return proc


def test_workers_write_the_same_files_in_order(tmp_path):
    style.apply_style("hep")
    style.set_labels("HPS", "Preliminary", blinded=False)
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    serial.mkdir()
    pooled.mkdir()
    _render_and_check(serial, 1)
    # the pooled render in a forked process: it has a single thread (render forks figure
    # workers only then), whatever threads earlier tests left in this one
    proc = run_in_fork(_render_and_check, pooled, 2)
    assert proc.exitcode == 0
    (drawn,) = pooled.glob("drawn-by-*")  # by a figure worker, not the rendering process
    assert drawn.name not in (f"drawn-by-{os.getpid()}", f"drawn-by-{proc.pid}")
    assert [p.name for p in serial.glob("drawn-by-*")] == [f"drawn-by-{os.getpid()}"]
    for name in ("brazil.png", "from_writer.png", "ahat.png"):
        a, b = serial / name, pooled / name
        assert a.read_bytes() == b.read_bytes()
        assert a.stat().st_size > 10_000


def _math_pixels() -> bytes:
    fig = plt.figure(figsize=(2, 0.5), dpi=100)
    fig.text(0.05, 0.3, r"$\pm 1\sigma_A\ \hat{\mu}\ \epsilon^2$")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).tobytes()
    plt.close(fig)
    return pixels


def _draw_math_again(expected: bytes) -> None:
    for _ in range(100):
        assert _math_pixels() == expected  # an exception: exit code 1


def test_forked_processes_never_read_the_fonts_of_the_math_their_parent_laid_out():
    """Math text laid out here holds open font files whose read offset forked processes
    share: two figure workers drawing from their parent's layout read each other's glyph
    data (a glyph goes missing, or 'FT_Load_Glyph ... broken file'). Two forked processes
    drawing the same math a hundred times each get this process's pixels every time."""
    style.apply_style("hep")
    expected = _math_pixels()  # lays out (and caches) the math in this process
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_draw_math_again, args=(expected,)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]


def _render_in(folder) -> None:
    render([_figures()], folder, ["png"], n_workers=2)


def test_daemonic_worker_draws_serially_and_says_why(tmp_path, capfd):
    """Inside a daemonic worker (which may not have children) the figures are drawn in
    that process instead of failing, and the task's log says so."""
    style.apply_style("hep")
    assert run_in_fork(_render_in, tmp_path, daemon=True).exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ahat.png", "brazil.png"]
    assert capfd.readouterr().out == (
        "notice: the figures are drawn in this process, one at a time: a daemonic process "
        "may not have children\n"
    )


def _render_beside_a_thread(folder: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        render([_figures()], folder, ["png"], n_workers=2)
    finally:
        stop.set()
        thread.join()


def test_process_with_another_thread_draws_serially_and_says_why(tmp_path, capfd):
    style.apply_style("hep")
    assert run_in_fork(_render_beside_a_thread, tmp_path).exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ahat.png", "brazil.png"]
    assert "this process runs other threads" in capfd.readouterr().out


def test_gp_fit_figures_only_at_wanted_test_masses():
    """plot.masses that are no test mass draw nothing (the nearest test mass was drawn);
    without plot.masses: three across the scan and the most significant mass."""
    from gprpipe.stats.quality import counts_for_discovery
    from gprpipe.steps.plot import gp_masses, significant_z

    masses = np.array([0.03, 0.045, 0.06, 0.08, 0.1])
    assert gp_masses([0.06, 0.05, 0.12, 0.03 + 1e-8], masses) == [0.03, 0.06]
    assert gp_masses([0.12], masses) == []
    z = np.array([0.1, 2.5, 0.3, 0.2, 0.0])
    assert gp_masses([], masses, z) == [0.03, 0.045, 0.06, 0.1]
    # a flagged row (its background model failed the quality checks) is not "the most
    # significant mass": the largest Z among the rows that count is drawn instead
    counts = counts_for_discovery(np.array(["ok", "flag_gof", "ok", "ok", "ok"]))
    assert gp_masses([], masses, significant_z(z, counts)) == [0.03, 0.06, 0.1]
    z2 = np.array([0.1, 2.5, 0.3, 1.2, np.nan])
    assert gp_masses([], masses, significant_z(z2, counts)) == [0.03, 0.06, 0.08, 0.1]


def _figure_worker_without_prctl(pipe: int) -> None:
    """A task process (this forked one) with one figure worker that has no prctl, as on
    macOS: the worker watches its parent instead. Both wait to be killed."""
    import ctypes
    import signal
    import time

    from gprpipe.steps.plot import _end_with_parent

    worker = os.fork()
    if worker == 0:
        try:
            ctypes.CDLL = lambda *a, **k: object()  # type: ignore[assignment,misc]  # no prctl
            _end_with_parent(os.getppid())
            os.write(pipe, f"{os.getpid()}\n".encode())
            while True:
                time.sleep(0.05)
        finally:
            os._exit(1)
    signal.pause()


def test_a_figure_worker_without_prctl_ends_with_its_task():
    """Where the kernel cannot end a figure worker with its task process (no
    PR_SET_PDEATHSIG: not Linux), the worker checks on a timer that the task is still its
    parent: a task killed with SIGKILL leaves no figure worker drawing into its folder."""
    import signal
    import time

    from gprpipe.io.processes import alive

    read, write = os.pipe()
    task = os.fork()
    if task == 0:
        try:
            os.close(read)
            _figure_worker_without_prctl(write)
        finally:
            os._exit(1)  # never back into pytest
    os.close(write)
    worker = 0
    try:
        with os.fdopen(read) as pipe:
            worker = int(pipe.readline())
        assert alive(worker)
        os.kill(task, signal.SIGKILL)
        os.waitpid(task, 0)
        gone = time.monotonic() + 5
        while alive(worker):
            assert time.monotonic() < gone, "the figure worker outlived its task"
            time.sleep(0.02)
    finally:
        for pid in (task, worker):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_comparison_with_a_blinded_run_draws_and_names_no_observed_curve_for_it():
    """The legend listed "<blinded run> observed" for a curve that is all NaN, and the
    observed ratio panel stood empty without a word (a review). Beside a blinded curve no
    curve is drawn observed (written into an unblinded run that is blinded later, the
    figure kept the observed limits that its table, which a blinded run checks, had no
    ratio of: a blinding review)."""
    from gprpipe.plotting.compare import compare_limits_figure

    m = np.array([0.03, 0.06, 0.1])
    exp = np.array([1e-6, 2e-6, 4e-6])
    fig = compare_limits_figure(
        [m, m], [np.full(3, np.nan), exp * 1.1], [exp, exp * 0.9], ["B", "U"], title="t"
    )
    ax, r_obs, _ = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "B expected (blinded)",
        "U expected",
    ]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [3, 3]
    assert [t.get_text() for t in r_obs.texts] == ["no observed curve or ratio with B (blinded)"]
    plt.close(fig)


def test_a_scan_with_flagged_rows_and_unresolved_observed_toy_limits_is_drawn(tmp_path):
    """Toy limits of 30 toys leave observed limits unresolved at 30 and 60 MeV, and a GOF
    threshold of 0.2 flags 30, 45 and 80 MeV: the plot task stopped with "internal error:
    IndexError" (a review), the flags of the band's rows handed to the significance
    figure, whose rows are the resolved ones."""
    import csv

    from conftest import QUICKSTART, run_cli_here, settings

    out = tmp_path / "r"
    code, so, se = run_cli_here(
        "run",
        QUICKSTART,
        *settings(
            f"base.output={out}",
            "limit.mode=toys",
            "limit.n_toys=30",
            "fit.gof_p_min=0.2",
            'plot.formats=["png"]',
            "plot.masses=[]",
        ),
    )
    with (out / "nominal" / "scan.csv").open() as fh:
        status = [r["status"] for r in csv.DictReader(fh)]
    # 30 MeV is both flagged and unresolved: the flag stands (a review: the unresolved
    # status took its place, and its expected limit went into HEPData as a quoted one)
    assert status[:2] == ["flag_gof", "flag_gof"] and status[3] == "flag_gof", status
    assert status[2].startswith("limit failed: observed toy limit unresolved"), status
    assert (  # ... and the summary says what the flag stands over (a review of this fix)
        "flagged: 3 (flag_gof: 3 at 30-45 MeV, 80 MeV), 1 of them with no observed limit "
        "(the toys could not resolve it: raise limit.n_toys) at 30 MeV; GP fits" in so
    ), so
    assert code == 1 and "nominal/plot: done" in so + se, so + se  # (1: masses failed)
    assert (out / "nominal" / "plots" / "significance_demo.png").is_file()
    # the report counted the unresolved row among the failed ones "(no numbers)"
    report = (out / "nominal" / "report.html").read_text()
    assert "0 failed rows (no numbers), 1 row with no observed limit (the toys could not " in (
        report
    ), report
    # and the flagged row whose observed limit is unresolved too (the summary says so)
    assert (
        "3 flagged rows (numbers that failed a quality check), 1 of the flagged rows with no "
        "observed limit either, " in report
    ), report
    # the unresolved row keeps its p0, Z and A_hat: drawn (it was left out and the curves
    # joined across it), its global p0 (not quoted) a gap; its observed limit a gap too
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.plan import Layout
    from gprpipe.plotting.overlay import observed_figure
    from gprpipe.results.schema import read_scan
    from gprpipe.steps.plot import scan_figures

    point = out / "nominal"
    lay = Layout(point)
    jobs = {j.stem: j for j in scan_figures(point_config_from_file(lay.config), lay, {lay.limit})}
    m, p_local, p_global = jobs["significance_demo"].args[:3]
    assert len(m) == len(status) == 5 and np.isfinite(p_local).all()
    assert np.isnan(p_global[:4]).all() and np.isfinite(p_global[4])  # (flagged: none)
    assert np.isfinite(jobs["Ahat_demo"].args[1]).all() and len(jobs["Ahat_demo"].args[0]) == 5
    fig = observed_figure(read_scan(lay.limit), {}, "t", 95.0, "eps2")
    (line,) = [x for x in fig.axes[0].get_lines() if x.get_label() == "demo observed"]
    assert len(line.get_xdata()) == 5 and np.isnan(line.get_ydata()[2])
    plt.close(fig)


def test_figure_workers_keep_to_the_cpus_a_slurm_job_asked_for(monkeypatch):
    """A plot task of a SLURM job with slurm.cpus_per_task = 1 drew with base.jobs = 2
    figure workers where the cluster does not pin jobs to their CPUs (a review)."""
    import os

    from gprpipe.steps.plot import workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert workers(2) == 2 and workers(8) == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert workers(2) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert workers(8) == 3


def test_failed_fits_are_not_drawn_as_converged_in_the_hyperparameter_figure():
    """gp_hyper drew the masses whose fit failed (``gp_converged`` true in fit.h5) among
    the converged ones, though the failure sentence sends readers to these panels (a
    review of the plot step): they are marked apart."""
    from gprpipe.plotting.suite import hyper_figure

    fit = {
        "mass_GeV": np.array([0.04, 0.05, 0.06, 0.07]),
        "status": np.array(["ok", "fit failed: no sideband", "flag_gof", "ok"]),
        "gp_converged": np.array([True, True, True, False]),
        "gp_length_scale": np.array([0.01, 0.02, 0.01, 0.01]),
        "gp_amplitude": np.array([1.0, 2.0, 1.0, 1.0]),
        "gp_lml": np.array([-10.0, -12.0, -11.0, -10.0]),
        "gof_p": np.array([0.5, 0.3, 0.001, 0.4]),
    }
    fig = hyper_figure(fit, "t", gof_p_min=0.01)
    lines = {x.get_label(): x.get_xdata() for x in fig.axes[0].get_lines()}
    assert list(lines["converged"]) == [40.0, 60.0]
    assert list(lines["not converged"]) == [70.0] and list(lines["fit failed"]) == [50.0]
    plt.close(fig)


def test_the_blinded_spectrum_is_shaded_over_every_hidden_bin():
    """The grey band of the blinded windows stopped at the left edge of the last hidden
    bin (shaded to 43.0 MeV, data hidden to 43.5 MeV; a review): it spans each run of
    hidden bins edge to edge."""
    from gprpipe.plotting.spectrum import spectrum_figure

    edges = np.linspace(0.040, 0.050, 21)  # 0.5 MeV bins
    counts = np.full(20, 100.0)
    hidden = np.zeros(20, bool)
    hidden[[2, 3, 4, 10]] = True
    fig = spectrum_figure({"d": (counts, edges, (0.04, 0.05))}, "t", {"d": hidden})
    spans = sorted(
        (round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6))
        for p in fig.axes[0].patches
        if p.get_facecolor()[:3] == pytest.approx((0.5019607843137255,) * 3)
    )
    assert spans == [(41.0, 42.5), (45.0, 45.5)], spans
    plt.close(fig)


def test_a_display_title_shows_a_failure_in_short():
    """The observed display at a mass whose toy limit failed put the whole failure
    sentence in its title: 2562 pixels wide against 792, the panels squeezed into its
    left sixth (a review)."""
    from gprpipe.steps.displays import short_status

    long = (
        "limit failed: observed toy limit unresolved: the CLs crossing lies beyond the "
        "toys' reach (CLs 0.12 at A = 3000): raise limit.n_toys"
    )
    assert short_status(long) == "limit failed: observed toy limit unresolved"
    assert short_status("flag_gof") == "flag_gof"
    assert len(short_status("x" * 200)) == 60


def test_a_local_toy_p0_that_is_a_bound_is_drawn_as_one():
    """Where no toy at a mass reached the observed Z, the toys' local p0 (1/(N+1), its
    error as large) was drawn as a point with an error bar down to 0, read as a
    measurement; the report says "< 0.00498" (a review): a downward triangle."""
    from gprpipe.plotting.suite import significance_figure
    from gprpipe.results.summary import toys_bound

    m = np.array([0.04, 0.05, 0.06])
    pl_toys, err = np.array([0.2, 1 / 201, 0.5]), np.array([0.03, 1 / 201, 0.035])
    bound = toys_bound(pl_toys, err)
    assert list(bound) == [False, True, False]
    fig = significance_figure(
        m, np.array([0.2, 1e-5, 0.5]), np.array([0.9, 1e-3, 1.0]), "t",
        p_local_toys=pl_toys, p_local_toys_err=err, p_local_toys_bound=bound,
    )  # fmt: skip
    lines = {x.get_label(): x for x in fig.axes[0].get_lines()}
    tri = lines["local $p_0$ (toys): bound (no toy reached it)"]
    assert list(tri.get_xdata()) == [50.0] and tri.get_marker() == "v"
    points = [
        c for c in fig.axes[0].containers if c.get_label() == "local $p_0$ (toys at each mass)"
    ]
    assert list(points[0].lines[0].get_xdata()) == [40.0, 60.0]
    plt.close(fig)


def test_the_combined_overlay_circles_the_datasets_flagged_masses():
    """brazil_eps2_combined_overlay drew each dataset's observed curve through its flagged
    masses without the circle every other scan figure gives them (a review)."""
    from gprpipe.plotting.overlay import combined_brazil_figure

    m = np.array([0.05, 0.06, 0.07])
    band = {f"eps2_exp_{b}": np.full(3, 1e-6) for b in ("lo2", "lo1", "med", "hi1", "hi2")}
    scan = {
        "2015": {"mass_GeV": m, "status": np.array(["ok", "flag_gof", "ok"]),
                 "eps2_up": np.full(3, 2e-6), **band},
        "combined": {"mass_GeV": m, "status": np.array(["ok"] * 3),
                     "eps2_up": np.full(3, 1e-6), "eps2_up_err": np.full(3, np.nan), **band},
    }  # fmt: skip
    fig = combined_brazil_figure(scan, {"2015": "HPS 2015"}, "t", 90.0)
    circles = [
        x for x in fig.axes[0].get_lines() if x.get_marker() == "o" and x.get_linestyle() == "None"
    ]
    assert [list(c.get_xdata()) for c in circles] == [[60.0]]
    assert circles[0].get_label() == "flagged (background model)"
    plt.close(fig)


def test_the_bands_of_one_mass_are_drawn():
    """A one-mass scan's expected bands and +/-1 sigma_A band had no width: not drawn,
    though the legend listed them (a review). They are a box either side of the mass."""
    m = np.array([0.06])
    bands = [np.array([v]) for v in (1e-6, 2e-6, 3e-6, 4e-6, 5e-6)]
    fig = brazil_figure(m, np.array([3.5e-6]), bands, ylabel="y", title="t")
    for poly in fig.axes[0].collections[:2]:
        x = poly.get_paths()[0].vertices[:, 0]
        assert x.max() - x.min() == pytest.approx(1.2)  # 1% of 60 MeV either side
    plt.close(fig)
    fig = ahat_figure(m, np.array([10.0]), np.array([5.0]), "t")
    x = fig.axes[0].collections[0].get_paths()[0].vertices[:, 0]
    assert x.max() - x.min() == pytest.approx(1.2)
    plt.close(fig)


def test_a_failed_mass_mid_scan_is_a_gap_in_every_scan_figure(shared_quickstart, tmp_path):
    """The Brazil bands, the expected and observed curves, p0, Z and A_hat were drawn
    straight across a mass whose fit failed mid-scan, as if the scan had a result there
    (a review): each is broken there, the band on both sides, and the mass is a cross
    along the bottom ("no result (failed)")."""
    import shutil

    import h5py

    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.plan import Layout
    from gprpipe.plotting.suite import NO_RESULT_LABEL
    from gprpipe.steps.plot import scan_figures

    point = tmp_path / "nominal"
    point.mkdir()
    for name in ("config.toml", "limit.h5"):
        shutil.copy(shared_quickstart / "nominal" / name, point / name)
    lay = Layout(point)
    with h5py.File(lay.limit, "r+") as f:
        g = f["demo"]
        mass = g["mass_GeV"][:]
        mid = 2
        assert len(mass) == 5
        status = g["status"][:].astype(str)
        status[mid] = "fit failed: no sideband bins"
        del g["status"]
        g["status"] = status.astype("S")
        for key, col in g.items():
            if isinstance(col, h5py.Dataset) and col.dtype.kind == "f" and key != "mass_GeV":
                col[mid] = np.nan
    jobs = {j.stem: j for j in scan_figures(point_config_from_file(lay.config), lay, {lay.limit})}
    m_mev = 1000 * mass
    for stem in ("brazil_eps2_demo", "brazil_A_demo", "significance_demo", "Ahat_demo"):
        job = jobs[stem]
        fig = job.fn(*job.args, **job.kwargs)
        ax = fig.axes[0]
        crosses = [x for x in ax.get_lines() if x.get_label() == NO_RESULT_LABEL]
        assert [list(c.get_xdata()) for c in crosses] == [[m_mev[mid]]], stem
        curves = [x for x in ax.get_lines() if len(x.get_xdata()) == 5]
        assert curves and all(np.isnan(c.get_ydata()[mid]) for c in curves), stem
        # the bands (two in a Brazil figure, one of A_hat): in pieces either side of it
        pieces = [p.vertices[:, 0] for band in ax.collections for p in band.get_paths()]
        assert len(pieces) == {"b": 4, "s": 0, "A": 2}[stem[0]], stem
        assert all(not (x.min() < m_mev[mid] < x.max()) for x in pieces), stem
        plt.close(fig)
    # the overlays of a combination too
    from gprpipe.plotting.overlay import combined_brazil_figure, eps2_overlay_figure

    m = np.array([0.05, 0.06, 0.07])
    band = {
        f"eps2_exp_{b}": np.array([1e-6, np.nan, 1e-6]) for b in ("lo2", "lo1", "med", "hi1", "hi2")
    }
    row = {"mass_GeV": m, "status": np.array(["ok", "no GP fit for this mass", "ok"]),
           "eps2_up": np.array([2e-6, np.nan, 2e-6]), **band}  # fmt: skip
    scan = {"2015": row, "combined": row}
    for fig in (
        combined_brazil_figure(scan, {"2015": "HPS 2015"}, "t", 90.0),
        eps2_overlay_figure(scan, {"2015": "HPS 2015"}, "t", 90.0),
    ):
        lines = [x for x in fig.axes[0].get_lines() if len(x.get_xdata()) == 3]
        assert lines and all(np.isnan(x.get_ydata()[1]) for x in lines)
        plt.close(fig)
    fig = combined_brazil_figure(scan, {"2015": "HPS 2015"}, "t", 90.0)
    crosses = [x for x in fig.axes[0].get_lines() if x.get_label() == NO_RESULT_LABEL]
    assert [list(c.get_xdata()) for c in crosses] == [[60.0]]
    plt.close(fig)


def test_the_grid_figure_has_a_gap_at_a_mass_that_is_not_ok():
    """The grid index figure joined each point's curves across a failed mass (the
    own-diff review): a gap there, as in the point's scan figures."""
    from gprpipe.plotting.grid import grid_limits_figure

    a = {
        "mass_GeV": np.array([0.05, 0.06, 0.07]),
        "status": np.array(["ok", "fit failed: x", "ok"]),
        "eps2_exp_med": np.array([1e-6, 2e-6, 3e-6]),
        "eps2_up": np.array([1e-6, 2e-6, 3e-6]),
    }
    fig = grid_limits_figure({"2015": [("p0", a, False)]}, {"2015": "HPS 2015"})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and all(np.isnan(x.get_ydata()[1]) for x in lines)
    assert all(list(x.get_xdata()) == [50.0, 60.0, 70.0] for x in lines)
    plt.close(fig)


def test_a_result_between_two_failed_masses_is_drawn():
    """Of many masses, a mass with a result between two failed ones vanished from the
    figures: a line of one point, drawn without markers, draws nothing (the whole-diff
    review). It is a dot."""
    from gprpipe.plotting.grid import grid_limits_figure

    m = np.linspace(0.02, 0.13, 111)
    failed = np.zeros(111, bool)
    failed[[59, 61]] = True
    y = np.where(failed, np.nan, 1e-6)
    bands = [np.where(failed, np.nan, v) for v in (1e-7, 5e-7, 1e-6, 2e-6, 4e-6)]
    fig = brazil_figure(m, y * 1.1, bands, ylabel="y", title="t", failed=failed)
    lone = [x for x in fig.axes[0].get_lines() if x.get_marker() == "o" and len(x.get_xdata()) == 1]
    assert sorted(float(x.get_xdata()[0]) for x in lone) == [pytest.approx(1e3 * m[60])] * 2
    plt.close(fig)
    a = {"mass_GeV": m, "status": np.where(failed, "fit failed: x", "ok"),
         "eps2_exp_med": np.full(111, 1e-6), "eps2_up": np.full(111, 1e-6)}  # fmt: skip
    fig = grid_limits_figure({"2015": [("p0", a, False)]}, {"2015": "HPS 2015"})
    lone = [x for x in fig.axes[0].get_lines() if x.get_marker() == "o" and len(x.get_xdata()) == 1]
    assert len(lone) == 2  # expected and observed
    plt.close(fig)


def test_masses_without_an_observed_limit_are_marked_and_an_empty_curve_has_no_legend():
    """Every 2015 mass of a combination with 100-toy limits had its observed toy limit
    unresolved: the overlay listed "HPS 2015 observed" with no curve, and the masses
    without an observed limit were unmarked gaps (a review). They are open triangles in
    the dataset's colour; a curve with no value has no legend entry."""
    import matplotlib.pyplot as plt

    from gprpipe.plotting.overlay import combined_brazil_figure, observed_figure

    unresolved = "limit failed: observed toy limit unresolved: 9 of 100 toys: raise limit.n_toys"
    m = np.array([0.106, 0.108, 0.11])

    def table(up, status):
        t = {"mass_GeV": m, "eps2_up": np.array(up), "A_up": np.array(up) * 1e9}
        t |= {
            f"eps2_exp_{b}": np.full(3, 2e-6) * k
            for b, k in zip(("lo2", "lo1", "med", "hi1", "hi2"), (0.5, 0.7, 1.0, 1.4, 1.9))
        }
        return t | {"status": np.array(status, dtype=object)}

    nan = float("nan")
    scan = {
        "2015": table([nan] * 3, [unresolved] * 3),
        "2016": table([1e-6, nan, 2e-6], ["ok", unresolved, "ok"]),
        "combined": table([8e-7, 9e-7, 1e-6], ["ok"] * 3),
    }
    labels = {"2015": "HPS 2015", "2016": "HPS 2016"}
    fig = observed_figure(scan, labels, "t", 95, "eps2")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "HPS 2015 observed" not in texts and "HPS 2016 observed" in texts
    tri = {
        ln.get_label(): (list(ln.get_xdata()), ln.get_ydata()[0])
        for ln in ax.get_lines()
        if ln.get_marker() == "v"
    }
    # each dataset's triangles in a row of their own (at 108 MeV they blended into one)
    assert tri == {
        "HPS 2015: no observed limit (too few toys)": (pytest.approx([106, 108, 110]), 0.03),
        "HPS 2016: no observed limit (too few toys)": (pytest.approx([108]), 0.07),
    }
    plt.close(fig)
    fig = combined_brazil_figure(scan, labels, "t", 95)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "HPS 2015 observed" not in texts  # (named as in the other overlays)
    assert "HPS 2015: no observed limit (too few toys)" in texts
    plt.close(fig)


def test_the_rows_of_marks_along_the_bottom_lie_below_every_band(tmp_path: Path):
    """A mass without a result (cross) or without an observed limit (triangle) is marked
    along the bottom of the axes; a band reaching the bottom was drawn over the marks (a
    review). The saved figure's y range starts low enough for its lowest band to lie above
    the rows; a figure without marks keeps matplotlib's range."""
    import matplotlib.pyplot as plt

    from gprpipe.plotting.style import BOTTOM_ROW, save
    from gprpipe.plotting.suite import brazil_figure

    m = np.linspace(0.03, 0.1, 15)
    med = 1e-5 * (1 + 5 * (m - 0.03) / 0.07)
    bands = [med * k for k in (0.3, 0.6, 1.0, 1.6, 2.4)]
    bands[0][0] = 1e-7  # the -2 sigma band's end at 30 MeV: the lowest value drawn
    obs = med * 1.1
    obs[[0, 3]] = np.nan  # 30 MeV: no observed limit; 45 MeV: no result
    for b in bands:
        b[3] = np.nan
    failed = np.arange(15) == 3

    def fractions(fig):  # (lowest value drawn, top of the marks' rows), in axes fraction
        ax = fig.axes[0]
        low = ax.transAxes.inverted().transform(ax.transData.transform((0.05, 1e-7)))[1]
        rows = [ln for ln in ax.get_lines() if ln.get_gid() == BOTTOM_ROW]
        assert {ln.get_marker() for ln in rows} == {"x", "v"}
        return low, max(float(np.max(ln.get_ydata())) for ln in rows)

    fig = brazil_figure(m, obs, bands, ylabel="eps2", title="t", failed=failed)
    low, row = fractions(fig)
    assert low < row + 0.02  # as drawn: the band's end on the marks
    save(fig, tmp_path, "b", ["png"])
    low, row = fractions(fig)
    assert low == pytest.approx(row + 0.035, abs=1e-6)
    obs[0] = med[0]  # every mass with its limits: no marks, the range is kept
    fig = brazil_figure(m, obs, bands, ylabel="eps2", title="t", failed=failed & False)
    before = fig.axes[0].get_ylim()
    save(fig, tmp_path, "c", ["png"])
    assert fig.axes[0].get_ylim() == before
    plt.close("all")
