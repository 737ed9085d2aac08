"""The full production scans on the real HPS histograms, run as a user runs them.

2015 (111 masses), 2016 (176) and 2021 (221): every row ok, GP fits converged, ordered
bands, eps^2 > 0, Z_global <= Z_local; two runs with the same seed give identical results
(each of the 2015 and 2016 scans alone and the same dataset's rows of the session's
2015 + 2016 combined run, byte for byte); and on independent background-only
functional-form toys the scan shows no false bumps.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, run_cli_here, settings
from scipy.special import ndtri as ndtr_inv

from gprpipe.stats.quality import has_result

pytestmark = pytest.mark.slow
N_MASSES = {"2015": 111, "2016": 176, "2021": 221}


def scan(year: str, out: Path) -> list[dict[str, str]]:
    src = SHARED_DATA / f"funcform_{year}_toys.root"
    if not src.exists():
        pytest.skip(f"{src} not available")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gprpipe",
            "run",
            f"user_configs/hps{year}.toml",
            "--steps",
            "load,fit,limit",
            *settings(
                f"datasets.{year}.path={src}",
                f"datasets.{year}.hist=input_hist",
                f"base.output={out}",
            ),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    with open(out / "nominal" / "scan.csv") as fh:
        return list(csv.DictReader(fh))


def check_rows(rows: list[dict[str, str]], year: str) -> None:
    assert len(rows) == N_MASSES[year]
    # every mass has results; a few may carry a background-model quality flag (2016: 3 of
    # 176 masses at 137-139 MeV, gof_p 3e-4 to 8e-4)
    assert all(has_result(r["status"]) for r in rows)
    assert sum(r["status"] != "ok" for r in rows) <= 0.02 * N_MASSES[year]
    assert sum(r["gp_converged"] == "true" for r in rows) >= N_MASSES[year] - 1
    f = {
        k: np.array([float(r[k]) for r in rows])
        for k in rows[0]
        if k not in ("dataset", "status", "gp_converged")
    }
    for q in ("A", "eps2"):
        bands = np.array([f[f"{q}_exp_{b}"] for b in ("lo2", "lo1", "med", "hi1", "hi2")])
        assert (np.diff(bands, axis=0) > 0).all()
    assert (f["eps2_up"] > 0).all() and (f["eps2_exp_med"] > 0).all()
    # flagged rows have no global Z (NaN): they do not count as a discovery
    assert ((f["Z_global"] <= f["Z_local"] + 1e-12) | np.isnan(f["Z_global"])).all()
    assert ((f["p0_global"] >= f["p0_local"] - 1e-15) | np.isnan(f["p0_global"])).all()
    assert (f["sigma_A"] > 0).all() and np.isfinite(f["gp_lml"]).all()


def rows_of(path: Path, dataset: str) -> list[list[str]]:
    """The header and the rows of ``dataset`` of a scan.csv, as written."""
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    return [table[0], *(r for r in table[1:] if r[0] == dataset)]


@pytest.mark.parametrize("year", ["2015", "2016"])
def test_2015_2016_scans_and_reproducibility(tmp_path: Path, year: str, real_combined: Path):
    """The scan alone (``user_configs/hps<year>.toml``), and the reproducibility of a run:
    the same seed gives the same rows, character for character, in the combined run."""
    check_rows(scan(year, tmp_path), year)
    alone = rows_of(tmp_path / "nominal" / "scan.csv", year)
    assert len(alone) == N_MASSES[year] + 1
    assert alone == rows_of(real_combined / "nominal" / "scan.csv", year)


def test_2021_scan(tmp_path: Path) -> None:
    """The 2021 scan; its windows at 247-250 MeV lie next to about 48 events per bin
    (window sparsity above 0.7, up to 0.77): flag_sparse, the rest ok."""
    rows = scan("2021", tmp_path)
    check_rows(rows, "2021")
    flagged = [(r["mass_GeV"], r["status"]) for r in rows if r["status"] != "ok"]
    assert flagged == [(m, "flag_sparse") for m in ("0.247", "0.248", "0.249", "0.25")]


def test_background_only_toys_show_no_false_bumps() -> None:
    """Scan 2 toys of each of the three functional forms at every second 2015 test mass
    (6 x 56 = 336 windows): pulls A_hat/sigma_A have mean ~0 and width ~1 and the local
    significance tail is background-like.

    Every second mass: the 1 MeV mass step is below the resolution sigma (1-7 MeV), so the
    results at neighbouring masses are strongly correlated; the effective number of
    independent windows per scan (about 9, from the overlap of the signal templates) and
    hence the statistical errors of these fractions and moments are the same with every
    mass or every second one, and so are the tolerances (formerly all 111 masses, 666
    windows). The full study: benchmarks/study_background_toys.py."""
    if not (SHARED_DATA / "funcform_2015_toys.root").exists():
        pytest.skip("real data not available")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from study_background_toys import FAMILIES, scan_toy

    res = [scan_toy(("2015", fam, t), stride=2) for fam in FAMILIES for t in range(2)]
    pull = np.concatenate([r["pull"] for r in res])
    z = np.concatenate([r["z"] for r in res])
    assert len(pull) == 336
    assert np.concatenate([r["conv"] for r in res]).mean() > 0.99
    assert abs(pull.mean()) < 0.2
    assert 0.8 < pull.std() < 1.2
    assert 0.35 < (z > 0).mean() < 0.65
    assert (z > 2).mean() < 0.06


def test_whole_scan_toys_biased_at_the_2015_headline_mass_are_flagged(tmp_path: Path) -> None:
    """The look-elsewhere toys are Poisson draws around a GP fit of the whole spectrum,
    which each window's fit does not reproduce: at the real 2015 data's most significant
    mass (124 MeV, Z_local 2.73) 1,000 toys have Z_local = 0 in 35% of cases, not 50%
    (a statistics review). Their local p0 there (0.008) is then no clean check of the
    asymptotic one (0.0032): the column, the summary and the count of such masses say so."""
    src = SHARED_DATA / "funcform_2015_toys.root"
    if not src.exists():
        pytest.skip(f"{src} not available")
    code, out, err = run_cli_here(
        "run",
        REPO / "user_configs" / "hps2015.toml",
        "--steps",
        "load,fit,limit",
        "--unblind",
        *settings(
            f"datasets.2015.path={src}",
            f"base.output={tmp_path}",
            "limit.global_toys=1000",
            "scan.masses=[0.05, 0.065, 0.09, 0.124]",
        ),
    )
    assert code == 0, out + err
    with open(tmp_path / "nominal" / "scan.csv") as fh:
        rows = {round(float(r["mass_GeV"]), 3): r for r in csv.DictReader(fh)}
    best = rows[0.124]
    f, e = float(best["frac_Z0_toys"]), float(best["frac_Z0_toys_err"])
    assert e == pytest.approx(0.5 / np.sqrt(1000))
    assert 0.30 < f < 0.40, f  # 0.352 here
    assert float(best["Z_local"]) == pytest.approx(2.73, abs=0.01)
    shift = -float(ndtr_inv(f))
    assert (
        f"the toys' P(Z_local = 0) there is {f:.3f} (0.5 +- {e:.2g} for unbiased toys): the "
        f"window's fit puts the toys' background about {shift:.2f} sigma_A below their mean "
        "there, so their p0 is no clean check of the asymptotic one"
    ) in out, out
    assert "whole-scan toys biased at 4 of 4 masses" in out, out
