"""Injection/extraction closure (gprpipe.stats.inject, gprpipe.steps.inject).

Fast: the toy generators, the summary, conditional closure on synthetic and real 2015
windows, seeding, a short refit run. Slow (``-m slow``): the conditional closure grid of
docs/method.md section 9 (2015 at 30/60/100 MeV, strengths 0/3/5, 2000 toys), the refit closure
(1000 toys), injection into the functional-form toys, and the CLI end to end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import DEMO_ROOT, REPO, run_cli_here, settings, write
from threadpoolctl import threadpool_limits

from gprpipe.stats import inject as inj
from gprpipe.stats.likelihood import cholesky_jitter

MASSES = (0.030, 0.060, 0.100)
CSV_COLUMNS = [
    "dataset",
    "mass_GeV",
    "z_inj",
    "A_inj",
    "n_kept",
    "n_generated",
    "A_hat_mean",
    "A_hat_std",
    "pull_mean",
    "pull_mean_err",
    "pull_width",
    "cov_1sigma",
    "cov_1sigma_err",
    "cov_2sigma",
    "cov_2sigma_err",
    "Zhat_mean",
    "refit_gp",
]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One BLAS thread, as in the pipeline's workers (2-core machine)."""
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------
def test_signal_counts_modes():
    rng = np.random.default_rng(1)
    w = np.array([0.1, 0.3, 0.4, 0.1])  # sums to 0.9: 10% of the signal falls outside
    p = inj.signal_counts(1000.0, w, 20000, rng, "poisson")
    np.testing.assert_allclose(p.mean(axis=0), 1000 * w, rtol=0.02)
    assert p.sum(axis=1).var() == pytest.approx(900, rel=0.05)  # Poisson total
    m = inj.signal_counts(1000.0, w, 20000, rng, "multinomial")
    np.testing.assert_allclose(m.mean(axis=0), 1000 * w, rtol=0.02)
    assert m.sum(axis=1).var() == pytest.approx(1000 * 0.9 * 0.1, rel=0.05)  # binomial
    assert not inj.signal_counts(0.0, w, 5, rng).any()
    with pytest.raises(ValueError):
        inj.signal_counts(10.0, w, 5, rng, "gaussian")


def test_summary_figures():
    a_hat = np.array([1.0, 3.0, 2.0, np.nan, 10.0])
    s = np.array([1.0, 1.0, 1.0, 1.0, np.inf])
    out = inj.summarize(2.0, a_hat, s)
    assert out["n_kept"] == 3
    assert out["A_hat_mean"] == pytest.approx(2.0)
    assert out["pull_mean"] == pytest.approx(0.0)
    assert out["pull_width"] == pytest.approx(1.0)
    assert out["cov_1sigma"] == pytest.approx(1 / 3)
    assert out["cov_2sigma"] == pytest.approx(1.0)
    assert out["Zhat_mean"] == pytest.approx(2.0)
    # the statistical errors of the closure figures (inject.csv had none, a review)
    assert out["pull_mean_err"] == pytest.approx(1.0 / np.sqrt(3))
    # coverage errors at the Gaussian targets: all 3 toys inside 2 sigma_A is no 1 +- 0
    assert out["cov_1sigma_err"] == pytest.approx(np.sqrt(0.6827 * 0.3173 / 3))
    assert out["cov_2sigma_err"] == pytest.approx(np.sqrt(0.9545 * 0.0455 / 3))
    assert inj.summarize(1.0, [np.nan], [1.0])["n_kept"] == 0
    one = inj.summarize(1.0, [2.0, np.nan], [1.0, 1.0])  # one toy kept: no spread to give
    assert one["n_kept"] == 1 and one["pull_mean"] == 1.0
    assert np.isnan(one["pull_width"]) and np.isnan(one["A_hat_std"])
    assert np.isnan(one["pull_mean_err"])
    assert one["cov_1sigma_err"] == pytest.approx(np.sqrt(0.6827 * 0.3173))


