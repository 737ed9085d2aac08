"""Reviewer displays (written by the plot step): extraction and observed event displays.

* **Extraction display** ``display_extract_<dataset>_<m>MeV_z<z>_<variant>``: one
  representative pseudo-experiment per (dataset or ``combined``, mass, injected strength
  ``z``) and variant (``conditional``: blind-window toy fitted with the data's fixed
  ``(b, C)``; ``refit``: full-range toy with the GP refitted on its sidebands). Toys are
  drawn with the inject step's seeds; the representative toy is the one whose ``A_hat`` is
  the median of the converged toys (those of ``inject.h5`` when it holds that mass, strength
  and variant, so the display is toy ``toy_index`` of ``inject.h5``; else ``inject.n_toys``
  conditional toys or ``plot.displays.refit_toys`` refit toys drawn here).
* **Observed display** ``display_observed_<dataset>_<m>MeV`` and, for a combination, the
  hero figure ``display_observed_combined_<m>MeV`` (a column per dataset and a shared bump
  panel in units of eps^2).

Each display is a PNG/PDF (``plot.formats``) and a JSON sidecar with every number shown
(yields, Z, eps^2, and the binned arrays). Yields of a combined display are per dataset
(``A_d = eps^2 K_d``); the shared fit is in eps^2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from gprpipe.config.schema import Config
from gprpipe.io.atomic import atomic_write_text
from gprpipe.plotting.style import FigureJob
from gprpipe.results.schema import COMBINED
from gprpipe.steps.runner import seed_for
from gprpipe.units import mass_within, same_mass

if TYPE_CHECKING:
    from gprpipe.stats.gp import GPHyper

MEV = 1e3
ZOOM_PAD = 0.5  # zoom panel: blind window +/- 0.5 sigma_m
RESID_HALF = 5.0  # residual panel: +/- 5 sigma_m (the Gaussians are drawn beyond the window)


@dataclass
class Shown:
    """One dataset's pseudo-experiment (or the data) at a mass, fitted."""

    name: str
    label: str
    mass: float
    sigma: float
    blind_nsigma: float
    edges: np.ndarray
    counts: np.ndarray  # full range: data, or data with the toy in the window, or toy
    train: np.ndarray  # GP training bins
    hyper: GPHyper  # used for the background prediction
    blind: np.ndarray  # blind-bin mask
    b: np.ndarray  # background on the blind bins used in the fit
    C: np.ndarray
    w: np.ndarray  # likelihood template on the blind bins
    k_unit: float  # signal yield per unit eps^2
    w_true: np.ndarray  # the true signal template on the blind bins
    A_hat: float = math.nan
    sigma_A: float = math.nan
    A_inj: float | None = None
    sig_counts: np.ndarray | None = None  # realised signal counts (full range)

    @property
    def signal(self) -> np.ndarray:
        """The realised signal counts of an extraction display's pseudo-experiment."""
        assert self.sig_counts is not None, "only extraction displays carry a signal"
        return self.sig_counts


def template_of(blind: dict, cfg: Config) -> np.ndarray:
    """The likelihood's signal template of a stored window (``fit.signal_leakage``)."""
    from gprpipe.steps.fit import template_key

    return np.asarray(blind[template_key(cfg)], dtype=float)


def _ctx(lay) -> SimpleNamespace:
    return SimpleNamespace(layout=lay)


def _label(cfg: Config, name: str) -> str:
    return "Combined" if name == COMBINED else (cfg.datasets[name].label or name)


