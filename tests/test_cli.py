"""The command line: user mistakes are one sentence and exit 1; --debug shows the traceback."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_ROOT, QUICKSTART, REPO, settings, write

from gprpipe import __version__
from gprpipe.cli import main
from gprpipe.errors import GprpipeError
from gprpipe.io.root import read_hist


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def test_version_and_help(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"gprpipe {__version__}"
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in (
        "run",
        "render",
        "validate",
        "grid",
        "status",
        "rerun",
        "step",
        "demo-data",
        "schema",
    ):
        assert command in out


def test_switches_are_shown_without_a_value(cli):
    """typer showed '--dry-run <bool>', as if the switch took a value ('--dry-run true'
    is refused; a review)."""
    code, out, _ = cli("run", "--help")
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ --")}
    for switch in ("--dry-run", "--force", "--wait", "--unblind"):
        assert "<bool>" not in lines[switch], lines[switch]
    assert "<float>" in lines["--wait-lock"]


def test_missing_config_is_one_sentence(tmp_path: Path, cli):
    code, _out, err = cli("validate", tmp_path / "nope.toml")
    assert code == 1
    assert one_error(err) == f"{tmp_path / 'nope.toml'}: config file not found."
    # a data file or a folder given as the config: "internal error: UnicodeDecodeError" before
    for given, why in (
        (DEMO_ROOT, "not a config file (byte 6 is not UTF-8 text; a config is TOML)."),
        (tmp_path, "is a folder, not a config file."),
    ):
        code, _out, err = cli("run", given)
        assert code == 1 and one_error(err) == f"{given}: {why}"


def test_debug_shows_the_traceback(tmp_path: Path, run_cli):
    code, _, err = run_cli("validate", tmp_path / "nope.toml", "--debug")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "GprpipeError" in err
    with pytest.raises(GprpipeError):
        main(["validate", str(tmp_path / "nope.toml"), "--debug"])


def test_invalid_toml(tmp_path: Path, cli):
    cfg = write(tmp_path / "bad.toml", "[fit]\nblind_nsigma = 1.64\nn_restarts = \n")
    code, _, err = cli("render", cfg)
    assert code == 1
    msg = one_error(err)
    assert msg.startswith(f"{cfg}: invalid TOML: ") and "line 3" in msg


def test_render_format_and_point_errors(cli):
    code, _, err = cli("render", QUICKSTART, "--format", "yaml")
    assert code == 1 and one_error(err) == "--format 'yaml': use toml or json."
    code, _, err = cli("render", QUICKSTART, "--point", "3")
    assert code == 1 and one_error(err) == "--point 3: the config has one point, 0."


def test_bad_set_syntax(cli):
    code, _, err = cli("validate", QUICKSTART, "--set", "fit.blind_nsigma")
    assert code == 1
    assert one_error(err) == "--set 'fit.blind_nsigma': expected key.path=VALUE."


def test_step_outside_a_run(tmp_path: Path, cli):
    code, _, err = cli("step", "load", "--point-dir", tmp_path)
    assert code == 1
    assert one_error(err) == f"{tmp_path}: not a point folder of a gprpipe run (no config.toml)."


def test_step_with_masses_runs_the_chunk_owning_them(tmp_path, cli):
    """`gprpipe step NAME --point-dir DIR --masses M`: the per-mass task that owns M (a
    task is a chunk of masses); masses of two chunks, a bare number or a step without
    per-mass tasks are refused in one sentence."""
    run = tmp_path / "run"
    sets = ("--set", f"base.output={run}", "--set", "scan.chunk_size=2")
    code, _, err = cli("run", QUICKSTART, *sets, "--steps", "load,fit")
    assert code == 0, err
    point = run / "nominal"
    code, out, err = cli("step", "fit", "--point-dir", point, "--masses", "60MeV", "--force")
    assert code == 0, err
    assert "nominal/fit/demo-001: done in " in out  # 0.03, 0.045 | 0.06, 0.08 | 0.1
    code, out, _ = cli("step", "fit", "--point-dir", point, "--part", "demo-001")
    assert code == 0 and "nominal/fit/demo-001: cached" in out  # the chunk just computed
    code, out, _ = cli("step", "fit", "--point-dir", point, "--masses", "0.06", "--dataset", "demo")
    assert code == 0 and "nominal/fit/demo-001: cached" in out
    code, _, err = cli("step", "fit", "--point-dir", point, "--masses", "0.06", "--dataset", "x")
    assert code == 1 and err.strip() == (
        f"error: --dataset x: step fit of {point} has tasks of demo only."
    )
    code, _, err = cli("step", "fit", "--point-dir", point, "--masses", "0.03,0.1")
    assert code == 1 and err.strip() == (
        "error: --masses 0.03,0.1: the masses belong to 2 tasks (demo-000, demo-002); run "
        "one chunk at a time (--part), or gprpipe rerun RUN_DIR --masses for all of them."
    )
    code, _, err = cli("step", "fit", "--point-dir", point, "--masses", "45")
    assert code == 1 and "did you mean 0.045 GeV?" in err
    code, _, err = cli("step", "load", "--point-dir", point, "--masses", "45MeV")
    assert err.strip() == f"error: --masses: step load of {point} has no per-mass tasks."
    # --task names the task: a NAME or --part that says another is refused (it ran the
    # --task's task and reported it done)
    task = ("--task", "nominal/fit/demo-001")
    code, _, err = cli("step", "load", "--point-dir", point, *task)
    assert code == 1 and err.strip() == (
        "error: --task nominal/fit/demo-001: a task of step fit, part demo-001, not of load; "
        "give the task's own step and part."
    )
    code, _, err = cli("step", "fit", "--point-dir", point, "--part", "demo-000", *task)
    assert code == 1 and "not of fit --part demo-000;" in err
    code, out, _ = cli("step", "fit", "--point-dir", point, "--part", "demo-001", *task)
    assert code == 0 and "nominal/fit/demo-001: cached" in out


def test_usage_mistakes_are_one_sentence(cli):
    """Unknown options and commands, and a missing required option (typer raises these from
    its own copy of click), are one sentence naming the command's help, exit 1."""
    code, _, err = cli("validate", QUICKSTART, "--bogus")
    assert code == 1 and one_error(err).startswith("No such option: --bogus")
    assert err.strip().endswith("(see gprpipe validate --help)")
    code, _, err = cli("nosuch")
    assert code == 1 and one_error(err) == "No such command 'nosuch'. (see gprpipe --help)"
    code, _, err = cli("export-pyhf", "runs/x", "--mass", "45MeV")
    assert code == 1
    assert one_error(err) == "Missing option '--dataset'. (see gprpipe export-pyhf --help)"


