"""Cross-check against pyhf: the blind-window likelihood exported as a HistFactory workspace
(signal normfactor + one histosys per column of the nuisance factor) gives the same
asymptotic CLs limits in pyhf as in gprpipe.

pyhf (an optional test extra) is used with its asymptotic calculator and ``qtilde``; its toy
mode is broken with numpy >= 2.4. Windows: the real 2015 histogram (rebin 10) with ``b, C``
from a sideband stand-in (weighted polynomial fit of the log counts, with its covariance,
through lognormal moments), and a small synthetic window exported with the full Cholesky
factor. For speed the data windows are exported with the compressed factor ``WindowModel.Lc``
(``Lc Lc^T = C`` up to directions carrying < 1e-10 of Fisher information).

Convention: pyhf builds its Asimov data from the nuisance parameters fitted to the observed
data at A = 0 ("post-fit"); gprpipe's default is the background-only Asimov ``n = b``
(docs/method.md). The two coincide when the pulls are small; the band comparison passes
``b + L theta_hat(0)`` as the Asimov background to compare like with like.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from gprpipe.stats.cls import AsymptoticCalculator  # noqa: E402
from gprpipe.stats.histfactory import workspace  # noqa: E402
from gprpipe.stats.likelihood import WindowModel, cholesky_jitter  # noqa: E402
from tests.conftest import assert_pyhf_limits_within  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hps"
ROOT_2015 = DATA / "funcform_2015_toys.root"
SIGMA_2015 = (-9.22283032152e-05, 0.0532190838657)


def window_2015(mass: float):
    uproot = pytest.importorskip("uproot")
    if not ROOT_2015.exists():
        pytest.skip(f"real data not found: {ROOT_2015}")
    with uproot.open(ROOT_2015) as f:
        counts, edges = f["input_hist"].to_numpy()
    edges, counts = edges[::10], counts.reshape(-1, 10).sum(axis=1)
    sigma = SIGMA_2015[0] + SIGMA_2015[1] * mass
    x = 0.5 * (edges[1:] + edges[:-1])
    blind = np.abs(x - mass) <= 1.64 * sigma
    train = (np.abs(x - mass) <= 8.0 * sigma) & ~blind & (counts > 0)
    X = np.vander(np.log(x / mass), 5, increasing=True)
    cov = np.linalg.inv(X[train].T @ (X[train] * counts[train][:, None]))
    beta = cov @ (X[train].T @ (counts[train] * np.log(counts[train])))
    S = X[blind] @ cov @ X[blind].T
    b = np.exp(X[blind] @ beta + 0.5 * np.diag(S))
    C = np.outer(b, b) * np.expm1(S)
    w = np.diff(ndtr((edges - mass) / sigma))
    w = (w / w.sum())[blind]
    return counts[blind].astype(float), b, C, w


def pyhf_limits(n, b, L, w, lo: float, hi: float, scale: float):
    """pyhf asymptotic (qtilde) observed and expected limits by toms748, in units of A."""
    pyhf = pytest.importorskip("pyhf")  # in the tests, not at collection (in every worker)
    from pyhf.infer.intervals.upper_limits import toms748_scan

    pyhf.set_backend("numpy", "scipy")
    ws = pyhf.Workspace(workspace(n, b, L, w, signal_scale=scale))
    model = ws.model()
    data = ws.data(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, exp = toms748_scan(
            data, model, lo / scale, hi / scale, level=0.05, rtol=1e-5, test_stat="qtilde"
        )
    return float(obs) * scale, np.asarray(exp, dtype=float) * scale


def check_window(n, b, C, w, L_export):
    L = cholesky_jitter(C)
    fit = WindowModel(b, L, w).fit(n)
    scale = float(f"{fit.sigma_A:.1g}")  # keep pyhf's POI O(1)
    a_up = AsymptoticCalculator(WindowModel(b, L, w)).upper_limit(n)
    band_prefit = AsymptoticCalculator(WindowModel(b, L, w)).expected_band()
    band_postfit = AsymptoticCalculator(WindowModel(b + L @ fit.theta0, L, w)).expected_band()
    lo = 0.97 * min(a_up, band_postfit[0], band_prefit[0])
    hi = 1.03 * max(a_up, band_postfit[-1], band_prefit[-1])
    obs, exp = pyhf_limits(n, b, L_export(L, b, w), w, lo, hi, scale)
    assert a_up == pytest.approx(obs, rel=0.01)
    assert band_postfit == pytest.approx(exp, rel=0.01)
    return a_up / obs - 1, band_prefit / exp - 1, band_postfit / exp - 1


def bracket_window(n, b, C, w, L_export) -> None:
    """check_window's claims (observed limit and post-fit band within 1% of pyhf's) from
    pyhf's CLs at 0.99 and 1.01 times each of gprpipe's limits (two hypothesis tests per
    limit instead of a root search for each)."""
    L = cholesky_jitter(C)
    fit = WindowModel(b, L, w).fit(n)
    scale = float(f"{fit.sigma_A:.1g}")  # keep pyhf's POI O(1)
    a_up = AsymptoticCalculator(WindowModel(b, L, w)).upper_limit(n)
    band_postfit = AsymptoticCalculator(WindowModel(b + L @ fit.theta0, L, w)).expected_band()
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", "scipy")
    ws = pyhf.Workspace(workspace(n, b, L_export(L, b, w), w, signal_scale=scale))
    model = ws.model()
    band = [float(a) / scale for a in band_postfit]
    assert_pyhf_limits_within(ws.data(model), model, a_up / scale, band, rel=0.01)


def compressed(L, b, w):
    return WindowModel(b, L, w).Lc


def test_pyhf_agrees_on_real_2015_window():
    n, b, C, w = window_2015(0.070)  # a deficit: A_hat < 0, q~ uses NLL(0)
    assert WindowModel(b, cholesky_jitter(C), w).fit(n).A_hat < 0
    d_obs, d_pre, d_post = check_window(n, b, C, w, compressed)
    assert abs(d_obs) < 2e-3 and np.max(np.abs(d_post)) < 2e-3
    assert abs(d_pre[2]) < 0.01  # gprpipe's default (pre-fit Asimov) median, too


def test_pyhf_agrees_with_full_cholesky_export():
    """The literal export (one histosys per column of the Cholesky factor) on a small window."""
    k = 6
    x = np.linspace(-1.0, 1.0, k)
    b = 400.0 * np.exp(-0.6 * x)
    C = 0.03**2 * np.outer(b, b) * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 0.7**2)
    w = np.exp(-0.5 * (x / 0.5) ** 2)
    w *= 0.9 / w.sum()
    n = np.array([410.0, 350.0, 330.0, 300.0, 250.0, 230.0])
    ws = workspace(n, b, cholesky_jitter(C), w)
    assert len(ws["channels"][0]["samples"][1]["modifiers"]) == k
    check_window(n, b, C, w, lambda L, b_, w_: L)


@pytest.mark.slow
@pytest.mark.parametrize("mass", [0.045, 0.085, 0.115])
def test_pyhf_agrees_at_more_2015_masses(mass):
    n, b, C, w = window_2015(mass)
    bracket_window(n, b, C, w, compressed)


@pytest.mark.slow
def test_pyhf_agrees_with_the_leakage_aware_template(shared_data):
    """The window of the real GP fit at 60 MeV with the leakage-aware template ``w_eff``
    (the default likelihood): pyhf on the exported workspace agrees within 1%."""
    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import fit_masses

    repo = Path(__file__).resolve().parents[1]
    path = shared_data / "funcform_2015_toys.root"
    _, points = load_points(repo / "user_configs/hps2015.toml", [f"datasets.2015.path={path}"])
    cfg = points[0].config
    counts, edges = rebin(*read_hist(path, "input_hist"), 10)
    bl = fit_masses(cfg, "2015", counts, edges, np.array([0.060]))[0].blind
    assert bl["w_eff"].sum() < 0.75 * bl["w"].sum()  # the template really differs
    bracket_window(bl["n"], bl["b"], bl["C"], bl["w_eff"], compressed)
