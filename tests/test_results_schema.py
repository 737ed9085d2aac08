"""The results schema: the file contracts (scan.csv / inject.csv headers), HDF5 and CSV
round trips through the shared readers and writer."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from gprpipe.io.hdf5 import write_group
from gprpipe.results import schema
from gprpipe.steps import inject, limit, toyscan

SCAN_HEADER = (
    "dataset,mass_GeV,sigma_m_GeV,A_hat,sigma_A,A_up,A_up_err,A_exp_lo2,A_exp_lo1,A_exp_med,"
    "A_exp_hi1,A_exp_hi2,eps2_up,eps2_up_err,eps2_exp_lo2,eps2_exp_lo1,eps2_exp_med,eps2_exp_hi1,eps2_exp_hi2,exp_band_rel_err,"
    "p0_local,Z_local,p0_global,Z_global,p0_global_toys,p0_global_toys_err,Z_global_toys,"
    "p0_local_toys,p0_local_toys_err,frac_Z0_toys,frac_Z0_toys_err,gp_length_scale,"
    "gp_amplitude,gp_lml,gp_converged,gof_chi2_ndf,gof_p,status"
)
INJECT_HEADER = (
    "dataset,mass_GeV,z_inj,A_inj,n_kept,n_generated,A_hat_mean,A_hat_std,pull_mean,"
    "pull_mean_err,pull_width,cov_1sigma,cov_1sigma_err,cov_2sigma,cov_2sigma_err,Zhat_mean,"
    "refit_gp"
)


def test_file_headers_are_the_contract():
    assert ",".join(schema.SCAN.names) == SCAN_HEADER
    assert ",".join(schema.INJECT.names) == INJECT_HEADER
    blind = schema.BLIND_SCAN.names
    assert blind[-1] == "blinded" and not set(blind) & set(schema.OBSERVED)
    assert blind[:-1] == tuple(c for c in schema.SCAN.names if c not in schema.OBSERVED)
    # the steps write what the schema defines (one definition)
    assert schema.SCAN.names == limit.COLUMNS
    assert blind == limit.BLIND_COLUMNS
    assert schema.INJECT.names == inject.CSV_COLUMNS
    assert schema.TOYSCAN.names == toyscan.COLUMNS
    assert schema.TOYSCAN_SUMMARY.names == toyscan.SUMMARY


def test_masses_are_in_gev_everywhere():
    for table in (schema.FIT, schema.SCAN, schema.INJECT, schema.TOYSCAN, schema.TOYSCAN_SUMMARY):
        masses = [
            c for c in table.columns if c.name.startswith("mass") or c.name.startswith("sigma_m")
        ]
        assert masses and all(c.unit == "GeV" for c in masses), table.name


def test_hdf5_and_csv_round_trip(tmp_path):
    rows = {
        "2015": {
            "mass_GeV": np.array([0.06, 0.03]),
            "z_inj": np.array([1.0, 2.0]),
            "A_inj": np.array([12.5, math.nan]),
            "n_kept": np.array([100, 7]),
            "refit_gp": np.array([False, True]),
            "mass": np.array([0.06, 0.03]),
        }
    }
    parts = []
    for i in range(2):  # two chunk files, one mass each: collect merges and sorts by mass
        p = tmp_path / f"part{i}.h5"
        with h5py.File(p, "w") as f:
            write_group(f.create_group("2015"), {k: v[i : i + 1] for k, v in rows["2015"].items()})
        parts.append(p)
    merged = schema.collect(parts)
    np.testing.assert_array_equal(merged["2015"]["mass_GeV"], [0.03, 0.06])
    np.testing.assert_array_equal(merged["2015"]["n_kept"], [7, 100])
    cols = ("dataset", "mass_GeV", "z_inj", "A_inj", "n_kept", "refit_gp")
    text = schema.csv_text(merged, cols)
    assert text == (
        "dataset,mass_GeV,z_inj,A_inj,n_kept,refit_gp\n"
        "2015,0.03,2,nan,7,true\n2015,0.06,1,12.5,100,false\n"
    )
    out = tmp_path / "t.csv"
    out.write_text(text)
    back = schema.read_csv(out)
    assert back[1] == {
        "dataset": "2015",
        "mass_GeV": "0.06",
        "z_inj": "1",
        "A_inj": "12.5",
        "n_kept": "100",
        "refit_gp": "false",
    }
    with h5py.File(tmp_path / "inject.h5", "w") as f:
        write_group(f.create_group("2015"), merged["2015"])
    assert schema.read_inject(tmp_path / "inject.h5")["2015"]["A_inj"][1] == 12.5
    assert schema.read_toys(tmp_path / "inject.h5", "2015") == {}


def test_a_fit_file_of_another_format_is_one_sentence(tmp_path):
    """A fit.h5 written before the masses were named mass_GeV there (``mass``, ``sigma_m``):
    export and plot said "internal error: KeyError: 'mass_GeV'"."""
    from gprpipe.errors import GprpipeError

    path = tmp_path / "fit.h5"
    arrays = {c: np.array([0.06]) for c in schema.FIT.names if c not in ("status", "gp_reason")}
    arrays |= {"status": np.array(["ok"]), "gp_reason": np.array([""])}
    with h5py.File(path, "w") as f:
        f.attrs["gprpipe_version"] = "0.1.0"
        write_group(f.create_group("demo"), arrays)
    assert schema.read_fit(path, "demo")["mass_GeV"][0] == 0.06
    with h5py.File(path, "a") as f:
        f["demo"].move("mass_GeV", "mass")
        f["demo"].move("sigma_m_GeV", "sigma_m")
    with pytest.raises(GprpipeError) as err:
        schema.read_fit(path, "demo")
    assert str(err.value) == (
        f"{path}: /demo has no mass_GeV, sigma_m_GeV (a fit.h5 of another format than this "
        "gprpipe reads); run the point again to recompute it."
    )


def test_the_comparison_table_is_the_schema_table():
    """compare_<dataset>.csv was written line by line in the command line (6 significant
    digits, its columns nowhere defined): it is the schema's COMPARE table, written by its
    CSV writer (8 digits, NaN as nan) and read back by the same reader."""
    from gprpipe.results.compare import DatasetComparison, Ratio, comparison_csv

    comp = DatasetComparison("2015")
    comp.ratios = [
        Ratio("b", np.array([0.03, 0.1]), np.array([1.0 / 3.0, 2.0]), np.array([0.5, 1.25])),
        Ratio("c", np.array([0.03]), np.array([np.nan]), np.array([1.123456789])),
    ]
    text = comparison_csv(comp)
    assert text == (
        "dataset,point,mass_GeV,ratio_observed,ratio_expected\n"
        "2015,b,0.03,0.33333333,0.5\n"
        "2015,b,0.1,2,1.25\n"
        "2015,c,0.03,nan,1.1234568\n"
    )
    assert tuple(text.splitlines()[0].split(",")) == schema.COMPARE.names


def test_the_combination_and_reach_tables_are_schema_tables():
    """combination.csv, allocation.csv and reach.csv were written by a writer of their own
    in the steps (6 significant digits, header lists beside the rows): the schema defines
    them and its row writer writes them, refusing a row that does not fit the table."""
    row = ["2015", 0.06, 1.23456789e-7, 0.25, 5e-7, 12.3456789, 2.5, np.float64(3e-7), np.nan]
    text = schema.rows_csv(schema.COMBINATION, [row])
    assert text == (
        "dataset,mass_GeV,sigma_eps2,info_fraction,eps2_5sigma,A_5sigma,Z_needed_5sigma,"
        "eps2_exp_med,ratio_to_best_single\n"
        "2015,0.06,1.2345679e-07,0.25,5e-07,12.345679,2.5,3e-07,nan\n"
    )
    with pytest.raises(ValueError, match="a row of 2 values for table 'combination'"):
        schema.rows_csv(schema.COMBINATION, [["2015", 0.06]])
    assert schema.reach_table(["2015", "2016"]).names == (
        "mass_GeV",
        "eps2_exp_med_2015",
        "eps2_exp_med_2016",
        "eps2_proj_2015",
        "eps2_proj_2016",
        "eps2_exp_med_combined_ivw",
        "eps2_proj_combined",
        "eps2_exp_med_combined_fit",
    )
