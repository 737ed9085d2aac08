"""Injection / extraction closure numerics (docs/method.md section 9): pure, no I/O.

Strengths are in units of ``sigma_A,ref``, the ``sigma_A`` of the background-only Asimov
window ``n = b``: ``A_inj = z * sigma_A,ref``. Signal counts are ``Poisson(A_inj w_i)``
(``mode="poisson"``) or exactly ``round(A_inj)`` events spread over the template
(``mode="multinomial"``; the template holds each bin's fraction of all signal events, so
events falling outside the bins considered are lost, as in data). Backgrounds are always Poisson.

Two modes:

* **conditional** (:func:`inject_conditional`): blind-window background toys
  ``Poisson(b_t)``, ``b_t ~ N(b, C)`` truncated at 0, plus signal; each toy is fitted with the
  fixed ``(b, C)``. Generation and fits are vectorised over toys.
* **refit** (:func:`inject_refit`): a full-range toy histogram (``Poisson`` of the GP mean
  over every bin, or an external background histogram such as the functional-form toys),
  plus the full-range signal (about 10% of it falls in the sidebands at 1.64 sigma); the GP
  is refitted on the toy's sidebands, warm-started from the data fit (seeded restarts when
  the warm-started fit looks suspicious, one retry with every restart when it is not
  converged), and the toy is fitted with the refitted ``(b, C)``. Toys are seeded one by
  one (``SeedSequence`` children), so results do not depend on how toys are chunked.
  :func:`asimov_refit` does the same on the noise-free toy: the extraction the refit gives
  without statistics, i.e. the bias caused by the signal on the training bins
  (:func:`sideband_leak`), which the GP interpolates into the blind window.

Signal leakage (:mod:`.leakage`): with ``leakage="model"`` every fit uses the leakage-aware
template ``w_eff``. In refit mode ``w_eff`` is computed per toy from that toy's training
counts and refitted hyperparameters, and both extractions (with ``w_eff`` and with ``w``)
are kept per toy (``A_hat_w_eff``, ``A_hat_w`` in ``extra``). Conditional toys have no GP
refit, so they emulate the leak at first order: the fixed background the toys are fitted
with is raised by ``A_inj (w - w_eff)``, as a GP trained on signal-contaminated sidebands
would raise it, and the fit uses ``w_eff``.

Every routine returns an :class:`Extraction` (per-toy ``A_hat``, ``sigma_A``, pulls) whose
:meth:`Extraction.summary` gives the ``inject.csv`` figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import combine as comb
from .gp import GPHyper, GPOptions, WindowFit, fit_window, predict_counts
from .leakage import LEAKAGE_MODES, leakage_template
from .likelihood import WindowModel, cholesky_jitter
from .quality import window_determined
from .toys import background_toys
from .window import WindowMasks

__all__ = [
    "Extraction",
    "RefitSetup",
    "RefitToys",
    "asimov_refit",
    "asimov_refit_combined",
    "conditional_toys",
    "conditional_toys_combined",
    "extract",
    "extract_each",
    "full_range_mean",
    "full_range_toy",
    "inject_conditional",
    "inject_conditional_combined",
    "inject_refit",
    "inject_refit_combined",
    "refit_toys",
    "sideband_leak",
    "sigma_ref",
    "signal_counts",
    "summarize",
]

MODES = ("poisson", "multinomial")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
#: Fractions of Gaussian pulls within 1 and 2 standard deviations (the coverage targets)
COVERAGE = (0.6827, 0.9545)


def summarize(
    A_inj: float, A_hat: ArrayLike, sigma_A: ArrayLike, use: ArrayLike | None = None
) -> dict[str, float]:
    """``inject.csv`` figures over the toys in ``use`` with a finite, positive ``sigma_A``.

    ``pull = (A_hat - A_inj) / sigma_A``; ``pull_width`` and ``A_hat_std`` are sample
    standard deviations (NaN for one toy) and ``pull_mean_err = pull_width / sqrt(n)``;
    ``cov_1sigma``/``cov_2sigma`` the fractions with ``|pull| < 1, 2`` (targets
    :data:`COVERAGE`), with their binomial errors for Gaussian pulls,
    ``sqrt(t (1 - t) / n)`` at the target ``t`` (not at the fraction: 20 toys all
    inside 2 sigma_A are no coverage of 1 +- 0); ``Zhat_mean`` the mean of
    ``A_hat / sigma_A``.
    """
    a = np.asarray(A_hat, dtype=float).reshape(-1)
    s = np.asarray(sigma_A, dtype=float).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(s) & (s > 0)
    if use is not None:
        ok &= np.asarray(use, dtype=bool).reshape(-1)
    n = int(ok.sum())
    nan = float("nan")
    if n == 0:
        return {
            "n_kept": 0,
            "A_hat_mean": nan,
            "A_hat_std": nan,
            "pull_mean": nan,
            "pull_mean_err": nan,
            "pull_width": nan,
            "cov_1sigma": nan,
            "cov_1sigma_err": nan,
            "cov_2sigma": nan,
            "cov_2sigma_err": nan,
            "Zhat_mean": nan,
        }
    a, s = a[ok], s[ok]
    pull = (a - A_inj) / s
    width = float(pull.std(ddof=1)) if n > 1 else nan  # one toy has no spread
    c1, c2 = float(np.mean(np.abs(pull) < 1.0)), float(np.mean(np.abs(pull) < 2.0))
    t1, t2 = COVERAGE
    return {
        "n_kept": n,
        "A_hat_mean": float(a.mean()),
        "A_hat_std": float(a.std(ddof=1)) if n > 1 else nan,
        "pull_mean": float(pull.mean()),
        "pull_mean_err": width / np.sqrt(n),
        "pull_width": width,
        "cov_1sigma": c1,
        "cov_1sigma_err": float(np.sqrt(t1 * (1.0 - t1) / n)),
        "cov_2sigma": c2,
        "cov_2sigma_err": float(np.sqrt(t2 * (1.0 - t2) / n)),
        "Zhat_mean": float(np.mean(a / s)),
    }


@dataclass
class Extraction:
    """Per-toy results at one injected yield ``A_inj``.

    ``converged``: the likelihood fit converged (and, in refit mode, the GP refit too); the
    summary uses those toys only. ``extra`` holds per-toy diagnostics (refit mode: GP
    hyperparameters, LML, convergence).
    """

    A_inj: float
    A_hat: NDArray[np.float64]
    sigma_A: NDArray[np.float64]
    converged: NDArray[np.bool_]
    extra: dict[str, NDArray[np.generic]] = field(default_factory=dict)

    @property
    def pull(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.A_hat - self.A_inj) / self.sigma_A

    @property
    def z_hat(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.A_hat / self.sigma_A

    def summary(self) -> dict[str, float]:
        return summarize(self.A_inj, self.A_hat, self.sigma_A, self.converged)

    def scaled(self, k: float) -> Extraction:
        """The same toys with yields in another unit (``A -> k A``; pulls unchanged)."""
        return replace(self, A_inj=self.A_inj * k, A_hat=self.A_hat * k, sigma_A=self.sigma_A * k)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------
def sigma_ref(b: ArrayLike, L: ArrayLike, w: ArrayLike) -> float:
    """``sigma_A`` on the background-only Asimov window ``n = b`` (the strength unit)."""
    return float(WindowModel(b, L, w).fit(np.asarray(b, float)).sigma_A)


def signal_counts(
    A: float, w: ArrayLike, n_toys: int, rng: np.random.Generator, mode: str = "poisson"
) -> NDArray[np.int64]:
    """Signal counts ``(n_toys, k)``: ``Poisson(A w)`` or ``Multinomial(round(A), w)``.

    ``w`` is the template on the bins considered (a fraction of the full-histogram
    template; in multinomial mode the events outside those bins are dropped).
    """
    w = np.asarray(w, dtype=float)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if A < 0:
        raise ValueError(f"injected yield must be >= 0, got {A}")
    if A == 0:
        return np.zeros((int(n_toys), w.size), dtype=np.int64)
    if mode == "poisson":
        return rng.poisson(A * w, size=(int(n_toys), w.size)).astype(np.int64)
    rest = max(0.0, 1.0 - float(w.sum()))
    p = np.append(w, rest)
    p /= p.sum()
    return rng.multinomial(round(A), p, size=int(n_toys))[:, :-1].astype(np.int64)


def extract(
    n: ArrayLike, b: ArrayLike, L: ArrayLike, w: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """``(A_hat, sigma_A, converged)`` of toys ``n`` ``(T, k)`` with one fixed ``(b, L)``."""
    f = WindowModel(b, L, w).fit(np.asarray(n, dtype=float))
    return f.A.copy(), f.sigma.copy(), f.conv.copy()


def extract_each(
    n: ArrayLike, b: ArrayLike, C: ArrayLike, w: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """As :func:`extract` with one ``(b_t, C_t)`` per toy (refit mode): ``b`` ``(T, k)``,
    ``C`` ``(T, k, k)``; ``w`` is one template ``(k,)`` or one per toy ``(T, k)``.
    """
    n = np.asarray(n, dtype=float)
    T = n.shape[0]
    w = np.asarray(w, dtype=float)
    ws = np.broadcast_to(w, n.shape) if w.ndim == 1 else w
    out = np.full((2, T), np.nan)
    conv = np.zeros(T, dtype=bool)
    ba, Ca = np.asarray(b, dtype=float), np.asarray(C, dtype=float)
    for t in range(T):
        if not (np.all(np.isfinite(ba[t])) and np.all(np.isfinite(ws[t]))):
            continue
        f = WindowModel.from_covariance(ba[t], Ca[t], ws[t]).fit(n[t])
        out[:, t] = f.A_hat, f.sigma_A
        conv[t] = bool(f.converged)
    return out[0], out[1], conv


# --------------------------------------------------------------------------------------
# Conditional mode
# --------------------------------------------------------------------------------------
def inject_conditional(
    b: ArrayLike,
    C: ArrayLike,
    w: ArrayLike,
    A_inj: float,
    n_toys: int,
    rng: np.random.Generator,
    *,
    mode: str = "poisson",
    L: ArrayLike | None = None,
    w_eff: ArrayLike | None = None,
) -> Extraction:
    """Conditional closure toys in the blind window, fitted with the fixed ``(b, C)``.

    The signal is always drawn from ``w``. With ``w_eff`` (leakage modelled) the toys are
    fitted with template ``w_eff`` and background ``b + A_inj (w - w_eff)``: the first-order
    rise of the GP background under a signal that leaks into its sidebands.
    """
    L = cholesky_jitter(C) if L is None else np.asarray(L, dtype=float)
    bkg, sig = conditional_toys(b, C, w, A_inj, n_toys, rng, mode=mode, L=L)
    n = bkg + sig
    if w_eff is None:
        a, s, c = extract(n, b, L, w)
    else:
        w_eff = np.asarray(w_eff, dtype=float)
        b_fit = np.asarray(b, dtype=float) + A_inj * (np.asarray(w, dtype=float) - w_eff)
        a, s, c = extract(n, b_fit, L, w_eff)
    return Extraction(float(A_inj), a, s, c)


def conditional_toys(
    b: ArrayLike,
    C: ArrayLike,
    w: ArrayLike,
    A_inj: float,
    n_toys: int,
    rng: np.random.Generator,
    *,
    mode: str = "poisson",
    L: ArrayLike | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Background and signal counts ``(n_toys, k)`` of :func:`inject_conditional`'s toys."""
    L = cholesky_jitter(C) if L is None else np.asarray(L, dtype=float)
    return background_toys(b, C, n_toys, rng, L), signal_counts(A_inj, w, n_toys, rng, mode)


