"""fit: the GP background at each test mass of a chunk, then a merge into ``fit.h5``.

Per mass: blind window, GP fit on the sidebands (warm-started from the previous mass of
the chunk, seeded restarts, convergence recorded), background ``b`` and covariance ``C``
on the blind bins, signal template ``w``, the leakage-aware template ``w_eff``
(:mod:`gprpipe.stats.leakage`) and observed ``n``: everything needed to rebuild the
likelihood. The background-model quality (:mod:`gprpipe.stats.quality`: ``gof_chi2_ndf``,
``gof_p``, training bins on each side) sets a flag status. A mass whose fit fails gets a
status reason and never stops the scan.

Blinded (``base.blind``): the observed window counts ``n`` are not stored, and ``rho`` (the
counts per GeV in the window, for the eps^2 conversion) comes from the GP background ``b``
instead of the data (attr ``rho_source`` says which), so no output depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import h5py
import numpy as np

from gprpipe.config.schema import Config, Dataset
from gprpipe.io.hdf5 import write_group, write_h5
from gprpipe.pipeline.plan import MERGE, mass_parts
from gprpipe.results.schema import (  # noqa: F401  (readers re-exported for callers)
    collect,
    read_blind,
    read_fit,
    read_load,
    write_merged,
)
from gprpipe.stats.quality import (
    FLAG_GOF,
    FLAG_ONE_SIDEBAND,
    FLAG_SPARSE,
    Gof,
    flag_status,
    window_determined,
)
from gprpipe.stats.resolution import sigma_m
from gprpipe.steps.runner import seed_for

if TYPE_CHECKING:
    from gprpipe.stats.gp import GPHyper


def resolution(ds: Dataset, m) -> np.ndarray:
    """sigma(m) of a dataset (GeV), from its card's polynomial and optional tail."""
    return sigma_m(m, ds.sigma_coeffs, ds.sigma_tail_m0, ds.sigma_tail_slope)


@dataclass
class MassFit:
    index: int
    mass: float
    sigma: float
    hyper: GPHyper | None
    status: str
    blind: dict[str, np.ndarray] | None  # edges, n, b, C, w, w_eff
    rho: float = float("nan")
    gof: Gof | None = None


def template_key(cfg: Config) -> str:
    """The blind-group array the likelihood uses: ``w_eff`` (leakage modelled) or ``w``."""
    return "w_eff" if cfg.fit.signal_leakage == "model" else "w"


def quality_flags(cfg: Config, gof: Gof, sigma: float, bin_width: float, sparsity: float) -> str:
    """The status of a fitted mass from its background-model quality (``ok`` or flags):
    ``sigma`` the resolution at the mass, ``bin_width`` the (equal) width of the bins,
    ``sparsity`` the window's :func:`~gprpipe.stats.quality.window_sparsity`."""
    flags = []
    if gof.p == gof.p and gof.p < cfg.fit.gof_p_min:
        flags.append(FLAG_GOF)
    side = min(gof.n_lo, gof.n_hi)
    if cfg.fit.require_two_sidebands and (
        side < cfg.fit.min_sideband_bins
        or side * bin_width < cfg.fit.min_sideband_nsigma * sigma * (1 - 1e-9)
    ):
        flags.append(FLAG_ONE_SIDEBAND)
    if sparsity > cfg.fit.sparse_s_max:  # (NaN, no training bin next to it: not flagged)
        flags.append(FLAG_SPARSE)
    return flag_status(flags)


