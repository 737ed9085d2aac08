"""The combination with a shared eps^2 (gprpipe.stats.combine, gprpipe.steps.combine).

Fast tests use synthetic windows and two real GP fits; the full 2015+2016 scan (combined
rows at every overlap mass, combined limit vs the best single dataset) is slow.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, run_cli_here, settings
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from gprpipe.stats import combine as comb
from gprpipe.stats.cls import AsymptoticCalculator
from gprpipe.stats.likelihood import WindowModel, cholesky_jitter
from gprpipe.stats.toys import background_toys


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One BLAS thread, as in the pipeline's workers (2-core machine)."""
    with threadpool_limits(1):
        yield


def _window(rng, k=15, level=2e4, amp=0.02, ell=4.0):
    """A synthetic blind window: smooth background, GP-like covariance, Gaussian template."""
    x = np.arange(k)
    b = level * np.exp(-0.03 * x)
    K = amp**2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / ell**2)
    C = np.outer(b, b) * K + 1e-9 * np.eye(k) * level
    w = np.exp(-0.5 * ((x - k / 2) / (k / 6)) ** 2)
    w *= 0.9 / w.sum()
    n = rng.poisson(b).astype(float)
    return n, b, C, w


def test_single_block_equals_single_dataset():
    rng = np.random.default_rng(1)
    n, b, C, w = _window(rng)
    K = 3.0e8  # yield per unit eps^2
    cw = comb.combine([comb.Block(n, b, C, w, K)])
    L = cholesky_jitter(C)
    single = WindowModel(b, L, w).fit(n)
    e_hat, s_e, _ = comb.fit(cw)
    assert e_hat * K == pytest.approx(single.A_hat, rel=1e-6, abs=1e-6 * single.sigma_A)
    assert s_e * K == pytest.approx(single.sigma_A, rel=1e-6)
    up = comb.upper_limit(cw, 0.05)
    calc = AsymptoticCalculator(WindowModel(b, L, w), alpha=0.05)
    assert up * K == pytest.approx(calc.upper_limit(n), rel=2e-4)
    exp = comb.expected_limits(cw, 0.05)
    ref = calc.expected_band()
    np.testing.assert_allclose(exp * K, ref, rtol=2e-4)
    # the internal unit is O(1): mu = eps2 / scale with scale ~ sigma(eps2)
    assert 0.1 < s_e / cw.scale < 10.0


def test_identical_windows_shrink_sigma_by_sqrt2():
    rng = np.random.default_rng(2)
    _, b, C, w = _window(rng)
    blocks = [comb.Block(b, b, C, w, 1e8, "a"), comb.Block(b, b, C, w, 1e8, "b")]
    cw = comb.combine(blocks)
    _, s1, _ = comb.fit(comb.combine(blocks[:1]))
    _, s2, _ = comb.fit(cw)
    assert s2 == pytest.approx(s1 / np.sqrt(2), rel=1e-3)
    e1 = comb.expected_limits(comb.combine(blocks[:1]))
    e2 = comb.expected_limits(cw)
    np.testing.assert_allclose(e2 / e1, 1 / np.sqrt(2), rtol=0.03)
    assert cw.C.shape == (30, 30)
    assert np.all(cw.C[:15, 15:] == 0)  # block-diagonal: independent nuisances


def test_joint_fit_is_the_global_minimum():
    """The vectorised joint fit agrees with a brute-force scipy fit of (eps^2, theta)."""
    rng = np.random.default_rng(3)
    n1, b1, C1, w1 = _window(rng, k=12, level=3e4)
    n2, b2, C2, w2 = _window(rng, k=18, level=5e3)
    n1 = n1 + rng.poisson(400 * w1)  # a signal in dataset 1 only
    blocks = [comb.Block(n1, b1, C1, w1, 2e8), comb.Block(n2, b2, C2, w2, 5e7)]
    cw = comb.combine(blocks)
    e_hat, s_e, fr = comb.fit(cw)
    L = cw.L

    G = np.column_stack([cw.t, L])

    def nll(p):  # raw parameters: p[0] = eps2 / scale, p[1:] = theta; analytic gradient
        lam = np.maximum(cw.b + G @ p, 1e-10)
        g = G.T @ (1.0 - cw.n / lam) + np.concatenate([[0.0], p[1:]])
        return -np.sum(cw.n * np.log(lam) - lam) + 0.5 * p[1:] @ p[1:], g

    res = minimize(nll, np.zeros(G.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-6})
    assert res.x[0] * cw.scale == pytest.approx(e_hat, abs=2e-3 * s_e)
    f_ours = nll(np.concatenate([[e_hat / cw.scale], fr.theta_hat]))[0]
    assert f_ours <= res.fun + 1e-6


