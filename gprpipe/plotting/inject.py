"""Injection/extraction closure figures from ``inject.h5`` (one set per dataset).

Every figure shows one curve per injection mass against the injected strength
``Z_inj = A_inj / sigma_A,ref``: linearity, bias, pull width, coverage (with the 68.3% and
95.4% references), pull mean/width heatmaps over mass x strength, Z_hat vs Z_inj, the
Z-calibration residual ``<Z_hat> - Z_inj``, pull mean and width against mass, and the pull
distributions at the largest strength against N(0, 1). With ``inject.strength_unit =
"yield"`` the strength axis is still ``Z_inj = A_inj / sigma_A,ref``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gprpipe.plotting.style import label, legend
from gprpipe.stats.inject import COVERAGE

COV1, COV2 = COVERAGE

MEV = 1e3


def _by_mass(a: dict[str, np.ndarray]):
    """Yield ``(mass, index array sorted by strength)`` per injection mass."""
    for m in np.unique(a["mass_GeV"]):
        idx = np.flatnonzero(a["mass_GeV"] == m)
        yield float(m), idx[np.argsort(a["z_inj"][idx])]


def _mlabel(m: float) -> str:
    return f"{m * MEV:g} MeV"


def _sem(a, idx, key_std):
    n = np.maximum(a["n_kept"][idx].astype(float), 1.0)
    return a[key_std][idx] / np.sqrt(n)


def linearity_figure(a: dict[str, np.ndarray], title: str):
    """Mean extracted vs injected yield (both in units of sigma_A,ref), with the ratio."""
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(7.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    zmax = float(np.nanmax(a["z_inj"])) if len(a["z_inj"]) else 1.0
    a1.plot([0, zmax], [0, zmax], color="gray", ls="--", lw=1, label="ideal")
    ratios = []
    for i, (m, idx) in enumerate(_by_mass(a)):
        s = a["sigma_ref"][idx]
        y = a["A_hat_mean"][idx] / s
        a1.errorbar(
            a["z_inj"][idx],
            y,
            yerr=_sem(a, idx, "A_hat_std") / s,
            fmt="o-",
            ms=4,
            color=f"C{i}",
            label=_mlabel(m),
        )
        nz = a["z_inj"][idx] > 0
        a2.plot(
            a["z_inj"][idx][nz],
            a["A_hat_mean"][idx][nz] / a["A_inj"][idx][nz],
            "o-",
            ms=4,
            color=f"C{i}",
        )
        ratios.append(a["A_hat_mean"][idx][nz] / a["A_inj"][idx][nz])
        if "A_hat_asimov" in a and np.any(np.isfinite(a["A_hat_asimov"][idx][nz])):
            a2.plot(
                a["z_inj"][idx][nz],
                a["A_hat_asimov"][idx][nz] / a["A_inj"][idx][nz],
                "x:",
                ms=7,
                color=f"C{i}",
                label="noise-free refit toy" if i == 0 else None,
            )
            legend(a2)
    a2.axhline(1.0, color="gray", ls="--", lw=1)
    a2.axhspan(0.8, 1.2, color="gray", alpha=0.12, lw=0)
    finite = np.concatenate(ratios) if ratios else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    lo = min(0.75, float(finite.min()) - 0.05) if finite.size else 0.75
    hi = max(1.25, float(finite.max()) + 0.05) if finite.size else 1.25
    a2.set_ylim(lo, hi)
    a1.set_ylabel(r"$\langle\hat A\rangle / \sigma_{A,\mathrm{ref}}$")
    a2.set_ylabel(r"$\langle\hat A\rangle / A_\mathrm{inj}$")
    a2.set_xlabel(r"injected strength $Z_\mathrm{inj} = A_\mathrm{inj}/\sigma_{A,\mathrm{ref}}$")
    legend(a1)
    label(a1, title)
    return fig


def bias_figure(a: dict[str, np.ndarray], title: str):
    """Bias of the mean extracted yield, in units of sigma_A,ref."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (m, idx) in enumerate(_by_mass(a)):
        s = a["sigma_ref"][idx]
        ax.errorbar(
            a["z_inj"][idx],
            (a["A_hat_mean"][idx] - a["A_inj"][idx]) / s,
            yerr=_sem(a, idx, "A_hat_std") / s,
            fmt="o-",
            ms=4,
            color=f"C{i}",
            label=_mlabel(m),
        )
    ax.axhline(0.0, color="gray", ls="--", lw=1)
    ax.set_xlabel(r"injected strength $Z_\mathrm{inj}$")
    ax.set_ylabel(r"bias $(\langle\hat A\rangle - A_\mathrm{inj}) / \sigma_{A,\mathrm{ref}}$")
    legend(ax)
    label(ax, title)
    return fig