def column_arrays(s: Shown) -> dict:
    """Everything a display column draws (and the sidecar stores), as plain arrays."""
    from gprpipe.stats.gp import predict_counts_diag

    x = 0.5 * (s.edges[1:] + s.edges[:-1])
    pos = x > 0
    gp_full = np.full(x.size, np.nan)
    gp_full[pos], _ = predict_counts_diag(x[s.train], s.counts[s.train], x[pos], s.hyper)
    near = np.abs(x - s.mass) <= RESID_HALF * s.sigma
    b_r, var = predict_counts_diag(x[s.train], s.counts[s.train], x[near], s.hyper)
    err = np.sqrt(np.clip(var, 0, None))
    inwin = s.blind[near]
    b_r[inwin] = s.b  # the fitted window: exactly the likelihood's background
    err[inwin] = np.sqrt(np.clip(np.diag(s.C), 0, None))
    zoom = np.abs(x[near] - s.mass) <= (s.blind_nsigma + ZOOM_PAD) * s.sigma
    return {
        "label": s.label,
        "mass_GeV": s.mass,
        "sigma_m_GeV": s.sigma,
        "blind_nsigma": s.blind_nsigma,
        "window_GeV": [s.mass - s.blind_nsigma * s.sigma, s.mass + s.blind_nsigma * s.sigma],
        "edges": s.edges,
        "counts": s.counts,
        "gp_full": gp_full,
        "x": x[near],
        "n": s.counts[near],
        "b": b_r,
        "b_err": err,
        "in_window": inwin,
        "zoom": zoom,
        "bin_width": float(np.median(np.diff(s.edges))),
        "A_hat": s.A_hat,
        "sigma_A": s.sigma_A,
        "A_inj": s.A_inj,
        "signal": None if s.sig_counts is None else s.sig_counts[near],
    }


# --------------------------------------------------------------------------------------
# Windows of the data fit
# --------------------------------------------------------------------------------------
def _data_shown(cfg: Config, lay, name: str, mass: float) -> Shown:
    from gprpipe.steps.inject import data_window

    win = data_window(cfg, _ctx(lay), name, mass)
    mf = win.fit
    blind = win.blind
    x = 0.5 * (win.edges[1:] + win.edges[:-1])
    from gprpipe.stats.window import WindowMasks

    ds = cfg.datasets[name]
    masks = WindowMasks(
        mass, mf.sigma, cfg.fit.blind_nsigma, cfg.fit.train_exclude_nsigma, ds.data_range
    )
    from gprpipe.steps.inject import unit_yield

    return Shown(
        name,
        _label(cfg, name),
        mass,
        mf.sigma,
        cfg.fit.blind_nsigma,
        win.edges,
        np.asarray(win.counts, dtype=float),
        masks.train(x),
        win.hyper,
        masks.blind(x),
        np.asarray(blind["b"]),
        np.asarray(blind["C"]),
        template_of(blind, cfg),
        unit_yield(cfg, name, mass, mf.rho),
        w_true=np.asarray(blind["w"], dtype=float),
    )


def _fit(s: Shown) -> None:
    from gprpipe.stats.likelihood import WindowModel

    f = WindowModel.from_covariance(s.b, s.C, s.w).fit(s.counts[s.blind])
    s.A_hat, s.sigma_A = float(f.A_hat), float(f.sigma_A)


def _combine(shown: list[Shown]):
    from gprpipe.stats import combine as comb

    return comb.combine(
        [comb.Block(s.counts[s.blind], s.b, s.C, s.w, s.k_unit, s.name) for s in shown]
    )


def _q0_z(n, b, C, w) -> float:
    from gprpipe.stats import significance
    from gprpipe.stats.likelihood import WindowModel

    return float(significance.z_local(WindowModel.from_covariance(b, C, w).q0(n)))


# --------------------------------------------------------------------------------------
# Representative toys
# --------------------------------------------------------------------------------------
def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


class _NoToy(Exception):
    """No toy converged: there is no representative toy to display."""


def _median_index(a_hat: np.ndarray, ok: np.ndarray) -> int:
    a = np.where(ok & np.isfinite(a_hat), a_hat, np.nan)
    if not np.isfinite(a).any():
        raise _NoToy
    return int(np.nanargmin(np.abs(a - np.nanmedian(a))))


def _same_yield(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1.0)


def _inject_toys(inject: Path | None, name: str, mass: float, z: float, refit: bool, A_inj: float):
    """Per-toy arrays and attrs of ``inject`` (the point's current inject.h5, or None) for
    (name, mass, z) in that variant, if injected with yield ``A_inj`` (not so when
    ``inject.strength_unit`` is ``yield``: a display's ``z`` is in sigma_A,ref units)."""
    if inject is None or not inject.exists():
        return None
    from gprpipe.steps.inject import read_toys

    try:
        toys = read_toys(inject, name)
    except KeyError:
        return None
    got = toys.get(f"{mass * MEV:g}MeV_z{z:g}")
    if got is None or bool(got[1].get("refit_gp")) != refit:
        return None
    if not _same_yield(float(got[1]["A_inj"]), A_inj):
        return None
    return got


