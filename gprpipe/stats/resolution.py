"""Mass resolution sigma(m) and radiative fraction f_rad(m) polynomials (dataset cards)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["f_rad", "polyval", "sigma_m"]


def polyval(coeffs: Sequence[float] | ArrayLike, m: ArrayLike) -> np.ndarray:
    """Return ``sum_k coeffs[k] * m**k`` (ascending powers), vectorised over ``m``."""
    c = np.asarray(coeffs, dtype=float).ravel()
    x = np.asarray(m, dtype=float)
    out = np.zeros_like(x)
    for ck in c[::-1]:  # Horner
        out = out * x + ck
    return out


def sigma_m(
    m: ArrayLike,
    coeffs: Sequence[float] | ArrayLike,
    tail_m0: float | None = None,
    tail_slope: float | None = None,
) -> np.ndarray:
    """Mass resolution sigma(m) in GeV.

    Above ``tail_m0`` (when both tail arguments are given) the polynomial is replaced by the
    linear tail ``sigma(m0) + tail_slope * (m - m0)`` (2016 card: m0 = 0.18, slope = 0.0239).
    """
    x = np.asarray(m, dtype=float)
    s = polyval(coeffs, x)
    if tail_m0 is not None and tail_slope is not None:
        s0 = float(polyval(coeffs, tail_m0))
        s = np.where(x > tail_m0, s0 + tail_slope * (x - tail_m0), s)
    return s


def f_rad(m: ArrayLike, coeffs: Sequence[float] | ArrayLike, penalty: float = 0.0) -> np.ndarray:
    """Radiative fraction ``polyval(coeffs, m) * (1 - penalty)`` (e.g. penalty 0.07, 'rpen7')."""
    return polyval(coeffs, m) * (1.0 - penalty)
