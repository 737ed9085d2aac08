"""Pick the shipped demo spectrum's seed by a fixed rule, and print what every seed gives.

Rule: evaluate seeds 1-4: the quickstart scan (user_configs/quickstart.toml: 30, 45, 60,
80, 100 MeV, the newcomer's first Brazil plot) and the full 2015-card scan (111 masses at
1 MeV) of each. The shipped seed is the smallest whose quickstart masses all have
|A_hat / sigma_A| < 2 (observed limit inside the expected 2-sigma band) and whose full
scan's largest |A_hat / sigma_A| is no larger than the median of that quantity over the
four seeds: a typical background-only realisation, neither the quietest nor a fluctuation.
Every seed is printed (quickstart pulls; full scan: largest excess and deficit, pull
standard deviation, masses outside the 1-sigma band), so the choice can be checked.
Usage: python benchmarks/pick_demo_seed.py [--seeds 1,2,3,4]   (about 4 min CPU)
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = 2.0
GP = [sys.executable, "-m", "gprpipe"]


def scan(config: str, key: str, root: Path, out: Path) -> list[dict[str, str]]:
    """Run load, fit and limit of ``config`` on ``root``; rows of scan.csv."""
    subprocess.run(
        [
            *GP,
            "run",
            str(REPO / "user_configs" / config),
            "-j",
            "1",
            "--steps",
            "load,fit,limit",
            "--set",
            f"datasets.{key}.path={root}",
            "--set",
            f"base.output={out}",
        ],
        check=True,
        capture_output=True,
    )
    with open(out / "nominal" / "scan.csv") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "ok"]


def pulls(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([float(r["A_hat"]) / float(r["sigma_A"]) for r in rows])


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3,4", help="Seeds to evaluate (comma-separated).")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    quiet: dict[int, bool] = {}
    largest: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            c0 = cpu()
            root = Path(tmp) / f"demo_{seed}.root"
            subprocess.run(
                [*GP, "demo-data", str(root), "--seed", str(seed)], check=True, capture_output=True
            )
            q = pulls(scan("quickstart.toml", "demo", root, Path(tmp) / f"q{seed}"))
            quiet[seed] = bool(np.all(np.abs(q) < THRESHOLD))
            rows = scan("hps2015.toml", "2015", root, Path(tmp) / f"f{seed}")
            z = pulls(rows)
            largest[seed] = float(np.abs(z).max())
            out1 = sum(
                not float(r["A_exp_lo1"]) <= float(r["A_up"]) <= float(r["A_exp_hi1"]) for r in rows
            )
            print(
                f"seed {seed:3d}  quickstart pulls "
                + " ".join(f"{x:+.2f}" for x in q)
                + f"  all |pull| < 2: {'yes' if quiet[seed] else 'no '}"
                f"  full scan: max {z.max():+.2f} min {z.min():+.2f} std {z.std(ddof=1):.2f}"
                f" outside 1 sigma {out1}/{len(z)}  cpu {cpu() - c0:.0f} s",
                flush=True,
            )
    median = float(np.median(list(largest.values())))
    chosen = next((s for s in seeds if quiet[s] and largest[s] <= median), None)
    print(f"median over seeds of the largest |pull| of the full scan: {median:.2f}")
    print(f"chosen seed: {chosen}")


if __name__ == "__main__":
    main()
