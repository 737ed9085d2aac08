"""Combination bookkeeping and sensitivity projections: pure numerics, arrays in and out.

With independent datasets the joint (shared eps^2) fit has, to first order, the
information of the datasets added: ``1 / sigma_c^2 = sum_d 1 / sigma_d^2`` (``sigma_d`` the
eps^2 uncertainty of dataset ``d`` alone). So

* the information fraction of ``d`` is ``f_d = sigma_d^-2 / sum_e sigma_e^-2``;
* a signal seen with ``Z_c`` in the combination is expected with ``Z_d = Z_c sqrt(f_d)`` in
  ``d`` alone (``sum_d Z_d^2 = Z_c^2``), at ``eps^2 = Z_c sigma_c``, i.e. with
  ``A_d = Z_c sigma_c K_d`` signal events in ``d``;
* expected limits, proportional to sigma in the Gaussian regime, combine as
  ``L_c = (sum_d L_d^-2)^-1/2``, and scaling a dataset's luminosity by ``s`` (signal and
  background both ``x s``) scales its eps^2 sensitivity by ``1 / sqrt(s)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["combine_inverse_variance", "information_fractions", "project", "z_needed"]


def information_fractions(sigma: ArrayLike) -> NDArray[np.float64]:
    """``f_d = sigma_d^-2 / sum sigma^-2`` along axis 0 (NaN/inf sigma: no information)."""
    s = np.asarray(sigma, dtype=float)
    info = np.where(np.isfinite(s) & (s > 0), 1.0 / np.where(s > 0, s, 1.0) ** 2, 0.0)
    tot = info.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, info / tot, np.nan)


def combine_inverse_variance(x: ArrayLike) -> NDArray[np.float64]:
    """``(sum_d x_d^-2)^-1/2`` along axis 0 over the finite, positive entries (NaN if none)."""
    a = np.asarray(x, dtype=float)
    ok = np.isfinite(a) & (a > 0)
    inv = np.where(ok, 1.0 / np.where(ok, a, 1.0) ** 2, 0.0).sum(axis=0)
    with np.errstate(divide="ignore"):
        return np.where(inv > 0, 1.0 / np.sqrt(inv), np.nan)


def z_needed(fractions: ArrayLike, z_combined: float = 5.0) -> NDArray[np.float64]:
    """Per-dataset expected Z of a signal that the combination sees at ``z_combined``."""
    out: NDArray[np.float64] = z_combined * np.sqrt(np.asarray(fractions, dtype=float))
    return out


def project(
    limits: ArrayLike, factors: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Expected limits ``(D, M)`` scaled by ``1/sqrt(factors)`` ``(D,)``, and combined."""
    lim = np.asarray(limits, dtype=float) / np.sqrt(np.asarray(factors, dtype=float))[:, None]
    return lim, combine_inverse_variance(lim)
