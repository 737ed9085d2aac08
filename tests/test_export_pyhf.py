"""`gprpipe export-pyhf`: pyhf's asymptotic limits on the exported workspace agree with
scan.csv (A_up and A_exp_med) within 1% at several masses. pyhf is an optional test extra."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pyhf = pytest.importorskip("pyhf")
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_exported_workspace_reproduces_scan_limits(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gprpipe",
            "run",
            "user_configs/quickstart.toml",
            "--steps",
            "load,fit,limit",
            "--set",
            f"base.output={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "nominal" / "scan.csv") as fh:
        rows = {round(float(r["mass_GeV"]), 6): r for r in csv.DictReader(fh)}
    pyhf.set_backend("numpy")
    for mass in (0.03, 0.045, 0.06):
        out = tmp_path / f"ws_{mass}.json"
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "gprpipe",
                "export-pyhf",
                str(tmp_path),
                "--dataset",
                "demo",
                "--mass",
                str(mass),
                "-o",
                str(out),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        spec = json.loads(out.read_text())
        scale = float(spec["measurements"][0]["name"].removeprefix("A_in_units_of_"))
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(
            data, model, scan=None, level=0.05, test_stat="qtilde", rtol=1e-5
        )
        assert float(obs) * scale == pytest.approx(float(rows[mass]["A_up"]), rel=0.01)
        assert float(exp[2]) * scale == pytest.approx(float(rows[mass]["A_exp_med"]), rel=0.01)
