"""Local runs through ``gprpipe run``: before (one fresh process per task) and after (warm
workers forked by the prestarted fork server), in the same session, against the targets.

Modes (``--modes``): ``fresh`` = ``GPRPIPE_FRESH_PROCESSES=1``, one ``python -m gprpipe
step`` process per task (the path before warm workers: the "before" figure); ``spawn`` =
warm workers each started as its own ``python`` process (``GPRPIPE_FORK_SERVER=0``);
``warm`` = the default: warm workers forked by the fork server that ``gprpipe run``
starts before it reads the config (the "after" figure); ``again`` = the run called in a
Python process (``gprpipe.cli.main``) right after the same run into another folder, as a
notebook or the test suite runs several: its workers come from the fork server the first
run kept (wall time only: the workers' CPU is reaped by that server, not by the run).
Cases (local engine and executor, ``-j`` workers):

- ``quickstart``: ``user_configs/quickstart.toml`` with its plots (the plot step's own
  time is printed separately; target 6 s),
- ``one-mass``: one 2015 mass (``scan.masses = [0.06]``, steps load, fit, limit; 2.5 s),
- ``full-2015``: the full 2015 scan (``user_configs/hps2015.toml``, 111 masses, asymptotic
  bands, p0; steps load, fit, limit; 6 s),
- ``full-2021``: the full 2021 scan (221 masses, ~1600 training bins; 60 s), repeated
  ``--repeat-2021`` times (default 1: minutes per run on a loaded machine).

Per case and mode it prints the wall time, the CPU time of the run and of everything it
waited for (user + system of this script's children, which include the workers and the
fork server), and the 1-minute load average when the run started (other work on the
machine inflates wall time, not CPU time). Each figure is the median of ``--repeat``
runs (min and max in brackets). The last column says whether the ``warm`` median meets
the target. ``--check-ref DIR`` compares the full scans' ``scan.csv`` byte for byte
with ``DIR/<case>/nominal/scan.csv`` where that file exists (e.g. ``DIR/full-2015``).
``--baseline TREE`` adds the mode ``base``: the ``warm`` mode run from another checkout
(e.g. ``git worktree add /tmp/base <commit>``; its code, configs and working folder), so
that a change is measured against its parent in the same session. The modes alternate
within each repetition, so a machine that slows down or speeds up meanwhile (shared
hosts do) affects every mode alike; the ratio base / warm of the medians is printed per case.

Usage: python benchmarks/bench_run.py [-j 2] [--repeat 3] [--repeat-2021 1]
           [--only quickstart,one-mass,full-2015,full-2021] [--modes fresh,warm]
           [--data-dir DIR] [--check-ref DIR] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import timed

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"
MODES = {
    "fresh": {"GPRPIPE_FRESH_PROCESSES": "1"},
    "spawn": {"GPRPIPE_FRESH_PROCESSES": "0", "GPRPIPE_FORK_SERVER": "0"},
    "warm": {"GPRPIPE_FRESH_PROCESSES": "0", "GPRPIPE_FORK_SERVER": "1"},
}
MODES["again"] = MODES["warm"]
#: mode ``again``: the run twice in one process, the second timed (argv: output, first
#: output, the command line's arguments)
AGAIN = """
import sys, time
from gprpipe.cli import main
def run(out):
    try:
        main([*sys.argv[3:], "--set", "base.output=" + out])
    except SystemExit as exc:
        if exc.code:
            raise
