"""The toy look-elsewhere correction and the ``toyscan`` validation step through the CLI.

Real components: the shipped demo spectrum and the real HPS functional-form toy
histograms (uproot), real HDF5/CSV outputs, and (when a cluster answers) real SLURM.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
import yaml
from conftest import (
    DEMO_ROOT,
    QUICKSTART,
    combined_2015_2016,
    quickstart_child,
    require_slurm,
    run_cli_here,
    settings,
    write,
)

from gprpipe.io.hdf5 import write_group, write_h5
from gprpipe.io.root import read_hist


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_global_toys_through_the_cli(tmp_path: Path) -> None:
    cfg = quickstart_child(
        tmp_path / "gt.toml",
        f"""
        name = "gt"
        output = "{tmp_path / "run"}"
        [limit]
        global_toys = 300
        global_toys_chunk = 150
        global_toys_refit = 3
        [plot]
        formats = ["png"]
        masses = [0.06]
        [plot.displays]
        datasets = []
        """,
    )
    code, out, err = run_cli_here("run", cfg)
    assert code == 0, out + err
    point = tmp_path / "run" / "nominal"
    header = (point / "scan.csv").read_text().splitlines()[0].split(",")
    i = header.index("Z_global")
    assert header[i + 1 : i + 4] == ["p0_global_toys", "p0_global_toys_err", "Z_global_toys"]
    rows = [r for r in _rows(point / "scan.csv") if r["status"] == "ok"]
    assert len(rows) == 5
    for r in rows:
        p, pl = float(r["p0_global_toys"]), float(r["p0_local"])
        assert pl <= p <= 1.0
        assert 0.0 <= float(r["Z_global_toys"]) <= float(r["Z_local"]) + 1e-9
    with h5py.File(point / "limit.h5", "r") as f:
        # the file holds what the results schema defines, no array more or less
        from gprpipe.results.schema import GLOBAL_TOYS_REFIT, SCAN_H5

        datasets = {k for k, v in f["demo"].items() if isinstance(v, h5py.Dataset)}
        assert datasets == set(SCAN_H5.names) - {"dataset"}
        assert set(f["demo"]["global_toys"]) == set(GLOBAL_TOYS_REFIT.names)
        g = f["demo"]["global_toys"]
        mz = g["max_Z_local"][()]
        assert mz.shape == (300,) and g.attrs["n_masses_used"] == 5
        # the GP-refit scan of the first toys, beside the fixed-map scan of the same toys
        np.testing.assert_array_equal(g["max_Z_local_fixed_same_toys"][()], mz[:3])
        zr, zf = g["Z_local_refit"][()], g["Z_local_fixed_same_toys"][()]
        assert zr.shape == zf.shape == (3, 5) and np.isfinite(zr).all()
        assert np.corrcoef(zr.ravel(), zf.ravel())[0, 1] > 0.8
    # p0_global_toys is the toy tail fraction at the observed Z_local
    for r in rows:  # with its binomial error (the README quotes one; the files had none)
        z = float(r["Z_local"])
        p = (1 + np.sum(mz >= z)) / 301
        assert float(r["p0_global_toys"]) == pytest.approx(p, rel=1e-6)
        assert float(r["p0_global_toys_err"]) == pytest.approx(np.sqrt(p * (1 - p) / 300), 1e-5)
    # p0_local_toys: the same toys' tail fraction at each row's own mass (a check of the
    # asymptotic p0_local), from the per-(toy, mass) Z of the toy tasks
    from gprpipe.steps.lee import read_part

    parts = sorted((point / "parts" / "limit").glob("demo-toys-*.h5"))
    arrays = [read_part(p)[2] for p in parts]
    z_toys = np.concatenate([a["Z_local"] for a in arrays])
    toy_masses = list(np.round(arrays[0]["masses_GeV"], 9))
    assert z_toys.shape == (300, 5)
    for r in rows:
        zt = z_toys[:, toy_masses.index(round(float(r["mass_GeV"]), 9))]
        zt = zt[np.isfinite(zt)]
        p = (1 + np.sum(zt >= float(r["Z_local"]))) / (1 + zt.size)
        assert float(r["p0_local_toys"]) == pytest.approx(p, rel=1e-6)
        assert float(r["p0_local_toys_err"]) == pytest.approx(
            np.sqrt(p * (1 - p) / zt.size), rel=1e-5
        )
        assert float(r["p0_local_toys"]) <= float(r["p0_global_toys"])
        # the toys' Z_local = 0 fraction there, with its error for unbiased toys
        assert float(r["frac_Z0_toys"]) == pytest.approx(np.mean(zt == 0), rel=1e-6)
        assert float(r["frac_Z0_toys_err"]) == pytest.approx(0.5 / np.sqrt(zt.size), rel=1e-6)
    biased = [abs(float(r["frac_Z0_toys"]) - 0.5) > 3 * float(r["frac_Z0_toys_err"]) for r in rows]
    assert ("whole-scan toys biased at" in out) == any(biased), out
    best = max(rows, key=lambda r: float(r["Z_local"]))
    p, err = float(best["p0_local_toys"]), float(best["p0_local_toys_err"])
    line = (
        f"local p0 at {float(best['mass_GeV']) * 1e3:g} MeV: {float(best['p0_local']):.3g} "
        "(asymptotic), "
        f"{p:.3g} +- {err:.2g} from the toys at this mass"
    )
    assert line in out, out
    assert (point / "plots" / "global_toys_demo.png").stat().st_size > 10_000
    # the HEPData significance table quotes the toys' global p0 and Z beside Sidak's
    table = yaml.safe_load((point / "hepdata" / "significance_demo.yaml").read_text())
    names = [v["header"]["name"] for v in table["dependent_variables"]]
    assert names[-4:] == ["Global p0 (toys)", "Global Z (toys)", "Local p0 (toys)", "P(Z=0) (toys)"]
    units = {
        v["header"]["name"]: v["header"].get("units", "") for v in table["dependent_variables"]
    }
    assert units["P(Z=0) (toys)"] == "" and units["Global Z (toys)"] == "sigma"  # a fraction
    assert units["Local p0"] == units["Local p0 (toys)"] == "" and units["Local Z"] == "sigma"
    zero = table["dependent_variables"][-1]["values"]  # with the error for unbiased toys
    assert [x["value"] for x in zero] == pytest.approx(
        [float(r["frac_Z0_toys"]) for r in rows], rel=1e-5
    )
    assert [x["errors"][0]["symerror"] for x in zero] == pytest.approx(
        [float(r["frac_Z0_toys_err"]) for r in rows], rel=1e-4
    )
    table["dependent_variables"].pop()
    quoted = [x["value"] for x in table["dependent_variables"][-2]["values"]]
    assert quoted == pytest.approx([float(r["Z_global_toys"]) for r in rows], abs=1e-5)
    local = table["dependent_variables"][-1]["values"]
    assert [x["value"] for x in local] == pytest.approx(
        [float(r["p0_local_toys"]) for r in rows], rel=1e-5
    )
    assert [x["errors"][0]["symerror"] if "errors" in x else 0.0 for x in local] == pytest.approx(
        [float(r["p0_local_toys_err"]) for r in rows], rel=1e-4
    )
    p0s = table["dependent_variables"][-3]["values"]  # p0 = 1 has a zero error, not written
    errors = [x["errors"][0] if "errors" in x else {"symerror": 0.0} for x in p0s]
    assert any(e.get("label") == "binomial (toys)" for e in errors)
    assert [e["symerror"] for e in errors] == pytest.approx(
        [float(r["p0_global_toys_err"]) for r in rows], rel=1e-4
    )
    submission = (point / "hepdata" / "submission.yaml").read_text()
    assert "from 300 whole-scan background-only toys" in submission
    assert "P(Z=0) (toys): the fraction of those toys with Z = 0 at that mass" in " ".join(
        submission.split()  # as YAML wraps it
    )
    # (the toys with a maximum Z, the N of the p-value: all 300 here)
    from gprpipe.results.schema import read_global

    got = read_global(point / "limit.h5", "demo")
    assert got is not None and (got[1]["n_toys"], got[1]["n_toys_with_max"]) == (300, 300)
    # a curve without whole-scan toy numbers (NaN columns): no toy columns, no toy claim
    from gprpipe.steps.hepdata import significance_table

    nan = np.full(2, np.nan)
    cols = {k: np.array([0.1, 0.2]) for k in ("p0_local", "Z_local", "p0_global", "Z_global")}
    t = significance_table(
        np.array([0.03, 0.06]),
        cols | {"p0_global_toys": nan, "Z_global_toys": nan},
        dataset="Combined",
        stem="significance_combined",
        n_eff=10.0,
        global_toys=300,
    )
    assert [v.name for v in t.variables[1:]] == ["Local p0", "Local Z", "Global p0", "Global Z"]
    assert "none were run here" not in t.description  # (toys ran, for the datasets)
    assert t.description.endswith("measure (they give no number for this curve)).")
    assert (point / "parts" / "limit" / "demo-toys-001.h5").is_file()
    # seeded per toy: one task of 300 toys gives exactly the same maxima as two of 150
    # (in a copy of the run: its load and fit are reused, the limit tasks run again)
    shutil.copytree(tmp_path / "run", tmp_path / "one", symlinks=True)
    code, out, err = run_cli_here(
        "run",
        cfg,
        "--steps",
        "load,fit,limit",
        *settings(
            "limit.global_toys_chunk=300",
            "limit.global_toys_refit=0",
            f"base.output={tmp_path / 'one'}",
        ),
    )
    assert code == 0, out + err
    assert "nominal/limit/demo-toys-000: done" in err and "3 ran, 3 cached" in out, out + err
    with h5py.File(tmp_path / "one" / "nominal" / "limit.h5", "r") as f:
        # equal up to the rounding of the batched Newton solver (batch shape differs)
        np.testing.assert_allclose(
            f["demo"]["global_toys"]["max_Z_local"][()], mz, rtol=1e-12, atol=0
        )


def _part(path: Path, name: str, kind: str, toys: range, Z: np.ndarray) -> Path:
    with write_h5(path, {}) as f:
        g = f.create_group(name)
        write_group(
            g,
            {
                "toy": np.array(list(toys)),
                "masses_GeV": np.array([0.03, 0.04, 0.05]),
                "Z_local": Z,
                "converged": np.ones(Z.shape, bool),
            },
        )
        g.attrs.update(kind=kind, seconds=1.0, cpu_seconds=0.5)
    return path


def test_flagged_rows_leave_the_toy_maximum(tmp_path: Path) -> None:
    """A row with a status other than ok gets no toy global p and its mass does not enter
    the toys' maximum (here the toys are huge there)."""
    from gprpipe.config.schema import Config
    from gprpipe.steps.lee import merge_global

    cfg = Config.model_validate(
        {"datasets": {"d": {"path": "x.root", "range": [0.03, 0.05], "sigma_coeffs": [0.001]}}}
    )
    Z = np.array([[1.0, 9.0, 0.5], [2.0, 9.0, 2.5], [0.0, 9.0, 0.2], [3.0, 9.0, 0.0]])
    parts = [
        _part(tmp_path / "a.h5", "d", "toys", range(0, 2), Z[:2]),
        _part(tmp_path / "b.h5", "d", "toys", range(2, 4), Z[2:]),
    ]
    per_ds = {
        "d": {
            "mass_GeV": np.array([0.03, 0.04, 0.05]),
            "Z_local": np.array([2.0, 1.0, 0.1]),
            "status": np.array(["ok", "flag_gof", "ok"]),
            "n_eff": np.full(3, 2.0),
        }
    }
    dists = merge_global(cfg, per_ds, parts)
    mz = dists["d"][0]["max_Z_local"]
    np.testing.assert_array_equal(mz, [1.0, 2.5, 0.2, 3.0])
    a = per_ds["d"]
    np.testing.assert_allclose(a["p0_global_toys"], [(1 + 2) / 5, np.nan, 1.0])
    assert np.isnan(a["Z_global_toys"][1])
    assert dists["d"][1]["n_masses_used"] == 2