# --------------------------------------------------------------------------------------
# Refit mode
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefitSetup:
    """Everything needed to refit the GP of one mass on a full-range toy histogram.

    Same windows (``masks``) and fit options as the data fit; ``start`` is the data fit's
    solution (the warm start of every toy refit).
    """

    edges: NDArray[np.float64]
    masks: WindowMasks
    options: GPOptions
    start: GPHyper

    @property
    def centres(self) -> NDArray[np.float64]:
        e = np.asarray(self.edges, dtype=float)
        out: NDArray[np.float64] = 0.5 * (e[1:] + e[:-1])
        return out

    @property
    def blind(self) -> NDArray[np.bool_]:
        return self.masks.blind(self.centres)

    @property
    def train(self) -> NDArray[np.bool_]:
        return self.masks.train(self.centres)

    def fit(
        self,
        counts: ArrayLike,
        seed: int,
        *,
        restart_policy: str = "auto",
        n_restarts: int | None = None,
    ) -> WindowFit:
        """GP fit of ``counts`` on the sidebands, warm-started from :attr:`start`."""
        opts = replace(self.options, restart_policy=restart_policy)
        if n_restarts is not None:
            opts = replace(opts, n_restarts=n_restarts)
        return fit_window(self.edges, counts, self.masks, opts, seed=seed, start=self.start)

    def w_eff(self, counts: ArrayLike, w_full: ArrayLike, wf: WindowFit) -> NDArray[np.float64]:
        """Leakage-aware template of the fit ``wf`` of ``counts`` (its own hyperparameters)."""
        x, y, w = self.centres, np.asarray(counts, dtype=float), np.asarray(w_full, dtype=float)
        tr, bl = wf.train, wf.blind
        return leakage_template(x[tr], y[tr], w[tr], x[bl], w[bl], wf.b, wf.hyper)


