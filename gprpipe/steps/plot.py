"""plot: every figure the available step outputs allow, as PNG/PDF in ``plots/``, the
HEPData tables, and the HTML report (``report.html`` of the point, ``index.html`` of the
run).

This step reads the step outputs and saves; the figure functions of ``gprpipe.plotting``
only take arrays and return figures. With ``base.jobs`` > 1 (and as many CPUs available)
the figures are drawn in forked worker processes while this process writes the HEPData
tables and the displays.

Blinded (``base.blind``): only expected limits are drawn, the data inside the blind windows
of the test masses are not drawn, and every figure carries a "BLINDED" label.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from gprpipe.config.checks import blinded_bins
from gprpipe.config.schema import FIGURE_FORMATS
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text, discard_pending, forget_pending
from gprpipe.io.processes import end_with
from gprpipe.plotting.style import FigureJob, apply_style, draw, set_labels
from gprpipe.results import schema
from gprpipe.results.summary import toys_bound
from gprpipe.units import same_mass

MEV = 1e3


#: the figures to draw, or a writer: a function that writes other products here and
#: returns their paths, and figures (e.g. of the displays it computed) for the workers
Part = list[FigureJob] | Callable[[], Sequence[Path | FigureJob]]


def run(ctx) -> None:
    cfg = ctx.config
    lay = ctx.layout
    apply_style(cfg.plot.style)
    set_labels(cfg.plot.experiment, cfg.plot.status, cfg.base.blind)
    formats = cfg.plot.formats
    labels = {n: cfg.datasets[n].label or n for n in cfg.datasets} | {"combined": "Combined"}
    drawn = _drawable(ctx)
    previous = _previous_products(lay)
    parts: list[Part] = []
    if lay.load in drawn:
        parts.append(spectrum_figures(cfg, lay, labels))
    if {lay.fit, lay.limit, lay.inject} & drawn:
        parts.append(scan_figures(cfg, lay, drawn))
    if lay.limit in drawn:
        from gprpipe.steps.hepdata import write_hepdata

        cl = 100 * (1 - cfg.limit.alpha)
        parts.append(
            overlay_figures(schema.read_scan(lay.limit), labels, cl, blinded=cfg.base.blind)
        )
        parts.append(lambda: write_hepdata(cfg, lay.limit, lay.hepdata))
        if not cfg.base.blind:  # sigma_A comes from the fit to the observed counts
            from gprpipe.steps.reach import combination_products

            parts.append(lambda: combination_products(cfg, lay, formats))
    if lay.inject in drawn:
        parts.append(inject_figures(lay.inject, labels, blind_nsigma=cfg.fit.blind_nsigma))
    if lay.fit in drawn:
        from gprpipe.steps.displays import display_plots

        parts.append(lambda: display_plots(cfg, lay, drawn))
    if lay.toyscan in drawn:
        parts.append(toyscan_figures(cfg, lay, drawn))
    if not parts:
        other = sorted(p.name for p in _other_settings(ctx))
        raise GprpipeError(
            f"{lay.point_dir}: nothing to plot: "
            + (
                f"{', '.join(other)} were made with other settings or inputs; add their "
                "steps to steps.run (or --steps)."
                if other
                else "no output of load, fit, limit, inject or toyscan; add the steps "
                "that make them to steps.run (or --steps)."
            )
        )
    written = render(parts, lay.plots, formats, workers(cfg.base.jobs))
    keep = {p.resolve() for p in written}
    for old in previous - keep:  # products of an earlier config: not this run's results
        old.unlink(missing_ok=True)
    hepdata = lay.hepdata
    if hepdata.is_dir() and not hepdata.is_symlink() and not any(hepdata.iterdir()):
        hepdata.rmdir()  # no table this time (no mass passed the quality checks)
    from gprpipe.steps.report import write_reports

    files = [str(p.relative_to(lay.point_dir)) for p in written]
    manifest = {
        "cache_key": ctx.cache_key,
        "blinded": cfg.base.blind,
        "files": files,
        # the step outputs drawn (one of other settings is not): the figures are current
        # while these are (pipeline.summary.plots_current)
        "drawn": sorted(p.name for p in drawn),
    }
    atomic_write_text(lay.plot_manifest, json.dumps(manifest, indent=1) + "\n")
    report, _ = write_reports(cfg, lay.point_dir)  # its figures: the manifest's
    ctx.written = [*written, report]


def _drawable(ctx) -> set[Path]:
    """The step outputs this plot task may draw: present, made by this config (never
    one left by an earlier config, e.g. its injection study) and, when a step left out of
    this run made it, vouched for by that step's commit record, made with the settings
    and inputs of this config (one made with others is left out, with a notice)."""
    from gprpipe.pipeline.cache import output_of
    from gprpipe.pipeline.commit import vouched
    from gprpipe.pipeline.plan import producers

    lay = ctx.layout
    made = producers(ctx.task.point, lay.point_dir, ctx.config)  # not made: stale
    outputs = (lay.load, lay.fit, lay.limit, lay.inject, lay.toyscan)
    running = set(ctx.config.steps.run)  # the runner verified what these made
    drawn = set()
    for p in outputs:
        if not p.exists() or p not in made:
            continue
        if made[p].step not in running:
            vouched(p)  # damaged or uncommitted: the task fails, naming it
            if not output_of(p, ctx.config, made):
                print(f"notice: {p.name} was made with other settings or inputs; not drawn")
                continue
        drawn.add(p)
    return drawn


def _other_settings(ctx) -> list[Path]:
    """The step outputs in the point folder that another config's settings made."""
    from gprpipe.pipeline.cache import output_of
    from gprpipe.pipeline.plan import producers

    lay = ctx.layout
    made = producers(ctx.task.point, lay.point_dir, ctx.config)
    outputs = (lay.load, lay.fit, lay.limit, lay.inject, lay.toyscan)
    return [p for p in outputs if p.exists() and not output_of(p, ctx.config, made)]


