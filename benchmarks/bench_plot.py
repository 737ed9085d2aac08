"""Plot-step time of the quickstart, before and after: this tree against another commit.

Runs the quickstart once (this tree), then times ``gprpipe step plot
--force`` on copies of that point with this tree and with the code of ``--before`` (a git
ref, extracted with ``git archive``), alternating, ``--repeat`` times each, with
``base.jobs`` = 1 and 2. Prints wall and CPU time (the step process and its figure
workers) per variant, and whether the two trees wrote the same files (PDF dates pinned by
SOURCE_DATE_EPOCH).
Usage: python benchmarks/bench_plot.py [--before main] [--repeat 3]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import timed

REPO = Path(__file__).resolve().parents[1]


def _env(tree: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "SOURCE_DATE_EPOCH": "0",
    }


def _plot(tree: Path, point: Path, jobs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one plot step run with ``tree``'s code."""
    cfg = point / "config.toml"
    cfg.write_text(re.sub(r"(?m)^jobs = \d+$", f"jobs = {jobs}", cfg.read_text()))
    shutil.rmtree(point / "plots", ignore_errors=True)
    (point / "plots").mkdir()
    with timed() as t:
        res = subprocess.run(
            [sys.executable, "-m", "gprpipe", "step", "plot", "--point-dir", str(point), "--force"],
            env=_env(tree),
            capture_output=True,
            text=True,
            cwd=tree,
        )
    if res.returncode:
        sys.exit(f"plot step failed with {tree}:\n{res.stdout}{res.stderr}")
    return t.wall, t.cpu


def _same_files(a: Path, b: Path) -> tuple[int, list[str]]:
    names = sorted(
        {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
        | {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    )
    diff = [
        str(n)
        for n in names
        if not (
            (a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False)
        )
    ]
    return len(names), diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", default="main", help="git ref of the code to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--git", type=Path, default=REPO, help="repository holding --before (default: this tree's)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "code_before"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(args.git), "archive", args.before], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gprpipe",
                "run",
                "user_configs/quickstart.toml",
                "--set",
                f"base.output={tmp}/run",
            ],
            env=_env(REPO),
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        points = {}
        for name in ("before", "after"):
            shutil.copytree(tmp / "run", tmp / name / "run")
            points[name] = tmp / name / "run" / "nominal"
        trees = {"before": old, "after": REPO}
        times: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for jobs in (1, 2):
                for name in ("before", "after"):
                    times.setdefault((name, jobs), []).append(
                        _plot(trees[name], points[name], jobs)
                    )
        print(
            f"plot step of user_configs/quickstart.toml, before = {args.before}, "
            f"{args.repeat} runs each (median [min]); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        for (name, jobs), runs in times.items():
            wall, cpu = zip(*runs)
            print(
                f"  {name:6s} jobs={jobs}: wall {statistics.median(wall):6.2f} s "
                f"[{min(wall):6.2f}]   CPU {statistics.median(cpu):6.2f} s [{min(cpu):6.2f}]"
            )
        for sub in ("plots", "hepdata"):
            n, diff = _same_files(points["before"] / sub, points["after"] / sub)
            print(
                f"  {sub}/: {n - len(diff)} of {n} files byte-identical"
                + (f"; differ: {', '.join(diff)}" if diff else "")
            )


if __name__ == "__main__":
    main()
