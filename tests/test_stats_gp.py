"""GP background fit: LML/gradient equal to sklearn's, real 2015 sidebands, restarts, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from gprpipe.stats.gp import (
    GPHyper,
    GPOptions,
    _LogMarginal,
    _Run,
    fit_gp,
    fit_window,
    length_scale_bounds,
    log_targets,
    lognormal_moments,
    predict_counts,
    predict_counts_diag,
    predict_latent,
    sigma_x,
)
from gprpipe.stats.resolution import sigma_m
from gprpipe.stats.window import WindowMasks, scan_masses

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hps"
C2015 = [-9.22283032152e-05, 0.0532190838657]
C2021 = [0.0014786, -0.0011, 0.0687]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _load(year: str, rebin: int):
    path = DATA / f"funcform_{year}_toys.root"
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    uproot = pytest.importorskip("uproot")
    counts, edges = uproot.open(path)["input_hist"].to_numpy()
    return counts.reshape(-1, rebin).sum(axis=1), edges[::rebin]


@pytest.fixture(scope="module")
def h2015():
    return _load("2015", 10)


def _bounds_2015(m: float) -> tuple[float, float]:
    masses = scan_masses(0.020, 0.130, 0.001)
    med = float(np.median(sigma_x(masses, sigma_m(masses, C2015))))
    return length_scale_bounds(float(sigma_x(m, sigma_m(m, C2015))), med, 0.5, 8.0, 1.0)


def _fit2015(h, m, *, seed=7, start=None, train_exclude_nsigma=None, train_range=None, **kw):
    """fit_window at mass m of the 2015 data; ``kw`` are GPOptions fields."""
    counts, edges = h
    kw.setdefault("n_restarts", 2)
    masks = WindowMasks(m, float(sigma_m(m, C2015)), 1.64, train_exclude_nsigma, train_range)
    return fit_window(
        edges, counts, masks, GPOptions(_bounds_2015(m), **kw), seed=seed, start=start
    )


# ----------------------------------------------------------------------------- pure numerics
def test_length_scale_bounds():
    assert length_scale_bounds(0.05, 0.04) == pytest.approx((0.025, 0.4))
    # the floor from the scan median wins when the local resolution is small
    assert length_scale_bounds(0.02, 0.04, 0.5, 9.0, 0.8) == pytest.approx((0.01, 9 * 0.04 * 0.8))
    assert sigma_x(0.1, 0.005) == pytest.approx(np.log(1.05))


def test_log_targets_empty_bins():
    X, Z, a = log_targets([0.01, 0.02, 0.03], [0, 1, 100])
    assert pytest.approx(np.log([0.01, 0.02, 0.03])) == X
    assert pytest.approx([0.0, 0.0, np.log(100)]) == Z
    assert a == pytest.approx([1.0, 1.0, 0.01])


def _sklearn_gpr(alpha: np.ndarray, theta=(10.0, 0.1)):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    kernel = ConstantKernel(theta[0], (1e-5, 1e5)) * RBF(theta[1], (1e-5, 1e5))
    return GaussianProcessRegressor(kernel=kernel, alpha=alpha, optimizer=None)


@pytest.mark.parametrize("method", ["dense", "lowrank", "auto"])
def test_lml_and_gradient_equal_sklearn(method):
    rng = np.random.default_rng(3)
    x = np.linspace(0.01, 0.15, 120)
    y = rng.poisson(1e4 * np.exp(-x / 0.03)).astype(float)
    y[:3] = 0
    X, Z, alpha = log_targets(x, y)
    f = _LogMarginal(X, Z, alpha, method)
    gpr = _sklearn_gpr(alpha)
    gpr.fit(X[:, None], Z)
    # the low-rank truncation bounds the log-determinant error by _LOWRANK_TOL = 1e-6
    tol = 1e-7 if method == "dense" else 1e-6
    for theta in ([3.0, -1.5], [0.0, -3.5], [7.0, -0.3]):
        th = np.array(theta)
        lml, grad = gpr.log_marginal_likelihood(th, eval_gradient=True)
        neg, neg_grad = f(th)
        assert -neg == pytest.approx(lml, rel=1e-9, abs=tol)
        assert -neg_grad == pytest.approx(grad, rel=1e-6, abs=1e-6)
        assert -f(th, eval_gradient=False) == pytest.approx(lml, rel=1e-9, abs=tol)
    if method != "auto":  # "auto" takes the dense path at the short length scale
        assert (f.n_dense == 0) == (method == "lowrank")


def test_posterior_equal_sklearn():
    """``predict_latent`` (both paths) equals sklearn's fit + ``predict(return_cov=True)``."""
    rng = np.random.default_rng(4)
    x = np.linspace(0.01, 0.15, 150)
    y = rng.poisson(1e4 * np.exp(-x / 0.03)).astype(float)
    X, Z, alpha = log_targets(x, y)
    hyper = GPHyper(20.0, 0.3, lml=0.0, converged=True, n_evals=0, reason="")
    gpr = _sklearn_gpr(alpha, (hyper.amplitude, hyper.length_scale))
    gpr.fit(X[:, None], Z)
    xp = np.linspace(0.07, 0.075, 6)
    mu_ref, S_ref = gpr.predict(np.log(xp)[:, None], return_cov=True)
    for method in ("dense", "lowrank"):
        mu, S = predict_latent(x, y, xp, hyper, method=method)
        np.testing.assert_allclose(mu, mu_ref, rtol=1e-9)
        np.testing.assert_allclose(S, S_ref, rtol=1e-6, atol=1e-6 * np.abs(S_ref).max())