def test_demo_data_writes_a_file(tmp_path: Path, cli):
    out_file = tmp_path / "sub" / "demo.root"
    code, out, err = cli(
        "demo-data", out_file, "--scale", "0.01", "--signal-mass", "0.05", "--signal-yield", "100"
    )
    assert code == 0, err
    assert out_file.is_file() and out.startswith(f"wrote {out_file}: input_hist, 3000 bins")
    # the signal it put in, so that a fit of it can be checked by hand
    sigma = -9.22283032152e-05 + 0.0532190838657 * 0.05  # the 2015 resolution at 50 MeV
    assert out.strip().endswith(
        f"with a Gaussian signal of 100 events (Poisson mean) at 0.05 GeV (50 MeV), "
        f"sigma(m) {sigma:.4g} GeV"
    )


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--seed", "-1"], "--seed -1: a seed is a non-negative integer."),
        (["--scale", "-1"], "--scale -1: must be above 0 and at most 1e+06."),
        (["--scale", "nan"], "--scale nan: must be above 0 and at most 1e+06."),
        (["--scale", "0"], "--scale 0: must be above 0 and at most 1e+06."),
        (
            ["--signal-mass", "60MeV", "--signal-yield", "-5"],
            "--signal-yield -5: must be at least 0 and at most 1e+08 events.",
        ),
        (["--signal-yield", "5"], "--signal-yield 5 needs --signal-mass."),
        (
            ["--signal-mass", "1MeV", "--signal-yield", "100"],
            "--signal-mass 1MeV: the demo's mass resolution sigma(m) is not positive at "
            "0.001 GeV (1 MeV); give a mass of a few MeV or more.",
        ),
        *(
            (
                ["--hist", h],
                f"--hist {h!r}: a histogram name, folders joined by '/' (no ';', and no "
                "folder '.' or '..').",
            )
            for h in ("", "dir//h", "a;1", "../x", "d/./h", "a\nb")
        ),
        (  # (32,731 and more: "internal error", ROOT's key header holds 16 bits; a review)
            ["--hist", "x" * 32731],
            "--hist: a name of 32731 bytes; demo-data writes names of at most 1000 bytes.",
        ),
    ],
)
def test_demo_data_refuses_bad_values_in_one_sentence(tmp_path: Path, cli, args, sentence):
    """Each was a traceback ("internal error") or a silently odd file before."""
    code, _, err = cli("demo-data", tmp_path / "d.root", *args)
    assert code == 1 and one_error(err) == sentence
    assert list(tmp_path.iterdir()) == []


