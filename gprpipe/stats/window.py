"""Mass scan grid and blind-window selection."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["blind_mask", "scan_masses"]


def scan_masses(lo: float, hi: float, step: float) -> np.ndarray:
    """Masses ``lo, lo + step, ..., hi`` inclusive, robust to floating-point rounding.

    The count is ``floor((hi - lo) / step + 1e-6) + 1`` and every value is rounded to 1e-9 GeV,
    so ``scan_masses(0.020, 0.130, 0.001)`` has exactly 111 entries ending at 0.130.
    """
    if step <= 0:
        raise ValueError(f"scan step must be positive, got {step}")
    if hi < lo:
        raise ValueError(f"scan range is empty: lo={lo} > hi={hi}")
    n = math.floor((hi - lo) / step + 1e-6) + 1
    return np.round(lo + step * np.arange(n), 9)


def blind_mask(centres: ArrayLike, mass: float, sigma: float, nsigma: float) -> np.ndarray:
    """Boolean mask of the bins whose centre lies within ``nsigma * sigma`` of ``mass``."""
    x = np.asarray(centres, dtype=float)
    return np.abs(x - mass) <= nsigma * sigma
