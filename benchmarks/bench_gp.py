"""Per-mass GP window-fit time over full scans: dense vs low-rank LML, measured in one run.

Usage: python benchmarks/bench_gp.py [--datasets 2015 2021] [--methods dense auto]
                                     [--n-restarts 2] [--seed 1] [--policy auto|always]
                                     [--chunk 16] [--masses N]

Masses are fitted in chunks of --chunk (the pipeline's [scan].chunk_size default): the first
mass of a chunk is a cold fit, the others warm-start from the previous converged fit, as in
the fit step. Prints, per dataset and method: wall and CPU time (total, per mass mean /
median / max), LML evaluations per mass (and how many took the dense path), convergence; then
the dense/auto time ratio and the largest deviation of the hyperparameters, LML, b and C
between the methods. Single-threaded BLAS; the load average is printed because wall times on
a shared machine are inflated by other processes (CPU times much less so).
Data: ../shared/data/hps/funcform_<year>_toys.root.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import uproot
from threadpoolctl import threadpool_limits

from gprpipe.stats import gp
from gprpipe.stats.gp import GPOptions, fit_window, length_scale_bounds, sigma_x
from gprpipe.stats.resolution import sigma_m
from gprpipe.stats.window import WindowMasks, scan_masses

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hps"

# Card values (docs/method.md section 2, 3): coeffs, tail, scan, rebin, hi_factor, floor_factor
CARDS = {
    "2015": dict(
        coeffs=[-9.22283032152e-05, 0.0532190838657],
        tail=(None, None),
        scan=(0.020, 0.130),
        rebin=10,
        hi=8.0,
        floor=1.0,
    ),
    "2016": dict(
        coeffs=[0.00038, 0.041, -0.27, 3.49, -11.11],
        tail=(0.18, 0.0239),
        scan=(0.035, 0.210),
        rebin=10,
        hi=8.0,
        floor=0.8,
    ),
    "2021": dict(
        coeffs=[0.0014786, -0.0011, 0.0687],
        tail=(None, None),
        scan=(0.030, 0.250),
        rebin=5,
        hi=9.0,
        floor=0.8,
    ),
}


def load(year: str, rebin: int) -> tuple[np.ndarray, np.ndarray]:
    counts, edges = uproot.open(DATA / f"funcform_{year}_toys.root")["input_hist"].to_numpy()
    n = len(counts) // rebin * rebin
    return counts[:n].reshape(-1, rebin).sum(axis=1), edges[: n + 1 : rebin]


class _DenseCounter:
    """Counts the LML evaluations that take the dense path (instrumentation only)."""

    def __init__(self) -> None:
        self.n = 0
        self._orig = gp._LogMarginal._dense
        counter = self

        def counted(f, theta, eval_gradient):
            counter.n += 1
            return counter._orig(f, theta, eval_gradient)

        gp._LogMarginal._dense = counted  # type: ignore[method-assign]


def scan(year: str, method: str, args: argparse.Namespace, counter: _DenseCounter) -> dict:
    card = CARDS[year]
    counts, edges = load(year, card["rebin"])
    masses = scan_masses(*card["scan"], 0.001)
    sig = sigma_m(masses, card["coeffs"], *card["tail"])
    sx = sigma_x(masses, sig)
    med = float(np.median(sx))
    if args.masses:
        masses = masses[: args.masses]
    times, cpus, evals, fits = [], [], [], []
    bad: list[str] = []
    n_train = 0
    prev = None
    dense0 = counter.n
    t_all, c_all = time.perf_counter(), time.process_time()
    for i, m in enumerate(masses):
        if i % args.chunk == 0:
            prev = None  # a new chunk (task) starts cold
        lb = length_scale_bounds(sx[i], med, 0.5, card["hi"], card["floor"])
        t0, c0 = time.perf_counter(), time.process_time()
        opts = GPOptions(lb, n_restarts=args.n_restarts, restart_policy=args.policy, method=method)
        wf = fit_window(
            edges,
            counts,
            WindowMasks(float(m), float(sig[i])),
            opts,
            seed=args.seed + i,
            start=prev,
        )
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if wf.hyper.converged:
            prev = wf.hyper
        else:
            bad.append(f"{m:.3f}: {wf.hyper.reason}")
        evals.append(wf.hyper.n_evals)
        fits.append(wf)
        n_train = max(n_train, int(wf.train.sum()))
    total, ctotal = time.perf_counter() - t_all, time.process_time() - c_all
    t, c = np.array(times), np.array(cpus)
    n_conv = len(masses) - len(bad)
    print(
        f"{year} [{method}]: {len(masses)} masses, {len(counts)} bins, <= {n_train} training "
        f"bins, chunks of {args.chunk}, policy={args.policy}, n_restarts={args.n_restarts}"
    )
    print(
        f"  wall: total {total:.2f} s; per mass mean {t.mean():.3f} s, median "
        f"{np.median(t):.3f} s, max {t.max():.3f} s"
    )
    print(
        f"  CPU:  total {ctotal:.2f} s; per mass mean {c.mean():.3f} s, median "
        f"{np.median(c):.3f} s, max {c.max():.3f} s (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"  LML evals per mass: mean {np.mean(evals):.1f}, max {max(evals)}; "
        f"dense-path evals {counter.n - dense0} of {sum(evals)}"
    )
    print(f"  converged: {n_conv}/{len(masses)}")
    for line in bad:
        print(f"    not converged at {line}")
    return {"wall": total, "cpu": ctotal, "fits": fits, "masses": masses}


def _compare(year: str, ref: dict, new: dict, names: tuple[str, str]) -> None:
    def rel(x, y):
        return float(
            np.max(
                np.abs(np.asarray(x) - np.asarray(y)) / np.maximum(np.abs(np.asarray(x)), 1e-300)
            )
        )

    pairs = list(zip(ref["fits"], new["fits"]))
    dev = {
        "amplitude": max(rel(a.hyper.amplitude, b.hyper.amplitude) for a, b in pairs),
        "length_scale": max(rel(a.hyper.length_scale, b.hyper.length_scale) for a, b in pairs),
        "lml": max(rel(a.hyper.lml, b.hyper.lml) for a, b in pairs),
        "b": max(rel(a.b, b.b) for a, b in pairs),
        "C (max |dC| / max |C|)": max(
            float(np.abs(a.C - b.C).max() / np.abs(a.C).max()) for a, b in pairs
        ),
    }
    conv = sum(a.hyper.converged != b.hyper.converged for a, b in pairs)
    print(
        f"{year}: {names[0]} / {names[1]}: wall {ref['wall']:.2f} / {new['wall']:.2f} s "
        f"= {ref['wall'] / new['wall']:.1f}x, CPU {ref['cpu']:.2f} / {new['cpu']:.2f} s "
        f"= {ref['cpu'] / new['cpu']:.1f}x"
    )
    print(
        "  largest relative deviation: "
        + ", ".join(f"{k} {v:.1e}" for k, v in dev.items())
        + f"; converged flag differs at {conv} masses"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["2015", "2021"], choices=sorted(CARDS))
    ap.add_argument(
        "--methods", nargs="+", default=["dense", "auto"], choices=["dense", "auto", "lowrank"]
    )
    ap.add_argument("--n-restarts", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", default="auto", choices=["auto", "always"])
    ap.add_argument("--chunk", type=int, default=16, help="masses per task (cold start each)")
    ap.add_argument("--masses", type=int, default=None, help="only the first N masses")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"data directory not found: {DATA}")
    counter = _DenseCounter()
    with threadpool_limits(1):
        for year in args.datasets:
            res = {m: scan(year, m, args, counter) for m in args.methods}
            if len(args.methods) == 2:
                _compare(year, res[args.methods[0]], res[args.methods[1]], tuple(args.methods))


if __name__ == "__main__":
    main()