def full_range_mean(counts: ArrayLike, setup: RefitSetup) -> NDArray[np.float64]:
    """GP background mean on every bin (data sidebands, the data fit's hyperparameters)."""
    x = setup.centres
    y = np.asarray(counts, dtype=float)
    tr = setup.train
    b = np.zeros(x.size)
    pos = x > 0
    b[pos], _ = predict_counts(x[tr], y[tr], x[pos], setup.start)
    return b


@dataclass
class RefitToys:
    """Blind-window counts and refitted ``(b, C)`` per toy, with GP diagnostics."""

    n: NDArray[np.float64]  # (T, k)
    b: NDArray[np.float64]  # (T, k)
    C: NDArray[np.float64]  # (T, k, k)
    w_eff: NDArray[np.float64]  # (T, k): leakage-aware template of each toy's refit
    gp_converged: NDArray[np.bool_]
    gp_lml: NDArray[np.float64]
    gp_amplitude: NDArray[np.float64]
    gp_length_scale: NDArray[np.float64]
    gp_retried: NDArray[np.bool_]

    def extra(self) -> dict[str, NDArray[np.generic]]:
        return {
            "gp_converged": self.gp_converged,
            "gp_lml": self.gp_lml,
            "gp_amplitude": self.gp_amplitude,
            "gp_length_scale": self.gp_length_scale,
            "gp_retried": self.gp_retried,
        }

    def hyper(self, t: int) -> GPHyper:
        """The refitted hyperparameters of toy ``t``."""
        return GPHyper.from_arrays(self.extra(), t)


