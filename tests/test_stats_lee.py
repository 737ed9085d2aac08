"""Toy look-elsewhere numerics (gprpipe.stats.lee) on a synthetic log-log GP spectrum.

A smooth falling spectrum with high counts (so that the log transform's bias is
negligible), fixed hyperparameters, a few test masses: the fixed map must reproduce the
direct window fit exactly, the one-mass toy p-value must be the asymptotic local p, and
the maximum over several masses must lie between the local p and the Sidak bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from gprpipe.stats import lee, significance
from gprpipe.stats.gp import GPHyper, lognormal_moments, predict_counts
from gprpipe.stats.likelihood import WindowModel, cholesky_jitter, minimise
from gprpipe.stats.template import signal_template
from gprpipe.stats.window import blind_mask

EDGES = np.linspace(0.01, 0.15, 281)
X = 0.5 * (EDGES[1:] + EDGES[:-1])
MEAN = 4.0e4 * (X / 0.05) ** -2.0 * np.exp(-X / 0.2)
BUMP = 300.0  # signal events of the bump in the toys' mean
HYPER = GPHyper(amplitude=120.0, length_scale=0.6, lml=0.0, converged=True, n_evals=0, reason="")


def _map(mass: float, counts: np.ndarray) -> lee.FixedMap:
    sigma = 0.05 * mass
    blind = blind_mask(X, mass, sigma, 1.64)
    train = ~blind
    w = signal_template(EDGES, mass, sigma)[blind]
    return lee.fixed_map(X, counts, train, blind, HYPER, w)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(7).poisson(MEAN).astype(float)


def test_fixed_map_on_the_data_is_the_direct_fit(data: np.ndarray) -> None:
    for mass in (0.04, 0.08):
        fm = _map(mass, data)
        b, C = predict_counts(X[fm.train], data[fm.train], X[fm.blind], HYPER)
        np.testing.assert_allclose(fm.b_ref, b, rtol=1e-9)
        L = cholesky_jitter(C)
        n = data[fm.blind]
        z_direct = significance.z_local(WindowModel(b, L, fm.w).q0(n))
        z, conv = lee.z_local_fixed(fm, data[None, :], lee.log_counts(data)[None, :])
        assert conv.all()
        assert z[0] == pytest.approx(z_direct, abs=1e-5)


def test_per_toy_covariance_matches_a_fit_per_toy(data: np.ndarray) -> None:
    """Each toy's (b_t, C_t) = lognormal moments of (M Z_t, S); the batched fit with the
    per-toy nuisance factor equals an ordinary fit with that toy's own (b_t, C_t)."""
    fm = _map(0.06, data)
    toys = lee.poisson_toys(MEAN * 1.002, list(range(40))).astype(float)
    logc = lee.log_counts(toys)
    z, conv = lee.z_local_fixed(fm, toys, logc)
    assert conv.all()
    for t in range(0, 40, 3):
        mu = fm.M @ logc[t, fm.train]
        b, C = lognormal_moments(mu, fm.S)
        n = toys[t, fm.blind]
        L = cholesky_jitter(C)
        f = WindowModel(b, L, fm.w).fit(n)
        assert z[t] == pytest.approx(
            significance.z_local(WindowModel(b, L, fm.w).q0(n, f)), abs=1e-4
        )
    assert (z > 0).any() and (z == 0).any()


def test_per_row_newton_equals_shared_design() -> None:
    rng = np.random.default_rng(3)
    b = rng.uniform(50, 200, 12)
    L = cholesky_jitter(
        0.01 * np.outer(b, b) * np.exp(-0.1 * np.subtract.outer(np.arange(12), np.arange(12)) ** 2)
    )
    win = WindowModel(b, L, rng.uniform(0, 0.1, 12))
    n = rng.poisson(b, size=(30, 12)).astype(float)
    p0 = np.zeros((30, win.r + 1))
    base = np.broadcast_to(b, n.shape)
    f2, p2, c2 = minimise(n, base, win.G_full, win.prior_full, win.ridge_full, p0)
    G3 = np.broadcast_to(win.G_full, (30, *win.G_full.shape)).copy()
    f3, p3, c3 = minimise(n, base, G3, win.prior_full, win.ridge_full, p0)
    assert c2.all() and c3.all()
    np.testing.assert_allclose(f3, f2, atol=1e-9)
    np.testing.assert_allclose(p3, p2, atol=1e-6)


def test_one_mass_toy_global_p_is_the_local_p(data: np.ndarray) -> None:
    """With one mass, the toy 'global' p of z is the fraction of toys with Z >= z: the
    asymptotic local p (within the binomial error of 3000 toys)."""
    fm = _map(0.06, data)
    toys = lee.poisson_toys(MEAN, [np.random.SeedSequence([11, t]) for t in range(3000)])
    Z, conv = lee.scan_fixed([fm], toys)
    assert conv.mean() > 0.999
    mz = lee.max_z(Z)
    np.testing.assert_array_equal(mz, Z[:, 0])
    for z in (1.0, 1.5, 2.0):
        p_toys = lee.p_global_toys(z, mz)
        p_loc = float(ndtr(-z))
        err = np.sqrt(p_loc * (1 - p_loc) / mz.size)
        assert abs(p_toys - p_loc) < 3.5 * err, (z, p_toys, p_loc)
    assert 0.42 < np.mean(mz == 0) < 0.58  # half of the toys have A_hat <= 0