def _inject_row(inject: Path | None, name: str, mass: float, z: float, A_inj: float) -> dict | None:
    from gprpipe.steps.inject import CSV_COLUMNS, read_inject

    if inject is None or not inject.exists():
        return None
    per = read_inject(inject).get(name)
    if per is None:
        return None
    i = np.flatnonzero(same_mass(per["mass_GeV"], mass) & (np.abs(per["z_inj"] - z) < 1e-9))
    if not len(i) or not _same_yield(float(per["A_inj"][i[0]]), A_inj):
        return None
    return {c: _py(per[c][i[0]]) for c in CSV_COLUMNS if c != "dataset" and c in per}


def _refit_setup(cfg: Config, lay, name: str, mass: float):
    from gprpipe.steps.inject import data_window, refit_setup

    win = data_window(cfg, _ctx(lay), name, mass)
    return win, refit_setup(cfg, name, win)


def _refit_template(cfg: Config, rt, base: Shown) -> np.ndarray:
    """The template a refit toy is fitted with, as the inject step does: the toy's own
    ``w_eff`` (from its refitted GP) when the leakage is modelled, else ``w``."""
    return rt.w_eff[0] if cfg.fit.signal_leakage == "model" else base.w_true


def _extraction_single(
    cfg: Config, lay, name: str, mass: float, z: float, variant: str, inject: Path | None
) -> tuple[list[Shown], dict]:
    from gprpipe.stats import inject as inj
    from gprpipe.stats.likelihood import cholesky_jitter
    from gprpipe.stats.template import signal_template

    base = _data_shown(cfg, lay, name, mass)
    L = cholesky_jitter(base.C)
    sref = inj.sigma_ref(base.b, L, base.w)
    A = float(z) * sref
    ss = seed_for(cfg.base.seed, "inject", name, mass, float(z))
    ic = cfg.inject
    stored = _inject_toys(inject, name, mass, z, variant == "refit", A)
    meta = {"sigma_A_ref": sref, "source": "inject.h5" if stored else "drawn for the display"}
    w_full = signal_template(base.edges, mass, base.sigma)
    if variant == "conditional":
        n_toys = ic.n_toys
        rng = np.random.default_rng(ss)
        # signal drawn from the true template; the fit uses the likelihood's template with
        # the background the GP would absorb from the leaked signal (as the inject step)
        bkg, sig = inj.conditional_toys(
            base.b, base.C, base.w_true, A, n_toys, rng, mode=ic.mode, L=L
        )
        b_fit = base.b + A * (base.w_true - base.w)
        if stored is not None:
            t = _median_index(stored[0]["A_hat"], stored[0]["converged"])
        else:
            a, _, c = inj.extract(bkg + sig, b_fit, L, base.w)
            t = _median_index(a, c)
        counts = base.counts.copy()
        counts[base.blind] = bkg[t] + sig[t]
        sig_full = np.zeros_like(counts)
        sig_full[base.blind] = sig[t]
        shown = Shown(
            **{**base.__dict__, "counts": counts, "A_inj": A, "sig_counts": sig_full, "b": b_fit}
        )
    else:
        from gprpipe.steps.inject import background_histograms

        win, setup = _refit_setup(cfg, lay, name, mass)
        b_full = inj.full_range_mean(win.counts, setup)
        # the inject step's backgrounds: Poisson(b_full), or toy t is histogram t
        hists = None
        if ic.background == "histograms":
            hists = background_histograms(cfg, name, win.edges)
        n_toys = stored[0]["A_hat"].size if stored is not None else cfg.plot.displays.refit_toys
        if hists is not None:
            n_toys = min(n_toys, len(hists))

        def bkg_of(first: int, end: int) -> dict:
            return {"b_full": b_full} if hists is None else {"backgrounds": hists[first:end]}

        if stored is not None:
            t = _median_index(stored[0]["A_hat"], stored[0]["converged"])
        else:
            ex = inj.inject_refit(
                setup,
                A,
                w_full,
                [inj.child_seed(ss, i) for i in range(n_toys)],
                mode=ic.mode,
                leakage=cfg.fit.signal_leakage,
                **bkg_of(0, n_toys),
            )
            t = _median_index(ex.A_hat, ex.converged)
        seed_t = inj.child_seed(ss, t)
        rt = inj.refit_toys(setup, A, w_full, [seed_t], mode=ic.mode, **bkg_of(t, t + 1))
        bkg, sig = inj.full_range_toy(
            np.random.default_rng(seed_t),
            A,
            w_full,
            mode=ic.mode,
            b_full=b_full,
            background=None if hists is None else hists[t],
        )

        hyper = rt.hyper(0)
        shown = Shown(
            **{
                **base.__dict__,
                "counts": (bkg + sig).astype(float),
                "hyper": hyper,
                "b": rt.b[0],
                "C": rt.C[0],
                "w": _refit_template(cfg, rt, base),
                "A_inj": A,
                "sig_counts": sig.astype(float),
            }
        )
        meta["gp_converged"] = bool(rt.gp_converged[0])
    _fit(shown)
    n = shown.counts[shown.blind]
    meta.update(
        toy_index=int(t), n_toys=int(n_toys), A_inj=A, eps2_inj=_eps2(A, base), Z_inj=float(z)
    )
    if stored is not None:
        meta["A_hat_inject_h5"] = float(stored[0]["A_hat"][t])
    meta["realised_signal_window"] = float(shown.signal[shown.blind].sum())
    meta["realised_signal_total"] = float(shown.signal.sum())
    meta["Z_hat"] = shown.A_hat / shown.sigma_A
    meta["Z_q0"] = _q0_z(n, shown.b, shown.C, shown.w)
    meta["eps2_hat"] = _eps2(shown.A_hat, base)
    meta["sigma_eps2"] = _eps2(shown.sigma_A, base)
    return [shown], meta


