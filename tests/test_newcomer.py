"""A physicist's first hour: what validate refuses, the end-of-run summary, live progress and
Ctrl-C, one mass convention, compare, init, messages, the demo spectrum and test hygiene.

Runs are real (the shipped demo spectrum through the CLI); the module's two runs (the
quickstart, and a two-point grid of three masses) take about 20 s of CPU together.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    DEMO_ROOT,
    QUICKSTART,
    REPO,
    SHIPPED_USER_CONFIGS,
    cli_env,
    quickstart_child,
    run_cli_here,
    settings,
    start_cli_subprocess,
    write,
)

from gprpipe.config import load_points
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import CRASH_AFTER
from gprpipe.io.root import read_hist, write_hist
from gprpipe.pipeline.summary import run_summary, summary_lines
from gprpipe.results.summary import dataset_lines, summarize_scan
from gprpipe.units import parse_mass, parse_masses


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def one_sentence_errors(err: str) -> list[str]:
    lines = [x for x in err.strip().splitlines() if x]
    assert all(x.startswith("error: ") for x in lines), err
    assert "Traceback" not in err and "internal error" not in err
    return lines


# ---------------------------------------------------------------- 1. validate = what run refuses


@pytest.mark.parametrize(
    "leave_out", ['[scan]\ndatasets = ["mine"]\n', "[datasets.2015]\nenabled = false\n"]
)
def test_a_template_dataset_left_out_needs_no_data_file(tmp_path: Path, cli, leave_out):
    """The hps2015 template's dataset 2015, left out of the scan, asked for its path."""
    cfg = tmp_path / "mine.toml"
    cfg.write_text(
        f'[base]\ntemplate = "hps2015"\n[datasets.mine]\ncard = "hps2015"\n'
        f'path = "{DEMO_ROOT}"\n{leave_out}'
    )
    code, out, err = cli("validate", cfg)
    assert code == 0, err
    assert out.startswith(f"{cfg}: valid (1 point")
    code, out, err = cli("run", cfg, "--dry-run", "--set", "scan.masses=[0.06]")
    assert code == 0 and "/fit/mine-000" in out and "/fit/2015" not in out, err


def test_a_mass_step_in_mev_is_refused(tmp_path: Path, cli):
    """scan.mass_step = 1 (MeV meant) over a 0.02-0.13 GeV range scanned one mass."""
    cfg = tmp_path / "step.toml"
    cfg.write_text(
        f'[base]\ntemplate = "hps2015"\n[datasets.2015]\npath = "{DEMO_ROOT}"\n'
        "[scan]\nmass_step = 1\n"
    )
    code, out, err = cli("validate", cfg)
    assert code == 1 and out == ""
    assert one_sentence_errors(err) == [
        f"error: {cfg}:6: scan.mass_step: a step of 1 GeV over [0.02, 0.13] GeV gives one "
        "test mass for dataset 2015; did you mean 0.001 GeV?"
    ]


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["scan.masses=[0.2,0.3]"],
            [
                "error: --set scan.masses: no test mass lies in the range [0.02, 0.13] GeV "
                "of dataset demo."
            ],
        ),
        (
            ["scan.masses=[30,60]"],
            [
                "error: --set scan.masses: 30 is not a mass in GeV; did you mean 0.030 GeV?",
                "error: --set scan.masses: 60 is not a mass in GeV; did you mean 0.060 GeV?",
            ],
        ),
        (  # MeV ranges: said so, before any count of the masses they would give
            ["datasets.demo.range=[20,130]", "datasets.demo.data_range=[15,140]"],
            [
                "error: --set datasets.demo.range: [20, 130] is not in GeV; did you mean "
                "0.020 GeV to 0.130 GeV?",
                "error: --set datasets.demo.data_range: [15, 140] is not in GeV; did you mean "
                "0.015 GeV to 0.140 GeV?",
            ],
        ),
        (  # one end in MeV: the other is kept (it said "2e-05 GeV to 0.130 GeV": a review)
            ["datasets.demo.range=[0.02,130]"],
            [
                "error: --set datasets.demo.range: [0.02, 130] is not in GeV; did you mean "
                "0.020 GeV to 0.130 GeV?",
            ],
        ),
        (
            ["datasets.demo.path=/nonexistent/h.root"],
            ["error: --set datasets.demo.path: /nonexistent/h.root: data file not found."],
        ),
        (
            ["datasets.demo.hist=h_invM"],
            [
                f"error: --set datasets.demo.hist: {DEMO_ROOT}: histogram 'h_invM' not "
                "found; closest of its 1 1-D histogram: input_hist."
            ],
        ),
        (
            ["datasets.demo.rebin=5000"],
            [
                f"error: --set datasets.demo.rebin: a rebin of 5000 exceeds the 3000 bins of "
                f"histogram 'input_hist' in {DEMO_ROOT}."
            ],
        ),
        (
            ["datasets.demo.range=[0.02,0.2]", "datasets.demo.data_range=[0.01,0.16]"],
            [
                f"error: --set datasets.demo.range: [0.02, 0.2] GeV extends past histogram "
                f"'input_hist' in {DEMO_ROOT} (0-0.15 GeV).",
                f"error: --set datasets.demo.data_range: [0.01, 0.16] GeV extends past "
                f"histogram 'input_hist' in {DEMO_ROOT} (0-0.15 GeV).",
            ],
        ),
        (
            ["plot.masses=[0.0605]", "plot.displays.observed=[0.05]"],
            [
                "error: --set plot.masses: 0.0605 GeV lies between the test masses 0.06 and "
                "0.08 GeV; the figures are drawn at test masses only.",
                "error: --set plot.displays.observed: 0.05 GeV lies between the test masses "
                "0.045 and 0.06 GeV; the figures are drawn at test masses only.",
            ],
        ),
        (
            ["fit.n_restarts=true", "scan.masses=[0.06, false]"],
            [
                "error: --set scan.masses: takes a number, not true/false.",
                "error: --set fit.n_restarts: takes a number, not true/false.",
            ],
        ),
        (
            ['base.name="../../escaped"'],
            [
                "error: --set base.name: '../../escaped' climbs out of the folder it names (a "
                "'..'); it names the run directory runs/<name>: set base.output to run "
                "elsewhere."
            ],
        ),
        (
            ["fit.blind_nsigma=500"],
            [
                "error: --set fit.blind_nsigma: the window of +/-500 sigma(m) leaves fewer than "
                "3 bins of dataset demo to train the GP on at every test mass (at m = 0.03 "
                "GeV, +/-0.752172 GeV leaves 0); no fit of the scan could succeed."
            ],
        ),
        (
            ["scan.masses=[]"],
            [
                "error: --set scan.masses: an empty list; list the test masses (GeV), or leave "
                "scan.masses out to scan each range in steps of scan.mass_step."
            ],
        ),
        (
            ["inject.strengths=[3.0,3.0]"],
            ["error: --set inject.strengths: 3 is listed twice."],
        ),
        (
            ["inject.strengths=[-3.0]"],
            [
                "error: --set inject.strengths: -3 is negative; a strength is a signal size, "
                "at least 0."
            ],
        ),
        (
            ["inject.strengths=[1e30]"],
            ["error: --set inject.strengths: 1e+30 is above 1e+09; no toy can be drawn for it."],
        ),
        (
            ["plot.allocation_masses=[55]"],
            [
                "error: --set plot.allocation_masses: 55 is not a mass in GeV; did you mean "
                "0.055 GeV?"
            ],
        ),
        (
            ["inject.masses=[0.06]", "plot.displays.masses=[0.07]"],
            [
                "error: --set plot.displays.masses: 0.07 GeV is not an injected mass "
                "(inject.masses: [0.06]); an extraction display shows an injection."
            ],
        ),
    ],
)
def test_validate_refuses_what_run_would(cli, sets: list[str], expected: list[str]):
    args = [x for s in sets for x in ("--set", s)]
    code, out, err = cli("validate", QUICKSTART, *args)
    assert code == 1 and out == ""
    assert one_sentence_errors(err) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "loaf"], "--steps loaf: 'loaf' is not a step; did you mean 'load'?"),
        (  # (it named "--set steps.run", which the user had not given)
            ["--steps", "load,inject"],
            "--steps load,inject: includes 'inject', which needs inject.masses (it is empty: "
            "no injection study would run).",
        ),
        (
            ["--steps", "load,inject", "--unblind"],
            "--steps load,inject: includes 'inject', which needs inject.masses (it is empty: "
            "no injection study would run).",
        ),
        (
            ["--steps", ""],
            "--steps '': name one or more of load, fit, limit, inject, toyscan, plot.",
        ),
        (
            ["--set", "steps.run=[]"],
            "--set steps.run: empty: nothing would run; name one or more of load, fit, "
            "limit, inject, toyscan, plot.",
        ),
        (
            ["--set", "plot.formats=[]"],
            "--set plot.formats: empty: the figures need a format (png, pdf or svg).",
        ),
    ],
)
def test_run_refuses_a_plan_that_does_nothing(cli, tmp_path: Path, args, expected):
    """Each ran before: --steps '' as every step, --steps loaf named --set steps.run, an
    empty steps.run said 'all 0 tasks are up to date', no format wrote no figure."""
    run_dir = tmp_path / "run"
    code, _, err = cli("run", QUICKSTART, "--set", f"base.output={run_dir}", *args)
    assert code == 1 and one_sentence_errors(err) == [f"error: {expected}"]
    assert not run_dir.exists()


def test_a_step_with_a_missing_and_a_damaged_part_is_one_sentence(cli, tmp_path: Path):
    """A fit with one part gone and another damaged gave two sentences, both "add 'fit'"
    (a review); one reason per step and point now, the first the plan meets."""
    run = tmp_path / "run"
    args = ("run", QUICKSTART, "--set", f"base.output={run}", "--set", "scan.chunk_size=2")
    assert cli(*args, "--steps", "load,fit")[0] == 0
    parts = run / "nominal" / "parts" / "fit"
    (parts / "demo-001.h5").unlink()
    with open(parts / "demo-002.h5", "ab") as f:
        f.write(b"x")
    code, _, err = cli(*args, "--steps", "limit")
    assert code == 1 and one_sentence_errors(err) == [
        "error: nominal/limit/demo-001 reads parts/fit/demo-001.h5 of the fit step, which "
        f"steps.run leaves out, and {run / 'nominal'} holds no finished one: add 'fit' to "
        "steps.run (or --steps)."
    ]