def _previous_products(lay) -> set[Path]:
    """What the previous plot task wrote (its manifest): figures of ``plots/``, tables of
    ``hepdata/``, the point folder's ``Layout.products()``; nothing else, whatever a
    manifest lists, and nothing a link leads outside the point folder; and every display
    in ``plots/`` (only the plot step writes them)."""
    point = Path(os.path.realpath(lay.point_dir))
    places = {Path(os.path.realpath(lay.plots)), Path(os.path.realpath(lay.hepdata))}
    products = {p.name for p in lay.products()}
    out = set()
    for p in schema.plot_manifest_files(lay.point_dir) or []:
        real = Path(os.path.realpath(p))
        if point not in real.parents:
            continue
        if real.parent in places or (real.parent == point and real.name in products):
            out.add(real)
    # figures a plot task that did not finish wrote (no manifest lists them): observed
    # ones (displays with window counts, observed limits, significance) stayed beside a
    # blinded redraw (two reviews); plots/ is the plot step's alone
    plots = Path(os.path.realpath(lay.plots))
    if plots.is_dir() and point in plots.parents:
        out |= {  # the entries themselves (a link goes, not what it leads to; no folder)
            p
            for p in plots.iterdir()
            if (p.is_symlink() or p.is_file())
            and (p.name.startswith("display_") or p.suffix[1:] in FIGURE_FORMATS)
        }
    return out


# --------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------
#: prctl option (linux/prctl.h): the signal a process gets when its parent ends
PR_SET_PDEATHSIG = 1