def _eps2(A: float, base: Shown) -> float:
    """A yield in eps^2; NaN where the window holds no events (the background density rho,
    and with it the yield per unit eps^2, is 0), as inject.h5's eps2_inj."""
    return float(A) / base.k_unit if base.k_unit > 0 else math.nan


def _extraction_combined(
    cfg: Config, lay, mass: float, z: float, variant: str, inject: Path | None
) -> tuple[list[Shown], dict]:
    from gprpipe.stats import combine as comb
    from gprpipe.stats import inject as inj
    from gprpipe.stats.template import signal_template

    names = [d for d in cfg.scanned() if mass_within(mass, *cfg.datasets[d].range)]
    bases = [_data_shown(cfg, lay, d, mass) for d in names]
    cw = _combine(bases)
    _, sref_e, _ = comb.fit(cw, cw.b)
    e = float(z) * float(sref_e)
    ss = seed_for(cfg.base.seed, "inject", COMBINED, mass, float(z))
    ic = cfg.inject
    ktot = cw.k_total
    stored = _inject_toys(inject, COMBINED, mass, z, variant == "refit", e * ktot)
    meta: dict = {
        "sigma_eps2_ref": float(sref_e),
        "source": "inject.h5" if stored else "drawn for the display",
    }
    shown: list[Shown] = []
    if variant == "conditional":
        n_toys = ic.n_toys
        from gprpipe.stats.toys import background_toys

        rng = np.random.default_rng(ss)  # the inject step's draws: background, then signal
        bkg = background_toys(cw.b, cw.C, n_toys, rng, cw.L)
        sig = np.zeros_like(bkg)
        for bs, sl in zip(bases, cw.slices):
            sig[:, sl] = inj.signal_counts(e * bs.k_unit, bs.w_true, n_toys, rng, ic.mode)
        if stored is not None:
            t = _median_index(stored[0]["A_hat"], stored[0]["converged"])
        else:
            fit_cw = _combine(
                [
                    Shown(**{**bs.__dict__, "b": bs.b + e * bs.k_unit * (bs.w_true - bs.w)})
                    for bs in bases
                ]
            )
            a, _, f = comb.fit(fit_cw, bkg + sig)
            t = _median_index(np.atleast_1d(a), np.atleast_1d(f.converged))
        for bs, sl in zip(bases, cw.slices):
            bs.b = bs.b + e * bs.k_unit * (bs.w_true - bs.w)
            counts = bs.counts.copy()
            counts[bs.blind] = bkg[t, sl] + sig[t, sl]
            sf = np.zeros_like(counts)
            sf[bs.blind] = sig[t, sl]
            shown.append(
                Shown(**{**bs.__dict__, "counts": counts, "sig_counts": sf, "A_inj": e * bs.k_unit})
            )
    else:
        setups = [_refit_setup(cfg, lay, d, mass) for d in names]
        b_fulls = [inj.full_range_mean(w.counts, st) for w, st in setups]
        w_fulls = [signal_template(bs.edges, mass, bs.sigma) for bs in bases]
        ks = [bs.k_unit for bs in bases]
        sts = [st for _, st in setups]
        if stored is not None:
            n_toys = stored[0]["A_hat"].size
            t = _median_index(stored[0]["A_hat"], stored[0]["converged"])
        else:
            n_toys = cfg.plot.displays.refit_toys
            ex = inj.inject_refit_combined(
                sts,
                b_fulls,
                w_fulls,
                ks,
                e,
                [inj.child_seed(ss, i) for i in range(n_toys)],
                mode=ic.mode,
                scale=cw.scale,
                names=names,
                leakage=cfg.fit.signal_leakage,
            )
            t = _median_index(ex.A_hat, ex.converged)
        seed_t = inj.child_seed(ss, t)
        for d, (bs, st, bf, wf, k) in enumerate(zip(bases, sts, b_fulls, w_fulls, ks)):
            sd = inj.child_seed(seed_t, d)
            rt = inj.refit_toys(st, e * k, wf, [sd], b_full=bf, mode=ic.mode)
            bkg, sig = inj.full_range_toy(
                np.random.default_rng(sd), e * k, wf, mode=ic.mode, b_full=bf
            )
            hyper = rt.hyper(0)
            shown.append(
                Shown(
                    **{
                        **bs.__dict__,
                        "counts": (bkg + sig).astype(float),
                        "hyper": hyper,
                        "b": rt.b[0],
                        "C": rt.C[0],
                        "w": _refit_template(cfg, rt, bs),
                        "A_inj": e * k,
                        "sig_counts": sig.astype(float),
                    }
                )
            )
    cw_t = comb.combine(
        [comb.Block(s.counts[s.blind], s.b, s.C, s.w, s.k_unit, s.name) for s in shown],
        scale=cw.scale,
    )
    e_hat, s_e, _ = comb.fit(cw_t)
    for s in shown:
        s.A_hat, s.sigma_A = float(e_hat) * s.k_unit, float(s_e) * s.k_unit
    meta.update(
        toy_index=int(t),
        n_toys=int(n_toys),
        Z_inj=float(z),
        eps2_inj=e,
        A_inj_total=e * ktot,
        eps2_hat=float(e_hat),
        sigma_eps2=float(s_e),
        A_hat_total=float(e_hat) * ktot,
        Z_hat=float(e_hat) / float(s_e),
        Z_q0=float(np.sqrt(max(float(comb.q0(cw_t)), 0.0))),
    )
    if stored is not None:
        meta["A_hat_inject_h5"] = float(stored[0]["A_hat"][t])
    meta["per_dataset"] = {
        s.name: {
            "k_unit": s.k_unit,
            "A_inj": s.A_inj,
            "realised_signal_window": float(s.signal[s.blind].sum()),
            "realised_signal_total": float(s.signal.sum()),
            "A_hat": s.A_hat,
            "sigma_A": s.sigma_A,
        }
        for s in shown
    }
    return shown, meta


