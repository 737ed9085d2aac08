"""The scan figures: Brazil bands (A and eps^2), p0 and Z, GP fits, GP hyperparameters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from gprpipe.config.schema import Config
from gprpipe.plotting.style import BAND_1, BAND_2, label, save
from gprpipe.stats.quality import has_result, is_flagged
from gprpipe.stats.significance import z_from_p

MEV = 1e3
FLAG_STYLE = {"marker": "o", "mfc": "none", "mec": "C3", "ls": "none", "ms": 6, "mew": 1.3}
FLAG_LABEL = "flagged (background model)"


def flag_mask(status) -> np.ndarray:
    """Rows whose status carries a background-model quality flag."""
    return np.array([is_flagged(s) for s in np.asarray(status).astype(str)], dtype=bool)


def result_mask(status) -> np.ndarray:
    """Rows with numbers (``ok`` or flagged)."""
    return np.array([has_result(s) for s in np.asarray(status).astype(str)], dtype=bool)


def _mark_flagged(ax, m, y, flagged) -> None:
    if flagged is not None and np.any(flagged):
        ax.plot(np.asarray(m)[flagged], np.asarray(y)[flagged], label=FLAG_LABEL, **FLAG_STYLE)


def brazil_figure(mass, obs, bands, *, ylabel: str, title: str, other=None, flagged=None):
    """Observed limit, expected median and 1/2-sigma bands vs mass (MeV); ``flagged``
    masses (background-model quality flags) are circled in red."""
    m = np.asarray(mass) * MEV
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.fill_between(m, bands[0], bands[4], color=BAND_2, label=r"Expected $\pm 2\sigma$",
                    step=None, linewidth=0)
    ax.fill_between(m, bands[1], bands[3], color=BAND_1, label=r"Expected $\pm 1\sigma$",
                    linewidth=0)
    ax.plot(m, bands[2], "k--", lw=1.2, label="Expected median")
    ax.plot(m, obs, "k-", lw=1.6, label="Observed")
    _mark_flagged(ax, m, obs, flagged)
    for name, (mm, yy) in (other or {}).items():
        ax.plot(np.asarray(mm) * MEV, yy, lw=1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [MeV]")
    ax.set_ylabel(ylabel)
    ax.set_xlim(m.min(), m.max())
    ax.legend(frameon=False, fontsize=10, loc="best")
    label(ax, title)
    return fig


def significance_figure(mass, p_local, p_global, title: str, flagged=None):
    """Local and global p0 and Z vs mass; ``flagged`` masses are circled in red (they have
    no global p-value: they do not count as a discovery)."""
    m = np.asarray(mass) * MEV
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    a1.plot(m, p_local, "b-", label="local $p_0$")
    _mark_flagged(a1, m, p_local, flagged)
    a1.plot(m, p_global, "r-", label="global $p_0$ (Sidak, $N_\\mathrm{eff}$)")
    a1.set_yscale("log")
    a1.set_ylim(min(np.nanmin(p_local) * 0.5, 1e-3), 1.0)
    for z in (1, 2, 3, 4, 5):
        a1.axhline(norm.sf(z), color="gray", lw=0.6, ls=":")
        a1.text(m.max(), norm.sf(z), f" {z}$\\sigma$", va="center", fontsize=8, color="gray")
    a1.set_ylabel("$p_0$")
    a1.legend(frameon=False, fontsize=10)
    a2.plot(m, z_from_p(p_local), "b-", label="local Z")
    _mark_flagged(a2, m, z_from_p(p_local), flagged)
    a2.plot(m, z_from_p(p_global), "r-", label="global Z")
    a2.axhline(0, color="gray", lw=0.6)
    a2.set_ylabel(r"Z [$\sigma$]")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    a2.legend(frameon=False, fontsize=10)
    label(a1, title)
    return fig


def hyper_figure(fit: dict[str, np.ndarray], title: str, gof_p_min: float | None = None):
    """GP hyperparameters, LML and the goodness-of-fit p-value vs mass; flagged masses
    circled in red, non-converged fits as crosses."""
    m = fit["mass"] * MEV
    ok = fit["gp_converged"].astype(bool)
    flagged = flag_mask(fit["status"])
    panels = [("gp_length_scale", "length scale [ln-mass]"), ("gp_amplitude", "amplitude"),
              ("gp_lml", "log marginal lik.")]
    if "gof_p" in fit:
        panels.append(("gof_p", "GoF $p$ near window"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.7 * len(panels)), sharex=True)
    for ax, (key, ylab) in zip(axes, panels):
        ax.plot(m[ok], fit[key][ok], "o", ms=3, color="C0", label="converged")
        if (~ok).any():
            ax.plot(m[~ok], fit[key][~ok], "x", ms=6, color="C3", label="not converged")
        _mark_flagged(ax, m, fit[key], flagged)
        ax.set_ylabel(ylab)
    axes[1].set_yscale("log")
    if "gof_p" in fit:
        axes[-1].set_yscale("log")
        if gof_p_min:
            axes[-1].axhline(gof_p_min, color="C3", lw=0.8, ls="--", label="flag threshold")
        axes[-1].legend(frameon=False, fontsize=8)
    axes[0].legend(frameon=False, fontsize=9)
    axes[-1].set_xlabel(r"$m_{A'}$ [MeV]")
    label(axes[0], title)
    return fig


def gp_fit_figure(edges, counts, mass, sigma, hyper, blind_nsigma, train_mask, title: str):
    """Data, GP mean with its 1-sigma band around the test mass, blind window, pulls."""
    from gprpipe.stats.gp import predict_counts

    x = 0.5 * (edges[1:] + edges[:-1])
    near = (x > mass - 12 * sigma) & (x < mass + 12 * sigma) & (x > 0)
    b, C = predict_counts(x[train_mask], counts[train_mask], x[near], hyper)
    err = np.sqrt(np.clip(np.diag(C), 0, None))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1]})
    xm = x[near] * MEV
    a1.errorbar(xm, counts[near], yerr=np.sqrt(counts[near]), fmt="k.", ms=3, label="data")
    a1.plot(xm, b, "C0-", label="GP background")
    a1.fill_between(xm, b - err, b + err, color="C0", alpha=0.3, linewidth=0)
    lo, hi = (mass - blind_nsigma * sigma) * MEV, (mass + blind_nsigma * sigma) * MEV
    for ax in (a1, a2):
        ax.axvspan(lo, hi, color="C1", alpha=0.15)
    a1.set_yscale("log")
    a1.set_ylabel("Events / bin")
    a1.legend(frameon=False, fontsize=10, title=f"blind window $\\pm{blind_nsigma:g}\\sigma$")
    pull = (counts[near] - b) / np.sqrt(np.clip(b + err**2, 1e-9, None))
    a2.plot(xm, pull, "k.", ms=3)
    a2.axhline(0, color="C0")
    a2.set_ylim(-4, 4)
    a2.set_ylabel("(data-GP)/$\\sigma$")
    a2.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    label(a1, f"{title}, m = {mass * MEV:g} MeV")
    return fig


def _gp_masses(cfg: Config, masses: np.ndarray) -> list[float]:
    if cfg.plot.masses:
        wanted = cfg.plot.masses
    else:
        n = len(masses)
        wanted = [masses[int(q * (n - 1))] for q in (0.1, 0.5, 0.9)] if n else []
    out = []
    for w in wanted:
        i = int(np.argmin(np.abs(masses - w)))
        if len(masses) and masses[i] not in out:
            out.append(float(masses[i]))
    return out


def scan_plots(cfg: Config, lay, formats: Sequence[str]) -> list[Path]:
    """Every scan figure the point's outputs allow."""
    from gprpipe.stats.window import blind_mask
    from gprpipe.steps.fit import read_fit, resolution
    from gprpipe.steps.limit import BAND_COLS, read_scan
    from gprpipe.steps.load import read_load

    written: list[Path] = []
    out = lay.plots
    if lay.limit.exists():
        scan = read_scan(lay.limit)
        for name, a in scan.items():
            title = cfg.datasets[name].label if name in cfg.datasets else "Combined"
            ok = result_mask(a["status"])
            if not ok.any():
                continue
            m = a["mass_GeV"][ok]
            flagged = flag_mask(a["status"])[ok]
            for q, ylab in (("A", "95% CL upper limit on signal yield $A$"),
                            ("eps2", r"95% CL upper limit on $\epsilon^2$")):
                obs = a[f"{q}_up"][ok]
                bands = [a[f"{q}_exp_{b}"][ok] for b in BAND_COLS]
                ylab = ylab.replace("95", f"{100 * (1 - cfg.limit.alpha):g}")
                fig = brazil_figure(m, obs, bands, ylabel=ylab, title=title, flagged=flagged)
                written += save(fig, out, f"brazil_{q}_{name}", formats)
            fig = significance_figure(m, a["p0_local"][ok], a["p0_global"][ok], title,
                                      flagged=flagged)
            written += save(fig, out, f"significance_{name}", formats)
    if lay.fit.exists():
        from gprpipe.stats.gp import GPHyper

        for name in cfg.scanned():
            try:
                fit = read_fit(lay.fit, name)
            except KeyError:
                continue
            title = cfg.datasets[name].label or name
            written += save(hyper_figure(fit, title, cfg.fit.gof_p_min), out,
                            f"gp_hyper_{name}", formats)
            counts, edges = read_load(lay.load, name)
            x = 0.5 * (edges[1:] + edges[:-1])
            ds = cfg.datasets[name]
            excl = cfg.fit.train_exclude_nsigma or cfg.fit.blind_nsigma
            for mass in _gp_masses(cfg, fit["mass"]):
                i = int(np.argmin(np.abs(fit["mass"] - mass)))
                if not has_result(fit["status"][i]):
                    continue
                s = float(resolution(ds, mass))
                train = ~blind_mask(x, mass, s, excl) & (x > 0)
                if ds.data_range is not None:
                    train &= (x >= ds.data_range[0]) & (x <= ds.data_range[1])
                hyper = GPHyper(float(fit["gp_amplitude"][i]), float(fit["gp_length_scale"][i]),
                                float(fit["gp_lml"][i]), bool(fit["gp_converged"][i]), 0, "")
                status = str(fit["status"][i])
                fig = gp_fit_figure(edges, counts, mass, s, hyper, cfg.fit.blind_nsigma, train,
                                    title if status == "ok" else f"{title} [{status}]")
                written += save(fig, out, f"gpfit_{name}_{mass * MEV:g}MeV", formats)
    return written