def test_a_row_whose_observed_toy_limit_alone_is_unresolved_stays_in_the_toy_maximum(
    tmp_path: Path,
) -> None:
    """A review: a deficit whose observed toy limit was unresolved (``limit.mode =
    "toys"``) left the toys' maximum, so the toy global p-values of a run depended on how
    its observed limits were computed (smaller with toy limits than asymptotic ones). Its
    mass was searched: its trials count; the row itself gets no global p (a failure)."""
    from gprpipe.config.schema import Config
    from gprpipe.steps.lee import merge_global

    cfg = Config.model_validate(
        {"datasets": {"d": {"path": "x.root", "range": [0.03, 0.05], "sigma_coeffs": [0.001]}}}
    )
    Z = np.array([[1.0, 9.0, 0.5], [2.0, 0.1, 2.5], [0.0, 9.0, 0.2], [3.0, 9.0, 0.0]])
    parts = [_part(tmp_path / "a.h5", "d", "toys", range(4), Z)]
    unresolved = "limit failed: observed toy limit unresolved: 3 of 100 toys: raise limit.n_toys"
    per_ds = {
        "d": {
            "mass_GeV": np.array([0.03, 0.04, 0.05]),
            "Z_local": np.array([2.0, -2.2, 0.1]),
            "status": np.array(["ok", unresolved, "ok"]),
            "n_eff": np.full(3, 2.0),
        }
    }
    dists = merge_global(cfg, per_ds, parts)
    np.testing.assert_array_equal(dists["d"][0]["max_Z_local"], [9.0, 2.5, 9.0, 9.0])
    assert dists["d"][1]["n_masses_used"] == 3
    np.testing.assert_allclose(per_ds["d"]["p0_global_toys"], [(1 + 4) / 5, np.nan, 1.0])