def refit_toys(
    setup: RefitSetup,
    A_inj: float,
    w_full: ArrayLike,
    seeds: Sequence[np.random.SeedSequence],
    *,
    b_full: ArrayLike | None = None,
    backgrounds: ArrayLike | None = None,
    mode: str = "poisson",
    signal_mask: ArrayLike | None = None,
    retry: bool = True,
    progress: Callable[[int], None] | None = None,
) -> RefitToys:
    """Generate full-range toys and refit the GP of each on its sidebands.

    Toy ``t`` draws from ``numpy.random.default_rng(seeds[t])``: background
    ``Poisson(b_full)`` (or ``backgrounds[t]`` when given, e.g. functional-form toys), then
    signal counts of yield ``A_inj`` over ``w_full`` (the full-histogram template;
    ``signal_mask`` restricts the injection to some bins, a diagnostic of signal leakage),
    then the seed of the GP restarts. A refit that is not converged is redone once with
    every restart (``restart_policy="always"``, at least 4 restarts). A refit whose
    blind-window prediction overflows counts as failed (NaN ``b``, ``C``, ``w_eff``; not
    converged), as the fit step's fit of such a mass does.
    """
    if (b_full is None) == (backgrounds is None):
        raise ValueError("give exactly one of b_full and backgrounds")
    w_full = np.asarray(w_full, dtype=float)
    w_sig = w_full if signal_mask is None else np.where(signal_mask, w_full, 0.0)
    blind = setup.blind
    k = int(blind.sum())
    T = len(seeds)
    out = RefitToys(
        n=np.zeros((T, k)),
        b=np.full((T, k), np.nan),
        C=np.full((T, k, k), np.nan),
        w_eff=np.full((T, k), np.nan),
        gp_converged=np.zeros(T, dtype=bool),
        gp_lml=np.full(T, np.nan),
        gp_amplitude=np.full(T, np.nan),
        gp_length_scale=np.full(T, np.nan),
        gp_retried=np.zeros(T, dtype=bool),
    )
    bgs = None if backgrounds is None else np.asarray(backgrounds)
    for t, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        bkg, sig = full_range_toy(
            rng, A_inj, w_sig, mode=mode, b_full=b_full, background=None if bgs is None else bgs[t]
        )
        toy = (bkg + sig).astype(float)
        gp_seed = int(rng.integers(2**31 - 1))
        out.n[t] = toy[blind]
        try:
            wf = setup.fit(toy, gp_seed)
            if retry and not wf.hyper.converged:
                out.gp_retried[t] = True
                wf = setup.fit(
                    toy,
                    gp_seed,
                    restart_policy="always",
                    n_restarts=max(4, 2 * setup.options.n_restarts),
                )
            w_eff = setup.w_eff(toy, w_full, wf)
        except (ValueError, np.linalg.LinAlgError):
            if progress is not None:
                progress(t + 1)
            continue
        h = wf.hyper
        out.gp_lml[t], out.gp_amplitude[t], out.gp_length_scale[t] = (
            h.lml,
            h.amplitude,
            h.length_scale,
        )
        # a refit whose window prediction overflows, or that the sidebands do not
        # determine, fails, as the fit step fails such a mass: no (b, C), not converged
        # (its hyperparameters, kept, say why)
        if window_determined(wf.b, wf.C):
            out.b[t], out.C[t], out.w_eff[t] = wf.b, wf.C, w_eff
            out.gp_converged[t] = h.converged
        if progress is not None:  # toys done so far
            progress(t + 1)
    return out


