"""Joint fit of several blind windows with one shared eps^2 (docs/method.md section 10).

At one mass, the blind windows of the datasets ``d`` are concatenated into a single window:

    lam = b + L theta + eps2 * s_unit,   s_unit_d = K_d w_d,   K_d = A_d(eps^2 = 1),

with ``L`` block-diagonal (independent GP nuisances ``theta_d`` per dataset) and
``K_d = 3 pi m f_rad,d rho_d / (2 alpha_em)``. This is exactly the single-window problem of
:mod:`gprpipe.stats.likelihood` with template ``s_unit``, so the joint fit, q~, the
asymptotic and toy CLs limits, the expected bands and q0 all reuse that machinery
(vectorised over toys). eps^2 is fitted in a rescaled unit ``mu = eps2 / scale`` with
``scale = (sum_i s_unit_i^2 / max(b_i, 1))^-1/2`` (the Poisson-only standard error of eps^2),
so the optimiser works on an O(1) parameter; every public result is converted back to eps^2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import block_diag

from . import cls, significance
from .conversion import A_from_eps2
from .likelihood import FitResult, WindowModel, cholesky_jitter

__all__ = [
    "Block",
    "Combined",
    "combine",
    "combined_limits",
    "eps2_scale",
    "expected_limits",
    "expected_limits_toys",
    "fit",
    "q0",
    "unit_yield",
    "upper_limit",
    "upper_limit_toys",
]


def unit_yield(mass: float, frad: float, rho: float) -> float:
    """``K = A(eps^2 = 1) = 3 pi m f_rad rho / (2 alpha_em)``: signal yield per unit eps^2."""
    return float(A_from_eps2(1.0, mass, frad, rho))


@dataclass(frozen=True)
class Block:
    """One dataset's blind window at a mass: counts ``n``, background ``b``, covariance
    ``C``, template ``w`` (fraction of the signal per bin) and ``k_unit`` = yield per eps^2.
    """

    n: NDArray[np.float64]
    b: NDArray[np.float64]
    C: NDArray[np.float64]
    w: NDArray[np.float64]
    k_unit: float
    name: str = ""


@dataclass
class Combined:
    """Concatenated window: ``lam = b + L theta + mu * t`` with ``t = s_unit * scale``."""

    n: NDArray[np.float64]
    b: NDArray[np.float64]
    C: NDArray[np.float64]
    L: NDArray[np.float64]
    s_unit: NDArray[np.float64]
    scale: float
    slices: list[slice] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    k_units: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def t(self) -> NDArray[np.float64]:
        """Template of the rescaled strength ``mu = eps2 / scale``."""
        return self.s_unit * self.scale

    @cached_property
    def model(self) -> WindowModel:
        """The window model of the rescaled strength (built once per object)."""
        return WindowModel(self.b, self.L, self.t)

    @property
    def k_total(self) -> float:
        """Total signal yield over all combined datasets per unit eps^2 (``sum_d K_d``)."""
        return float(np.sum(self.k_units))


def eps2_scale(b: ArrayLike, s_unit: ArrayLike) -> float:
    """Poisson-only standard error of eps^2, ``(sum s_unit^2 / max(b, 1))^-1/2``."""
    b = np.asarray(b, dtype=float)
    s = np.asarray(s_unit, dtype=float)
    info = float(np.sum(s * s / np.maximum(b, 1.0)))
    if not info > 0 or not np.isfinite(info):
        raise ValueError("combined template carries no information on eps^2")
    return float(1.0 / np.sqrt(info))


def combine(blocks: Sequence[Block], *, scale: float | None = None) -> Combined:
    """Concatenate blind windows into one window with block-diagonal ``C`` and ``L``."""
    if not blocks:
        raise ValueError("nothing to combine")
    n = np.concatenate([np.asarray(x.n, dtype=float) for x in blocks])
    b = np.concatenate([np.asarray(x.b, dtype=float) for x in blocks])
    C = block_diag(*[np.atleast_2d(np.asarray(x.C, dtype=float)) for x in blocks])
    L = block_diag(*[cholesky_jitter(x.C) for x in blocks])
    s_unit = np.concatenate([x.k_unit * np.asarray(x.w, dtype=float) for x in blocks])
    slices, start = [], 0
    for x in blocks:
        slices.append(slice(start, start + len(x.b)))
        start += len(x.b)
    sc = eps2_scale(b, s_unit) if scale is None else float(scale)
    return Combined(
        n=n,
        b=b,
        C=C,
        L=L,
        s_unit=s_unit,
        scale=sc,
        slices=slices,
        names=[x.name for x in blocks],
        k_units=np.array([x.k_unit for x in blocks], dtype=float),
    )


def _n(cw: Combined, n: ArrayLike | None) -> NDArray[np.float64]:
    return cw.n if n is None else np.asarray(n, dtype=float)


def fit(
    cw: Combined, n: ArrayLike | None = None, *, allow_negative: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64], FitResult]:
    """Joint fit: ``(eps2_hat, sigma_eps2, fit)``; ``n`` (``(..., K)``) defaults to the
    observed counts; ``fit`` is in the rescaled unit (``A_hat = eps2_hat / scale``).
    """
    f = cw.model.fit(_n(cw, n), allow_negative=allow_negative)
    return f.A_hat * cw.scale, f.sigma_A * cw.scale, f


def _calculator(
    cw: Combined,
    kind: str,
    alpha: float,
    n_toys: int = 2000,
    band_toys: int = 10000,
    rng: np.random.Generator | None = None,
) -> cls.Calculator:
    return cls.calculator(kind, cw.model, alpha=alpha, n_toys=n_toys, band_toys=band_toys, rng=rng)


def upper_limit(
    cw: Combined,
    alpha: float = 0.05,
    n: ArrayLike | None = None,
    *,
    fit_result: FitResult | None = None,
) -> NDArray[np.float64]:
    """Asymptotic CLs upper limit on eps^2 (vectorised over toys in ``n``)."""
    mu = _calculator(cw, "asymptotic", alpha).upper_limit(_n(cw, n), fit_result)
    return mu * cw.scale


def expected_limits(cw: Combined, alpha: float = 0.05) -> NDArray[np.float64]:
    """Asymptotic expected eps^2 limits for N = -2, -1, 0, +1, +2 (root finding per band)."""
    return _calculator(cw, "asymptotic", alpha).expected_band() * cw.scale


def expected_limits_toys(
    cw: Combined, alpha: float, n_toys: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Toy expected eps^2 band (2.5/16/50/84/97.5% quantiles of per-toy limits)."""
    return _calculator(cw, "toys", alpha, band_toys=n_toys, rng=rng).expected_band() * cw.scale


