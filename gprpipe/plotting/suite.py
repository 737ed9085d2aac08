"""The scan figures: Brazil bands (A and eps^2), p0 and Z, GP fits, GP hyperparameters."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import ndtr  # ndtr(-z) = ndtr(-z): scipy.stats is slow to import

from gprpipe.plotting.style import BAND_1, BAND_2, BOTTOM_ROW, FEW_MASSES, label, legend, marker
from gprpipe.stats.quality import FLAG_DATASET_LEFT_OUT, flags_of, has_result, unresolved_rows
from gprpipe.stats.significance import z_from_p

MEV = 1e3
FLAG_COLOUR = "tab:red"  # (the cycle's C3 is purple in the hep style)
FLAG_STYLE: dict[str, Any] = {
    "marker": "o",
    "mfc": "none",
    "mec": FLAG_COLOUR,
    "ls": "none",
    "ms": 6,
    "mew": 1.3,
}
FLAG_LABEL = "flagged (background model)"
#: a combined row with a dataset left out (its flag is the combination's, not a
#: background model's: it was drawn and counted as one, a review)
LEFT_OUT_STYLE: dict[str, Any] = {**FLAG_STYLE, "marker": "s", "mec": "tab:orange", "ms": 7}
LEFT_OUT_LABEL = "flagged (a dataset left out)"


def flag_mask(status) -> np.ndarray:
    """Rows whose status carries a background-model quality flag."""
    flags = [flags_of(s) for s in np.asarray(status).astype(str)]
    return np.array([any(f != FLAG_DATASET_LEFT_OUT for f in fl) for fl in flags], dtype=bool)


def left_out_mask(status) -> np.ndarray:
    """Combined rows with a dataset left out (``flag_dataset_left_out``)."""
    flags = [flags_of(s) for s in np.asarray(status).astype(str)]
    return np.array([FLAG_DATASET_LEFT_OUT in fl for fl in flags], dtype=bool)


def expected_mask(status) -> np.ndarray:
    """Rows with an expected band: with results, or only the observed toy limit was
    unresolved (its observed limit is NaN: a gap in the observed curve)."""
    return result_mask(status) | unresolved_rows(status)


def result_mask(status) -> np.ndarray:
    """Rows with numbers (``ok`` or flagged)."""
    return np.array([has_result(s) for s in np.asarray(status).astype(str)], dtype=bool)


def gapped(a: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows with an expected band (:func:`expected_mask`), and the scan table ``a`` with
    the observed limits (``*_up``, ``*_up_err``) NaN where a row has no result and every
    other number but the mass NaN where it has no expected band: gaps in the curves (they
    were drawn straight across a mass that failed mid-scan, a review)."""
    ok, exp = result_mask(a["status"]), expected_mask(a["status"])
    out = dict(a)
    for k, v in a.items():
        if k != "mass_GeV" and np.asarray(v).dtype.kind == "f":
            out[k] = np.where(ok if k.endswith(("_up", "_up_err")) else exp, v, np.nan)
    return exp, out