def test_demo_data_into_a_folder_is_refused(tmp_path: Path, cli):
    code, _, err = cli("demo-data", tmp_path)
    assert code == 1 and one_error(err) == f"{tmp_path}: is a folder; give the ROOT file to write."


def test_demo_data_never_overwrites_a_file_without_force(tmp_path: Path, cli):
    """An existing file (a config, real data) is left as it is unless --force is given."""
    cfg = tmp_path / "mine.toml"
    cfg.write_text('[base]\ntemplate = "hps2015"\n')
    # a name that is no ROOT file's is refused, --force or not (--force wrote ROOT into a
    # config or a run's run.json)
    for force in ((), ("--force",)):
        code, _, err = cli("demo-data", cfg, *force, "--scale", "0.01")
        assert code == 1 and one_error(err) == (
            f"{cfg}: demo-data writes a ROOT file; give a name ending in .root."
        )
    assert cfg.read_text() == '[base]\ntemplate = "hps2015"\n'
    data = tmp_path / "d.root"
    data.write_text("old")
    code, _, err = cli("demo-data", data)
    assert code == 1
    assert one_error(err) == f"{data}: already exists; choose another name or use --force."
    assert data.read_text() == "old"
    code, _, err = cli("demo-data", data, "--force", "--scale", "0.01")
    assert code == 0, err
    assert read_hist(data, "input_hist")[0].sum() > 0


def test_what_the_file_system_refuses_is_one_sentence_naming_the_path(tmp_path: Path, cli):
    """A folder where a file should go, a file where a folder should be, a folder that
    cannot be written: the path and the reason, never the temporary file's name."""
    (tmp_path / "a_file").write_text("")
    code, _, err = cli("demo-data", tmp_path / "a_file" / "sub" / "d.root")
    assert code == 1 and one_error(err) == f"{tmp_path / 'a_file'}: is a file, not a folder."
    code, _, err = cli("demo-data", tmp_path / "a_file" / "d.root")
    assert code == 1 and one_error(err).startswith(f"{tmp_path / 'a_file'}: ")
    code, _, err = cli("demo-data", "/proc/d.root")  # /proc takes no new files, even from root
    assert code == 1 and one_error(err).startswith("/proc: cannot write d.root here (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("command", ["run", "rerun"])
def test_zero_workers_is_refused(tmp_path: Path, cli, command):
    """``-j 0`` ran with the configured workers and ``-j -1`` with one, silently."""
    target = QUICKSTART if command == "run" else tmp_path
    code, _, err = cli(command, target, "-j", "0")
    assert code == 1 and one_error(err).startswith("Invalid value for '-j' / '--jobs': ")
    assert list(tmp_path.iterdir()) == []


def test_export_pyhf_wants_one_mass_or_the_patchset(tmp_path: Path, cli):
    """Both given: the mass was silently ignored; neither: one sentence too."""
    base = ("export-pyhf", tmp_path, "--dataset", "demo")
    code, _, err = cli(*base, "--mass", "60MeV", "--patchset")
    assert code == 1 and one_error(err) == (
        "export-pyhf: give --mass M (one workspace) or --patchset (every mass), not both."
    )
    code, _, err = cli(*base)
    assert code == 1 and one_error(err) == "export-pyhf: give --mass M (e.g. 60MeV) or --patchset."


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["rerun", "runs/x", "--masses", "40MeV", "--masses", "60MeV"], "--masses"),
        (["run", "c.toml", "--steps", "load", "--steps=fit"], "--steps"),
        (["run", "c.toml", "-j", "1", "--jobs", "2"], "--jobs"),
        (["export-pyhf", "runs/x", "--mass", "60MeV", "--mass", "40MeV"], "--mass"),
    ],
)
def test_an_option_of_one_value_given_twice_is_refused(cli, args, sentence):
    """click keeps the last value silently (a rerun of 60 MeV only, a run of fit only)."""
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    assert one_error(err) == f"{sentence} is given twice; it takes one value: give it once."