def test_a_step_left_out_must_have_its_outputs_in_the_run(cli, tmp_path: Path, quick_run):
    """A limit without its fit failed in the task as 'not committed (killed before it
    finished?)'; now the run refuses before it starts. A finished run lends its fit."""
    fresh = tmp_path / "run"
    code, _, err = cli("run", QUICKSTART, "--steps", "load,limit", "--set", f"base.output={fresh}")
    assert code == 1 and one_sentence_errors(err) == [
        "error: nominal/limit/demo-000 reads parts/fit/demo-000.h5 of the fit step, which "
        f"steps.run leaves out, and {fresh / 'nominal'} holds no finished one: add 'fit' to "
        "steps.run (or --steps)."
    ]
    assert not fresh.exists()
    # two steps left out: one sentence (it was one per step)
    code, _, err2 = cli("run", QUICKSTART, "--steps", "limit", "--set", f"base.output={fresh}")
    assert code == 1 and one_sentence_errors(err2) == [
        "error: nominal/limit/demo-000 reads load.h5 of the load step and "
        "parts/fit/demo-000.h5 of the fit step, which steps.run leaves out, and "
        f"{fresh / 'nominal'} holds no finished ones: add 'load' and 'fit' to steps.run "
        "(or --steps)."
    ]
    assert not fresh.exists()
    # validate says what run refuses (it said "valid")
    code, out, err2 = cli(
        "validate",
        QUICKSTART,
        "--set",
        'steps.run=["load","limit"]',
        "--set",
        f"base.output={fresh}",
    )
    assert code == 1 and out == "" and err2 == err
    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy)
    code, _, err = cli(
        "run", QUICKSTART, "--steps", "limit", "--force", "--set", f"base.output={copy}"
    )
    assert code == 0, err
    # the plot step alone in a new directory had made an empty report, exit 0; then its
    # task failed (and suggested rerun --failed); now the run refuses before it starts
    empty = tmp_path / "empty"
    code, _, err = cli("run", QUICKSTART, "--steps", "plot", "--set", f"base.output={empty}")
    assert code == 1 and one_sentence_errors(err) == [
        f"error: {empty / 'nominal'} holds no results to plot (no output of load, fit, "
        "limit, inject or toyscan): add the steps that make them to steps.run (or --steps)."
    ]
    assert not empty.exists()
    # the plot step alone over results of other settings: it drew nothing and failed
    code, _, err = cli(
        "run",
        QUICKSTART,
        "--steps",
        "plot",
        *settings(f"base.output={copy}", "scan.mass_step=0.002"),
    )
    assert code == 1 and one_sentence_errors(err) == [
        f"error: {copy / 'nominal'} holds no results of this config to plot (load.h5, fit.h5, "
        "limit.h5 were made with other settings or inputs): add the steps that make them to "
        "steps.run (or --steps)."
    ]


def test_validate_suspects_a_histogram_axis_in_mev(cli, tmp_path: Path):
    """The demo spectrum with its axis in MeV (0-150): one sentence naming the data file
    (it named the card's rebin, whose bins were wider than the blind window)."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    mev = tmp_path / "mev.root"
    write_hist(mev, counts, edges * 1000)
    code, _, err = cli("validate", QUICKSTART, "--set", f"datasets.demo.path={mev}")
    assert code == 1
    assert one_sentence_errors(err) == [
        f"error: --set datasets.demo.path: histogram 'input_hist' in {mev} has an axis that "
        "runs to 150: in MeV? histogram axes are read in GeV; "
        "write a copy with the edges divided by 1000 (README, Real HPS data)."
    ]


def test_a_range_the_histogram_misses_is_said_at_the_users_own_key(
    cli, tmp_path: Path, monkeypatch
):
    """The wrong year's file, a histogram divided by 1000 twice, a range in TeV: the first
    two were blamed on the range's line in the shipped card ("lies outside", though the
    range overlaps the axis), the third on the card's mass step and resolution (a
    newcomer review). The data file's key in the user's config, or the range's, with
    what to change."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "w16.toml"
    code, _, err = cli("init", "w16", "--template", "hps2016", "--data", DEMO_ROOT)
    assert code == 0, err
    line = next(i for i, t in enumerate(cfg.read_text().splitlines(), 1) if t.startswith("path ="))
    code, _, err = cli("validate", cfg)
    assert code == 1
    assert one_sentence_errors(err) == [
        f"error: {cfg}:{line}: datasets.2016.path: [0.035, 0.21] GeV extends past histogram "
        f"'input_hist' in {DEMO_ROOT} (0-0.15 GeV): the range of the shipped hps2016.toml "
        "(line 8): another file, or set datasets.2016.range in this config."
    ]
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    twice = tmp_path / "twice.root"
    write_hist(twice, counts, edges / 1000)
    code, _, err = cli("validate", QUICKSTART, "--set", f"datasets.demo.path={twice}")
    assert code == 1 and one_sentence_errors(err) == [
        f"error: --set datasets.demo.path: [0.02, 0.13] GeV lies outside histogram "
        f"'input_hist' in {twice} (0-0.00015 GeV); its axis ends below the range: in TeV, or "
        "divided by 1000 twice?; it is the range of the shipped hps2015.toml (line 8): "
        "another file, or set datasets.demo.range in this config."
    ]  # (it read "twice?: the range": the whole-diff review)
    code, _, err = cli("validate", QUICKSTART, "--set", "datasets.demo.range=[0.00002, 0.00013]")
    assert code == 1 and one_sentence_errors(err) == [
        "error: --set datasets.demo.range: [2e-05, 0.00013] GeV ends below the e+e- threshold "
        "(1.022 MeV): masses are in GeV (0.020 is 20 MeV); did you mean [0.02, 0.13]?"
    ]


