"""Injection/extraction timing on the real 2015 histogram, with per-toy baselines.

Usage: python benchmarks/bench_inject.py [--mass 0.06] [--strength 5] [--n-cond 10000]
           [--n-refit 1000] [--jobs 2] [--baseline-toys 200] [--baseline-refits 10]
           [--funcform 0] [--blind NSIGMA] [--exclude NSIGMA] [--leakage model|ignore]

Prints, at one (mass, strength):
* conditional mode: 10,000 blind-window toys generated and fitted (vectorised Newton fits,
  one process), next to the straightforward method (one scipy ``minimize`` of the NLL over
  (A, theta) per toy, sigma_A from the numerical Hessian) timed on ``--baseline-toys`` toys;
* refit mode: 1,000 full-range toys with a warm-started, converged GP refit each, split
  over ``--jobs`` processes (per-toy seeds: the result does not depend on the split), next
  to the straightforward per-toy refit (sklearn's own optimiser from its default start with
  ``n_restarts_optimizer`` = fit.n_restarts, then a scipy fit of A) on ``--baseline-refits``;
* with ``--funcform N``: the same injection into the first N functional-form background
  toys of each of the three fits in the ROOT file (not GP-generated pseudo-data).
Closure figures (mean extracted / injected, pull mean and width, coverage) are printed too.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from threadpoolctl import threadpool_limits

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hps"
REPO = Path(__file__).resolve().parents[1]
FUNCS = ("fShiftSigPowTail", "fShiftSigPow", "fGenGammaShift")


def setup(mass: float, exclude: float | None, blind: float | None = None):
    """Config, data and the data GP fit at ``mass`` (the fit step's numerics)."""
    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import fit_masses
    from gprpipe.steps.inject import Window, refit_setup

    sets = [f"datasets.2015.path={DATA / 'funcform_2015_toys.root'}"]
    if exclude is not None:
        sets.append(f"fit.train_exclude_nsigma={exclude}")
    points = load_points(REPO / "user_configs" / "hps2015_injection.toml", sets)[1]
    cfg = points[0].config  # the study's grid varies the window: set it here
    if blind is not None:
        cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"blind_nsigma": blind})})
    print(
        f"blind window +-{cfg.fit.blind_nsigma:g} sigma, GP training excludes "
        f"+-{cfg.fit.train_exclude_nsigma or cfg.fit.blind_nsigma:g} sigma"
    )
    ds = cfg.datasets["2015"]
    counts, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    t0 = time.perf_counter()
    fit = fit_masses(cfg, "2015", counts, edges, np.array([mass]))[0]
    print(f"data GP fit at {mass * 1e3:g} MeV: {time.perf_counter() - t0:.2f} s, {fit.hyper}")
    return cfg, counts, edges, fit, refit_setup(cfg, "2015", Window(fit, counts, edges))


def summary_line(label: str, ex, A: float, sref: float) -> str:
    s = ex.summary()
    ratio = s["A_hat_mean"] / A if A > 0 else float("nan")
    return (
        f"{label}: {s['n_toys']} toys used, <A_hat>/A_inj {ratio:.3f}, "
        f"<A_hat>-A_inj = {(s['A_hat_mean'] - A):+.1f} ({(s['A_hat_mean'] - A) / sref:+.3f}"
        f" sigma_ref), pull mean {s['pull_mean']:+.3f}, width {s['pull_width']:.3f}, "
        f"coverage {s['cov_1sigma']:.3f}/{s['cov_2sigma']:.3f}"
    )


# ------------------------------------------------------------------------------------------
# Baselines: one scipy fit per toy
# ------------------------------------------------------------------------------------------
def scipy_fit(n, b, L, w):
    """Straightforward per-toy fit: scipy BFGS over (A, theta), sigma_A from a numerical
    Hessian of the NLL at the minimum."""
    from scipy.optimize import minimize

    G = np.column_stack([w, L])
    prior = np.r_[0.0, np.ones(L.shape[1])]

    def f(p):
        lam = np.maximum(b + G @ p, 1e-10)
        return float(np.sum(lam - n * np.log(lam)) + 0.5 * np.sum(prior * p * p))

    V = L @ L.T + np.diag(np.maximum(b, 1.0))
    u = np.linalg.solve(V, w)
    p0 = np.zeros(G.shape[1])
    p0[0] = (n - b) @ u / (w @ u)
    res = minimize(f, p0, method="BFGS")
    h = 1e-3 * max(abs(res.x[0]), 1.0)
    H = np.zeros((len(p0), len(p0)))
    for i in range(len(p0)):
        e = np.zeros(len(p0))
        e[i] = h if i == 0 else 1e-3
        H[i] = (_grad(f, res.x + e) - _grad(f, res.x - e)) / (2 * e[i])
    H = 0.5 * (H + H.T)
    return res.x[0], float(np.sqrt(np.linalg.inv(H)[0, 0]))