def _band(m: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The x, lower and upper edges a band is filled over: of one mass, a box 1% of it
    wide either side (a band over one x has no width: it was not drawn, its legend entry
    was; a review)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if len(m) != 1:
        return np.asarray(m), lo, hi
    return one_mass_box(float(m[0])), np.repeat(lo, 2), np.repeat(hi, 2)


def one_mass_box(m: float) -> np.ndarray:
    """The x edges a band or stack of one mass is drawn between: 1% of it either side."""
    w = 0.01 * abs(m) or 0.5
    return np.array([m - w, m + w])


def _runs(finite: np.ndarray) -> list[slice]:
    """The runs of consecutive True in ``finite``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(int), [0]))))
    return [slice(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _fill(ax, m: np.ndarray, lo, hi, **style) -> None:
    """A band between ``lo`` and ``hi``, broken where a mass has none (NaN: a failed
    mass mid-scan; filled across, it showed a band the scan does not have: a review);
    a run of one mass is a box (:func:`_band`). One legend entry."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    for i, run in enumerate(_runs(np.isfinite(lo) & np.isfinite(hi))):
        kw = style if i == 0 else {**style, "label": None}
        ax.fill_between(*_band(m[run], lo[run], hi[run]), **kw)


NO_RESULT_LABEL = "no result (failed)"


def _bottom(level: int) -> float:
    """The height (axes fraction) of the ``level``-th row of markers along the bottom: one
    row per curve of an overlay (marks of several datasets at one mass blended into one)."""
    return 0.03 + 0.04 * level


def mark_failed(
    ax, m: np.ndarray, failed, colour: str = "0.45", name: str = NO_RESULT_LABEL, level: int = 0
) -> None:
    """Masses with no result as crosses (grey; in an overlay the curve's ``colour``,
    ``name`` its label, ``level`` its row) along the bottom of ``ax`` (their curves have
    a gap there)."""
    _mark_bottom(ax, m, failed, "x", name, level, color=colour, mew=1.4)


def _mark_bottom(ax, m, mask, mk: str, name: str, level: int, **style: Any) -> None:
    """The ``mask`` masses as markers ``mk`` in row ``level`` along the bottom of ``ax``."""
    if mask is not None and np.any(mask):
        x = np.asarray(m)[np.asarray(mask, bool)]
        y = np.full(len(x), _bottom(level))  # (axes fraction)
        ax.plot(
            x, y, mk, transform=ax.get_xaxis_transform(), label=name, ms=6, clip_on=False,
            gid=BOTTOM_ROW, **style,
        )  # fmt: skip


NO_OBSERVED_LABEL = "no observed limit (too few toys)"


def mark_no_observed(
    ax,
    m: np.ndarray,
    no_observed,
    colour: str = "k",
    name: str = NO_OBSERVED_LABEL,
    level: int = 0,
) -> None:
    """Masses with an expected limit but no observed one (an observed toy limit too few
    toys resolve) as open triangles (in an overlay the curve's ``colour``, ``name`` its
    label, ``level`` its row) along the bottom of ``ax``: the observed curve has a gap
    there, which looked like the end of its range (a review)."""
    _mark_bottom(ax, m, no_observed, "v", name, level, color=colour, mfc="none", mew=1.2)


def curve(ax, x, y, *args, **kwargs):
    """``ax.plot(x, y, ...)`` of a curve that may have gaps (NaN), with a dot at each mass
    whose neighbours are both gaps: a line of one point draws nothing, and such a result
    vanished from the figure (the whole-diff review). A curve with no value has no
    legend entry (it named a curve the figure does not show, a review)."""
    yv = np.asarray(y, dtype=float)
    if not np.isfinite(yv).any():
        kwargs["label"] = None
    (line,) = ax.plot(x, y, *args, **kwargs)
    ok = np.isfinite(yv)
    lone = ok & ~np.r_[False, ok[:-1]] & ~np.r_[ok[1:], False]
    if lone.any() and line.get_marker() in ("", "None", None) and len(yv) > 1:
        xs = np.asarray(x)[lone]
        ax.plot(xs, yv[lone], "o", ms=3.5, color=line.get_color(), zorder=line.get_zorder())
    return line


def mark_flagged(ax, m, y, flagged, left_out=None, prefix: str = "") -> None:
    """``flagged`` masses circled in red, ``left_out`` ones (a combined row with a
    dataset left out) as orange squares, on ``y``; ``prefix``: the curve's name, in an
    overlay."""
    for mask, style, name in (
        (flagged, FLAG_STYLE, FLAG_LABEL),
        (left_out, LEFT_OUT_STYLE, LEFT_OUT_LABEL),
    ):
        if mask is not None and np.any(mask):
            sel = np.asarray(mask, bool)
            ax.plot(np.asarray(m)[sel], np.asarray(y)[sel], label=f"{prefix}{name}", **style)


def brazil_figure(
    mass,
    obs,
    bands,
    *,
    ylabel: str,
    title: str,
    other=None,
    flagged=None,
    obs_err=None,
    failed=None,
    left_out=None,
):
    """Observed limit (``None`` when blinded), expected median and 1/2-sigma bands vs mass
    (NaN: a gap); ``flagged`` masses (background-model quality flags) are circled in red
    (on the observed limit, or on the expected median when blinded), ``left_out`` ones (a
    combined row with a dataset left out) marked by orange squares; ``failed`` masses (no
    result) are crosses along the bottom; ``obs_err``: the observed limit's Monte Carlo
    error (toy limits; NaN or None for asymptotic ones), drawn as error bars; ``other``:
    label -> (mass, limit, colour[, flagged[, failed[, no_observed]]]) of further curves
    (their flagged masses circled too: the combined overlay's datasets drew theirs
    unmarked; their masses with no result crosses in their colour, those without an
    observed limit triangles). Masses with an expected limit and no observed one (an
    observed toy limit unresolved) are open triangles along the bottom."""
    m = np.asarray(mass) * MEV
    mk = marker(len(m))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _fill(ax, m, bands[0], bands[4], color=BAND_2, label=r"Expected $\pm 2\sigma$", linewidth=0)
    _fill(ax, m, bands[1], bands[3], color=BAND_1, label=r"Expected $\pm 1\sigma$", linewidth=0)
    curve(ax, m, bands[2], "k--", lw=1.2, marker=mk, ms=3, mfc="white", label="Expected median")
    if obs is not None:
        curve(ax, m, obs, "k-", lw=1.6, marker=mk, ms=4, label="Observed")
        err = None if obs_err is None else np.asarray(obs_err, dtype=float)
        if err is not None and np.isfinite(err).any():
            ax.errorbar(
                m, obs, yerr=err, fmt="none", ecolor="k", elinewidth=0.8, capsize=2,
                label="Observed: Monte Carlo error (toys)",
            )  # fmt: skip
    mark_flagged(ax, m, bands[2] if obs is None else obs, flagged, left_out)  # blinded: median
    mark_failed(ax, m, failed)
    if obs is not None:
        exp = np.isfinite(np.asarray(bands[2], dtype=float))
        mark_no_observed(ax, m, exp & ~np.isfinite(np.asarray(obs, dtype=float)))
    circled = bool(flagged is not None and np.any(flagged))  # (one legend entry for circles)
    for level, (name, (mm, yy, colour, *rest)) in enumerate((other or {}).items(), start=1):
        who = name.removesuffix(" observed")  # (its marks named as in the other overlays)
        x = np.asarray(mm) * MEV
        curve(ax, x, yy, lw=1.2, marker=marker(len(mm)), ms=3, label=name, color=colour)
        fl = np.asarray(rest[0], bool) if rest else np.zeros(len(x), bool)
        if fl.any():
            style = {**FLAG_STYLE, "label": None if circled else FLAG_LABEL}
            ax.plot(x[fl], np.asarray(yy)[fl], **style)
            circled = True
        if len(rest) > 1:  # its masses with no result
            mark_failed(ax, x, rest[1], colour, f"{who}: {NO_RESULT_LABEL}", level)
        if len(rest) > 2:  # its masses with an expected limit and no observed one
            mark_no_observed(ax, x, rest[2], colour, f"{who}: {NO_OBSERVED_LABEL}", level)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{A'}$ [MeV]")
    ax.set_ylabel(ylabel)
    _xlim(ax, m)
    legend(ax)
    label(ax, title)
    return fig


def _xlim(ax, m: np.ndarray) -> None:
    """x range of the scan (padded by half a step when there are few masses)."""
    if len(m) == 0:
        return
    lo, hi = float(np.min(m)), float(np.max(m))
    pad = 0.04 * (hi - lo) if len(m) <= FEW_MASSES else 0.0
    if hi - lo <= 0:
        pad = max(0.05 * lo, 1.0)
    ax.set_xlim(lo - pad, hi + pad)


def significance_figure(
    mass,
    p_local,
    p_global,
    title: str,
    flagged=None,
    p_global_toys=None,
    toys_bound=None,
    p_local_toys=None,
    p_local_toys_err=None,
    p_local_toys_bound=None,
    failed=None,
    left_out=None,
):
    """Local and global p0 with labelled 1-5 sigma lines (right axis), and local/global Z
    (Sidak and, when given, whole-scan toys); ``flagged`` masses are circled in red (no
    global p-value: they do not count as a discovery); ``failed`` masses (no result: NaN,
    a gap) are crosses along the bottom of both panels; ``toys_bound`` (boolean per mass)
    marks the toys' values that are bounds (no toy reached the observed Z): a p0 below,
    a Z above, drawn as triangles pointing that way; ``p_local_toys`` (with its error) is
    the toys' local p0 at each mass, drawn as points beside the asymptotic curve
    (``p_local_toys_bound``: where it is an upper bound, a triangle). A p0
    below the smallest double (0 in the files: Z above 37.5) is drawn at it."""
    m = np.asarray(mass) * MEV
    mk = marker(len(m))
    tiny = np.finfo(float).tiny  # a log axis and Z need p0 > 0
    p_local = np.maximum(np.asarray(p_local, dtype=float), tiny)
    p_global = np.maximum(np.asarray(p_global, dtype=float), tiny)
    zl, zg = z_from_p(p_local), z_from_p(p_global)
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    curve(a1, m, p_local, "-", color="C0", lw=1.5, marker=mk, ms=4, label="local $p_0$", zorder=3)
    mark_flagged(a1, m, p_local, flagged, left_out)
    mark_failed(a1, m, failed)
    curve(
        a1,
        m,
        p_global,
        "--",
        color="C3",
        lw=2.2,
        marker=mk,
        ms=4,
        zorder=4,
        label="global $p_0$ (Sidak, $N_\\mathrm{eff}$)",
    )
    toys = p_global_toys is not None and np.isfinite(p_global_toys).any()
    if toys:
        curve(
            a1,
            m,
            p_global_toys,
            ":",
            color="C4",
            lw=2.2,
            marker=mk,
            ms=4,
            zorder=4,
            label="global $p_0$ (whole-scan toys)",
        )
        bound = np.zeros(len(m), bool) if toys_bound is None else np.asarray(toys_bound, bool)
        if bound.any():
            a1.plot(
                m[bound],
                np.asarray(p_global_toys)[bound],
                "v",
                color="C4",
                ms=8,
                zorder=5,
                label="toys: bound (no toy reached it)",
            )
    if p_local_toys is not None and np.isfinite(p_local_toys).any():
        # where no toy at that mass reached the observed Z, 1/(N+1) is an upper bound
        # (drawn as a point with an error bar down to 0, it read as a measurement)
        pl = np.asarray(p_local_toys, dtype=float)
        lb = (
            np.zeros(len(m), bool)
            if p_local_toys_bound is None
            else np.asarray(p_local_toys_bound, bool)
        )
        err = None if p_local_toys_err is None else np.asarray(p_local_toys_err, dtype=float)
        a1.errorbar(
            m[~lb],
            pl[~lb],
            yerr=None if err is None else err[~lb],
            fmt="o",
            mfc="none",
            color="C0",
            ms=3.5,
            lw=0.8,
            zorder=3,
            label="local $p_0$ (toys at each mass)",
        )
        if lb.any():
            a1.plot(m[lb], pl[lb], "v", mfc="none", color="C0", ms=6, zorder=3,
                    label="local $p_0$ (toys): bound (no toy reached it)")  # fmt: skip
    a1.set_yscale("log")
    lo = min(np.nanmin(p_local) * 0.3, ndtr(-5.5))
    a1.set_ylim(lo, 3.0)  # p0 = 1 (a global curve often sits there) stays inside the frame
    zs = (1, 2, 3, 4, 5)
    for z in zs:
        a1.axhline(ndtr(-z), color="gray", lw=0.8, ls=":", zorder=1)
    right = a1.twinx()
    right.set_yscale("log")
    right.set_ylim(a1.get_ylim())
    right.set_yticks([ndtr(-z) for z in zs], [f"{z}$\\sigma$" for z in zs])
    right.minorticks_off()
    right.tick_params(axis="y", which="both", length=0, labelcolor="gray")
    right.grid(False)
    a1.set_ylabel("$p_0$")
    legend(a1, offset=0.09)
    curve(a2, m, zl, "-", color="C0", lw=1.5, marker=mk, ms=4, label="local Z", zorder=3)
    mark_flagged(a2, m, zl, flagged, left_out)
    mark_failed(a2, m, failed)
    curve(a2, m, zg, "--", color="C3", lw=2.2, marker=mk, ms=4, label="global Z", zorder=4)
    if toys:
        zt = np.minimum(z_from_p(p_global_toys), zl)  # as Z_global_toys: never above Z_local
        curve(
            a2,
            m,
            zt,
            ":",
            color="C4",
            lw=2.2,
            marker=mk,
            ms=4,
            label="global Z (toys)",
            zorder=4,
        )
        if bound.any():
            a2.plot(
                m[bound],
                zt[bound],
                "^",
                color="C4",
                ms=8,
                zorder=5,
                label="toys: bound",
            )
    for z in zs:
        a2.axhline(z, color="gray", lw=0.8, ls=":", zorder=1)
    a2.set_ylim(-0.3, max(5.5, float(np.nanmax(zl)) + 0.5))
    a2.set_ylabel(r"Z [$\sigma$]")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    _xlim(a2, m)
    legend(a2, offset=0.09)
    label(a1, title)
    return fig


def ahat_figure(mass, a_hat, sigma_a, title: str, *, flagged=None, failed=None, left_out=None):
    """Fitted signal yield A_hat with its +/-1 sigma band vs mass, and A_hat / sigma_A;
    ``flagged`` masses (background-model quality flags) circled in red on both, as the
    other scan figures do; ``failed`` masses (no result: NaN, a gap) crosses along the
    bottom."""
    m = np.asarray(mass) * MEV
    mk = marker(len(m))
    a_hat, sigma_a = np.asarray(a_hat, dtype=float), np.asarray(sigma_a, dtype=float)
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    _fill(a1, m, a_hat - sigma_a, a_hat + sigma_a, color="C0", alpha=0.3, linewidth=0,
          label=r"$\pm 1\sigma_A$")  # fmt: skip
    curve(a1, m, a_hat, "-", color="C0", lw=1.4, marker=mk, ms=4, label=r"$\hat A$")
    a1.axhline(0, color="k", lw=0.8)
    mark_flagged(a1, m, a_hat, flagged, left_out)
    mark_failed(a1, m, failed)
    a1.set_ylabel(r"signal yield $\hat A$")
    legend(a1)
    pull = a_hat / sigma_a
    curve(a2, m, pull, "-", color="C0", lw=1.2, marker=mk, ms=3)
    mark_flagged(a2, m, pull, flagged, left_out)
    mark_failed(a2, m, failed)
    for z in (-2, -1, 1, 2):
        a2.axhline(z, color="gray", lw=0.8, ls=":")
    a2.axhline(0, color="k", lw=0.8)
    top = max(2.5, float(np.nanmax(np.abs(pull))) + 0.5) if np.isfinite(pull).any() else 2.5
    a2.set_ylim(-top, top)
    a2.set_ylabel(r"$\hat A / \sigma_A$")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    _xlim(a2, m)
    label(a1, title)
    return fig


def hyper_figure(fit: dict[str, np.ndarray], title: str, gof_p_min: float | None = None):
    """GP length scale, amplitude, log marginal likelihood and the goodness-of-fit p-value
    vs mass; flagged masses circled in red, non-converged fits as crosses, failed fits
    (a window the sidebands do not determine) as grey squares: not among the converged."""
    m = fit["mass_GeV"] * MEV
    failed = ~result_mask(fit["status"])
    ok = fit["gp_converged"].astype(bool) & ~failed
    flagged = flag_mask(fit["status"])
    panels = [
        ("gp_length_scale", "length scale"),
        ("gp_amplitude", "amplitude"),
        ("gp_lml", r"$\ln L$"),
    ]
    if "gof_p" in fit:
        panels.append(("gof_p", "GoF $p$ near window"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.7 * len(panels)), sharex=True)
    for ax, (key, ylab) in zip(axes, panels):
        ax.plot(m[ok], fit[key][ok], "o", ms=3, color="C0", label="converged")
        if (~ok & ~failed).any():
            bad = ~ok & ~failed
            ax.plot(m[bad], fit[key][bad], "x", ms=6, color="C3", label="not converged")
        if failed.any():
            ax.plot(m[failed], fit[key][failed], "s", ms=5, mfc="none", color="0.45",
                    label="fit failed")  # fmt: skip
        mark_flagged(ax, m, fit[key], flagged)
        ax.set_ylabel(ylab)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    if "gof_p" in fit:
        axes[-1].set_yscale("log")
        if gof_p_min:
            axes[-1].axhline(gof_p_min, color=FLAG_COLOUR, lw=0.8, ls="--", label="flag threshold")
        legend(axes[-1])
    legend(axes[0])
    axes[-1].set_xlabel(r"$m_{A'}$ [MeV]")
    fig.align_ylabels(axes)
    label(axes[0], title)
    return fig


def gp_fit_figure(
    x, counts, b, err, mass, sigma, blind_nsigma, title: str, hidden: np.ndarray | None = None
):
    """Data ``counts`` at bin centres ``x`` (GeV), GP mean ``b`` with its 1-sigma band
    ``err`` around the test mass, blind window; below, the relative residual (data/GP - 1)
    with the GP's relative 1-sigma band. ``hidden`` (a blinded run): the bins whose data
    are not drawn, those in the blind window of any test mass (as on the spectrum)."""
    xm = np.asarray(x) * MEV
    n = np.asarray(counts).astype(float)
    blinded = hidden is not None
    show = np.ones(len(xm), bool) if hidden is None else ~np.asarray(hidden, dtype=bool)
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    lo, hi = (mass - blind_nsigma * sigma) * MEV, (mass + blind_nsigma * sigma) * MEV
    for ax in (a1, a2):
        ax.axvspan(
            lo,
            hi,
            color="C1",
            alpha=0.15,
            linewidth=0,
            label=(
                f"blind window $\\pm{blind_nsigma:g}\\sigma_m$"
                + ("\n(data hidden in every test window)" if blinded else "")
            ),
        )
    a1.fill_between(
        xm,
        b - err,
        b + err,
        color="C0",
        alpha=0.45,
        linewidth=0,
        zorder=2,
        label=r"GP $\pm 1\sigma$",
    )
    a1.plot(xm, b, "C0-", lw=1.2, zorder=3, label="GP background")
    a1.errorbar(xm[show], n[show], yerr=np.sqrt(n[show]), fmt="k.", ms=4, zorder=4, label="data")
    a1.set_yscale("log")
    a1.set_ylabel("Events / bin")
    legend(a1)
    rel = err / b
    a2.fill_between(xm, -100 * rel, 100 * rel, color="C0", alpha=0.45, linewidth=0, zorder=2)
    a2.axhline(0, color="C0", lw=1.2)
    r = 100 * (n / b - 1)
    re = 100 * np.sqrt(np.clip(n, 1, None)) / b
    a2.errorbar(xm[show], r[show], yerr=re[show], fmt="k.", ms=4, zorder=4)
    lim = max(
        1.6 * float(np.nanpercentile(re[show], 90)) if show.any() else 0.0,
        2.5 * float(np.nanmax(100 * rel)),
    )
    a2.set_ylim(-lim, lim)
    a2.set_ylabel("data/GP$-$1 [%]")
    a2.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    label(a1, f"{title}, $m_{{A'}}$ = {mass * MEV:g} MeV")
    return fig