def full_range_toy(
    rng: np.random.Generator,
    A_inj: float,
    w_sig: ArrayLike,
    *,
    mode: str = "poisson",
    b_full: ArrayLike | None = None,
    background: ArrayLike | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Background ``Poisson(b_full)`` (or ``background``) and signal counts of one
    full-range refit toy, drawn from ``rng`` in the order :func:`refit_toys` uses."""
    if background is None:
        bkg = rng.poisson(np.asarray(b_full, dtype=float))
    else:
        bkg = np.asarray(background)
    return bkg, signal_counts(A_inj, w_sig, 1, rng, mode)[0]


def inject_refit(
    setup: RefitSetup,
    A_inj: float,
    w_full: ArrayLike,
    seeds: Sequence[np.random.SeedSequence],
    *,
    leakage: str = "model",
    **kw: Any,
) -> Extraction:
    """Refit-mode closure at one yield: :func:`refit_toys` then a fit per toy with its own
    refitted ``(b, C)`` and template (``leakage="model"``: the toy's ``w_eff``; ``"ignore"``:
    ``w``). Both extractions are kept per toy in ``extra`` (``A_hat_w_eff``,
    ``sigma_A_w_eff``, ``A_hat_w``, ``sigma_A_w``). Keyword arguments go to
    :func:`refit_toys`. Toys whose GP refit is not converged are kept in the per-toy arrays
    but left out of the summary.
    """
    if leakage not in LEAKAGE_MODES:
        raise ValueError(f"leakage must be one of {LEAKAGE_MODES}, not {leakage!r}")
    rt = refit_toys(setup, A_inj, w_full, seeds, **kw)
    w = np.asarray(w_full, dtype=float)[setup.blind]
    res = {
        "w": extract_each(rt.n, rt.b, rt.C, w),
        "w_eff": extract_each(rt.n, rt.b, rt.C, rt.w_eff),
    }
    extra = rt.extra()
    for key, (a, s, _) in res.items():
        extra[f"A_hat_{key}"], extra[f"sigma_A_{key}"] = a, s
    a, s, c = res["w_eff" if leakage == "model" else "w"]
    return Extraction(float(A_inj), a, s, c & rt.gp_converged, extra)


def sideband_leak(setup: RefitSetup, w_full: ArrayLike) -> float:
    """Fraction of the signal yield on the GP training bins (about 0.10 at 1.64 sigma)."""
    return float(np.asarray(w_full, dtype=float)[setup.train].sum())


def _asimov_window(
    setup: RefitSetup, A_inj: float, w_full: ArrayLike, b_full: ArrayLike, leakage: str
) -> tuple[NDArray[np.float64], WindowFit, NDArray[np.float64]]:
    """Blind counts, refit and likelihood template of the noise-free toy."""
    toy = np.asarray(b_full, dtype=float) + A_inj * np.asarray(w_full, dtype=float)
    wf = setup.fit(toy, 0, restart_policy="always")
    if leakage == "model":
        w = setup.w_eff(toy, w_full, wf)
    else:
        w = np.asarray(w_full, dtype=float)[setup.blind]
    return toy[setup.blind], wf, w


def asimov_refit(
    setup: RefitSetup,
    A_inj: float,
    w_full: ArrayLike,
    b_full: ArrayLike,
    *,
    leakage: str = "model",
) -> tuple[float, float]:
    """``(A_hat, sigma_A)`` of the noise-free refit toy ``b_full + A_inj w_full``.

    The GP is refitted on that toy's sidebands, which hold :func:`sideband_leak` of the
    signal. ``A_hat`` holds two effects: the background offset, ``A_hat`` at ``A_inj = 0``
    (the GP refitted on its own smooth mean predicts a slightly different background in the
    window, whatever the signal), and the signal's response, ``(A_hat(A_inj) - A_hat(0)) /
    A_inj``: with ``leakage="ignore"`` the absorption the leak causes; with ``"model"`` what
    remains of it at second order (hyperparameter refit, log transform).
    """
    n, wf, w = _asimov_window(setup, A_inj, w_full, b_full, leakage)
    f = WindowModel.from_covariance(wf.b, wf.C, w).fit(n)
    return float(f.A_hat), float(f.sigma_A)


# --------------------------------------------------------------------------------------
# Combination (shared eps^2): yields in eps^2, strengths in units of sigma_eps2,ref
# --------------------------------------------------------------------------------------
def _block_templates(cw: comb.Combined) -> list[NDArray[np.float64]]:
    return [cw.s_unit[sl] / k for sl, k in zip(cw.slices, cw.k_units)]


def conditional_toys_combined(
    cw: comb.Combined,
    eps2_inj: float,
    n_toys: int,
    rng: np.random.Generator,
    *,
    mode: str = "poisson",
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Background and signal counts ``(n_toys, K)`` of :func:`inject_conditional_combined`."""
    bkg = background_toys(cw.b, cw.C, n_toys, rng, cw.L)
    sig = np.zeros_like(bkg)
    for sl, k, w in zip(cw.slices, cw.k_units, _block_templates(cw)):
        sig[:, sl] = signal_counts(eps2_inj * k, w, n_toys, rng, mode)
    return bkg, sig


def inject_conditional_combined(
    cw: comb.Combined,
    eps2_inj: float,
    n_toys: int,
    rng: np.random.Generator,
    *,
    mode: str = "poisson",
    w_true: Sequence[ArrayLike] | None = None,
) -> Extraction:
    """Conditional toys of every combined window with one eps^2 injected (dataset ``d``
    gets ``eps2 K_d`` signal events), jointly fitted; results in eps^2.

    ``w_true`` (per block): the templates the signal is drawn from when ``cw`` was built
    with leakage-aware templates; the fit's background is then raised by
    ``eps2 K_d (w_true - w_eff)`` as in :func:`inject_conditional`.
    """
    n = background_toys(cw.b, cw.C, n_toys, rng, cw.L)
    fit_cw = cw
    templates = _block_templates(cw)
    if w_true is not None:
        shift = np.zeros_like(cw.b)
        for sl, k, we, wt in zip(cw.slices, cw.k_units, templates, w_true):
            shift[sl] = eps2_inj * k * (np.asarray(wt, dtype=float) - we)
        fit_cw = replace(cw, b=cw.b + shift)
        templates = [np.asarray(wt, dtype=float) for wt in w_true]
    for sl, k, w in zip(cw.slices, cw.k_units, templates):
        n[:, sl] += signal_counts(eps2_inj * k, w, n_toys, rng, mode)
    e, s, f = comb.fit(fit_cw, n)
    return Extraction(
        float(eps2_inj), np.atleast_1d(e), np.atleast_1d(s), np.atleast_1d(f.converged).astype(bool)
    )


def child_seed(ss: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """The ``i``-th child of ``ss`` without touching its spawn counter (stateless)."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i))


def inject_refit_combined(
    setups: Sequence[RefitSetup],
    b_fulls: Sequence[ArrayLike],
    w_fulls: Sequence[ArrayLike],
    k_units: Sequence[float],
    eps2_inj: float,
    seeds: Sequence[np.random.SeedSequence],
    *,
    mode: str = "poisson",
    scale: float | None = None,
    names: Sequence[str] | None = None,
    leakage: str = "model",
    progress: Callable[[int], None] | None = None,
) -> Extraction:
    """Refit-mode combined closure: per toy, every dataset gets a full-range toy with
    ``eps2 K_d`` signal events and its own GP refit; the refitted windows are combined and
    fitted with one eps^2 (results in eps^2), with each toy's ``w_eff`` when ``leakage`` is
    ``"model"``. ``scale`` fixes the internal eps^2 unit; per-dataset GP diagnostics in
    ``extra`` are suffixed with ``names`` (default: index).
    """
    per = []
    for d, (setup, bf, wf, k) in enumerate(zip(setups, b_fulls, w_fulls, k_units)):
        sd = [child_seed(ss, d) for ss in seeds]
        done = d * len(seeds)  # refits done over all datasets
        step = None if progress is None else (lambda t, done=done: progress(done + t))
        per.append(refit_toys(setup, eps2_inj * k, wf, sd, b_full=bf, mode=mode, progress=step))
    T = len(seeds)
    e, s = np.full(T, np.nan), np.full(T, np.nan)
    conv = np.zeros(T, dtype=bool)
    gp_ok = np.all([rt.gp_converged for rt in per], axis=0)
    ws = [np.asarray(wf, dtype=float)[st.blind] for st, wf in zip(setups, w_fulls)]
    for t in range(T):
        if not all(np.all(np.isfinite(rt.b[t])) for rt in per):
            continue
        tw = [rt.w_eff[t] if leakage == "model" else w for rt, w in zip(per, ws)]
        if not all(np.all(np.isfinite(w)) for w in tw):
            continue
        blocks = [comb.Block(rt.n[t], rt.b[t], rt.C[t], w, k) for rt, w, k in zip(per, tw, k_units)]
        cw = comb.combine(blocks, scale=scale)
        e[t], s[t], f = comb.fit(cw)
        conv[t] = bool(f.converged)
    tags = [str(x) for x in (names if names is not None else range(len(per)))]
    extra = {f"{key}_{tag}": v for tag, rt in zip(tags, per) for key, v in rt.extra().items()}
    extra["gp_converged"] = gp_ok
    return Extraction(float(eps2_inj), e, s, conv & gp_ok, extra)


def asimov_refit_combined(
    setups: Sequence[RefitSetup],
    b_fulls: Sequence[ArrayLike],
    w_fulls: Sequence[ArrayLike],
    k_units: Sequence[float],
    eps2_inj: float,
    *,
    scale: float | None = None,
    leakage: str = "model",
) -> tuple[float, float]:
    """As :func:`asimov_refit` for the combination: ``(eps2_hat, sigma_eps2)``."""
    blocks = []
    for setup, bf, wf, k in zip(setups, b_fulls, w_fulls, k_units):
        n, fit, w = _asimov_window(setup, eps2_inj * k, wf, bf, leakage)
        blocks.append(comb.Block(n, fit.b, fit.C, w, k))
    e, s, _ = comb.fit(comb.combine(blocks, scale=scale))
    return float(e), float(s)