def _grad(f, x):
    g = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = 1e-4 * max(abs(x[i]), 1.0)
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def baseline_refit(setup, toy, seed, w_blind):
    """Straightforward refit: sklearn GPR with its own optimiser from the default kernel
    start and ``n_restarts_optimizer`` restarts (no warm start), then :func:`scipy_fit`."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    from gprpipe.stats.gp import log_targets, lognormal_moments
    from gprpipe.stats.likelihood import cholesky_jitter

    x = setup.centres
    X, Z, alpha = log_targets(x[setup.train], toy[setup.train])
    a0 = float(np.mean(Z**2))
    k = ConstantKernel(1.0, (a0 * 1e-3, a0 * 1e3)) * RBF(1.0, setup.options.ls_bounds)
    gpr = GaussianProcessRegressor(
        k, alpha=alpha, n_restarts_optimizer=setup.options.n_restarts, random_state=seed
    )
    gpr.fit(X[:, None], Z)
    mu, S = gpr.predict(np.log(x[setup.blind])[:, None], return_cov=True)
    b, C = lognormal_moments(mu, S)
    return scipy_fit(toy[setup.blind], b, cholesky_jitter(C), w_blind)


# ------------------------------------------------------------------------------------------
# Refit workers
# ------------------------------------------------------------------------------------------
def _refit_chunk(args):
    from gprpipe.stats.inject import inject_refit

    setup, A, w_full, seeds, kw = args
    with threadpool_limits(1):
        ex = inject_refit(setup, A, w_full, seeds, **kw)
    return ex


def run_refit(setup, A, w_full, seeds, jobs: int, **kw):
    from gprpipe.stats.inject import Extraction

    chunks = [c for c in np.array_split(np.arange(len(seeds)), jobs) if len(c)]
    bk = kw.pop("backgrounds", None)
    args = [
        (
            setup,
            A,
            w_full,
            [seeds[i] for i in c],
            {**kw, **({"backgrounds": bk[c]} if bk is not None else {})},
        )
        for c in chunks
    ]
    if jobs == 1:
        parts = [_refit_chunk(a) for a in args]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            parts = list(pool.map(_refit_chunk, args))
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    extra = {k: np.concatenate([p.extra[k] for p in parts]) for k in parts[0].extra}
    return Extraction(A, cat("A_hat"), cat("sigma_A"), cat("converged"), extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mass", type=float, default=0.060)
    ap.add_argument("--strength", type=float, default=5.0)
    ap.add_argument("--n-cond", type=int, default=10000)
    ap.add_argument("--n-refit", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--baseline-toys", type=int, default=200)
    ap.add_argument("--baseline-refits", type=int, default=10)
    ap.add_argument("--funcform", type=int, default=0, help="toys per functional form")
    ap.add_argument(
        "--blind",
        type=float,
        default=None,
        help="fit.blind_nsigma (default 1.64; the method's usual variant is 1.96)",
    )
    ap.add_argument(
        "--exclude",
        type=float,
        default=None,
        help="fit.train_exclude_nsigma (default: the blind window, 1.64)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--leakage",
        choices=("model", "ignore"),
        default="model",
        help="likelihood template: w_eff (model) or w (ignore)",
    )
    args = ap.parse_args()
    if not (DATA / "funcform_2015_toys.root").is_file():
        raise SystemExit(f"real data not found in {DATA}")

    from gprpipe.stats import inject as inj
    from gprpipe.stats.likelihood import cholesky_jitter
    from gprpipe.stats.template import signal_template
    from gprpipe.stats.toys import background_toys

    threadpool_limits(1)
    _, counts, edges, fit, st = setup(args.mass, args.exclude, args.blind)
    bl = fit.blind
    L = cholesky_jitter(bl["C"])
    w_fit = bl["w_eff"] if args.leakage == "model" else bl["w"]
    w_eff = bl["w_eff"] if args.leakage == "model" else None
    sref = inj.sigma_ref(bl["b"], L, w_fit)
    A = args.strength * sref
    print(
        f"blind window: {len(bl['b'])} bins, training bins: {int(st.train.sum())}, "
        f"sigma_A,ref = {sref:.1f}, A_inj = {A:.1f} (Z = {args.strength:g})"
    )

    # ---- conditional -------------------------------------------------------------------
    rng = np.random.default_rng(args.seed)
    inj.inject_conditional(bl["b"], bl["C"], bl["w"], A, 200, rng, L=L, w_eff=w_eff)  # warm-up
    t0 = time.perf_counter()
    ex = inj.inject_conditional(
        bl["b"],
        bl["C"],
        bl["w"],
        A,
        args.n_cond,
        np.random.default_rng(args.seed),
        L=L,
        w_eff=w_eff,
    )
    dt = time.perf_counter() - t0
    print(
        f"\nconditional, {args.n_cond} toys (1 process): {dt:.2f} s "
        f"({1e6 * dt / args.n_cond:.0f} us/toy)"
    )
    print("  " + summary_line("closure", ex, A, sref))
    nb = args.baseline_toys
    toys = background_toys(bl["b"], bl["C"], nb, np.random.default_rng(2), L) + inj.signal_counts(
        A, bl["w"], nb, np.random.default_rng(3)
    )
    t0 = time.perf_counter()
    base = [scipy_fit(t.astype(float), bl["b"], L, bl["w"]) for t in toys]
    db = (time.perf_counter() - t0) / nb
    fast = inj.extract(toys, bl["b"], L, bl["w"])
    diff = np.max(np.abs(np.array([a for a, _ in base]) - fast[0]) / fast[1])
    print(
        f"  baseline scipy minimize per toy: {1e3 * db:.1f} ms/toy -> "
        f"{db * args.n_cond:.0f} s for {args.n_cond} toys ({db * args.n_cond / dt:.0f}x); "
        f"max |A_hat difference| = {diff:.2e} sigma_A"
    )

    # ---- refit -------------------------------------------------------------------------
    w_full = signal_template(edges, args.mass, fit.sigma)
    b_full = inj.full_range_mean(counts, st)
    seeds = np.random.SeedSequence(args.seed).spawn(args.n_refit)
    t0 = time.perf_counter()
    ex = run_refit(st, A, w_full, seeds, args.jobs, b_full=b_full, leakage=args.leakage)
    dt = time.perf_counter() - t0
    conv = np.mean(ex.extra["gp_converged"])
    print(
        f"\nrefit, {args.n_refit} toys ({args.jobs} processes): {dt:.1f} s "
        f"({1e3 * dt * args.jobs / args.n_refit:.0f} ms/toy per process), GP converged "
        f"{conv:.3f}, retried {np.mean(ex.extra['gp_retried']):.3f}"
    )
    print("  " + summary_line("closure", ex, A, sref))
    a_nf, _ = inj.asimov_refit(st, A, w_full, b_full, leakage=args.leakage)
    print(
        f"  signal on the GP training bins {inj.sideband_leak(st, w_full):.3f}; noise-free "
        f"refit toy extracts {a_nf / A:.3f} of A_inj (the leakage bias without statistics)"
    )
    ls = ex.extra["gp_length_scale"]
    print(f"  refit length scale median {np.median(ls):.4f} (data {fit.hyper.length_scale:.4f})")
    rng = np.random.default_rng(4)
    nr = args.baseline_refits
    t0 = time.perf_counter()
    for _ in range(nr):
        toy = (rng.poisson(b_full) + rng.poisson(A * w_full)).astype(float)
        baseline_refit(st, toy, int(rng.integers(2**31 - 1)), w_full[st.blind])
    dbr = (time.perf_counter() - t0) / nr
    print(
        f"  baseline per toy (sklearn optimiser, cold start, {st.options.n_restarts} restarts, "
        f"scipy A fit): {dbr:.2f} s/toy -> {dbr * args.n_refit / 60:.1f} min for "
        f"{args.n_refit} toys on one process"
    )

    # ---- functional-form toys ------------------------------------------------------------
    if args.funcform:
        from gprpipe.io.root import read_hist, rebin

        for fn in FUNCS:
            bk = np.array(
                [
                    rebin(*read_hist(DATA / "funcform_2015_toys.root", f"{fn}/{fn}_toy_{i}"), 10)[0]
                    for i in range(args.funcform)
                ]
            )
            sd = np.random.SeedSequence([args.seed, 7]).spawn(len(bk))
            for z in (0.0, args.strength):
                t0 = time.perf_counter()
                e = run_refit(
                    st, z * sref, w_full, sd, args.jobs, backgrounds=bk, leakage=args.leakage
                )
                print(
                    f"funcform {fn}, Z = {z:g}: "
                    f"{summary_line('', e, z * sref, sref)[2:]}, GP converged "
                    f"{np.mean(e.extra['gp_converged']):.3f} ({time.perf_counter() - t0:.0f} s)"
                )


if __name__ == "__main__":
    main()