def _toyscan_config(tmp_path: Path, shared_data: Path, pattern: str) -> Path:
    src = shared_data / "funcform_2015_toys.root"
    return write(
        tmp_path / "ts.toml",
        f"""
        [base]
        template = "hps2015"
        name = "ts"
        output = "{tmp_path / "run"}"
        [datasets.2015]
        path = "{src}"
        hist = "input_hist"
        [scan]
        masses = [0.04, 0.06, 0.08]
        [toyscan]
        file = "{src}"
        pattern = "{pattern}"
        max_toys = 3
        chunk = 2
        [plot]
        formats = ["png"]
        [steps]
        run = ["toyscan", "plot"]
        """,
    )


def test_toyscan_on_real_toys(tmp_path: Path, shared_data: Path) -> None:
    cfg = _toyscan_config(tmp_path, shared_data, "fShiftSigPow/*_toy_*")
    code, out, err = run_cli_here("run", cfg)
    assert code == 0, out + err
    point = tmp_path / "run" / "nominal"
    rows = _rows(point / "toyscan.csv")
    assert len(rows) == 9
    # natural order of the matching histograms, not fShiftSigPowTail (another family)
    assert sorted({r["hist"] for r in rows}) == [
        f"fShiftSigPow/fShiftSigPow_toy_{i}" for i in range(3)
    ]
    assert all(r["status"] == "ok" and np.isfinite(float(r["Z_local"])) for r in rows)
    summary = _rows(point / "toyscan_summary.csv")
    assert [float(s["mass_GeV"]) for s in summary] == [0.04, 0.06, 0.08]
    for s in summary:
        mine = [r for r in rows if float(r["mass_GeV"]) == float(s["mass_GeV"])]
        pulls = [float(r["A_hat"]) / float(r["sigma_A"]) for r in mine]
        assert int(s["n_kept"]) == 3
        assert float(s["pull_mean"]) == pytest.approx(np.mean(pulls), rel=1e-5)
        assert float(s["pull_width"]) == pytest.approx(np.std(pulls, ddof=1), rel=1e-5)
        assert float(s["pull_mean_err"]) == pytest.approx(np.std(pulls, ddof=1) / np.sqrt(3), 1e-5)
        assert float(s["frac_Z_gt2"]) == pytest.approx(
            np.mean([float(r["Z_local"]) > 2 for r in mine])
        )
    # of 3 toys the run summary quotes no pull mean in standard errors (their width is
    # too uncertain: the whole-diff review); of 10 or more it does, and how many masses lie
    # more than 3 errors off
    assert "toy scan: pull mean" not in out, out
    from gprpipe.results.summary import pull_closure_text

    text = pull_closure_text([0.04, 0.06, 0.08], [0.5, -0.9, 2.0], [0.1, 0.2, 0.1], [20, 10, 3])
    assert text == (
        "pull mean more than 3 standard errors from 0 at 2 of 2 masses; furthest +0.500 +- "
        "0.100 at 40 MeV (pull_mean_err in toyscan_summary.csv)"
    )
    # and the whole-scan tail beside the background-only value (the merge's log alone
    # had it: a review)
    z = np.array([float(r["Z_local"]) for r in rows])
    tail = (
        f"  toy scan: 3 toys, 9 unflagged rows (0 flagged, 0 failed); Z_local > 3 in "
        f"{np.mean(z > 3):.5f} +- "
    )
    (line,) = [x for x in out.splitlines() if x.startswith(tail)]
    assert line.endswith(
        f"(background-only 0.00135); max unflagged Z_local {z.max():.2f}; unflagged Z_local "
        f"> 5: {int(np.sum(z > 5))}"
    ), line
    for stem in ("toyscan_z_local", "toyscan_spurious", "toyscan_max_z"):
        assert (point / "plots" / f"{stem}.png").stat().st_size > 10_000
    # of other settings now (fewer toys), the table's line is said to be not current
    code, out2, err = run_cli_here("run", cfg, "--steps", "load", *settings("toyscan.max_toys=2"))
    assert code == 0, out2 + err
    lines = out2.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("  toy scan: 3 toys"))
    assert lines[at - 1].startswith("  NOT CURRENT: the numbers below are of toyscan_summary.csv")
    assert not lines[at + 1].startswith("  toy scan: pull mean")  # (3 toys: no error)
    with h5py.File(point / "toyscan.h5", "r") as f:
        assert f["max_Z_local"]["max_Z_local"].shape == (3,)
        assert f["summary"].attrs["n_toys"] == 3


