"""Full-scan wall time through the real pipeline (`gprpipe run`, local executor, 2 workers).

Prints the wall time of the full 2015 scan (111 masses: GP fits, observed limits,
asymptotic bands, p0) and, with --years, of 2016 and 2021, and the per-mass cost.
Usage: python benchmarks/bench_scan.py [--years 2015,2021] [-j 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--years", default="2015")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", default="load,fit,limit")
    args = ap.parse_args()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for year in args.years.split(","):
        src = args.data / f"funcform_{year}_toys.root"
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "gprpipe",
                "run",
                str(REPO / f"user_configs/hps{year}.toml"),
                "-j",
                str(args.jobs),
                "--steps",
                args.steps,
                "--set",
                f"datasets.{year}.path={src}",
                "--set",
                f"datasets.{year}.hist=input_hist",
                "--set",
                f"base.output={tmp}/run",
            ]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if res.returncode:
                print(res.stdout, res.stderr)
                sys.exit(f"{year}: run failed")
            with open(f"{tmp}/run/nominal/scan.csv") as fh:
                rows = list(csv.DictReader(fh))
            conv = sum(r["gp_converged"] == "true" for r in rows)
            ok = sum(r["status"] == "ok" for r in rows)
            print(
                f"{year}: {len(rows)} masses in {wall:.1f} s wall on {args.jobs} workers "
                f"({wall / len(rows):.2f} s/mass); status ok {ok}/{len(rows)}, "
                f"gp_converged {conv}/{len(rows)}; steps {args.steps}"
            )


if __name__ == "__main__":
    main()
