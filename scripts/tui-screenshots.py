#!/usr/bin/env python3
"""Export SVG screenshots of the TUI's main screens to docs/screenshots/ (for the README).

    python scripts/tui-screenshots.py [--size 100x30] [--out docs/screenshots]

Runs from the repository root on user_configs/quickstart.toml. The Run and Results
screens need a finished run: the quickstart is run once into runs/tui-screenshots
(about 30 s; reused when its scan.csv and plots exist). Screens are captured headless
with textual's ``App.save_screenshot``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "user_configs/quickstart.toml"
RUN_DIR = "runs/tui-screenshots"


def ensure_run() -> None:
    point = REPO / RUN_DIR / "nominal"
    if (point / "scan.csv").is_file() and (point / "plots" / "manifest.json").is_file():
        return
    print(f"running the quickstart into {RUN_DIR} (about 30 s)...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "gprpipe", "run", CONFIG, "--set", f"base.output={RUN_DIR}"],
        cwd=REPO,
        check=True,
    )


async def shoot(
    name: str,
    out: Path,
    size: tuple[int, int],
    keys: list[str],
    overrides: list[str] | None = None,
    before: Callable[[object], Awaitable[None]] | None = None,
) -> Path:
    from gprpipe.tui.app import GprpipeApp

    app = GprpipeApp(
        CONFIG, overrides=[f"base.output={RUN_DIR}", *(overrides or [])], check_delay=0.01
    )
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        if before is not None:
            await before(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.2)
        await pilot.pause(0.3)
        app.save_screenshot(f"{name}.svg", str(out))
    return out / f"{name}.svg"


async def typo(pilot) -> None:
    from textual.widgets import TextArea

    editor = pilot.app.query_one("#editor", TextArea)
    editor.focus()
    editor.move_cursor((14, 1))
    await pilot.press("x")  # [plot] masses -> mxasses: an unknown key, with its line
    await pilot.pause(0.2)


async def main(size: tuple[int, int], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    grid = ["grid.fit.blind_nsigma=[1.64, 1.96]", "grid.limit.mode=['asymptotic', 'toys']"]
    shots = [
        ("browse", ["f1"], None, None),
        ("edit", [], None, None),
        ("edit-error", [], None, typo),
        ("form", ["f3"], None, None),
        ("grid", ["f4"], grid, None),
        ("run", ["f5", "end"], None, None),
        ("results", ["f6"], None, None),
        ("results-plot", ["f6", "p"], None, None),
    ]
    for name, keys, overrides, before in shots:
        path = await shoot(name, out, size, keys, overrides, before)
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100x30", help="terminal size WxH")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    os.chdir(REPO)
    ensure_run()
    asyncio.run(main((w, h), Path(args.out).resolve()))