def test_toys_of_another_binning_are_refused(tmp_path: Path, shared_data: Path) -> None:
    """The 2016 toys (0-0.3 GeV) for the 2015 data (0-0.15 GeV) were scanned and their
    rows labelled as a 2015 background-only validation."""
    cfg = _toyscan_config(tmp_path, shared_data, "fShiftSigPow/*_toy_*")
    toys = shared_data / "funcform_2016_toys.root"
    code, out, err = run_cli_here("validate", cfg, *settings(f"toyscan.file={toys}"))
    assert code == 1 and out == ""
    assert err.strip() == (  # the paths as the config resolves them (symlinks followed)
        f"error: --set toyscan.file: {toys.resolve()}: histogram 'fShiftSigPow/fShiftSigPow_"
        "toy_0' (toyscan.file) does not have the binning of 'input_hist' in "
        f"{(shared_data / 'funcform_2015_toys.root').resolve()}."
    )


def test_toys_with_an_axis_in_mev_name_the_toy_file(tmp_path: Path, shared_data: Path) -> None:
    """A toy file with its axis in MeV: the sentence is about the toy file (it said
    "scanned with datasets.2015.path", the data's key, whose file is fine)."""
    cfg = _toyscan_config(tmp_path, shared_data, "fShiftSigPow/*_toy_*")
    counts, edges = read_hist(
        shared_data / "funcform_2015_toys.root", "fShiftSigPow/fShiftSigPow_toy_0"
    )
    toys = tmp_path / "mev_toys.root"
    with uproot.recreate(toys) as f:
        f["fShiftSigPow/fShiftSigPow_toy_0"] = (counts, edges * 1000)
    code, out, err = run_cli_here("validate", cfg, *settings(f"toyscan.file={toys}"))
    assert code == 1 and out == ""
    assert err.strip() == (
        "error: --set toyscan.file: histogram 'fShiftSigPow/fShiftSigPow_toy_0' in "
        f"{toys} has an axis that runs to 150: in MeV? histogram axes are read in GeV; "
        "write a copy with the edges divided by 1000 (README, Real HPS data)."
    )


def test_toyscan_of_a_blinded_analysis_scans_its_toys(tmp_path: Path, shared_data: Path) -> None:
    """Toys are no data: a blinded config scans them like an unblinded one (it failed
    with "internal error ... KeyError: 'n'": the blinded fit kept no window counts)."""
    cfg = _toyscan_config(tmp_path, shared_data, "fShiftSigPow/*_toy_*")
    sets = ("toyscan.max_toys=1", 'steps.run=["toyscan"]')
    for blind, out in (("", "open"), ("base.blind=true", "blind")):
        flags = (
            (blind, f"base.output={tmp_path / out}")
            if blind
            else (f"base.output={tmp_path / out}",)
        )
        code, so, se = run_cli_here("run", cfg, *settings(*sets, *flags))
        assert code == 0, so + se
    open_, blind_ = (tmp_path / d / "nominal" / "toyscan.csv" for d in ("open", "blind"))
    assert _rows(blind_) == _rows(open_) and len(_rows(blind_)) == 3