def pull_figure(a: dict[str, np.ndarray], title: str):
    """Pull mean (with its error) and pull width vs strength."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    for i, (m, idx) in enumerate(_by_mass(a)):
        n = np.maximum(a["n_kept"][idx].astype(float), 2.0)
        w = a["pull_width"][idx]
        a1.errorbar(
            a["z_inj"][idx],
            a["pull_mean"][idx],
            yerr=a["pull_mean_err"][idx],
            fmt="o-",
            ms=4,
            color=f"C{i}",
            label=_mlabel(m),
        )
        a2.errorbar(
            a["z_inj"][idx], w, yerr=w / np.sqrt(2 * (n - 1)), fmt="o-", ms=4, color=f"C{i}"
        )
    a1.axhline(0.0, color="gray", ls="--", lw=1)
    a2.axhline(1.0, color="gray", ls="--", lw=1)
    a2.axhspan(0.95, 1.05, color="gray", alpha=0.12, lw=0)
    a1.set_ylabel("pull mean")
    a2.set_ylabel("pull width (std)")
    a2.set_xlabel(r"injected strength $Z_\mathrm{inj}$")
    legend(a1)
    label(a1, title)
    return fig


def coverage_figure(a: dict[str, np.ndarray], title: str):
    """Fraction of toys with |pull| < 1 and < 2 with their binomial errors, and the
    Gaussian references."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (m, idx) in enumerate(_by_mass(a)):
        for k, (key, fmt) in enumerate((("cov_1sigma", "o-"), ("cov_2sigma", "s--"))):
            err = a.get(f"{key}_err")  # (binomial, at the Gaussian target; an older file: none)
            ax.errorbar(
                a["z_inj"][idx],
                a[key][idx],
                yerr=None if err is None else err[idx],
                fmt=fmt,
                ms=4,
                capsize=2,
                color=f"C{i}",
                label=f"{_mlabel(m)}, $|$pull$|<{k + 1}$",
            )
    ax.axhline(COV1, color="k", lw=1, ls=":")
    ax.axhline(COV2, color="k", lw=1, ls=":")
    ax.text(
        0.99, COV1, "68.3%", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=9
    )
    ax.text(
        0.99, COV2, "95.4%", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=9
    )
    ax.set_ylim(0.4, 1.05)
    ax.set_xlabel(r"injected strength $Z_\mathrm{inj}$")
    ax.set_ylabel("coverage")
    legend(ax, ncol=2)
    label(ax, title)
    return fig


