"""Background-only pulls of the quickstart scan on toys of the demo spectrum.

The shipped demo spectrum (``gprpipe/data/demo_2015.root``) is one Poisson realisation
(seed ``gprpipe.demo.DEMO_SEED``) of ``gprpipe.demo.demo_expectation``. This study draws
``--toys`` more, with ``gprpipe.demo.demo_spectrum`` and seeds ``--seed0``, ``--seed0 + 1``,
... (none of them the shipped one nor the candidates 1-4 of ``pick_demo_seed.py``), writes
them with uproot into one ROOT file (``demo/demo_toy_<i>``, the layout ``toyscan.pattern``
matches), and runs ``python -m gprpipe run`` on a config that inherits
``user_configs/quickstart.toml`` unchanged (its five masses, fit and limit settings) and
adds the ``toyscan`` step on that file. From ``toyscan.h5`` it prints, per test mass: the
toys with a result, flagged rows, non-converged GP fits, the mean pull A_hat/sigma_A with
its standard error, the pull width (std) with its approximate error std/sqrt(2(n-1)),
the fraction with Z_local > 2 (background-only 0.0228) with its binomial error, the
spurious signal mean(A_hat)/mean(sigma_A) with its standard error; beside it the shipped
spectrum's own pull and Z_local (the run's ``scan.csv``, i.e. the quickstart's), the
wall and CPU time of the run and the command line.

    python benchmarks/study_demo_toys.py [--toys 200] [--seed0 1000] [-j 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import uproot
from _measure import timed

from gprpipe.demo import DEMO_SEED, demo_spectrum
from gprpipe.results.schema import read_toyscan
from gprpipe.steps.toyscan import TAILS
from gprpipe.units import MASS_TOL_GEV

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "user_configs" / "quickstart.toml"
PATTERN = "demo/demo_toy_*"


def write_toys(path: Path, n: int, seed0: int) -> None:
    """``n`` background-only Poisson toys of the demo shape (seeds seed0 .. seed0+n-1)."""
    seeds = range(seed0, seed0 + n)
    if DEMO_SEED in seeds or any(s in seeds for s in (1, 2, 3, 4)):
        raise SystemExit(f"--seed0 {seed0}: the seeds overlap the shipped one or seeds 1-4.")
    with uproot.recreate(path) as f:
        for i, s in enumerate(seeds):
            counts, edges = demo_spectrum(seed=s)
            f[f"demo/demo_toy_{i}"] = (counts, edges)


def write_config(path: Path, toys: Path, n: int, chunk: int, out: Path) -> None:
    """A config inheriting the quickstart, with the toyscan step on ``toys``."""
    path.write_text(
        f'[base]\ntemplate = "{QUICKSTART}"\nname = "demo_toys"\noutput = "{out}"\n\n'
        f'[toyscan]\nfile = "{toys}"\npattern = "{PATTERN}"\nmax_toys = {n}\n'
        f"chunk = {chunk}\n\n"
        '[steps]\nrun = ["load", "fit", "limit", "toyscan"]\n'
    )


def mass_row(t: dict[str, np.ndarray], m: float) -> dict[str, float]:
    """Pull statistics at mass ``m`` over the toys with a result (finite A_hat, sigma_A)."""
    sel = np.abs(t["mass_GeV"] - m) < MASS_TOL_GEV
    st = t["status"].astype(str)
    res = sel & np.isfinite(t["A_hat"]) & np.isfinite(t["sigma_A"]) & (t["sigma_A"] > 0)
    a, s, z = t["A_hat"][res], t["sigma_A"][res], t["Z_local"][res]
    n = int(res.sum())
    pull = a / s
    ok = res & (st == "ok")
    f2 = float(np.mean(z > 2))
    p2 = max(f2, TAILS[2.0])
    return {
        "n": n,
        "n_rows": int(sel.sum()),
        "flagged": int(np.sum(sel & (st != "ok"))),
        "not_conv": int(np.sum(sel & ~t["gp_converged"].astype(bool))),
        "pull": pull.mean(),
        "pull_err": pull.std(ddof=1) / np.sqrt(n),
        "width": pull.std(ddof=1),
        "width_err": pull.std(ddof=1) / np.sqrt(2 * (n - 1)),
        "pull_ok": float(np.mean(t["A_hat"][ok] / t["sigma_A"][ok])) if ok.any() else np.nan,
        "f2": f2,
        "f2_err": np.sqrt(p2 * (1 - p2) / n),
        "spur": a.mean() / s.mean(),
        "spur_err": a.std(ddof=1) / np.sqrt(n) / s.mean(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--toys", type=int, default=200)
    ap.add_argument("--seed0", type=int, default=1000, help="seed of the first toy")
    ap.add_argument("--chunk", type=int, default=10, help="toyscan.chunk (toys per task)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("study_demo_toys"))
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    toys, cfg, run_dir = out / "demo_toys.root", out / "demo_toys.toml", out / "run"
    write_toys(toys, args.toys, args.seed0)
    write_config(cfg, toys, args.toys, args.chunk, run_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["MKL_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "gprpipe", "run", str(cfg), "-j", str(args.jobs), "--force"]
    with timed() as tm:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        sys.exit(res.stdout + res.stderr)
    point = run_dir / "nominal"
    t, _, ov, _ = read_toyscan(point / "toyscan.h5")
    with open(point / "scan.csv") as fh:
        shipped = {round(float(r["mass_GeV"]), 6): r for r in csv.DictReader(fh)}

    print(
        f"Demo spectrum, {args.toys} background-only Poisson toys (seeds {args.seed0}-"
        f"{args.seed0 + args.toys - 1}; shipped spectrum: seed {DEMO_SEED}), quickstart "
        f"settings, {args.jobs} workers (machine shared with other jobs)"
    )
    print(
        "pull = A_hat/sigma_A over toys with a result; width = std of the pulls; "
        "spurious = mean(A_hat)/mean(sigma_A); errors statistical"
    )
    head = (
        f"{'MeV':>4} {'n':>4} {'flag':>4} {'!conv':>5} {'pull mean':>14} {'pull width':>13} "
        f"{'frac Z>2':>15} {'spurious':>14} | {'shipped pull':>12} {'Z_local':>7} status"
    )
    print(head)
    print("-" * len(head))
    for m in np.unique(t["mass_GeV"]):
        r = mass_row(t, float(m))
        sh = shipped.get(round(float(m), 6))
        sp = (
            f"{float(sh['A_hat']) / float(sh['sigma_A']):+12.2f} {float(sh['Z_local']):7.2f} "
            f"{sh['status']}"
            if sh
            else "(no scan.csv row)"
        )
        print(
            f"{1e3 * m:4g} {r['n']:4d} {r['flagged']:4d} {r['not_conv']:5d} "
            f"{r['pull']:+6.3f} +- {r['pull_err']:.3f} {r['width']:5.3f} +- {r['width_err']:.3f} "
            f"{r['f2']:.4f} +- {r['f2_err']:.4f} {r['spur']:+6.3f} +- {r['spur_err']:.3f} | {sp}"
        )
        if r["flagged"]:
            print(f"     pull mean over the unflagged rows only: {r['pull_ok']:+.3f}")
    print(f"background-only expectation: pull 0, width 1, frac Z>2 {TAILS[2.0]:.4f}")
    print(
        f"whole scan: {ov['n_ok']} unflagged rows of {ov['n_rows']}, Z_local > 2 in "
        f"{ov['frac_Z_gt2']:.4f} +- {ov['frac_Z_gt2_err']:.4f}, max unflagged Z_local "
        f"{ov['max_Z_local_ok']:.2f}"
    )
    print(f"wall {tm.wall:.1f} s, CPU {tm.cpu:.1f} s (gprpipe run incl. data scan, all processes)")
    print(f"toys: {toys}; config: {cfg}; results: {point}/toyscan.csv")
    print(
        f"reproduce: python benchmarks/study_demo_toys.py --toys {args.toys} "
        f"--seed0 {args.seed0} -j {args.jobs} --out {args.out}"
    )
    print(f"  (runs: {' '.join(cmd[1:])})")


if __name__ == "__main__":
    main()
