"""Figures of the background-only validation scans (``toyscan``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import ndtr  # = norm.cdf: scipy.stats is slow to import

from gprpipe.plotting.style import label

MEV = 1e3


def z_local_figure(z: np.ndarray, title: str, z_flagged: np.ndarray | None = None):
    """Histogram of the unflagged Z_local against the background-only expectation
    (asymptotic: half of the values at 0, the rest a half-normal); ``z_flagged``: the
    Z_local of flagged rows (background-model quality flags), drawn apart in red."""
    z = np.asarray(z, dtype=float)
    zf = np.asarray([] if z_flagged is None else z_flagged, dtype=float)
    zf = zf[np.isfinite(zf)]
    n = z.size
    hi = max(5.5, float(np.max(z, initial=0.0)) + 0.5, float(np.max(zf, initial=0.0)) + 0.5)
    bins = np.linspace(0.0, hi, int(hi / 0.25) + 1)
    pos = z[z > 0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.hist(
        pos,
        bins=bins.tolist(),
        histtype="step",
        color="k",
        lw=1.5,
        label=f"toys: {n} (toy, mass) rows, {np.mean(z == 0):.3f} at Z = 0",
    )
    if zf.size:
        ax.hist(
            zf[zf > 0],
            bins=bins.tolist(),
            histtype="step",
            color="tab:red",
            ls="--",
            lw=1.3,
            hatch="//",
            label=f"flagged rows ({zf.size}), not counted",
        )
    expect = n * (ndtr(bins[1:]) - ndtr(bins[:-1]))
    ax.stairs(
        expect, bins, color="tab:blue", lw=1.3, label="background-only expectation (0.5 at Z = 0)"
    )
    ax.set_yscale("log")
    ax.set_ylim(0.3, None)
    ax.set_xlabel(r"$Z_\mathrm{local}$ (rows with status ok, $Z > 0$)")
    ax.set_ylabel("(toy, mass) rows")
    ax.legend(frameon=False, fontsize=10)
    label(ax, title)
    return fig


def spurious_figure(s: dict[str, np.ndarray], title: str):
    """Mean A_hat vs mass with its standard-error band and the mean +-sigma_A; pull mean
    and width vs mass."""
    m = s["mass_GeV"] * MEV
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    a1.fill_between(
        m,
        -s["sigma_A_mean"],
        s["sigma_A_mean"],
        color="0.85",
        linewidth=0,
        label=r"$\pm\langle\sigma_A\rangle$",
    )
    a1.fill_between(
        m,
        s["A_hat_mean"] - s["A_hat_mean_err"],
        s["A_hat_mean"] + s["A_hat_mean_err"],
        color="tab:blue",
        alpha=0.4,
        linewidth=0,
        label="standard error of the mean",
    )
    a1.plot(
        m,
        s["A_hat_mean"],
        color="tab:blue",
        lw=1.3,
        label=r"spurious signal $\langle\hat A\rangle$",
    )
    a1.axhline(0, color="k", lw=0.6)
    a1.set_ylabel(r"$\hat A$ [events]")
    a1.legend(frameon=False, fontsize=9)
    a2.plot(m, s["pull_mean"], color="tab:blue", label=r"pull mean $\langle\hat A/\sigma_A\rangle$")
    a2.plot(m, s["pull_width"], color="tab:orange", label="pull width")
    err = 1.0 / np.sqrt(np.maximum(s["n_kept"], 1))
    a2.fill_between(m, -err, err, color="tab:blue", alpha=0.15, linewidth=0, label="±1/√N (N toys)")
    a2.fill_between(
        m, 1 - err / np.sqrt(2), 1 + err / np.sqrt(2), color="tab:orange", alpha=0.15, linewidth=0
    )
    fl = s["n_flagged"] > 0
    if fl.any():  # masses where some toys' rows were flagged (left out of the summary)
        a2.plot(
            m[fl],
            s["pull_mean"][fl],
            "o",
            mfc="none",
            mec="tab:red",
            ms=7,
            label="masses with flagged toys",
        )
    a2.axhline(0, color="k", lw=0.6)
    a2.axhline(1, color="k", lw=0.6, ls=":")
    a2.set_ylabel("pull")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    a2.legend(frameon=False, fontsize=9)
    label(a1, title)
    return fig
