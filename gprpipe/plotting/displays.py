"""Reviewer display figures: arrays in, a figure out (the plot step reads files and saves).

A column per dataset: the full-range context panel (log scale, GP mean, blind window),
the blind-window panel zoomed to the window +/- 0.5 sigma_m (data or toy, GP mean with its
+/- 1 sigma band, GP plus the fitted signal), and the residual panel over +/- 5 sigma_m
(data - GP with the GP uncertainty, the injected (truth) and extracted Gaussians drawn
beyond the window, the realised signal counts of a toy). With several datasets a shared
bump panel shows every dataset's excess in eps^2 units, (n - b) / (K_d dm / sigma_d)
against (m_ee - m) / sigma_d, where one shared eps^2 is one Gaussian. A side box lists
the numbers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.gridspec import GridSpec

from gprpipe.plotting.style import COMPACT_RC, label

MEV = 1e3
SQ2PI = np.sqrt(2 * np.pi)


def _gauss(u):
    return np.exp(-0.5 * np.asarray(u) ** 2) / SQ2PI


def _window_span(ax, c, unit=MEV):
    lo, hi = c["window_GeV"]
    ax.axvspan(lo * unit, hi * unit, color="C1", alpha=0.12, linewidth=0)


def _stairs_shown(ax, counts, e, **kw) -> None:
    """``ax.stairs`` over the runs of shown bins; the hidden ones (NaN: the blind windows of
    a blinded display) are shaded, not drawn as drops to the axis."""
    counts = np.asarray(counts, dtype=float)
    shown = np.isfinite(counts)
    if shown.all():
        ax.stairs(counts, e, **kw)
        return
    edges = np.flatnonzero(np.diff(np.r_[False, shown, False].astype(int)))
    for k, (i, j) in enumerate(zip(edges[::2], edges[1::2])):
        part = {**kw, "baseline": None} | ({} if k == 0 else {"label": None})
        ax.stairs(counts[i:j], e[i : j + 1], **part)
    gaps = np.flatnonzero(np.diff(np.r_[False, ~shown, False].astype(int)))
    for k, (i, j) in enumerate(zip(gaps[::2], gaps[1::2])):
        ax.axvspan(e[i], e[j], color="0.85", lw=0, label=None if k else "hidden (blinded)")


def _context(ax, c) -> None:
    e = np.asarray(c["edges"]) * MEV
    _stairs_shown(ax, c["counts"], e, color="k", lw=0.8, label=c.get("what", "data"))
    x = 0.5 * (e[1:] + e[:-1])
    ax.plot(x, c["gp_full"], "C0-", lw=1.0, label="GP mean")
    _window_span(ax, c)
    ax.set_yscale("log")
    cnt = np.asarray(c["counts"], dtype=float)  # NaN: bins a blinded display hides
    pos = cnt > 0
    if pos.any():
        ax.set_ylim(max(0.5, np.min(cnt[pos]) * 0.5), np.max(cnt[pos]) * 3)
    # x range: first filled bin to the last with >= 1e-4 of the peak (sparse tails cut)
    nz = np.flatnonzero(pos)
    hi = np.flatnonzero(cnt >= 1e-4 * np.max(cnt[pos])) if pos.any() else nz
    ax.set_xlim(e[nz[0]] if len(nz) else e[0], e[hi[-1] + 1] if len(hi) else e[-1])
    ax.set_ylabel("Events / bin")
    ax.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    ax.set_title(c["label"], fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper right")


def _zoom(ax, c) -> None:
    z = np.asarray(c["zoom"], dtype=bool)
    x = np.asarray(c["x"])[z] * MEV
    n, b, e = (np.asarray(c[k])[z] for k in ("n", "b", "b_err"))
    bw = c["bin_width"] * MEV
    ax.fill_between(
        x, b - e, b + e, color="C0", alpha=0.3, linewidth=0, step="mid", label=r"GP $\pm1\sigma$"
    )
    ax.step(x, b, "C0-", where="mid", lw=1.2, label="GP mean")
    u = (np.asarray(c["x"])[z] - c["mass_GeV"]) / c["sigma_m_GeV"]
    sig = c["A_hat"] * c["bin_width"] / c["sigma_m_GeV"] * _gauss(u)
    ax.step(x, b + sig, "C3-", where="mid", lw=1.2, label=r"GP + $\hat{A}$ signal")
    ax.errorbar(x, n, yerr=np.sqrt(np.maximum(n, 1)), fmt="k.", ms=4, label=c.get("what", "data"))
    _window_span(ax, c)
    ax.set_xlim(x.min() - bw / 2, x.max() + bw / 2)
    ax.set_ylabel("Events / bin")
    ax.legend(frameon=False, loc="upper right")
    ax.text(
        0.02,
        0.04,
        rf"blind window $\pm{c['blind_nsigma']:g}\sigma_m$ (+0.5$\sigma_m$)",
        transform=ax.transAxes,
        fontsize=8,
        color="C1",
    )


def _residual(ax, c) -> None:
    x = np.asarray(c["x"])
    n, b, e = (np.asarray(c[k]) for k in ("n", "b", "b_err"))
    err = np.sqrt(np.maximum(b, 1) + e**2)
    ax.fill_between(
        x * MEV, -e, e, color="C0", alpha=0.3, linewidth=0, step="mid", label=r"GP $\pm1\sigma$"
    )
    ax.errorbar(x * MEV, n - b, yerr=err, fmt="k.", ms=3, label="data - GP")
    if c.get("signal") is not None:
        ax.step(x * MEV, c["signal"], where="mid", color="0.5", lw=0.9, label="realised signal")
    fine = np.linspace(x.min(), x.max(), 400)
    u = (fine - c["mass_GeV"]) / c["sigma_m_GeV"]
    per_bin = c["bin_width"] / c["sigma_m_GeV"] * _gauss(u)
    if c["A_inj"] is not None:
        ax.plot(fine * MEV, c["A_inj"] * per_bin, "C2--", lw=1.5, label="injected (truth)")
    ax.plot(fine * MEV, c["A_hat"] * per_bin, "C3-", lw=1.5, label="extracted")
    ax.fill_between(
        fine * MEV,
        (c["A_hat"] - c["sigma_A"]) * per_bin,
        (c["A_hat"] + c["sigma_A"]) * per_bin,
        color="C3",
        alpha=0.15,
        linewidth=0,
    )
    ax.axhline(0, color="C0", lw=0.8)
    _window_span(ax, c)
    ax.set_xlim(x.min() * MEV, x.max() * MEV)
    ax.set_ylabel("Data - GP")
    ax.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    ax.legend(
        frameon=False,
        fontsize=7,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=3,
        borderaxespad=0.1,
    )


def _shared_bump(ax, cols, shared) -> None:
    markers = "osD^v"
    u_all = []
    for i, (c, k) in enumerate(zip(cols, shared["k_units"])):
        x = np.asarray(c["x"])
        n, b, e = (np.asarray(c[key]) for key in ("n", "b", "b_err"))
        norm = k * c["bin_width"] / c["sigma_m_GeV"]
        u = (x - c["mass_GeV"]) / c["sigma_m_GeV"]
        u_all.append(u)
        ax.errorbar(
            u + 0.04 * (i - (len(cols) - 1) / 2),
            (n - b) / norm,
            yerr=np.sqrt(np.maximum(b, 1) + e**2) / norm,
            fmt=markers[i % 5],
            ms=3.5,
            color=f"C{i + 4}",
            label=c["label"],
            alpha=0.8,
        )
    u = np.linspace(min(a.min() for a in u_all), max(a.max() for a in u_all), 400)
    if shared.get("eps2_inj") is not None:
        ax.plot(u, shared["eps2_inj"] * _gauss(u), "C2--", lw=1.6, label=r"injected $\epsilon^2$")
    ax.plot(u, shared["eps2_hat"] * _gauss(u), "C3-", lw=1.6, label=r"fitted shared $\epsilon^2$")
    ax.fill_between(
        u,
        (shared["eps2_hat"] - shared["sigma_eps2"]) * _gauss(u),
        (shared["eps2_hat"] + shared["sigma_eps2"]) * _gauss(u),
        color="C3",
        alpha=0.15,
        linewidth=0,
    )
    # y range set by the fitted/injected Gaussian and its uncertainty (imprecise points of a
    # dataset with little information may leave the panel)
    top = max(shared["eps2_hat"], shared.get("eps2_inj") or 0.0, 2 * shared["sigma_eps2"])
    ax.set_ylim(-1.5 * top * _gauss(0), 2.5 * top * _gauss(0))
    blind_nsigma = cols[0]["blind_nsigma"]
    ax.axvspan(-blind_nsigma, blind_nsigma, color="C1", alpha=0.12, linewidth=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(u.min(), u.max())
    ax.set_xlabel(r"$(m(e^+e^-) - m_{A'}) / \sigma_m$")
    ax.set_ylabel(r"excess / ($K_d\,\Delta m / \sigma_m$)  [$\epsilon^2$]")
    ax.set_title(r"shared bump: every dataset's excess in $\epsilon^2$ units", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper right", ncol=2)


def display_figure(cols: list[dict], box: list[str], title: str, *, shared: dict | None = None):
    """The display: a column of panels per dataset, a shared bump panel when ``shared``
    (``eps2_hat``, ``sigma_eps2``, ``eps2_inj`` or None, ``k_units``) is given, a side box.
    """
    with plt.rc_context(COMPACT_RC):
        return _display_figure(cols, box, title, shared)


def _display_figure(cols, box, title, shared):
    nd = len(cols)
    heights = [2.0, 3.0, 2.2] + ([2.6] if shared else [])
    fig = plt.figure(figsize=(4.6 * nd + 3.0, sum(heights) * 1.25 + 0.6))
    gs = GridSpec(
        len(heights),
        nd + 1,
        figure=fig,
        height_ratios=heights,
        width_ratios=[3.0] * nd + [1.45],
        hspace=0.42,
        wspace=0.28,
    )
    for j, c in enumerate(cols):
        _context(fig.add_subplot(gs[0, j]), c)
        _zoom(fig.add_subplot(gs[1, j]), c)
        _residual(fig.add_subplot(gs[2, j]), c)
    if shared:
        _shared_bump(fig.add_subplot(gs[3, :nd]), cols, shared)
    bx = fig.add_subplot(gs[:, nd])
    bx.axis("off")
    bx.text(
        0.0,
        1.0,
        "\n".join(box),
        transform=bx.transAxes,
        va="top",
        ha="left",
        fontsize=9,
        family="monospace",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"},
    )
    fig.suptitle(title, fontsize=13, fontweight="bold", x=0.02, ha="left")
    label(bx, "")  # the experiment label and, for a blinded run, BLINDED: over the side box
    return fig
