"""inject: injection/extraction closure at each (dataset or ``combined``, mass), then a merge.

For each strength ``z`` of ``[inject].strengths`` (``strength_unit = "sigma_A"``: units of
``sigma_A,ref``, the sigma_A on the Asimov window ``n = b``; ``"yield"``: the signal yield
itself), ``n_toys`` toys with ``A_inj = z sigma_A,ref`` (or ``z``) are generated and fitted
(``refit_gp = false``: conditional blind-window toys with the fixed data fit; ``true``:
full-range toys with a GP refit per toy; see :mod:`gprpipe.stats.inject`). With
``background = "histograms"`` the full-range backgrounds are the histograms of the
dataset's ROOT file matching ``inject.histograms`` (rebinned like the data; toy ``t`` is
histogram ``t`` in natural order, at most as many toys as histograms), e.g. the
functional-form toys: closure on backgrounds that are not GP-shaped. The likelihood
template follows ``fit.signal_leakage`` (``w_eff`` or ``w``).
Seeds: ``seed_for(base.seed, "inject", dataset, mass, z)``; refit toys use its
``SeedSequence`` children (toy ``t`` is always child ``t``).

Outputs (merge): ``inject.h5`` with, per dataset group, the summary arrays (``inject.csv``
columns plus ``sigma_ref``, ``eps2_inj``, ``gp_conv_frac``, ``n_generated``,
``seconds``; in refit mode also ``sideband_leak``, the fraction of the signal on the GP
training bins, ``A_hat_asimov``, the yield extracted from the noise-free refit toy (the GP
mean plus the signal), and ``A_hat_asimov0``, the same without signal: the refit's
background offset, which the GP refitted on its own smooth mean predicts in the window
whatever the signal; ``(A_hat_asimov - A_hat_asimov0) / A_inj`` is the signal's response
without fluctuations, the closure of the leakage model; NaN for toys from background
histograms) and
``toys/<MeV>MeV_z<z>/`` groups with per-toy ``A_hat``, ``sigma_A``, ``pull``,
``converged`` (and the GP diagnostics in refit mode);
``inject.csv`` with exactly the docs/design.md columns. For ``dataset = "combined"`` the yields
are total signal yields summed over the combined datasets (``A = eps2 * sum_d K_d``, as in
``scan.csv``) and the strength unit is the combined ``sigma_A,ref``; ``eps2_inj`` is stored
in ``inject.h5``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text
from gprpipe.io.hdf5 import write_group, write_h5
from gprpipe.pipeline.plan import MERGE, inject_parts
from gprpipe.results.schema import (  # noqa: F401  (readers re-exported for callers)
    BLIND_INJECT,
    COMBINED,
    INJECT,
    collect,
    csv_text,
    read_inject,
    read_load,
    read_toys,
    write_merged,
)
from gprpipe.stats.quality import has_result
from gprpipe.stats.resolution import f_rad
from gprpipe.steps.fit import MassFit, fit_masses, read_blind, read_fit, resolution, template_key
from gprpipe.steps.runner import seed_for
from gprpipe.units import mass_within, same_mass

if TYPE_CHECKING:
    from gprpipe.stats.gp import GPHyper
    from gprpipe.stats.inject import Extraction

CSV_COLUMNS = INJECT.names


@dataclass
class Window:
    """One dataset's GP fit at a mass: blind arrays, rho, hyperparameters, data. Made by
    :func:`data_window`, which returns only fits that have blind arrays and hyperparameters."""

    fit: MassFit
    counts: np.ndarray
    edges: np.ndarray

    @property
    def blind(self) -> dict[str, np.ndarray]:
        assert self.fit.blind is not None
        return self.fit.blind

    @property
    def hyper(self) -> GPHyper:
        assert self.fit.hyper is not None
        return self.fit.hyper


def data_window(cfg: Config, ctx, name: str, mass: float) -> Window:
    """The data fit at ``mass`` from ``fit.h5``, or a fresh fit (with the scan's own
    restarts, no warm start) when the mass was not scanned."""
    from gprpipe.stats.gp import GPHyper

    counts, edges = read_load(ctx.layout.load, name)
    ds = cfg.datasets[name]
    s = float(resolution(ds, mass))
    fa = read_fit(ctx.layout.fit, name) if ctx.layout.fit.exists() else None
    if fa is not None:
        hit = np.flatnonzero(same_mass(fa["mass_GeV"], mass))
        if len(hit) and has_result(fa["status"][hit[0]]):
            i = int(hit[0])
            hyper = GPHyper.from_arrays(fa, i)
            index = int(np.argmin(np.abs(cfg.test_masses(name) - mass)))
            blind, attrs = read_blind(ctx.layout.fit, name, index)
            mf = MassFit(index, mass, s, hyper, str(fa["status"][i]), blind, float(attrs["rho"]))
            return Window(mf, counts, edges)
    mf = fit_masses(cfg, name, counts, edges, np.array([mass]))[0]
    if not has_result(mf.status) or mf.blind is None or mf.hyper is None:
        raise GprpipeError(
            f"inject: no usable GP fit of {name} at {mass * 1e3:g} MeV ({mf.status})."
        )
    return Window(mf, counts, edges)


def refit_setup(cfg: Config, name: str, win: Window):
    """The :class:`~gprpipe.stats.inject.RefitSetup` of a data fit (same bounds as ``fit``)."""
    from gprpipe.stats.gp import GPOptions, length_scale_bounds, sigma_x
    from gprpipe.stats.inject import RefitSetup
    from gprpipe.stats.window import WindowMasks

    ds = cfg.datasets[name]
    m, s = win.fit.mass, win.fit.sigma
    all_m = cfg.test_masses(name)
    med = float(np.median(sigma_x(all_m, resolution(ds, all_m))))
    hi = ds.ls_hi_factor if ds.ls_hi_factor is not None else cfg.fit.ls_hi_factor
    bounds = length_scale_bounds(
        float(sigma_x(m, s)), med, cfg.fit.ls_lo_factor, hi, ds.ls_floor_factor
    )
    masks = WindowMasks(m, s, cfg.fit.blind_nsigma, cfg.fit.train_exclude_nsigma, ds.data_range)
    return RefitSetup(
        edges=win.edges,
        masks=masks,
        start=win.hyper,
        options=GPOptions(bounds, n_restarts=cfg.fit.n_restarts),
    )


def unit_yield(cfg: Config, name: str, mass: float, rho: float) -> float:
    from gprpipe.stats.combine import unit_yield as k

    ds = cfg.datasets[name]
    return k(mass, float(f_rad(mass, ds.frad_coeffs, ds.frad_penalty)), rho)


def background_histograms(cfg: Config, name: str, edges: np.ndarray) -> np.ndarray:
    """The ``inject.histograms`` of dataset ``name``, rebinned like the data:
    ``(n_hist, n_bins)``, at most ``inject.n_toys`` of them."""
    from gprpipe.config.checks import binning_mismatch
    from gprpipe.io.root import match_hists, read_hist, rebin
    from gprpipe.steps.load import observed_counts_guard

    ds = cfg.datasets[name]
    pattern = str(cfg.inject.histograms)
    not_observed = observed_counts_guard(cfg, name)
    out = []
    for h in match_hists(ds.path, pattern, "inject.histograms")[: cfg.inject.n_toys]:
        c, e = rebin(*read_hist(ds.path, h), ds.rebin)
        why = binning_mismatch(ds.path, h, e, ds.hist, edges)
        if why:
            raise GprpipeError(why)
        not_observed(c, f"inject.histograms: {ds.path}: histogram {h!r}")
        out.append(c)
    return np.array(out, dtype=float)


#: the refit-mode columns of inject.h5, NaN in conditional mode
NO_REFIT = dict.fromkeys(("A_hat_asimov", "A_hat_asimov0", "sideband_leak"), math.nan)


def _study_dataset(
    cfg: Config, ctx, name: str, mass: float
) -> list[tuple[dict[str, float], Extraction]]:
    from gprpipe.stats import inject as inj
    from gprpipe.stats.likelihood import cholesky_jitter
    from gprpipe.stats.template import signal_template

    ic = cfg.inject
    leakage = cfg.fit.signal_leakage
    win = data_window(cfg, ctx, name, mass)
    bl = win.blind
    w_fit = bl[template_key(cfg)]
    L = cholesky_jitter(bl["C"])
    sref = inj.sigma_ref(bl["b"], L, w_fit)
    k = unit_yield(cfg, name, mass, win.fit.rho)
    hists = None
    if ic.refit_gp:
        setup = refit_setup(cfg, name, win)
        b_full = inj.full_range_mean(win.counts, setup)
        w_full = signal_template(win.edges, mass, win.fit.sigma)
        leak = inj.sideband_leak(setup, w_full)
        if ic.background == "histograms":
            hists = background_histograms(cfg, name, win.edges)
        offset = (
            inj.asimov_refit(setup, 0.0, w_full, b_full, leakage=leakage)[0]
            if hists is None
            else math.nan
        )
    out = []
    total = len(ic.strengths) * ic.n_toys
    for j, z in enumerate(ic.strengths):
        ctx.progress(j * ic.n_toys, total, "toys")
        t0 = time.perf_counter()
        A = float(z) * (sref if ic.strength_unit == "sigma_A" else 1.0)
        ss = seed_for(cfg.base.seed, "inject", name, mass, float(z))
        asimov = dict(NO_REFIT)
        if ic.refit_gp:
            bkg = {"b_full": b_full} if hists is None else {"backgrounds": hists}
            ex = inj.inject_refit(
                setup,
                A,
                w_full,
                ss.spawn(len(hists) if hists is not None else ic.n_toys),
                mode=ic.mode,
                leakage=leakage,
                progress=lambda t, j=j: ctx.progress(j * ic.n_toys + t, total, "toys"),
                **bkg,
            )
            # the noise-free toy is the GP mean plus the signal: of GP toys only (the
            # histograms' family has no noise-free member here; their mean keeps the
            # noise of a few histograms)
            a_asimov = (
                inj.asimov_refit(setup, A, w_full, b_full, leakage=leakage)[0]
                if hists is None and A != 0.0
                else offset
            )
            asimov = {"A_hat_asimov": a_asimov, "A_hat_asimov0": offset, "sideband_leak": leak}
        else:
            ex = inj.inject_conditional(
                bl["b"],
                bl["C"],
                bl["w"],
                A,
                ic.n_toys,
                np.random.default_rng(ss),
                mode=ic.mode,
                L=L,
                w_eff=bl["w_eff"] if leakage == "model" else None,
            )
        meta = {
            "z_inj": float(z),
            "sigma_ref": sref,
            "eps2_inj": A / k if k > 0 else math.nan,  # rho 0: no events to convert
            **asimov,
            "seconds": time.perf_counter() - t0,
        }
        out.append((meta, ex))
    return out


def _study_combined(cfg: Config, ctx, mass: float) -> list[tuple[dict[str, float], Extraction]]:
    from gprpipe.stats import combine as comb
    from gprpipe.stats import inject as inj
    from gprpipe.stats.template import signal_template

    ic = cfg.inject
    if ic.background == "histograms":
        raise GprpipeError(
            "inject: background = 'histograms' is not available for the "
            "combination (set scan.combined = false or background = 'gp')."
        )
    leakage = cfg.fit.signal_leakage
    names = [d for d in cfg.scanned() if mass_within(mass, *cfg.datasets[d].range)]
    wins = {d: data_window(cfg, ctx, d, mass) for d in names}
    ks = {d: unit_yield(cfg, d, mass, w.fit.rho) for d, w in wins.items()}
    tk = template_key(cfg)
    stored = {d: w.blind for d, w in wins.items()}
    blocks = [
        comb.Block(bl.get("n", bl["b"]), bl["b"], bl["C"], bl[tk], ks[d], d)
        for d, bl in stored.items()
    ]
    if len(blocks) < 2:
        raise GprpipeError(f"inject: fewer than two datasets cover {mass * 1e3:g} MeV.")
    cw = comb.combine(blocks)
    _, sigma, _ = comb.fit(cw, cw.b)
    sref_e = float(sigma)
    ktot = cw.k_total
    if ic.refit_gp:
        setups = [refit_setup(cfg, d, w) for d, w in wins.items()]
        b_fulls = [inj.full_range_mean(w.counts, st) for w, st in zip(wins.values(), setups)]
        w_fulls = [signal_template(w.edges, mass, w.fit.sigma) for w in wins.values()]
        k_list = [ks[d] for d in names]
        leak = float(
            np.dot([inj.sideband_leak(st, wf) for st, wf in zip(setups, w_fulls)], k_list) / ktot
        )  # yield-weighted over the datasets
        e_offset, _ = inj.asimov_refit_combined(
            setups, b_fulls, w_fulls, k_list, 0.0, scale=cw.scale, leakage=leakage
        )
    out = []
    per = ic.n_toys * (len(names) if ic.refit_gp else 1)  # refits per strength
    total = len(ic.strengths) * per
    for j, z in enumerate(ic.strengths):
        ctx.progress(j * per, total, "toy refits" if ic.refit_gp else "toys")
        t0 = time.perf_counter()
        e = float(z) * sref_e if ic.strength_unit == "sigma_A" else float(z) / ktot
        ss = seed_for(cfg.base.seed, "inject", COMBINED, mass, float(z))
        asimov = dict(NO_REFIT)
        if ic.refit_gp:

            def progress(t: int, j: int = j) -> None:
                ctx.progress(j * per + t, total, "toy refits")

            ex = inj.inject_refit_combined(
                setups,
                b_fulls,
                w_fulls,
                k_list,
                e,
                ss.spawn(ic.n_toys),
                mode=ic.mode,
                scale=cw.scale,
                names=names,
                leakage=leakage,
                progress=progress,
            )
            e_asimov = (
                inj.asimov_refit_combined(
                    setups, b_fulls, w_fulls, k_list, e, scale=cw.scale, leakage=leakage
                )[0]
                if e != 0.0
                else e_offset
            )
            asimov = {
                "A_hat_asimov": e_asimov * ktot,
                "A_hat_asimov0": e_offset * ktot,
                "sideband_leak": leak,
            }
        else:
            w_true = [bl["w"] for bl in stored.values()] if leakage == "model" else None
            ex = inj.inject_conditional_combined(
                cw, e, ic.n_toys, np.random.default_rng(ss), mode=ic.mode, w_true=w_true
            )
        meta = {
            "z_inj": float(z),
            "sigma_ref": sref_e * ktot,
            "eps2_inj": e,
            **asimov,
            "seconds": time.perf_counter() - t0,
        }
        out.append((meta, ex.scaled(ktot)))
    return out


def run(ctx) -> None:
    cfg, part = ctx.config, ctx.task.part
    if part == MERGE:
        merge(ctx)
        return
    name, mass = inject_parts(cfg)[part]
    if name == COMBINED:
        results = _study_combined(cfg, ctx, mass)
    else:
        results = _study_dataset(cfg, ctx, name, mass)
    refit = bool(cfg.inject.refit_gp)
    rows = []
    with write_h5(ctx.layout.part("inject", part), ctx.attrs()) as f:
        g = f.create_group(name)
        toys = g.create_group("toys")
        for meta, ex in results:
            summ = ex.summary()
            gp_ok: np.ndarray | None = ex.extra.get("gp_converged")
            conv_frac = float(np.mean(gp_ok)) if gp_ok is not None else float("nan")
            rows.append(
                {
                    "mass_GeV": mass,
                    "A_inj": ex.A_inj,
                    **meta,
                    **summ,
                    "refit_gp": refit,
                    "gp_conv_frac": conv_frac,
                    "n_generated": len(ex.A_hat),
                }
            )
            ratio = summ["A_hat_mean"] / ex.A_inj if ex.A_inj else math.nan
            noise_free = ""
            if refit and ex.A_inj:
                asimov = meta["A_hat_asimov"] / ex.A_inj  # NaN for histogram backgrounds
                head = ""
                if math.isfinite(asimov):  # the signal's response and the offset apart
                    response = (meta["A_hat_asimov"] - meta["A_hat_asimov0"]) / ex.A_inj
                    offset = meta["A_hat_asimov0"] / meta["sigma_ref"]
                    head = (
                        f"noise-free refit {asimov:.3f}: signal response {response:.3f}, "
                        f"background offset {offset:+.3f} sigma_A,ref; "
                    )
                noise_free = f" ({head}sideband leak {meta['sideband_leak']:.3f})"
            print(
                f"{name} {mass * 1e3:g} MeV z={meta['z_inj']:g}: {summ['n_kept']} toys kept, "
                f"pull mean {summ['pull_mean']:+.3f} +- {summ['pull_mean_err']:.3f}, "
                f"width {summ['pull_width']:.3f}, "
                f"A_hat/A_inj {ratio:.3f}{noise_free}, {meta['seconds']:.1f} s",
                flush=True,
            )
            tg = toys.create_group(f"{mass * 1e3:g}MeV_z{meta['z_inj']:g}")
            write_group(
                tg,
                {
                    "A_hat": ex.A_hat,
                    "sigma_A": ex.sigma_A,
                    "pull": ex.pull,
                    "converged": ex.converged,
                    **ex.extra,
                },
            )
            tg.attrs.update(
                mass_GeV=mass,
                A_inj=ex.A_inj,
                refit_gp=refit,
                mode=cfg.inject.mode,
                **{k: v for k, v in meta.items()},
            )
        keys = rows[0].keys() if rows else []
        write_group(g, {k: np.array([r[k] for r in rows]) for k in keys})


def inject_csv(per_ds: dict[str, dict[str, np.ndarray]], blinded: bool = False) -> str:
    """``inject.csv``; a blinded run (whose toys use no observed window count) adds a
    ``blinded`` column (``true``)."""
    if not blinded:
        return csv_text(per_ds, INJECT)
    marked = {k: {**v, "blinded": np.ones(len(v["mass_GeV"]), bool)} for k, v in per_ds.items()}
    return csv_text(marked, BLIND_INJECT)


def merge(ctx) -> None:
    cfg = ctx.config
    paths = list(ctx.task.inputs)
    per_ds = collect(paths)
    if not per_ds:
        raise GprpipeError(f"{ctx.layout.point_dir}: no injection results to merge.")
    order = [*cfg.scanned(), COMBINED]
    per_ds = {k: per_ds[k] for k in order if k in per_ds}
    with write_h5(ctx.layout.inject, ctx.attrs()) as out:
        write_merged(out, paths, per_ds)
    atomic_write_text(ctx.layout.inject_csv, inject_csv(per_ds, cfg.base.blind))