def test_options_that_take_many_values_and_flags_may_repeat(cli):
    sets = ["--set", "scan.masses=[0.06]", "--set", "fit.blind_nsigma=1.96"]
    code, out, err = cli("run", QUICKSTART, *sets, "--force", "--force", "--dry-run")
    assert code == 0, err
    assert "1.96" not in err and "nominal/limit" in out


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ["run", QUICKSTART, "--engine", "dockr", "--dry-run"],
            "--engine dockr: 'dockr' is not an engine; did you mean 'docker'?",
        ),
        (
            ["run", QUICKSTART, "--executor", "pbs", "--dry-run"],
            "--executor pbs: 'pbs' is not an executor; the executors are local, slurm.",
        ),
        (
            ["run", QUICKSTART, "--wait-lock", "nan", "--dry-run"],
            "--wait-lock nan: seconds to wait, a number of at least 0.",
        ),
        (
            ["rerun", "runs/x", "--failed", "--wait-lock", "-5"],
            "--wait-lock -5: seconds to wait, a number of at least 0.",
        ),
        (
            ["validate", QUICKSTART, "--set", 'datasets.demo.path="/dev/null"'],
            "--set datasets.demo.path: /dev/null: not a regular file (a ROOT file is needed).",
        ),
    ],
)
def test_option_values_are_named_in_one_sentence(cli, args, sentence):
    """They said '--set base.engine: ...' (no --set was given), were accepted (a negative
    wait), or called /dev/null 'not found'."""
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    assert one_error(err) == sentence


def test_a_file_of_a_run_given_for_its_folder(tmp_path: Path, cli):
    run_dir = tmp_path / "run"
    code, _, err = cli("run", QUICKSTART, "--set", f"base.output={run_dir}", "--steps", "load")
    assert code == 0, err
    code, _, err = cli("summary", run_dir / "run.json")
    assert code == 1 and one_error(err) == (
        f"{run_dir / 'run.json'}: a file of a run; give its run folder {run_dir}."
    )


def test_cancel_of_a_folder_without_a_run_is_refused(tmp_path: Path, cli):
    """It said "Nothing running in ..." with exit code 0, as for a finished run."""
    code, out, err = cli("cancel", tmp_path / "nope")
    assert code == 1 and out == ""
    assert one_error(err) == (
        f"{tmp_path / 'nope'}: no such folder (a relative base.output is relative to the "
        "folder gprpipe run was started in)."
    )
    (tmp_path / "empty").mkdir()
    code, out, err = cli("cancel", tmp_path / "empty")
    assert one_error(err) == f"{tmp_path / 'empty'}: not a gprpipe run directory (no run.json)."
    # nor the config itself (a review: "not a gprpipe run directory")
    cfg = tmp_path / "mine.toml"
    cfg.write_text("")
    for cmd in ("summary", "status", "cancel"):
        code, out, err = cli(cmd, cfg)
        assert code == 1 and one_error(err) == (
            f"{cfg}: a config; give the run folder it writes (its base.output, e.g. runs/<name>)."
        ), err


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_cancel_timeout_must_be_seconds(tmp_path: Path, cli, value: str):
    """--timeout nan killed the run at once, without its grace time."""
    code, _, err = cli("cancel", tmp_path, "--timeout", value)
    assert code == 1
    assert one_error(err).startswith(f"--timeout {float(value):g}: give the seconds to wait")


