"""The loaded invariant-mass spectrum of each dataset."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from gprpipe.plotting.style import label, legend


def spectrum_figure(
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray, tuple[float, float]]],
    title: str = "",
    hidden: Mapping[str, np.ndarray] | None = None,
):
    """``spectra``: dataset label -> (counts, edges, scan range). Log y, counts per bin.
    ``hidden``: label -> boolean mask of bins not drawn (blinded windows)."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (name, (counts, edges, rng)) in enumerate(spectra.items()):
        y = np.where(counts > 0, counts, np.nan).astype(float)
        mask = (hidden or {}).get(name)
        if mask is not None and mask.any():
            y[mask] = np.nan
            ax.fill_between(
                edges[:-1] * 1e3,
                0,
                1,
                where=mask,
                step="post",
                color="gray",
                alpha=0.25,
                transform=ax.get_xaxis_transform(),
                linewidth=0,
                label=f"{name}: blinded windows",
            )
        ax.stairs(y, edges * 1e3, label=name, linewidth=1.2, color=f"C{i}")
        ax.axvspan(
            rng[0] * 1e3,
            rng[1] * 1e3,
            alpha=0.12,
            color=f"C{i}",
            linewidth=0,
            label=f"{name}: scan range",
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    ax.set_ylabel("Events / bin")
    legend(ax)
    label(ax, title)
    return fig
