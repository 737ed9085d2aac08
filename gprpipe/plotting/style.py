"""Figure style and saving: HEP style via mplhep when installed, atomic PNG/PDF writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gprpipe.io.atomic import atomic_path

BAND_1 = "#00cc00"  # expected +/-1 sigma (green)
BAND_2 = "#ffcc00"  # expected +/-2 sigma (yellow)


def apply_style(style: str) -> None:
    plt.rcdefaults()
    if style == "hep":
        try:
            import mplhep

            plt.style.use(mplhep.style.ROOT)
            return
        except ImportError:
            pass
    plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100,
                         "savefig.bbox": "tight", "font.size": 11})


def save(fig, folder: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format; returns the paths."""
    out = []
    for fmt in formats:
        target = folder / f"{stem}.{fmt}"
        with atomic_path(target, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        out.append(target)
    plt.close(fig)
    return out


def label(ax, text: str) -> None:
    """Experiment-style label in the top-left corner."""
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=11,
            fontweight="bold")