def test_lognormal_moments():
    mu = np.array([1.0, 2.0])
    S = np.array([[0.04, 0.01], [0.01, 0.09]])
    b, C = lognormal_moments(mu, S)
    assert b == pytest.approx(np.exp(mu + np.diag(S) / 2))
    assert C[0, 1] == pytest.approx(b[0] * b[1] * np.expm1(0.01))
    assert C[1, 1] == pytest.approx(b[1] ** 2 * np.expm1(0.09))


def test_run_stuck_flag():
    kw = dict(start=np.zeros(2), theta=np.zeros(2), lml=1.0, success=True, message="", label="warm")
    assert _Run(pg_norm=5.0, moved=0.0, **kw).stuck  # did not move, not stationary
    assert not _Run(pg_norm=1e-6, moved=0.0, **kw).stuck  # start already optimal
    assert not _Run(pg_norm=5.0, moved=0.1, **kw).stuck


# ----------------------------------------------------------------------------- real 2015 data
@pytest.mark.parametrize("m", [0.030, 0.060, 0.100])
def test_real_2015_window_fit(h2015, m):
    counts, _ = h2015
    wf = _fit2015(h2015, m)
    h = wf.hyper
    # the reference code's stuck fit had LML -23 here; the optimum is ~+528 at 60 MeV
    assert h.lml > 500, h
    assert h.converged and h.reason == ""
    lo, hi = _bounds_2015(m)
    assert lo <= h.length_scale <= hi
    assert not np.any(wf.blind & wf.train)
    assert wf.blind.sum() >= 5 and wf.train.sum() > 250
    n_blind = counts[wf.blind]
    assert wf.b.sum() == pytest.approx(n_blind.sum(), rel=0.03)
    assert np.all(np.abs(wf.b / n_blind - 1) < 0.1)
    assert np.allclose(wf.C, wf.C.T)
    np.linalg.cholesky(wf.C)  # positive definite
    # GP uncertainty is small but not absurdly so: relative per-bin error between 1e-4 and 5%
    rel = np.sqrt(np.diag(wf.C)) / wf.b
    assert np.all((rel > 1e-4) & (rel < 0.05))


def test_lml_reference_value_60mev(h2015):
    assert _fit2015(h2015, 0.060).hyper.lml == pytest.approx(527.64, abs=0.05)


def test_deterministic(h2015):
    a = _fit2015(h2015, 0.060, n_restarts=3, seed=11, restart_policy="always")
    b = _fit2015(h2015, 0.060, n_restarts=3, seed=11, restart_policy="always")
    assert a.hyper == b.hyper
    assert a.b.tobytes() == b.b.tobytes() and a.C.tobytes() == b.C.tobytes()


def test_warm_start_reaches_cold_optimum(h2015):
    prev = _fit2015(h2015, 0.060).hyper
    cold = _fit2015(h2015, 0.061, restart_policy="always", n_restarts=4)
    warm = _fit2015(h2015, 0.061, start=prev)
    assert warm.hyper.converged
    assert warm.hyper.lml == pytest.approx(cold.hyper.lml, abs=1e-3)
    # the optimum lies on a flat (amplitude, length-scale) ridge: LML agrees to its rounding
    # noise, the hyperparameters to ~1e-3, the predicted background much better
    assert warm.hyper.amplitude == pytest.approx(cold.hyper.amplitude, rel=1e-2)
    assert warm.hyper.length_scale == pytest.approx(cold.hyper.length_scale, rel=1e-2)
    assert warm.b == pytest.approx(cold.b, rel=1e-4)
    assert np.diag(warm.C) == pytest.approx(np.diag(cold.C), rel=1e-2)
    assert warm.hyper.n_evals < cold.hyper.n_evals  # the warm start is the cheap path