def fit_masses(
    cfg: Config,
    name: str,
    counts: np.ndarray,
    edges: np.ndarray,
    masses: np.ndarray,
    progress=None,
    *,
    observed: bool = True,
) -> list[MassFit]:
    """GP fits for ``masses`` of dataset ``name``, warm-starting each from the previous;
    ``progress(done, total, unit)`` is called after each mass. ``observed``: the counts
    are the data (a blinded run keeps none of their window counts), not a toy."""
    from gprpipe.stats.conversion import rho_window
    from gprpipe.stats.gp import GPOptions, fit_window, length_scale_bounds, sigma_x
    from gprpipe.stats.leakage import leakage_template
    from gprpipe.stats.quality import window_gof, window_sparsity
    from gprpipe.stats.template import signal_template
    from gprpipe.stats.window import WindowMasks

    ds = cfg.datasets[name]
    all_masses = cfg.test_masses(name)
    median_sx = float(np.median(sigma_x(all_masses, resolution(ds, all_masses))))
    hi_factor = ds.ls_hi_factor if ds.ls_hi_factor is not None else cfg.fit.ls_hi_factor
    blind_nsigma = cfg.fit.blind_nsigma
    x = 0.5 * (edges[1:] + edges[:-1])
    start: GPHyper | None = None
    out: list[MassFit] = []
    for m in masses:
        if progress is not None:
            progress(len(out), len(masses), "masses")
        m = float(m)
        index = int(np.argmin(np.abs(all_masses - m)))
        s = float(resolution(ds, m))
        try:
            bounds = length_scale_bounds(
                float(sigma_x(m, s)), median_sx, cfg.fit.ls_lo_factor, hi_factor, ds.ls_floor_factor
            )
            seed = int(seed_for(cfg.base.seed, "fit", name, m).generate_state(1)[0])
            masks = WindowMasks(m, s, blind_nsigma, cfg.fit.train_exclude_nsigma, ds.data_range)
            wf = fit_window(
                edges, counts, masks, GPOptions(bounds, cfg.fit.n_restarts), seed=seed, start=start
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            out.append(MassFit(index, m, s, None, f"fit failed: {exc}", None))
            continue
        if not (np.isfinite(wf.b).all() and np.isfinite(wf.C).all()):
            # gp_amplitude and gp_length_scale (columns of their own) show why
            why = (
                "fit failed: the background prediction in the blind window overflows "
                "(the sidebands are rougher than Poisson scatter about a smooth curve)"
            )
            out.append(MassFit(index, m, s, wf.hyper, why, None))
            continue
        unconstrained = (  # no number: the summary counts the rows of each reason
            "fit failed: the sidebands do not determine the background in the blind "
            "window (its uncertainty exceeds the background itself; gp_length_scale and "
            "gp_amplitude show why)"
            if not window_determined(wf.b, wf.C)
            else ""
        )
        if wf.hyper.converged and not unconstrained:
            start = wf.hyper
        idx = np.flatnonzero(wf.blind)
        w_full = signal_template(edges, m, s)
        tr, bl = wf.train, wf.blind
        try:
            w_eff = leakage_template(
                x[tr], counts[tr], w_full[tr], x[bl], w_full[bl], wf.b, wf.hyper
            )
            gof = window_gof(
                x, counts, tr, m, masks.exclude_nsigma * s, cfg.fit.gof_nsigma * s, wf.hyper
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            why = unconstrained or f"fit failed: {exc}"
            out.append(MassFit(index, m, s, wf.hyper, why, None))
            continue
        if gof.n_lo == 0 and gof.n_hi == 0:  # e.g. a data_range that stops short of m
            why = (
                f"fit failed: no training bin within fit.gof_nsigma = {cfg.fit.gof_nsigma:g} "
                f"sigma(m) of the window on either side (see datasets.{name}.data_range and "
                "fit.gof_nsigma); the background in the window would be an extrapolation "
                "that no check can test"
            )
            out.append(MassFit(index, m, s, wf.hyper, why, None, gof=gof))
            continue
        if unconstrained:
            out.append(MassFit(index, m, s, wf.hyper, unconstrained, None, gof=gof))
            continue
        blind = {
            "edges": edges[idx[0] : idx[-1] + 2],
            "b": wf.b,
            "C": wf.C,
            "w": w_full[bl],
            "w_eff": w_eff,
        }
        if cfg.base.blind and observed:  # nothing downstream may see the observed counts
            rho = float(rho_window(blind["edges"], wf.b, m, s, blind_nsigma))
        else:
            blind["n"] = counts[bl]
            rho = float(rho_window(edges, counts, m, s, blind_nsigma))
        sparse = window_sparsity(x, counts, tr, bl, m, masks.exclude_nsigma * s, s)
        status = quality_flags(cfg, gof, s, float(edges[1] - edges[0]), sparse)
        out.append(MassFit(index, m, s, wf.hyper, status, blind, rho, gof))
    return out


def _write_dataset(f: h5py.File, name: str, fits: list[MassFit], blinded: bool) -> None:
    g = f.require_group(name)
    nan = float("nan")
    write_group(
        g,
        {
            "mass_GeV": [x.mass for x in fits],
            "sigma_m_GeV": [x.sigma for x in fits],
            "gp_length_scale": [x.hyper.length_scale if x.hyper else nan for x in fits],
            "gp_amplitude": [x.hyper.amplitude if x.hyper else nan for x in fits],
            "gp_lml": [x.hyper.lml if x.hyper else nan for x in fits],
            "gp_converged": [bool(x.hyper and x.hyper.converged) for x in fits],
            "gp_reason": [x.hyper.reason if x.hyper else "" for x in fits],
            "gof_chi2_ndf": [x.gof.chi2_ndf if x.gof else nan for x in fits],
            "gof_p": [x.gof.p if x.gof else nan for x in fits],
            "gof_ndf": [x.gof.ndf if x.gof else nan for x in fits],
            "n_train_lo": [x.gof.n_lo if x.gof else -1 for x in fits],
            "n_train_hi": [x.gof.n_hi if x.gof else -1 for x in fits],
            "status": [x.status for x in fits],
        },
    )
    blind = g.require_group("blind")
    for x in fits:
        if x.blind is None:
            continue
        b = blind.create_group(str(x.index))
        write_group(b, x.blind)
        b.attrs.update(
            mass_GeV=x.mass,
            rho=x.rho,
            sigma_m_GeV=x.sigma,
            rho_source="gp" if blinded else "observed",
        )


def run(ctx) -> None:
    cfg, lay, part = ctx.config, ctx.layout, ctx.task.part
    if part == MERGE:
        merge(ctx)
        return
    name, masses = mass_parts(cfg)[part]
    counts, edges = read_load(lay.load, name)
    fits = fit_masses(cfg, name, counts, edges, masses, progress=ctx.progress)
    with write_h5(lay.part("fit", part), ctx.attrs()) as f:
        _write_dataset(f, name, fits, cfg.base.blind)


def merge(ctx) -> None:
    """Concatenate the chunk files into ``fit.h5`` (blind groups copied as they are)."""
    paths = list(ctx.task.inputs)
    with write_h5(ctx.layout.fit, ctx.attrs()) as out:
        write_merged(out, paths, collect(paths))
