"""The test suite's time and where its CPU goes (issue target: the whole suite in 5 minutes on
2 cores).

Runs the README's test command (``python -m pytest -n 2`` by default) with this module as a
pytest plugin that records, for every test, the CPU time of the test process itself and of
the processes it waited for (``gprpipe run`` subprocesses with their fork servers and
workers; SLURM jobs and containers run outside the tree and are not counted), and its wall
time. Prints the suite's wall time, the CPU time of the whole process tree, the floor that
CPU time sets on the wall time (CPU / cores), then the CPU per test file and the tests that
take the most. A suite whose CPU floor exceeds the target cannot meet it by scheduling.

Usage: python benchmarks/bench_suite.py [--top 20] [--log tests.tsv] [--] [pytest arguments,
default -n 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOG_ENV = "GPRPIPE_BENCH_SUITE_LOG"


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Plugin side: one line per test (node id, own CPU, waited-for CPU, wall)."""
    own, kids, t0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), time.time()
    yield
    log = os.environ.get(LOG_ENV)
    if log:
        own = _cpu(resource.RUSAGE_SELF) - own
        kids = _cpu(resource.RUSAGE_CHILDREN) - kids
        with open(log, "a") as f:
            f.write(f"{item.nodeid}\t{own:.2f}\t{kids:.2f}\t{time.time() - t0:.2f}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=20, help="tests to list (most CPU first)")
    ap.add_argument(
        "--log",
        type=Path,
        help="keep the per-test table (node id, own CPU, "
        "waited-for CPU, wall; tab-separated) in this file",
    )
    ap.add_argument("pytest_args", nargs="*", default=["-n", "2"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "tests.tsv"
        env = {
            **os.environ,
            LOG_ENV: str(log),
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "benchmarks"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        cmd = [sys.executable, "-m", "pytest", "-p", "bench_suite", "-q", *args.pytest_args]
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        total = _cpu(resource.RUSAGE_CHILDREN)
        rows = [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []
        if args.log and log.exists():
            args.log.write_text(log.read_text())
    summary = [x for x in proc.stdout.splitlines() if " passed" in x or " failed" in x]
    print(summary[-1] if summary else proc.stdout[-2000:] + proc.stderr[-2000:])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    floor = total / (cores or 1)
    print(f"wall {wall:.0f} s; CPU {total:.0f} s on {cores} cores: floor {floor:.0f} s")
    own = sum(float(r[1]) for r in rows)
    kids = sum(float(r[2]) for r in rows)
    print(
        f"CPU of the {len(rows)} tests: {own:.0f} s in the test processes, {kids:.0f} s in the "
        f"processes they waited for; {total - own - kids:.0f} s start-up and collection"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other work inflates the wall time)")
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for node, o, k, w in rows:
        f = files[node.split("::")[0]]
        f[0], f[1], f[2], f[3] = f[0] + float(o), f[1] + float(k), f[2] + float(w), f[3] + 1
    print(f"\n{'CPU s':>7} {'own':>6} {'ran':>6} {'wall s':>7} {'tests':>5}  file")
    for name, (o, k, w, n) in sorted(files.items(), key=lambda x: -(x[1][0] + x[1][1])):
        print(f"{o + k:7.1f} {o:6.1f} {k:6.1f} {w:7.1f} {n:5d}  {name}")
    print(f"\n{'CPU s':>7} {'wall s':>7}  test (the {args.top} with the most CPU)")
    for node, o, k, w in sorted(rows, key=lambda r: -(float(r[1]) + float(r[2])))[: args.top]:
        print(f"{float(o) + float(k):7.1f} {float(w):7.1f}  {node}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