def test_expected_combined_never_weaker_than_best_single():
    rng = np.random.default_rng(4)
    for _ in range(5):
        n1, b1, C1, w1 = _window(rng, k=int(rng.integers(8, 25)), level=rng.uniform(1e3, 1e5))
        n2, b2, C2, w2 = _window(rng, k=int(rng.integers(8, 25)), level=rng.uniform(1e3, 1e5))
        k1, k2 = rng.uniform(1e7, 1e9, 2)
        blocks = [comb.Block(n1, b1, C1, w1, k1), comb.Block(n2, b2, C2, w2, k2)]
        best = np.minimum(
            comb.expected_limits(comb.combine(blocks[:1])),
            comb.expected_limits(comb.combine(blocks[1:])),
        )
        assert np.all(comb.expected_limits(comb.combine(blocks)) <= best * (1 + 1e-4))


def test_combined_fit_is_the_inverse_variance_average():
    """Per toy, the joint eps^2 estimate is the inverse-variance average of the single-dataset
    estimates (large counts: the likelihoods are Gaussian), so an excess in one dataset pulls
    the combination up: why the observed combined limit can be weaker than the best single
    one while the Asimov (n = b) combined limit is always the strongest."""
    rng = np.random.default_rng(12)
    _, b1, C1, w1 = _window(rng, k=12, level=3e4)
    _, b2, C2, w2 = _window(rng, k=18, level=5e3)
    k1, k2 = 2e8, 5e7
    cw = comb.combine([comb.Block(b1, b1, C1, w1, k1), comb.Block(b2, b2, C2, w2, k2)])
    n = background_toys(cw.b, cw.C, 400, rng, cw.L).astype(float)
    e, s = [], []
    for sl, (b, C, w, k) in zip(cw.slices, ((b1, C1, w1, k1), (b2, C2, w2, k2))):
        f = WindowModel(b, cholesky_jitter(C), w).fit(n[:, sl])
        e.append(f.A_hat / k)
        s.append(f.sigma_A / k)
    wt = [1 / x**2 for x in s]
    e_avg = (wt[0] * e[0] + wt[1] * e[1]) / (wt[0] + wt[1])
    e_c, s_c, _ = comb.fit(cw, n)
    np.testing.assert_allclose(s_c, (wt[0] + wt[1]) ** -0.5, rtol=0.002)
    assert np.max(np.abs(e_c - e_avg) / s_c) < 0.01
    # on the Asimov data the combined observed limit is the strongest
    single = [
        comb.upper_limit(comb.combine([blk]))
        for blk in (comb.Block(b1, b1, C1, w1, k1), comb.Block(b2, b2, C2, w2, k2))
    ]
    assert comb.upper_limit(cw) < min(single)


def test_conditional_combined_injection_closes():
    from gprpipe.stats.inject import inject_conditional_combined

    rng = np.random.default_rng(5)
    n1, b1, C1, w1 = _window(rng, k=12, level=3e4)
    n2, b2, C2, w2 = _window(rng, k=18, level=5e3)
    cw = comb.combine([comb.Block(n1, b1, C1, w1, 2e8), comb.Block(n2, b2, C2, w2, 5e7)])
    _, s_ref, _ = comb.fit(cw, cw.b)
    ex = inject_conditional_combined(cw, 4 * s_ref, 4000, np.random.default_rng(6))
    s = ex.summary()
    assert s["n_kept"] == 4000
    assert abs(s["pull_mean"]) < 0.06
    assert 0.95 < s["pull_width"] < 1.05
    assert s["A_hat_mean"] == pytest.approx(4 * s_ref, rel=0.03)


def _real_block(shared, year, mass):
    """A real GP window of one dataset at one mass (the fit step's numerics)."""
    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import fit_masses
    from gprpipe.steps.inject import unit_yield

    sets = [f"datasets.{y}.path={shared}/funcform_{y}_toys.root" for y in ("2015", "2016")]
    cfg = load_points(REPO / "user_configs" / "hps2015_2016_combined.toml", sets)[1][0].config
    ds = cfg.datasets[year]
    c, e = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    mf = fit_masses(cfg, year, c, e, np.array([mass]))[0]
    bl = mf.blind
    return comb.Block(bl["n"], bl["b"], bl["C"], bl["w"], unit_yield(cfg, year, mass, mf.rho), year)