run(sys.argv[2])
t0 = time.perf_counter()
run(sys.argv[1])
print(time.perf_counter() - t0, file=sys.stderr)
"""
#: issue 12's wall-time targets on 2 workers (seconds)
TARGETS = {"quickstart": 6.0, "one-mass": 2.5, "full-2015": 6.0, "full-2021": 60.0}


def run_once(
    config: str,
    sets: list[str],
    steps: str | None,
    jobs: int,
    mode: str,
    out: Path,
    tree: Path = REPO,
) -> dict[str, float]:
    """One ``gprpipe run`` of the checkout ``tree``; wall, CPU, load average at the start,
    plot step seconds."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(tree),
        **MODES["warm" if mode == "base" else mode],
    }
    args = ["run", str(tree / config), "-j", str(jobs)]
    for s in sets:
        args += ["--set", s]
    if steps:
        args += ["--steps", steps]
    if mode == "again":
        cmd = [sys.executable, "-c", AGAIN, str(out), str(out.with_name(out.name + "-first"))]
        cmd += args
    else:
        cmd = [sys.executable, "-m", "gprpipe", *args, "--set", f"base.output={out}"]
    load = os.getloadavg()[0]
    with timed() as t:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    wall, cpu = t.wall, t.cpu
    if res.returncode:
        sys.exit(f"{config} ({mode}) failed:\n{res.stdout}\n{res.stderr}")
    if mode == "again":  # the second run's own wall time; its CPU is not separable
        wall, cpu = float(res.stderr.strip().splitlines()[-1]), float("nan")
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
    ap.add_argument("--repeat-2021", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=DATA, help="funcform_<year>_toys.root")
    ap.add_argument("--check-ref", type=Path, default=None, help="DIR/<case>/nominal/scan.csv")
    ap.add_argument("--only", default="quickstart,one-mass,full-2015,full-2021")
    ap.add_argument("--modes", default="fresh,warm", help=f"of {','.join(MODES)}")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout: mode base")
    args = ap.parse_args()

    def data(year: str) -> str:
        return f"datasets.{year}.path={args.data_dir / f'funcform_{year}_toys.root'}"

    cases = {
        "quickstart": ("user_configs/quickstart.toml", [], None),
        "one-mass": (
            "user_configs/hps2015.toml",
            [data("2015"), "scan.masses=[0.06]"],
            "load,fit,limit",
        ),
        "full-2015": ("user_configs/hps2015.toml", [data("2015")], "load,fit,limit"),
        "full-2021": ("user_configs/hps2021.toml", [data("2021")], "load,fit,limit"),
    }
    wanted = [c for c in args.only.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    if args.baseline is not None:
        modes.insert(0, "base")
    print(
        f"# {args.jobs} workers, median of {args.repeat} runs [min-max] (full-2021: "
        f"{args.repeat_2021}); CPU = user+sys of the run and its task processes; load = "
        f"1-min load average at the start ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'case':11s} {'mode':6s} {'wall s':>20s} {'CPU s':>20s} {'load':>16s} "
        f"{'plot step s':>20s}  target"
    )
    with tempfile.TemporaryDirectory(prefix="bench_run-") as tmp:
        for case in wanted:
            config, sets, steps = cases[case]
            repeat = args.repeat_2021 if case == "full-2021" else args.repeat
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
            for k in range(repeat):  # every run writes a new folder: nothing is cached
                for mode in modes:  # alternating: drifts of the machine hit every mode
                    out = Path(tmp) / f"{case}-{mode}-{k}"
                    tree = args.baseline if mode == "base" else REPO
                    runs[mode].append(run_once(config, sets, steps, args.jobs, mode, out, tree))
            for mode in modes:
                rows = runs[mode]
                walls = [r["wall"] for r in rows]
                plot = fmt([r["plot"] for r in rows]) if case == "quickstart" else ""
                line = (
                    f"{case:11s} {mode:6s} {fmt(walls):>20s} "
                    f"{fmt([r['cpu'] for r in rows]):>20s} "
                    f"{fmt([r['load'] for r in rows]):>16s} {plot:>20s}"
                )
                verdict = "met" if statistics.median(walls) <= TARGETS[case] else "NOT met"
                line += f"  <= {TARGETS[case]:g} s: {verdict}"
                print(line, flush=True)
                ref = (args.check_ref or Path("-")) / case / "nominal" / "scan.csv"
                if case.startswith("full-") and ref.is_file():
                    for k in range(repeat):
                        mine = Path(tmp) / f"{case}-{mode}-{k}" / "nominal" / "scan.csv"
                        same = filecmp.cmp(ref, mine, shallow=False)
                        verdict = "byte-identical to" if same else "DIFFERS from"
                        print(f"  {mode} run {k}: scan.csv {verdict} {ref}", flush=True)
            if "base" in modes and "warm" in modes:
                ratio = {
                    q: statistics.median(r[q] for r in runs["base"])
                    / statistics.median(r[q] for r in runs["warm"])
                    for q in ("wall", "cpu")
                }
                print(
                    f"  base / warm (medians of this run): wall {ratio['wall']:.2f}x, "
                    f"CPU {ratio['cpu']:.2f}x",
                    flush=True,
                )
                if case.startswith("full-"):
                    a, b = (
                        Path(tmp) / f"{case}-{m}-0" / "nominal" / "scan.csv"
                        for m in ("base", "warm")
                    )
                    same = filecmp.cmp(a, b, shallow=False)
                    print(f"  scan.csv of base and warm: {'byte-identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