def test_zero_fraction_flags_toys_whose_mean_holds_a_bump(data: np.ndarray) -> None:
    """Toys drawn from the background the window fit predicts have Z_local = 0 half the
    time and are not flagged; toys whose mean holds a bump at the mass (as a GP fit of a
    spectrum with an excess there keeps part of it: a review found P(Z_local = 0) = 0.35 at
    the real 2015 data's most significant mass) have it less often, and are flagged."""
    from gprpipe.stats.quality import toys_biased

    fm = _map(0.06, data)
    seeds = [np.random.SeedSequence([13, t]) for t in range(2000)]
    Z, _ = lee.scan_fixed([fm], lee.poisson_toys(MEAN, seeds))
    frac, err = lee.zero_fraction(Z)
    np.testing.assert_allclose(err, [0.5 / np.sqrt(2000)])
    assert frac[0] == np.mean(Z[:, 0] == 0) and not toys_biased(frac, err).any(), frac
    bump = BUMP * signal_template(EDGES, 0.06, 0.05 * 0.06)
    Zb, _ = lee.scan_fixed([fm], lee.poisson_toys(MEAN + bump, seeds))
    fb, eb = lee.zero_fraction(Zb)
    assert 0.3 < fb[0] < 0.4 and toys_biased(fb, eb).all(), fb
    # NaN (no Z) is not a toy; a mass without any Z has NaN, never a flag
    f, e = lee.zero_fraction(np.array([[0.0, np.nan], [1.2, np.nan], [0.0, np.nan]]))
    np.testing.assert_allclose(f[:1], [2 / 3])
    np.testing.assert_allclose(e[:1], [0.5 / np.sqrt(3)])
    assert np.isnan(f[1]) and np.isnan(e[1]) and not toys_biased(f, e).any()


def test_max_z_tail_between_local_p_and_sidak_bound(data: np.ndarray) -> None:
    masses = np.linspace(0.05, 0.07, 10)  # about one resolution apart: correlated
    maps = [_map(m, data) for m in masses]
    toys = lee.poisson_toys(MEAN, [np.random.SeedSequence([12, t]) for t in range(1500)])
    Z, _ = lee.scan_fixed(maps, toys)
    mz = lee.max_z(Z)
    for z in (1.5, 2.0):
        p_loc = float(ndtr(-z))
        bound = float(lee.sidak_max_z_sf(z, len(masses)))  # all masses independent
        p = float(np.mean(mz >= z))
        err = np.sqrt(p * (1 - p) / mz.size)
        assert p_loc + 3 * err < p < bound - 3 * err, (z, p_loc, p, bound)
    # the neighbouring masses are correlated: fewer independent tests than masses
    p2 = float(np.mean(mz >= 2.0))
    n_indep = np.log1p(-p2) / np.log1p(-float(ndtr(-2.0)))
    assert 1.0 < n_indep < len(masses)


def test_toys_are_reproducible_and_independent_of_chunking() -> None:
    seeds = [np.random.SeedSequence([5, t]) for t in range(8)]
    a = lee.poisson_toys(MEAN, seeds)
    b = lee.poisson_toys(MEAN, seeds[3:6])
    np.testing.assert_array_equal(a[3:6], b)
    np.testing.assert_array_equal(a, lee.poisson_toys(MEAN, seeds))
    assert not np.array_equal(a[0], a[1])


