"""Look-elsewhere figures: the toy distribution of the maximum Z_local over a scan."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from gprpipe.plotting.style import label
from gprpipe.stats.lee import sidak_max_z_sf

_OTHERS = ("tab:green", "tab:orange", "tab:purple", "tab:brown")


def _sf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.asarray(values, dtype=float))
    return v, 1.0 - np.arange(v.size) / v.size


def max_z_figure(
    max_z: np.ndarray,
    n_eff: float,
    title: str,
    *,
    z_obs: float | None = None,
    others: Mapping[str, np.ndarray] | None = None,
):
    """Histogram and survival function ``P(max Z >= z)`` of the toys' maximum Z_local,
    with the Sidak expectation for ``n_eff`` independent tests and the observed maximum;
    ``others`` are further samples of maxima (e.g. GP-refit toys, functional-form toys)."""
    mz = np.asarray(max_z, dtype=float)
    mz = mz[np.isfinite(mz)]  # a toy whose fits all failed has no maximum
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    hi = max(5.0, (float(np.max(mz)) if mz.size else 0.0) + 0.5, (z_obs or 0.0) + 0.5)
    bins = np.linspace(0.0, hi, 51)
    a1.hist(
        mz,
        bins=bins,
        density=bool(mz.size),
        histtype="stepfilled",
        color="tab:blue",
        alpha=0.35,
        label=f"whole-scan toys ({mz.size})",
    )
    z = np.linspace(0.0, hi, 400)
    sf = sidak_max_z_sf(z, n_eff)
    a1.plot(
        z,
        -np.gradient(sf, z),
        color="tab:red",
        lw=1.4,
        label=f"Sidak, $N_\\mathrm{{eff}}$ = {n_eff:.1f}",
    )
    v, s = _sf(mz)
    a2.step(v, s, where="post", color="tab:blue", label="whole-scan toys")
    a2.plot(z, sf, color="tab:red", label="Sidak")
    for i, (name, other) in enumerate((others or {}).items()):
        o = np.asarray(other, dtype=float)
        o = o[np.isfinite(o)]
        col = _OTHERS[i % len(_OTHERS)]
        a1.hist(
            o,
            bins=bins,
            density=bool(o.size),
            histtype="step",
            color=col,
            lw=1.4,
            label=f"{name} ({o.size})",
        )
        ov, os_ = _sf(o)
        a2.step(ov, os_, where="post", color=col, label=name)
    if z_obs is not None and np.isfinite(z_obs):
        for ax in (a1, a2):
            ax.axvline(z_obs, color="k", ls="--", lw=1.2)
        a1.plot([], [], "k--", label=f"observed max $Z$ = {z_obs:.2f}")
    a1.set_ylabel("density")
    a1.legend(frameon=False, fontsize=9)
    a2.set_yscale("log")
    a2.set_ylim(max(0.5 / max(mz.size, 1), 1e-5), 1.5)
    if not mz.size:
        a1.text(
            0.5,
            0.5,
            "no toy has a maximum Z (their fits failed)",
            transform=a1.transAxes,
            ha="center",
        )
    a2.set_ylabel(r"$P(\max Z_\mathrm{local} \geq z)$")
    a2.set_xlabel(r"maximum $Z_\mathrm{local}$ over the scan")
    a2.legend(frameon=False, fontsize=9)
    label(a1, title)
    return fig
