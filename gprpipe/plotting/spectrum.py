"""The loaded invariant-mass spectrum of each dataset."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np


def spectrum_figure(spectra: Mapping[str, tuple[np.ndarray, np.ndarray, tuple[float, float]]],
                    title: str = ""):
    """``spectra``: dataset -> (counts, edges, scan range). Log y, counts per bin."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, (counts, edges, rng) in spectra.items():
        ax.stairs(np.where(counts > 0, counts, np.nan), edges * 1e3, label=name, linewidth=1.2)
        ax.axvspan(rng[0] * 1e3, rng[1] * 1e3, alpha=0.06)
    ax.set_yscale("log")
    ax.set_xlabel(r"$m(e^+e^-)$ [MeV]")
    ax.set_ylabel("Events / bin")
    ax.set_title(title or "Invariant-mass spectrum (shaded: scan range)", fontsize=12)
    ax.legend(frameon=False)
    return fig
