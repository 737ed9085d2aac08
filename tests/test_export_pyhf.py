"""`gprpipe export-pyhf`: pyhf's asymptotic limits on the exported workspace agree with
scan.csv (A_up and A_exp_med) within 1% at several masses (pyhf's CLs brackets 0.05 between
0.99 and 1.01 times each limit). pyhf is an optional test extra."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, assert_pyhf_limits_within

pyhf = pytest.importorskip("pyhf")
pytestmark = pytest.mark.slow


def test_exported_workspace_reproduces_scan_limits(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    with open(shared_quickstart / "nominal" / "scan.csv") as fh:
        rows = {round(float(r["mass_GeV"]), 6): r for r in csv.DictReader(fh)}
    pyhf.set_backend("numpy")
    for mass in (0.03, 0.045, 0.06):
        out = tmp_path / f"ws_{mass}.json"
        code, _, err = cli(
            "export-pyhf", shared_quickstart, "--dataset", "demo", "--mass", str(mass), "-o", out
        )
        assert code == 0, err
        spec = json.loads(out.read_text())
        scale = float(spec["measurements"][0]["name"].removeprefix("A_in_units_of_"))
        ws = pyhf.Workspace(spec)
        model = ws.model()
        data = ws.data(model)
        a_up, a_exp = (float(rows[mass][k]) / scale for k in ("A_up", "A_exp_med"))
        assert_pyhf_limits_within(data, model, a_up, a_exp, rel=0.01)


def test_exports_name_the_datasets_a_run_has(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    for command, *mass in (("export-pyhf", "--mass", "0.06"), ("export-spey",)):
        code, _, err = cli(command, shared_quickstart, "--dataset", "dmeo", *mass, "-o", tmp_path)
        assert code == 1 and err.strip() == (
            f"error: {shared_quickstart}/nominal/fit.h5: no dataset 'dmeo' (have: demo)."
        )
