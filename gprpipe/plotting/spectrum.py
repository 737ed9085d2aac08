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
            # one band per run of hidden bins, edge to edge (a fill over the bins' left
            # edges stopped one bin short of the hidden data; a review)
            step = np.diff(np.concatenate([[0], np.asarray(mask, dtype=int), [0]]))
            for k, (a, b) in enumerate(zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1))):
                ax.axvspan(
                    edges[a] * 1e3,
                    edges[b] * 1e3,
                    color="gray",
                    alpha=0.25,
                    linewidth=0,
                    label=f"{name}: blinded windows" if k == 0 else None,
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