def _synthetic(k=20, level=5e4):
    x = np.arange(k)
    b = level * np.exp(-0.02 * x)
    K = 0.01**2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 5.0**2)
    C = np.outer(b, b) * K
    w = np.exp(-0.5 * ((x - k / 2) / (k / 6)) ** 2)
    return b, C, 0.9 * w / w.sum()


def test_conditional_closure_synthetic_and_seeded():
    b, C, w = _synthetic()
    L = cholesky_jitter(C)
    sref = inj.sigma_ref(b, L, w)
    for z in (0.0, 4.0):
        ex = inj.inject_conditional(b, C, w, z * sref, 5000, np.random.default_rng(7), L=L)
        s = ex.summary()
        assert s["n_kept"] == 5000
        assert abs(s["pull_mean"]) < 0.05
        assert 0.96 < s["pull_width"] < 1.04
        assert abs(s["cov_1sigma"] - 0.683) < 0.02
    again = inj.inject_conditional(b, C, w, 4 * sref, 5000, np.random.default_rng(7), L=L)
    np.testing.assert_array_equal(again.A_hat, ex.A_hat)
    multi = inj.inject_conditional(
        b, C, w, 4 * sref, 5000, np.random.default_rng(8), mode="multinomial", L=L
    ).summary()
    assert abs(multi["A_hat_mean"] / (4 * sref) - 1) < 0.03


# ------------------------------------------------------------------------------------------
# Real 2015 data
# ------------------------------------------------------------------------------------------
def _cfg(shared: Path, *sets: str):
    from gprpipe.config import load_points

    base = [f"datasets.2015.path={shared}/funcform_2015_toys.root", *sets]
    return load_points(REPO / "user_configs" / "hps2015_injection.toml", base)[1][0].config


@pytest.fixture(scope="session")  # (slow and short tests use it: see conftest)
def real2015():
    """GP fits of the real 2015 histogram at 30, 60 and 100 MeV (the fit step's numerics)."""
    from conftest import SHARED_DATA

    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import fit_masses

    if not (SHARED_DATA / "funcform_2015_toys.root").is_file():
        pytest.skip("real data not available")
    cfg = _cfg(SHARED_DATA)
    ds = cfg.datasets["2015"]
    counts, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    fits = {f.mass: f for f in fit_masses(cfg, "2015", counts, edges, np.array(MASSES))}
    return cfg, counts, edges, fits


def _setup(cfg, counts, edges, fit):
    from gprpipe.steps.inject import Window, refit_setup

    return refit_setup(cfg, "2015", Window(fit, counts, edges))


def test_conditional_closure_real_2015_60MeV(real2015):
    _, _, _, fits = real2015
    bl = fits[0.06].blind
    L = cholesky_jitter(bl["C"])
    sref = inj.sigma_ref(bl["b"], L, bl["w"])
    assert sref == pytest.approx(2190, rel=0.02)
    ex = inj.inject_conditional(
        bl["b"], bl["C"], bl["w"], 5 * sref, 10000, np.random.default_rng(11), L=L
    )
    s = ex.summary()
    assert abs(s["pull_mean"]) < 0.04
    assert 0.97 < s["pull_width"] < 1.03
    assert abs(s["cov_1sigma"] - 0.683) < 0.015
    assert abs(s["cov_2sigma"] - 0.954) < 0.01


def test_refit_short_run_is_chunk_independent(real2015):
    """A few refit toys: GP refits converge, and toy t does not depend on the batch."""
    from gprpipe.stats.template import signal_template

    cfg, counts, edges, fits = real2015
    f = fits[0.06]
    setup = _setup(cfg, counts, edges, f)
    b_full = inj.full_range_mean(counts, setup)
    # the full-range GP mean reproduces the observed spectrum in the window
    assert b_full[setup.blind].sum() == pytest.approx(counts[setup.blind].sum(), rel=0.01)
    w_full = signal_template(edges, 0.06, f.sigma)
    A = 5 * inj.sigma_ref(f.blind["b"], cholesky_jitter(f.blind["C"]), f.blind["w"])
    seeds = np.random.SeedSequence(99).spawn(6)
    ex = inj.inject_refit(setup, A, w_full, seeds, b_full=b_full)
    assert ex.extra["gp_converged"].all()
    assert np.isfinite(ex.A_hat).all()
    assert 0.4 < np.mean(ex.A_hat) / A < 1.2
    part = inj.inject_refit(setup, A, w_full, seeds[3:5], b_full=b_full)
    np.testing.assert_allclose(part.A_hat, ex.A_hat[3:5], rtol=1e-9)