def test_validate_names_the_key_and_line_in_the_file(cli, tmp_path: Path):
    notroot = write(tmp_path / "notroot.root", "plain text\n")
    cfg = quickstart_child(
        tmp_path / "c.toml",
        f"""
        [datasets.demo]
        path = "{notroot}"
        [inject]
        masses = [60]
        [steps]
        run = ["load", "fit", "limit", "inject"]
    """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1
    lines = one_sentence_errors(err)
    assert lines[0] == (
        f"error: {cfg}:6: inject.masses: 60 is not a mass in GeV; did you mean 0.060 GeV?"
    )
    # the data file is checked once the masses are right
    cfg.write_text(cfg.read_text().replace("masses = [60]", "masses = [0.06]"))
    code, _, err = cli("validate", cfg)
    (line,) = one_sentence_errors(err)
    assert line.startswith(
        f"error: {cfg}:4: datasets.demo.path: {notroot}: cannot open as a ROOT file ("
    )


def test_validate_a_config_without_datasets(cli, tmp_path: Path, monkeypatch):
    cfg = write(tmp_path / "empty.toml", '[base]\nname = "nothing"\n')
    monkeypatch.chdir(tmp_path)  # named as typed, it was the one location not absolute
    code, _, err = cli("validate", "empty.toml")
    assert code == 1
    assert one_sentence_errors(err) == [
        f"error: {cfg}: datasets: no dataset to scan; add a [datasets.<key>] table with path "
        'and card (e.g. [datasets.2015] card = "hps2015").'
    ]


def test_run_refuses_out_of_range_masses_before_starting(cli, tmp_path: Path):
    run_dir = tmp_path / "run"
    code, out, err = cli(
        "run", QUICKSTART, "--set", f"base.output={run_dir}", "--set", "scan.masses=[0.2]"
    )
    assert code == 1 and "no test mass lies in the range [0.02, 0.13] GeV" in err
    assert "Results in" not in out + err and "no limit results to merge" not in err
    assert not run_dir.exists()  # nothing was started or written


def test_histogram_hint_ranks_the_top_level_histogram_first(cli, shared_data: Path):
    """Among the 301 histograms of the real file, input_hist comes first for a name from
    another layout (it used to be buried behind hundreds of toys in folders)."""
    path = (shared_data / "funcform_2015_toys.root").resolve()
    code, _, err = cli(
        "validate",
        REPO / "user_configs" / "hps2015.toml",
        *settings(f"datasets.2015.path={path}", "datasets.2015.hist=preselection/h_invM"),
    )
    assert code == 1
    (line,) = one_sentence_errors(err)
    assert line.startswith(
        f"error: --set datasets.2015.hist: {path}: histogram "
        "'preselection/h_invM' not found; closest of its 301 1-D histograms: "
        "input_hist, "
    )


# ---------------------------------------------------------------- 8. messages


def test_messages_name_the_key_once_and_suggest(cli, tmp_path: Path):
    code, _, err = cli("validate", QUICKSTART, "--set", "blind_nsigma=2")
    assert one_sentence_errors(err) == [
        "error: --set blind_nsigma: unknown key; did you mean 'fit.blind_nsigma'?"
    ]
    code, _, err = cli("validate", QUICKSTART, "--set", "fit.blind_nsigma=abc")
    (line,) = one_sentence_errors(err)
    assert line.startswith("error: --set fit.blind_nsigma: Input should be a valid number")
    # a typo in a dataset key: suggest the dataset, do not blame the defaults
    cfg = write(
        tmp_path / "typo.toml",
        f"""
        [base]
        template = "hps2015"
        [datasets.2015]
        path = "{DEMO_ROOT}"
        [datasets.2105]
        hist = "input_hist"
    """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1
    assert one_sentence_errors(err) == [
        f"error: {cfg}:5: datasets.2105: a new dataset without card or range; did you mean "
        "datasets.2015?"
    ]
    assert "defaults.toml" not in err


def test_status_of_a_point_folder_points_at_its_run(cli, quick_run: Path):
    code, _, err = cli("status", quick_run / "nominal")
    assert code == 1
    assert err.strip() == (
        f"error: {quick_run / 'nominal'}: a point folder; give its run folder {quick_run}."
    )


def test_debug_is_in_the_help(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "--debug" in out


# ---------------------------------------------------------------- runs shared by the tests


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart (load, fit, limit) through the CLI; its output kept for the checks."""
    run_dir = tmp_path_factory.mktemp("quick") / "run"
    code, out, err = run_cli_here(
        "run",
        QUICKSTART,
        "--steps",
        "load,fit,limit",
        "--set",
        f"base.output={run_dir}",
    )
    assert code == 0, err
    (run_dir / "stdout.txt").write_text(out)
    return run_dir


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two grid points (blind window 1.64 and 1.96 sigma) at three masses."""
    root = tmp_path_factory.mktemp("grid")
    cfg = quickstart_child(
        root / "g.toml",
        f"""
        output = "{root / "run"}"
        [scan]
        masses = [0.040, 0.060, 0.090]
        [grid]
        "fit.blind_nsigma" = [1.64, 1.96]
    """,
    )
    code, _, err = run_cli_here("run", cfg, "--steps", "load,fit,limit")
    assert code == 0, err
    return root / "run"


# ---------------------------------------------------------------- 2. the summary


def test_run_ends_with_its_summary_and_summary_reprints_it(quick_run: Path, cli):
    printed = (quick_run / "stdout.txt").read_text()
    rows = rows_of(quick_run / "nominal" / "scan.csv")
    best = max(rows, key=lambda r: float(r["Z_local"]))
    weak = max(rows, key=lambda r: float(r["eps2_up"]))
    strong = min(rows, key=lambda r: float(r["eps2_up"]))
    gof = min(rows, key=lambda r: float(r["gof_p"]))
    expected = [
        f"Summary of {quick_run}",
        "nominal",
        "  demo (5 masses)",
        f"    most significant: {float(best['mass_GeV']) * 1e3:g} MeV, Z_local "
        f"{float(best['Z_local']):.2f}, Z_global {float(best['Z_global']):.2f} (Sidak; "
        "limit.global_toys for the toys' number)",
        f"    eps^2 limits: strongest {float(strong['eps2_up']):.3g} at "
        f"{float(strong['mass_GeV']) * 1e3:g} MeV, weakest {float(weak['eps2_up']):.3g} at "
        f"{float(weak['mass_GeV']) * 1e3:g} MeV",
        "    flagged: 0; GP fits not converged: 0",
        f"    smallest GOF p-value: {float(gof['gof_p']):.3g} at "
        f"{float(gof['mass_GeV']) * 1e3:g} MeV",
        f"  tables: {quick_run / 'nominal'}/ (scan.csv)",
    ]
    assert printed.strip().splitlines()[-len(expected) :] == expected
    code, out, _ = cli("summary", quick_run)
    assert code == 0 and out.strip().splitlines() == expected


def test_summary_reads_flags_toy_global_z_and_gof_when_present():
    """Columns other steps may add (toy-based global Z, goodness of fit, flag reasons)."""
    base = {"dataset": "2015", "gp_converged": "true", "status": "ok", "Z_global": "0.5"}
    rows = [
        {
            **base,
            "mass_GeV": "0.03",
            "Z_local": "1.0",
            "eps2_up": "1e-6",
            "gof_p": "0.4",
            "Z_global_toys": "0.1",
            "p0_global_toys": "0.46",
        },
        {
            **base,
            "mass_GeV": "0.04",
            "Z_local": "2.5",
            "eps2_up": "3e-6",
            "gof_p": "0.01",
            "Z_global_toys": "0.9",
            "p0_global_toys": "0.18",
            "p0_global_toys_err": "0.012",
        },
        {
            **base,
            "mass_GeV": "0.05",
            "Z_local": "nan",
            "eps2_up": "nan",
            "gof_p": "",
            "gp_converged": "false",
            "status": "fit failed: singular",
        },
        {
            **base,
            "mass_GeV": "0.06",
            "Z_local": "3.2",  # the largest, but flagged: not the most significant
            "eps2_up": "2e-7",  # the strongest limit, but flagged: not the strongest
            "gof_p": "0.7",
            "gp_converged": "false",
            "status": "flag_gof",
        },
        {**base, "dataset": "combined", "mass_GeV": "0.06", "Z_local": "0", "eps2_up": "5e-7"},
    ]
    s, c = summarize_scan(rows)
    assert (s.dataset, s.n_masses, c.dataset, c.n_masses) == ("2015", 4, "combined", 1)
    assert (s.most_significant.mass, s.most_significant.value) == (0.04, 2.5)
    assert (s.Z_global_toys, s.p0_global_toys) == (0.9, 0.18)
    assert (s.weakest.mass, s.strongest.mass) == (0.04, 0.03)
    # a failure has no numbers; a flag has numbers that failed a quality check
    assert s.n_failed == 1 and s.failures == {"fit failed: singular": 1}
    assert s.n_flagged == 1 and s.flags == {"flag_gof": 1}
    # the flagged row's: the failed row (no numbers, no fit) counts as failed only
    assert s.not_converged == [0.06]
    assert (s.worst_gof.mass, s.worst_gof.value) == (0.04, 0.01)
    assert c.Z_global_toys is None and c.worst_gof is None
    assert dataset_lines(s)[1] == (
        "most significant: 40 MeV, Z_local 2.50, Z_global 0.50, Z_global (toys) 0.90 "
        "(p0 0.18 +- 0.012)"
    )


def test_summary_counts_the_fit_of_a_row_whose_observed_toy_limit_alone_failed():
    """A review: the summary said a row whose observed toy limit alone was unresolved kept
    its fit, yet left that fit out of the smallest GOF p-value and the non-converged count
    (scan.csv and the gp_hyper figure showed 0.0072 at 30 MeV; the summary 0.0122 at 45)."""
    base = {"dataset": "demo", "gp_converged": "true", "status": "ok", "Z_local": "0.5"}
    rows = [
        {**base, "mass_GeV": "0.045", "gof_p": "0.0122", "eps2_up": "1e-6"},
        {
            **base,
            "mass_GeV": "0.03",
            "gof_p": "0.0072",
            "gp_converged": "false",
            "eps2_up": "nan",
            "status": "limit failed: observed toy limit unresolved: 3 of 300 toys ...",
        },
        {**base, "mass_GeV": "0.06", "gof_p": "", "status": "fit failed: singular"},
    ]
    (s,) = summarize_scan(rows)
    assert (s.worst_gof.mass, s.worst_gof.value) == (0.03, 0.0072)
    assert s.not_converged == [0.03]


def test_summary_gives_the_toy_limits_monte_carlo_error():
    """Toy limits: the median and largest relative Monte Carlo error of the ok rows (a
    flagged row's is left out, as its limit is), and how many ok limits have none;
    asymptotic limits (NaN errors) get no such line."""
    base = {"dataset": "2015", "gp_converged": "true", "status": "ok", "Z_local": "0.5"}
    rows = [
        {**base, "mass_GeV": "0.03", "eps2_up": "1e-6", "eps2_up_err": "2e-8"},
        {**base, "mass_GeV": "0.04", "eps2_up": "2e-6", "eps2_up_err": "1e-7"},
        {**base, "mass_GeV": "0.05", "eps2_up": "4e-6", "eps2_up_err": "1.2e-7"},
        {**base, "mass_GeV": "0.06", "eps2_up": "4e-6", "eps2_up_err": "nan"},
        {
            **base,
            "mass_GeV": "0.07",
            "eps2_up": "1e-6",
            "eps2_up_err": "5e-7",
            "status": "flag_gof",
        },
    ]
    (s,) = summarize_scan(rows)
    assert s.toy_error_median == pytest.approx(0.03)
    assert (s.toy_error_largest.mass, s.toy_error_missing) == (0.04, 1)
    assert s.toy_error_largest.value == pytest.approx(0.05)
    assert (
        "toy limits' Monte Carlo error (eps2_up_err): median 3.0%, largest 5.0% at 40 MeV "
        "(more toys: limit.n_toys); 1 ok limits without an estimate (NaN: limit 0 or no "
        "slope of CLs there)"
    ) in dataset_lines(s)
    asym = [{**r, "eps2_up_err": "nan"} for r in rows]
    (s,) = summarize_scan(asym)
    assert s.toy_error_median is None
    assert not [x for x in dataset_lines(s) if "Monte Carlo" in x]


def test_summary_says_where_a_toy_limits_error_was_not_checked():
    """Deficits deeper than A_hat/sigma_A = -2.1 (the deepest the study of the error against
    the spread between seeds checked; it found it 1.6x too small at -2.6): named as runs
    of masses; a deficit of -2.1 or -1.9, an excess, a flagged row and an asymptotic limit
    are not."""
    base = {"dataset": "2015", "gp_converged": "true", "status": "ok", "Z_local": "0.5"}

    def row(mass: str, a_hat: str, err: str = "2e-8", **kw: str) -> dict[str, str]:
        return {
            **base,
            "mass_GeV": mass,
            "A_hat": a_hat,
            "sigma_A": "10",
            "eps2_up": "1e-6",
            "eps2_up_err": err,
            **kw,
        }

    rows = [
        row("0.055", "-21"),
        row("0.056", "-22"),
        row("0.057", "-19"),
        row("0.108", "-23"),
        row("0.109", "-26"),
        row("0.11", "-26.2"),
        row("0.111", "-30", status="flag_gof"),
        row("0.112", "-25", err="nan"),
        row("0.125", "26.6"),
    ]
    (s,) = summarize_scan(rows)
    assert s.toy_error_unchecked == [[0.056], [0.108, 0.109, 0.11]]
    (line,) = [x for x in dataset_lines(s) if "Monte Carlo" in x]
    assert line.endswith(
        "; 4 at deficits deeper than A_hat/sigma_A = -2.1 (56 MeV, 3 masses at 108-110 MeV): "
        "not checked there against the spread between seeds; may be too small, as at -2.6 "
        "(1.6x)"
    ), line
    (s,) = summarize_scan([row("0.056", "-21"), row("0.06", "5")])
    assert s.toy_error_unchecked == []
    assert "deficits deeper" not in " ".join(dataset_lines(s))
    # limits from fewer toys than the error was checked with: said of them all, once
    (s,) = summarize_scan(rows, n_toys=500)
    assert s.toy_error_few_toys == 500 and s.toy_error_unchecked == []
    (line,) = [x for x in dataset_lines(s) if "Monte Carlo" in x]
    assert line.endswith(
        "; from 500 toys each, fewer than the 1000 it was checked with: with 500, 200 and 100 "
        "toys the errors were found up to 1.3x, 1.4x and 1.5x too small, and the limits 2%, "
        "10% and 17% high"
    ), line
    (s,) = summarize_scan(rows, n_toys=1000)
    assert s.toy_error_few_toys is None and len(s.toy_error_unchecked) == 2
    asym = [{**r, "eps2_up_err": "nan"} for r in rows]
    (s,) = summarize_scan(asym, n_toys=500)  # asymptotic limits: no Monte Carlo error
    assert s.toy_error_few_toys is None


def test_summary_of_an_injection_study_gives_its_closure():
    """After an injection run the summary gives the closure of inject.csv (it showed the
    scan only): the ranges over masses and strengths of pull mean and width and of the
    coverages, next to their targets."""
    from gprpipe.results.summary import injection_lines, summarize_injection

    rows = [
        {
            "dataset": "2015",
            "mass_GeV": m,
            "z_inj": z,
            "n_kept": n,
            "n_generated": "200",
            "pull_mean": pm,
            "pull_width": pw,
            "cov_1sigma": c1,
            "cov_2sigma": c2,
        }
        for m, z, n, pm, pw, c1, c2 in (
            ("0.06", "0", "200", "-0.05", "0.97", "0.69", "0.955"),
            ("0.06", "3", "198", "0.08", "1.05", "0.655", "0.94"),
            ("0.08", "0", "200", "0.01", "1.01", "0.71", "0.96"),
            ("0.08", "3", "0", "nan", "nan", "nan", "nan"),  # no converged toy
        )
    ]
    (s,) = summarize_injection(rows)
    assert (s.n_masses, s.n_strengths, s.n_kept, s.n_generated) == (2, 2, (0, 200), 200)
    assert injection_lines(s) == [
        "injection 2015 (2 masses x 2 strengths, 0-200 of 200 toys kept each)",
        "pull mean -0.05 to 0.08, width 0.97 to 1.05; coverage of +-1 sigma_A 0.655 to 0.710 "
        "(0.683), +-2 0.940 to 0.960 (0.954)",
        "too few toys kept for a closure at 80 MeV z=3 (0 of 200): their fits failed or did "
        "not converge (per toy in inject.h5)",
    ]
    # with the pull means' errors (pull_width / sqrt(n_kept)): the row furthest from 0 in
    # errors, which the ranges alone hid (a review: -0.363 +- 0.072 at 30 MeV, 5 errors)
    for r in rows:
        n, w = float(r["n_kept"]), float(r["pull_width"])
        r["pull_mean_err"] = str(w / np.sqrt(n)) if n > 1 else "nan"
    (s,) = summarize_injection(rows)
    assert injection_lines(s)[2] == (
        "pull mean furthest from 0: +0.080 +- 0.075 at 60 MeV z=3 (1.1 standard errors; "
        "pull_mean_err in inject.csv)"
    )
    # a row of 2 toys: its width gives no error worth quoting (it said "8.4 standard
    # errors" of +0.770 from a width of 0.13: a review)
    rows[0] |= {"n_kept": "2", "pull_mean": "0.770", "pull_width": "0.13",
                "pull_mean_err": str(0.13 / np.sqrt(2))}  # fmt: skip
    (s,) = summarize_injection(rows)
    lines = injection_lines(s)
    assert lines[2] == (
        "pull mean furthest from 0: +0.080 +- 0.075 at 60 MeV z=3 (1.1 standard errors; "
        "pull_mean_err in inject.csv)"
    )
    assert lines[3] == (
        "fewer than 10 toys kept at 60 MeV z=0 (2 of 200): no error of their pull means is "
        "quoted (raise inject.n_toys)"
    )


def test_toys_biased_at_the_most_significant_mass_at_a_fraction_of_0_or_1():
    """A fraction of exactly 0 or 1 (every toy one side) is the strongest flag: the
    summary says so with a bound (it printed nothing while the report and TUI named it)."""
    from gprpipe.results.summary import DatasetSummary, Extreme

    s = DatasetSummary("2015", 1, most_significant=Extreme(0.124, 2.7))
    s.frac_Z0_toys, s.frac_Z0_toys_err = 1.0, 0.5 / np.sqrt(100)
    assert s.toys_bias_note == "toys biased here: P(Z_local = 0) 1.000"
    assert s.toys_bias_text.startswith(
        "the toys' P(Z_local = 0) there is 1.000 (0.5 +- 0.05 for unbiased toys): the "
        "window's fit puts the toys' background more than 2.58 sigma_A above their mean"
    ), s.toys_bias_text  # from half a toy of 100: Phi^-1(0.995) = 2.58
    s.frac_Z0_toys = 0.45  # 1 error from 0.5: nothing said
    assert s.toys_bias_note == s.toys_bias_text == ""


def test_summary_of_a_blinded_scan_says_so_and_gives_the_expected_limits():
    rows = [
        {"dataset": "2015", "mass_GeV": m, "eps2_exp_med": e, "status": st, "blinded": "true"}
        for m, e, st in (
            ("0.03", "2e-6", "ok"),
            ("0.04", "1e-6", "ok"),
            ("0.05", "1e-8", "flag_gof"),
        )
    ]
    (s,) = summarize_scan(rows)
    assert s.blinded and s.most_significant is None
    assert dataset_lines(s)[:2] == [
        "2015 (3 masses, BLINDED)",
        "expected (median) eps^2 limits: strongest 1e-06 at 40 MeV, weakest 2e-06 at 30 MeV",
    ]


def test_summary_of_a_failed_run_lists_the_failure(tmp_path: Path):
    """A task killed while it ran (the fault hook SIGKILLs the load task right after it
    wrote load.h5): the summary says so and how to finish the run. (A data file that does
    not exist is refused before the run starts: see the parametrized cases above.)"""
    run_dir = tmp_path / "run"

    def killed_after(steps: str, written: str) -> str:
        """Run ``steps`` with the task that writes ``written`` killed right after; stdout."""
        one_mass = settings(f"base.output={run_dir}", "scan.masses=[0.06]")
        code, out, _ = run_cli_here(
            "run", QUICKSTART, "--steps", steps, *one_mass, env={CRASH_AFTER: written}
        )
        assert code == 1
        return out

    out = killed_after("load", "load.h5")
    assert "Results in" not in out and "The run is incomplete" in out
    lines = summary_lines(run_summary(run_dir))
    assert lines[1:] == [
        "nominal",
        "  no scan results (the scan did not finish)",
        "  failed tasks: 1",
        "    nominal/load: the task's process was killed (SIGKILL: out of memory, or killed "
        "by hand)",
        "To finish the run (once any cause above is fixed): gprpipe rerun "
        f"{run_dir.resolve()} --failed (it keeps the config the run recorded; after fixing "
        "the config file, run it again instead)",
    ]
    # a fit chunk killed: scan.csv is missing because a task it needs failed (it said its
    # own task, the limit merge, had failed; that one never ran)
    killed_after("load,fit,limit", "demo-000.h5")
    lines = summary_lines(run_summary(run_dir))
    assert (
        f"  not summarised: {run_dir.resolve()}/nominal/scan.csv: not there (a task it needs "
        "failed, see below)." in lines
    ), lines


# ---------------------------------------------------------------- 3. progress and Ctrl-C


def test_progress_within_tasks_is_seen_while_they_run(tmp_path: Path):
    """The real fit of 16 masses records its progress; the executor's ticks see it move.
    (40 optimiser restarts keep the fit task running over several ticks, 0.5 s apart, on a
    fast machine too: with 2 it ended between two ticks. The first mass starts cold and
    optimises from every start; later ones start warm and try the others only when the
    warm fit looks suspicious, so most of the time is spent on the first mass.)"""
    from gprpipe.config import load_points
    from gprpipe.engines import get_engine
    from gprpipe.executors.local import run_local
    from gprpipe.pipeline.state import progress_text, read_progress
    from gprpipe.pipeline.store import plan_points, write_point_configs

    run_dir = tmp_path / "run"
    masses = [round(0.030 + 0.002 * k, 3) for k in range(16)]
    _, points = load_points(
        QUICKSTART,
        [
            f"base.output={run_dir}",
            'steps.run=["load", "fit"]',
            f"scan.masses={masses}",
            "fit.n_restarts=40",
        ],
    )
    write_point_configs(run_dir, points)
    tasks = plan_points(run_dir, points)
    seen: list[tuple[str, int, int, str]] = []

    def tick(running) -> None:
        for t in running:
            rec = read_progress(t.point_dir, t.slug)
            if rec:
                seen.append((t.id, rec["done"], rec["total"], progress_text(rec)))

    report = run_local(
        tasks,
        {p.name: p.config for p in points},
        get_engine("local"),
        run_dir=run_dir,
        jobs=1,
        on_tick=tick,
    )
    assert report.ok
    fit = [s for s in seen if s[0] == "nominal/fit/demo-000"]
    assert fit, seen
    assert all(total == 16 for _, _, total, _ in fit)
    done = [d for _, d, _, _ in fit]
    # never backwards; how many distinct counts the ticks catch depends on the machine's speed
    # (the 16 fits can finish between two ticks), so "it moved" is not asserted here
    assert done == sorted(done)
    eta = r"([\d.]+ s|\d+ min \d\d s)"  # fmt_duration: "4.2 s", "1 min 05 s"
    assert re.fullmatch(rf"\d+/16 masses(, [\d.e+]+/s, ETA {eta})?", fit[-1][3])
    # finished tasks leave no progress record
    assert not list((run_dir / "nominal" / ".state").glob("*.progress"))


def test_ctrl_c_while_the_command_line_starts_says_interrupted(monkeypatch, capsys):
    """Ctrl-C while the command line is imported (its first half second) printed a
    traceback of about 25 lines: it says "interrupted" and exits 130."""
    import gprpipe.__main__ as entry
    from gprpipe.executors import forkserver

    def ctrl_c(argv: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(forkserver, "prestart", ctrl_c)
    monkeypatch.setattr("sys.argv", ["gprpipe", "run", "user_configs/quickstart.toml"])
    try:
        entry.main()
    except SystemExit as stop:
        assert stop.code == 130
    except KeyboardInterrupt:  # (not let through: it would end the test session)
        pytest.fail("Ctrl-C went through as a traceback")
    else:
        pytest.fail("no exit")
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path: Path):
    run_dir = tmp_path / "run"
    # (--points, --force and --unblind were dropped from the resume line, or it said the
    # refused --set base.blind=false: a review)
    args = ["run", str(QUICKSTART), "-j", "1", "--points", "0", "--unblind", "--force"]
    args += ["--set", f"base.output={run_dir}"]
    proc = start_cli_subprocess(*args, cwd=tmp_path)  # SIGINT as from a terminal
    load_done = run_dir / "nominal" / ".state" / "load.done"
    deadline = time.monotonic() + 120
    while not load_done.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    m = re.search(
        r"interrupted: (\d+) finished tasks? kept in (\S+) \(a new run skips them\); "
        r"(\d+) not finished \(stopped or not started\)\. Resume with: (.*)$",
        err,
        re.M,
    )
    assert m, err
    assert int(m.group(1)) >= 1 and Path(m.group(2)) == run_dir
    assert m.group(4) == (
        f"gprpipe run {QUICKSTART} -j 1 --points 0 --unblind --set base.output={run_dir} "
        "(without --force: the tasks not finished reuse their earlier outputs where those are "
        "up to date; with it every task runs again)"
    )  # (with --force it redid the tasks it says are kept: the own-diff review)
    # summary exits 1: the scan it was asked for is not there (it exited 0 when the fit
    # tasks had not started, 1 when one was stopped; a review)
    code, out, _ = run_cli_here("summary", run_dir)
    assert (
        code == 1 and f"  not summarised: {run_dir.resolve()}/nominal/scan.csv: not there (" in out
    )
    # resuming does not redo the kept load task
    code, out, _ = run_cli_here(
        "run", QUICKSTART, "--steps", "load", "--set", f"base.output={run_dir}"
    )
    assert code == 0 and "Nothing to do" in out


def test_ctrl_c_while_the_figures_are_drawn(tmp_path: Path):
    """Ctrl-C from a terminal (SIGINT to the whole process group) while the plot task's
    forked figure workers draw: the run stops with exit code 130 and leaves no process
    behind (the figure workers held the task's answer pipe open: the run waited forever)."""
    run_dir = tmp_path / "run"
    args = ["run", str(QUICKSTART), "--set", f"base.output={run_dir}"]
    proc = start_cli_subprocess(*args, cwd=tmp_path, session=True)
    state = run_dir / "nominal" / ".state"
    deadline = time.monotonic() + 120
    while not (state / "plot.running").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # the figure workers are forked and drawing
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: 5 finished tasks kept in " in err
    deadline = time.monotonic() + 10
    while left := group_members(proc.pid):  # the fork server ends with its socket
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.1)
    # no half-written file either: every writer removed its temporary file
    assert sorted(p.name for p in run_dir.rglob("*.tmp")) == []


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


# ---------------------------------------------------------------- 4. masses: one convention


def test_parse_mass_accepts_units_and_refuses_ambiguous_values():
    assert parse_mass("60MeV", "--m") == pytest.approx(0.06)
    assert parse_mass("60 mev", "--m") == pytest.approx(0.06)
    assert parse_mass("0.06GeV", "--m") == 0.06 and parse_mass("0.06", "--m") == 0.06
    assert parse_masses("37,48MeV", "--m") == pytest.approx([0.037, 0.048])
    assert parse_masses("0.037GeV, 48MeV", "--m") == pytest.approx([0.037, 0.048])
    with pytest.raises(
        GprpipeError,
        match=r"^--m 60: masses are in GeV unless a unit is "
        r"given; did you mean 0\.060 GeV\? \(or write 60MeV\)$",
    ):
        parse_mass("60", "--m")
    with pytest.raises(GprpipeError, match="not a mass"):
        parse_mass("sixty", "--m")
    # a bare GeV-like value before a trailing MeV: 0.03 MeV, or 0.03 GeV? (it became 30 keV)
    with pytest.raises(GprpipeError, match=r"0\.03 would take the unit of the last mass \(MeV\)"):
        parse_masses("0.03,60MeV", "--m")
    # a bare 60 before a trailing GeV took 60 GeV (a review): refused as a bare 60 is
    with pytest.raises(GprpipeError, match=r"^--m 60: masses are in GeV unless a unit is given"):
        parse_masses("60,0.08GeV", "--m")
    assert parse_masses("0.06,0.08GeV", "--m") == pytest.approx([0.06, 0.08])
    with pytest.raises(GprpipeError, match="write the unit as MeV, GeV or keV"):
        parse_mass("60meV", "--m")  # milli-electronvolts, not MeV
    with pytest.raises(GprpipeError, match="not a finite mass"):
        parse_mass("1e400", "--m")
    # a value that is no mass in MeV either gets no "did you mean 1e+297 GeV?"
    with pytest.raises(
        GprpipeError,
        match=r"^--m 1e300: masses are in GeV unless a unit is given; write e\.g\. 0\.060 "
        r"or 60MeV\.$",
    ):
        parse_mass("1e300", "--m")


def test_mass_options_share_the_convention(quick_run: Path, cli, tmp_path: Path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("export-pyhf", quick_run, "--dataset", "demo", "--mass", "60MeV", "-o", a)[0] == 0
    assert cli("export-pyhf", quick_run, "--dataset", "demo", "--mass", "0.06", "-o", b)[0] == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    code, _, err = cli("export-pyhf", quick_run, "--dataset", "demo", "--mass", "60")
    assert code == 1 and "did you mean 0.060 GeV?" in err
    code, _, err = cli("rerun", quick_run, "--masses", "0.06")  # GeV: the owner is found
    assert code == 0, err
    assert "Rerunning" in cli("rerun", quick_run, "--masses", "60MeV")[1]
    # demo-data: outside the histogram is refused, units as everywhere
    code, _, err = cli(
        "demo-data", tmp_path / "d.root", "--signal-mass", "200MeV", "--signal-yield", "100"
    )
    assert code == 1 and err.strip() == (
        "error: --signal-mass 200MeV: 0.2 GeV (200 MeV) lies outside the demo histogram "
        "(0-0.15 GeV)."
    )
    assert not (tmp_path / "d.root").exists()
    code, _, err = cli("demo-data", tmp_path / "d.root", "--signal-mass", "60")
    assert code == 1 and "did you mean 0.060 GeV?" in err
    # a signal mass alone wrote a background-only spectrum without a word (a review)
    code, _, err = cli("demo-data", tmp_path / "d.root", "--signal-mass", "60MeV")
    assert code == 1 and err.strip() == (
        "error: --signal-mass 60MeV needs --signal-yield (the signal events, > 0)."
    )
    assert not (tmp_path / "d.root").exists()


# ---------------------------------------------------------------- 5. compare


def test_compare_two_grid_points(grid_run: Path, cli):
    code, out, err = cli("compare", grid_run)
    assert code == 0, err
    folder = grid_run / "compare"
    assert (folder / "compare_eps2_demo.png").stat().st_size > 10_000
    a = {
        round(float(r["mass_GeV"]), 6): r
        for r in rows_of(grid_run / "blind_nsigma-1.64" / "scan.csv")
    }
    b = {
        round(float(r["mass_GeV"]), 6): r
        for r in rows_of(grid_run / "blind_nsigma-1.96" / "scan.csv")
    }
    table = rows_of(folder / "compare_demo.csv")
    assert [round(float(r["mass_GeV"]), 6) for r in table] == [0.04, 0.06, 0.09]
    for r in table:
        m = round(float(r["mass_GeV"]), 6)
        assert float(r["ratio_observed"]) == pytest.approx(
            float(b[m]["eps2_up"]) / float(a[m]["eps2_up"]), rel=1e-5
        )
        assert float(r["ratio_expected"]) == pytest.approx(
            float(b[m]["eps2_exp_med"]) / float(a[m]["eps2_exp_med"]), rel=1e-5
        )
    ratios = [float(r["ratio_expected"]) for r in table]
    assert f"{np.median(ratios):.3f}" in out and "blind_nsigma-1.96" in out
    assert all(0.5 < x < 2 for x in ratios) and any(abs(x - 1) > 1e-3 for x in ratios)
    # a format given twice is drawn and listed once (it was listed twice, a review)
    code, out, err = cli("compare", grid_run, "--formats", "png,png")
    assert code == 0, err
    assert out.count("compare_eps2_demo.png") == 1, out


def test_compare_says_a_damaged_limit_file_beside_an_intact_table(grid_run: Path, tmp_path, cli):
    """compare reads scan.csv (intact, compared) but said nothing of a damaged limit.h5
    beside it, which status and summary report (a review): a notice names it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(grid_run, run, symlinks=True)
    code, out, err = cli("compare", run)
    assert code == 0 and "notice" not in out, out + err
    limit = run / "blind_nsigma-1.96" / "limit.h5"
    limit.write_bytes(limit.read_bytes()[:-1] + b"x")
    code, out, err = cli("compare", run, "--force")
    assert code == 0, err
    assert (
        f"notice: {limit} differs from what its task blind_nsigma-1.96/limit/merge wrote; "
        "its scan.csv is intact and compared (run the point again to recompute limit.h5)."
    ) in " ".join(out.split()), out


def test_compare_of_a_folder_named_with_broken_math(grid_run: Path, tmp_path, cli):
    """A point folder named ``m$\\frac{$x`` labels its curves: compare failed with
    "internal error: ValueError" and left a record of files it never wrote (an input
    audit). The label is drawn as written."""
    import shutil

    odd = tmp_path / "m$\\frac{$x"
    shutil.copytree(grid_run / "blind_nsigma-1.96", odd, symlinks=True)
    code, out, err = cli("compare", grid_run / "blind_nsigma-1.64", odd, "-o", tmp_path / "c")
    assert code == 0, out + err
    assert (tmp_path / "c" / "compare_eps2_demo.png").stat().st_size > 10_000


def test_a_compare_that_cannot_write_its_table_leaves_no_figure(grid_run: Path, tmp_path, cli):
    """A folder in place of compare_demo.csv: one sentence, and nothing written (the
    figure was left behind beside the failed table)."""
    out = tmp_path / "cmp"
    (out / "compare_demo.csv").mkdir(parents=True)
    code, stdout, err = cli("compare", grid_run, "-o", out)
    assert (code, stdout) == (1, "")
    assert err.strip() == f"error: {out / 'compare_demo.csv'}: is a folder, not a file to write."
    assert [p.name for p in out.iterdir()] == ["compare_demo.csv"]


def test_compare_never_writes_through_a_linked_compare_folder(grid_run: Path, tmp_path, cli):
    """``RUN/compare`` a link to a folder outside the run: refused like the exports' and
    reach folders, also when -o names it (a folder outside every run, given with -o, is
    the user's choice)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(grid_run, run, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run / "compare", ignore_errors=True)
    (run / "compare").symlink_to(outside)
    code, out, err = cli("compare", run)
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: {run / 'compare'}: the comparison folder resolves to {outside}, outside the "
        f"run directory {run}; remove the link, or choose another base.output."
    )
    assert list(outside.iterdir()) == []
    # nor when -o names the link (it wrote outside, past the blinded-run check: a review)
    code, out, err = cli("compare", run, "-o", run / "compare")
    assert (code, out) == (1, "") and err.strip() == (
        f"error: -o {run / 'compare'}: resolves to {outside}, outside the run directory {run} "
        "it lies in; remove the link, or write the comparison elsewhere (-o)."
    )
    assert list(outside.iterdir()) == []
    code, _, err = cli("compare", run, "-o", outside)
    assert code == 0 and (outside / "compare_demo.csv").is_file(), err


def test_compare_writes_into_a_run_only_in_its_compare_folder(grid_run: Path, tmp_path, cli):
    """``-o`` into a point's plots/ put the comparison among the run's own figures (the
    point's report shows every PNG there; a fuzzing audit): refused, as anywhere in a run
    but its compare/ folder."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(grid_run, run, symlinks=True)
    for target in (run / "blind_nsigma-1.64" / "plots", run, run / "other"):
        code, out, err = cli("compare", run, "-o", target)
        assert (code, out) == (1, "") and err.strip() == (
            f"error: -o {target}: leads inside the run directory {run}, among its own "
            f"files; write the comparison to {run / 'compare'} or outside any run directory "
            "(-o)."
        )
    assert not (run / "other").exists()
    assert not list((run / "blind_nsigma-1.64" / "plots").glob("compare*"))
    code, _, err = cli("compare", run, "-o", run / "compare" / "again")
    assert code == 0 and (run / "compare" / "again" / "compare_demo.csv").is_file(), err
    # the default folder a link among the run's files: refused, and said to be the default
    shutil.rmtree(run / "compare")
    (run / "compare").symlink_to(run / "blind_nsigma-1.64" / "plots")
    code, _, err = cli("compare", run)
    assert code == 1 and err.startswith(f"error: {run / 'compare'} (the comparison folder): ")


def test_compare_needs_two_points(quick_run: Path, cli):
    code, _, err = cli("compare", quick_run)
    assert code == 1 and "compare needs two or more points" in err
    # the same run twice (as a run and as its point) compared one curve with itself
    code, _, err = cli("compare", quick_run, quick_run / "nominal")
    assert code == 1 and err.strip() == (
        f"error: {quick_run / 'nominal'}: this point is given twice; compare distinct points."
    )


# ---------------------------------------------------------------- 6. init and portable configs


@pytest.mark.parametrize("year", [2015, 2016, 2021])
def test_the_masses_init_offers_validate_once_uncommented(
    shared_data: Path, tmp_path, monkeypatch, cli, year
):
    """The first edit a newcomer makes: init wrote '# masses = [0.030, ...]' for every
    template, and 30 MeV lies outside the 2016 range (validate refused it; a review)."""
    data = shared_data / f"funcform_{year}_toys.root"
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "a.toml"
    code, _, err = cli("init", "a", "--template", f"hps{year}", "--data", data)
    assert code == 0, err
    text = cfg.read_text()
    assert text.count("# masses = [") == 1
    cfg.write_text(text.replace("# masses = [", "masses = ["))
    code, out, err = cli("validate", cfg)
    assert code == 0 and "valid (1 point" in out, err


def test_init_writes_a_ready_config_that_works_from_anywhere(tmp_path: Path, monkeypatch, cli):
    work = tmp_path / "analysis"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, _ = cli("init", "mine", "--template", "hps2015")
    assert code == 0 and "Next: gprpipe validate mine.toml && gprpipe run mine.toml" in out
    text = (work / "mine.toml").read_text()
    assert 'template = "hps2015"' in text and text.count("#") >= 8
    # the demo spectrum's figures do not say "HPS 2015"
    code, out, _ = cli("render", work / "mine.toml", "--format", "json")
    assert json.loads(out)["datasets"]["2015"]["label"] == "Demo (synthetic)"
    # no demo fits the 2016 range: the path is to be set first, and the next step says so
    code, out, _ = cli("init", "y16", "--template", "hps2016")
    assert code == 0 and "Next: set each dataset's path in y16.toml, then gprpipe" in out
    monkeypatch.chdir(tmp_path)  # validate from another folder
    code, out, err = cli("validate", work / "mine.toml")
    assert code == 0, err
    assert "valid (1 point, 18 tasks" in out
    monkeypatch.chdir(work)
    code, _, err = cli("init", "mine")
    assert code == 1 and "mine.toml: already exists" in err
    code, _, err = cli("init", "x", "--template", "hps215")
    assert code == 1 and err.strip() == (
        "error: --template 'hps215': not a shipped template (hps2015, "
        "hps2015_2016_2021_combined, hps2015_2016_combined, hps2016, hps2021); did you mean "
        "'hps2015'?"
    )
    # the hint of a config's base.template (a review: init offered one of two)
    code, _, err = cli("init", "x", "--template", "hps2051")
    assert code == 1 and "did you mean 'hps2015' or 'hps2021'?" in err
    code, _, err = cli("init", "x", "--template", "hps2015_combined")  # five edits away
    assert code == 1 and err.strip().endswith("did you mean 'hps2015_2016_combined'?")
    # one file for every dataset of a combination combined a spectrum with itself (a
    # review): refused; one file per dataset instead
    code, _, err = cli(
        "init", "both", "--template", "hps2015_2016_combined", "--data", str(DEMO_ROOT)
    )
    assert code == 1 and err.strip() == (
        f"error: --data {DEMO_ROOT}: the template 'hps2015_2016_combined' has 2 datasets "
        "(2015, 2016), each with its own data file; give one per dataset: --data 2015=FILE "
        "--data 2016=FILE."
    )
    assert not (work / "both.toml").exists()
    code, _, err = cli(
        "init", "both", "--template", "hps2015_2016_combined", "--data", f"2016={DEMO_ROOT}"
    )
    assert code == 0, err
    text = (work / "both.toml").read_text()
    for data, why in (
        (
            ["2017=a.root"],
            "the template 'hps2015_2016_combined' has no dataset '2017' (it has 2015, 2016).",
        ),
        (["2015="], "no file given after '='."),
        (
            [f"2015={DEMO_ROOT}", f"2016={DEMO_ROOT}"],
            "the same file as another dataset; a "
            "combination of a spectrum with itself counts its events twice (give each its own "
            "data).",
        ),
    ):
        args = [x for d in data for x in ("--data", d)]
        code, _, err = cli("init", "c", "--template", "hps2015_2016_combined", *args)
        assert code == 1 and err.strip() == f"error: --data {data[-1]}: {why}", err
        assert not (work / "c.toml").exists()
    # a dataset a one-dataset template lacks: said so (it read as a file named
    # "2016=...": "no such file", for a file that is there; a review)
    code, _, err = cli("init", "c", "--template", "hps2015", "--data", f"2016={DEMO_ROOT}")
    assert code == 1 and err.strip() == (
        f"error: --data 2016={DEMO_ROOT}: the template 'hps2015' has no dataset '2016' (it "
        "has 2015)."
    )
    assert not (work / "c.toml").exists()
    # nor a key no dataset may have ("a.b" also read as a file name: "no such file")
    for key, why in (
        (
            "a.b",
            "'a.b' is not a valid dataset key (letters, digits, '_', '+' or '-', "
            "starting with a letter or digit); the template 'hps2015' has the dataset 2015.",
        ),
        ("my-data", "the template 'hps2015' has no dataset 'my-data' (it has 2015)."),
    ):
        code, _, err = cli("init", "c", "--template", "hps2015", "--data", f"{key}={DEMO_ROOT}")
        assert code == 1 and err.strip() == f"error: --data {key}={DEMO_ROOT}: {why}", err
    assert not (work / "c.toml").exists()
    section = {s.split("]", 1)[0]: s for s in text.split("[datasets.")[1:]}
    assert f'path = "{DEMO_ROOT}"' in section["2016"]
    assert 'path = "2015.root"   # set this: your ROOT file' in section["2015"]
    # a data file that is not there is refused at once, and nothing is written
    code, _, err = cli("init", "typo", "--data", "dat/hps2015.root")
    assert code == 1 and err.strip() == (
        "error: --data dat/hps2015.root: no such file; give your ROOT file, or leave --data "
        "out to start from the shipped demo spectrum."
    )
    assert not (work / "typo.toml").exists()
    (work / "dat").mkdir()
    shutil.copy(DEMO_ROOT, work / "dat" / "a.root")
    code, _, err = cli("init", "typo", "--data", "dat")  # the folder a newcomer is given
    assert code == 1 and err.strip() == (
        "error: --data dat: a folder; give one ROOT file in it (a.root), or leave --data "
        "out to start from the shipped demo spectrum."
    )
    odd = work / "dat" / "x\n[base]\nblind = false\n.root"  # a file name cannot add keys
    shutil.copy(DEMO_ROOT, odd)
    code, _, err = cli("init", "typo", "--data", str(odd))
    assert code == 1 and "a file name with control or invisible format characters" in err
    assert not (work / "typo.toml").exists()
    shutil.copy(DEMO_ROOT, work / "dat" / "{{ base.name }}.root")  # would render to typo.root
    code, _, err = cli("init", "typo", "--data", "dat/{{ base.name }}.root")
    assert code == 1 and err.strip() == (
        "error: --data 'dat/{{ base.name }}.root': a file name with Jinja2 delimiters ({{, {%, "
        "{#) would be rendered as a template in the config; rename the file."
    )
    (work / "empty").mkdir()
    code, _, err = cli("init", "typo", "--data", "empty")
    assert code == 1 and err.strip() == (
        "error: --data empty: a folder without ROOT files; give your ROOT file, or leave "
        "--data out to start from the shipped demo spectrum."
    )
    assert not (work / "typo.toml").exists()
    code, _, _ = cli("init", "fine", "--data", "dat/a.root")
    assert code == 0
    assert (
        (work / "fine.toml")
        .read_text()
        .startswith(
            "# fine: a gprpipe config (written by: gprpipe init fine --template hps2015 --data "
            "dat/a.root).\n"
        )
    )


def test_a_combination_of_a_spectrum_with_itself_is_refused(shared_data: Path, tmp_path: Path, cli):
    """The 2015 + 2016 combination given the 2016 histogram for both datasets ran, and its
    combined row counted each event twice (Z_local 1.80 from 1.34 and 1.25 at 80 MeV; a
    review): validate and run refuse it, naming the second dataset's path."""
    data = (shared_data / "funcform_2016_toys.root").resolve()  # (as the config holds it)
    args = [
        "--set",
        f"datasets.2015.path={data}",
        "--set",
        f"datasets.2016.path={data}",
        "--set",
        f"base.output={tmp_path / 'run'}",
    ]
    config = REPO / "user_configs" / "hps2015_2016_combined.toml"
    for command in ("validate", "run"):
        code, out, err = cli(command, config, *args)
        assert code == 1 and out == "", out
        assert err.strip() == (
            f"error: --set datasets.2016.path: {data} (input_hist) holds the same counts as "
            "datasets.2015: a combination (scan.combined) of a spectrum with itself counts "
            "its events twice; give each dataset its own data file."
        )
    assert not (tmp_path / "run").exists()
    code, _, err = cli("validate", config, *args, "--set", "scan.combined=false")
    assert code == 0, err


@pytest.mark.parametrize("name", SHIPPED_USER_CONFIGS)
def test_shipped_configs_work_when_copied_elsewhere(tmp_path: Path, cli, name: str):
    copy = tmp_path / name
    shutil.copy(REPO / "user_configs" / name, copy)
    assert "../" not in copy.read_text().split("[datasets", 1)[0]  # no relative template
    code, out, err = cli("render", copy, "--format", "json", "--set", f"base.output={tmp_path}")
    assert code == 0, err
    data = json.loads(out)
    if name == "quickstart.toml":
        assert data["datasets"]["demo"]["path"] == str(DEMO_ROOT)
        assert cli("validate", copy)[0] == 0


# ---------------------------------------------------------------- 9. the first impression


def test_quickstart_has_no_ineffective_keys():
    text = QUICKSTART.read_text()
    # band_toys has no effect with asymptotic bands, which the quickstart uses
    assert not re.search(r"^\s*band_toys\s*=", text, re.M)
    assert load_points(QUICKSTART)[1][0].config.limit.bands == "asymptotic"


def test_first_brazil_plot_is_inside_the_bands(quick_run: Path):
    """The shipped demo spectrum (seed chosen by benchmarks/pick_demo_seed.py's rule): the
    quickstart's observed limits lie within the expected 2 sigma band at every mass."""
    for r in rows_of(quick_run / "nominal" / "scan.csv"):
        assert float(r["A_exp_lo2"]) <= float(r["A_up"]) <= float(r["A_exp_hi2"]), r
        assert abs(float(r["A_hat"]) / float(r["sigma_A"])) < 2


# ---------------------------------------------------------------- 10. test hygiene


def test_tests_read_only_shipped_user_configs():
    """No test names a file of user_configs/ other than the shipped ones."""
    pattern = re.compile(
        r"REPO / \"user_configs\" / \"([\w.-]+\.toml)\"|"
        r"(?:cwd=REPO|CONFIG =).{0,200}?\"user_configs/([\w.-]+\.toml)\"",
        re.S,
    )
    named = {
        m.group(1) or m.group(2)
        for f in (REPO / "tests").glob("*.py")
        for m in pattern.finditer(f.read_text())
    }
    assert named and named <= set(SHIPPED_USER_CONFIGS), named - set(SHIPPED_USER_CONFIGS)


def test_snapshot_report_goes_outside_the_repository(request: pytest.FixtureRequest):
    report = getattr(request.config.option, "snapshot_report", None)
    if report is None:
        pytest.skip("pytest-textual-snapshot is not installed")
    assert Path(report).is_absolute() and not Path(report).resolve().is_relative_to(REPO)


# ---------------------------------------------------------------- the scripted walk-through


def test_readme_setup_commands_are_the_ones_the_walkthrough_and_ci_run():
    """The README opens with exactly two set-up commands: the walkthrough runs the first
    (install, quickstart) and ``.ci/run`` ends with the second (test extras, tests)."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None
    first, second = block.group(1).strip().splitlines()
    assert first == "pip install . && gprpipe run user_configs/quickstart.toml"
    walk = (REPO / "scripts" / "newcomer-walkthrough.sh").read_text().splitlines()
    assert "pip install --quiet ." in walk
    assert 'out="$(gprpipe run user_configs/quickstart.toml)"' in walk
    assert second in (REPO / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_newcomer_walkthrough(tmp_path: Path):
    """scripts/newcomer-walkthrough.sh in a fresh venv: the README's first command, init,
    validate of three classic mistakes, a run with its summary, compare of two points."""
    script = REPO / "scripts" / "newcomer-walkthrough.sh"
    assert os.access(script, os.X_OK)
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}  # the venv's install
    proc = subprocess.run(
        [str(script), str(tmp_path / "walk")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for step in (
        "install",
        "quickstart",
        "init",
        "mistake 1",
        "mistake 2",
        "mistake 3",
        "run",
        "summary",
        "compare",
    ):
        assert f"::: ok {step}" in out, out[-3000:]


def test_a_tasks_bar_shows_its_count_once(tmp_path: Path, monkeypatch):
    """On a terminal, a running task's bar showed its count twice: '5/16 5/16 masses, ...'
    (the bar's own column, then the progress text)."""
    import io

    from rich.console import Console

    import gprpipe.cli as cli_module
    from gprpipe.pipeline.state import write_progress
    from gprpipe.pipeline.task import Task

    screen = io.StringIO()
    monkeypatch.setattr(
        cli_module, "err", Console(file=screen, force_terminal=True, width=150, color_system=None)
    )
    point = tmp_path / "nominal"
    point.mkdir()
    task = Task(
        id="nominal/fit/demo-000",
        point="nominal",
        step="fit",
        point_dir=point,
        part="demo-000",
        argv=(),
    )
    write_progress(point, task.slug, 5, 16, "masses", time.time() - 1.0)
    bars = cli_module._Bars()
    bars.started([task], "local")
    bars.tick([task])
    bars.stopped()
    *_, line = (x for x in screen.getvalue().splitlines() if "nominal/fit/demo-000" in x)
    assert line.count("5/16") == 1 and "masses" in line, line


def test_summary_during_the_plot_task_says_the_figures_are_being_drawn(tmp_path: Path):
    """summary while a first run drew its figures said "not current: plots, HEPData (...
    run the config again, with the plot step, to redraw them)" (a newcomer review)."""
    from gprpipe.pipeline import service

    run_dir = tmp_path / "run"
    args = ["run", str(QUICKSTART), "-j", "1", "--set", f"base.output={run_dir}"]
    proc = start_cli_subprocess(*args, "--set", 'plot.formats=["png", "pdf", "svg"]')
    said = []
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if service.watch(run_dir).states.get("nominal/plot", ("",))[0] == "running":
            _, out, _ = run_cli_here("summary", run_dir)
            if service.watch(run_dir).states.get("nominal/plot", ("",))[0] == "running":
                said.append(out)  # (the plot task ran all along the summary)
        time.sleep(0.1)
    proc.communicate(timeout=60)
    assert proc.returncode == 0 and said
    for out in said:
        assert "run the config again" not in out, out
    assert any("being drawn: " in out and "(the plot task is running)" in out for out in said)
    # a second run of other settings: before its plot task starts, the figures of the
    # first are "to be drawn" (it said "run the config again": the whole-diff review)
    proc = start_cli_subprocess(*args, "--set", "fit.blind_nsigma=1.9")
    said = []
    while proc.poll() is None and time.monotonic() < deadline + 180:
        _, out, _ = run_cli_here("summary", run_dir)
        said.append(out)
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not [out for out in said if "run the config again" in out]
    assert any("to be drawn: " in out or "being drawn: " in out for out in said), said[-1]


def test_summary_while_a_run_starts_says_it_is_in_use(shared_quickstart: Path, tmp_path: Path):
    """A run of other settings writes its point configs, then run.json, then removes its
    plan's earlier 'done' markers one by one, all under the folder's lock. summary read
    between two of these said "changed since the run wrote it" (exit 1), or "run the
    config again" and "rerun --failed" of the run's own tasks (CI). Both moments, held
    here; once the lock is gone with the tasks not redone, it says so again."""
    import hashlib
    import threading

    from gprpipe.pipeline.lock import run_lock
    from gprpipe.pipeline.state import forget_done
    from gprpipe.pipeline.store import load_run_info, tasks_of_run, write_point_configs

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    sets = [f"base.output={run_dir}", 'plot.formats=["png"]', "fit.blind_nsigma=1.9"]
    _, points = load_points(QUICKSTART, sets)
    info = load_run_info(run_dir)
    point_cfg = run_dir / "nominal" / "config.toml"

    def record() -> None:  # run.json, as the run writes it just after the configs
        time.sleep(1.0)
        sha = hashlib.sha256(point_cfg.read_bytes()).hexdigest()
        info.data["grid"][0]["config_sha256"] = sha
        info.save()

    with run_lock(run_dir, command="gprpipe run"):
        write_point_configs(run_dir, points)
        later = threading.Thread(target=record)
        later.start()
        code, out, err = run_cli_here("summary", run_dir)
        later.join()
        assert code == 0 and "changed since" not in err, err
        assert "NOT CURRENT: the numbers below are of scan.csv" in out, out
        tasks, _ = tasks_of_run(load_run_info(run_dir))
        for t in tasks:  # the plot's 'done' marker is the last to go
            if t.step != "plot":
                forget_done(t.point_dir, t.slug)
        code, out, err = run_cli_here("summary", run_dir)
        assert code == 0, err
        assert (
            "  to be drawn: plots, HEPData, report (the plot task of the run going on now)" in out
        ), out
        assert "run the config again" not in out and "rerun" not in out, out
        assert "scan.csv (made with other settings or inputs than the point's config, or by " in out
        assert "an older gprpipe; the run going on recomputes those of its steps)" in out, out
        assert f"In use by gprpipe run (pid {os.getpid()} on host " in out
        assert f"the tasks not run yet are its to run (gprpipe status {run_dir} follows" in out
    code, out, err = run_cli_here("summary", run_dir)  # its run gone, the tasks not redone
    assert code == 0 and "In use" not in out, err
    assert "run the config again, with the plot step, to redraw them" in out, out
    assert f"To finish the run (once any cause above is fixed): gprpipe rerun {run_dir}" in out


def test_readers_while_a_run_rewrites_its_scan_say_so(shared_quickstart: Path, tmp_path: Path):
    """A run's merge task withdraws its commit record, writes scan.csv, then commits it;
    read in between, summary said "no task of this run has committed it ... run the point
    again" (exit 1), compare the same, and the exports failed or wrote their files and the
    reports beside the run (a race audit). With a run holding the folder, summary says the
    table is being computed (exit 0), compare to compare when the run has ended, and the
    exports refuse; a first run that has not written run.json yet is named, not called no
    run folder. Without the lock, the missing record is said as before."""
    from gprpipe.pipeline import store
    from gprpipe.pipeline.commit import clear_commit
    from gprpipe.pipeline.lock import run_lock
    from gprpipe.pipeline.state import clear_state, write_state
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    other = tmp_path / "other"
    shutil.copytree(shared_quickstart, other, symlinks=True)
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    merge = next(t for t in tasks if t.id == "nominal/limit/merge")
    scan = run_dir / "nominal" / "scan.csv"
    with run_lock(run_dir, command="gprpipe run"):
        write_state(merge.point_dir, merge.slug, "running")
        clear_commit(merge)
        code, out, err = run_cli_here("summary", run_dir)
        assert code == 0, out + err
        assert f"  being computed: {scan} (by the run going on; run summary again when" in out
        assert "run the point again" not in out and "To finish" not in out, out
        code, out, err = run_cli_here("compare", other, run_dir, "-o", tmp_path / "cmp")
        assert (
            code == 1
            and err.strip()
            == (
                f"error: {scan}: being rewritten by the run going on in {run_dir} (gprpipe run "
                f"(pid {os.getpid()} on host {socket.gethostname()} since "
            )
            + err.strip().split(" since ", 1)[1]
        ), err
        assert err.strip().endswith("): compare when it has ended."), err
        code, out, err = run_cli_here("export-spey", run_dir, "--dataset", "demo")
        assert code == 1 and f"error: {run_dir} is in use by gprpipe run (pid " in err, err
        assert err.strip().endswith(
            "): it would read results the run rewrites and write beside it; try again when "
            "it has ended."
        ), err
        assert not (run_dir / "nominal" / "exports" / "spey_demo.json").exists()
    clear_state(merge.point_dir, merge.slug)  # the run gone (killed), the record not back
    code, out, err = run_cli_here("summary", run_dir)
    assert code == 1 and f"  not summarised: {scan}: no task of this run has committed" in out

    first = tmp_path / "first"  # a first run: its lock taken, run.json not yet written
    with run_lock(first, command="gprpipe run"):
        store.WRITE_WAIT, wait = 0.5, store.WRITE_WAIT
        try:
            code, out, err = run_cli_here("summary", first)
        finally:
            store.WRITE_WAIT = wait
    assert code == 1 and err.strip() == (
        f"error: {first} is in use by gprpipe run (pid {os.getpid()} on host "
        f"{socket.gethostname()} since " + err.strip().split(" since ", 1)[1]
    )
    assert err.strip().endswith(", which has not written its run.json yet: try again in a moment.")
    code, out, err = run_cli_here("summary", first)
    assert code == 1 and "not a gprpipe run directory (no run.json)" in err, err


def test_a_lock_held_by_no_run_is_not_called_a_run_going_on(
    shared_quickstart: Path, tmp_path: Path
):
    """A folder whose run stopped before its merge, its lock held for a moment by
    `gprpipe status` (or a process that wrote no record): summary said its scan.csv was
    "being computed ... by the run going on", its figures "to be drawn", "the tasks not
    run yet are its to run", and left out the rerun (a review). Only a run's lock is
    said to be a run going on."""
    from gprpipe.pipeline.lock import run_lock
    from gprpipe.pipeline.state import clear_state
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    for t in tasks:
        if t.step in ("plot",) or t.id == "nominal/limit/merge":
            clear_state(t.point_dir, t.slug)
    (run_dir / "nominal" / "scan.csv").unlink()
    with run_lock(run_dir, command="gprpipe status"):
        code, out, err = run_cli_here("summary", run_dir)
    assert code == 1, out + err
    assert f"  not summarised: {run_dir / 'nominal' / 'scan.csv'}: not there (its task" in out
    assert "being computed" not in out and "to be drawn" not in out, out
    assert f"In use by gprpipe status (pid {os.getpid()} on host " in out
    assert "its to run" not in out, out
    assert f"To finish the run (once any cause above is fixed): gprpipe rerun {run_dir}" in out


def test_a_running_marker_nothing_confirms_is_no_table_being_computed(
    shared_quickstart: Path, tmp_path: Path
):
    """A copied folder whose merge task's marker says running on another host (or in a
    SLURM job of another folder), its scan.csv gone: summary said "being computed ... by
    the run going on" and exited 0 (a review); only a run holding the folder, a live
    process of this host or a SLURM job of its own jobs.json computes it."""
    import json as _json

    from gprpipe.pipeline.state import marker
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    merge = next(t for t in tasks if t.id == "nominal/limit/merge")
    for other in ("done", "failed"):
        marker(merge.point_dir, merge.slug, other).unlink(missing_ok=True)
    (merge.point_dir / ".state" / f"{merge.slug}.commit").unlink()
    (run_dir / "nominal" / "scan.csv").unlink()
    for elsewhere in ({"host": "node07"}, {"host": "node07", "slurm_job": "5989"}):
        info = {"state": "running", "time": time.time(), "pid": 4242, "message": ""}
        marker(merge.point_dir, merge.slug, "running").write_text(
            _json.dumps(info | elsewhere) + "\n"
        )
        code, out, err = run_cli_here("summary", run_dir)
        assert code == 1 and "being computed" not in out, out + err
        assert f"  not summarised: {run_dir / 'nominal' / 'scan.csv'}: not there (" in out


def test_a_task_redone_while_its_state_is_read_is_not_called_damaged(
    shared_quickstart: Path, tmp_path: Path
):
    """status and summary read a task's marker ('done'), then its commit record; a run
    that redid the task in between (its 'running' marker written, then the record
    withdrawn) made the record look removed by hand: "plot.commit is missing since the task
    finished; rerun --failed", and summary told the user to run the config again (CI). The
    marker is read again before a missing record counts as damage."""
    from gprpipe.pipeline.commit import with_damage
    from gprpipe.pipeline.state import write_state
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    tasks, _ = tasks_of_run(load_run_info(run_dir))
    plot = next(t for t in tasks if t.step == "plot")
    states = {t.id: ("done", "") for t in tasks}  # as read before the run redid the plot
    write_state(plot.point_dir, plot.slug, "running")
    (plot.point_dir / ".state" / "plot.commit").unlink()
    with_damage(tasks, states)
    assert states[plot.id] == ("running", "")
    assert {s for tid, s in states.items() if tid != plot.id} == {("done", "")}
    record = shared_quickstart / "nominal" / ".state" / "plot.commit"

    def redone_meanwhile(task) -> str:  # the record was missing; the redo ends meanwhile
        if task.id == plot.id:
            (plot.point_dir / ".state" / "plot.commit").write_text(record.read_text())
            write_state(plot.point_dir, plot.slug, "done", "1 s")
            return ".state/plot.commit is missing"
        return ""

    states = {t.id: ("done", "") for t in tasks}
    with_damage(tasks, states, redone_meanwhile)
    assert states[plot.id] == ("done", "1 s")
    (plot.point_dir / ".state" / "plot.commit").unlink()  # removed from a finished task
    states = {t.id: ("done", "") for t in tasks}
    with_damage(tasks, states)
    assert states[plot.id] == (
        "failed",
        ".state/plot.commit is missing since the task finished; rerun --failed redoes it",
    ), states[plot.id]


def test_the_watcher_forgets_what_it_found_of_a_task_being_redone(
    shared_quickstart: Path, tmp_path: Path, monkeypatch
):
    """The TUI's watcher keeps what it found of each finished task (re-checked every
    DAMAGE_PERIOD seconds): a poll that read the plot task 'done' just before a run redid
    it found its record missing, and once the redo had finished the watcher showed it
    "failed: .state/plot.commit is missing" until the period ended (a review). What it
    found of a task that is not done any more is forgotten."""
    from gprpipe.executors.base import TaskStatus
    from gprpipe.executors.local import LocalExecutor
    from gprpipe.pipeline import watch
    from gprpipe.pipeline.state import write_state

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    state = run_dir / "nominal" / ".state"
    record = (state / "plot.commit").read_text()
    watcher = watch.RunWatcher()
    assert watcher.poll(run_dir).all_done
    write_state(run_dir / "nominal", "plot", "running")  # a run redoes the plot task
    (state / "plot.commit").unlink()
    marked = LocalExecutor.poll_run

    def stale(run, tasks):  # read before the run marked the task running
        return {
            tid: TaskStatus(tid, "done", "", log=st.log) for tid, st in marked(run, tasks).items()
        }

    monkeypatch.setattr(LocalExecutor, "poll_run", classmethod(lambda cls, r, t: stale(r, t)))
    monkeypatch.setattr(watch, "DAMAGE_PERIOD", 0.0)  # this poll checks every task
    assert watcher.poll(run_dir).states["nominal/plot"] == ("running", "")
    monkeypatch.undo()
    (state / "plot.commit").write_text(record)  # the redo ends
    write_state(run_dir / "nominal", "plot", "done", "1 s")
    view = watcher.poll(run_dir)  # within the period
    assert view.states["nominal/plot"] == ("done", "1 s") and view.all_done
    # a damaged task redone whole between two polls (rerun --failed of a fast task: no
    # poll saw it running) was shown failed until the period ended (the whole-diff
    # review): its done marker written anew is checked at once
    (state / "plot.commit").unlink()
    monkeypatch.setattr(watch, "DAMAGE_PERIOD", 0.0)
    assert watcher.poll(run_dir).states["nominal/plot"][0] == "failed"
    monkeypatch.undo()
    write_state(run_dir / "nominal", "plot", "running")
    (state / "plot.commit").write_text(record)
    write_state(run_dir / "nominal", "plot", "done", "2 s")
    assert watcher.poll(run_dir).states["nominal/plot"] == ("done", "2 s")


def test_summary_of_a_queued_plot_task_says_the_figures_are_to_be_drawn(
    shared_quickstart: Path, tmp_path: Path
):
    """A plot task queued in SLURM to redraw the figures: summary told the user to run the
    config again (the own-diff review). The executor's poll says it is queued."""
    from gprpipe.executors.slurm.reconcile import QUEUED

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    (run_dir / "nominal" / ".state" / "plot.commit").unlink()  # as a submission withdraws it
    (run_dir / "nominal" / ".state" / "plot.done").unlink()

    def poll(info, tasks, configs):
        queued = ("pending", f"{QUEUED} (job 7_0)")
        return {t.id: queued if t.step == "plot" else ("done", "") for t in tasks}

    lines = summary_lines(run_summary(run_dir, poll))
    text = "\n".join(lines)
    assert "to be drawn: plots, HEPData, report (the plot task is queued in SLURM)" in text, text
    assert "run the config again" not in text


def test_a_demo_label_on_other_data_gets_a_notice_and_init_offers_blinding(
    tmp_path: Path, cli, monkeypatch
):
    """A config of `gprpipe init` with only its data path replaced drew real data as
    "Demo (synthetic)" in every figure and HEPData table, and nothing said a run is
    unblinded by default (a newcomer audit). validate names the label; a copy of the demo
    file gets no notice; init's config offers `blind = true`."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("init", "lab", "--template", "hps2015")
    assert code == 0, out + err
    cfg = tmp_path / "lab.toml"
    text = cfg.read_text()
    assert "\n# blind = true " in text and "'gprpipe run --unblind'" in text
    assert text.index("# blind = true") < text.index("[datasets.")  # (in [base])
    code, out, err = cli("validate", cfg)
    assert code == 0 and "notice" not in err, err
    copy = tmp_path / "copy.root"
    shutil.copy(DEMO_ROOT, copy)
    other = tmp_path / "other.root"
    write_hist(other, *read_hist(DEMO_ROOT, "input_hist")[:2])  # (the same counts, rewritten)
    for data, said in ((copy, False), (other, True)):
        code, out, err = cli("validate", cfg, "--set", f"datasets.2015.path={data}")
        assert code == 0, err
        assert (
            f"datasets.2015.label: 'Demo (synthetic)' labels {data}, which is not the shipped "
            "demo spectrum: if it holds real data, its figures and HEPData tables would call "
            "it synthetic; set its label." in " ".join(err.split())
        ) is said, err