def upper_limit_toys(cw: Combined, alpha: float, n_toys: int, rng: np.random.Generator) -> float:
    """Observed eps^2 limit from toy-based CLs."""
    up = _calculator(cw, "toys", alpha, n_toys=n_toys, rng=rng).upper_limit(cw.n)
    return float(up) * cw.scale


def q0(
    cw: Combined, n: ArrayLike | None = None, *, fit_result: FitResult | None = None
) -> NDArray[np.float64]:
    """Discovery statistic of the shared eps^2 (``eps2_hat > 0``), vectorised over toys."""
    return cw.model.q0(_n(cw, n), fit_result)


def combined_limits(
    cw: Combined,
    *,
    alpha: float = 0.05,
    mode: str = "asymptotic",
    bands: str = "asymptotic",
    n_toys: int = 2000,
    band_toys: int = 10000,
    rng: np.random.Generator | None = None,
    observed: bool = True,
) -> dict[str, float | NDArray[np.float64]]:
    """Everything a scan row needs, in eps^2: ``eps2_hat``, ``sigma_eps2``, ``eps2_up``
    and its Monte Carlo error ``eps2_up_err`` (NaN for asymptotic limits and where
    :meth:`~.cls.ToyCalculator.upper_limit_with_error` has none), ``eps2_exp``
    (5 bands) and its Monte Carlo error ``exp_band_rel_err``
    (:func:`~.cls.band_relative_error`), ``q0``, ``Z_local``, ``p0_local``; with
    ``observed=False`` only the band and its error (nothing touches ``cw.n``). An
    observed toy limit too few toys cannot resolve raises
    :class:`~.cls.UnresolvedToyLimit` holding the rest in its ``partial``.
    ``mode`` / ``bands``: the calculators
    (:data:`~.cls.CALCULATORS`) of the observed limit and of the expected band.
    """
    rng = np.random.default_rng() if rng is None else rng
    band_calc = _calculator(cw, bands, alpha, n_toys, band_toys, rng)
    if not observed:
        band, band_err = band_calc.expected_band_with_error()
        return {
            "eps2_exp": band * cw.scale,
            "exp_band_rel_err": cls.band_relative_error(band, band_err),
        }
    e_hat, s_e, f = fit(cw)
    if not (bool(f.converged) and np.isfinite(s_e)):
        raise ValueError(
            f"the signal fit did not converge (eps2_hat {float(e_hat):.4g}, "
            f"sigma_eps2 {float(s_e):.4g})"
        )
    band, band_err = band_calc.expected_band_with_error()  # first: blinded or not alike
    exp = band * cw.scale
    q = float(cw.model.q0(cw.n, f))
    z = float(significance.z_local(q))
    out: dict[str, float | NDArray[np.float64]] = {
        "eps2_hat": float(e_hat),
        "sigma_eps2": float(s_e),
        "eps2_exp": exp,
        "exp_band_rel_err": cls.band_relative_error(band, band_err),
        "q0": q,
        "Z_local": z,
        "p0_local": float(significance.p_local(z)),
    }
    try:
        up, up_err = _calculator(cw, mode, alpha, n_toys, band_toys, rng).upper_limit_with_error(
            cw.n, f
        )
    except cls.UnresolvedToyLimit as exc:  # the rest stands: the caller may keep it
        exc.partial = out
        raise
    return out | {"eps2_up": float(up) * cw.scale, "eps2_up_err": float(up_err) * cw.scale}