def test_a_refit_whose_prediction_overflows_is_not_converged():
    """A refit toy on sidebands rougher than Poisson scatter (the demo spectrum times 100
    with fresh noise) takes a huge amplitude and its window prediction overflows: it counts
    as a failed refit, as the fit step fails such a mass (it counted as converged, so
    inject.h5's gp_conv_frac said 1.0 of toys it could not use)."""
    from conftest import QUICKSTART

    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.stats.template import signal_template
    from gprpipe.steps.fit import fit_masses
    from gprpipe.steps.inject import Window, refit_setup

    cfg = load_points(QUICKSTART, [])[1][0].config
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    smooth, e = rebin(counts, edges, 10)
    rough = rebin(np.random.default_rng(1).poisson(100 * counts).astype(float), edges, 10)[0]
    fit = fit_masses(cfg, "demo", smooth, e, np.array([0.06]))[0]
    setup = refit_setup(cfg, "demo", Window(fit, smooth, e))
    w_full = signal_template(e, 0.06, fit.sigma)
    seeds = np.random.SeedSequence(5).spawn(2)
    ex = inj.inject_refit(setup, 0.0, w_full, seeds, backgrounds=np.array([rough, smooth]))
    np.testing.assert_array_equal(ex.extra["gp_converged"], [False, True])
    assert ex.extra["gp_amplitude"][0] > 1e5  # kept: it says why
    np.testing.assert_array_equal(ex.converged, [False, True])
    assert np.isnan(ex.A_hat[0]) and np.isfinite(ex.A_hat[1])


@pytest.mark.parametrize("blind,leak,lo,hi", [(1.64, 0.107, 0.72, 0.78), (1.96, 0.053, 0.82, 0.88)])
def test_leakage_explains_refit_bias(real2015, blind, leak, lo, hi):
    """The noise-free refit toy predicts how much of an injected signal the sideband GP
    absorbs at 60 MeV: 25% with the 1.64 sigma window (10.7% of the signal on the training
    bins), 15% with the 1.96 sigma window (5.3%); the hyperparameter refit itself adds
    at most 1% to what the data fit's hyperparameters absorb. (``leakage="ignore"``: the
    reference convention, template ``w``; test_leakage.py covers ``w_eff``.)"""
    from gprpipe.stats.gp import predict_counts
    from gprpipe.stats.likelihood import WindowModel
    from gprpipe.stats.template import signal_template
    from gprpipe.steps.fit import fit_masses

    cfg, counts, edges, fits = real2015
    f = fits[0.06]
    if blind != cfg.fit.blind_nsigma:
        cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"blind_nsigma": blind})})
        f = fit_masses(cfg, "2015", counts, edges, np.array([0.06]))[0]
    setup = _setup(cfg, counts, edges, f)
    b_full = inj.full_range_mean(counts, setup)
    w_full = signal_template(edges, 0.06, f.sigma)
    assert inj.sideband_leak(setup, w_full) == pytest.approx(leak, abs=0.003)
    A = 5 * inj.sigma_ref(f.blind["b"], cholesky_jitter(f.blind["C"]), f.blind["w"])
    a_hat, s_hat = inj.asimov_refit(setup, A, w_full, b_full, leakage="ignore")
    assert lo < a_hat / A < hi
    assert s_hat > 0
    x, tr, bl = setup.centres, setup.train, setup.blind
    b1, C1 = predict_counts(x[tr], (b_full + A * w_full)[tr], x[bl], setup.start)
    fixed = WindowModel(b1, cholesky_jitter(C1), w_full[bl]).fit((b_full + A * w_full)[bl]).A_hat
    assert abs(fixed / A - a_hat / A) < 0.02
    # no signal, no absorption: the refit reproduces the toy background within 0.2 sigma_A
    a0, s0 = inj.asimov_refit(setup, 0.0, w_full, b_full, leakage="ignore")
    assert abs(a0 / s0) < 0.2


