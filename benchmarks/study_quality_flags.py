"""Background-only study of the background-model quality flags (gof_p, two sidebands).

Scans background-only functional-form toy histograms (100 per family in the HPS files;
shapes that are not GP-generated) with the pipeline's fit numerics at a subset of the scan
masses, in two training setups:

* ``fitrange``: the GP is trained only inside the range the generating function was fitted
  to (``fit_min_GeV``..``fit_max_GeV`` of ``fit_metadata/<tag>_metadata``): the background
  is smooth there, so every flag is a false flag. The false-flag rate per mass at several
  ``gof_p`` thresholds (with binomial errors) is what ``fit.gof_p_min`` is chosen from;
* ``full``: trained on the whole histogram, beyond the function's fit range, where the
  toy's shape has a feature the stationary kernel cannot follow: Z_local there must be
  flagged (the count of unflagged Z_local > 3 and > 5 is printed).

Usage: python benchmarks/study_quality_flags.py [--year 2015] [--toys 100] [--every 5]
           [--setup fitrange|full] [--lo MASS --hi MASS] [-j 2]
Prints the tables; CPU seconds are printed too (wall time depends on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"
THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)


def families(year: str) -> dict[str, tuple[float, float]]:
    """Family tag -> (fit_min_GeV, fit_max_GeV), read from the file's fit_metadata."""
    from gprpipe.io.root import read_text

    path = DATA / f"funcform_{year}_toys.root"
    summary = json.loads(read_text(path, "fit_metadata/fit_summary_json"))
    return {f["tag"]: (float(f["fit_min_GeV"]), float(f["fit_max_GeV"])) for f in summary["fits"]}


def _config(year: str, data_range):
    from gprpipe.config import load_points

    sets = [f"datasets.{year}.path={DATA / f'funcform_{year}_toys.root'}"]
    if data_range is not None:
        sets.append(f"datasets.{year}.data_range=[{data_range[0]}, {data_range[1]}]")
    _, points = load_points(REPO / f"user_configs/hps{year}.toml", sets)
    return points[0].config


def scan_toy(args) -> dict[str, np.ndarray]:
    year, family, toy, data_range, masses = args
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import template_key
    from gprpipe.steps.limit import window_limits
    from gprpipe.steps.runner import seed_for

    t0 = time.process_time()
    cfg = _config(year, data_range)
    ds = cfg.datasets[year]
    counts, edges = rebin(*read_hist(ds.path, f"{family}/{family}_toy_{toy}"), ds.rebin)
    from gprpipe.steps.fit import fit_masses

    out: dict[str, list] = {
        k: [] for k in ("mass", "gof_p", "gof_chi2_ndf", "z", "status", "n_lo", "n_hi")
    }
    for f in fit_masses(cfg, year, counts, edges, np.asarray(masses)):
        if f.blind is None or f.gof is None:
            continue
        rng = np.random.default_rng(seed_for(cfg.base.seed, "limit", year, f.mass))
        b = f.blind
        row = window_limits(cfg, b["n"], b["b"], b["C"], b[template_key(cfg)], rng)
        for k, v in (
            ("mass", f.mass),
            ("gof_p", f.gof.p),
            ("gof_chi2_ndf", f.gof.chi2_ndf),
            ("z", row["Z_local"]),
            ("status", f.status),
            ("n_lo", f.gof.n_lo),
            ("n_hi", f.gof.n_hi),
        ):
            out[k].append(v)
    res = {k: np.array(v) for k, v in out.items()}
    res["cpu"] = np.array(time.process_time() - t0)
    return res


def binom(k: int, n: int) -> str:
    p = k / n if n else float("nan")
    e = np.sqrt(max(p * (1 - p), 1.0 / n) / n) if n else float("nan")
    return f"{p:.4f} +- {e:.4f} ({k}/{n})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--year", default="2015")
    ap.add_argument("--toys", type=int, default=100, help="toys per functional family")
    ap.add_argument("--every", type=int, default=5, help="use every N-th scan mass")
    ap.add_argument("--setup", choices=("fitrange", "full"), default="fitrange")
    ap.add_argument("--lo", type=float, default=None, help="lowest mass (GeV)")
    ap.add_argument("--hi", type=float, default=None, help="highest mass (GeV)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()

    fams = families(args.year)
    cfg = _config(args.year, None)
    masses = cfg.test_masses(args.year)
    if args.lo is not None:
        masses = masses[masses >= args.lo - 1e-9]
    if args.hi is not None:
        masses = masses[masses <= args.hi + 1e-9]
    masses = masses[:: args.every]
    work = []
    for fam, rng in fams.items():
        dr = rng if args.setup == "fitrange" else None
        ms = masses if dr is None else masses[(masses >= dr[0]) & (masses <= dr[1])]
        work += [(args.year, fam, t, dr, ms) for t in range(args.toys)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(scan_toy, work))
    wall = time.perf_counter() - t0
    cpu = sum(float(r["cpu"]) for r in results)
    cfg_fit = cfg.fit
    print(
        f"{args.year} setup={args.setup}: {len(work)} toy scans ({args.toys} per family: "
        f"{', '.join(f'{k} {v[0]:g}-{v[1]:g} GeV' for k, v in fams.items())}), "
        f"{len(masses)} masses (every {args.every}), gof region {cfg_fit.gof_nsigma:g} "
        f"sigma_m beyond the window, >= {cfg_fit.min_sideband_bins} training bins per side; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU on {args.jobs} workers"
    )
    for fam in fams:
        rs = [r for (_, f, *_), r in zip(work, results) if f == fam]
        p = np.concatenate([r["gof_p"] for r in rs])
        z = np.concatenate([r["z"] for r in rs])
        one = np.concatenate(
            [np.minimum(r["n_lo"], r["n_hi"]) < cfg_fit.min_sideband_bins for r in rs]
        )
        n = int(np.isfinite(p).sum())
        print(
            f"\n{fam} ({len(rs)} toys, {n} fitted masses); gof_p quantiles "
            f"1%/10%/50%: {np.nanquantile(p, [0.01, 0.1, 0.5]).round(4).tolist()}; "
            f"one-sideband {binom(int(one.sum()), len(one))}"
        )
        for thr in THRESHOLDS:
            flag = (p < thr) | one
            print(
                f"  gof_p < {thr:g}: flagged {binom(int((p < thr).sum()), n)}; "
                f"Z_local>3 unflagged {int(((z > 3) & ~flag).sum())}, flagged "
                f"{int(((z > 3) & flag).sum())}; Z_local>5 unflagged "
                f"{int(((z > 5) & ~flag).sum())}, flagged {int(((z > 5) & flag).sum())}; "
                f"max unflagged Z {np.max(np.where(flag, 0, z)):.2f}"
            )
        ms = np.concatenate([r["mass"] for r in rs])
        worst = sorted(set(np.round(ms[(p < 1e-3)] * 1e3).astype(int).tolist()))
        print(f"  masses (MeV) with gof_p < 1e-3 in any toy: {worst[:40]}")
    allp = np.concatenate([r["gof_p"] for r in results])
    n = int(np.isfinite(allp).sum())
    print(
        "\nall families: "
        + "; ".join(
            f"P(gof_p < {thr:g}) = {binom(int((allp < thr).sum()), n)}" for thr in THRESHOLDS
        )
    )


if __name__ == "__main__":
    main()
