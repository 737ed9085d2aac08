"""Combination and projection figures: information fractions, signal allocation, reach."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from gprpipe.plotting.style import compact, label, marker
from gprpipe.plotting.suite import one_mass_box

MEV = 1e3


@compact
def information_figure(mass, labels: list[str], fractions, z_need, title: str):
    """Stacked information fractions vs mass and the per-dataset Z for a combined 5 sigma
    (of one mass: a stacked box 1% of the mass wide either side, and points; the stack
    over one x had no width: an empty figure, a review)."""
    m = np.asarray(mass) * MEV
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    f = np.nan_to_num(np.asarray(fractions, dtype=float))
    if len(m) == 1:
        a1.stackplot(one_mass_box(float(m[0])), np.repeat(f, 2, axis=1), labels=labels, alpha=0.8)
    else:
        a1.stackplot(m, f, labels=labels, alpha=0.8)
    a1.set_ylim(0, 1.25)
    a1.set_ylabel(r"information fraction $\sigma_d^{-2} / \sum \sigma^{-2}$")
    a1.legend(frameon=False, fontsize=9, loc="upper right", ncol=len(labels))
    for i, lab in enumerate(labels):
        a2.plot(m, z_need[i], "-", lw=1.4, label=lab, color=f"C{i}", marker=marker(len(m)), ms=4)
    a2.axhline(5, color="gray", lw=0.8, ls=":")
    a2.set_ylim(0, 6.2)
    a2.set_ylabel(r"$Z_d$ for a combined $5\sigma$")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    a2.legend(frameon=False, fontsize=9, loc="center right", ncol=len(labels))
    label(a1, title)
    return fig


@compact
def allocation_figure(masses, labels: list[str], yields, z_need, eps2, title: str):
    """Signal events per dataset at the combined 5 sigma eps^2, at each chosen mass."""
    y = np.nan_to_num(np.asarray(yields, dtype=float))
    zn = np.asarray(z_need, dtype=float)
    n_m, n_d = y.shape[1], y.shape[0]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * n_m + 2), 5))
    x = np.arange(n_m)
    width = 0.8 / n_d
    for i, lab in enumerate(labels):
        bars = ax.bar(x + (i - (n_d - 1) / 2) * width, y[i], width, label=lab, color=f"C{i}")
        for b, z in zip(bars, zn[i]):
            if np.isfinite(z) and b.get_height() > 0:
                ax.text(
                    b.get_x() + b.get_width() / 2,
                    b.get_height(),
                    f"Z={z:.1f}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(
        x, [f"{m * MEV:g} MeV\n" + rf"$\epsilon^2$={e:.2g}" for m, e in zip(masses, eps2)]
    )
    ax.set_yscale("log")
    ax.set_ylim(max(1.0, np.nanmin(np.where(y > 0, y, np.nan)) * 0.3), np.nanmax(y) * 8)
    ax.set_ylabel(r"signal events at the combined $5\sigma$ $\epsilon^2$")
    ax.legend(frameon=False, fontsize=9, loc="upper right")
    label(ax, title)
    return fig


@compact
def reach_figure(
    mass, labels: list[str], now, projected, comb_now, comb_proj, factors, title: str, comb_fit=None
):
    """Expected eps^2 limits now (dashed) and projected (solid), per dataset and combined
    (points on them where the masses are few: lines of one mass were not drawn)."""
    m = np.asarray(mass) * MEV
    mk: dict[str, Any] = {"marker": marker(len(m)), "ms": 4}
    fig, ax = plt.subplots(figsize=(8, 6))
    for i, lab in enumerate(labels):
        ax.plot(m, now[i], "--", lw=1.0, color=f"C{i}", alpha=0.8, label=f"{lab}, recorded",
                mfc="white", **mk)  # fmt: skip
        ax.plot(m, projected[i], "-", lw=1.5, color=f"C{i}", label=f"{lab} x{factors[i]:g}", **mk)
    ax.plot(m, comb_now, "k--", lw=1.2, label="combined (1/sigma^2), recorded", mfc="white", **mk)
    if comb_fit is not None:
        ax.plot(m, comb_fit, "o", color="0.3", ms=3, label="joint fit (scan.csv), recorded")
    ax.plot(m, comb_proj, "k-", lw=2.2, label="combined (1/sigma^2), projected", **mk)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [MeV]")
    ax.set_ylabel(r"expected upper limit on $\epsilon^2$ (median)")
    label(ax, title)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    return fig