@pytest.mark.parametrize("amp,ls", [(1e-3, 0.0252), (1e4, 0.405), (0.05, 0.4)])
def test_bad_start_recovered(h2015, amp, ls):
    cold = _fit2015(h2015, 0.060)
    bad = GPHyper(amp, ls, lml=0.0, converged=True, n_evals=0, reason="")
    wf = _fit2015(h2015, 0.060, start=bad, n_restarts=2)
    assert wf.hyper.converged
    assert wf.hyper.lml == pytest.approx(cold.hyper.lml, abs=1e-3)
    assert (wf.hyper.amplitude, wf.hyper.length_scale) != (amp, ls)


def test_failure_is_recorded(h2015):
    # one L-BFGS-B iteration from a poor start cannot converge: the flag and reason say so
    bad = GPHyper(1e-3, 0.0252, lml=0.0, converged=True, n_evals=0, reason="")
    wf = _fit2015(h2015, 0.060, start=bad, n_restarts=0, maxiter=1)
    assert not wf.hyper.converged
    assert wf.hyper.reason


def test_restart_policies_agree(h2015):
    auto = _fit2015(h2015, 0.090)
    always = _fit2015(h2015, 0.090, restart_policy="always", n_restarts=4)
    assert auto.hyper.lml == pytest.approx(always.hyper.lml, abs=1e-3)


def test_predict_functions_match_window_fit(h2015):
    counts, edges = h2015
    wf = _fit2015(h2015, 0.060)
    x = 0.5 * (edges[1:] + edges[:-1])
    b, C = predict_counts(x[wf.train], counts[wf.train], x[wf.blind], wf.hyper)
    assert b == pytest.approx(wf.b, rel=1e-10)
    assert np.allclose(C, wf.C, rtol=1e-8, atol=1e-8 * np.abs(wf.C).max())
    mu, S = predict_latent(x[wf.train], counts[wf.train], x[wf.blind], wf.hyper)
    assert np.allclose(np.exp(mu + np.diag(S) / 2), b)


@pytest.mark.parametrize("method", ["auto", "dense"])
def test_counts_and_variances_over_the_whole_spectrum_match_predict_counts(h2015, method):
    """A display's GP curve and band over every bin: b and diag(C) of predict_counts (whose
    whole covariance, an eigendecomposition of every bin pair, they do not need) to its
    eigenvalue floor, also where it extrapolates far below the training range."""
    counts, edges = h2015
    wf = _fit2015(h2015, 0.060)
    x = 0.5 * (edges[1:] + edges[:-1])
    b, C = predict_counts(x[wf.train], counts[wf.train], x, wf.hyper, method=method)
    mean, var = predict_counts_diag(x[wf.train], counts[wf.train], x, wf.hyper, method=method)
    assert x.size == 300 and np.all(np.isfinite(b))
    assert np.max(np.abs(mean / b - 1)) < 1e-8
    assert np.max(np.abs(var / np.diag(C) - 1)) < 1e-5  # the floor: 3e-6 where S is small
    assert mean[wf.blind] == pytest.approx(wf.b, rel=1e-8)
    assert var[wf.blind] == pytest.approx(np.diag(wf.C), rel=1e-5)


def test_fit_gp_direct(h2015):
    counts, edges = h2015
    x = 0.5 * (edges[1:] + edges[:-1])
    train = np.abs(x - 0.06) > 1.64 * float(sigma_m(0.06, C2015))
    h = fit_gp(x[train], counts[train], GPOptions(_bounds_2015(0.06), n_restarts=1), seed=1)
    assert h.converged and h.lml == pytest.approx(527.64, abs=0.05)


def test_training_options(h2015):
    base = _fit2015(h2015, 0.060)
    wide = _fit2015(h2015, 0.060, train_exclude_nsigma=3.0)
    assert wide.train.sum() < base.train.sum()
    assert np.array_equal(wide.blind, base.blind)
    ranged = _fit2015(h2015, 0.060, train_range=(0.02, 0.14))
    x = 0.5 * (h2015[1][1:] + h2015[1][:-1])
    assert x[ranged.train].min() >= 0.02 and x[ranged.train].max() <= 0.14
    assert ranged.hyper.converged


