"""Background-only closure on independent pseudo-data: the scan on the functional-form toys.

The HPS files hold, for three functional fits to the real spectrum, 100 Poisson toy
histograms each (a background shape that is NOT a GP). Running the full scan on them
must show no systematic false bumps: Z_local over masses and toys distributed as a
background-only hypothesis predicts (P(Z>0) = 0.5, P(Z>1) = 0.159, P(Z>2) = 0.023,
P(Z>3) = 0.0013), and pulls A_hat/sigma_A with mean ~0 and width ~1.
Usage: python benchmarks/study_background_toys.py [--year 2015] [--toys 20] [-j 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"
FAMILIES = ("fShiftSigPowTail", "fShiftSigPow", "fGenGammaShift")


def _config(year: str):
    from gprpipe.config import load_points

    path = DATA / f"funcform_{year}_toys.root"
    _, points = load_points(REPO / f"user_configs/hps{year}.toml", [f"datasets.{year}.path={path}"])
    return points[0].config


def scan_toy(args: tuple[str, str, int], stride: int = 1) -> dict[str, np.ndarray]:
    """Scan one toy at every ``stride``-th test mass: Z_local, pulls, GP convergence."""
    year, family, toy = args
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import fit_masses, template_key
    from gprpipe.steps.limit import window_limits
    from gprpipe.steps.runner import seed_for

    cfg = _config(year)
    ds = cfg.datasets[year]
    counts, edges = read_hist(ds.path, f"{family}/{family}_toy_{toy}")
    counts, edges = rebin(counts, edges, ds.rebin)
    masses = cfg.test_masses(year)[::stride]
    size = cfg.scan.chunk_size
    z, pull, conv = [], [], []
    for k in range(0, len(masses), size):  # the same chunking (warm starts) as the pipeline
        for f in fit_masses(cfg, year, counts, edges, masses[k : k + size]):
            if f.blind is None:
                continue
            rng = np.random.default_rng(seed_for(cfg.base.seed, "limit", year, f.mass))
            b = f.blind
            row = window_limits(cfg, b["n"], b["b"], b["C"], b[template_key(cfg)], rng)
            z.append(row["Z_local"])
            pull.append(row["A_hat"] / row["sigma_A"])
            conv.append(f.hyper.converged)
    return {"z": np.array(z), "pull": np.array(pull), "conv": np.array(conv)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--year", default="2015")
    ap.add_argument("--toys", type=int, default=10, help="toys per functional family")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    work = [(args.year, fam, t) for fam in FAMILIES for t in range(args.toys)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(scan_toy, work))
    wall = time.perf_counter() - t0
    z = np.concatenate([r["z"] for r in results])
    pull = np.concatenate([r["pull"] for r in results])
    conv = np.concatenate([r["conv"] for r in results])
    print(
        f"{args.year}: {len(work)} toy scans ({args.toys} per family), {len(z)} masses, "
        f"{wall:.0f} s wall on {args.jobs} workers; gp_converged {conv.mean():.4f}"
    )
    print(
        f"pull A_hat/sigma_A: mean {pull.mean():+.3f}, std {pull.std():.3f}, "
        f"median {np.median(pull):+.3f}"
    )
    for cut, expect in ((0, 0.5), (1, 0.1587), (2, 0.02275), (3, 0.00135)):
        print(f"P(Z_local > {cut}) = {(z > cut).mean():.4f}  (background-only: {expect})")
    for fam_i, fam in enumerate(FAMILIES):
        rs = results[fam_i * args.toys : (fam_i + 1) * args.toys]
        p = np.concatenate([r["pull"] for r in rs])
        print(
            f"  {fam:18s} pull mean {p.mean():+.3f} std {p.std():.3f}, "
            f"max Z_local {max(r['z'].max() for r in rs):.2f}"
        )


if __name__ == "__main__":
    main()
