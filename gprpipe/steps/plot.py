"""plot: every figure the available step outputs allow, as PNG/PDF in ``plots/``."""

from __future__ import annotations

import json
from pathlib import Path

from gprpipe.io.atomic import atomic_write_text
from gprpipe.plotting.style import apply_style, save
from gprpipe.steps.load import read_load


def run(ctx) -> None:
    cfg = ctx.config
    lay = ctx.layout
    apply_style(cfg.plot.style)
    formats = cfg.plot.formats
    written: list[Path] = []
    if lay.load.exists():
        from gprpipe.plotting.spectrum import spectrum_figure

        spectra = {}
        for name in cfg.scanned():
            counts, edges = read_load(lay.load, name)
            spectra[cfg.datasets[name].label or name] = (counts, edges, cfg.datasets[name].range)
        written += save(spectrum_figure(spectra, f"{cfg.base.name}: spectrum"), lay.plots,
                        "spectrum", formats)
    if lay.fit.exists() or lay.limit.exists() or lay.inject.exists():
        from gprpipe.plotting.suite import scan_plots

        written += scan_plots(cfg, lay, formats)
    labels = {n: cfg.datasets[n].label or n for n in cfg.datasets} | {"combined": "Combined"}
    if lay.limit.exists():
        from gprpipe.plotting.overlay import overlay_plots
        from gprpipe.steps.hepdata import write_hepdata
        from gprpipe.steps.limit import read_scan

        cl = 100 * (1 - cfg.limit.alpha)
        written += overlay_plots(read_scan(lay.limit), labels, cfg.base.name, cl, lay.plots,
                                 formats)
        written += write_hepdata(cfg, lay.limit, lay.point_dir / "hepdata")
    if lay.inject.exists():
        from gprpipe.plotting.inject import inject_plots

        written += inject_plots(lay.inject, labels, lay.plots, formats,
                                window=cfg.fit.blind_nsigma)
    ctx.written = written
    files = [str(p.relative_to(lay.point_dir)) for p in written]
    manifest = {"cache_key": ctx.cache_key, "files": files}
    atomic_write_text(lay.plot_manifest, json.dumps(manifest, indent=1) + "\n")