def test_tui_refuses_a_mistyped_run_folder(tmp_path: Path, cli):
    """`gprpipe tui runs/nonexist` opened an editor for a new config of that name."""
    code, out, err = cli("tui", tmp_path / "runs" / "nonexist")
    assert (code, out) == (1, "") and err.strip() == (
        f"error: {tmp_path / 'runs' / 'nonexist'}: no such config, folder or run directory "
        "(a new config's name ends in .toml)."
    )


def test_few_toys_caveat_only_for_a_scan_made_with_the_configs_toys(cli, tmp_path: Path):
    """Toy limits from 2,000 toys, then the config changed to 100 toys and only the load
    step run: scan.csv is not current, and the summary must not say its limits come from
    100 toys each (they come from 2,000)."""
    run = tmp_path / "run"
    sets = (f"base.output={run}", 'limit.mode="toys"', "scan.masses=[0.06]")
    code, out, err = cli(
        "run", QUICKSTART, "--steps", "load,fit,limit", *settings(*sets, "limit.n_toys=2000")
    )
    assert code == 0, err
    import re

    said = re.findall(r"toy limits' Monte Carlo error \(eps2_up_err\): median (\d\.\d)%", out)
    assert len(said) == 1 and 2.5 < float(said[0]) < 5, out  # (3.5% with an earlier numpy)
    assert "fewer than the 1000" not in out
    toy_bands = 'limit.bands="toys"'  # nor that its bands are toy bands (a review)
    code, out, err = cli(
        "run", QUICKSTART, "--steps", "load", *settings(*sets, "limit.n_toys=100", toy_bands)
    )
    assert code == 0, err
    assert "tables not current: scan.csv (made with other settings" in out
    assert f"toy limits' Monte Carlo error (eps2_up_err): median {said[0]}%" in out
    assert "from 100 toys each" not in out
    assert out.index("  NOT CURRENT: the numbers below are of scan.csv, made with") < out.index(
        "toy limits' Monte Carlo error"
    )
    from gprpipe.pipeline.summary import run_summary

    assert run_summary(run).points[0].datasets[0].bands == "asymptotic"
    # nor does the report (the plot step's, or an export's refresh) with this config
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.report import write_reports

    point = run / "nominal"
    write_reports(point_config_from_file(point / "config.toml"), point)
    html = (point / "report.html").read_text()
    assert f"<li>toy limits&#39; Monte Carlo error (eps2_up_err): median {said[0]}%" in html
    assert "from 100 toys each" not in html
    # its Tables say scan.csv is not current (they had listed it as any other)
    assert '<p id="tables-not-current">Not current: scan.csv (made with other' in html
    assert '<a href="scan.csv">scan.csv</a></td>' not in html


def test_toy_bands_carry_their_monte_carlo_error(cli, tmp_path: Path):
    """Toy expected bands (2,000 band toys; blinded, as a band alone is) carry their Monte
    Carlo error in scan.csv, the run summary and the report, relative to the band (about
    sqrt(10,000 / 2,000) x the 0.7-1.0% of the default 10,000 toys on these data);
    asymptotic bands have none."""
    run = tmp_path / "run"
    sets = (f"base.output={run}", "base.blind=true", "scan.masses=[0.03, 0.06]")
    sets += ('limit.bands="toys"', "limit.band_toys=2000")
    code, out, err = cli("run", QUICKSTART, "--steps", "load,fit,limit", *settings(*sets))
    assert code == 0, err
    rows = list(csv.DictReader((run / "nominal" / "scan.csv").open()))
    rel = [float(r["exp_band_rel_err"]) for r in rows]
    assert all(0.012 < x < 0.03 for x in rel), rel
    line = (
        f"toy bands' Monte Carlo error (exp_band_rel_err): median {sum(rel) / 2:.2%}, "
        f"largest {max(rel):.2%} at {30 if rel[0] > rel[1] else 60} MeV (more toys: "
        "limit.band_toys)"
    )
    assert line in out
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.report import write_reports

    point = run / "nominal"
    write_reports(point_config_from_file(point / "config.toml"), point)
    html = (point / "report.html").read_text()
    assert f"<li>{line.replace(chr(39), '&#39;')}</li>" in html
    from gprpipe.steps.hepdata import build_submission  # and each HEPData limit table

    sub, _ = build_submission(point_config_from_file(point / "config.toml"), point / "limit.h5")
    note = f"their Monte Carlo standard error is at most {max(rel):.2%} of the limit"
    assert [note in t.description for t in sub.tables] == [True, True]
    code, out, err = cli(
        "run",
        QUICKSTART,
        "--steps",
        "load,fit,limit",
        *settings(*sets[:3], "base.output=" + str(tmp_path / "asym")),
    )
    assert code == 0 and "exp_band_rel_err" not in out, err
    rows = list(csv.DictReader((tmp_path / "asym" / "nominal" / "scan.csv").open()))
    assert [r["exp_band_rel_err"] for r in rows] == ["nan", "nan"]


