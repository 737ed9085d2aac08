"""Background-only pseudo-data in the blind window (docs/method.md section 6)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .likelihood import cholesky_jitter

__all__ = ["NegativeSignalTemplate", "SignalProcess", "background_means", "background_toys"]


class NegativeSignalTemplate(ValueError):
    """A signal template with a negative (or NaN) bin: Poisson signal counts cannot be
    drawn from it (a leakage-aware template can dip below 0)."""


class SignalProcess:
    """Signal counts ``s(A) ~ Poisson(A w)`` for a fixed set of toys, consistent across ``A``.

    One realisation of a Poisson process in ``A`` per toy and bin (common random numbers):
    counts at a new ``A`` above all cached points add ``Poisson((A - A_max) w)``; below all
    of them thin by ``Binomial(s(A_min), A / A_min)``; between two cached points split the
    difference with ``Binomial(s(hi) - s(lo), (A - lo) / (hi - lo))``. ``s(A)`` is thus
    non-decreasing in ``A`` and exactly Poisson at every ``A``.
    """

    def __init__(self, w: ArrayLike, n_toys: int, rng: np.random.Generator) -> None:
        self.w = np.atleast_1d(np.asarray(w, dtype=float))
        if not (self.w >= 0).all():
            raise NegativeSignalTemplate("the signal template has negative or NaN bins")
        self.n_toys = int(n_toys)
        self.rng = rng
        self._cache: dict[float, NDArray[np.int64]] = {
            0.0: np.zeros((self.n_toys, self.w.size), dtype=np.int64)
        }

    def __call__(self, A: float) -> NDArray[np.int64]:
        A = float(A)
        if A < 0:
            raise ValueError("signal yield must be >= 0")
        if A in self._cache:
            return self._cache[A]
        keys = np.array(sorted(self._cache))
        i = int(np.searchsorted(keys, A))
        if i == keys.size:
            top = keys[-1]
            s = self._cache[top] + self.rng.poisson(
                np.broadcast_to((A - top) * self.w, (self.n_toys, self.w.size))
            )
        else:
            lo, hi = keys[i - 1], keys[i]
            s_lo, s_hi = self._cache[lo], self._cache[hi]
            s = s_lo + self.rng.binomial(s_hi - s_lo, (A - lo) / (hi - lo))
        self._cache[A] = s
        return s


def background_means(
    b: ArrayLike,
    C: ArrayLike | None,
    n_toys: int,
    rng: np.random.Generator,
    L: ArrayLike | None = None,
    *,
    truncate: str = "clip",
) -> NDArray[np.float64]:
    """Toy background means ``b_t ~ N(b, C)`` truncated at 0, shape ``(n_toys, k)``.

    ``truncate="clip"`` sets negative bins to 0; ``"resample"`` redraws toys with any
    negative bin (up to 100 rounds, then clips), i.e. samples the truncated normal.
    """
    b = np.atleast_1d(np.asarray(b, dtype=float))
    if L is None:
        if C is None:
            raise ValueError("give C or its factor L")
        L = cholesky_jitter(C)
    L = np.asarray(L, dtype=float).reshape(b.size, -1)
    z = rng.standard_normal((int(n_toys), L.shape[1]))
    bt = b + z @ L.T
    if truncate == "resample":
        for _ in range(100):
            neg = np.any(bt < 0, axis=1)
            if not neg.any():
                break
            z = rng.standard_normal((int(neg.sum()), L.shape[1]))
            bt[neg] = b + z @ L.T
    elif truncate != "clip":
        raise ValueError(f"truncate must be 'clip' or 'resample', not {truncate!r}")
    out: NDArray[np.float64] = np.maximum(bt, 0.0)
    return out


def background_toys(
    b: ArrayLike,
    C: ArrayLike | None,
    n_toys: int,
    rng: np.random.Generator,
    L: ArrayLike | None = None,
    *,
    truncate: str = "clip",
) -> NDArray[np.int64]:
    """Background-only toy counts ``n ~ Poisson(b_t)``, ``b_t ~ N(b, C)`` truncated at 0.

    Returns integers of shape ``(n_toys, k)``. Pass ``L`` (a factor of ``C``) to skip the
    Cholesky decomposition.
    """
    bt = background_means(b, C, n_toys, rng, L, truncate=truncate)
    return rng.poisson(bt).astype(np.int64)