@pytest.mark.slurm
@pytest.mark.slow
def test_combined_rows_get_toys_of_the_combination(tmp_path: Path, shared_data: Path) -> None:
    """The combined rows' look-elsewhere toys: toy t of 2015 and of 2016 (each dataset's own
    whole-scan toy t) fitted jointly with one eps^2 at every combined mass. Their
    p0_global_toys and p0_local_toys are the tail fractions of those joint fits, and the
    joint map applied to the data is the observed combination (they were NaN)."""
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.plan import Layout
    from gprpipe.stats.lee import joint_map, log_counts, z_local_joint
    from gprpipe.steps.combine import load_blocks
    from gprpipe.steps.lee import read_part, scan_setup

    cfg = combined_2015_2016(
        tmp_path / "c.toml",
        shared_data,
        [0.04, 0.05, 0.06, 0.07, 0.08],
        base=f'output = "{tmp_path / "run"}"\n',
        body="""
        [limit]
        global_toys = 300
        global_toys_chunk = 150
        [steps]
        run = ["load", "fit", "limit"]
        """,
    )
    code, out, err = run_cli_here("run", cfg)
    assert code == 0, out + err
    point = tmp_path / "run" / "nominal"
    parts = sorted((point / "parts" / "limit").glob("combined-toys-*.h5"))
    assert [p.name for p in parts] == ["combined-toys-000.h5", "combined-toys-001.h5"]
    z_toys = np.concatenate([read_part(p)[2]["Z_local"] for p in parts])
    assert z_toys.shape == (300, 5) and np.isfinite(z_toys).all()
    rows = [r for r in _rows(point / "scan.csv") if r["dataset"] == "combined"]
    assert [r["status"] for r in rows] == ["ok"] * 5
    with h5py.File(point / "limit.h5", "r") as f:
        g = f["combined"]["global_toys"]
        mz = g["max_Z_local"][()]
        assert g.attrs["n_toys"] == 300 and g.attrs["n_masses_used"] == 5
    np.testing.assert_array_equal(mz, z_toys.max(axis=1))
    for j, r in enumerate(rows):
        z = float(r["Z_local"])
        p = (1 + np.sum(mz >= z)) / 301
        assert float(r["p0_global_toys"]) == pytest.approx(p, rel=1e-6)
        assert float(r["p0_global_toys_err"]) == pytest.approx(np.sqrt(p * (1 - p) / 300), 1e-5)
        pl = (1 + np.sum(z_toys[:, j] >= z)) / 301
        assert float(r["p0_local_toys"]) == pytest.approx(pl, rel=1e-6)
        assert 0.0 <= float(r["Z_global_toys"]) <= z + 1e-9
    best = max(rows, key=lambda r: float(r["Z_local"]))
    assert (
        f"Z_global (toys) {float(best['Z_global_toys']):.2f} "
        f"(p0 {float(best['p0_global_toys']):.3g}"
    ) in out.split("  combined (5 masses)")[1], out
    # the joint map on the data is the observed combined fit (stats.combine on fit.h5)
    conf = point_config_from_file(point / "config.toml")
    setups = [scan_setup(conf, Layout(point), d) for d in ("2015", "2016")]
    for j, r in enumerate(rows):
        blocks, _, _ = load_blocks(conf, point / "fit.h5", float(r["mass_GeV"]))
        assert [b.name for b in blocks] == ["2015", "2016"]
        jm = joint_map([s.maps[j] for s in setups], [b.k_unit for b in blocks])
        counts = [s.counts[None, :].astype(float) for s in setups]
        z, _ = z_local_joint(jm, counts, [log_counts(c) for c in counts])
        assert z[0] == pytest.approx(float(r["Z_local"]), abs=1e-5)


@pytest.mark.slow
def test_toyscan_chunks_on_slurm_match_local(tmp_path: Path, shared_data: Path) -> None:
    """The toy chunks as SLURM array tasks give the same bytes as the local run."""
    require_slurm()
    cfg = _toyscan_config(tmp_path, shared_data, "fGenGammaShift/*_toy_*")
    code, out, err = run_cli_here("run", cfg, "--steps", "toyscan")
    assert code == 0, out + err
    code, out, err = run_cli_here(
        "run",
        cfg,
        "--steps",
        "toyscan",
        "--executor",
        "slurm",
        "--wait",
        "--set",
        f"base.output={tmp_path / 'slurm'}",
    )
    assert code == 0, out + err
    assert (tmp_path / "slurm" / "nominal" / "toyscan.csv").read_bytes() == (
        tmp_path / "run" / "nominal" / "toyscan.csv"
    ).read_bytes()
    scripts = [p.read_text() for p in (tmp_path / "slurm" / "slurm").glob("*.sbatch")]
    assert any("toyscan" in s and "--array=0-1" in s for s in scripts)


def test_toyscan_bad_pattern_is_one_sentence(tmp_path: Path, shared_data: Path) -> None:
    cfg = _toyscan_config(tmp_path, shared_data, "noSuchFamily/*_toy_*")
    code, out, err = run_cli_here("run", cfg)
    assert code == 1
    assert "no histogram matches toyscan.pattern 'noSuchFamily/*_toy_*'" in out + err
    assert "Traceback" not in out + err


def test_a_toy_pattern_that_takes_the_data_is_refused(tmp_path: Path, shared_data: Path) -> None:
    """``toyscan.pattern = "*"`` on the HPS file matches its 300 toys and ``input_hist``,
    the data: it was valid, and the observed spectrum would have been scanned as a
    background-only toy (a review). A pattern of the toys alone is valid (and one of the
    data alone, unblinded: test_blinding)."""
    cfg = _toyscan_config(tmp_path, shared_data, "*")
    code, out, err = run_cli_here("validate", cfg)
    src = (shared_data / "funcform_2015_toys.root").resolve()  # as the config holds it
    assert (code, out, err.strip()) == (
        1,
        "",
        f"error: {cfg}:12: toyscan.pattern: '*' matches 'input_hist', the observed histogram "
        f"of dataset 2015 in {src}, among 300 other histograms; a pattern of background-only "
        "toys must leave the data out (e.g. '*_toy_*').",
    )
    code, out, err = run_cli_here("validate", _toyscan_config(tmp_path, shared_data, "*_toy_*"))
    assert code == 0, err


def _two_toys_of_the_demo(tmp_path: Path, toys: Path, pattern: str, out: Path) -> Path:
    """A quickstart child that scans two toys of ``toys`` (in one task) into ``out``."""
    return quickstart_child(
        tmp_path / "t.toml",
        f"""
        output = "{out}"
        [toyscan]
        file = "{toys}"
        pattern = "{pattern}"
        max_toys = 2
        chunk = 2
        [steps]
        run = ["toyscan"]
        """,
    )


