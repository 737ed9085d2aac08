"""Full real-data scans with the dense and the low-rank GP computation: every scan.csv column.

Runs `gprpipe run user_configs/hps<year>.toml` (steps load, fit, limit; 2 workers) twice per
year, once with the GP forced to the dense computation and once with the default ("auto",
low-rank with dense fallback), and prints per column the largest relative deviation (and
|dA_hat| / sigma_A), plus the wall and CPU time of each run. --reference DIR adds a third
comparison against DIR/<year>/nominal/scan.csv (e.g. a run of another code version).

Both runs take the same optimiser path (multi-start L-BFGS-B, then the Newton polish of
commit ed94956); only the computation of the LML, its gradient and the blind-window posterior
differs, and the mean map of the leakage template and GoF check (`latent_mean_map`), and
(since 797e4ad) the default run's restarts follow the low-rank LML also at large amplitudes. The
dense run sets `GPOptions.method = "dense"` and `latent_mean_map`'s method in every worker
through a `sitecustomize` module on PYTHONPATH (the config has no key for it).
Usage: python benchmarks/compare_gp_scans.py [--years 2015,2016] [-j 2] [--keep DIR]
       [--lowrank-run 'runs/hps{year}']
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _measure import timed

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"
# Every GPOptions built in a worker gets method="dense", and latent_mean_map (leakage
# template, GoF, toy scans) defaults to it: the fit step's options come from the config,
# which has no such key (benchmark-only switch).
FORCE_DENSE = (
    "import gprpipe.stats.gp as _gp\n"
    "_init = _gp.GPOptions.__init__\n"
    "def _dense_init(self, *args, **kw):\n"
    "    _init(self, *args, **kw)\n"
    "    object.__setattr__(self, 'method', 'dense')\n"
    "_gp.GPOptions.__init__ = _dense_init\n"
    "_gp.latent_mean_map.__kwdefaults__['method'] = 'dense'\n"
)


def run_scan(year: str, out: Path, jobs: int, dense: bool, tmp: Path) -> tuple[float, float]:
    """One `gprpipe run`; returns (wall s, CPU s of the run and its workers)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if dense:
        site = tmp / "force_dense"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(FORCE_DENSE)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    src = DATA / f"funcform_{year}_toys.root"
    cmd = [
        sys.executable,
        "-m",
        "gprpipe",
        "run",
        str(REPO / f"user_configs/hps{year}.toml"),
        "-j",
        str(jobs),
        "--steps",
        "load,fit,limit",
        "--set",
        f"datasets.{year}.path={src}",
        "--set",
        f"datasets.{year}.hist=input_hist",
        "--set",
        f"base.output={out}",
    ]
    with timed() as t:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        print(res.stdout, res.stderr)
        sys.exit(f"{year}: run failed")
    return t.wall, t.cpu


def read(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def compare(a: list[dict[str, str]], b: list[dict[str, str]], label: str) -> None:
    """Per column: largest relative deviation (and where); A_hat also in units of sigma_A."""
    if len(a) != len(b) or [r["mass_GeV"] for r in a] != [r["mass_GeV"] for r in b]:
        print(f"  {label}: different mass lists")
        return
    print(f"  {label}: worst deviation per column over {len(a)} masses")
    for col in a[0]:
        va, vb = [r[col] for r in a], [r[col] for r in b]
        try:
            x, y = np.array(va, dtype=float), np.array(vb, dtype=float)
        except ValueError:
            diff = sum(p != q for p, q in zip(va, vb))
            print(f"    {col:16s} {'identical' if not diff else f'{diff} differ'}")
            continue
        scale = np.maximum(np.abs(x), np.abs(y))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(x == y, 0.0, np.abs(x - y) / scale)
        both_nan = np.isnan(x) & np.isnan(y)
        rel = np.where(both_nan, 0.0, np.where(np.isnan(x) | np.isnan(y), np.inf, rel))
        i = int(np.nanargmax(rel))
        line = f"    {col:16s} {rel[i]:9.1e} at {a[i]['mass_GeV']} GeV ({va[i]} vs {vb[i]})"
        if col == "A_hat":
            sig = np.array([r["sigma_A"] for r in a], dtype=float)
            d = np.abs(x - y) / sig
            j = int(np.argmax(d))
            line += f"; max |dA_hat|/sigma_A {d[j]:.1e} at {a[j]['mass_GeV']} GeV"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", default="2015,2016")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="folder with <year>/nominal/scan.csv of another run to compare",
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument(
        "--lowrank-run",
        default=None,
        help="reuse a finished run of the current code for the low-rank side, e.g. "
        "'runs/hps{year}' (its nominal/scan.csv; same config and data)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        root = args.keep or tmp
        for year in args.years.split(","):
            runs = {}
            for name, dense in (("dense", True), ("lowrank", False)):
                if name == "lowrank" and args.lowrank_run:
                    out = Path(args.lowrank_run.format(year=year))
                    runs[name] = read(out / "nominal" / "scan.csv")
                    print(f"{year} {name:7s}: {len(runs[name])} masses from {out}")
                    continue
                out = root / f"{year}_{name}"
                wall, cpu = run_scan(year, out, args.jobs, dense, tmp)
                runs[name] = read(out / "nominal" / "scan.csv")
                load = os.getloadavg()[0]
                print(
                    f"{year} {name:7s}: {len(runs[name])} masses, {wall:.1f} s wall, "
                    f"{cpu:.1f} s CPU on {args.jobs} workers (load average {load:.1f})",
                    flush=True,
                )
            compare(runs["dense"], runs["lowrank"], f"{year} dense vs low-rank")
            if args.reference:
                ref = read(args.reference / year / "nominal" / "scan.csv")
                compare(ref, runs["lowrank"], f"{year} reference vs low-rank")
                compare(ref, runs["dense"], f"{year} reference vs dense")


if __name__ == "__main__":
    main()
