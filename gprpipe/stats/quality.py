"""Quality of the GP background model at one test mass, and the ``status`` vocabulary.

``gp_converged`` says the optimiser converged, not that the model fits. Two checks flag a
row whose Z must not count as a discovery:

* **goodness of fit** near the window: on the training bins within ``gof_nsigma * sigma``
  of either window edge, the Pearson chi2 ``sum (y - b)^2 / b`` of the counts against the GP
  prediction ``b`` (lognormal mean of the posterior at those bins). The GP is a linear
  smoother of the log-counts with hat matrix ``H = K (K + D)^-1``; the local effective number
  of fitted parameters is ``sum_i H_ii`` over those bins, so
  ``ndf = n_local - sum_i H_ii`` and ``gof_p = P(chi2_ndf > chi2)``;
* **two sidebands**: at least ``min_sideband_bins`` training bins on each side of the
  window within that region (otherwise the window is an extrapolation);
* **sparse window** (:func:`window_sparsity`): the GP fits ln y weighted by y, which
  puts its background about half an event per bin above the truth at any count; over a
  window of k bins next to bins of mu events that biases A_hat by about -0.3 sqrt(k/mu)
  sigma_A, which GOF cannot see. Flagged where ``S = sqrt(k / mu) > SPARSE_S_MAX``.

Status vocabulary (one place, reused by the limit step, plots, summaries and toy scans):
``"ok"``; flags ``"flag_gof"``, ``"flag_one_sideband"``, ``"flag_sparse"`` and, for a
``combined`` row that lacks a dataset covering its mass, ``"flag_dataset_left_out"``,
joined with ``"+"`` when several apply (``"flag_gof+flag_one_sideband"``); any other
string is a failure whose message says why (``"fit failed: ..."``, ``"limit failed:
..."``, ``"no GP fit for this mass"``).
Flagged rows carry every number (but an observed toy limit the toys could not resolve:
NaN, the flag standing over that failure); only ``"ok"`` rows count for the maximum local
significance and the global correction. A failed row has no numbers, except one whose
observed toy limit alone was unresolved (``"limit failed: observed toy limit unresolved:
..."``, :func:`observed_unresolved`): it keeps A_hat, sigma_A, q0, p0 and Z_local and
its expected band (none of which depends on the observed limit), which the expected
curves show (:func:`has_expected`); as a failure it counts for no discovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # scipy and the GP are imported by window_gof: the status vocabulary
    from .gp import GPHyper  # alone (run summaries) does not need them

__all__ = [
    "FLAGS",
    "FLAG_DATASET_LEFT_OUT",
    "FLAG_GOF",
    "FLAG_ONE_SIDEBAND",
    "FLAG_SPARSE",
    "LIMIT_FAILED",
    "MAX_WINDOW_REL_ERROR",
    "OBSERVED_UNRESOLVED",
    "SPARSE_S_MAX",
    "STATUS_OK",
    "Gof",
    "counts_for_discovery",
    "fit_usable",
    "flag_over_unresolved",
    "flag_status",
    "flags_of",
    "has_expected",
    "has_result",
    "is_flagged",
    "observed_unresolved",
    "searched_rows",
    "unresolved_rows",
    "unresolved_status",
    "window_determined",
    "window_gof",
    "window_sparsity",
]

STATUS_OK = "ok"
#: the prefix of a row whose fit is usable but whose limit failed
LIMIT_FAILED = "limit failed"
#: what follows ``limit failed: `` (``combined limit failed: ``) in the status of a row
#: whose observed toy limit alone could not be resolved (too few toys): the row keeps
#: every other column (:func:`observed_unresolved`)
OBSERVED_UNRESOLVED = "observed toy limit unresolved"
FLAG_GOF = "flag_gof"
FLAG_ONE_SIDEBAND = "flag_one_sideband"
FLAG_SPARSE = "flag_sparse"
#: a ``combined`` row without a dataset that covers its mass (that dataset's fit failed)
FLAG_DATASET_LEFT_OUT = "flag_dataset_left_out"
FLAGS = (FLAG_GOF, FLAG_ONE_SIDEBAND, FLAG_SPARSE, FLAG_DATASET_LEFT_OUT)

#: The default of ``fit.sparse_s_max``: the largest window sparsity ``S = sqrt(k / mu)``
#: (:func:`window_sparsity`) of an unflagged row. A closure study (real 2015/2016/2021 toys of
#: three functional forms each, binomially thinned by 1 to 1e-3: 1,260 scans, 213,360 rows)
#: measured the pull of A_hat that the GP background alone causes, -0.03 at S < 0.3, -0.12 at
#: 0.3-0.5, -0.19 at 0.6-0.7, -0.22 at 0.7-0.8, -0.5 at 1-1.5, -1.0 at 2-3 (each +-0.02): 0.7 is
#: where it passes -0.2 (0.68 +- 0.08), not a value chosen for any case. GOF passed 99.8% of those
#: rows. The real spectra reach S = 0.51 (2015), 0.54 (2016), 0.77 (2021, at 247-250 MeV, about 48
#: events per bin: flagged).
SPARSE_S_MAX = 0.7
#: how far beyond the excluded region (in sigma(m)) the bins that set ``mu`` lie
SPARSE_NEAR_NSIGMA = 2.0
_SEP = "+"


#: A window background whose standard deviation reaches its own size in some bin is no
#: interpolation of the sidebands (latent variance above ln 2): such a fit fails (the fit
#: step's masses, refit toys). On the real 2015, 2016 and 2021 spectra the largest is 0.053.
MAX_WINDOW_REL_ERROR = 1.0


def window_determined(b: ArrayLike, C: ArrayLike) -> bool:
    """The sidebands determine the window background ``b`` (covariance ``C``): finite, and
    its relative standard deviation below :data:`MAX_WINDOW_REL_ERROR` in every bin."""
    b, C = np.asarray(b, dtype=float), np.asarray(C, dtype=float)
    if not (np.isfinite(b).all() and np.isfinite(C).all()):
        return False
    return bool(np.max(np.sqrt(np.diag(C)) / b) < MAX_WINDOW_REL_ERROR)


def fit_usable(status: str) -> bool:
    """A scan row whose GP fit has a result: ok, flagged, or only its limit failed (the
    combination takes such a fit)."""
    return has_result(status) or str(status).startswith(f"{LIMIT_FAILED}:")


def flag_status(flags: list[str] | tuple[str, ...]) -> str:
    """``"ok"`` for no flags, else the flags (in :data:`FLAGS` order) joined with ``+``."""
    unknown = set(flags) - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown quality flags {sorted(unknown)}")
    return _SEP.join(f for f in FLAGS if f in flags) or STATUS_OK


def flags_of(status: str) -> tuple[str, ...]:
    """The quality flags in a status (empty for ``ok`` and for failures)."""
    parts = str(status).split(_SEP)
    return tuple(parts) if parts and all(p in FLAGS for p in parts) else ()


def is_flagged(status: str) -> bool:
    """The row has results but failed a background-model quality check."""
    return bool(flags_of(status))


def has_result(status: str) -> bool:
    """The row carries fit/limit numbers (``ok`` or flagged, not a failure)."""
    return str(status) == STATUS_OK or is_flagged(status)


def observed_unresolved(status: str) -> bool:
    """A failed row whose observed toy limit alone was unresolved (too few toys): its
    fit, significance and expected band are kept, the observed limit is NaN."""
    s = str(status)
    return any(
        s.startswith(f"{p}: {OBSERVED_UNRESOLVED}: ")
        for p in (LIMIT_FAILED, f"combined {LIMIT_FAILED}")
    )


def limits_shown(status: str) -> bool:
    """A row whose limits are shown (tables, exports, figures): ``ok``, or one whose
    observed toy limit alone was unresolved (its expected limits stand, its observed
    limit is NaN)."""
    return str(status) == STATUS_OK or observed_unresolved(status)


def unresolved_status(exc: object, combined: bool = False) -> str:
    """The status of a (``combined``) row whose observed toy limit could not be resolved,
    ``exc`` the :class:`~.cls.UnresolvedToyLimit` that says why: a failure
    (:func:`observed_unresolved`) naming the key to raise."""
    prefix = f"combined {LIMIT_FAILED}" if combined else LIMIT_FAILED
    return f"{prefix}: {OBSERVED_UNRESOLVED}: {exc}: raise limit.n_toys"


def flag_over_unresolved(status: str, unresolved: str) -> str:
    """The status of a row whose observed toy limit alone was unresolved (``unresolved``,
    :func:`unresolved_status`) and whose fit had ``status``: a quality flag stands over it
    (the row is not quoted either way; its observed limit is NaN)."""
    return unresolved if status == STATUS_OK else status


def has_expected(status: str) -> bool:
    """The row carries its expected band: it has results (:func:`has_result`), or only
    its observed toy limit was unresolved (:func:`observed_unresolved`)."""
    return has_result(status) or observed_unresolved(status)


def unresolved_rows(status: ArrayLike) -> NDArray[np.bool_]:
    """Rows whose observed toy limit alone was unresolved (:func:`observed_unresolved`):
    their expected band stands, their observed limit is NaN."""
    return np.array([observed_unresolved(s) for s in np.asarray(status).astype(str)], bool)


def counts_for_discovery(status: ArrayLike) -> NDArray[np.bool_]:
    """Rows that count for the maximum local significance and the global correction."""
    out: NDArray[np.bool_] = np.asarray(status).astype(str) == STATUS_OK
    return out


def searched_rows(status: ArrayLike) -> NDArray[np.bool_]:
    """Rows whose mass the search looked at with a valid fit (:func:`counts_for_discovery`,
    and those whose observed toy limit alone was unresolved: their Z_local stands). The
    trials of a toy look-elsewhere correction: which of them there are must not depend on
    how the observed limit was computed."""
    return counts_for_discovery(status) | unresolved_rows(status)


@dataclass(frozen=True)
class Gof:
    """Goodness of fit near one window (NaN when the region holds no training bin)."""

    chi2: float
    ndf: float
    p: float
    n_lo: int  # training bins below the window within the region
    n_hi: int  # ... above

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")


def window_gof(
    x: ArrayLike,
    y: ArrayLike,
    train: ArrayLike,
    mass: float,
    half_width: float,
    reach: float,
    hyper: GPHyper,
) -> Gof:
    """GP goodness of fit on the training bins within ``reach`` (GeV) of the window edges.

    ``x``, ``y``: bin centres and counts of the whole histogram; ``train``: the GP training
    mask; ``half_width``: the half-width of the excluded region around ``mass`` (GeV).
    """
    from scipy.special import chdtrc  # = scipy.stats.chi2.sf, without importing scipy.stats

    from .gp import latent_mean_map, predict_counts

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    train = np.asarray(train, dtype=bool)
    d = x - mass
    near = train & (np.abs(d) <= half_width + reach)
    n_lo, n_hi = int(np.sum(near & (d < 0))), int(np.sum(near & (d > 0)))
    if not near.any():
        return Gof(float("nan"), float("nan"), float("nan"), n_lo, n_hi)
    xt, yt = x[train], y[train]
    b, _ = predict_counts(xt, yt, x[near], hyper)
    M = latent_mean_map(xt, yt, x[near], hyper)
    pos = np.flatnonzero(train)  # column of each training bin in M
    col = np.searchsorted(pos, np.flatnonzero(near))
    trace = float(np.sum(M[np.arange(len(col)), col]))
    chi2 = float(np.sum((y[near] - b) ** 2 / np.maximum(b, 1e-300)))
    ndf = max(float(near.sum()) - trace, 1.0)
    return Gof(chi2, ndf, float(chdtrc(ndf, chi2)), n_lo, n_hi)


def window_sparsity(
    x: ArrayLike,
    y: ArrayLike,
    train: ArrayLike,
    blind: ArrayLike,
    mass: float,
    half_width: float,
    sigma: float,
) -> float:
    """``S = sqrt(k / mu)``: ``k`` the bins of the blind window (``blind``), ``mu`` the
    mean count of the training bins (``train``) within :data:`SPARSE_NEAR_NSIGMA` ``sigma``
    beyond the excluded ``half_width`` around ``mass`` on either side; NaN without such
    bins, infinite where they hold no event. Training bins only: the same blinded."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = np.abs(x - mass)
    near = np.asarray(train, bool) & (d <= half_width + SPARSE_NEAR_NSIGMA * sigma)
    if not near.any():
        return float("nan")
    mu = float(np.mean(y[near]))
    k = int(np.sum(np.asarray(blind, bool)))
    return float(np.sqrt(k / mu)) if mu > 0 else float("inf")


def toys_biased(frac: ArrayLike, err: ArrayLike, nsigma: float = 3.0) -> NDArray[np.bool_]:
    """Where the whole-scan toys' ``Z_local = 0`` fraction at a mass
    (:func:`gprpipe.stats.lee.zero_fraction`) lies more than ``nsigma`` of its errors from
    0.5; False where either is NaN."""
    f, e = np.asarray(frac, dtype=float), np.asarray(err, dtype=float)
    with np.errstate(invalid="ignore"):
        out: NDArray[np.bool_] = np.abs(f - 0.5) > nsigma * e
    return out