def test_a_later_toy_of_another_binning_fails_its_task(tmp_path: Path) -> None:
    """validate compares the first toy with the data; the task read every later toy without
    looking at its bins, so a toy of another binning was scanned and pooled into
    toyscan_summary.csv (a review). It now fails its task in one sentence."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    toys = tmp_path / "toys.root"
    with uproot.recreate(toys) as f:
        f["bins/a_toy_0"] = (counts.astype(float), edges)
        f["bins/a_toy_1"] = (counts.reshape(-1, 2).sum(axis=1).astype(float), edges[::2])
    cfg = _two_toys_of_the_demo(tmp_path, toys, "bins/*", tmp_path / "out")
    code, _, err = run_cli_here("run", cfg)
    assert code == 1
    assert (
        f"{toys}: histogram 'bins/a_toy_1' (toyscan.pattern) does not have the binning of "
        "'bins/a_toy_0'." in " ".join(err.split())
    )
    assert not (tmp_path / "out" / "nominal" / "toyscan.csv").exists()


def test_a_moved_toy_file_recomputes_nothing(tmp_path: Path) -> None:
    """The toy file's path was in the toy scan's key (not only its digest): the same file
    moved and named anew scanned its toys again (a 100-toy family of the real files takes
    minutes; a review). A file of other content does."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    rng = np.random.default_rng(3)
    first = tmp_path / "a" / "toys.root"
    first.parent.mkdir()
    with uproot.recreate(first) as f:
        for k in range(2):
            f[f"t_toy_{k}"] = (rng.poisson(counts).astype(float), edges)
    out = tmp_path / "out"
    code, so, se = run_cli_here("run", _two_toys_of_the_demo(tmp_path, first, "t_toy_*", out))
    assert code == 0, so + se
    before = (out / "nominal" / "toyscan.csv").read_bytes()
    moved = tmp_path / "b" / "moved.root"
    moved.parent.mkdir()
    first.rename(moved)
    code, so, se = run_cli_here("run", _two_toys_of_the_demo(tmp_path, moved, "t_toy_*", out))
    assert code == 0 and "Nothing to do: all 2 tasks are up to date" in so, so + se
    assert (out / "nominal" / "toyscan.csv").read_bytes() == before
    with uproot.recreate(moved) as f:  # other toys at the same path: scanned anew
        for k in range(2):
            f[f"t_toy_{k}"] = (rng.poisson(counts).astype(float), edges)
    code, so, se = run_cli_here("run", _two_toys_of_the_demo(tmp_path, moved, "t_toy_*", out))
    assert code == 0 and "Nothing to do" not in so, so + se
    assert (out / "nominal" / "toyscan.csv").read_bytes() != before


def test_toyscan_needs_a_file(tmp_path: Path, cli) -> None:
    cfg = quickstart_child(
        tmp_path / "c.toml",
        """
        [steps]
        run = ["toyscan"]
        """,
    )
    code, _, err = cli("validate", cfg)  # the mistake is here (it named the shipped defaults)
    assert code == 1
    assert (
        err.strip() == f"error: {cfg}:4: steps.run: includes 'toyscan', which needs toyscan.file."
    )


def test_tail_fraction_error_counts_correlated_rows() -> None:
    """Rows of one toy are correlated: the error of a tail fraction comes from the spread
    of the per-toy counts (here every excess comes in a block of 4 neighbouring masses)."""
    from gprpipe.steps.toyscan import tail_fraction

    T, M = 200, 50
    z = np.zeros((T, M))
    z[::10, 10:14] = 3.5  # 20 toys with 4 correlated rows above 3
    toys = {"toy": np.repeat(np.arange(T), M), "Z_local": z.ravel(), "status": np.full(T * M, "ok")}
    f, err = tail_fraction(toys, 3.0)
    assert f == pytest.approx(80 / (T * M))
    n_t = np.full(T, M)
    c_t = (z > 3).sum(1)
    assert err == pytest.approx(np.std(c_t - f * n_t, ddof=1) * np.sqrt(T) / (T * M))
    assert err > 1.9 * np.sqrt(f * (1 - f) / (T * M))  # about 2x the naive binomial error


def test_toyscan_summary_leaves_flagged_rows_out() -> None:
    """Flagged rows keep their numbers in toyscan.csv but count neither in the per-mass
    summary, nor in the tail fractions, nor in the maximum Z per toy."""
    from gprpipe.steps.toyscan import max_z_per_toy, overview, summarize

    toys = {
        "toy": np.array([0, 0, 1, 1]),
        "mass_GeV": np.array([0.03, 0.04, 0.03, 0.04]),
        "A_hat": np.array([10.0, 600.0, -5.0, 20.0]),
        "sigma_A": np.full(4, 100.0),
        "Z_local": np.array([0.1, 6.0, 0.0, 0.2]),
        "status": np.array(["ok", "flag_gof+flag_one_sideband", "ok", "ok"]),
    }
    s = summarize(toys)
    np.testing.assert_array_equal(s["n_kept"], [2, 1])
    np.testing.assert_array_equal(s["n_flagged"], [0, 1])
    assert s["A_hat_mean"][1] == pytest.approx(20.0)
    ov = overview(toys)
    assert ov["n_ok_Z_gt5"] == 0 and ov["max_Z_local_flagged"] == pytest.approx(6.0)
    assert ov["max_Z_local_ok"] == pytest.approx(0.2)
    np.testing.assert_allclose(max_z_per_toy(toys), [0.1, 0.2])
    # a failed row is no flagged one (both were n_flagged, a review); a toy with no ok Z
    # has no maximum (it was 0)
    toys["status"] = np.array(["ok", "flag_gof", "fit failed: x", "fit failed: x"])
    toys["Z_local"] = np.array([0.1, 6.0, np.nan, np.nan])
    s = summarize(toys)
    np.testing.assert_array_equal(s["n_kept"], [1, 0])
    np.testing.assert_array_equal(s["n_flagged"], [0, 1])
    np.testing.assert_array_equal(s["n_failed"], [1, 1])
    ov = overview(toys)
    assert (ov["n_ok"], ov["n_flagged"], ov["n_failed"]) == (1, 1, 2)
    np.testing.assert_allclose(max_z_per_toy(toys), [0.1, np.nan])


