"""Toy look-elsewhere correction on real 2015 data through `gprpipe run` (local, 2 workers).

First runs load, fit and limit without toys (not timed), then the same point with
``limit.global_toys = N`` (default 10,000; 4 tasks of 2,500 toys): prints the wall time of
that second run, its CPU time (all child processes), the CPU and wall time of the toy
tasks alone (from their part files), the cost per toy per mass, and the result beside
Sidak's: the observed maximum Z_local, its global p and Z from the toys and from Sidak.
The CPU figures are what a quiet 2-core machine would need (wall / 2 at best).
Usage: python benchmarks/bench_global_toys.py [--toys 10000] [--refit 0] [-j 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from _measure import timed

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--toys", type=int, default=10000)
    ap.add_argument("--refit", type=int, default=0, help="limit.global_toys_refit")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--keep", type=Path, default=None, help="run directory to keep")
    args = ap.parse_args()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    src = args.data / "funcform_2015_toys.root"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "run"
        base = [
            sys.executable,
            "-m",
            "gprpipe",
            "run",
            str(REPO / "user_configs/hps2015.toml"),
            "-j",
            str(args.jobs),
            "--steps",
            "load,fit,limit",
            "--set",
            f"datasets.2015.path={src}",
            "--set",
            "datasets.2015.hist=input_hist",
            "--set",
            f"base.output={out}",
        ]
        res = subprocess.run(base, capture_output=True, text=True, env=env)
        if res.returncode:
            sys.exit(res.stdout + res.stderr)
        cmd = [
            *base,
            "--set",
            f"limit.global_toys={args.toys}",
            "--set",
            f"limit.global_toys_refit={args.refit}",
        ]
        with timed() as t:
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall, cpu = t.wall, t.cpu
        if res.returncode:
            sys.exit(res.stdout + res.stderr)
        point = Path(out) / "nominal"
        with h5py.File(point / "limit.h5", "r") as f:
            g = f["2015"]["global_toys"]
            n_masses = int(g.attrs["n_masses_used"])
            n_eff = float(g.attrs["n_eff"])
            toy_wall = float(np.sum(g["toy_seconds"][()]))
            toy_cpu = float(np.sum(g["toy_cpu_seconds"][()]))
            max_z = g["max_Z_local"][()]
            refit = {
                k: g[k][()] for k in ("max_Z_local_refit", "max_Z_local_fixed_same_toys") if k in g
            }
            not_conv = int(g.attrs["fit_not_converged"])
        with open(point / "scan.csv") as fh:
            rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
        best = max(rows, key=lambda r: float(r["Z_local"]))
        n = len(max_z)
        print(
            f"2015 real data, {n} whole-scan toys x {n_masses} masses, {args.jobs} workers "
            f"(machine shared with other jobs)"
        )
        print(
            f"  run with toys: {wall:.1f} s wall, {cpu:.1f} s CPU (all processes, incl. the "
            f"limit chunks that rerun because the limit section changed)"
        )
        print(
            f"  toy tasks alone: {toy_cpu:.1f} s CPU, {toy_wall:.1f} s wall summed over "
            f"tasks; {1e6 * toy_cpu / (n * n_masses):.2f} us CPU per toy per mass"
        )
        print(f"  profile fits not converged: {not_conv} of {n * n_masses}")
        print(
            f"  observed max Z_local = {float(best['Z_local']):.3f} at "
            f"{1e3 * float(best['mass_GeV']):g} MeV"
        )
        p = float(best["p0_global_toys"])
        k = round(p * (n + 1)) - 1
        err = np.sqrt(max(k, 1)) / (n + 1)
        print(
            f"  toys:  p0_global = {p:.4f} +- {err:.4f}, Z_global = "
            f"{float(best['Z_global_toys']):.3f}"
        )
        print(
            f"  Sidak: p0_global = {float(best['p0_global']):.4f}, Z_global = "
            f"{float(best['Z_global']):.3f} (N_eff = {n_eff:.1f})"
        )
        for z in (2.0, 3.0, 4.0):
            from scipy.special import ndtr

            sid = -np.expm1(n_eff * np.log1p(-ndtr(-z)))
            f = float(np.mean(max_z >= z))
            print(
                f"  P(max Z >= {z:g}): toys {f:.4f} +- {np.sqrt(f * (1 - f) / n):.4f}, "
                f"Sidak {sid:.4f}, local {ndtr(-z):.5f}"
            )
        if refit:
            a, b = refit["max_Z_local_refit"], refit["max_Z_local_fixed_same_toys"]
            d = a - b
            print(
                f"  GP refit on {len(a)} toys: max Z refit - fixed map: mean {d.mean():+.3f} "
                f"+- {d.std(ddof=1) / np.sqrt(len(d)):.3f}, sd {d.std(ddof=1):.3f}; "
                f"mean max Z refit {a.mean():.3f}, fixed {b.mean():.3f}"
            )


if __name__ == "__main__":
    main()
