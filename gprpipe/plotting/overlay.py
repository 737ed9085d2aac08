"""eps^2 limits of every dataset and of the combination on one figure, and the combined
Brazil band with the single-dataset observed limits overlaid."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gprpipe.plotting.style import label, legend, marker
from gprpipe.plotting.suite import (
    MEV,
    NO_OBSERVED_LABEL,
    NO_RESULT_LABEL,
    brazil_figure,
    curve,
    flag_mask,
    gapped,
    left_out_mask,
    mark_failed,
    mark_flagged,
    mark_no_observed,
)
from gprpipe.results.schema import BAND_COLS, COMBINED
from gprpipe.units import MASS_TOL_GEV


def dataset_colours(scan: dict[str, dict[str, np.ndarray]]) -> dict[str, str]:
    """One colour per dataset, the same in every overlay (the combination is black)."""
    return {n: f"C{i}" for i, n in enumerate(n for n in scan if n != COMBINED)}


def eps2_overlay_figure(
    scan: dict[str, dict[str, np.ndarray]],
    labels: dict[str, str],
    title: str,
    cl: float,
    blinded: bool = False,
):
    """Observed (solid) and expected median (dashed) eps^2 limits of every dataset; the
    combination in black; flagged masses circled (blinded: expected only, flags on it)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = dataset_colours(scan)
    for level, (name, a) in enumerate(scan.items()):
        ok, a = gapped(a)
        if not ok.any():
            continue
        m = a["mass_GeV"] * MEV
        if name == COMBINED:
            c, lw, lab = "k", 2.0, "Combined"
        else:
            c, lw, lab = colours[name], 1.4, labels.get(name, name)
        mk = marker(len(m))
        shown = a["eps2_exp_med" if blinded else "eps2_up"]  # where the flags are circled
        if not blinded:
            curve(ax, m, shown, "-", color=c, lw=lw, marker=mk, ms=4, label=f"{lab} observed")
        mark_flagged(
            ax, m, shown, flag_mask(a["status"]) & ok, left_out_mask(a["status"]) & ok, f"{lab} "
        )
        mark_failed(ax, m, ~ok, c, f"{lab}: {NO_RESULT_LABEL}", level)  # (not the range's end)
        if not blinded:
            no_obs = ok & ~np.isfinite(a["eps2_up"])
            mark_no_observed(ax, m, no_obs, c, f"{lab}: {NO_OBSERVED_LABEL}", level)
        curve(
            ax,
            m,
            a["eps2_exp_med"],
            "--",
            color=c,
            lw=lw * 0.8,
            marker=mk,
            ms=3,
            mfc="white",
            label=f"{lab} expected",
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [MeV]")
    ax.set_ylabel(rf"{cl:g}% CL upper limit on $\epsilon^2$")
    legend(ax)
    label(ax, title)
    return fig


def observed_figure(
    scan: dict[str, dict[str, np.ndarray]],
    labels: dict[str, str],
    title: str,
    cl: float,
    quantity: str,
):
    """Observed limits only (no bands) of every dataset and the combination: ``eps2``, or
    ``A`` (single datasets: a combined yield is a sum over datasets)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = dataset_colours(scan)
    for level, (name, a) in enumerate(scan.items()):
        # a gap where only the observed toy limit is unresolved (the line was drawn
        # straight across such masses, a review)
        ok, b = gapped(a)
        if not ok.any() or (quantity == "A" and name == COMBINED):
            continue
        m = a["mass_GeV"] * MEV
        if name == COMBINED:
            c, lw, lab = "k", 2.0, "Combined"
        else:
            c, lw, lab = colours[name], 1.5, labels.get(name, name)
        shown = b[f"{quantity}_up"]
        curve(
            ax, m, shown, "-", color=c, lw=lw, marker=marker(len(m)), ms=4, label=f"{lab} observed"
        )
        fl, lo = flag_mask(a["status"]) & ok, left_out_mask(a["status"]) & ok
        mark_flagged(ax, m, shown, fl, lo, f"{lab} ")  # as in the other scan figures
        mark_failed(ax, m, ~ok, c, f"{lab}: {NO_RESULT_LABEL}", level)  # (not the range's end)
        no_obs = ok & ~np.isfinite(shown)
        mark_no_observed(ax, m, no_obs, c, f"{lab}: {NO_OBSERVED_LABEL}", level)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [MeV]")
    what = r"$\epsilon^2$" if quantity == "eps2" else "signal yield $A$"
    ax.set_ylabel(rf"{cl:g}% CL upper limit on {what}")
    legend(ax)
    label(ax, title)
    return fig


def combined_brazil_figure(
    scan: dict[str, dict[str, np.ndarray]],
    labels: dict[str, str],
    title: str,
    cl: float,
    blinded: bool = False,
):
    """Brazil band of the combined eps^2 limit with the single-dataset observed limits."""
    ok, a = gapped(scan[COMBINED])
    m = a["mass_GeV"]
    lo, hi = m[ok].min(), m[ok].max()
    other = {}
    colours = dataset_colours(scan)
    for name, s in scan.items():
        if name == COMBINED:
            continue
        shown, t = gapped(s)  # (gaps where a row has no result)
        sel = (s["mass_GeV"] >= lo - MASS_TOL_GEV) & (s["mass_GeV"] <= hi + MASS_TOL_GEV)
        if (sel & shown).any() and not blinded:
            other[f"{labels.get(name, name)} observed"] = (
                s["mass_GeV"][sel],
                t["eps2_up"][sel],
                colours[name],
                (flag_mask(s["status"]) & shown)[sel],  # circled, as in every scan figure
                (~shown)[sel],  # no result: a cross in its colour
                (shown & ~np.isfinite(t["eps2_up"]))[sel],  # no observed limit: a triangle
            )
    bands = [a[f"eps2_exp_{b}"] for b in BAND_COLS]
    obs = None if blinded else a["eps2_up"]
    return brazil_figure(
        m,
        obs,
        bands,
        other=other,
        title=title,
        ylabel=rf"{cl:g}% CL upper limit on $\epsilon^2$",
        flagged=flag_mask(a["status"]) & ok,
        obs_err=a["eps2_up_err"] if obs is not None and "eps2_up_err" in a else None,
        failed=~ok,
        left_out=left_out_mask(a["status"]) & ok,
    )
