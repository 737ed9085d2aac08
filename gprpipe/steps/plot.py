"""plot: every figure the available step outputs allow, as PNG/PDF in ``plots/``, the
HEPData tables, and the HTML report (``report.html`` of the point, ``index.html`` of the
run).

Blinded (``base.blind``): only expected limits are drawn, the data inside the blind windows
of the test masses are not drawn, and every figure carries a "BLINDED" label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gprpipe.io.atomic import atomic_write_text
from gprpipe.plotting.style import apply_style, save, set_labels
from gprpipe.steps.load import read_load


def blinded_bins(cfg, name: str, edges: np.ndarray) -> np.ndarray:
    """Bins whose centre lies in the blind window of any test mass of ``name``."""
    from gprpipe.pipeline.plan import dataset_masses
    from gprpipe.steps.fit import resolution

    x = 0.5 * (edges[1:] + edges[:-1])
    masses = dataset_masses(cfg, name)
    if not len(masses):
        return np.zeros(len(x), bool)
    half = cfg.fit.blind_nsigma * resolution(cfg.datasets[name], masses)
    return np.any(np.abs(x[:, None] - masses[None, :]) <= half[None, :], axis=1)


def run(ctx) -> None:
    cfg = ctx.config
    lay = ctx.layout
    apply_style(cfg.plot.style)
    set_labels(cfg.plot.experiment, cfg.plot.status, cfg.base.blind)
    formats = cfg.plot.formats
    written: list[Path] = []
    labels = {n: cfg.datasets[n].label or n for n in cfg.datasets} | {"combined": "Combined"}
    if lay.load.exists():
        from gprpipe.plotting.spectrum import spectrum_figure

        spectra, hidden = {}, {}
        for name in cfg.scanned():
            counts, edges = read_load(lay.load, name)
            spectra[labels[name]] = (counts, edges, cfg.datasets[name].range)
            if cfg.base.blind:
                hidden[labels[name]] = blinded_bins(cfg, name, edges)
        title = " + ".join(spectra)
        written += save(spectrum_figure(spectra, title, hidden), lay.plots, "spectrum", formats)
    if lay.fit.exists() or lay.limit.exists() or lay.inject.exists():
        from gprpipe.plotting.suite import scan_plots

        written += scan_plots(cfg, lay, formats)
    if lay.limit.exists():
        from gprpipe.plotting.overlay import overlay_plots
        from gprpipe.steps.hepdata import write_hepdata
        from gprpipe.steps.limit import read_scan

        cl = 100 * (1 - cfg.limit.alpha)
        written += overlay_plots(read_scan(lay.limit), labels, cl, lay.plots, formats,
                                 blinded=cfg.base.blind)
        written += write_hepdata(cfg, lay.limit, lay.point_dir / "hepdata")
        if not cfg.base.blind:  # sigma_A comes from the fit to the observed counts
            from gprpipe.steps.reach import combination_products

            written += combination_products(cfg, lay, formats)
    if lay.inject.exists():
        from gprpipe.plotting.inject import inject_plots

        written += inject_plots(lay.inject, labels, lay.plots, formats,
                                window=cfg.fit.blind_nsigma)
    if lay.fit.exists():
        from gprpipe.steps.displays import display_plots

        written += display_plots(cfg, lay, formats)
    if lay.toyscan.exists():
        written += _toyscan_plots(cfg, lay, formats)
    from gprpipe.results.report import write_reports

    files = [str(p.relative_to(lay.point_dir)) for p in written]
    report, _ = write_reports(cfg, lay.point_dir)  # index.html (run level) is shared
    ctx.written = [*written, report]
    manifest = {"cache_key": ctx.cache_key, "blinded": cfg.base.blind, "files": files}
    atomic_write_text(lay.plot_manifest, json.dumps(manifest, indent=1) + "\n")


def _toyscan_plots(cfg, lay, formats) -> list[Path]:
    """Validation-scan figures, with the data's whole-scan toys when the run has them."""
    from gprpipe.pipeline.plan import dataset_masses
    from gprpipe.plotting.toyscan import toyscan_plots
    from gprpipe.stats.significance import n_eff
    from gprpipe.steps.fit import resolution
    from gprpipe.steps.lee import read_global

    name = cfg.toyscan_dataset()
    m = dataset_masses(cfg, name)
    neff = n_eff(m, resolution(cfg.datasets[name], m), cfg.fit.blind_nsigma)
    g = read_global(lay.limit, name) if lay.limit.exists() else None
    title = f"{cfg.datasets[name].label or name}: {cfg.toyscan.pattern}"
    return toyscan_plots(lay, title, neff, formats, None if g is None else g[0]["max_Z_local"])