def _observed_single(cfg: Config, lay, name: str, mass: float) -> tuple[list[Shown], dict]:
    s = _data_shown(cfg, lay, name, mass)
    _fit(s)
    n = s.counts[s.blind]
    meta = {
        "A_hat": s.A_hat,
        "sigma_A": s.sigma_A,
        "Z_local": _q0_z(n, s.b, s.C, s.w),
        "eps2_hat": _eps2(s.A_hat, s),
        "sigma_eps2": _eps2(s.sigma_A, s),
        "k_unit": s.k_unit,
    }
    return [s], meta


def _observed_combined(
    cfg: Config, lay, mass: float, members: list[str]
) -> tuple[list[Shown], dict]:
    """The combination at ``mass`` of ``members`` (the datasets with a usable fit there, as
    the limit step combines them)."""
    from gprpipe.stats import combine as comb

    shown = [_data_shown(cfg, lay, d, mass) for d in members]
    cw = _combine(shown)
    e_hat, s_e, _ = comb.fit(cw)
    for s in shown:
        s.A_hat, s.sigma_A = float(e_hat) * s.k_unit, float(s_e) * s.k_unit
    meta = {
        "eps2_hat": float(e_hat),
        "sigma_eps2": float(s_e),
        "Z_local": float(np.sqrt(max(float(comb.q0(cw)), 0.0))),
        "A_hat_total": float(e_hat) * cw.k_total,
        "per_dataset": {
            s.name: {"k_unit": s.k_unit, "A_hat": s.A_hat, "sigma_A": s.sigma_A} for s in shown
        },
    }
    return shown, meta


