"""The test suite's time and where its CPU goes (issue target: the whole suite in 5 minutes on
2 cores).

Runs the README's test command (``python -m pytest -n 3`` by default) with this module as a
pytest plugin that records, for every test, the CPU time of the test process itself and of
the processes it waited for (``gprpipe run`` subprocesses with their fork servers and
workers), and its wall time. The workers of runs made in a test process are children of the
fork server that process keeps between runs: their CPU is in the totals, but counted against
the test during which that server ended. SLURM jobs and containers run outside the tree:
the whole machine's busy time (``/proc/stat``) counts them. With ``-n 0`` (one test at a
time) it also prints the machine's busy CPU during each test: the cost of each test with
its runs, SLURM jobs and containers (and any other work on the machine). Prints the suite's
wall time, the CPU time of the process tree and of the machine, the floors they set on the wall time
(CPU / cores), how long each pytest-xdist worker stood idle at the end (an unbalanced
schedule), the failed tests, then the CPU per test file and the tests that take the most. A
suite whose CPU floor exceeds the target cannot meet it by scheduling.

Usage: python benchmarks/bench_suite.py [--top 20] [--log tests.tsv] [--] [pytest arguments,
default -n 3]
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

import numpy as np
import pytest
from _measure import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
LOG_ENV = "GPRPIPE_BENCH_SUITE_LOG"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Plugin side: one line per test (node id, own CPU, waited-for CPU, wall, the
    pytest-xdist worker, start time, the machine's busy CPU meanwhile)."""
    own, kids, t0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(), time.time()
    host = host_cpu_seconds()
    yield
    log = os.environ.get(LOG_ENV)
    if log:
        own = cpu_seconds(resource.RUSAGE_SELF) - own
        kids = cpu_seconds() - kids
        end = host_cpu_seconds()
        busy = end[0] - host[0] if end and host else float("nan")
        with open(log, "a") as f:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            wall = time.time() - t0
            f.write(
                f"{item.nodeid}\t{own:.2f}\t{kids:.2f}\t{wall:.2f}\t{worker}\t{t0:.2f}"
                f"\t{busy:.2f}\n"
            )


def host_cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds this machine has spent busy since boot, all processes (``/proc/stat``:
    also the SLURM jobs and containers that the process tree does not include), and the
    seconds a hypervisor took its CPUs away (steal). None where there is no ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields] + [0] * 8
    user, nice, system, _, _, irq, softirq, steal = ticks[:8]  # guest is already in user
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=20, help="tests to list (most CPU first)")
    ap.add_argument(
        "--log",
        type=Path,
        help="keep the per-test table (node id, own CPU, waited-for CPU, wall, worker, "
        "start time, the machine's busy CPU; tab-separated) in this file (and, if a test "
        "failed, pytest's output in FILE.pytest.txt)",
    )
    ap.add_argument("pytest_args", nargs="*", default=["-n", "3"])
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
        t0, host0 = time.time(), host_cpu_seconds()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        total, host1 = cpu_seconds(), host_cpu_seconds()
        table = log.read_text() if log.exists() else ""
    if args.log:
        args.log.write_text(table)
    fields = [line.rsplit("\t", 6) for line in table.splitlines()]
    rows = [(node, float(o), float(k), float(w)) for node, o, k, w, _, _, _ in fields]
    ends: dict[str, float] = collections.defaultdict(float)  # worker -> end of its last test
    for _, _, _, w, worker, start, _ in fields:
        ends[worker] = max(ends[worker], float(start) + float(w))
    summary = [x for x in proc.stdout.splitlines() if " passed" in x or " failed" in x]
    print(summary[-1] if summary else proc.stdout[-2000:] + proc.stderr[-2000:])
    for line in proc.stdout.splitlines():  # pytest's short summary (-ra)
        if line.startswith(("FAILED ", "ERROR ")):
            print(line)
    if proc.returncode and args.log:  # what failed, and how, next to the table
        out = args.log.with_name(args.log.name + ".pytest.txt")
        out.write_text(proc.stdout + proc.stderr)
        print(f"pytest's output: {out}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    floor = total / (cores or 1)
    print(f"wall {wall:.0f} s; CPU {total:.0f} s on {cores} cores: floor {floor:.0f} s")
    if host0 is not None and host1 is not None:
        busy, steal = host1[0] - host0[0], host1[1] - host0[1]
        print(
            f"the whole machine was busy for {busy:.0f} CPU s ({busy / wall / (cores or 1):.0%} "
            f"of its {cores} cores; floor {busy / (cores or 1):.0f} s), {busy - total:.0f} s of "
            f"them outside the suite's process tree (SLURM jobs, containers, other work); "
            f"the hypervisor took {steal:.0f} CPU s (steal)"
        )
    own = sum(r[1] for r in rows)
    kids = sum(r[2] for r in rows)
    print(
        f"CPU of the {len(rows)} tests: {own:.0f} s in the test processes, {kids:.0f} s in the "
        f"processes they waited for; {total - own - kids:.0f} s start-up and collection"
    )
    for worker, end in sorted(ends.items()):
        print(f"worker {worker}: idle for the last {t0 + wall - end:.0f} s of the suite")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other work inflates the wall time)")
    files: dict[str, np.ndarray] = collections.defaultdict(lambda: np.zeros(4))
    for node, o, k, w in rows:
        files[node.split("::")[0]] += (o, k, w, 1)
    print(f"\n{'CPU s':>7} {'own':>6} {'ran':>6} {'wall s':>7} {'tests':>5}  file")
    for name, (o, k, w, n) in sorted(files.items(), key=lambda x: -(x[1][0] + x[1][1])):
        print(f"{o + k:7.1f} {o:6.1f} {k:6.1f} {w:7.1f} {n:5.0f}  {name}")
    print(f"\n{'CPU s':>7} {'wall s':>7}  test (the {args.top} with the most CPU)")
    for node, o, k, w in sorted(rows, key=lambda r: -(r[1] + r[2]))[: args.top]:
        print(f"{o + k:7.1f} {w:7.1f}  {node}")
    if len(ends) == 1:
        host_table([(f[0], float(f[6]), float(f[3])) for f in fields], args.top)
    else:
        print(
            "\n(the CPU of a test's own runs is counted when their kept fork server ends, and"
            " SLURM jobs and containers not at all: run with -n 0 for the machine's CPU per"
            " test)"
        )
    sys.exit(proc.returncode)


def host_table(rows: list[tuple[str, float, float]], top: int) -> None:
    """Tests run one at a time (``-n 0``): the whole machine's busy CPU during each test
    (its SLURM jobs, containers and fork-server workers included; other work too), per
    file and for the ``top`` tests."""
    files: dict[str, np.ndarray] = collections.defaultdict(lambda: np.zeros(3))
    for node, busy, w in rows:
        files[node.split("::")[0]] += (busy, w, 1)
    print(
        f"\nthe machine's CPU during each test (tests one at a time: {sum(r[1] for r in rows):.0f}"
        " CPU s in all)"
    )
    print(f"{'CPU s':>7} {'wall s':>7} {'tests':>5}  file")
    for name, (busy, w, n) in sorted(files.items(), key=lambda x: -x[1][0]):
        print(f"{busy:7.1f} {w:7.1f} {n:5.0f}  {name}")
    print(f"\n{'CPU s':>7} {'wall s':>7}  test (the {top} with the most)")
    for node, busy, w in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"{busy:7.1f} {w:7.1f}  {node}")


if __name__ == "__main__":
    main()