def test_a_toy_limit_at_the_floor_of_cls_is_unresolved_not_a_chance_crossing(
    cli, shared_data: Path, tmp_path: Path
):
    """Real 2015 data, 102 MeV trained on 100-120 MeV, 60 toys: 19 background-only toys
    reach the observed q at the asymptotic limit, so CLs >= 1/20 = alpha there; the
    check "floor above alpha" let the equality through, and the bracket search rose 28
    times by 1.25 to a chance crossing: A_up 275,266 events (A_up_err 1.7) against 581
    asymptotic, written ok and published in HEPData, the Brazil plot and the summary (a
    review). A floor not below alpha at any tested A now leaves the row unresolved."""
    run = tmp_path / "run"
    sets = (
        f"base.output={run}",
        f"datasets.2015.path={shared_data / 'funcform_2015_toys.root'}",
        "datasets.2015.range=[0.1, 0.12]",
        "scan.masses=[0.102]",
        'limit.mode="toys"',
        "limit.n_toys=60",
    )
    hps2015 = REPO / "user_configs" / "hps2015.toml"
    code, out, err = cli("run", hps2015, "--steps", "load,fit,limit", *settings(*sets))
    assert code == 1, out + err
    (row,) = list(csv.DictReader((run / "nominal" / "scan.csv").open()))
    assert row["status"] == (
        "limit failed: observed toy limit unresolved: 19 of 60 background-only toys reach "
        "the observed q at the asymptotic limit (CL_b 0.33), so CLs cannot fall below 0.05 "
        "= 0.05 there; the toys need at least 79 (several times more for a precise "
        "limit): raise limit.n_toys"
    ), row["status"]
    assert row["A_up"] == "nan" and float(row["A_hat"]) == pytest.approx(-111.46, abs=0.01)
    assert 500 < float(row["A_exp_hi2"]) < 2000  # the band is kept (its +2 sigma: 1217)


