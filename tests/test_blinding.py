"""Blinding (``base.blind``): a blinded run's outputs do not depend on the observed counts in
the blind window; ``--unblind`` gives the full result, is recorded in run.json, and never
reuses blinded outputs.

The end-to-end test runs the real 2015 spectrum at one test mass (with one mass the GP
is trained only outside that window, so *every* output must be unchanged), changes the
counts inside the window with uproot's writer (+8% on the low side, +3% on the high side),
and compares scan.csv, limit.h5 and fit.h5 datasets, the HEPData tables and the PNGs
byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from conftest import QUICKSTART, REPO, combined_2015_2016, quickstart_child, run_cli_here, settings

from gprpipe.errors import GprpipeError
from gprpipe.io.root import read_hist, write_hist
from gprpipe.pipeline.summary import OBSERVED_WITHHELD
from gprpipe.stats.resolution import sigma_m
from gprpipe.steps.limit import OBSERVED

MASS = 0.060
SIGMA_COEFFS = (-9.22283032152e-05, 0.0532190838657)  # cards/hps2015.toml
OBSERVED_PLOTS = ("significance_", "Ahat_", "observed_")


def _modified_root(source: Path, path: Path) -> tuple[Path, float]:
    """``source``'s histogram with its counts changed inside the blind window of ``MASS``
    (raw bins within half the window, so every changed bin lies inside the rebinned
    window); returns the file and the number of events moved."""
    counts, edges = read_hist(source, "input_hist")
    x = 0.5 * (edges[1:] + edges[:-1])
    half = 1.64 * float(sigma_m(MASS, list(SIGMA_COEFFS), None, None))
    inside = np.abs(x - MASS) <= 0.5 * half
    new = counts.astype(float).copy()
    new[inside & (x < MASS)] *= 1.08
    new[inside & (x >= MASS)] *= 1.03
    new = np.round(new)
    write_hist(path, new, edges, "input_hist")
    return path, float(np.abs(new - counts).sum())


def _run(cfg: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli_here("run", cfg, "--set", f"base.output={out}", "-j", "1", *extra)


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return out


def _files(point: Path, pattern: str) -> dict[str, bytes]:
    return {p.relative_to(point).as_posix(): p.read_bytes() for p in sorted(point.glob(pattern))}


def _config(tmp: Path, name: str, root: Path, blind: bool) -> Path:
    return quickstart_child(
        tmp / f"{name}.toml",
        f"""
        blind = {str(blind).lower()}
        [datasets.demo]
        label = "HPS 2015"
        path = "{root}"
        [scan]
        masses = [{MASS}]
        [plot]
        formats = ["png"]
        masses = [{MASS}]
        [plot.displays]
        observed = []
        """,
    )


@pytest.mark.slow
def test_blinded_outputs_ignore_window_counts_and_unblind_gives_full_result(tmp_path, shared_data):
    data = shared_data / "funcform_2015_toys.root"
    mod, moved = _modified_root(data, tmp_path / "modified.root")
    assert moved > 10_000  # a large change: many sigma_A worth of events
    points = {}
    for name, root in (("orig", data), ("mod", mod)):
        code, out, err = _run(_config(tmp_path, name, root, blind=True), tmp_path / name)
        assert code == 0, err
        points[name] = tmp_path / name / "nominal"
    a, b = points["orig"], points["mod"]
    info = json.loads((tmp_path / "orig" / "run.json").read_text())
    assert info["blinding"] == {
        "blind": True,
        "unblind_option": False,
        "config_was_blind": True,
        "folder_was_blind": False,
        "unblinded_runs": [],
    }

    # nothing observed was written ...
    text = (a / "scan.csv").read_text()
    header = text.splitlines()[0].split(",")
    assert not set(OBSERVED) & set(header)
    assert header[-1] == "blinded" and text.splitlines()[1].endswith(",true")
    with h5py.File(a / "limit.h5", "r") as h:  # scan.csv's columns, and N_eff (as unblinded:
        # a review found it missing; it holds no data)
        assert set(h["demo"].keys()) == set(header) - {"dataset"} | {"n_eff"}
        assert list(h["demo/n_eff"][()]) == [1.0]  # one mass: one test
    for f in ("fit.h5", "limit.h5"):
        with h5py.File(a / f, "r") as h:
            assert bool(h.attrs["blinded"]) is True
    with h5py.File(a / "fit.h5", "r") as h:
        g = h["demo/blind/0"]
        assert "n" not in g and g.attrs["rho_source"] == "gp"
    names = json.loads((a / "plots" / "manifest.json").read_text())["files"]
    assert json.loads((a / "plots" / "manifest.json").read_text())["blinded"] is True
    assert not [n for n in names if Path(n).name.startswith(OBSERVED_PLOTS)]
    assert "BLINDED" in (a / "hepdata" / "limits_eps2_demo.csv").read_text()
    assert "observed" not in (a / "hepdata" / "limits_eps2_demo.csv").read_text().splitlines()[1]

    # ... and nothing changed when the window counts changed
    assert (a / "scan.csv").read_text() == (b / "scan.csv").read_text()
    for f in ("fit.h5", "limit.h5"):
        da, db = _datasets(a / f), _datasets(b / f)
        assert da.keys() == db.keys()
        for k in da:
            np.testing.assert_array_equal(da[k], db[k], err_msg=f"{f}:{k}")
    assert _files(a, "hepdata/*") == _files(b, "hepdata/*")
    assert _files(a, "hepdata.tar.gz") == _files(b, "hepdata.tar.gz") != {}
    pa, pb = _files(a, "plots/*.png"), _files(b, "plots/*.png")
    assert len(pa) >= 5 and pa.keys() == pb.keys()
    assert [k for k in pa if pa[k] != pb[k]] == []
    # compare of blinded runs: expected limits only (it was an internal error)
    code, out, err = run_cli_here("compare", a.parent, b.parent, "-o", tmp_path / "cmp")
    assert code == 0, err
    assert "blinded" in out and "internal error" not in err
    rows = (tmp_path / "cmp" / "compare_demo.csv").read_text().splitlines()[1:]
    assert rows and all(r.split(",")[3] == "nan" and r.split(",")[4] == "1" for r in rows)

    # --unblind in the same run directory: blinded outputs are not reused (cache key; load
    # too, whose file records that it is blinded)
    code, out, err = _run(_config(tmp_path, "mod", mod, blind=True), tmp_path / "mod", "--unblind")
    assert code == 0, err
    assert "6 ran, 0 cached" in out
    with h5py.File(b / "load.h5", "r") as h:
        assert bool(h.attrs["blinded"]) is False
    head, row = (b / "scan.csv").read_text().splitlines()[:2]
    full = dict(zip(head.split(","), row.split(",")))
    assert set(OBSERVED) <= full.keys() and "blinded" not in full
    info = json.loads((tmp_path / "mod" / "run.json").read_text())
    assert info["blinding"] == {
        "blind": False,
        "unblind_option": True,
        "config_was_blind": True,
        "folder_was_blind": True,
        "unblinded_runs": [info["created"]],
    }
    assert "--unblind" in info["command"]
    with h5py.File(b / "fit.h5", "r") as h:
        assert bool(h.attrs["blinded"]) is False and "n" in h["demo/blind/0"]
    names = json.loads((b / "plots" / "manifest.json").read_text())["files"]
    assert {"plots/significance_demo.png", "plots/Ahat_demo.png", "plots/observed_eps2.png"} <= set(
        names
    )
    # the changed window shows up in the unblinded yield: compare with the original data
    code, _, err = _run(
        _config(tmp_path, "orig", data, blind=True),
        tmp_path / "orig",
        "--unblind",
        "--steps",
        "load,fit,limit",
    )
    assert code == 0, err
    head, row0 = (a / "scan.csv").read_text().splitlines()[:2]
    orig = dict(zip(head.split(","), row0.split(",")))
    assert abs(float(full["A_hat"]) - float(orig["A_hat"])) > 3 * float(orig["sigma_A"])
    # expected limits: the blinded conversion (rho from the GP b) differs from the
    # unblinded one (rho from the data) only by rho, i.e. by well under a percent here
    blind_row = dict(zip(header, text.splitlines()[1].split(",")))
    ratio = float(blind_row["eps2_exp_med"]) / float(orig["eps2_exp_med"])
    assert float(blind_row["A_exp_med"]) == pytest.approx(float(orig["A_exp_med"]), rel=1e-9)
    assert ratio == pytest.approx(1.0, abs=0.01)


def test_set_blind_false_is_refused(tmp_path, cli):
    code, _, err = cli(
        "run",
        QUICKSTART,
        "--dry-run",
        *settings("base.blind=false", f"base.output={tmp_path / 'r'}"),
    )
    assert code == 1
    assert "--set base.blind=false: blinding is lifted only by 'gprpipe run --unblind'" in err
    assert "Traceback" not in err
    # validate says what run refuses (it said "valid")
    code, out, err = cli("validate", QUICKSTART, *settings("base.blind=false"))
    assert (
        code == 1
        and out == ""
        and err.strip()
        == (
            "error: --set base.blind=false: blinding is lifted only by 'gprpipe run --unblind' "
            "(recorded in run.json)."
        )
    )
    # an inline table (merged into [base]) lifts nothing either; "true" blinds, as asked
    # and any other way of writing false that the config's bool accepts
    for value, code_wanted in (
        ("base={blind=false}", 1),
        ('base.blind="true"', 0),
        ('base.blind="Off"', 1),
        ("base.blind=0.0", 1),
    ):
        code, _, err = cli("validate", QUICKSTART, *settings(value))
        assert code == code_wanted, err


def test_no_rendered_set_lifts_blinding(tmp_path, cli):
    """--set values that render base.blind false (a Jinja2 expression, a key the config's
    Jinja2 reads) are refused like base.blind=false, naming the override."""
    cfg = quickstart_child(tmp_path / "b.toml", 'blind = "{{ limit.alpha < 0.06 }}"\n')
    for value in (
        "base.blind={{ false }}",
        'base={blind="{{ false }}"}',
        "limit.alpha=0.1",
    ):
        code, out, err = cli("run", cfg, "--dry-run", "--set", value)
        assert code == 1 and out == "", err
        assert err.strip() == (
            f"error: --set {value}: blinding is lifted only by 'gprpipe run --unblind' "
            "(recorded in run.json)."
        )
    code, out, err = cli("run", cfg, "--dry-run", "--set", "base.blind={{ 0 }}")
    assert code == 1 and out == "", err  # no switch at all
    assert err.strip() == "error: --set base.blind: takes true or false, not '0'."
    for value in ("base.blind={{ true }}", "limit.alpha=0.04"):
        code, out, err = cli("run", cfg, "--dry-run", "--set", value)
        assert code == 0 and out.startswith("# 6 tasks"), err
    # a config that loads only with an override (its data path): judged with that one (the
    # check was skipped, and {{ false }} ran it unblinded, fit.h5 holding the window counts)
    pathless = tmp_path / "pathless.toml"
    pathless.write_text(
        '[base]\nname = "b"\nblind = true\n[datasets.demo]\ncard = "hps2015"\n'
        '[scan]\nmasses = [0.05]\n[steps]\nrun = ["load", "fit", "limit"]\n'
    )
    path = "datasets.demo.path={{ gprpipe.data }}/demo_2015.root"
    for value in ("base.blind={{ false }}", "base={blind=false}"):
        code, out, err = cli("run", pathless, "--dry-run", "--set", path, "--set", value)
        assert code == 1 and err.strip() == (
            f"error: --set {value}: blinding is lifted only by 'gprpipe run --unblind' "
            "(recorded in run.json)."
        ), err
    code, out, err = cli("run", pathless, "--dry-run", "--set", path, "--set", "base.blind=true")
    assert code == 0, err
    # a plain override that its base.blind template reads lifts nothing either
    pathless.write_text(
        pathless.read_text().replace("blind = true", 'blind = "{{ limit.alpha < 0.06 }}"')
    )
    code, out, err = cli("run", pathless, "--dry-run", "--set", path, "--set", "limit.alpha=0.1")
    assert code == 1 and err.strip() == (
        "error: --set limit.alpha=0.1: blinding is lifted only by 'gprpipe run --unblind' "
        "(recorded in run.json)."
    ), err
    code, out, err = cli("run", pathless, "--dry-run", "--set", path, "--set", "limit.alpha=0.05")
    assert code == 0, err


def test_a_blinded_folder_is_not_run_unblinded_without_unblind(tmp_path, cli):
    """The config of a run blinded by ``--set base.blind=true`` run again without it (as
    the TUI's launch of a blinded run did) is refused, dry run included; ``--unblind``
    lifts it and is recorded; after that the plain config runs."""
    out_dir = tmp_path / "r"
    base = (QUICKSTART, "--steps", "load", "--set", f"base.output={out_dir}")
    code, _, err = cli("run", *base, "--set", "base.blind=true")
    assert code == 0, err
    refusal = (
        f"error: {out_dir}: its last run was blinded (run.json) and this config is not; "
        "blinding is lifted only by 'gprpipe run --unblind' (recorded in run.json), else "
        "blind this run too (base.blind = true) or run into another folder (base.output)."
    )
    for extra in ((), ("--dry-run",)):
        code, out, err = cli("run", *base, *extra)
        assert (code, out, err.strip()) == (1, "", refusal)
    code, out, err = cli("validate", *base[0:1], *base[3:])  # validate says so too
    assert (code, out, err.strip()) == (1, "", refusal)
    code, _, err = cli("run", *base, "--unblind")
    assert code == 0, err
    blinding = json.loads((out_dir / "run.json").read_text())["blinding"]
    assert blinding == {  # the folder's blinding, from --set base.blind=true, was lifted
        "blind": False,
        "unblind_option": True,
        "config_was_blind": False,
        "folder_was_blind": True,
        "unblinded_runs": [json.loads((out_dir / "run.json").read_text())["created"]],
    }
    code, _, err = cli("run", *base)
    assert code == 0, err


def test_a_blinded_run_says_it_replaces_observed_results(tmp_path):
    """A blinded run into a folder holding observed (unblinded) results replaces them with
    expected limits: it says so (it did silently); once replaced, it says nothing."""
    out_dir = tmp_path / "r"
    base = ("run", QUICKSTART, "--steps", "load,fit,limit")
    sets = settings(f"base.output={out_dir}", "scan.masses=[0.06]")
    code, _, err = run_cli_here(*base, *sets)
    assert code == 0, err
    notice = (
        f"notice: nominal: observed (unblinded) results in {out_dir}; this blinded run "
        "replaces them with expected limits only ('gprpipe run --unblind' computes them "
        "again)."
    )
    code, out, err = run_cli_here(*base, *sets, "--set", "base.blind=true")
    assert code == 0, err
    assert notice in out + err
    assert "Z_local" not in (out_dir / "nominal" / "scan.csv").read_text()
    code, out, err = run_cli_here(*base, *sets, "--set", "base.blind=true")
    assert code == 0 and "observed (unblinded)" not in out + err


def test_a_blinded_run_without_the_limit_step_reports_no_observed_result(tmp_path):
    """A review: a blinded run with --steps load,fit,plot into a folder of observed results
    said it replaced them, kept them, and wrote a BLINDED report that showed the largest
    local Z and the whole observed scan.csv table. The notice now says they stay, and the
    report withholds them; a report of a scan.csv of other settings says NOT CURRENT."""
    out_dir = tmp_path / "r"
    sets = settings(
        f"base.output={out_dir}", "scan.masses=[0.06, 0.08]", "plot.masses=[]",
        'plot.formats=["png"]',
    )  # fmt: skip
    code, _, err = run_cli_here("run", QUICKSTART, "--steps", "load,fit,limit", *sets)
    assert code == 0, err
    observed = (out_dir / "nominal" / "scan.csv").read_text()
    code, out, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load,fit,plot", *sets, "--set", "base.blind=true"
    )
    assert code == 0, err
    assert (
        f"notice: nominal: observed (unblinded) results in {out_dir}; without the limit "
        "step, scan.csv and limit.h5 of nominal keep them (not current) until it runs; the "
        "report of this blinded run shows none of them."
    ) in out + err
    assert (out_dir / "nominal" / "scan.csv").read_text() == observed  # as it said
    # the run's summary (and gprpipe summary) withholds them as well
    for said in (out, run_cli_here("summary", out_dir)[1]):
        assert f"  not shown: {OBSERVED_WITHHELD}" in said, said
        assert "Z_local" not in said and "eps^2 limits" not in said, said
    report = (out_dir / "nominal" / "report.html").read_text()
    assert 'id="blind-state">BLINDED' in report and 'id="scan-withheld"' in report
    for word in ("largest local Z", "Z_local", "A_hat", "eps2_up", 'id="scan-table"'):
        assert word not in report, word
    # compare withholds them too (it drew them, labelled beside a BLINDED run; a review)
    other = tmp_path / "other"
    mine = settings(f"base.output={other}", "scan.masses=[0.06, 0.08]")
    code, _, err = run_cli_here("run", QUICKSTART, "--steps", "load,fit,limit", *mine)
    assert code == 0, err
    code, out, err = run_cli_here("compare", other, out_dir, "-o", tmp_path / "cmp")
    assert code == 0, err
    assert (
        f"notice: {out_dir / 'nominal' / 'scan.csv'} holds the observed results of an earlier "
        "unblinded run and its config is blinded: compared as blinded (expected limits only)."
    ) in " ".join(out.split())
    rows = (tmp_path / "cmp" / "compare_demo.csv").read_text().splitlines()
    header = rows[0].split(",")
    ratio = [r.split(",")[header.index("ratio_observed")] for r in rows[1:]]
    assert len(ratio) == 2 and all(x in ("", "nan") for x in ratio), rows
    # unblinded again with another fit setting and no limit step: the table stays, and
    # the report says its numbers are not current
    code, out, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load,fit,plot", "--unblind", *sets,
        "--set", "fit.gof_p_min=0.002",
    )  # fmt: skip
    assert code == 0, err
    report = (out_dir / "nominal" / "report.html").read_text()
    assert 'id="scan-not-current"' in report and 'id="scan-table"' in report


def test_a_folder_once_unblinded_says_so_after_it_is_blinded_again(tmp_path):
    """The next blinded run rewrote run.json's blinding record, so a folder unblinded with
    --unblind and blinded again presented itself as never unblinded, its report saying
    no observed quantity was computed (a blinding review). run.json keeps when runs of
    the folder were unblinded, and the blinded report says so."""
    out_dir = tmp_path / "r"
    sets = settings(
        f"base.output={out_dir}", "scan.masses=[0.06]", "plot.masses=[]",
        'plot.formats=["png"]', "plot.displays.datasets=[]", "base.blind=true",
    )  # fmt: skip
    code, _, err = run_cli_here("run", QUICKSTART, *sets)
    assert code == 0, err

    def blinding() -> dict:
        return json.loads((out_dir / "run.json").read_text())["blinding"]

    assert blinding()["unblinded_runs"] == []
    code, _, err = run_cli_here("run", QUICKSTART, *sets, "--unblind")
    assert code == 0, err
    when = json.loads((out_dir / "run.json").read_text())["created"]
    assert blinding()["unblinded_runs"] == [when]
    report = out_dir / "nominal" / "report.html"
    assert 'id="unblinded-before"' not in report.read_text()
    for _ in range(2):  # and it stays through later blinded runs
        code, _, err = run_cli_here("run", QUICKSTART, *sets, "--force")
        assert code == 0, err
        assert blinding()["blind"] is True and blinding()["unblinded_runs"] == [when]
        text = report.read_text()
        assert 'id="blind-state">BLINDED' in text
        assert (
            f'<span id="unblinded-before">Earlier runs of this folder were unblinded ({when}): '
            "they computed observed results; this run's are expected limits only.</span>"
        ) in text


def test_blind_refuses_training_inside_the_window(tmp_path, cli):
    cfg = quickstart_child(
        tmp_path / "c.toml",
        """
        blind = true
        [fit]
        blind_nsigma = 1.96
        train_exclude_nsigma = 1.64
        """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1
    assert "train_exclude_nsigma: 1.64 is smaller than fit.blind_nsigma = 1.96" in err


def test_blinded_window_limits_never_touch_the_counts():
    """The limit step's blinded path: expected bands from (b, C) only, identical to the
    unblinded bands, no observed key."""
    from gprpipe.config.schema import Config
    from gprpipe.steps.limit import BAND_COLS, window_limits

    rng = np.random.default_rng(1)
    k = 9
    b = np.linspace(900, 700, k)
    C = np.diag((0.01 * b) ** 2) + 1.0
    w = np.exp(-0.5 * np.linspace(-1.6, 1.6, k) ** 2) * 0.08
    n = rng.poisson(b).astype(float)
    cfg = Config.model_validate({"base": {"blind": True}})
    blind = window_limits(cfg, None, b, C, w, np.random.default_rng(2))
    full = window_limits(cfg, n, b, C, w, np.random.default_rng(2))
    assert set(blind) == {f"A_exp_{c}" for c in BAND_COLS} | {"exp_band_rel_err"}
    assert not set(OBSERVED) & set(blind)
    for c in BAND_COLS:
        assert blind[f"A_exp_{c}"] == pytest.approx(full[f"A_exp_{c}"], rel=1e-12)
        assert blind[f"A_exp_{c}"] > 0


@pytest.mark.slow
def test_a_blinded_combination_exports_nothing(tmp_path, shared_data):
    """export-spey --dataset combined of a blinded run said "internal error: KeyError";
    without that crash it would have written the Asimov counts as the data."""
    cfg = combined_2015_2016(
        tmp_path / "c.toml",
        shared_data,
        [0.04, 0.06],
        base="blind = true\n",
        body='[steps]\nrun = ["load", "fit", "limit"]\n',
    )
    code, _, err = _run(cfg, tmp_path / "run")
    assert code == 0, err
    fit = tmp_path / "run" / "nominal" / "fit.h5"
    for dataset in ("combined", "2015"):
        code, _, err = run_cli_here("export-spey", tmp_path / "run", "--dataset", dataset)
        assert code == 1 and err.strip() == (
            f"error: {fit}: the run is blinded (base.blind), so it holds no observed counts "
            "to export; rerun with 'gprpipe run --unblind'."
        ), dataset
    assert not (tmp_path / "run" / "nominal" / "exports").exists()


@pytest.mark.slow
def test_a_blinded_run_refuses_a_folder_holding_observed_exports(tmp_path):
    """An export of the unblinded fit (observed counts) stayed in the folder of a run
    blinded afterwards, and nothing mentioned it."""
    run = tmp_path / "run"
    quick = ("scan.masses=[0.045,0.06]", 'steps.run=["load","fit","limit"]', f"base.output={run}")
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick))
    assert code == 0, err
    code, _, err = run_cli_here("export-spey", run, "--dataset", "demo")
    assert code == 0, err
    spey = run / "nominal" / "exports" / "spey_demo.json"
    assert '"data"' in spey.read_text()
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick, "base.blind=true"))
    assert code == 1 and err.strip() == (
        f"error: {spey}: exports of an unblinded fit (observed counts) in a run that is "
        "blinded now; remove them, or run into another folder (base.output)."
    )
    # a damaged record (or a file copied in): nothing tells what the export holds; a
    # blinded run went ahead and its summary and report offered it as current (a review)
    (run / "nominal" / ".state" / "exports.json").write_text("{")
    code, out, err = run_cli_here("summary", run)
    assert code == 0 and "exports:" not in out, out + err
    assert (
        "not current: exports/spey_demo.json (made from other results than the current ones "
        "this folder holds, edited since, or with no record of what they were made from;"
    ) in " ".join(out.split())
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick, "base.blind=true"))
    assert code == 1 and err.strip() == (
        f"error: {spey}: files no export command of this folder recorded (they may hold "
        "observed counts) in a run that is blinded now; remove them, or run into another "
        "folder (base.output)."
    )
    spey.unlink()
    # nor in a folder of its own, nor at the point's root (the report lists both)
    hand = [run / "nominal" / "spey_hand" / "x.json", run / "nominal" / "hand.json"]
    for f in hand:
        f.parent.mkdir(exist_ok=True)
        f.write_text('{"data": [1]}')
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick, "base.blind=true"))
    assert code == 1 and err.strip() == (
        f"error: {hand[1]}, {hand[0]}: files no export command of this folder recorded (they "
        "may hold observed counts) in a run that is blinded now; remove them, or run into "
        "another folder (base.output)."
    )
    for f in hand:
        f.unlink()
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick, "base.blind=true"))
    assert code == 0, err


def test_a_blinded_run_refuses_a_folder_holding_an_unblinded_point_it_does_not_run(tmp_path):
    """A blinded grid run into the folder of an unblinded run left its ``nominal`` point
    (scan.csv with Z_local, its exports) beside the grid's, and run.json and index.html
    said blinded (a review). Refused until that folder is removed."""
    from conftest import quickstart_child

    run = tmp_path / "run"
    quick = ("scan.masses=[0.06]", 'steps.run=["load","fit","limit"]', f"base.output={run}")
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*quick))
    assert code == 0, err
    grid = quickstart_child(tmp_path / "g.toml", '[grid]\n"limit.alpha" = [0.05, 0.1]\n')
    said = (
        f"error: {run / 'nominal'}: results of an unblinded run (observed counts, limits or "
        "significances) in a point folder this blinded run does not run, so it would leave "
        "them in a folder that says it is blinded; remove that folder, or run into another "
        "folder (base.output)."
    )
    code, out, err = run_cli_here("run", grid, *settings(*quick, "base.blind=true"))
    assert (code, out, err.strip()) == (1, "", said)
    # validate says what run refuses (it said the config was valid: a review)
    code, out, err = run_cli_here("validate", grid, *settings(*quick, "base.blind=true"))
    assert (code, out, err.strip()) == (1, "", said)
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["nominal"]
    # its logs may print observed numbers (the limit merge's largest Z_local): refused too
    for p in (run / "nominal").iterdir():
        if p.name not in ("config.toml", ".state", "logs"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert "max Z_local" in (run / "nominal" / "logs" / "limit__merge.log").read_text()
    code, _, err = run_cli_here("run", grid, *settings(*quick, "base.blind=true"))
    assert code == 1 and "results of an unblinded run" in err, err
    # its config and markers alone are no results
    shutil.rmtree(run / "nominal" / "logs")
    code, _, err = run_cli_here("run", grid, *settings(*quick, "base.blind=true"))
    assert code == 0, err


def test_reach_and_comparisons_of_unblinded_results_are_not_kept_by_a_blinded_run(
    tmp_path: Path, cli
):
    """project-reach is recorded like an export (with the limit.h5 it read): listed only
    while the point holds those limits, and refused by a blinded run, as is a compare/
    folder with observed limit ratios."""
    import shutil

    out = tmp_path / "out"
    cfg = quickstart_child(
        tmp_path / "g.toml",
        f"""
        output = "{out}"
        [scan]
        masses = [0.045, 0.06]
        [steps]
        run = ["load", "fit", "limit"]
        [grid]
        "fit.blind_nsigma" = [1.64, 1.96]
        """,
    )
    assert cli("run", cfg)[0] == 0
    code, _, err = cli("compare", out)
    assert code == 0, err
    point = out / "blind_nsigma-1.64"
    code, _, err = cli("project-reach", out, "--point", point.name, "--scale", "demo=4")
    assert code == 0, err
    recorded = json.loads((point / ".state" / "exports.json").read_text())
    assert {k: v["source"] for k, v in recorded.items()} == {
        "reach/reach.csv": "limit.h5",
        "reach/reach.pdf": "limit.h5",
        "reach/reach.png": "limit.h5",
    }
    assert f"reach projection: {point / 'reach'}/ (1 csv file)" in cli("summary", out)[1]

    code, _, err = cli("run", cfg, "--set", "limit.alpha=0.1")  # other limits: not shown
    assert code == 0, err
    summary = cli("summary", out)[1]
    assert "reach projection" not in summary
    # but said, since the files are there (nothing said why they were not listed)
    assert (
        "  not current: reach/reach.csv, reach/reach.pdf, reach/reach.png (made from other "
        "results than the current ones this folder holds, edited since, or with no record "
        "of what they were made from; export or project them again)\n"
    ) in summary

    code, _, err = cli("run", cfg, "--set", "base.blind=true")
    assert code == 1 and err.startswith(f"error: {point / 'reach' / 'reach.csv'}, ")
    assert "exports of an unblinded fit (observed counts)" in err
    shutil.rmtree(point / "reach")
    code, _, err = cli("run", cfg, "--set", "base.blind=true")
    assert code == 1
    assert err.strip() == (
        f"error: {out / 'compare' / 'compare_demo.csv'}: a comparison of unblinded results "
        "(observed limits) in a run that is blinded now; remove the folder, or run into "
        "another folder (base.output)."
    )
    # a table no one can read: said so (it was "run its step again", for a table no
    # step makes)
    table = out / "compare" / "compare_demo.csv"
    table.write_bytes(b"\xff\xfe not text")
    code, _, err = cli("run", cfg, "--set", "base.blind=true")
    assert code == 1 and err.strip() == (
        f"error: {table}: unreadable, so a run that is blinded now cannot tell whether it "
        "compares observed limits; remove it, or run into another folder (base.output)."
    )
    shutil.rmtree(out / "compare")
    code, _, err = cli("run", cfg, "--set", "base.blind=true")
    assert code == 0, err


def test_results_of_a_blinded_run_block_nothing_and_unblinded_ones_stay_out_of_it(
    tmp_path: Path, cli
):
    """(A review.) The reach of a blinded run (expected limits only) was taken for an
    export of observed counts: every later blinded run of the folder was refused. And the
    exports and compare of an unblinded run could write observed results into a blinded
    run's folder with -o, where the blinded run and its report took them in."""
    quick = ("scan.masses=[0.045,0.06]", 'steps.run=["load","fit","limit"]')
    blind, open_ = tmp_path / "B", tmp_path / "U"
    assert (
        cli("run", QUICKSTART, *settings(*quick, f"base.output={blind}", "base.blind=true"))[0] == 0
    )
    assert cli("run", QUICKSTART, *settings(*quick, f"base.output={open_}"))[0] == 0
    code, _, err = cli("project-reach", blind, "--scale", "demo=4")
    assert code == 0, err
    code, _, err = cli(
        "run", QUICKSTART, *settings(*quick, f"base.output={blind}", "base.blind=true")
    )
    assert code == 0, err

    into = blind / "nominal"
    for args, target in (
        (("export-spey", open_, "--dataset", "demo", "-o", into), into / "spey_demo.json"),
        (
            ("export-pyhf", open_, "--dataset", "demo", "--mass", "60MeV", "-o", into / "w.json"),
            into / "w.json",
        ),
    ):
        code, _, err = cli(*args)
        assert code == 1, err
        assert err.strip().endswith(
            f": inside {blind}, a blinded run; an export carries observed counts of an "
            "unblinded fit: write it outside the blinded run's folder."
        ), err
        assert not target.exists()
    code, _, err = cli("compare", blind, open_, "-o", blind / "compare")
    assert code == 1
    assert err.strip() == (
        f"error: {blind / 'compare'}: inside {blind}, a blinded run, and U/nominal is "
        "unblinded (its observed limits would be drawn there): write the comparison outside "
        "it (-o)."
    )
    assert not (blind / "compare").exists()
    code, _, err = cli("compare", blind, open_, "-o", tmp_path / "cmp")  # outside: fine
    assert code == 0, err


def test_a_blinded_run_refuses_the_data_histogram_as_a_toy(tmp_path: Path, cli, capsys):
    """toyscan (and inject's background histograms) pointed at the data histogram would
    put the observed A_hat, sigma_A and Z_local of every window into a blinded run's
    tables: the task is refused, naming the histogram; unblinded, it runs."""
    data = REPO / "gprpipe" / "data" / "demo_2015.root"
    cfg = quickstart_child(
        tmp_path / "t.toml",
        f"""
        output = "{tmp_path / "out"}"
        blind = true
        [toyscan]
        file = "{data}"
        pattern = "input_hist"
        max_toys = 1
        chunk = 1
        [steps]
        run = ["toyscan"]
        """,
    )
    code, _, err = cli("run", cfg)  # refused before any task, as validate refuses it
    assert code == 1
    assert err.strip() == (
        f"error: {cfg}:7: toyscan.pattern: {data}: histogram 'input_hist' holds the "
        "observed counts of dataset demo (histogram 'input_hist'); a blinded run uses no "
        "observed count in a blind window: choose toy histograms, or unblind (gprpipe run "
        "--unblind)."
    )
    assert not (tmp_path / "out").exists()
    # the tasks check every toy (validate reads the first): a later toy is refused there
    from gprpipe.config import load_points
    from gprpipe.pipeline.store import write_point_configs
    from gprpipe.steps.runner import run_task

    _, points = load_points(cfg, [f"base.output={tmp_path / 'task'}"])
    write_point_configs(tmp_path / "task", points)
    assert run_task(tmp_path / "task" / points[0].name, "toyscan", "000") == 1
    assert "holds the observed counts of dataset demo" in capsys.readouterr().err
    # nor the data with an event added outside the windows (it passed: only an exact copy
    # was refused, and its scan gave the observed A_hat of every window; a review)
    counts, edges = read_hist(data, "input_hist")
    near = tmp_path / "near.root"
    with uproot.recreate(near) as f:
        f["t_toy_0"] = (counts + np.eye(len(counts))[0], edges)
    sets = ("--set", f"toyscan.file={near}", "--set", "toyscan.pattern=t_toy_*")
    # validate says so as the tasks do (one rule; the whole-diff review), and run refuses
    for cmd in ("validate", "run"):
        code, out, err = cli(cmd, cfg, *sets, "--set", f"base.output={tmp_path / 'near'}")
        assert code == 1 and "holds the observed counts of dataset demo" in out + err, out + err
        assert " bins of the blind windows that hold events; a blinded run uses no" in out + err
    assert not (tmp_path / "near" / "nominal" / "toyscan.csv").exists()
    code, _, err = cli("run", cfg, "--unblind")
    assert code == 0, err
    assert (tmp_path / "out" / "nominal" / "toyscan.csv").is_file()
    # a toys-only study where the data file is not at hand: nothing to compare, it runs
    other = ("--set", f"base.output={tmp_path / 'toys'}")
    code, _, err = cli("run", cfg, *other, "--set", f"datasets.demo.path={tmp_path / 'x.root'}")
    assert code == 0, err


def test_no_real_toy_is_taken_for_the_data(shared_data: Path):
    """The guard against the data given as a toy counted bins empty in both as equal: at a
    12 MeV window of the 2015 spectrum, unrebinned, 200 of the 300 real toys were refused
    (the own-diff review). None of them is, there or at the shipped windows; a copy of the
    data with an event added is."""
    from gprpipe.config import load_points
    from gprpipe.io.root import rebin
    from gprpipe.steps.load import observed_counts_guard

    data = shared_data / "funcform_2015_toys.root"
    cases = (
        ["datasets.2015.rebin=1", "datasets.2015.range=[0.005, 0.13]", "scan.masses=[0.012]"],
        [],
    )
    with uproot.open(data) as f:
        toys = [k.split(";")[0] for k in f if "_toy_" in k and f[k].classname == "TH1D"]
    assert len(toys) == 300
    for extra in cases:
        sets = [f"datasets.2015.path={data}", "base.blind=true", *extra]
        _, (point,) = load_points(REPO / "user_configs" / "hps2015.toml", sets)
        cfg = point.config
        check = observed_counts_guard(cfg, "2015")
        for name in toys:
            check(rebin(*read_hist(data, name), cfg.datasets["2015"].rebin)[0], name)
        counts = rebin(*read_hist(data, "input_hist"), cfg.datasets["2015"].rebin)[0]
        with pytest.raises(GprpipeError, match="bins of the blind windows that hold events"):
            check(counts + np.eye(len(counts))[0], "near")
        # nor the data plus an event in every bin, or with a little noise (they passed:
        # a review): closer to the data than an independent draw would be (in the 15
        # bins of 1-7 events of the 12 MeV window, one more event is within chance)
        if extra:
            continue
        rng = np.random.default_rng(7)
        for near in (counts + 1, counts + np.round(rng.normal(0, 0.2 * np.sqrt(counts + 1)))):
            with pytest.raises(GprpipeError, match="closer to them than chance allows: chi2"):
                check(near, "near")
    # independent draws are never taken for the data, at any binning (a rule on the
    # correlation of bin-to-bin fluctuations refused 295 of 299 Poisson draws of the demo
    # expectation at a rebin of 30 and most real toys at coarse rebins: the whole-diff
    # review; it was withdrawn)
    for extra in (["datasets.2015.rebin=30"], ["scan.masses=[0.02]"]):
        sets = [f"datasets.2015.path={data}", "base.blind=true", *extra]
        _, (point,) = load_points(REPO / "user_configs" / "hps2015.toml", sets)
        cfg = point.config
        check = observed_counts_guard(cfg, "2015")
        for name in toys[:100]:
            check(rebin(*read_hist(data, name), cfg.datasets["2015"].rebin)[0], name)


def test_a_blinded_run_says_it_runs_no_global_toys(cli):
    """The look-elsewhere toys are left out of a blinded run (their mean is fitted on every
    bin): said at once, not silently."""
    code, out, err = cli(
        "run", QUICKSTART, "--dry-run", "--set", "base.blind=true", "--set", "limit.global_toys=100"
    )
    assert code == 0 and out.startswith("# 6 tasks")
    assert err.strip() == (
        "notice: limit.global_toys: no look-elsewhere toys in a blinded run (their mean is a "
        "GP fit of every bin, windows included); they run once it is unblinded."
    )


def test_blinded_gp_fit_figure_hides_every_test_masss_window(tmp_path: Path, capsys):
    """The GP-fit figure of one mass spans +/-8 sigma_m: in a blinded run it drew the data
    in the windows of the neighbouring test masses, which the spectrum hides."""
    from matplotlib import pyplot as plt

    from gprpipe.config import point_config_from_file
    from gprpipe.config.checks import blinded_bins
    from gprpipe.pipeline.plan import Layout
    from gprpipe.steps.plot import fit_figures

    quick = (
        "scan.masses=[0.045, 0.06, 0.08]",
        'steps.run=["load", "fit"]',
        "base.blind=true",
        "plot.displays.observed=[0.06]",
    )
    code, _, err = run_cli_here("run", QUICKSTART, *settings(f"base.output={tmp_path}", *quick))
    assert code == 0, err
    lay = Layout(tmp_path / "nominal")
    cfg = point_config_from_file(lay.config)
    (job,) = [j for j in fit_figures(cfg, lay, {}) if j.stem == "gpfit_demo_60MeV"]
    fig = job.fn(*job.args, **job.kwargs)
    top = fig.axes[0]
    drawn = np.concatenate([ln.get_xdata() for ln in top.lines if ln.get_marker() == "."])
    plt.close(fig)
    edges = job.args[0]
    x = 0.5 * (edges[1:] + edges[:-1]) * 1e3
    hidden = x[blinded_bins(cfg, "demo", edges)]
    assert len(drawn) > 20 and not np.isin(np.round(drawn, 6), np.round(hidden, 6)).any()
    # the 45 and 80 MeV windows lie in the figure's range: their bins are among the hidden
    assert ((hidden > 41) & (hidden < 49)).any() and ((hidden > 75) & (hidden < 85)).any()
    assert drawn.min() < 41 and drawn.max() > 49  # and the data around them is drawn
    # an observed display asked for is not drawn blinded, and that is said (it was silent)
    from gprpipe.steps.displays import display_plots

    capsys.readouterr()
    assert display_plots(cfg, lay, {lay.fit, lay.limit}) == []
    assert capsys.readouterr().out == (
        "notice: plot.displays.observed: a blinded run draws no observed display\n"
    )


def test_a_blinded_plot_task_removes_the_observed_hepdata_archive(tmp_path, cli):
    """After an unblinded run, a blinded run whose plot task draws no limits (load, fit,
    plot) removed hepdata/ but left its archive, hepdata.tar.gz, beside it, and the
    BLINDED report offered it as an export: observed limits of a blinded folder."""
    point = tmp_path / "r" / "nominal"
    lean = (f"base.output={tmp_path / 'r'}", 'plot.formats=["png"]', "plot.masses=[]")
    code, _, err = cli("run", QUICKSTART, *settings(*lean))
    assert code == 0 and (point / "hepdata.tar.gz").is_file(), err
    code, _, err = cli(
        "run", QUICKSTART, "--steps", "load,fit,plot", *settings(*lean, "base.blind=true")
    )
    assert code == 0, err
    assert not (point / "hepdata.tar.gz").exists() and not (point / "hepdata").exists()
    assert "hepdata" not in (point / "report.html").read_text()


def test_a_blinded_plot_task_removes_displays_a_failed_plot_task_left(tmp_path, cli):
    """An observed display whose plot task failed (its sidecar is written before its
    figure) is in no manifest: a blinded redraw kept it in plots/, with the window's
    observed counts, A_hat and Z_local (a review). Every display the plot step does not
    write this time goes."""
    point = tmp_path / "r" / "nominal"
    lean = (f"base.output={tmp_path / 'r'}", 'plot.formats=["png"]', "plot.masses=[]")
    code, _, err = cli("run", QUICKSTART, *settings(*lean))
    assert code == 0, err
    left = point / "plots" / "display_observed_demo_80MeV.json"  # as a failed task leaves it
    left.write_text('{"A_hat": 638.8, "Z_local": 1.863}')
    # likewise the figures of a plot task interrupted before its manifest (a review):
    # an earlier run's observed limits and significance at other masses stayed beside
    # the blinded redraw
    observed = point / "plots" / "significance_demo_of_other_masses.png"
    shutil.copy(point / "plots" / "significance_demo.png", observed)
    # a folder of such a name is left (its removal failed the plot task), and a link
    # goes itself, not the figure it leads to (a review)
    (point / "plots" / "keep.pdf").mkdir()
    alias = point / "plots" / "alias.png"
    alias.symlink_to("brazil_eps2_demo.png")
    code, _, err = cli("run", QUICKSTART, *settings(*lean, "base.blind=true"))
    assert code == 0, err
    assert not left.exists() and not observed.exists()
    assert (point / "plots" / "keep.pdf").is_dir() and not alias.is_symlink()
    assert (point / "plots" / "brazil_eps2_demo.png").is_file()
    assert not list((point / "plots").glob("display_observed_*"))
    assert not (point / "plots" / "significance_demo.png").exists()


def test_toy_bands_do_not_depend_on_blinding(tmp_path, shared_data):
    """With toy limits the observed limit drew its toys from the mass's stream before the
    expected band did, so the band moved with the observed counts: blinded and unblinded
    runs of one seed gave medians 2-5% apart (a review). The band is drawn first: it
    depends on the background model and the seed alone, per dataset and combined."""
    import csv

    rows = {}
    for blind in ("false", "true"):
        cfg = combined_2015_2016(
            tmp_path / f"b{blind}.toml",
            shared_data,
            [0.05, 0.08],
            base=f'output = "{tmp_path / blind}"\nblind = {blind}\n',
            body="""
            [limit]
            mode = "toys"
            bands = "toys"
            n_toys = 300
            band_toys = 300
            [steps]
            run = ["load", "fit", "limit"]
            """,
        )
        code, out, err = run_cli_here("run", cfg)
        assert code == 0, out + err
        with (tmp_path / blind / "nominal" / "scan.csv").open() as fh:
            rows[blind] = list(csv.DictReader(fh))
    BANDS = ("lo2", "lo1", "med", "hi1", "hi2")
    bands = [f"A_exp_{k}" for k in BANDS]
    assert len(rows["false"]) == len(rows["true"]) == 6
    for seen, blinded in zip(rows["false"], rows["true"]):
        assert (seen["dataset"], seen["mass_GeV"]) == (blinded["dataset"], blinded["mass_GeV"])
        assert float(seen["eps2_up"]) > 0 and "eps2_up" not in blinded
        if seen["dataset"] == "combined":  # in eps^2 alone, whose yield per eps^2 comes
            # from the window's counts unblinded, from the GP's prediction blinded (0.2%
            # apart here): the band's shape agrees (it differed by 2-5% between positions)
            e = [float(seen[f"eps2_exp_{k}"]) / float(blinded[f"eps2_exp_{k}"]) for k in BANDS]
            assert max(e) / min(e) - 1 < 1e-3, (seen["mass_GeV"], e)
        else:
            for c in bands:
                assert float(seen[c]) == pytest.approx(float(blinded[c]), rel=1e-9), (seen, c)


def test_a_run_that_waited_for_the_lock_checks_the_folder_again(
    shared_quickstart: Path, tmp_path: Path
):
    """A review: ``run --wait-lock`` checked the folder before it waited for the lock, so
    an unblinded run waiting while a blinded run held the folder ran unblinded after it
    without ``--unblind`` (and recorded the folder as not blind before it). It checks the
    folder again once it holds the lock."""
    import os
    import time

    from conftest import start_cli_subprocess

    from gprpipe.pipeline.lock import lock_path, run_lock

    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    with run_lock(copy, command="gprpipe run (blinded)"):
        proc = start_cli_subprocess(
            "run", QUICKSTART, "--steps", "load", "--wait-lock", "120",
            *settings(f"base.output={copy}"),
        )  # fmt: skip
        deadline = time.monotonic() + 120
        fds = Path(f"/proc/{proc.pid}/fd")
        while not any(os.path.realpath(f) == str(lock_path(copy)) for f in fds.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)  # until it waits for the lock, past its first checks
        info = json.loads((copy / "run.json").read_text())
        info["blinding"] = {**info["blinding"], "blind": True}  # as a blinded run leaves it
        (copy / "run.json").write_text(json.dumps(info))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert err.startswith(f"error: {copy}: its last run was blinded (run.json) and this config")
