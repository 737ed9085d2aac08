"""Signal leakage into the GP training bins and the leakage-aware signal template.

About 10% of a Gaussian signal lies outside a 1.64 sigma blind window, on the bins the GP
is trained on. For fixed hyperparameters the posterior mean of the latent ln-count in the
window is linear in the training targets, ``mu_win = M Z_train`` with
``M = K(X_win, X_train) (K(X_train, X_train) + D)^-1`` (:func:`~.gp.latent_mean_map`). A
signal ``A w`` raises ``Z_train = ln y_train`` by ``A w_train / y_train`` to first order, so
the fitted background in the window rises by ``A b (M (w_train / y_train))``. The
consistent template of the blind-window likelihood is therefore

    w_eff = w_win - b * (M (w_train / y_train))      (elementwise product with b)

Empty training bins (``y = 0``): the GP target there is 0 whatever the signal (ln of an
empty bin is replaced by 0), so its derivative with respect to ``A`` is 0 and the bin
contributes nothing to the leakage term.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .gp import GPHyper, latent_mean_map

__all__ = ["LEAKAGE_MODES", "leakage_shift", "leakage_template"]

LEAKAGE_MODES = ("model", "ignore")


def leakage_shift(
    x_train: ArrayLike,
    y_train: ArrayLike,
    w_train: ArrayLike,
    x_win: ArrayLike,
    b: ArrayLike,
    hyper: GPHyper,
) -> NDArray[np.float64]:
    """Rise of the fitted background in the window per unit signal yield,
    ``b * (M (w_train / y_train))`` (0 contribution from empty training bins)."""
    y = np.asarray(y_train, dtype=float).ravel()
    wt = np.asarray(w_train, dtype=float).ravel()
    if y.shape != wt.shape:
        raise ValueError("y_train and w_train must have the same length")
    full = y > 0
    r = np.where(full, wt / np.where(full, y, 1.0), 0.0)
    M = latent_mean_map(x_train, y, x_win, hyper)
    out: NDArray[np.float64] = np.asarray(b, dtype=float) * (M @ r)
    return out


def leakage_template(
    x_train: ArrayLike,
    y_train: ArrayLike,
    w_train: ArrayLike,
    x_win: ArrayLike,
    w_win: ArrayLike,
    b: ArrayLike,
    hyper: GPHyper,
) -> NDArray[np.float64]:
    """The leakage-aware template ``w_eff = w_win - b * (M (w_train / y_train))``."""
    return np.asarray(w_win, dtype=float) - leakage_shift(
        x_train, y_train, w_train, x_win, b, hyper
    )