def test_toy_limits_with_too_few_toys_for_a_deficit_name_limit_n_toys(cli, tmp_path: Path):
    """The demo's 30 MeV deficit (A_hat/sigma_A = -1.7) with 100 toys: that row fails in
    one sentence naming limit.n_toys (it was written "ok" with A_up = 4.6e7 against 6442
    asymptotic); the other masses keep their toy limits. The failed row keeps what does
    not depend on its observed limit (its A_hat, sigma_A, Z_local and expected band were
    NaN too: a review), which the Brazil plots and HEPData's limit tables show; it
    counts for no discovery (no Z_global)."""
    run = tmp_path / "run"
    sets = (f"base.output={run}", 'limit.mode="toys"', "limit.n_toys=100")
    sets += ("scan.masses=[0.03, 0.06]",)
    args = ["run", QUICKSTART, "--steps", "load,fit,limit"]
    code, out, err = cli(*args, *(x for s in sets for x in ("--set", s)))
    assert code == 1
    assert (
        f"1 of 2 masses failed in {run / 'nominal' / 'scan.csv'} (first: demo 0.03 GeV: limit "
        "failed: observed toy limit unresolved: 6 of 100 background-only toys reach the "
        "observed q at the asymptotic limit "
        "(CL_b 0.069), so CLs cannot fall below 0.14 > 0.05 there; the toys need at least "
        "464 (several times more for a precise limit): raise limit.n_toys)"
    ) in out + err
    rows = list(csv.DictReader((run / "nominal" / "scan.csv").open()))
    assert [r["status"] for r in rows][1] == "ok"
    assert 3000 < float(rows[1]["A_up"]) < 6000  # the asymptotic limit: 4407
    kept = {
        k: float(v) for k, v in rows[0].items() if k not in ("dataset", "status", "gp_converged")
    }
    assert [kept[k] for k in ("A_up", "A_up_err", "eps2_up", "eps2_up_err", "Z_global")] == [
        pytest.approx(float("nan"), nan_ok=True)
    ] * 5
    assert kept["A_hat"] / kept["sigma_A"] == pytest.approx(-1.7, abs=0.05)
    assert kept["Z_local"] == 0 and kept["p0_local"] == 0.5  # a deficit
    band = [kept[f"eps2_exp_{b}"] for b in ("lo2", "lo1", "med", "hi1", "hi2")]
    assert all(x > 0 for x in band) and band == sorted(band)
    # the Brazil plots draw its expected limits, with a gap in the observed curve
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.plan import Layout
    from gprpipe.steps.plot import scan_figures

    cfg30 = point_config_from_file(run / "nominal" / "config.toml")
    lay = Layout(run / "nominal")
    (brazil,) = [f for f in scan_figures(cfg30, lay, {lay.limit}) if f.stem == "brazil_A_demo"]
    mass, obs, bands = brazil.args
    assert (
        np.isnan(bands[0]).sum() == 0
        and list(mass) == [0.03, 0.06]
        and np.isnan(obs[0])
        and obs[1] == pytest.approx(float(rows[1]["A_up"]), rel=1e-6)
    )
    assert bands[2][0] == pytest.approx(kept["A_exp_med"], rel=1e-6)
    # ... and marks 30 MeV, without an observed limit, by a triangle (the gap looked like
    # the end of the curve's range, a review)
    import matplotlib.pyplot as plt

    fig = brazil.fn(*brazil.args, **brazil.kwargs)
    (tri,) = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "v"]
    assert tri.get_label() == "no observed limit (too few toys)"
    assert list(tri.get_xdata()) == [pytest.approx(30.0)]
    plt.close(fig)
    # the toy limit's Monte Carlo error, in both units, and in the summary
    a, a_err = float(rows[1]["A_up"]), float(rows[1]["A_up_err"])
    assert a_err / a == pytest.approx(0.178, abs=0.001)  # 100 toys (4.5% with 2,000)
    assert float(rows[1]["eps2_up_err"]) == pytest.approx(
        a_err * float(rows[1]["eps2_up"]) / a, rel=1e-6
    )
    rel = float(rows[1]["eps2_up_err"]) / float(rows[1]["eps2_up"])
    assert (
        f"toy limits' Monte Carlo error (eps2_up_err): median {rel:.1%}, largest {rel:.1%} "
        "at 60 MeV (more toys: limit.n_toys); from 100 toys each, fewer than the 1000 it "
        "was checked with: "
    ) in out
    # in the report's summary too (it had only the counts of flagged and failed rows)
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.report import write_reports

    point = run / "nominal"
    _, index = write_reports(point_config_from_file(point / "config.toml"), point)
    html = (point / "report.html").read_text()
    # index.html counts that row as the report does: no numbers 0, no observed limit 1
    assert "<td>0</td><td>0 (+ 1 without an observed limit)</td>" in index.read_text()
    assert (
        f"<li>toy limits&#39; Monte Carlo error (eps2_up_err): median {rel:.1%}, largest "
        f"{rel:.1%} at 60 MeV (more toys: limit.n_toys); from 100 toys each, fewer than the "
        "1000 it was checked with: "
    ) in html
    assert (
        "<li>failed (no observed limit; its fit, significance and expected limits kept): 1 ("
        in html
    )
    assert "failed (no limit)" not in html
    # and in HEPData (YAML error and CSV column; the submission validates)
    import yaml
    from hepdata_validator.full_submission_validator import FullSubmissionValidator

    from gprpipe.steps.hepdata import write_hepdata

    folder = tmp_path / "hepdata"
    write_hepdata(point_config_from_file(point / "config.toml"), point / "limit.h5", folder)
    v = FullSubmissionValidator()
    assert v.validate(directory=str(folder)), v.get_messages()
    described = [
        d["description"]
        for d in yaml.safe_load_all((folder / "submission.yaml").read_text())
        if "limits_" in d.get("data_file", "")
    ]
    assert len(described) == 2 and all(
        "come from 100 toys per mass, fewer than the 1000 they were checked with" in d
        for d in described
    )
    for q, col in (("a", "A"), ("eps2", "eps2")):
        doc = yaml.safe_load((folder / f"limits_{q}_demo.yaml").read_text())
        # 30 MeV: no observed limit ("-"), its expected limit stands
        assert [x["value"] for x in doc["independent_variables"][0]["values"]] == [0.03, 0.06]
        none, value = doc["dependent_variables"][0]["values"]
        assert none == {"value": "-"}
        med = doc["dependent_variables"][1]["values"][0]["value"]
        assert med == pytest.approx(kept[f"{col}_exp_med"], rel=1e-5)
        assert value["value"] == pytest.approx(float(rows[1][f"{col}_up"]), rel=1e-5)
        assert value["errors"] == [
            {
                "symerror": pytest.approx(float(rows[1][f"{col}_up_err"]), rel=1e-5),
                "label": "Monte Carlo (toys)",
            }
        ]
        lines = (folder / f"limits_{q}_demo.csv").read_text().splitlines()
        assert lines[1].startswith("mass_GeV,observed,observed_mc_error,expected_median,")
        assert lines[2].startswith("0.03,nan,nan,") and "observed toy limit unresolved" in lines[0]
        assert "the expected limits stand: 0.03 GeV (limit failed: observed toy" in lines[0]
        assert float(lines[3].split(",")[2]) == pytest.approx(
            float(rows[1][f"{col}_up_err"]), rel=1e-5
        )
    # the likelihood exports hold 30 MeV too (its fit is ok; only the toys fell short),
    # with a null observed limit: the PatchSet and the Spey file left it out (a review)
    import json

    code, so, err = cli("export-pyhf", run, "--dataset", "demo", "--patchset")
    held = (
        "Test masses held without an observed limit in the scan's tables (too few toys "
        "resolve it; the likelihood is complete): 0.03 GeV."
    )
    assert code == 0 and "(2 patches, one per mass not left out)" in so and held in so, err
    ps = json.loads((point / "exports" / "pyhf_demo_patchset.json").read_text())
    assert [p["metadata"]["name"] for p in ps["patches"]] == ["m30MeV", "m60MeV"]
    assert ps["metadata"]["description"].endswith(held)
    code, so, err = cli("export-spey", run, "--dataset", "demo")
    assert code == 0 and held in so, err
    spey = json.loads((point / "exports" / "spey_demo.json").read_text())
    assert spey["masses_left_out"] == []
    e30, e60 = spey["masses"]
    assert (e30["mass_GeV"], e30["eps2_up"], e30["eps2_up_err"]) == (0.03, None, None)
    assert "eps2_up_spey_convention" not in e30 and e60["eps2_up_spey_convention"] > 0
    assert e30["eps2_exp_med"] == pytest.approx(kept["eps2_exp_med"], rel=1e-9)
    code, so, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "30MeV")
    assert code == 0 and "notice: 30 MeV of demo has no observed limit in the scan's " in so


def test_ctrl_c_before_a_command_has_anything_to_say_is_said(monkeypatch, capsys):
    """A review: Ctrl-C while a command read its config (before any task of a run) exited
    130 without a word (typer turns it into an exit of its own, past the CLI's handler)."""
    from gprpipe.pipeline import service

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(service, "validate", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(QUICKSTART)])
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"