# ------------------------------------------------------------------------------------------
# Slow validations (numbers in the issue report)
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_conditional_closure_grid_2015(real2015):
    """docs/method.md section 9 targets with the pipeline's seeds, 2000 toys per point.

    The statistical error of a pull mean over 2000 toys is 0.022, so the per-point check
    uses 3.5 standard errors; the pooled 6000 toys per mass must meet |pull mean| < 0.05.
    """
    from gprpipe.steps.runner import seed_for

    cfg, _, _, fits = real2015
    for m in MASSES:
        bl = fits[m].blind
        L = cholesky_jitter(bl["C"])
        sref = inj.sigma_ref(bl["b"], L, bl["w"])
        pulls = []
        for z in (0.0, 3.0, 5.0):
            rng = np.random.default_rng(seed_for(cfg.base.seed, "inject", "2015", m, z))
            ex = inj.inject_conditional(bl["b"], bl["C"], bl["w"], z * sref, 2000, rng, L=L)
            s = ex.summary()
            assert abs(s["pull_mean"]) < 3.5 / np.sqrt(2000)
            assert 0.95 < s["pull_width"] < 1.05
            assert abs(s["cov_1sigma"] - 0.683) < 0.03
            pulls.append(ex.pull)
        assert abs(np.mean(np.concatenate(pulls))) < 0.05


#: refit toys per window in test_refit_closure_2015_60MeV (1000 until the suite had to fit
#: in 5 minutes; the statistical tolerance scales with 1/sqrt(N_REFIT))
N_REFIT = 300


@pytest.mark.slow
@pytest.mark.parametrize("blind,lo,hi", [(1.64, 0.70, 0.80), (1.96, 0.80, 0.92)])
def test_refit_closure_2015_60MeV(real2015, blind, lo, hi):
    """N_REFIT refit toys at 60 MeV, strength 5: converged refits, pull width <= 1.2, and the
    mean extracted yield where the noise-free refit predicts it: about 75% with the 1.64
    sigma window, about 85% (>= 80%) with the 1.96 sigma window (template ``w``:
    ``leakage="ignore"``).

    The mean agrees with the noise-free refit within 4.7 standard errors of the mean
    (A_hat_std / sqrt(N_REFIT)); that is the 0.15 A_hat_std of the former 1000-toy test,
    rescaled to the smaller sample (the first N_REFIT of those toys). The >= 1000-toy
    tables come from ``benchmarks/study_leakage.py closure`` and ``bench_inject.py``."""
    from gprpipe.stats.template import signal_template
    from gprpipe.steps.fit import fit_masses

    cfg, counts, edges, fits = real2015
    f = fits[0.06]
    if blind != cfg.fit.blind_nsigma:
        cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"blind_nsigma": blind})})
        f = fit_masses(cfg, "2015", counts, edges, np.array([0.06]))[0]
    setup = _setup(cfg, counts, edges, f)
    b_full = inj.full_range_mean(counts, setup)
    w_full = signal_template(edges, 0.06, f.sigma)
    A = 5 * inj.sigma_ref(f.blind["b"], cholesky_jitter(f.blind["C"]), f.blind["w"])
    seeds = np.random.SeedSequence(5).spawn(N_REFIT)
    ex = inj.inject_refit(setup, A, w_full, seeds, b_full=b_full, leakage="ignore")
    s = ex.summary()
    assert np.mean(ex.extra["gp_converged"]) >= 0.99
    assert lo < s["A_hat_mean"] / A < hi
    a_nf = inj.asimov_refit(setup, A, w_full, b_full, leakage="ignore")[0]
    assert abs(s["A_hat_mean"] - a_nf) < 4.7 * s["A_hat_std"] / np.sqrt(N_REFIT)
    assert s["pull_width"] <= 1.2