def test_p_global_toys_counts_and_nan() -> None:
    mz = np.array([0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        lee.p_global_toys(np.array([0.0, 2.0, 3.5, np.nan]), mz), [1.0, 3 / 5, 1 / 5, np.nan]
    )
    Z = np.array([[1.0, np.nan, 4.0], [np.nan, np.nan, 0.5]])
    np.testing.assert_array_equal(lee.max_z(Z), [4.0, 0.5])
    # a toy without a Z at any used mass (its fits failed) has no maximum: NaN, and the
    # p-value counts the other toys (as 0 it was a toy below every observed Z: with half
    # the toys failed p came out half, and with all of them failed 1 / (N + 1), a review)
    np.testing.assert_array_equal(lee.max_z(Z, [True, True, False]), [1.0, np.nan])
    with_failed = np.array([0.5, 1.0, 2.0, 3.0, np.nan, np.nan])
    np.testing.assert_allclose(lee.p_global_toys([2.0], with_failed), [3 / 5])
    assert np.isnan(lee.p_global_toys([0.5], lee.max_z(np.full((1000, 3), np.nan)))).all()
    assert np.isnan(lee.max_z(np.ones((3, 2)), [False, False])).all()  # no mass used


def test_leakage_template_per_toy(data: np.ndarray) -> None:
    """With the training-bin template, each toy's window template is w - b_t M(w_tr/y_tr):
    the fit equals an ordinary fit with that toy's (b_t, C_t, w_eff,t)."""
    mass, sigma = 0.06, 0.003
    blind = blind_mask(X, mass, sigma, 1.64)
    w_full = signal_template(EDGES, mass, sigma)
    fm = lee.fixed_map(X, data, ~blind, blind, HYPER, w_full[blind], w_full[~blind])
    assert fm.leak is not None and np.all(fm.win.w < fm.w)  # the leak lowers the template
    toys = lee.poisson_toys(MEAN, list(range(100, 112))).astype(float)
    logc = lee.log_counts(toys)
    z, conv = lee.z_local_fixed(fm, toys, logc)
    assert conv.all()
    for t in range(12):
        b, C = lognormal_moments(fm.M @ logc[t, fm.train], fm.S)
        w_eff = w_full[blind] - b * (fm.M @ (w_full[~blind] / data[~blind]))
        n, L = toys[t, fm.blind], cholesky_jitter(C)
        assert z[t] == pytest.approx(significance.z_local(WindowModel(b, L, w_eff).q0(n)), abs=1e-4)


# -- the combination: toy t of every dataset fitted with one shared eps^2 -------------------
MEAN2 = 0.4 * MEAN * (X / 0.05) ** 0.3  # a second dataset: fewer counts, another slope
K_UNITS = (2.0e3, 5.0e2)  # yields per unit eps^2 (any positive numbers)


def _leaky_map(mass: float, counts: np.ndarray) -> lee.FixedMap:
    sigma = 0.05 * mass
    blind = blind_mask(X, mass, sigma, 1.64)
    w = signal_template(EDGES, mass, sigma)
    return lee.fixed_map(X, counts, ~blind, blind, HYPER, w[blind], w[~blind])


@pytest.fixture(scope="module")
def data2() -> np.ndarray:
    return np.random.default_rng(8).poisson(MEAN2).astype(float)


@pytest.mark.parametrize("leakage", [False, True])
def test_joint_map_is_the_combined_fit_per_toy(data, data2, leakage) -> None:
    """The joint map's Z of each pseudo-experiment (toy t of both datasets) equals the
    combination (``stats.combine``) of the two windows with that toy's own backgrounds,
    covariances and, with leakage modelled, templates; on the data themselves it is the
    observed combined Z."""
    from gprpipe.stats.combine import Block, combine

    make = _leaky_map if leakage else _map
    maps = (make(0.06, data), make(0.06, data2))
    jm = lee.joint_map(maps, K_UNITS)
    toys = [
        np.vstack([d, lee.poisson_toys(mean, [np.random.SeedSequence([s, t]) for t in range(12)])])
        for d, mean, s in ((data, MEAN, 21), (data2, MEAN2, 22))
    ]
    logc = [lee.log_counts(c) for c in toys]
    z, conv = lee.z_local_joint(jm, toys, logc)
    assert conv.all() and (z > 0).any() and (z == 0).any()
    for t in range(13):
        blocks = []
        for fm, c, lc, k in zip(maps, toys, logc, K_UNITS):
            b, C = lognormal_moments(fm.M @ lc[t, fm.train], fm.S)
            w = fm.w if fm.leak is None else fm.w - b * fm.leak
            blocks.append(Block(c[t, fm.blind], b, C, w, k))
        cw = combine(blocks)
        assert z[t] == pytest.approx(float(significance.z_local(cw.model.q0(cw.n))), abs=1e-4)


def test_joint_map_of_one_dataset_is_its_fixed_map(data) -> None:
    fm = _map(0.08, data)
    toys = lee.poisson_toys(MEAN, [np.random.SeedSequence([23, t]) for t in range(40)])
    logc = lee.log_counts(toys)
    z1, _ = lee.z_local_fixed(fm, toys.astype(float), logc)
    zj, _ = lee.z_local_joint(lee.joint_map([fm], [K_UNITS[0]]), [toys], [logc])
    np.testing.assert_allclose(zj, z1, atol=1e-6)
    with pytest.raises(ValueError, match="one yield per unit eps"):
        lee.joint_map([fm], K_UNITS)


def test_combined_toys_at_one_mass_give_the_asymptotic_local_p(data, data2) -> None:
    """Background-only pseudo-experiments of the combination: the fraction with Z >= z is
    the asymptotic local p (within 3.5 binomial errors of 3000 toys), as for one dataset."""
    jm = lee.joint_map((_map(0.06, data), _map(0.06, data2)), K_UNITS)
    toys = [
        lee.poisson_toys(mean, [np.random.SeedSequence([s, t]) for t in range(3000)])
        for mean, s in ((MEAN, 31), (MEAN2, 32))
    ]
    z, conv = lee.z_local_joint(jm, toys, [lee.log_counts(c) for c in toys])
    assert conv.mean() > 0.999
    for zz in (1.0, 1.5, 2.0):
        p_loc = float(ndtr(-zz))
        err = np.sqrt(p_loc * (1 - p_loc) / z.size)
        assert abs(float(np.mean(z >= zz)) - p_loc) < 3.5 * err, (zz, np.mean(z >= zz))