def test_failed_toy_fits_are_results_of_the_scan_not_a_failed_run(tmp_path: Path) -> None:
    """A toy whose fit fails at some masses (a 20,000-event spike at 60 MeV: the windows
    near it overflow) is counted and named, toy by toy; the run does not fail for it (it
    exited 1 with '4 of 10 masses failed' and no toy named, while summary said nothing)."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    x = 0.5 * (edges[1:] + edges[:-1])
    spiked = counts.copy()
    i = int(np.searchsorted(x, 0.06))
    spiked[i : i + 10] += 20000
    toys = tmp_path / "toys.root"
    with uproot.recreate(toys) as f:
        f["toys/t_toy_0"] = (counts, edges)
        f["toys/t_toy_1"] = (spiked, edges)
    cfg = _two_toys_of_the_demo(tmp_path, toys, "toys/*", tmp_path / "run")
    code, out, err = run_cli_here("run", cfg)
    table = tmp_path / "run" / "nominal" / "toyscan.csv"
    why = (
        "(first: toy 'toys/t_toy_1' at 0.03 GeV: fit failed: the background prediction in "
        "the blind window overflows"
    )
    assert code == 0, out + err
    assert f"4 of 10 toy rows (toy, mass) failed in {table} {why}" in err
    line = f"  toy scan: 4 of 10 toy rows (toy, mass) failed {why}"
    assert line in out
    code, out, _ = run_cli_here("summary", tmp_path / "run")
    assert code == 0 and line in out
    rows = list(csv.DictReader(table.open()))
    assert {r["status"] for r in rows if r["hist"] == "toys/t_toy_0"} == {"ok"}


def test_the_max_z_figure_of_toys_without_a_maximum_is_drawn() -> None:
    """Every toy flagged or failed at every mass: no toy has a maximum (NaN). The plot
    step divided by their number (0) and failed (a review); it draws the figure and
    says so."""
    import matplotlib

    matplotlib.use("Agg")
    from gprpipe.plotting.lee import max_z_figure

    fig = max_z_figure(
        np.full(3, np.nan), 5.0, "t", z_obs=1.2, others={"refit": np.full(2, np.nan)}
    )
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no toy has a maximum Z (their fits failed)" in texts


def test_a_toy_window_without_events_is_a_failed_row(tmp_path: Path, shared_data: Path) -> None:
    """A real toy's window at 10 MeV holds no events (about 0.2 expected per bin): its
    signal fit runs to the boundary (sigma_A infinite). It was an ``ok`` row with
    sigma_A = inf, pooled into the summary as perfect closure (pull 0); it fails as the
    data's row does (a review)."""
    src = shared_data / "funcform_2015_toys.root"
    cfg = write(
        tmp_path / "ts.toml",
        f"""
        [base]
        template = "hps2015"
        name = "ts"
        output = "{tmp_path / "run"}"
        [datasets.2015]
        path = "{src}"
        range = [0.010, 0.1499]
        [scan]
        masses = [0.010, 0.060]
        [toyscan]
        file = "{src}"
        pattern = "fShiftSigPow/*_toy_*"
        max_toys = 1
        [steps]
        run = ["toyscan"]
        """,
    )
    code, out, err = run_cli_here("run", cfg)
    assert code == 0, out + err
    point = tmp_path / "run" / "nominal"
    low, mid = csv.DictReader((point / "toyscan.csv").open())
    assert low["mass_GeV"] == "0.01" and low["status"] == (
        "limit failed: the signal fit in the window (or its profile at A = 0) did not converge "
        "(A_hat -0.7979, "
        "sigma_A inf): the window holds no events"
    )
    assert low["sigma_A"] == "nan" and mid["status"] == "ok"
    assert float(mid["sigma_A"]) == pytest.approx(6954.19, rel=1e-4)
    summary = list(csv.DictReader((point / "toyscan_summary.csv").open()))
    assert [(s["mass_GeV"], s["n_kept"], s["n_failed"]) for s in summary] == [
        ("0.01", "0", "1"),
        ("0.06", "1", "0"),
    ]