@pytest.mark.slow
def test_injection_into_functional_form_toys(real2015):
    """Signal of strength 5 injected into the 100 fShiftSigPowTail background toys (not
    GP-generated), GP refit per toy: the signal is recovered (bias within the leakage
    expectation) with a pull width <= 1.2."""
    from conftest import SHARED_DATA

    from gprpipe.io.root import read_hist, rebin
    from gprpipe.stats.template import signal_template

    cfg, counts, edges, fits = real2015
    f = fits[0.06]
    setup = _setup(cfg, counts, edges, f)
    toys = np.array(
        [
            rebin(
                *read_hist(
                    SHARED_DATA / "funcform_2015_toys.root",
                    f"fShiftSigPowTail/fShiftSigPowTail_toy_{i}",
                ),
                10,
            )[0]
            for i in range(100)
        ]
    )
    assert toys.shape[1] == counts.size
    w_full = signal_template(edges, 0.06, f.sigma)
    A = 5 * inj.sigma_ref(f.blind["b"], cholesky_jitter(f.blind["C"]), f.blind["w"])
    seeds = np.random.SeedSequence(6).spawn(100)
    ex = inj.inject_refit(setup, A, w_full, seeds, backgrounds=toys, leakage="ignore")
    bkg = inj.inject_refit(setup, 0.0, w_full, seeds, backgrounds=toys, leakage="ignore")
    s = ex.summary()
    assert np.mean(ex.extra["gp_converged"]) >= 0.98
    assert 0.6 < s["A_hat_mean"] / A < 1.1
    assert s["pull_width"] <= 1.2
    assert abs(bkg.summary()["pull_mean"]) < 1.0  # no large spurious signal


@pytest.mark.slow
def test_cli_injection_end_to_end(tmp_path: Path):
    """``gprpipe run`` with the shipped injection config on the demo spectrum (two of its
    grid points, few toys): inject.csv has the docs/design.md columns, inject.h5 the per-toy
    arrays and, in refit mode, the leakage diagnostics; the plots exist."""
    out = tmp_path / "run"
    cond, refit = "refit_gp-false_blind_nsigma-1.64", "refit_gp-true_blind_nsigma-1.96"
    code, so, se = run_cli_here(
        "run",
        REPO / "user_configs" / "hps2015_injection.toml",
        *settings(
            f"datasets.2015.path={DEMO_ROOT}",
            f"base.output={out}",
            "inject.n_toys=10",
            "inject.masses=[0.06]",
            'plot.formats=["png"]',
            "scan.masses=[0.06]",
            "plot.displays.datasets=[]",
        ),
        "--points",
        f"{cond},{refit}",
    )
    assert code == 0, so + se
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [cond, refit]
    # the run's summary gives each point's injection closure (it gave the scan only)
    assert so.count("  injection 2015 (1 mass x 3 strengths, ") == 2, so
    for name, flag in ((cond, "false"), (refit, "true")):
        point = out / name
        with (point / "inject.csv").open() as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == CSV_COLUMNS
        assert len(rows) == 4 and all(r[0] == "2015" and r[-1] == flag for r in rows[1:])
        assert [float(r[2]) for r in rows[1:]] == [0.0, 3.0, 5.0]
        with h5py.File(point / "inject.h5") as f:
            g = f["2015/toys/60MeV_z5"]
            assert g["A_hat"].shape == (10,) and "pull" in g
            assert f.attrs["cache_key"]
            leak, a_asimov, a_offset, a_inj = (
                f["2015"][k][()]
                for k in ("sideband_leak", "A_hat_asimov", "A_hat_asimov0", "A_inj")
            )
        if flag == "true":
            # 1.96 sigma window: ~5% of the signal on the training bins, ~85% extracted
            assert np.allclose(leak, 0.05, atol=0.01)
            assert 0.75 < a_asimov[-1] / a_inj[-1] < 0.95
            # of which the signal's whole response (the leakage model closes) and the
            # background offset of the refit, the same at every strength (a review: the
            # shortfall was read as leakage)
            assert a_offset[0] < 0
            assert np.allclose((a_asimov[1:] - a_offset[1:]) / a_inj[1:], 1.0, atol=0.01)
        else:
            assert np.isnan(leak).all() and np.isnan(a_asimov).all()
            assert np.isnan(a_offset).all()
        plots = {p.name for p in (point / "plots").iterdir()}
        assert {
            "inject_linearity_2015.png",
            "inject_coverage_2015.png",
            "inject_pull_heatmap_2015.png",
        } <= plots
        assert (point / "hepdata" / "limits_eps2_2015.yaml").is_file()