@pytest.mark.slow
def test_real_2021_window_fit():
    counts, edges = _load("2021", 5)
    masses = scan_masses(0.030, 0.250, 0.001)
    med = float(np.median(sigma_x(masses, sigma_m(masses, C2021))))
    m = 0.1
    s = float(sigma_m(m, C2021))
    lb = length_scale_bounds(float(sigma_x(m, s)), med, 0.5, 9.0, 0.8)
    wf = fit_window(edges, counts, WindowMasks(m, s), GPOptions(lb, n_restarts=2), seed=1)
    assert wf.hyper.converged
    assert wf.train.sum() > 1500
    assert wf.b.sum() == pytest.approx(counts[wf.blind].sum(), rel=0.03)
    np.linalg.cholesky(wf.C)


def test_latent_mean_map_reproduces_the_posterior_mean():
    """``M @ ln y_train`` is the GP posterior mean at the prediction points."""
    from gprpipe.stats.gp import fit_gp, latent_mean_map, log_targets, predict_latent

    rng = np.random.default_rng(3)
    x = np.linspace(0.01, 0.15, 300)
    y = rng.poisson(1e5 * np.exp(-x / 0.03)).astype(float)
    y[5] = 0.0  # an empty bin: target 0, noise 1
    hyper = fit_gp(x, y, GPOptions((0.05, 2.0), n_restarts=1), seed=1)
    xp = np.linspace(0.05, 0.06, 7)
    mu, _ = predict_latent(x, y, xp, hyper)
    M = latent_mean_map(x, y, xp, hyper)
    assert M.shape == (7, 300)
    np.testing.assert_allclose(M @ log_targets(x, y)[1], mu, rtol=1e-9)


# ------------------------------------------------- low-rank vs dense computation, real data
# (year, rebin, resolution coefficients, tail, scan range, ls hi factor, floor factor)
_CARDS = {
    "2015": (10, C2015, (None, None), (0.020, 0.130), 8.0, 1.0),
    "2016": (10, [0.00038, 0.041, -0.27, 3.49, -11.11], (0.18, 0.0239), (0.035, 0.210), 8.0, 0.8),
    "2021": (5, C2021, (None, None), (0.030, 0.250), 9.0, 0.8),
}


def _real_problem(shared_data: Path, year: str, m: float):
    """Training (X, Z, alpha), blind-bin centres and the fit bounds of the real data at m."""
    from gprpipe.stats.window import blind_mask

    uproot = pytest.importorskip("uproot")
    rebin, coeffs, tail, scan, hi, floor = _CARDS[year]
    counts, edges = uproot.open(shared_data / f"funcform_{year}_toys.root")["input_hist"].to_numpy()
    counts, edges = counts.reshape(-1, rebin).sum(axis=1), edges[::rebin]
    masses = scan_masses(*scan, 0.001)
    med = float(np.median(sigma_x(masses, sigma_m(masses, coeffs, *tail))))
    s = float(sigma_m(m, coeffs, *tail))
    ls_b = length_scale_bounds(float(sigma_x(m, s)), med, 0.5, hi, floor)
    x = 0.5 * (edges[1:] + edges[:-1])
    blind = blind_mask(x, m, s, 1.64)
    train = ~blind & (x > 0)
    X, Z, alpha = log_targets(x[train], counts[train])
    a0 = float(np.mean(Z**2))
    return X, Z, alpha, x[blind], (a0 * 1e-3, a0 * 1e3), ls_b


def _rel(new, ref) -> float:
    return float(np.max(np.abs(np.asarray(new) - np.asarray(ref)) / np.abs(np.asarray(ref))))