def test_toys_scanned_beyond_their_generating_fit_range_get_a_notice(shared_data: Path, cli):
    """A review: the 2016 fShiftSigPowTail toys, with the GP trained over the whole
    histogram, scanned with sigma_A 30-60 times the data's and no word said; their fit
    covered 40-210 MeV (fit_metadata). validate and run now say so, naming the key; a
    training range within the fit's says nothing."""
    from conftest import REPO

    toys = shared_data / "funcform_2016_toys.root"
    args = (
        "validate",
        REPO / "user_configs" / "hps2016.toml",
        *settings(
            f"datasets.2016.path={toys}",
            f"toyscan.file={toys}",
            'steps.run=["load","fit","limit","toyscan"]',
        ),
    )
    code, out, err = cli(*args, *settings("toyscan.pattern=fShiftSigPowTail/*_toy_*"))
    assert code == 0 and ": valid (1 point" in out, err
    assert err.splitlines() == [
        "notice: toyscan.file: the fShiftSigPowTail toys were generated by a fit over "
        "40-210 MeV (the file's fit_metadata), and the GP trains on the whole histogram (0-300 "
        "MeV) (datasets.2016.data_range): outside the fit's range the toys need not follow the "
        "data, and the toy scan then checks a background the data do not have; "
        "datasets.2016.data_range = [0.04, 0.21] trains within it."
    ]
    # every family the pattern matches, each with its own fit's range
    code, _, err = cli(*args, *settings("datasets.2016.data_range=[0.035, 0.2]"))
    assert code == 0 and len(err.splitlines()) == 3, err
    assert "the fGenGammaThresh toys were generated by a fit over" in err
    assert "and the GP trains on 35-200 MeV (datasets.2016.data_range)" in err
    code, _, err = cli(
        *args,
        *settings(
            "toyscan.pattern=fShiftSigPowTail/*_toy_*", "datasets.2016.data_range=[0.04,0.21]"
        ),
    )
    assert code == 0 and err == "", err
    # injections into the toy histograms (a review: no word was said there)
    injection = (
        "validate",
        REPO / "user_configs" / "hps2016.toml",
        *settings(
            f"datasets.2016.path={toys}",
            'steps.run=["load","fit","limit","inject"]',
            "inject.masses=[0.1]",
            "inject.refit_gp=true",
            'inject.background="histograms"',
            "inject.histograms=fShiftSigPowTail/*_toy_*",
        ),
    )
    code, out, err = cli(*injection)
    assert code == 0 and ": valid (1 point" in out, err
    assert err.splitlines() == [
        "notice: inject.histograms: the fShiftSigPowTail toys were generated by a fit over "
        "40-210 MeV (the file's fit_metadata), and the GP trains on the whole histogram (0-300 "
        "MeV) (datasets.2016.data_range): outside the fit's range the toys need not follow the "
        "data, and the injections then measure a background the data do not have; "
        "datasets.2016.data_range = [0.04, 0.21] trains within it."
    ]
    code, _, err = cli(*injection, *settings("datasets.2016.data_range=[0.04,0.21]"))
    assert code == 0 and err == "", err
    # a dataset nothing is injected into (no injected mass in its range) gets no word: the
    # 2015+2016 config injecting at 25 MeV, in 2015's range alone (2016 trains beyond its
    # toys' fit range, 2015 within its own)
    both = settings(
        f"datasets.2015.path={shared_data / 'funcform_2015_toys.root'}",
        f"datasets.2016.path={toys}",
        *injection[2:][1::2],
        "inject.masses=[0.025]",
        "datasets.2015.data_range=[0.015,0.135]",
        "datasets.2016.data_range=[0.03,0.25]",
    )
    code, out, err = cli("validate", REPO / "user_configs" / "hps2015_2016_combined.toml", *both)
    assert code == 0 and ": valid (1 point" in out and err == "", err


def _toy_file_with_metadata(path: Path, title: str) -> Path:
    """A toy file of the demo binning whose family 'fam' has ``title`` as its metadata."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    meta = uproot.writing.identify.to_TH1x(
        fName="m",
        fTitle=title,
        data=np.zeros(3),
        fEntries=0.0,
        fTsumw=0.0,
        fTsumw2=0.0,
        fTsumwx=0.0,
        fTsumwx2=0.0,
        fSumw2=np.zeros(3),
        fXaxis=uproot.writing.identify.to_TAxis(
            fName="xaxis", fTitle="", fNbins=1, fXmin=0.0, fXmax=1.0
        ),
    )
    with uproot.recreate(path) as f:
        f["fam/fam_toy_1"] = (counts, edges)
        f["fit_metadata/fam_metadata"] = meta
    return path


def test_the_toy_range_notice_reads_odd_metadata_without_failing(tmp_path: Path, cli):
    """A review: metadata of 5,000 '[' stopped validate with "internal error:
    RecursionError"; a NaN or reversed range printed "a fit over nan-200 MeV" or advice
    validate refuses. They say nothing now; a sound record over part of the histogram
    gives its notice, with the histogram's span."""
    steps = 'steps.run=["load","fit","limit","toyscan"]'
    for title, notice in (
        ("[" * 5000, False),
        ('{"fit_min_GeV": NaN, "fit_max_GeV": 0.1}', False),
        ('{"fit_min_GeV": 0.1, "fit_max_GeV": 0.04}', False),
        ('{"fit_min_GeV": 0.0, "fit_max_GeV": 1.0}', False),  # covers the histogram
        ('{"fit_min_GeV": 0.04, "fit_max_GeV": 0.1}', True),
    ):
        toys = _toy_file_with_metadata(tmp_path / "t.root", title)
        extra = settings(f"toyscan.file={toys}", "toyscan.pattern=fam/*", steps)
        code, out, err = cli("validate", QUICKSTART, *extra)
        assert code == 0 and "valid" in out, err
        assert ("notice: toyscan.file: the fam toys" in err) == notice, (title[:40], err)
    assert "and the GP trains on the whole histogram (" in err


def test_the_toy_maximum_figure_leaves_out_whole_scan_toys_of_other_settings(
    tmp_path: Path, shared_data: Path
) -> None:
    """A review: toyscan_max_z took the whole-scan toys of limit.h5 whenever the file was
    there, also when the plot step had just refused it as made with other settings (its
    notice said 'not drawn'): the figure kept the old toys and the manifest did not list
    limit.h5 among its inputs, so nothing ever called the figure stale."""
    cfg = _toyscan_config(tmp_path, shared_data, "fShiftSigPow/*_toy_*")
    sets = ("scan.masses=[0.06, 0.08]", "toyscan.max_toys=2", "plot.masses=[]")
    steps = ("--steps", "load,fit,limit,toyscan,plot")
    code, out, err = run_cli_here("run", cfg, *steps, *settings(*sets, "limit.global_toys=40"))
    assert code == 0, out + err
    figure = tmp_path / "run" / "nominal" / "plots" / "toyscan_max_z.png"
    with_toys = hash(figure.read_bytes())
    code, out, err = run_cli_here(
        "run", cfg, "--steps", "toyscan,plot", *settings(*sets, "limit.global_toys=30")
    )
    assert code == 0, out + err
    log = (tmp_path / "run" / "nominal" / "logs" / "plot.log").read_text()
    assert "notice: limit.h5 was made with other settings or inputs; not drawn" in log
    assert hash(figure.read_bytes()) != with_toys  # drawn again, from the validation toys
    manifest = json.loads((figure.parent / "manifest.json").read_text())
    assert "limit.h5" not in manifest["drawn"]
