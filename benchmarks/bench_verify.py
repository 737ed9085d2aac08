"""Cost of verified reuse: the freshness check (cache key + sha256 of every committed
output) over every task of a finished run, as a cached run does it.

Usage: python benchmarks/bench_verify.py RUN_DIR [--repeat 5]

Prints the number of tasks and committed files, the bytes hashed, and the wall and CPU
time of one full check (best of ``--repeat``), with the hashing rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gprpipe.pipeline.cache import freshness
from gprpipe.pipeline.commit import read_commit
from gprpipe.pipeline.store import load_run_info, tasks_of_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tasks, configs = tasks_of_run(load_run_info(args.run_dir))
    files = [t.point_dir / rel for t in tasks for rel in (read_commit(t) or {"files": {}})["files"]]
    size = sum(p.stat().st_size for p in files if p.is_file())
    best_wall = best_cpu = float("inf")
    fresh = 0
    for _ in range(args.repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fresh = sum(freshness(t, configs[t.point])[0] for t in tasks)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print(
        f"{len(tasks)} tasks ({fresh} fresh), {len(files)} committed files, "
        f"{size / 1e6:.2f} MB hashed"
    )
    print(
        f"one full check: {best_wall * 1e3:.1f} ms wall, {best_cpu * 1e3:.1f} ms CPU "
        f"(best of {args.repeat}); {size / 1e6 / max(best_cpu, 1e-9):.0f} MB/s CPU"
    )


if __name__ == "__main__":
    main()