def test_real_2015_2016_at_60MeV(shared_data: Path):
    blocks = [_real_block(shared_data, y, 0.060) for y in ("2015", "2016")]
    cw = comb.combine(blocks)
    singles = [comb.combine([b]) for b in blocks]
    e_c = comb.expected_limits(cw)
    e_s = np.array([comb.expected_limits(s) for s in singles])
    assert np.all(e_c <= e_s.min(axis=0) * (1 + 1e-4))
    _, s_c, _ = comb.fit(cw)
    s_s = [comb.fit(s)[1] for s in singles]
    # inverse-variance combination of the two standard errors
    assert s_c == pytest.approx(1 / np.sqrt(sum(1 / s**2 for s in s_s)), rel=0.02)
    r = comb.combined_limits(cw)
    assert r["eps2_up"] > 0 and np.all(np.diff(r["eps2_exp"]) > 0)


def _scan(path: Path) -> dict[str, dict[float, dict[str, str]]]:
    out: dict[str, dict[float, dict[str, str]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            out.setdefault(row["dataset"], {})[float(row["mass_GeV"])] = row
    return out


@pytest.mark.slow
def test_full_2015_2016_combined_scan(real_combined: Path):
    """Combined rows at every overlap mass; expected combined limits never weaker than the
    best single dataset; observed within 5% at 69 of 96 masses (background-only toys of the
    same windows meet that at 86% of masses on average: benchmarks/study_combination.py)."""
    out = real_combined
    scan = _scan(out / "nominal" / "scan.csv")
    overlap = sorted(set(scan["2015"]) & set(scan["2016"]))
    assert len(overlap) == 96
    assert sorted(scan["combined"]) == overlap
    assert all(r["status"] == "ok" for r in scan["combined"].values())
    ratio = {}
    for col in ("eps2_exp_med", "eps2_up"):
        ratio[col] = np.array(
            [
                float(scan["combined"][m][col])
                / min(float(scan["2015"][m][col]), float(scan["2016"][m][col]))
                for m in overlap
            ]
        )
    assert np.all(ratio["eps2_exp_med"] <= 1.0 + 1e-4)
    assert np.mean(ratio["eps2_up"] <= 1.05) >= 0.65
    for m in overlap:
        row = scan["combined"][m]
        assert float(row["Z_global"]) <= float(row["Z_local"]) + 1e-12


def test_toy_bands_and_toy_limit_agree_with_asymptotics():
    rng = np.random.default_rng(7)
    n1, b1, C1, w1 = _window(rng, k=12, level=3e4)
    n2, b2, C2, w2 = _window(rng, k=18, level=5e3)
    cw = comb.combine([comb.Block(n1, b1, C1, w1, 2e8), comb.Block(n2, b2, C2, w2, 5e7)])
    asym = comb.combined_limits(cw)
    toys = comb.combined_limits(
        cw, mode="toys", bands="toys", n_toys=1000, band_toys=3000, rng=np.random.default_rng(8)
    )
    np.testing.assert_allclose(toys["eps2_exp"][1:4], asym["eps2_exp"][1:4], rtol=0.1)
    assert toys["eps2_up"] == pytest.approx(asym["eps2_up"], rel=0.15)
    assert np.all(np.diff(toys["eps2_exp"]) > 0)
    # the toy limit's Monte Carlo error (6.1% with 1000 toys for this seed, since the band
    # draws first; 5.3% before); none for asymptotic
    assert toys["eps2_up_err"] / toys["eps2_up"] == pytest.approx(0.0605, abs=0.0005)
    assert np.isnan(asym["eps2_up_err"])
    # the toy band's Monte Carlo error: its largest position's, relative (with 3,000 toys
    # 1.38% for this seed; 0.9-2.5%, median 1.6%, over 200 seeds); none for asymptotic bands
    assert toys["exp_band_rel_err"] == pytest.approx(0.0138, abs=0.0005)
    assert np.isnan(asym["exp_band_rel_err"])
    rng = np.random.default_rng(9)
    blind = comb.combined_limits(cw, bands="toys", band_toys=3000, observed=False, rng=rng)
    assert 0.009 < blind["exp_band_rel_err"] < 0.025


@pytest.mark.slow
def test_combined_refit_injection_cli(shared_data: Path, tmp_path: Path):
    """Refit-mode injection at 60 MeV through the CLI: per-dataset and combined rows; every
    GP refit converged; the noise-free refit toys extract 70-95% of the injected yield,
    with ~10.7% of the signal on each dataset's training bins (1.64 sigma window)."""
    out = tmp_path / "run"
    code, so, se = run_cli_here(
        "run",
        REPO / "user_configs" / "hps2015_2016_combined.toml",
        *settings(
            f"datasets.2015.path={shared_data}/funcform_2015_toys.root",
            f"datasets.2016.path={shared_data}/funcform_2016_toys.root",
            f"base.output={out}",
            "scan.masses=[0.06]",
            "inject.masses=[0.06]",
            "inject.refit_gp=true",
            "inject.n_toys=8",
            "inject.strengths=[0.0, 5.0]",
        ),
        # the reference template w: the absorption this test measures (model: ~1)
        "--set",
        "fit.signal_leakage=ignore",
        "--steps",
        "load,fit,inject",  # (no limit: the checks read inject.csv and inject.h5 alone)
    )
    assert code == 0, so + se
    with (out / "nominal" / "inject.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["dataset"], r["z_inj"], r["n_kept"], r["refit_gp"]) for r in rows] == [
        (d, z, "8", "true") for d in ("2015", "2016", "combined") for z in ("0", "5")
    ]
    from gprpipe.results.schema import INJECT_H5

    with h5py.File(out / "nominal" / "inject.h5") as f:
        for d in ("2015", "2016", "combined"):
            g = f[d]
            # the file holds what the results schema defines, no array more or less
            arrays = {k for k, v in g.items() if isinstance(v, h5py.Dataset)}
            assert arrays == set(INJECT_H5.names) - {"dataset"}, arrays
            assert np.allclose(g["sideband_leak"][()], 0.107, atol=0.005)
            ratio = g["A_hat_asimov"][1] / g["A_inj"][1]
            assert 0.70 < ratio < 0.95, (d, ratio)
            # the signal's response (the absorption of template w: about 75%) apart from
            # the refit's background offset
            response = (g["A_hat_asimov"][1] - g["A_hat_asimov0"][1]) / g["A_inj"][1]
            assert 0.70 < response < 0.85, (d, response)
            assert g["gp_conv_frac"][()].min() == 1.0


@pytest.mark.slow
def test_export_pyhf_of_the_combination_says_which_export_takes_it(real_combined: Path):
    """``export-pyhf --dataset combined``: "fit.h5: no dataset 'combined'" (a review) told
    a user neither why nor what to use; the joint fit is exported by export-spey."""
    code, out, err = run_cli_here(
        "export-pyhf", real_combined, "--dataset", "combined", "--mass", "60MeV"
    )
    assert (code, out) == (1, "")
    assert err.strip() == (
        "error: --dataset combined: this export is of one dataset's window (have: 2015, "
        "2016); the combination's likelihood is exported by export-spey --dataset combined."
    )
    # a typo in export-spey's dataset names what it takes, the combination included (it
    # named fit.h5's datasets, where 'combined' is none)
    code, out, err = run_cli_here("export-spey", real_combined, "--dataset", "2017")
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: {real_combined}/nominal/limit.h5: no dataset '2017' (have: 2015, 2016, combined)."
    )
    assert not (real_combined / "nominal" / "exports").exists()


@pytest.mark.slow
def test_a_dataset_left_out_of_a_combined_row_is_flagged_and_named(tmp_path: Path):
    """Three demo spectra, the third trained below 70 MeV only: its fit fails at 100 MeV,
    and the combined row there joins the other two. That row read ``ok`` (a review), its
    gp_converged false although both fits it joins converged; now it is flagged
    ``flag_dataset_left_out`` (no Z_global, out of the discovery), gp_converged says its
    fits converged, and the summary names the dataset and mass."""
    tables = []
    for k, name in enumerate("abc", start=1):
        code, _, err = run_cli_here("demo-data", tmp_path / f"{name}.root", "--seed", str(k))
        assert code == 0, err
        tables.append(
            f'[datasets.{name}]\ncard = "hps2015"\nlabel = "demo {name}"\npath = "{name}.root"\n'
        )
    tables[2] += "sigma_coeffs = [-9.22283032152e-05, 0.045]\n"  # c: a finer resolution
    cfg = tmp_path / "trio.toml"
    cfg.write_text(
        f'[base]\nname = "trio"\noutput = "{tmp_path / "run"}"\n'
        + "\n".join(tables)
        + "data_range = [0.01, 0.07]\n"
        + '[scan]\nmasses = [0.06, 0.1]\ncombined = true\n[steps]\nrun = ["load", "fit", "limit"]\n'
    )
    code, out, err = run_cli_here("run", cfg)
    assert code == 1, err  # the failed fit of c fails the run
    with open(tmp_path / "run" / "nominal" / "scan.csv") as fh:
        rows = {(r["dataset"], r["mass_GeV"]): r for r in csv.DictReader(fh)}
    assert rows[("c", "0.1")]["status"].startswith("fit failed:")
    assert rows[("combined", "0.06")]["status"] == "ok"
    row = rows[("combined", "0.1")]
    assert row["status"] == "flag_dataset_left_out" and row["gp_converged"] == "true"
    # its resolution: of the datasets it joins (it was c's, finer, though c is left out)
    assert (
        row["sigma_m_GeV"] == rows[("a", "0.1")]["sigma_m_GeV"] != rows[("c", "0.1")]["sigma_m_GeV"]
    )
    assert rows[("combined", "0.06")]["sigma_m_GeV"] == rows[("c", "0.06")]["sigma_m_GeV"]
    assert float(row["A_up"]) > 0 and row["Z_global"] == "nan"

    def sigma_eps2(r: dict[str, str]) -> float:  # sigma_A / K, K = A per unit eps^2
        return float(r["sigma_A"]) * float(r["eps2_up"]) / float(r["A_up"])

    a, b = (sigma_eps2(rows[(d, "0.1")]) ** -2 for d in "ab")
    assert sigma_eps2(row) == pytest.approx((a + b) ** -0.5, rel=0.05)  # a and b joined
    # no failed quality check: the row is said apart (report.html counts it so too)
    assert "    flagged: 0\n" in out
    assert (
        "    left out of the combination: c at 100 MeV (no usable fit there; those rows are "
        "flag_dataset_left_out)\n"
    ) in out
    # the observed displays at that mass: b's, and the combination of a and b; c has no fit
    # there (its display failed the plot step: no report, no figures, a review)
    code, out, err = run_cli_here(
        "run",
        cfg,
        *settings("plot.displays.observed=[0.1]", 'plot.formats=["png"]', "plot.masses=[0.1]"),
        "--steps",
        "load,fit,limit,plot",
    )
    point = tmp_path / "run" / "nominal"
    assert "nominal/plot: done" in err + out, err
    log = (point / "logs" / "plot.log").read_text()
    assert "notice: plot.displays.observed: no usable GP fit of c at 100 MeV" in log
    plots = {p.name for p in (point / "plots").iterdir()}
    assert {"display_observed_a_100MeV.png", "display_observed_combined_100MeV.png"} <= plots
    assert not any(p.startswith("display_observed_c_") for p in plots)
    shown = json.loads((point / "plots" / "display_observed_combined_100MeV.json").read_text())
    assert sorted(shown["per_dataset"]) == ["a", "b"]
    assert (point / "report.html").is_file()
    # the figures: the combined row was circled "flagged (background model)" beside
    # background-model flags, and c's failed mass drew nothing in the overlays (its curve
    # just ended, as at the end of a range): a review
    import matplotlib.pyplot as plt

    from gprpipe.plotting import overlay
    from gprpipe.results import schema

    scan = schema.read_scan(point / "limit.h5")
    names = {"a": "demo a", "b": "demo b", "c": "demo c"}

    def legend_of(fig) -> list[str]:
        shown = fig.axes[0].get_legend_handles_labels()[1]
        plt.close(fig)
        return shown

    for fig in (
        overlay.eps2_overlay_figure(scan, names, "t", 95.0),
        overlay.observed_figure(scan, names, "t", 95.0, "eps2"),
    ):
        shown = legend_of(fig)
        assert "Combined flagged (a dataset left out)" in shown, shown
        assert not any("background model" in x for x in shown), shown
        assert "demo c: no result (failed)" in shown, shown
    from gprpipe.plotting import suite

    comb = scan["combined"]
    fig = suite.significance_figure(
        comb["mass_GeV"],
        comb["p0_local"],
        comb["p0_global"],
        "t",
        flagged=suite.flag_mask(comb["status"]),
        left_out=suite.left_out_mask(comb["status"]),
    )
    panels = [ax.get_legend_handles_labels()[1] for ax in fig.axes[:2]]  # p0, then Z
    plt.close(fig)
    assert all("flagged (a dataset left out)" in x for x in panels), panels
    shown = legend_of(overlay.combined_brazil_figure(scan, names, "t", 95.0))
    assert shown.count("demo c: no result (failed)") == 1, shown  # (drawn twice)
    assert "flagged (a dataset left out)" in shown and "demo c: no result (failed)" in shown
    assert not any("background model" in x for x in shown), shown
    # the Spey export of the combination named no dataset: which bins are whose (a review)
    code, _, err = run_cli_here("export-spey", tmp_path / "run", "--dataset", "combined")
    assert code == 0, err
    doc = json.loads((point / "exports" / "spey_combined.json").read_text())
    (entry,) = doc["masses"]  # 60 MeV; 100 MeV (c left out) is in masses_left_out
    assert entry["mass_GeV"] == 0.06 and list(entry["datasets"]) == ["a", "b", "c"]
    edges = [entry["datasets"][d] for d in "abc"]
    assert edges[0][0] == 0 and edges[-1][1] == len(entry["data"])
    assert all(x[1] == y[0] and x[1] > x[0] for x, y in itertools.pairwise(edges))
    assert "A_up of a combined entry is the signal yield summed over them" in doc["conventions"]
    code, _, err = run_cli_here("export-spey", tmp_path / "run", "--dataset", "a")
    one = json.loads((point / "exports" / "spey_a.json").read_text())["masses"][0]
    assert code == 0 and one["datasets"] == {"a": [0, len(one["data"])]}, err


def test_the_summary_names_only_datasets_whose_fit_was_left_out() -> None:
    """A dataset whose limit failed has a usable fit, which the combination joins: the
    summary named it as left out beside the one whose fit failed (a review)."""
    from gprpipe.results.summary import dataset_lines, summarize_scan

    rows = [
        {"dataset": "a", "mass_GeV": "0.1", "status": "ok"},
        {"dataset": "b", "mass_GeV": "0.1", "status": "limit failed: x"},
        {"dataset": "c", "mass_GeV": "0.1", "status": "fit failed: x"},
        {"dataset": "combined", "mass_GeV": "0.1", "status": "flag_dataset_left_out"},
    ]
    (combined,) = [s for s in summarize_scan(rows) if s.dataset == "combined"]
    assert combined.left_out == {"c": [0.1]}
    assert (
        "left out of the combination: c at 100 MeV (no usable fit there; those rows are "
        "flag_dataset_left_out)"
    ) in dataset_lines(combined)
    assert "flagged: 0" in dataset_lines(combined)  # (no quality check failed)
    # its dataset's rows not in the table (a table of the combination alone): counted
    (alone,) = summarize_scan(rows[3:])
    assert dataset_lines(alone)[-1] == (
        "rows with a dataset left out: 1 at 100 MeV (flag_dataset_left_out)"
    )


def test_empty_windows_fail_the_combined_limit_instead_of_an_infinite_sigma():
    """Every signal bin of both windows empty: eps2_hat runs to the lam >= 0 boundary and
    sigma_eps2 is infinite; the combination said nothing and its row was 'ok' (a review)."""
    w = np.array([0.2, 0.5, 0.2])
    blocks = [comb.Block(np.zeros(3), np.full(3, 5.0), 0.25 * np.eye(3), w, 2e8, "a")] * 2
    with pytest.raises(ValueError, match="the signal fit did not converge"):
        comb.combined_limits(comb.combine(blocks))
    blocks[1] = comb.Block(np.full(3, 5.0), np.full(3, 5.0), 0.25 * np.eye(3), w, 2e8, "b")
    assert np.isfinite(comb.combined_limits(comb.combine(blocks))["sigma_eps2"])


def test_a_combined_scan_puts_every_dataset_on_one_mass_grid(tmp_path: Path):
    """A 2 MeV step started each dataset at its own range start: 2016 (from 35 MeV) on odd
    masses, 2015 and 2021 on even ones, and 2016 silently never entered the combination
    (a review). With scan.combined the steps start at the lowest range start of all;
    the shipped 1 MeV grids are unchanged, and a scan without combination keeps its own."""
    from gprpipe.config import load_points

    tpl = REPO / "templates" / "hps2015_2016_2021_combined.toml"
    cfg = tmp_path / "c.toml"
    paths = "".join(f'[datasets.{n}]\npath = "d{n}.root"\n' for n in ("2015", "2016", "2021"))
    cfg.write_text(f'[base]\ntemplate = "{tpl}"\n[scan]\ncombined = true\n{paths}')
    ranges = (
        "datasets.2015.range=[0.040,0.046]",
        "datasets.2016.range=[0.035,0.045]",
        "datasets.2021.range=[0.040,0.046]",
    )
    (p,) = load_points(cfg, ["scan.mass_step=0.002", *ranges])[1]
    mev = {n: np.round(p.config.test_masses(n) * 1e3, 6).tolist() for n in ("2015", "2016")}
    assert mev == {"2015": [41.0, 43.0, 45.0], "2016": [35.0, 37.0, 39.0, 41.0, 43.0, 45.0]}
    assert np.allclose(p.config.combined_masses(), [0.041, 0.043, 0.045])
    (alone,) = load_points(cfg, ["scan.mass_step=0.002", "scan.combined=false", *ranges])[1]
    assert np.allclose(alone.config.test_masses("2015"), [0.040, 0.042, 0.044, 0.046])
    # the shipped grids: 111, 176 and 221 masses from each range's start, as before
    (full,) = load_points(cfg, [])[1]
    for name, n, lo in (("2015", 111, 0.020), ("2016", 176, 0.035), ("2021", 221, 0.030)):
        m = full.config.test_masses(name)
        assert len(m) == n and m[0] == lo and np.all(np.round(np.diff(m), 9) == 0.001)
    # a range between two masses of the combined grid: refused, not scanned empty
    from gprpipe.errors import ConfigError

    narrow = [*ranges[1:], "datasets.2015.range=[0.0415,0.0425]", "scan.mass_step=0.002"]
    with pytest.raises(ConfigError, match=r"puts no test mass in \[0.0415, 0.0425\] GeV of "):
        load_points(cfg, narrow)


def test_an_unresolved_combined_toy_limit_keeps_the_fit_z_and_expected_band(monkeypatch):
    """Both windows 2 sigma_A low and 100 toys: the combined toy limit cannot be resolved
    (UnresolvedToyLimit); the row kept nothing else (its eps2_hat, sigma, Z and expected
    band, none of which depends on the observed limit, were NaN: a review). Now the
    stats function hands them over with the exception, and the step keeps them."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gprpipe.config import load_points
    from gprpipe.stats.cls import UnresolvedToyLimit
    from gprpipe.stats.quality import counts_for_discovery, has_expected, observed_unresolved
    from gprpipe.steps import combine as steps_combine

    blocks = []
    for k, d in ((1e4, "a"), (5e3, "b")):
        b = k * np.exp(-0.5 * np.linspace(-1, 1, 6))
        x = np.linspace(-1, 1, 6)
        C = 0.005**2 * np.outer(b, b) * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 0.64)
        w = np.exp(-0.5 * (x / 0.5) ** 2)
        w *= 0.9 / w.sum()
        sig = float(WindowModel(b, cholesky_jitter(C), w).fit(b).sigma_A)
        blocks.append(comb.Block(np.round(b - 2.0 * sig * w), b, C, w, 1e8, d))
    cw = comb.combine(blocks)
    opts = {"mode": "toys", "n_toys": 100, "bands": "asymptotic"}
    with pytest.raises(UnresolvedToyLimit) as exc:
        comb.combined_limits(cw, **opts, rng=np.random.default_rng(5))
    asym = comb.combined_limits(cw)
    part = exc.value.partial
    assert "eps2_up" not in part
    for key in ("eps2_hat", "sigma_eps2", "q0", "Z_local", "p0_local"):
        assert part[key] == pytest.approx(asym[key], rel=1e-12), key
    np.testing.assert_allclose(part["eps2_exp"], asym["eps2_exp"], rtol=1e-12)
    assert float(part["eps2_hat"]) < 0 and part["Z_local"] == 0

    # the step's row: every column but the observed limit, a failure status that says why
    cfg = load_points(REPO / "user_configs" / "quickstart.toml")[1][0].config
    cfg = cfg.model_copy(update={"limit": cfg.limit.model_copy(update=opts)})

    def load(cfg, fit_path, mass, fits=None, quality=None):
        quality.update({"status": ["ok", "ok"], "gof_p": [0.5, 0.4], "gof_chi2_ndf": [1, 1]})
        return [replace(b, name="demo") for b in blocks], [], True  # (the config's dataset)

    monkeypatch.setattr(steps_combine, "load_blocks", load)
    monkeypatch.setattr(steps_combine, "covering", lambda cfg, m: ["demo"])
    ctx = SimpleNamespace(progress=lambda *a: None, layout=SimpleNamespace(fit=None))
    (row,) = steps_combine.combined_rows(cfg, ctx, [0.05])
    status = row["status"]
    assert status.startswith("combined limit failed: observed toy limit unresolved: ")
    assert status.endswith(": raise limit.n_toys") and "background-only toys" in status
    assert observed_unresolved(status) and has_expected(status)
    assert not counts_for_discovery([status])[0]
    assert np.isnan([row[k] for k in ("A_up", "A_up_err", "eps2_up", "eps2_up_err")]).all()
    k = cw.k_total
    assert row["A_hat"] == pytest.approx(asym["eps2_hat"] * k, rel=1e-12)
    assert row["sigma_A"] == pytest.approx(asym["sigma_eps2"] * k, rel=1e-12)
    assert row["Z_local"] == 0 and row["p0_local"] == 0.5
    band = [row[f"eps2_exp_{b}"] for b in ("lo2", "lo1", "med", "hi1", "hi2")]
    np.testing.assert_allclose(band, asym["eps2_exp"], rtol=1e-12)

    # a dataset's quality flag stands over the unresolved limit (a review: it was lost,
    # and the row's expected limit went into HEPData and combination.csv as a quoted one)
    def flagged(cfg, fit_path, mass, fits=None, quality=None):
        quality.update({"status": ["flag_gof", "ok"], "gof_p": [0.001, 0.4]})
        quality["gof_chi2_ndf"] = [3, 1]
        return [replace(b, name="demo") for b in blocks], [], True

    monkeypatch.setattr(steps_combine, "load_blocks", flagged)
    (row,) = steps_combine.combined_rows(cfg, ctx, [0.05])
    assert row["status"] == "flag_gof" and np.isnan(row["eps2_up"])
    assert row["Z_local"] == 0 and np.isfinite(row["eps2_exp_med"])


def test_combination_csv_is_written_when_every_combined_limit_is_unresolved(tmp_path: Path):
    """A review: combination.csv (and allocation.csv) were not written at all when no
    combined row was ok, though rows whose observed toy limit alone is unresolved go into
    it (their sigma_A and expected limit stand)."""
    from gprpipe.config.schema import Config
    from gprpipe.io.hdf5 import write_group, write_h5
    from gprpipe.pipeline.plan import Layout
    from gprpipe.steps.reach import combination_products

    unresolved = "limit failed: observed toy limit unresolved: 3 of 10 ...: raise limit.n_toys"
    combined = f"combined {unresolved}"
    cfg = Config.model_validate(
        {
            "datasets": {
                n: {"path": "x.root", "range": [0.05, 0.13], "sigma_coeffs": [0.001]}
                for n in ("2015", "2016")
            }
        }
    )
    lay = Layout(tmp_path)
    (tmp_path / "plots").mkdir()

    def rows(status: str, sigma_a: float, k: float, exp: float) -> dict[str, np.ndarray]:
        return {
            "mass_GeV": np.array([0.06, 0.08]),
            "status": np.array([status, status]),
            "sigma_A": np.full(2, sigma_a),
            "A_up": np.full(2, np.nan),
            "eps2_up": np.full(2, np.nan),
            "A_exp_med": np.full(2, exp * k),
            "eps2_exp_med": np.full(2, exp),
        }

    with write_h5(lay.limit, {}) as f:
        for name, r in (
            ("2015", rows(unresolved, 100.0, 1e7, 3e-5)),
            ("2016", rows(unresolved, 50.0, 2e6, 4e-5)),
            ("combined", rows(combined, 1.0, 1.0, 2.5e-5)),
        ):
            write_group(f.create_group(name), r)
    written = combination_products(cfg, lay, ("png",))
    assert lay.combination_csv in written
    table = list(csv.DictReader(lay.combination_csv.open()))
    assert [(r["dataset"], r["mass_GeV"]) for r in table] == [
        (n, m) for m in ("0.06", "0.08") for n in ("2015", "2016", "combined")
    ]


def test_combination_csv_keeps_a_dataset_whose_observed_toy_limit_alone_is_unresolved():
    """combination.csv dropped a dataset at a mass where its observed toy limit was
    unresolved, although its sigma_A and expected limit stand (a review: 2016 at 124 MeV
    left out, the combination's ratio to the best single 0.18 instead of 0.98). Its K, the
    yield per unit eps^2, comes from the expected limit there; a failed fit stays out."""
    from gprpipe.steps.reach import combination_table

    unresolved = "limit failed: observed toy limit unresolved: 3 of 100 ...: raise limit.n_toys"

    def rows(status: list[str], sigma_a: float, k: float, exp: float) -> dict[str, np.ndarray]:
        n = len(status)
        a_up = np.where([s == "ok" for s in status], 3.0 * sigma_a, np.nan)
        return {
            "mass_GeV": np.array([0.06, 0.124][:n]),
            "status": np.array(status),
            "sigma_A": np.full(n, sigma_a),
            "A_up": a_up,
            "eps2_up": a_up / k,
            "A_exp_med": np.full(n, exp * k),
            "eps2_exp_med": np.full(n, exp),
        }

    scan = {
        "2015": rows(["ok", "ok"], 100.0, 1e7, 3.0e-5),
        "2016": rows(["ok", unresolved], 50.0, 2e6, 4.0e-5),
        "2021": rows(["ok", "fit failed: singular"], 80.0, 4e6, 5.0e-5),
        "combined": rows(["ok", "ok"], 1.0, 1.0, 2.5e-5),
    }
    table = {(r[0], r[1]): r for r in combination_table(scan, ["2015", "2016", "2021"])}
    assert ("2016", 0.124) in table and ("2021", 0.124) not in table
    sig_2016 = 50.0 / 2e6  # sigma_A / K
    assert table[("2016", 0.124)][2] == pytest.approx(sig_2016, rel=1e-12)
    w = np.array([(100.0 / 1e7) ** -2, sig_2016**-2])
    assert table[("2016", 0.124)][3] == pytest.approx(w[1] / w.sum(), rel=1e-12)
    assert table[("combined", 0.124)][8] == pytest.approx(2.5e-5 / 3.0e-5, rel=1e-12)
    assert table[("2016", 0.06)][2] == pytest.approx(sig_2016, rel=1e-12)  # as before
