"""Mass scan grid and the blind / training windows of a test mass."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["MIN_TRAIN_BINS", "WindowMasks", "blind_mask", "scan_masses"]

MIN_TRAIN_BINS = 3  # the fewest training bins a GP fit takes


def scan_masses(
    lo: float, hi: float, step: float, origin: float | None = None
) -> NDArray[np.float64]:
    """Masses ``origin + k * step`` in ``[lo, hi]`` (inclusive; ``origin`` defaults to
    ``lo``: ``lo, lo + step, ..., hi``), robust to floating-point rounding.

    Every value is rounded to 1e-9 GeV, so ``scan_masses(0.020, 0.130, 0.001)`` has exactly
    111 entries ending at 0.130. A common ``origin`` puts the grids of several ranges on
    the same masses (a combination meets them only at equal masses).
    """
    if step <= 0:
        raise ValueError(f"scan step must be positive, got {step}")
    if hi < lo:
        raise ValueError(f"scan range is empty: lo={lo} > hi={hi}")
    start = lo if origin is None else origin
    first, last = grid_steps(lo, hi, step, origin)
    out: NDArray[np.float64] = np.round(start + step * np.arange(first, last + 1), 9)
    return out


def grid_steps(lo: float, hi: float, step: float, origin: float | None = None) -> tuple[int, int]:
    """First and last ``k`` of the masses ``origin + k * step`` in ``[lo, hi]`` (1e-6 of a
    step of rounding tolerance): :func:`scan_masses` without building the array."""
    start = lo if origin is None else origin
    return math.ceil((lo - start) / step - 1e-6), math.floor((hi - start) / step + 1e-6)


def blind_mask(centres: ArrayLike, mass: float, sigma: float, nsigma: float) -> NDArray[np.bool_]:
    """Boolean mask of the bins whose centre lies within ``nsigma * sigma`` of ``mass``."""
    x = np.asarray(centres, dtype=float)
    out: NDArray[np.bool_] = np.abs(x - mass) <= nsigma * sigma
    return out


@dataclass(frozen=True)
class WindowMasks:
    """The blind and training bins of one test mass (resolution ``sigma``, GeV).

    Blind bins: centre within ``blind_nsigma * sigma`` of ``mass``. Training bins: centre
    positive, in ``train_range`` (default: everywhere) and outside
    ``train_exclude_nsigma * sigma`` (default ``blind_nsigma``).
    """

    mass: float
    sigma: float
    blind_nsigma: float = 1.64
    train_exclude_nsigma: float | None = None
    train_range: tuple[float, float] | None = None

    @property
    def exclude_nsigma(self) -> float:
        """Half-width of the bins kept out of the training, in units of ``sigma``."""
        return self.blind_nsigma if self.train_exclude_nsigma is None else self.train_exclude_nsigma

    def blind(self, centres: ArrayLike) -> NDArray[np.bool_]:
        """Mask of the blind bins among bins with these centres."""
        return blind_mask(centres, self.mass, self.sigma, self.blind_nsigma)

    def train(self, centres: ArrayLike) -> NDArray[np.bool_]:
        """Mask of the GP training bins among bins with these centres."""
        x = np.asarray(centres, dtype=float)
        t = ~blind_mask(x, self.mass, self.sigma, self.exclude_nsigma) & (x > 0)
        if self.train_range is not None:
            t &= (x >= self.train_range[0]) & (x <= self.train_range[1])
        return t
