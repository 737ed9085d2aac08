"""Plan-size caps and template bounds: how fast gprpipe refuses what it must refuse.

Usage: python benchmarks/bench_limits.py [--repeat 3]

Prints wall and CPU time of: ``gprpipe grid`` on a 10^6-point grid (a subprocess, as a user
runs it, so Python start-up is included), the in-process count of that grid, naming 10^5
grid points, and rendering the unbounded templates of the fault suite (each refused).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import cpu_seconds

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from gprpipe.config import load_points
    from gprpipe.config.grid import point_names
    from gprpipe.config.render import render_string
    from gprpipe.errors import GprpipeError

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "huge.toml"
        values = ", ".join(str(i) for i in range(1000))
        cfg.write_text(
            f'[base]\ntemplate = "{REPO / "user_configs" / "quickstart.toml"}"\n'
            f'[grid]\n"fit.n_restarts" = [{values}]\n"limit.n_toys" = [{values}]\n'
        )

        def cli() -> None:
            c0 = cpu_seconds()
            res = subprocess.run(
                [sys.executable, "-m", "gprpipe", "grid", str(cfg)],
                capture_output=True,
                text=True,
                env={**os.environ},
            )
            assert res.returncode == 1 and "1000000 points" in res.stderr, res.stderr
            cli.cpu = cpu_seconds() - c0

        walls = []
        cpus = []
        for _ in range(args.repeat):
            w0 = time.perf_counter()
            cli()
            walls.append(time.perf_counter() - w0)
            cpus.append(cli.cpu)
        print(
            f"gprpipe grid, 10^6-point grid refused (subprocess): wall {min(walls):.2f} s, "
            f"CPU {min(cpus):.2f} s"
        )

        def count() -> None:
            try:
                load_points(cfg)
            except GprpipeError as exc:
                assert "1000000 points" in str(exc)

        w, c = timed(count, args.repeat)
        print(f"  in process (load + count): wall {w * 1e3:.1f} ms, CPU {c * 1e3:.1f} ms")

    w, c = timed(lambda: point_names([{"fit.n_restarts": i} for i in range(100_000)]), args.repeat)
    print(f"naming 10^5 grid points: wall {w:.2f} s, CPU {c:.2f} s")

    for expr in (
        "{{ 9**(9**9) }}",
        "{{ 'a'*10**10 }}",
        "{{ range(10**9)|list }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ):

        def render(expr: str = expr) -> None:
            try:
                render_string(expr, {}, "base.name")
            except GprpipeError:
                return
            raise AssertionError(f"{expr} was not refused")

        w, c = timed(render, 1)
        print(f"refused {expr[:40]!r}: wall {w:.3f} s, CPU {c:.3f} s")


if __name__ == "__main__":
    main()