def heatmap_figure(a: dict[str, np.ndarray], title: str):
    """Pull mean and pull width over mass x strength, values annotated."""
    masses = np.unique(a["mass_GeV"])
    zs = np.unique(a["z_inj"])
    grids = {k: np.full((len(zs), len(masses)), np.nan) for k in ("pull_mean", "pull_width")}
    for j, m in enumerate(masses):
        for i, z in enumerate(zs):
            sel = np.flatnonzero((a["mass_GeV"] == m) & (a["z_inj"] == z))
            if len(sel):
                for k in grids:
                    grids[k][i, j] = a[k][sel[0]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    specs = {
        "pull_mean": ("RdBu_r", -0.5, 0.5, "pull mean"),
        "pull_width": ("PuOr_r", 0.5, 1.5, "pull width"),
    }
    for ax, (k, (cmap, lo, hi, name)) in zip(axes, specs.items()):
        im = ax.imshow(grids[k], origin="lower", aspect="auto", cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks(range(len(masses)), [f"{m * MEV:g}" for m in masses])
        ax.set_yticks(range(len(zs)), [f"{z:g}" for z in zs])
        ax.set_xlabel(r"$m_{A'}$ [MeV]")
        ax.set_ylabel(r"$Z_\mathrm{inj}$")
        ax.grid(False)
        for i in range(len(zs)):
            for j in range(len(masses)):
                v = grids[k][i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
        fig.colorbar(im, ax=ax, label=name)
    label(axes[0], title)
    fig.tight_layout()
    return fig


def zhat_figure(a: dict[str, np.ndarray], title: str):
    """Mean fitted significance A_hat/sigma_A vs the injected strength."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    zmax = float(np.nanmax(a["z_inj"])) if len(a["z_inj"]) else 1.0
    ax.plot([0, zmax], [0, zmax], color="gray", ls="--", lw=1, label="ideal")
    for i, (m, idx) in enumerate(_by_mass(a)):
        ax.plot(a["z_inj"][idx], a["Zhat_mean"][idx], "o-", ms=4, color=f"C{i}", label=_mlabel(m))
    ax.set_xlabel(r"injected strength $Z_\mathrm{inj}$")
    ax.set_ylabel(r"$\langle \hat Z\rangle = \langle\hat A/\sigma_A\rangle$")
    legend(ax)
    label(ax, title)
    return fig


def _by_strength(a: dict[str, np.ndarray]):
    """Yield ``(Z_inj, index array sorted by mass)`` per injected strength."""
    for z in np.unique(a["z_inj"]):
        idx = np.flatnonzero(a["z_inj"] == z)
        yield float(z), idx[np.argsort(a["mass_GeV"][idx])]


def pull_mass_figure(a: dict[str, np.ndarray], title: str):
    """Pull mean (with its statistical error) and pull width vs mass, one curve per
    strength; the bands mark |mean| < 0.1 and width 0.9-1.1."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    for i, (z, idx) in enumerate(_by_strength(a)):
        m = a["mass_GeV"][idx] * MEV
        n = np.maximum(a["n_kept"][idx].astype(float), 2.0)
        w = a["pull_width"][idx]
        a1.errorbar(
            m,
            a["pull_mean"][idx],
            yerr=w / np.sqrt(n),
            fmt="o-",
            ms=4,
            color=f"C{i}",
            label=f"$Z_\\mathrm{{inj}}$ = {z:g}",
        )
        a2.errorbar(m, w, yerr=w / np.sqrt(2 * (n - 1)), fmt="o-", ms=4, color=f"C{i}")
    a1.axhline(0, color="gray", ls="--", lw=1)
    a1.axhspan(-0.1, 0.1, color="gray", alpha=0.12, lw=0)
    a2.axhline(1, color="gray", ls="--", lw=1)
    a2.axhspan(0.9, 1.1, color="gray", alpha=0.12, lw=0)
    a1.set_ylabel("pull mean")
    a2.set_ylabel("pull width")
    a2.set_xlabel(r"$m_{A'}$ [MeV]")
    a1.legend(frameon=False, fontsize=9)
    label(a1, title)
    return fig


def zcal_residual_figure(a: dict[str, np.ndarray], title: str):
    """Z calibration: ``<Z_hat> - Z_inj`` (``Z_hat = A_hat / sigma_A``) vs ``Z_inj``, with
    the statistical error of the mean (pull width / sqrt(n))."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (m, idx) in enumerate(_by_mass(a)):
        n = np.maximum(a["n_kept"][idx].astype(float), 1.0)
        ax.errorbar(
            a["z_inj"][idx],
            a["Zhat_mean"][idx] - a["z_inj"][idx],
            yerr=a["pull_width"][idx] / np.sqrt(n),
            fmt="o-",
            ms=4,
            color=f"C{i}",
            label=_mlabel(m),
        )
    ax.axhline(0, color="gray", ls="--", lw=1)
    ax.axhspan(-0.1, 0.1, color="gray", alpha=0.12, lw=0)
    ax.set_xlabel(r"injected strength $Z_\mathrm{inj} = A_\mathrm{inj}/\sigma_{A,\mathrm{ref}}$")
    ax.set_ylabel(r"$\langle \hat Z\rangle - Z_\mathrm{inj}$")
    ax.legend(frameon=False, fontsize=10)
    label(ax, title)
    return fig


def pull_hist_figure(toys: dict[str, tuple[dict, dict]], title: str):
    """Pull histograms at the largest strength of each mass, against N(0, 1)."""
    best: dict[float, tuple[float, np.ndarray]] = {}
    for arrays, attrs in toys.values():
        m, z = float(attrs["mass_GeV"]), float(attrs["z_inj"])
        if m not in best or z > best[m][0]:
            ok = arrays["converged"].astype(bool) & np.isfinite(arrays["pull"])
            best[m] = (z, arrays["pull"][ok])
    n = max(len(best), 1)
    fig, axes = plt.subplots(1, n, figsize=(max(7.0, 5.0 * n), 5.2), squeeze=False)
    x = np.linspace(-5, 5, 201)
    gauss = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    for ax, m in zip(axes[0], sorted(best)):
        z, p = best[m]
        ax.hist(
            p,
            bins=np.linspace(-5, 5, 41),
            density=True,
            histtype="stepfilled",
            color="C0",
            alpha=0.5,
            label=f"{len(p)} toys",
        )
        ax.plot(x, gauss, "k-", lw=1.2, label="N(0, 1)")
        ax.set_xlabel(f"pull ({_mlabel(m)}, $Z_\\mathrm{{inj}}$ = {z:g})")
    legend(axes[0][-1])
    axes[0][0].set_ylabel("density")
    fig.tight_layout()
    label(axes[0][0], title)
    return fig
