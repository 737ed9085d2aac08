#!/usr/bin/env python3
"""Screenshot of a run's report.html in headless chromium (for the README):

    python scripts/report-screenshot.py runs/hps2015/nominal/report.html docs/report.png

Needs playwright (pip install playwright) and /usr/bin/chromium (scripts/setup-chromium.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(report: str, out: str, width: int = 1400, height: int = 1700) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(report).resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=out)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report-screenshot.py REPORT.html OUT.png")
    main(sys.argv[1], sys.argv[2])
