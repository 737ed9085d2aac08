"""Comparison of eps^2 limits between runs or grid points: overlay with ratio panels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from gprpipe.plotting.style import label
from gprpipe.plotting.suite import MEV
from gprpipe.units import matching_masses


def compare_limits_figure(
    mass: Sequence[np.ndarray],
    observed: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    title: str,
    ylabel: str = r"upper limit on $\epsilon^2$",
):
    """Observed (solid) and expected median (dashed) limits of each curve (mass in GeV),
    with two ratio panels: observed and expected, each relative to the first curve at the
    masses both have. With a blinded curve (no observed limit) no curve is drawn observed:
    a comparison shows observed limits only of unblinded results, as its ratios."""
    fig, (ax, r_obs, r_exp) = plt.subplots(
        3, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1, 1]}
    )
    m0 = np.asarray(mass[0], dtype=float)
    blinded = [lab for obs, lab in zip(observed, labels) if not np.isfinite(obs).any()]
    for i, (m, obs, exp, lab) in enumerate(zip(mass, observed, expected, labels)):
        c = "k" if i == 0 else f"C{i - 1}"
        x = np.asarray(m) * MEV
        if blinded:  # a blinded run: no observed curve, and the legend says why
            why = " (blinded)" if lab in blinded else ""
            ax.plot(x, exp, "--", color=c, lw=1.1, label=f"{lab} expected{why}")
        else:
            ax.plot(x, obs, "-", color=c, lw=1.5, label=f"{lab} observed")
            ax.plot(x, exp, "--", color=c, lw=1.1, label=f"{lab} expected")
        if i == 0:
            continue
        ia, ib = matching_masses(m0, np.asarray(m))
        xm = m0[ia] * MEV
        r_obs.plot(xm, np.asarray(obs)[ib] / np.asarray(observed[0])[ia], "-", color=c, lw=1.3)
        r_exp.plot(xm, np.asarray(exp)[ib] / np.asarray(expected[0])[ia], "--", color=c, lw=1.3)
    if blinded:
        r_obs.text(
            0.5,
            0.5,
            f"no observed curve or ratio with {', '.join(blinded)} (blinded)",
            transform=r_obs.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="0.4",
        )
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * (hi / lo) ** 0.3)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=9, ncol=2, loc="upper right")
    label(ax, title)
    for r, what in ((r_obs, "observed"), (r_exp, "expected")):
        r.axhline(1.0, color="k", lw=0.8)
        r.set_ylabel(f"{what}\n/ {labels[0]}"[:40], fontsize=9)
    r_exp.set_xlabel(r"$m_{A'}$ [MeV]")
    fig.align_ylabels()
    return fig


def curves_figure(curves: Sequence[Any], title: str) -> Figure:
    """:func:`compare_limits_figure` of curves with ``mass``, ``observed``, ``expected`` and
    ``label`` (the curves of a ``results.compare`` comparison)."""
    return compare_limits_figure(
        [c.mass for c in curves],
        [c.observed for c in curves],
        [c.expected for c in curves],
        [c.label for c in curves],
        title=title,
    )