def _scan_row(limit: Path | None, name: str, mass: float) -> dict:
    """The scan.csv numbers of (name, mass) shown in a display's box, from ``limit`` (the
    point's current limit.h5, or None)."""
    if limit is None or not limit.exists():
        return {}
    from gprpipe.steps.limit import read_scan

    a = read_scan(limit).get(name)
    if a is None:
        return {}
    i = np.flatnonzero(same_mass(a["mass_GeV"], mass))
    if not len(i):
        return {}
    keys = ("A_up", "A_exp_med", "eps2_up", "eps2_exp_med", "p0_local", "Z_global")
    row = {f"scan_{k}": _py(a[k][i[0]]) for k in keys}
    return row | {"scan_status": str(a["status"][i[0]])}


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _py(v):
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()]
    if isinstance(v, list | tuple):
        return [_py(x) for x in v]
    if isinstance(v, dict):
        return {k: _py(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _shared_fit_lines(title: str, meta: dict, cols: list[dict]) -> list[str]:
    """The side box's shared-eps^2 fit of a combined display: eps^2, then each dataset's A."""
    lines = [title, f"  eps2 = {meta['eps2_hat']:.3g} +/- {meta['sigma_eps2']:.2g}"]
    for c in cols:
        pd = meta["per_dataset"][c["name"]]
        lines.append(f"  {c['label']}: A = {pd['A_hat']:.1f} +/- {pd['sigma_A']:.1f}")
    return lines


def _box(kind: str, meta: dict, cols: list[dict], cl: float) -> list[str]:
    """The side box's lines (every number also in the sidecar)."""
    c0 = cols[0]
    lines = [f"m = {c0['mass_GeV'] * MEV:g} MeV, window +/-{c0['blind_nsigma']:g} sigma_m"]
    lines += [f"  sigma_m({c['label']}) = {c['sigma_m_GeV'] * MEV:.2f} MeV" for c in cols]
    comb = len(cols) > 1 or "per_dataset" in meta
    if kind == "extraction":
        if comb:
            lines += [
                f"injected: Z = {meta['Z_inj']:g} sigma_ref",
                f"  eps2 = {meta['eps2_inj']:.3g}",
            ]
            for c in cols:
                pd = meta["per_dataset"][c["name"]]
                lines += [
                    f"  {c['label']}: A = {pd['A_inj']:.1f}, realised "
                    f"{pd['realised_signal_window']:.0f} in window"
                ]
            lines += _shared_fit_lines("extracted (shared eps2):", meta, cols)
        else:
            lines += [
                f"injected: Z = {meta['Z_inj']:g} sigma_ref",
                f"  A = {meta['A_inj']:.1f} (eps2 = {meta['eps2_inj']:.3g})",
                f"realised: {meta['realised_signal_window']:.0f} in window, "
                f"{meta['realised_signal_total']:.0f} in all",
                f"extracted: A = {cols[0]['A_hat']:.1f} +/- {cols[0]['sigma_A']:.1f}",
                f"  eps2 = {meta['eps2_hat']:.3g} +/- {meta['sigma_eps2']:.2g}",
            ]
        lines += [
            f"Z = A_hat/sigma_A = {meta['Z_hat']:.2f}",
            f"toy {meta['toy_index']} of {meta['n_toys']} (median A_hat)",
            f"  {meta['source']}",
        ]
        if "ensemble" in meta:
            en = meta["ensemble"]
            if en.get("n_kept"):  # its figures are NaN (null in the sidecar) without toys
                lines += [
                    f"ensemble: <A_hat> = {_fmt(en['A_hat_mean'], '.1f')}",
                    f"  pull mean {_fmt(en['pull_mean'], '+.2f')}, "
                    f"width {_fmt(en['pull_width'], '.2f')}",
                ]
    else:
        if comb:
            lines += _shared_fit_lines("shared eps2 fit:", meta, cols)
        else:
            lines += [
                f"A_hat = {meta['A_hat']:.1f} +/- {meta['sigma_A']:.1f}",
                f"eps2_hat = {meta['eps2_hat']:.3g} +/- {meta['sigma_eps2']:.2g}",
            ]
        lines += [f"Z_local = {meta['Z_local']:.2f}"]
        if "scan_eps2_up" in meta and meta["scan_eps2_up"] is not None:
            lines += [
                f"{cl:g}% CL: eps2 < {meta['scan_eps2_up']:.3g}",
                f"  (expected {meta['scan_eps2_exp_med']:.3g})",
            ]
    return lines


def write_display(
    stem: str,
    kind: str,
    shown: list[Shown],
    meta: dict,
    title: str,
    folder: Path,
    cl: float,
    hidden: dict | None = None,
) -> list[FigureJob | Path]:
    """The JSON sidecar of one display (written here) and its figure (to draw in
    ``plot.formats``: the plot step's figure workers draw it while the next display is
    computed)."""
    from gprpipe.plotting.displays import display_figure

    what = {"extraction": "toy", "observed": "data"}[kind]
    if meta.get("variant") == "conditional":
        what = "data, toy in window"
    cols = [{**column_arrays(s), "name": s.name, "what": what} for s in shown]
    for c, s in zip(cols, shown):
        if hidden is not None and s.name in hidden:  # blinded: data in other windows hidden
            h = hidden[s.name] & ~s.blind if s.sig_counts is not None else hidden[s.name]
            x = 0.5 * (s.edges[1:] + s.edges[:-1])
            near = np.abs(x - s.mass) <= RESID_HALF * s.sigma
            c["counts"] = np.where(h, np.nan, c["counts"])
            c["n"] = np.where(h[near], np.nan, c["n"])
    shared = None
    if len(shown) > 1:
        shared = {
            "eps2_hat": meta["eps2_hat"],
            "sigma_eps2": meta["sigma_eps2"],
            "eps2_inj": meta.get("eps2_inj"),
            "k_units": [s.k_unit for s in shown],
        }
    box = _box(kind, meta, cols, cl)
    side = {
        "kind": kind,
        "title": title,
        "box": box,
        **meta,
        "datasets": [{k: v for k, v in c.items()} for c in cols],
    }
    target = folder / f"{stem}.json"
    atomic_write_text(target, json.dumps(_py(side), indent=1) + "\n")
    return [FigureJob(stem, display_figure, (cols, box, title), {"shared": shared}), target]


def _observed_masses(
    cfg: Config, limit: Path | None, names: list[str]
) -> list[tuple[float, list[str]]]:
    """(mass, the datasets displayed there): ``plot.displays.observed`` for every one; by
    default each one's most significant ok mass, and in a combined run every dataset also
    at the combination's (the columns of its hero figure)."""
    d = cfg.plot.displays
    if d.observed is not None:
        return [(float(m), names) for m in d.observed]
    if limit is None or not limit.exists():
        return []
    from gprpipe.steps.limit import read_scan

    scan = read_scan(limit)
    best: dict[str, float] = {}
    for name in names:
        if (a := scan.get(name)) is None:
            continue
        z = np.where(a["status"] == "ok", a["Z_local"], np.nan)
        if np.isfinite(z).any():
            best[name] = float(a["mass_GeV"][int(np.nanargmax(z))])
    out: dict[float, list[str]] = {}
    if COMBINED in best:
        out[best[COMBINED]] = list(names)
    for name, m in best.items():
        if name not in out.setdefault(m, []):
            out[m].append(name)
    return list(out.items())


def _snap(cfg: Config, name: str, mass: float) -> float | None:
    """``mass`` if it is a test mass of ``name`` (or a combined mass), else None."""
    ms = cfg.combined_masses() if name == COMBINED else cfg.test_masses(name)
    if not len(ms):
        return None
    i = int(np.argmin(np.abs(ms - mass)))
    return float(ms[i]) if same_mass(ms[i], mass) else None


def display_plots(cfg: Config, lay, drawn: AbstractSet[Path]) -> list[FigureJob | Path]:
    """Every display ``plot.displays`` asks for: the sidecars written and the figures to
    draw (see :func:`write_display`). ``drawn``: the point's step outputs of this config
    (:func:`gprpipe.steps.plot.run`); an inject.h5 or limit.h5 of other settings is not
    shown (the extraction displays then draw their own toys; the boxes leave out the scan's
    numbers; the default observed masses need a current limit.h5)."""
    inject = lay.inject if lay.inject in drawn else None
    limit = lay.limit if lay.limit in drawn else None
    d = cfg.plot.displays
    cl = 100 * (1 - cfg.limit.alpha)
    names = list(cfg.scanned())
    if len(cfg.combined_masses()):
        names.append(COMBINED)
    if d.datasets is not None:
        names = [n for n in names if n in d.datasets]
    written: list[FigureJob | Path] = []
    if not lay.fit.exists():
        return written
    ext_masses = d.masses if d.masses is not None else cfg.inject.masses
    for name in names:
        for mass in ext_masses:
            m = _in_range(cfg, name, float(mass))
            if m is None:
                continue
            for z in d.z:
                for variant in d.variants:
                    try:
                        if name == COMBINED:
                            shown, meta = _extraction_combined(
                                cfg, lay, m, float(z), variant, inject
                            )
                        else:
                            shown, meta = _extraction_single(
                                cfg, lay, name, m, float(z), variant, inject
                            )
                    except _NoToy:
                        print(
                            f"notice: plot.displays: no {variant} toy of {name} at "
                            f"{m * MEV:g} MeV, z = {z:g} converged; no extraction display of it"
                        )
                        continue
                    meta["variant"] = variant
                    A = float(meta["A_inj_total" if name == COMBINED else "A_inj"])
                    row = _inject_row(inject, name, m, float(z), A)
                    if row is not None and bool(row.get("refit_gp")) == (variant == "refit"):
                        meta["ensemble"] = row
                    title = (
                        f"{_label(cfg, name)}: {variant} toy, m = {m * MEV:g} MeV, Z_inj = {z:g}"
                    )
                    stem = f"display_extract_{name}_{m * MEV:g}MeV_z{z:g}_{variant}"
                    hidden = None
                    if cfg.base.blind and variant == "conditional":
                        from gprpipe.config.checks import blinded_bins

                        hidden = {s.name: blinded_bins(cfg, s.name, s.edges) for s in shown}
                    written += write_display(
                        stem, "extraction", shown, meta, title, lay.plots, cl, hidden
                    )
    if cfg.base.blind:  # observed displays show the blind windows' counts
        if d.observed:
            print("notice: plot.displays.observed: a blinded run draws no observed display")
        return written
    from gprpipe.steps.combine import fitted_rows

    fits: dict = {}
    for mass, shown_names in _observed_masses(cfg, limit, names):
        if all(_snap(cfg, name, mass) is None for name in shown_names):
            print(f"notice: plot.displays.observed {mass:g} GeV: no test mass; no display of it")
        for name in shown_names:
            m = _snap(cfg, name, mass)
            if m is None:
                continue
            # the datasets with a usable fit there (one failed fit stopped the plot step)
            usable = [d for d, i in fitted_rows(cfg, lay.fit, m, fits).items() if i is not None]
            if (name == COMBINED and len(usable) < 2) or (name != COMBINED and name not in usable):
                print(
                    f"notice: plot.displays.observed: no usable GP fit of {name} at "
                    f"{m * MEV:g} MeV; no observed display of it"
                )
                continue
            if name == COMBINED:
                shown, meta = _observed_combined(cfg, lay, m, usable)
            else:
                shown, meta = _observed_single(cfg, lay, name, m)
            meta.update(_scan_row(limit, name, m))
            title = f"{_label(cfg, name)}: observed data, m = {m * MEV:g} MeV"
            if meta.get("scan_status", "ok") != "ok":  # as the GP-fit figures mark it
                title += f" [{short_status(meta['scan_status'])}]"
            written += write_display(
                f"display_observed_{name}_{m * MEV:g}MeV",
                "observed",
                shown,
                meta,
                title,
                lay.plots,
                cl,
            )
    return written


def short_status(status: str, most: int = 60) -> str:
    """A row's status as a figure title shows it: its first two clauses, at most ``most``
    characters (a whole failure sentence made a display three times as wide as its
    panels; the sidecar JSON keeps it whole)."""
    short = ": ".join(str(status).split(": ")[:2])
    return short if len(short) <= most else short[: most - 3] + "..."


def _in_range(cfg: Config, name: str, mass: float) -> float | None:
    if name == COMBINED:
        n = sum(mass_within(mass, *cfg.datasets[x].range) for x in cfg.scanned())
        return mass if n >= 2 else None
    lo, hi = cfg.datasets[name].range
    return mass if mass_within(mass, lo, hi) else None