def workers(jobs: int) -> int:
    """Figure workers: ``base.jobs``, at most the CPUs this process may use, and in a
    SLURM job at most those it asked for (``slurm.cpus_per_task``: a cluster that does not
    pin tasks to their CPUs shows them all)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    asked = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if asked.isdigit() and int(asked) > 0:
        cpus = min(cpus, int(asked))
    return max(1, min(jobs, cpus))


def _end_with_parent(parent: int) -> None:
    """Figure worker start-up: end with the task's process, however it ends (a stopped
    run terminates it; a crash or the OOM killer may kill it). A figure worker left behind
    would hold the task's inherited pipes open, and its run would wait for them forever;
    it would also go on writing figures into a folder that a later run may hold. Linux:
    the kernel sends SIGTERM when the task's process ends; elsewhere the worker checks
    twice a second that it is still its parent (:func:`gprpipe.io.processes.end_with`)."""
    import ctypes

    forget_pending()  # the task's own writes, if any, are not this worker's to remove
    signal.signal(signal.SIGTERM, _end_now)  # not the task's handler
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError("prctl failed")
    except (OSError, AttributeError):  # no prctl (not Linux)
        end_with(parent)
    if os.getppid() != parent:  # it ended before prctl took effect
        os._exit(1)


def _end_now(signum: int, frame: object) -> None:
    """A figure worker's SIGTERM (its task's process ended or stopped it): remove the
    temporary file of the figure being saved and end at once (``SystemExit`` would be
    caught by the pool's worker loop, which would go on to the next figure)."""
    discard_pending()
    os._exit(128 + signum)


def render(
    parts: Sequence[Part], folder: Path, formats: Sequence[str], n_workers: int = 1
) -> list[Path]:
    """Draw every figure of ``parts`` and call the writers; returns the written paths in
    the order of ``parts``. With ``n_workers`` > 1 the figures are drawn in forked
    processes (they inherit the style and labels) while the writers run here, and the
    figures a writer returns are drawn by those processes too; where this process cannot
    fork them, it draws them itself and says why (a notice in the task's log)."""
    pool = None
    if n_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        why = ""
        if "fork" not in multiprocessing.get_all_start_methods():
            why = "this platform cannot fork"
        elif threading.active_count() > 1:
            why = "this process runs other threads, and forking it would be unsafe"
        elif multiprocessing.current_process().daemon:
            why = "a daemonic process may not have children"
        if why:
            print(f"notice: the figures are drawn in this process, one at a time: {why}")
        else:
            pool = ProcessPoolExecutor(
                n_workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_end_with_parent,
                initargs=(os.getpid(),),
            )

    def start(f: FigureJob) -> FigureJob | Future[list[Path]]:
        return f if pool is None else pool.submit(draw, f, folder, formats)

    written: list[Path] = []
    try:
        # figures first (to the workers), then the writers here while the workers draw (a
        # writer reads step outputs only, never a figure); paths keep the order of ``parts``
        jobs: list[list[Path | FigureJob | Future[list[Path]]]] = [
            [] if callable(p) else [start(f) for f in p] for p in parts
        ]
        for k, p in enumerate(parts):
            if callable(p):
                jobs[k] = [start(x) if isinstance(x, FigureJob) else x for x in p()]
        for x in (x for items in jobs for x in items):
            if isinstance(x, Future):
                written += x.result()
            elif isinstance(x, FigureJob):
                written += draw(x, folder, formats)
            else:
                written.append(x)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return written


# --------------------------------------------------------------------------------------
# What to draw (reads the step outputs)
# --------------------------------------------------------------------------------------
def spectrum_figures(cfg, lay, labels: dict[str, str]) -> list[FigureJob]:
    from gprpipe.plotting.spectrum import spectrum_figure

    spectra, hidden = {}, {}
    for name in cfg.scanned():
        counts, edges = schema.read_load(lay.load, name)
        spectra[labels[name]] = (counts, edges, cfg.datasets[name].range)
        if cfg.base.blind:
            hidden[labels[name]] = blinded_bins(cfg, name, edges)
    return [FigureJob("spectrum", spectrum_figure, (spectra, " + ".join(spectra), hidden))]


def scan_figures(cfg, lay, drawn: set[Path]) -> list[FigureJob]:
    """Every scan figure the point's outputs allow (blinded: expected limits only)."""
    from gprpipe.plotting import suite

    blinded = cfg.base.blind
    figures: list[FigureJob] = []
    scan = schema.read_scan(lay.limit) if lay.limit in drawn else {}
    for name, a in scan.items():
        title = cfg.datasets[name].label or name if name in cfg.datasets else "Combined"
        # the expected band also where only the observed toy limit is unresolved (a gap
        # in the observed curve there); every mass drawn, those without a result a gap
        # and a cross along the bottom
        exp, g = suite.gapped(a)
        if not exp.any():
            continue
        m, failed = a["mass_GeV"], ~exp
        flagged = suite.flag_mask(a["status"]) & exp
        left_out = suite.left_out_mask(a["status"]) & exp

        for q, ylab in (
            ("A", "95% CL upper limit on signal yield $A$"),
            ("eps2", r"95% CL upper limit on $\epsilon^2$"),
        ):
            obs = None if blinded else g[f"{q}_up"]
            obs_err = g.get(f"{q}_up_err") if obs is not None else None
            bands = [g[f"{q}_exp_{b}"] for b in schema.BAND_COLS]
            ylab = ylab.replace("95", f"{100 * (1 - cfg.limit.alpha):g}")
            figures.append(
                FigureJob(
                    f"brazil_{q}_{name}",
                    suite.brazil_figure,
                    (m, obs, bands),
                    {
                        "ylabel": ylab,
                        "title": title,
                        "flagged": flagged,
                        "obs_err": obs_err,
                        "failed": failed,
                        "left_out": left_out,
                    },
                )
            )
        if blinded:
            continue
        # the masses searched: also those whose observed toy limit alone is unresolved
        # (their p0, Z and A_hat stand; they were left out and the curves joined across
        # them, a review); their global p0 is NaN in the table: a gap. The toys' columns
        # only where the run has whole-scan toys.
        pgt, pgt_err = g.get("p0_global_toys"), g.get("p0_global_toys_err")
        bound = toys_bound(pgt, pgt_err) if pgt is not None and pgt_err is not None else None
        plo, plo_err = g.get("p0_local_toys"), g.get("p0_local_toys_err")
        local_bound = toys_bound(plo, plo_err) if plo is not None and plo_err is not None else None
        figures.append(
            FigureJob(
                f"significance_{name}",
                suite.significance_figure,
                (m, g["p0_local"], g["p0_global"], title),
                {
                    "flagged": flagged,
                    "failed": failed,
                    "left_out": left_out,
                    "p_global_toys": pgt,
                    "toys_bound": bound,
                    "p_local_toys": plo,
                    "p_local_toys_err": plo_err,
                    "p_local_toys_bound": local_bound,
                },
            )
        )
        figures += global_toys_figures(lay.limit, name, a, title)
        figures.append(
            FigureJob(
                f"Ahat_{name}",
                suite.ahat_figure,
                (m, g["A_hat"], g["sigma_A"], title),
                {"flagged": flagged, "failed": failed, "left_out": left_out},
            )
        )
    if lay.fit in drawn:
        figures += fit_figures(cfg, lay, scan)
    return figures


def global_toys_figures(limit_path: Path, name: str, a: dict, title: str) -> list[FigureJob]:
    """``global_toys_<dataset>``: the toys' max-Z distribution (if the run has toys)."""
    from gprpipe.plotting.lee import max_z_figure

    g = schema.read_global(limit_path, name)
    if g is None:
        return []
    dist, attrs = g
    ok = a["status"] == "ok"
    others = {}
    if "max_Z_local_refit" in dist:
        others["GP refit per mass (same toys)"] = dist["max_Z_local_refit"]
        others["fixed map (same toys)"] = dist["max_Z_local_fixed_same_toys"]
    return [
        FigureJob(
            f"global_toys_{name}",
            max_z_figure,
            (dist["max_Z_local"], float(attrs["n_eff"]), title),
            # (no row counts when every one is flagged: no observed maximum)
            {"z_obs": float(np.nanmax(a["Z_local"][ok])) if ok.any() else None, "others": others},
        )
    ]


def fit_figures(cfg, lay, scan: dict) -> list[FigureJob]:
    """GP hyperparameters per dataset and the GP fits at the masses of :func:`gp_masses`."""
    from gprpipe.plotting.suite import hyper_figure
    from gprpipe.stats.gp import GPHyper
    from gprpipe.stats.quality import has_result
    from gprpipe.stats.window import WindowMasks
    from gprpipe.steps.fit import resolution

    figures: list[FigureJob] = []
    for name in cfg.scanned():
        try:
            fit = schema.read_fit(lay.fit, name)
        except KeyError:
            continue
        title = cfg.datasets[name].label or name
        figures.append(FigureJob(f"gp_hyper_{name}", hyper_figure, (fit, title, cfg.fit.gof_p_min)))
        counts, edges = schema.read_load(lay.load, name)
        x = 0.5 * (edges[1:] + edges[:-1])
        ds = cfg.datasets[name]
        z = None
        if not cfg.base.blind and name in scan:
            from gprpipe.stats.quality import counts_for_discovery

            z_ok = significant_z(scan[name]["Z_local"], counts_for_discovery(scan[name]["status"]))
            z = np.interp(fit["mass_GeV"], scan[name]["mass_GeV"], z_ok)
        drawn = gp_masses(cfg.plot.masses, fit["mass_GeV"], z)
        left = [m for m in sorted(set(cfg.plot.masses)) if not any(same_mass(m, d) for d in drawn)]
        if left:
            print(
                f"notice: plot.masses {', '.join(f'{m:g}' for m in left)} GeV: no test mass of "
                f"dataset {name}; no GP-fit figure of them"
            )
        for mass in drawn:
            i = int(np.argmin(np.abs(fit["mass_GeV"] - mass)))
            if not has_result(fit["status"][i]):
                continue
            s = float(resolution(ds, mass))
            train = WindowMasks(
                mass, s, cfg.fit.blind_nsigma, cfg.fit.train_exclude_nsigma, ds.data_range
            ).train(x)
            hyper = GPHyper.from_arrays(fit, i)
            status = str(fit["status"][i])
            figures.append(
                FigureJob(
                    f"gpfit_{name}_{mass * MEV:g}MeV",
                    gp_fit,
                    (
                        edges,
                        counts,
                        mass,
                        s,
                        hyper,
                        cfg.fit.blind_nsigma,
                        train,
                        title if status == "ok" else f"{title} [{status}]",
                    ),
                    {"hidden": blinded_bins(cfg, name, edges) if cfg.base.blind else None},
                )
            )
    return figures


def gp_fit(
    edges,
    counts,
    mass: float,
    sigma: float,
    hyper,
    blind_nsigma: float,
    train: np.ndarray,
    title: str,
    hidden: np.ndarray | None = None,
):
    """The GP background prediction within +/-8 sigma_m of ``mass`` (trained on ``train``),
    drawn by :func:`gprpipe.plotting.suite.gp_fit_figure` (run in a figure worker);
    ``hidden``: the bins whose data a blinded run does not draw."""
    from gprpipe.plotting.suite import gp_fit_figure
    from gprpipe.stats.gp import predict_counts

    x = 0.5 * (edges[1:] + edges[:-1])
    near = (x > mass - 8 * sigma) & (x < mass + 8 * sigma) & (x > 0)
    b, C = predict_counts(x[train], counts[train], x[near], hyper)
    err = np.sqrt(np.clip(np.diag(C), 0, None))
    return gp_fit_figure(
        x[near],
        counts[near],
        b,
        err,
        mass,
        sigma,
        blind_nsigma,
        title,
        hidden=None if hidden is None else hidden[near],
    )


def significant_z(z_local: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Z_local of the rows that count for a discovery, -inf for the others (a flagged or
    failed row is never drawn as "the most significant mass")."""
    return np.where(counts, np.nan_to_num(z_local, nan=-np.inf), -np.inf)


def gp_masses(
    wanted_masses: Sequence[float] | None, masses: np.ndarray, z_local: np.ndarray | None = None
) -> list[float]:
    """Masses of the GP-fit figures: ``plot.masses`` (``wanted_masses``), else three across
    the scan plus the most significant one (largest local Z; not when blinded: ``z_local``
    is then None). A wanted mass that is no test mass is left out."""
    if wanted_masses:  # those that are test masses (validate refuses one between two)
        wanted = [w for w in wanted_masses if len(masses) and same_mass(masses, w).any()]
    else:
        n = len(masses)
        wanted = [masses[round(q * (n - 1))] for q in (0.1, 0.5, 0.9)] if n else []
        if z_local is not None and len(z_local) == n and np.isfinite(z_local).any():
            wanted.append(masses[int(np.nanargmax(z_local))])
    out: list[float] = []
    for w in wanted:
        i = int(np.argmin(np.abs(masses - w)))
        if len(masses) and float(masses[i]) not in out:
            out.append(float(masses[i]))
    return sorted(out)


def overlay_figures(
    scan: dict[str, dict[str, np.ndarray]], labels: dict[str, str], cl: float, blinded: bool = False
) -> list[FigureJob]:
    """The overlay (when there are two or more curves), the combined Brazil band and, when
    not blinded, the observed-only limit curves. Titles name the datasets by label."""
    from gprpipe.plotting import overlay
    from gprpipe.plotting.suite import expected_mask

    curves = [n for n, a in scan.items() if expected_mask(a["status"]).any()]
    title = " + ".join(labels.get(n, n) for n in curves if n != overlay.COMBINED)
    figures: list[FigureJob] = []
    if len(curves) >= 2:
        figures.append(
            FigureJob(
                "eps2_overlay", overlay.eps2_overlay_figure, (scan, labels, title, cl, blinded)
            )
        )
    if overlay.COMBINED in curves:
        figures.append(
            FigureJob(
                "brazil_eps2_combined_overlay",
                overlay.combined_brazil_figure,
                (scan, labels, f"{title}: combined", cl, blinded),
            )
        )
    if curves and not blinded:
        figures += [
            FigureJob(f"observed_{q}", overlay.observed_figure, (scan, labels, title, cl, q))
            for q in ("eps2", "A")
        ]
    return figures


def inject_figures(
    path: Path, labels: dict[str, str], blind_nsigma: float | None = None
) -> list[FigureJob]:
    """Every closure figure for every dataset group of ``inject.h5``; ``blind_nsigma`` (the
    blind-window half-width in sigma_m) goes into the titles."""
    from gprpipe.plotting import inject as fig

    figures: list[FigureJob] = []
    for name, a in schema.read_inject(path).items():
        if not len(a.get("mass_GeV", [])):
            continue
        if "sigma_ref" in a:  # strength axis in sigma_A,ref units whatever the config unit
            a = {**a, "z_inj": np.round(a["A_inj"] / a["sigma_ref"], 6)}
        refit = bool(np.any(a["refit_gp"])) if "refit_gp" in a else False
        title = f"{labels.get(name, name)}: {'GP refit' if refit else 'conditional'} toys"
        if blind_nsigma is not None:
            title += rf", window $\pm{blind_nsigma:g}\sigma_m$"
        for stem, fn in (
            ("linearity", fig.linearity_figure),
            ("bias", fig.bias_figure),
            ("pulls", fig.pull_figure),
            ("coverage", fig.coverage_figure),
            ("pull_heatmap", fig.heatmap_figure),
            ("zhat", fig.zhat_figure),
            ("pull_vs_mass", fig.pull_mass_figure),
            ("zcal_residual", fig.zcal_residual_figure),
        ):
            figures.append(FigureJob(f"inject_{stem}_{name}", fn, (a, title)))
        toys = schema.read_toys(path, name)
        if toys:
            figures.append(
                FigureJob(f"inject_pull_hist_{name}", fig.pull_hist_figure, (toys, title))
            )
    return figures


def toyscan_figures(cfg, lay, drawn: set[Path]) -> list[FigureJob]:
    """Validation-scan figures (``toyscan_z_local``, ``toyscan_spurious``,
    ``toyscan_max_z``), with the data's whole-scan toys when the run has them."""
    from gprpipe.plotting.lee import max_z_figure
    from gprpipe.plotting.toyscan import spurious_figure, z_local_figure
    from gprpipe.stats.quality import counts_for_discovery
    from gprpipe.stats.significance import n_eff
    from gprpipe.steps.fit import resolution

    name = cfg.toyscan_dataset()
    m = cfg.test_masses(name)
    neff = n_eff(m, resolution(cfg.datasets[name], m), cfg.fit.blind_nsigma)
    g = schema.read_global(lay.limit, name) if lay.limit in drawn else None
    title = f"{cfg.datasets[name].label or name}: {cfg.toyscan.pattern}"
    toys, summ, _, mz = schema.read_toyscan(lay.toyscan)
    ok = counts_for_discovery(toys["status"])
    if g is not None:
        max_z = FigureJob(
            "toyscan_max_z",
            max_z_figure,
            (g[0]["max_Z_local"], neff, title),
            {"others": {"validation toys": mz}},
        )
    else:
        max_z = FigureJob("toyscan_max_z", max_z_figure, (mz, neff, title))
    return [
        FigureJob(
            "toyscan_z_local", z_local_figure, (toys["Z_local"][ok], title, toys["Z_local"][~ok])
        ),
        FigureJob("toyscan_spurious", spurious_figure, (summ, title)),
        max_z,
    ]