@pytest.mark.parametrize(
    "year,m",
    [
        ("2015", 0.030),
        ("2015", 0.060),
        ("2015", 0.100),
        ("2016", 0.050),
        ("2016", 0.200),
        pytest.param("2021", 0.040, marks=pytest.mark.slow),
        pytest.param("2021", 0.150, marks=pytest.mark.slow),
    ],
)
def test_lowrank_equals_dense_on_real_data(shared_data, year, m):
    """LML, gradient, b, C and the mean map M of the low-rank path equal the dense ones to
    1e-6 relative.

    Hyperparameters: the corners and centre of the fit bounds, and the largest amplitude
    the low-rank path accepts (above it the dense path is used by design). The gradient is
    compared relative to max(|grad|, 1) (it vanishes at the optimum); C as max|dC| / max|C|.
    """
    from gprpipe.stats.gp import _LOWRANK_MAX_WEIGHT, _mean_map_lowrank, _posterior

    X, Z, alpha, xb, (a_lo, a_hi), (l_lo, l_hi) = _real_problem(shared_data, year, m)
    a_edge = 0.99 * _LOWRANK_MAX_WEIGHT * float(alpha.min())  # low-rank path's largest a
    assert a_lo < a_edge < a_hi
    thetas = [np.log([a, ell]) for a in (a_lo, a_edge) for ell in (l_lo, l_hi)]
    thetas.append(np.log([np.sqrt(a_lo * a_edge), np.sqrt(l_lo * l_hi)]))
    dense = _LogMarginal(X, Z, alpha, "dense")
    fast = _LogMarginal(X, Z, alpha, "lowrank")
    for th in thetas:
        v_d, g_d = dense(th)
        v_f, g_f = fast(th)
        assert abs(v_f - v_d) <= 1e-6 * abs(v_d), (th, v_f, v_d)
        assert np.max(np.abs(g_f - g_d)) <= 1e-6 * max(np.max(np.abs(g_d)), 1.0), (th, g_f, g_d)
        mu_d, S_d = _posterior(X, Z, alpha, xb, th, "dense")
        mu_f, S_f = _posterior(X, Z, alpha, xb, th, "lowrank")
        assert _rel(mu_f, mu_d) <= 1e-6, th
        assert np.abs(S_f - S_d).max() <= 1e-6 * np.abs(S_d).max(), th
        # the mean map (leakage template, GoF, toy scans): M = Ks K^-1, mu = M Z
        a, ell = np.exp(th)
        M_f = _mean_map_lowrank(X, alpha, np.log(xb), a, ell, len(X))
        K = a * np.exp(-0.5 * ((X[:, None] - X[None, :]) / ell) ** 2) + np.diag(alpha)
        Ks = a * np.exp(-0.5 * ((np.log(xb)[:, None] - X[None, :]) / ell) ** 2)
        M_d = np.linalg.solve(K, Ks.T).T
        # entry-wise 2.7e-6 at the stress corner (2016 200 MeV, largest low-rank amplitude,
        # shortest length scale); at the fitted hyperparameters of the real scans <= 1.5e-7
        assert np.abs(M_f - M_d).max() <= 5e-6 * np.abs(M_d).max(), th
        assert _rel(M_f @ Z, mu_d) <= 1e-6, th
        with np.errstate(over="ignore"):
            b_d, C_d = lognormal_moments(mu_d, S_d)
            b_f, C_f = lognormal_moments(mu_f, S_f)
        if np.all(np.isfinite(C_d)):  # short length scale, huge amplitude: b = exp(>700)
            assert _rel(b_f, b_d) <= 1e-6, th
            assert np.abs(C_f - C_d).max() <= 1e-6 * np.abs(C_d).max(), th
    assert fast.n_dense == 0  # every evaluation above took the low-rank path
    # beyond the largest amplitude the dense path is used, so the two are identical
    th = np.log([a_hi, l_hi])
    assert fast(th)[0] == dense(th)[0] and fast.n_dense == 1


@pytest.mark.parametrize("m", [0.030, 0.090])
def test_fit_window_lowrank_equals_dense(h2015, m):
    """The whole fit (multi-start, polish, prediction) gives the same end point and (b, C)."""
    d = _fit2015(h2015, m, method="dense")
    f = _fit2015(h2015, m)
    assert d.hyper.converged and f.hyper.converged
    assert f.hyper.amplitude == pytest.approx(d.hyper.amplitude, rel=1e-6)
    assert f.hyper.length_scale == pytest.approx(d.hyper.length_scale, rel=1e-6)
    assert f.hyper.lml == pytest.approx(d.hyper.lml, rel=1e-8)
    assert _rel(f.b, d.b) <= 1e-6
    assert np.abs(f.C - d.C).max() <= 1e-6 * np.abs(d.C).max()