def test_injection_where_the_window_holds_no_events(tmp_path: Path, shared_data: Path):
    """At 10 MeV the 2015 data's window holds no events, so the signal yield per unit eps^2
    (proportional to the background density rho) is 0: the study runs in sigma_A units and
    eps2_inj is NaN (it stopped with 'internal error: ZeroDivisionError', a review); the
    displays of that mass are drawn with no eps^2 (the plot step stopped likewise)."""
    cfg = write(
        tmp_path / "i.toml",
        f"""
        [base]
        template = "hps2015"
        name = "i"
        output = "{tmp_path / "run"}"
        [datasets.2015]
        path = "{shared_data / "funcform_2015_toys.root"}"
        range = [0.010, 0.1499]
        [scan]
        masses = [0.010]
        [inject]
        masses = [0.010]
        n_toys = 20
        strengths = [0.0, 2.0]
        [plot]
        formats = ["png"]
        masses = []
        [plot.displays]
        masses = [0.010]
        observed = [0.010]
        z = [2.0]
        variants = ["conditional"]
        datasets = ["2015"]
        [steps]
        run = ["load", "fit", "inject", "plot"]
        """,
    )
    code, out, err = run_cli_here("run", cfg)
    assert code == 0, out + err
    point = tmp_path / "run" / "nominal"
    rows = list(csv.DictReader((point / "inject.csv").open()))
    assert [(r["mass_GeV"], r["z_inj"], r["n_generated"]) for r in rows] == [
        ("0.01", "0", "20"),
        ("0.01", "2", "20"),
    ]
    assert float(rows[1]["A_inj"]) == pytest.approx(2 * 0.87492565, rel=1e-6)
    with h5py.File(point / "inject.h5", "r") as f:
        toys = f["2015"]["toys"]
        assert sorted(toys) == ["10MeV_z0", "10MeV_z2"]
        assert all(np.isnan(toys[g].attrs["eps2_inj"]) for g in toys)
    for stem in ("display_observed_2015_10MeV", "display_extract_2015_10MeV_z2_conditional"):
        side = json.loads((point / "plots" / f"{stem}.json").read_text())
        assert side["eps2_hat"] is None and side["sigma_eps2"] is None, stem
        assert (point / "plots" / f"{stem}.png").stat().st_size > 10_000


def test_injection_masses_are_written_as_every_other_mass():
    """A review: an injected mass went into inject.h5 (and the plan) as written in the
    config, 0.0600000000004, where fit.h5 and limit.h5 hold 0.06 (masses in files are
    rounded to 1e-9 GeV): an exact join of the files on mass failed."""
    from gprpipe.config import load_points
    from gprpipe.pipeline.plan import inject_parts

    _, (point,) = load_points(
        REPO / "user_configs" / "quickstart.toml",
        ["scan.masses=[0.0600000000004, 0.08]", "inject.masses=[0.0600000000004]"],
    )
    assert list(inject_parts(point.config).values()) == [("demo", 0.06)]
