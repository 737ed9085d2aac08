"""Per-mass GP window-fit time over full scans (single-threaded BLAS, warm-start chaining).

Usage: python benchmarks/bench_gp.py [--datasets 2015 2021] [--n-restarts 2] [--seed 1]
                                     [--policy auto|always] [--masses N]

Prints, per dataset: number of masses and training bins, total and per-mass fit time
(mean / median / max), LML evaluations per mass, how many fits converged, and the
non-converged masses with their reason. Data: ../shared/data/hps/funcform_<year>_toys.root.
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

from gprpipe.stats.gp import fit_window, length_scale_bounds, sigma_x
from gprpipe.stats.resolution import sigma_m
from gprpipe.stats.window import scan_masses

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hps"

# Card values (METHOD.md section 2, 3): coeffs, tail, scan, rebin, hi_factor, floor_factor
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


def scan(year: str, n_restarts: int, seed: int, policy: str, n_masses: int | None) -> None:
    card = CARDS[year]
    counts, edges = load(year, card["rebin"])
    masses = scan_masses(*card["scan"], 0.001)
    sig = sigma_m(masses, card["coeffs"], *card["tail"])
    sx = sigma_x(masses, sig)
    med = float(np.median(sx))
    if n_masses:
        masses = masses[:n_masses]
    times, cpus, evals, lmls = [], [], [], []
    bad: list[str] = []
    n_conv = 0
    n_train = 0
    prev = None
    t_all = time.perf_counter()
    for i, m in enumerate(masses):
        lb = length_scale_bounds(sx[i], med, 0.5, card["hi"], card["floor"])
        t0 = time.perf_counter()
        c0 = time.process_time()
        wf = fit_window(
            edges,
            counts,
            float(m),
            float(sig[i]),
            ls_bounds=lb,
            n_restarts=n_restarts,
            seed=seed + i,
            start=prev,
            restart_policy=policy,
        )
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        prev = wf.hyper
        evals.append(wf.hyper.n_evals)
        lmls.append(wf.hyper.lml)
        n_train = max(n_train, int(wf.train.sum()))
        if wf.hyper.converged:
            n_conv += 1
        else:
            bad.append(f"{m:.3f}: {wf.hyper.reason}")
    total = time.perf_counter() - t_all
    t = np.array(times)
    c = np.array(cpus)
    print(
        f"{year}: {len(masses)} masses, {len(counts)} bins, <= {n_train} training bins, "
        f"policy={policy}, n_restarts={n_restarts}"
    )
    print(
        f"  total {total:.2f} s; per mass mean {t.mean():.3f} s, median {np.median(t):.3f} s, "
        f"max {t.max():.3f} s (first/cold {t[0]:.3f} s)"
    )
    print(
        f"  CPU time per mass (robust to other load): mean {c.mean():.3f} s, "
        f"median {np.median(c):.3f} s, max {c.max():.3f} s, total {c.sum():.2f} s"
    )
    print(
        f"  LML evals per mass: mean {np.mean(evals):.1f}, max {max(evals)}; "
        f"LML range [{min(lmls):.1f}, {max(lmls):.1f}]"
    )
    print(f"  converged: {n_conv}/{len(masses)}")
    for line in bad:
        print(f"    not converged at {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["2015", "2021"], choices=sorted(CARDS))
    ap.add_argument("--n-restarts", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", default="auto", choices=["auto", "always"])
    ap.add_argument("--masses", type=int, default=None, help="only the first N masses")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"data directory not found: {DATA}")
    with threadpool_limits(1):
        for year in args.datasets:
            scan(year, args.n_restarts, args.seed, args.policy, args.masses)


if __name__ == "__main__":
    main()