@pytest.mark.parametrize("m", [0.045, 0.114])
def test_fit_is_independent_of_bin_order(h2015, m):
    """Reversing the bins changes only rounding; the polished end point does not move."""
    counts, edges = h2015
    fwd = _fit2015(h2015, m)
    rev = _fit2015((counts[::-1], edges[::-1]), m)
    assert rev.hyper.amplitude == pytest.approx(fwd.hyper.amplitude, rel=1e-6)
    assert rev.hyper.length_scale == pytest.approx(fwd.hyper.length_scale, rel=1e-6)
    assert _rel(rev.b[::-1], fwd.b) <= 1e-7
    C_rev = rev.C[::-1, ::-1]
    assert np.abs(C_rev - fwd.C).max() <= 1e-6 * np.abs(fwd.C).max()


def test_probe_decision_equals_exact(shared_data):
    """``exceeds`` (the start-point probe) decides as the exact LML would, at any amplitude."""
    X, Z, alpha, _, (a_lo, a_hi), (l_lo, l_hi) = _real_problem(shared_data, "2015", 0.060)
    rng = np.random.default_rng(5)
    dense = _LogMarginal(X, Z, alpha, "dense")
    auto = _LogMarginal(X, Z, alpha, "auto")
    for _ in range(12):
        th = rng.uniform(np.log([a_lo, l_lo]), np.log([a_hi, l_hi]))
        exact = -dense(th, eval_gradient=False)
        for delta in (-300.0, -0.5, -1e-4, 1e-4, 0.5, 300.0):
            assert auto.exceeds(th, exact + delta) == (delta < 0), (th, delta)


def test_restarts_follow_the_low_rank_lml_and_end_on_exact_values():
    """Counts of ~5e7 put the whole fit above the low-rank amplitude rule (a / alpha > 1e8),
    where only the dense LML is exact. The restarts from random points go by the low-rank
    value (fewer dense evaluations than evaluations); each one that ends there within reach
    of the best run continues on the exact LML, so every candidate's LML is the exact one at
    its end point, and so is the fit's. (At such counts the optimum itself is set by the
    dense LML's rounding, ~1e-7 relative on a flat ridge: fits from different seeds differ
    by up to 1e-2 in the amplitude, dense or not; real spectra stay below the rule.)"""
    from gprpipe.stats.gp import _PROBE_MARGIN, _default_amp_bounds, _fit_model, _MultiStart

    rng = np.random.default_rng(5)
    x = np.linspace(0.02, 0.12, 400)
    y = rng.poisson(5e7 * np.exp(-x / 0.03)).astype(float)
    X, Z, alpha = log_targets(x, y)
    f = _LogMarginal(X, Z, alpha, "auto")
    exact = _LogMarginal(X, Z, alpha, "dense")
    bounds = np.log([_default_amp_bounds(Z), (0.05, 2.0)])
    start = np.log([np.mean(Z**2), 0.05**0.25 * 2.0**0.75])
    opt = _MultiStart(
        f, warm=None, data_start=start, n_restarts=3, seed=0, policy="auto", maxiter=200
    )
    rough = f.rough
    above: list[bool] = []  # per rough evaluation above the rule: did it avoid the dense path?

    def recorded(theta: np.ndarray, eval_gradient: bool = True):
        n_dense = f.n_dense
        out = rough(theta, eval_gradient)
        if f.inexact(theta):
            above.append(f.n_dense == n_dense)
        return out

    f.rough = recorded  # type: ignore[method-assign]
    opt(None, start, bounds)
    assert [r.label for r in opt.runs] == ["data", "random0", "random1", "random2"]
    assert len(above) > 10 and all(above)  # the restarts ran on the low-rank value up there
    assert all(f.inexact(r.theta) for r in opt.runs)  # every run ends above the rule
    randoms = np.random.default_rng(0).uniform(bounds[:, 0], bounds[:, 1], size=(3, 2))
    best = max(r.lml for r in opt.runs)
    for r, x0 in zip(opt.runs[1:], randoms):
        np.testing.assert_array_equal(r.start, x0)  # a continued run keeps its start
        assert r.moved > 0.1 and not r.stuck
    for r in opt.runs:
        if r.lml > best - _PROBE_MARGIN * abs(r.lml):
            assert r.lml == pytest.approx(-exact(r.theta, False), rel=1e-12, abs=0), r.label
    # the chosen fit is polished on exact values: its LML is the dense one at its end point
    hyper, _ = _fit_model(x, y, GPOptions((0.05, 2.0), n_restarts=3), seed=0, start=None)
    assert hyper.converged and f.inexact(hyper.theta)
    assert hyper.lml == pytest.approx(-exact(hyper.theta, False), rel=1e-12, abs=0)
