"""Local runs with warm workers against one fresh process per task, in the same session.

For each mode (``fresh``: ``GPRPIPE_FRESH_PROCESSES=1``, one ``python -m gprpipe step``
process per task, the path before warm workers; ``warm``: the default) it runs through
``gprpipe run`` (local engine and executor, ``-j`` workers):

- the quickstart (``user_configs/quickstart.toml``, with its plots; the plot step's own
  time is printed separately),
- a one-mass 2015 run (``scan.masses = [0.06]``, steps load, fit, limit),
- the full 2015 scan (``user_configs/hps2015.toml``, 111 masses, steps load, fit, limit),

and prints per run the wall time, the CPU time of the run and everything it waited for
(user + system of the children of this script), and the load average of the machine when
the run started (other work on the machine inflates wall time, not CPU time). Each figure
is the median of ``--repeat`` runs (min and max in brackets). ``--check-ref`` also compares
the full 2015 ``scan.csv`` of each mode byte for byte with a reference run.

Usage: python benchmarks/bench_run.py [-j 2] [--repeat 3] [--data FILE] [--check-ref DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps" / "funcform_2015_toys.root"
MODES = {"fresh": {"GPRPIPE_FRESH_PROCESSES": "1"}, "warm": {"GPRPIPE_FRESH_PROCESSES": "0"}}


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(
    config: str, sets: list[str], steps: str | None, jobs: int, mode: str, out: Path
) -> dict[str, float]:
    """One ``gprpipe run``; wall, CPU, load average at the start, plot step seconds."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **MODES[mode],
    }
    cmd = [
        sys.executable,
        "-m",
        "gprpipe",
        "run",
        str(REPO / config),
        "-j",
        str(jobs),
        "--set",
        f"base.output={out}",
    ]
    for s in sets:
        cmd += ["--set", s]
    if steps:
        cmd += ["--steps", steps]
    load = os.getloadavg()[0]
    cpu0, t0 = children_cpu(), time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if res.returncode:
        sys.exit(f"{config} ({mode}) failed:\n{res.stdout}\n{res.stderr}")
    timings = json.loads((out / "run.json").read_text()).get("timings", {})
    plot = sum(v["seconds"] for k, v in timings.items() if k.split("/")[1] == "plot")
    return {"wall": wall, "cpu": cpu, "load": load, "plot": plot}


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:6.2f}"
    return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DATA, help="The 2015 ROOT file.")
    ap.add_argument(
        "--check-ref",
        type=Path,
        default=None,
        help="Reference run folder of the full 2015 scan (its nominal/scan.csv).",
    )
    ap.add_argument("--only", default="quickstart,one-mass,full-2015")
    args = ap.parse_args()
    data = f"datasets.2015.path={args.data}"
    cases = {
        "quickstart": ("user_configs/quickstart.toml", [], None),
        "one-mass": ("user_configs/hps2015.toml", [data, "scan.masses=[0.06]"], "load,fit,limit"),
        "full-2015": ("user_configs/hps2015.toml", [data], "load,fit,limit"),
    }
    wanted = [c for c in args.only.split(",") if c]
    print(
        f"# {args.jobs} workers, median of {args.repeat} runs [min-max]; CPU = user+sys "
        f"of the run and its task processes; load = 1-min load average at the start "
        f"({os.cpu_count()} CPUs)"
    )
    print(
        f"{'case':12s} {'mode':6s} {'wall s':>20s} {'CPU s':>20s} {'load':>14s} "
        f"{'plot step s':>20s}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_run-") as tmp:
        for case in wanted:
            config, sets, steps = cases[case]
            for mode in MODES:  # every run writes a new folder: nothing is cached
                rows = []
                for k in range(args.repeat):
                    out = Path(tmp) / f"{case}-{mode}-{k}"
                    rows.append(run_once(config, sets, steps, args.jobs, mode, out))
                line = (
                    f"{case:12s} {mode:6s} {fmt([r['wall'] for r in rows]):>20s} "
                    f"{fmt([r['cpu'] for r in rows]):>20s} "
                    f"{fmt([r['load'] for r in rows]):>14s}"
                )
                if case == "quickstart":
                    line += f" {fmt([r['plot'] for r in rows]):>20s}"
                print(line, flush=True)
                if case == "full-2015" and args.check_ref is not None:
                    ref = args.check_ref / "nominal" / "scan.csv"
                    for k in range(args.repeat):
                        mine = Path(tmp) / f"{case}-{mode}-{k}" / "nominal" / "scan.csv"
                        same = filecmp.cmp(ref, mine, shallow=False)
                        verdict = "byte-identical to" if same else "DIFFERS from"
                        print(f"  {mode} run {k}: scan.csv {verdict} {ref}")


if __name__ == "__main__":
    main()
