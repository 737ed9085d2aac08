"""Signal yield A <-> kinetic-mixing strength eps^2 (docs/method.md section 8)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ALPHA_EM", "A_from_eps2", "eps2_from_A", "rho_window"]

ALPHA_EM = 1.0 / 137.0


def rho_window(
    edges: ArrayLike, counts: ArrayLike, mass: float, sigma: float, blind_nsigma: float
) -> float:
    """Observed counts per GeV in the blind window ``|x - m| <= blind_nsigma * sigma`` (bins
    selected by centre): ``sum(counts) / sum(widths)``; NaN if no bin centre is inside.
    """
    e = np.asarray(edges, dtype=float)
    c = np.asarray(counts, dtype=float)
    centres = 0.5 * (e[1:] + e[:-1])
    sel = np.abs(centres - mass) <= blind_nsigma * sigma
    if not np.any(sel):
        return float("nan")
    return float(np.sum(c[sel]) / np.sum(np.diff(e)[sel]))


def eps2_from_A(
    A: ArrayLike, mass: ArrayLike, frad: ArrayLike, rho: ArrayLike, alpha_em: float = ALPHA_EM
) -> NDArray[np.float64]:
    """``eps^2 = 2 alpha_em A / (3 pi m f_rad rho)`` (elementwise)."""
    out: NDArray[np.float64] = np.asarray(
        2.0
        * alpha_em
        * np.asarray(A, dtype=float)
        / (3.0 * np.pi * np.asarray(mass, float) * np.asarray(frad, float) * np.asarray(rho, float))
    )
    return out


def A_from_eps2(
    eps2: ArrayLike, mass: ArrayLike, frad: ArrayLike, rho: ArrayLike, alpha_em: float = ALPHA_EM
) -> NDArray[np.float64]:
    """Inverse of :func:`eps2_from_A`: the yield for a given ``eps^2``."""
    out: NDArray[np.float64] = np.asarray(
        np.asarray(eps2, dtype=float)
        * 3.0
        * np.pi
        * np.asarray(mass, float)
        * np.asarray(frad, float)
        * np.asarray(rho, float)
        / (2.0 * alpha_em)
    )
    return out
