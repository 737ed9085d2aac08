"""The HTML report: rendering (autoescaped, every PNG and export picked up, blinded runs
marked) and, in a real headless chromium driven by playwright, that the page loads without
console errors, every image loads and the scan table sorts on click.

The browser tests skip when chromium or playwright is missing, and fail instead under
``CI=true`` (``scripts/setup-chromium.sh`` installs chromium; ``.ci/run`` calls it).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import QUICKSTART, run_cli_here, settings, unavailable

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.commit import record_export
from gprpipe.results.schema import read_csv_table
from gprpipe.results.summary import Extreme, dataset_lines, summarize_scan
from gprpipe.steps.report import NOT_CURRENT, write_reports

CHROMIUM = Path("/usr/bin/chromium")
#: the figures these tests read: PNGs (PDFs would double the drawing and add nothing
#: here), no reviewer display of the observed data
FEW_FIGURES = ('plot.formats=["png"]', "plot.displays.observed=[]")


def _browser_or_skip():
    """playwright's sync API and the chromium binary, or skip (fail under CI=true)."""
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install playwright)"
    if why is None and not CHROMIUM.exists():
        why = f"{CHROMIUM} not found (scripts/setup-chromium.sh installs it)"
    if why:
        unavailable(why)
    return sync_playwright


COLUMNS = [
    "dataset",
    "mass_GeV",
    "sigma_m_GeV",
    "A_hat",
    "sigma_A",
    "A_up",
    "Z_local",
    "Z_global",
    "gp_converged",
    "status",
]


def _point(tmp: Path, *, blind: bool = False, label: str = "HPS 2015") -> tuple[Config, Path]:
    """A point folder with a real scan.csv (numbers shuffled in mass), two real PNGs, a
    HEPData export, a pyhf-like JSON export, config.toml and run.json."""
    run = tmp / "run"
    point = run / "nominal"
    (point / "plots").mkdir(parents=True)
    rng = np.random.default_rng(3)
    masses = rng.permutation(np.round(np.arange(0.020, 0.045, 0.001), 3))
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.writer(f)
        cols = [
            c
            for c in COLUMNS
            if not blind or c in ("dataset", "mass_GeV", "sigma_m_GeV", "gp_converged", "status")
        ]
        w.writerow([*cols, "blinded"] if blind else cols)
        for i, m in enumerate(masses):
            z = 3.2 if abs(m - 0.031) < 1e-9 else float(rng.uniform(0, 2))
            row = {
                "dataset": "2015",
                "mass_GeV": m,
                "sigma_m_GeV": 0.05 * m,
                "A_hat": z * 100,
                "sigma_A": 100.0,
                "A_up": 300 + i,
                "Z_local": z,
                "Z_global": max(z - 2.5, 0.0),
                "gp_converged": "false" if i == 4 else "true",
                "status": "limit failed: test" if i == 7 else "ok",
            }
            w.writerow([*(row[c] for c in cols), "true"] if blind else [row[c] for c in cols])
    for stem in ("brazil_eps2_2015", "spectrum"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [0, 1])
        fig.savefig(point / "plots" / f"{stem}.png")
        plt.close(fig)
    manifest = {"files": ["plots/brazil_eps2_2015.png", "plots/spectrum.png"]}
    (point / "plots" / "manifest.json").write_text(json.dumps(manifest))  # as plot writes it
    (point / "hepdata").mkdir()
    (point / "hepdata" / "limits_eps2_2015.yaml").write_text("independent_variables: []\n")
    (point / "workspace_2015_60MeV.json").write_text("{}\n")
    (point / "fit.h5").write_bytes(b"the fit it was exported from")
    record_export(point, [point / "workspace_2015_60MeV.json"], point / "fit.h5")  # as exports do
    (point / "config.toml").write_text('[base]\nname = "a <b>test</b>"\n')
    (run / "run.json").write_text(
        json.dumps(
            {
                "created": "2026-01-01T00:00:00+00:00",
                "command": ["gprpipe", "run", "x.toml"],
                "versions": {"gprpipe": "0.1.0", "git_commit": "abc123"},
                "grid": [{"name": "nominal", "values": {}, "dir": str(point), "seed": 7}],
                "plan": [{"id": "nominal/load"}, {"id": "nominal/fit/2015-000"}],
                "timings": {
                    "nominal/load": {"state": "done", "seconds": 1.5},
                    "other/load": {"state": "done", "seconds": 9.0},
                },
                "blinding": {"blind": blind, "unblind_option": False, "config_was_blind": blind},
            }
        )
    )
    cfg = Config.model_validate(
        {
            "base": {"name": "a <b>test</b>", "blind": blind, "seed": 7},
            "datasets": {
                "2015": {
                    "path": "x.root",
                    "range": [0.02, 0.13],
                    "sigma_coeffs": [0.001],
                    "label": label,
                }
            },
        }
    )
    return cfg, point


def _vouch(run: Path) -> None:
    """Record the tables and limits this test wrote in its points as their runs' (a commit
    record, as the limit step writes it): the index summarises no other point's file that
    no task vouches for."""
    from gprpipe.config import point_config_from_file
    from gprpipe.io.hdf5 import sha256_file
    from gprpipe.pipeline.cache import task_key
    from gprpipe.pipeline.plan import producers

    for point in (d for d in run.iterdir() if (d / "config.toml").is_file()):
        names = [n for n in ("scan.csv", "limit.h5") if (point / n).is_file()]
        files = {n: sha256_file(point / n) for n in names}
        # the key the point's config gives its limit merge (no datasets: no inputs), so
        # that the index finds the table of this config
        pc = point_config_from_file(point / "config.toml")
        key = task_key(producers(point.name, point, pc)[point / "scan.csv"], pc)
        record = {"task": f"{point.name}/limit/merge", "cache_key": key, "files": files}
        (point / ".state").mkdir(exist_ok=True)
        (point / ".state" / "limit__merge.commit").write_text(json.dumps(record))


def _reports(cfg: Config, point: Path) -> list[Path]:
    """:func:`write_reports` of a point whose run's files the test wrote (:func:`_vouch`)."""
    _vouch(point.parent)
    return write_reports(cfg, point)


def test_summary_of_a_scan(tmp_path):
    _, point = _point(tmp_path)
    (s,) = summarize_scan(read_csv_table(point / "scan.csv")[1])
    assert not s.blinded and s.n_masses == 25
    assert s.most_significant == Extreme(0.031, 3.2) and s.Z_global == pytest.approx(0.7)
    assert s.n_failed == 1 and s.not_ok[0][1] == "limit failed: test" and s.n_flagged == 0
    assert s.n_not_converged == 1


def test_summary_names_the_observed_limits_below_the_expected_band():
    """Observed limits below the expected -2 sigma band (deficits; a reviewer found 8 of
    111 on the 2015 data published without a word) are named as runs of adjacent ok
    masses; flagged rows are not counted, blinded tables have none."""

    def row(m: float, up: float, status: str = "ok") -> dict[str, str]:
        return {"dataset": "d", "mass_GeV": str(m), "eps2_up": str(up), "status": status} | {
            "eps2_exp_lo2": "1.0"
        }

    rows = [row(0.05, 0.9), row(0.051, 0.8), row(0.052, 0.5, "flag_gof"), row(0.053, 0.7)]
    rows += [row(0.054, 1.5)]
    (s,) = summarize_scan(rows)  # the flagged row between ends a run (it was folded in)
    assert s.below_band == [[0.05, 0.051], [0.053]] and s.n_ok == 4
    assert (
        "observed limit below the expected -2 sigma band: 3 of 4 masses (2 masses at 50-51 "
        "MeV, 53 MeV), deficits in the data (2.3% expected by chance; neighbouring masses "
        "are correlated)"
    ) in dataset_lines(s)
    (blind,) = summarize_scan([{**r, "blinded": "true"} for r in rows])
    assert blind.below_band == []


def test_the_chance_of_a_limit_below_the_band_follows_the_band_type():
    """The summary said "2.3% expected by chance" whatever the bands; with toy bands
    (limit.bands = "toys") the lower -2 sigma edge is the toys' 2.5% quantile, with
    asymptotic bands Phi(-2) = 2.275% (a review). Told the band type, or without it
    from the rows (toy bands carry exp_band_rel_err)."""
    from scipy.special import ndtr

    from gprpipe.results.summary import BELOW_BAND_CHANCE
    from gprpipe.stats.cls import BAND_N, TOY_QUANTILES

    assert BELOW_BAND_CHANCE["asymptotic"] == pytest.approx(ndtr(BAND_N[0]), rel=1e-12)
    assert BELOW_BAND_CHANCE["toys"] == TOY_QUANTILES[0]

    def row(m: float, up: float, rel: str = "nan") -> dict[str, str]:
        return {"dataset": "d", "mass_GeV": str(m), "eps2_up": str(up), "status": "ok"} | {
            "eps2_exp_lo2": "1.0",
            "exp_band_rel_err": rel,
        }

    def chance(s) -> str:
        (line,) = [x for x in dataset_lines(s) if x.startswith("observed limit below")]
        return line.split("deficits in the data (")[1].split(" expected by chance")[0]

    asym, toys = [row(0.05, 0.9), row(0.051, 1.5)], [row(0.05, 0.9, "0.01"), row(0.051, 1.5)]
    assert chance(summarize_scan(asym)[0]) == "2.3%"
    assert chance(summarize_scan(toys)[0]) == "2.5%"
    assert chance(summarize_scan(asym, bands="toys")[0]) == "2.5%"
    assert chance(summarize_scan(toys, bands="asymptotic")[0]) == "2.3%"


def test_the_band_error_is_of_every_band_shown_as_hepdata_says_it():
    """A row whose observed toy limit alone is unresolved keeps its toy band, drawn and in
    HEPData, whose description gives the largest error over the bands shown; the summary
    and report took the ok rows only (a review: 7.00% against HEPData's 10.72%, and no
    line at all when every row was unresolved). A flagged row's band is in neither."""
    unresolved = "limit failed: observed toy limit unresolved: 3 of 60 toys: raise limit.n_toys"
    rows = [
        {"dataset": "d", "mass_GeV": m, "exp_band_rel_err": e, "status": st}
        for m, e, st in (
            ("0.101", "0.07", "ok"),
            ("0.112", "0.1072", unresolved),
            ("0.113", "0.2", "flag_gof"),
            ("0.114", "0.05", unresolved),
        )
    ]
    (s,) = summarize_scan(rows)
    assert (s.band_error_median, s.band_error_largest) == (0.07, Extreme(0.112, 0.1072))
    (s,) = summarize_scan(rows[1:2])
    assert s.band_error_largest == Extreme(0.112, 0.1072)


def test_report_index_and_cli_count_flags_alike(tmp_path):
    """One summariser for every display: a flagged row whose GP fit did not converge is
    one flagged row and one non-converged fit in report.html, index.html and the command
    line's summary (the report counted failed rows as flagged and left flagged rows out
    of the non-converged fits, so the two gave different numbers for one run). A
    combination's rows are rows (flagged, failed) but no fits: a dataset's non-converged
    fit is counted once, not again at the combined mass that inherits its gp_converged."""
    from gprpipe.results.summary import dataset_lines

    cfg, point = _point(tmp_path)
    header, rows = read_csv_table(point / "scan.csv")
    for r in rows:
        if r["mass_GeV"] == "0.025":
            r["status"], r["gp_converged"] = "flag_gof", "false"
    rows += [{**r, "dataset": "combined"} for r in rows]
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    report, index = _reports(cfg, point)
    html = report.read_text()
    assert (
        "2 flagged rows (numbers that failed a quality check), 2 failed rows (no numbers), "
        "2 non-converged GP fits." in html
    )
    # rows named by the datasets' labels, as in the rest of the report
    assert '<td class="text">HPS 2015</td><td>25</td><td class="text">flag_gof</td>' in html
    assert '<td class="text">Combined</td><td>25</td><td class="text">flag_gof</td>' in html
    assert "Non-converged GP fits: HPS 2015 20 MeV, HPS 2015 25 MeV." in html
    idx = index.read_text()
    assert "<td>2</td><td>2</td><td>2</td>" in idx  # flagged, failed, fits
    # the largest local Z says whose it is (2015's 3.20 at 31 MeV; combined has the same)
    assert '<td>3.20</td><td class="text">HPS 2015</td><td>31</td><td>0.70</td>' in idx
    s, c = summarize_scan(rows)
    assert dataset_lines(s)[-1] == (
        "flagged: 1 (flag_gof: 1 at 25 MeV); GP fits not converged: 2"
    )  # which masses (a newcomer could not tell)
    m7 = next(m for m, st in s.not_ok if st == "limit failed: test")
    assert f"failed (no limit): 1 (limit failed: test: 1 at {m7 * 1e3:g} MeV)" in dataset_lines(s)
    assert dataset_lines(c)[-1] == "flagged: 1 (flag_gof: 1 at 25 MeV)"  # no fits of its own
    # every row flagged: the table of the largest local Z was a header without rows
    for r in rows:
        r["status"] = "flag_gof"
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    html = _reports(cfg, point)[0].read_text()
    assert 'id="best"' not in html
    assert (
        '<p id="no-best">No row counts for the largest local Z (every row flagged or '
        "failed).</p>" in html
    )


def test_the_report_counts_a_dataset_left_out_apart_from_failed_quality_checks(tmp_path):
    """A combined row flagged only ``flag_dataset_left_out`` has numbers that passed every
    quality check (those of the datasets it joins): the report counted it among "flagged
    rows (numbers that failed a quality check)" (a review); it is counted apart, and a row
    with a quality flag and a dataset left out stays a flagged row."""
    cfg, point = _point(tmp_path)
    header, rows = read_csv_table(point / "scan.csv")
    combined = [{**r, "dataset": "combined"} for r in rows]
    for r in combined:
        if r["mass_GeV"] in ("0.025", "0.026"):
            r["status"] = "flag_dataset_left_out"
        elif r["mass_GeV"] == "0.03":
            r["status"] = "flag_gof+flag_dataset_left_out"
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows + combined)
    html = _reports(cfg, point)[0].read_text()
    assert (
        "<p>1 flagged row (numbers that failed a quality check), 2 combined rows with a "
        "dataset left out (its fit failed there: the other datasets' numbers, no failed "
        "quality check), " in html
    ), html
    (s, c) = summarize_scan(rows + combined)
    assert (s.n_flagged, s.n_left_out, c.n_flagged, c.n_left_out) == (0, 0, 3, 2)
    # such a row without an observed limit is no flagged row "with no observed limit
    # either": the report said "2 of the flagged rows" beside "0 flagged rows" (a review)
    left = {"dataset": "combined", "mass_GeV": "0.1", "eps2_up": "nan", "eps2_exp_med": "1e-6"}
    (c,) = summarize_scan([left | {"status": "flag_dataset_left_out"}])
    assert (c.n_flagged_unresolved, c.n_left_out, c.n_left_out_unresolved) == (0, 1, 1)
    assert dataset_lines(c)[-1] == (  # ... but among the rows with a dataset left out
        "rows with a dataset left out and no observed limit (the toys could not resolve it: "
        "raise limit.n_toys): 1 at 100 MeV"
    )
    (c,) = summarize_scan([left | {"status": "flag_gof+flag_dataset_left_out"}])
    assert c.n_flagged_unresolved == 1
    # index.html counts them as the report does (flagged, failed: no numbers)
    idx = _reports(cfg, point)[1].read_text()
    assert "<td>1 (+ 2 with a dataset left out)</td><td>2</td>" in idx, idx


def test_the_index_says_blinded_for_a_table_without_observed_columns(tmp_path):
    """report.html and index.html take one rule for a blinded point: the rows say so, or
    the table has no observed column (the index looked at the rows only)."""
    cfg, point = _point(tmp_path, blind=True)
    header, rows = read_csv_table(point / "scan.csv")
    with open(point / "scan.csv", "w", newline="") as f:  # without its blinded column
        w = csv.DictWriter(f, [c for c in header if c != "blinded"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    report, index = _reports(cfg, point)
    assert 'id="blind-note"' in report.read_text()
    assert '<span class="badge blinded">BLINDED</span>' in index.read_text()


def test_report_headline_gives_the_toys_global_z_beside_sidak(tmp_path):
    """With whole-scan toys (limit.global_toys) the headline table has their global Z next
    to Sidak's (it gave Sidak's alone, the number the README says overstates it)."""
    cfg, point = _point(tmp_path)
    report, index = _reports(cfg, point)
    assert "whole-scan toys" not in report.read_text()  # no toys: no empty column
    assert "whole-scan toys" not in index.read_text()
    header, rows = read_csv_table(point / "scan.csv")
    toys = ["p0_local", "Z_global_toys", "p0_local_toys", "p0_local_toys_err"]
    toys += ["frac_Z0_toys", "frac_Z0_toys_err"]
    for r in rows:
        top = r["Z_local"] == "3.2"
        r |= dict(
            zip(
                toys,
                ("0.000687", "0.41", "0.0021", "0.00093", "0.352", "0.016")
                if top
                else ("0.3", "0.0", "0.5", "0.02", "0.5", "0.016"),
            )
        )
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.DictWriter(f, [*header, *toys])
        w.writeheader()
        w.writerows(rows)
    assert summarize_scan(read_csv_table(point / "scan.csv")[1])[0].Z_global_toys == 0.41
    report, index = _reports(cfg, point)
    html = report.read_text()
    assert (
        "<th>global Z there (Sidak)</th><th>global Z there (whole-scan toys)</th>"
        "<th>local p0 there (asymptotic; toys at that mass)</th>"
    ) in html
    assert (
        "<td>3.20</td><td>31</td><td>0.70</td><td>0.41</td><td>0.000687; 0.0021 +- 0.00093 "
        "(toys biased here: P(Z_local = 0) 0.352)</td>"
    ) in html
    idx = index.read_text()  # the index too (it gave Sidak's alone)
    assert "<th>global Z (Sidak)</th><th>global Z (whole-scan toys)</th>" in idx
    assert '<td>3.20</td><td class="text">HPS 2015</td><td>31</td><td>0.70</td><td>0.41</td>' in idx
    # a combination has no whole-scan toys: with the largest Z there the column stays
    top = next(r for r in rows if r["Z_local"] == "3.2")
    rows.append({**top, "dataset": "combined", "Z_local": "3.5", "Z_global": "0.9"})
    rows[-1] |= dict.fromkeys(toys, "nan")
    with open(point / "scan.csv", "w", newline="") as f:
        w = csv.DictWriter(f, [*header, *toys])
        w.writeheader()
        w.writerows(rows)
    _, index = _reports(cfg, point)
    idx = index.read_text()
    assert "<th>global Z (Sidak)</th><th>global Z (whole-scan toys)</th>" in idx
    assert '<td>3.50</td><td class="text">Combined</td><td>31</td><td>0.90</td><td>-</td>' in idx


def test_report_content_escaped_and_complete(tmp_path):
    cfg, point = _point(tmp_path, label="<script>alert(1)</script>")
    (point / ".state").mkdir(exist_ok=True)
    (point / ".state" / "fit__2015-000.done").write_text(
        json.dumps({"state": "done", "message": "12.345 s"})
    )
    report, index = _reports(cfg, point)
    html = report.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &lt;b&gt;test&lt;/b&gt;" in html
    for rel in (
        "plots/brazil_eps2_2015.png",
        "plots/spectrum.png",
        "hepdata/limits_eps2_2015.yaml",
        "workspace_2015_60MeV.json",
        "scan.csv",
    ):
        assert f'"{rel}"' in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "abc123" in html and "nominal/load" in html and "other/load" not in html
    assert "nominal/fit/2015-000" in html and "12.345" in html  # from the state marker
    assert "3.20" in html and "unblinded" in html
    assert "gprpipe 0.1.0; run created 2026-01-01" in html  # the code that made the run
    idx = index.read_text()
    assert 'href="nominal/report.html"' in idx and "3.20" in idx


def test_version_says_when_the_source_moved_on_since_the_install(monkeypatch):
    """An editable install keeps the version of its install; the provenance then names the
    git commit of the code that ran instead of implying the installed one: in run.json
    and in every HDF5 output (which recorded the installed version alone, a review)."""
    from gprpipe.io import hdf5, source

    monkeypatch.setattr(source, "__version__", "0.1.1.dev440+gcb3a1a93c")
    assert source.package_version("cb3a1a93c0ffee") == "0.1.1.dev440+gcb3a1a93c"
    assert source.package_version("cb3a1a93c0ffee+dirty") == (
        "0.1.1.dev440+gcb3a1a93c (with local changes)"
    )
    moved = (
        "0.1.1.dev440+gcb3a1a93c as installed; the source in use is git commit "
        "716fd9b7770a with local changes"
    )
    assert source.package_version("716fd9b7770a1810+dirty") == moved
    assert source.package_version("") == "0.1.1.dev440+gcb3a1a93c"  # no checkout: a wheel
    monkeypatch.setattr(source, "git_commit", lambda: "716fd9b7770a1810+dirty")
    source.source_version.cache_clear()
    try:
        assert hdf5.provenance("key", "sha")["gprpipe_version"] == moved
    finally:
        source.source_version.cache_clear()


def test_blinded_report_shows_no_observed_quantity(tmp_path):
    cfg, point = _point(tmp_path, blind=True)
    html = _reports(cfg, point)[0].read_text()
    assert 'id="blind-state">BLINDED' in html and 'id="blind-note"' in html
    assert "Z_local" not in html and "largest local Z" not in html


def _check_page(page, url: str) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_load_state("load")
    return errors


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))"
    )


def test_report_in_headless_chromium(tmp_path):
    sync_playwright = _browser_or_skip()
    cfg, point = _point(tmp_path)
    report, index = _reports(cfg, point)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        errors = _check_page(page, report.as_uri())
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and all(w > 0 for w in widths)
        header = page.eval_on_selector_all("#scan-table th", "t => t.map(h => h.textContent)")
        col = header.index("mass_GeV")
        before = [float(v) for v in _column(page, "scan-table", col)]
        assert before != sorted(before)
        page.click(f"#scan-table th:nth-child({col + 1})")
        asc = [float(v) for v in _column(page, "scan-table", col)]
        assert asc == sorted(before)
        page.click(f"#scan-table th:nth-child({col + 1})")
        assert [float(v) for v in _column(page, "scan-table", col)] == sorted(before)[::-1]
        zcol = header.index("Z_local")
        page.click(f"#scan-table th:nth-child({zcol + 1})")
        page.click(f"#scan-table th:nth-child({zcol + 1})")
        assert float(_column(page, "scan-table", zcol)[0]) == pytest.approx(3.2)
        assert _column(page, "scan-table", col)[0] == "0.031"
        errors += _check_page(page, index.as_uri())
        links = page.eval_on_selector_all("a", "a => a.map(x => x.getAttribute('href'))")
        assert "nominal/report.html" in links
        browser.close()
    assert errors == []


@pytest.mark.slow
def test_quickstart_report_in_headless_chromium(shared_quickstart: Path):
    """The real thing: the quickstart run's own report and index (PNG plots)."""
    sync_playwright = _browser_or_skip()
    out = shared_quickstart
    report, index = out / "nominal" / "report.html", out / "index.html"
    pngs = sorted((out / "nominal" / "plots").glob("*.png"))
    assert len(pngs) >= 10
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        errors = _check_page(page, report.as_uri())
        srcs = page.eval_on_selector_all("figure img", "i => i.map(x => x.getAttribute('src'))")
        assert sorted(srcs) == sorted(f"plots/{p.name}" for p in pngs)
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths)
        assert page.inner_text("#blind-state") == "unblinded"
        rows = page.eval_on_selector_all("#scan-table tbody tr", "r => r.length")
        assert rows == 5
        header = page.eval_on_selector_all("#scan-table th", "t => t.map(h => h.textContent)")
        z = header.index("Z_local")
        page.click(f"#scan-table th:nth-child({z + 1})")
        vals = [float(v) for v in _column(page, "scan-table", z)]
        assert vals == sorted(vals)
        errors += _check_page(page, index.as_uri())
        # one point: its report has the limits figure; the index draws no grid of one
        assert page.eval_on_selector_all("img", "imgs => imgs.length") == 0
        links = page.eval_on_selector_all("a", "a => a.map(x => x.getAttribute('href'))")
        assert "nominal/report.html" in links
        browser.close()
    assert errors == []
    assert not (out / "grid_limits.png").exists()


def test_index_overlays_the_grid_points(tmp_path):
    """Two grid points (one blinded) -> one index row each and the grid_limits.png figure."""
    import h5py

    from gprpipe.io.hdf5 import write_group

    cfg, point = _point(tmp_path)
    run = point.parent
    other = run / "wide"
    other.mkdir()
    (other / "config.toml").write_text("[base]\n")
    info = json.loads((run / "run.json").read_text())
    info["grid"].append(
        {"name": "wide", "values": {"fit.blind_nsigma": 1.96}, "dir": str(other), "seed": 7}
    )
    (run / "run.json").write_text(json.dumps(info))
    m = np.array([0.03, 0.04, 0.05])
    for d, blind in ((point, False), (other, True)):
        with h5py.File(d / "limit.h5", "w") as f:
            f.attrs["blinded"] = blind
            arrays = {
                "mass_GeV": m,
                "mass": m,
                "eps2_exp_med": [1e-5, 2e-5, 3e-5],
                "status": np.array(["ok", "ok", "ok"]),
            }
            if not blind:
                arrays["eps2_up"] = [1.2e-5, 1.5e-5, 4e-5]
            write_group(f.create_group("2015"), arrays)
    (run / "exports").mkdir()
    (run / "exports" / "reach.csv").write_text("mass_GeV\n")
    _, index = _reports(cfg, point)
    html = index.read_text()
    assert 'href="exports/reach.csv"' in html and 'href="run.json"' not in html
    assert "wide" in html and "fit.blind_nsigma=1.96" in html
    assert 'src="grid_limits.png"' in html
    png = run / "grid_limits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = plt.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 400
    # limits edited since their runs are drawn nowhere
    for d in (point, other):
        with h5py.File(d / "limit.h5", "a") as f:
            f.attrs["edited"] = True
    html = write_reports(cfg, point)[1].read_text()
    assert "grid_limits.png" not in html and not png.exists()


def test_index_compares_the_grid_points(tmp_path):
    """Two unblinded grid points: index.html carries gprpipe compare's figure with ratio
    panels and the table of ratios (the second point's limits over the first's)."""
    cfg, point = _point(tmp_path)
    run = point.parent
    other = run / "rpen7"
    other.mkdir()
    (other / "config.toml").write_text("[base]\n")
    info = json.loads((run / "run.json").read_text())
    info["grid"].append({"name": "rpen7", "values": {}, "dir": str(other), "seed": 7})
    (run / "run.json").write_text(json.dumps(info))
    for d, f, g in ((point, 1.0, 1.0), (other, 1 / 0.93, 1.1 / 0.93)):
        (d / "scan.csv").write_text(
            "dataset,mass_GeV,eps2_up,eps2_exp_med,Z_local,Z_global,gp_converged,status\n"
            f"2015,0.03,{2e-6 * f!r},{1e-6 * f!r},0.5,0,true,ok\n"
            f"2015,0.06,{3e-6 * f!r},{4e-6 * f!r},1.0,0,true,ok\n"
            f"2015,0.09,{5e-6 * g!r},{6e-6 * f!r},1.0,0,true,ok\n"
        )
    _, index = _reports(cfg, point)
    html = index.read_text()
    assert "eps^2 limits relative to nominal" in html and 'src="grid_compare_2015.png"' in html
    # titled after the run's folder, not the base.name of the point that wrote it (a
    # grid's points may name themselves after their values; a review)
    assert f"<h1>{run.name} <span" in html and f"<h1>{cfg.base.name} " not in html
    assert (run / "grid_compare_2015.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # observed ratios 1/0.93 (x2) and 1.1/0.93: median 1.075, range 1.075-1.183
    assert "<td>1.075</td><td>1.075-1.183</td><td>1.075</td><td>1.075-1.075</td>" in html
    # the other point's scan.csv edited by hand since its run: neither compared nor summarised
    # (the index showed and compared the edited numbers)
    edited = (other / "scan.csv").read_text().replace("0.5,0,true", "4.5,0,true")
    (other / "scan.csv").write_text(edited)
    _, index = write_reports(cfg, point)
    html = index.read_text()
    assert "relative to nominal" not in html and not (run / "grid_compare_2015.png").exists()
    row = html[html.index('<tr><td class="text">rpen7</td>') :]
    row = row[: row.index("</tr>")]
    assert row.count("<td>-</td>") == 6 and "4.50" not in row
    assert row.endswith("scan.csv is not as its run wrote it: not summarised</span></td>")


def test_a_new_config_in_the_same_folder_shows_only_its_own_results(tmp_path):
    """The quickstart with an injection study, then again into the same folder without
    injection, another blind window and one GP-fit mass: the injection figures, the
    injection table and task, and the GP-fit figures of the first config had stayed in
    plots/, in report.html and in the summary, next to the new results."""
    run_dir = tmp_path / "run"
    first = (
        "inject.masses=[0.06]",
        "inject.n_toys=20",
        "inject.strengths=[0.0,3.0]",
        'steps.run=["load","fit","limit","inject","plot"]',
        *FEW_FIGURES,
        "plot.masses=[0.06]",  # one GP-fit figure of this config's (of three)
        "plot.displays.masses=[]",  # (no reviewer displays: nothing here is about them)
    )
    code, _, err = run_cli_here("run", QUICKSTART, *settings(f"base.output={run_dir}", *first))
    assert code == 0, err
    point = run_dir / "nominal"
    assert (point / "inject.csv").is_file() and (point / "plots" / "inject_bias_demo.png").is_file()
    # the report lists the point's tables, each with its rows (two strengths at one mass)
    html = (point / "report.html").read_text()
    assert '<td class="text"><a href="inject.csv">inject.csv</a></td><td>2</td>' in html
    assert '<a href="scan.csv">scan.csv</a></td><td>5</td>' in html
    second = (
        "fit.blind_nsigma=1.96",
        "plot.masses=[0.045]",
        *FEW_FIGURES,
    )
    code, out, err = run_cli_here("run", QUICKSTART, *settings(f"base.output={run_dir}", *second))
    assert code == 0, err
    plots = sorted(p.name for p in (point / "plots").glob("*.png"))
    assert not [p for p in plots if p.startswith("inject")]
    assert [p for p in plots if p.startswith("gpfit")] == ["gpfit_demo_45MeV.png"]
    html = (point / "report.html").read_text()
    assert "plots/inject_" not in html and "nominal/inject/" not in html  # figures, tasks
    assert "gpfit_demo_45MeV.png" in html
    assert "gpfit_demo_60MeV" not in html
    assert 'href="inject.csv"' not in html and 'href="scan.csv">scan.csv</a></td>' in html
    assert f"tables: {point}/ (scan.csv)" in out and f"({len(plots)} figures: png)" in out
    # the first config's injection study stays on disk, untouched, and the summary says so
    assert (point / "inject.csv").is_file()
    assert (
        "  not shown: inject.csv, inject.h5 (of an earlier config; this one does not make them)"
        in out
    )


def test_the_report_offers_no_export_of_an_earlier_fit(tmp_path):
    """An export made from one fit is listed in the report while that fit holds; a new
    config into the same folder (another blind window, hence another fit.h5) leaves it
    out of the report and the summary: it was still offered as this run's product."""
    run_dir = tmp_path / "run"
    point = run_dir / "nominal"
    quick = (
        'steps.run=["load","fit","limit","plot"]',
        "scan.masses=[0.045,0.06]",
        "plot.masses=[0.06]",
        *FEW_FIGURES,
    )
    code, _, err = run_cli_here("run", QUICKSTART, *settings(f"base.output={run_dir}", *quick))
    assert code == 0, err
    for export in (("export-spey",), ("export-pyhf", "--mass", "60MeV")):
        code, _, err = run_cli_here(export[0], run_dir, "--dataset", "demo", *export[1:])
        assert code == 0, err
    # listed at once (it was listed only once the plot step ran again)
    html = (point / "report.html").read_text()
    assert "exports/spey_demo.json" in html and "exports/pyhf_demo_60MeV.json" in html
    # a report that cannot be refreshed: the export stands, and the sentence says so (it
    # named only the index, and the export looked failed)
    index = run_dir / "index.html"
    index.unlink()
    index.mkdir()
    spey = tmp_path / "spey" / "spey_demo.json"
    code, out, err = run_cli_here("export-spey", run_dir, "--dataset", "demo", "-o", spey.parent)
    assert code == 1 and out == ""
    assert err.strip() == (
        f"error: {spey} is written and recorded, but the report was not refreshed: "
        f"{index}: is a folder, not a file to write."
    )
    assert (
        json.loads(spey.read_text())["dataset"] == "demo"
        and len(json.loads(spey.read_text())["masses"]) == 2
    )
    index.rmdir()
    # the report rewritten by the tool is not damage: status read it as a failed plot task
    code, out, _ = run_cli_here("status", run_dir)
    assert code == 0 and out.rstrip().endswith("done=6"), out
    code, out, err = run_cli_here(
        "run", QUICKSTART, "--steps", "plot", "--force", *settings(f"base.output={run_dir}", *quick)
    )
    assert code == 0, err
    html = (point / "report.html").read_text()
    assert "exports/spey_demo.json" in html and "exports/pyhf_demo_60MeV.json" in html
    assert f"  exports: {point / 'exports'}/ (pyhf_demo_60MeV.json, spey_demo.json)" in out
    # the folder's config now selects the plot step alone: an export still reads the fit
    # (it was refused: "no task 'nominal/fit/merge' in this point's plan")
    code, _, err = run_cli_here("export-pyhf", run_dir, "--dataset", "demo", "--mass", "45MeV")
    assert code == 0, err
    code, out, err = run_cli_here(
        "run", QUICKSTART, *settings(f"base.output={run_dir}", *quick, "fit.blind_nsigma=1.96")
    )
    assert code == 0, err
    html = (point / "report.html").read_text()
    assert "spey_demo.json" not in html and "pyhf_demo_60MeV.json" not in html
    assert "exports:" not in out
    assert (point / "exports" / "spey_demo.json").is_file()  # kept on disk, not offered


def test_figures_of_earlier_results_are_not_offered_as_current(tmp_path):
    """A later run without the plot step (other masses) left the earlier figures, HEPData
    tables and report in place, and the summary listed them as the point's products: it
    says they are not current; the plot step makes them current again."""
    run_dir = tmp_path / "run"
    first = ("scan.masses=[0.03,0.06]", "plot.masses=[0.03]", *FEW_FIGURES)
    code, out, err = run_cli_here("run", QUICKSTART, *settings(f"base.output={run_dir}", *first))
    assert code == 0, err
    assert "  report: " in out and "not current" not in out
    later = ("scan.masses=[0.045,0.06]", "plot.masses=[0.045]", *FEW_FIGURES)
    args = ("run", QUICKSTART, *settings(f"base.output={run_dir}", *later))
    code, out, err = run_cli_here(*args, "--steps", "load,fit,limit")
    assert code == 0, err
    assert (
        "  not current: plots, HEPData, report (drawn from other results, or left by a plot "
        "task that did not finish; run the config again, with the plot step, to redraw them)" in out
    )
    assert "  report: " not in out and "  plots: " not in out
    code, out, err = run_cli_here(*args)
    assert code == 0, err
    assert "  report: " in out and "not current" not in out


def test_summary_counts_the_figures_of_any_format(tmp_path):
    """A point drawn in PDF alone had no "plots:" line (only PNG files were counted)."""
    from gprpipe.pipeline.summary import _files

    plots = tmp_path / "plots"
    plots.mkdir()
    names = ["spectrum.pdf", "gpfit_demo_60MeV.pdf", "display_observed_demo_60MeV.json"]
    for n in names:
        (plots / n).write_text("x")
    (plots / "manifest.json").write_text(json.dumps({"files": [f"plots/{n}" for n in names]}))
    assert _files(tmp_path, set())["plots"] == f"{plots}/ (2 figures: pdf)"
    (plots / "spectrum.png").write_text("x")  # not the last plot task's: not counted
    assert _files(tmp_path, set())["plots"] == f"{plots}/ (2 figures: pdf)"


def test_an_export_never_rewrites_a_report_of_other_results(tmp_path):
    """After a later run without the plot step (another blind window; a blinded run), an
    export or project-reach rewrote report.html: the new tables (and a BLINDED badge)
    beside the earlier config's observed figures and HEPData. The report stays as drawn,
    with a NOT CURRENT banner (the summary says it too)."""
    first = ("scan.masses=[0.045,0.06]", "plot.masses=[0.06]", *FEW_FIGURES)
    for name, later in (("window", "fit.blind_nsigma=1.96"), ("blinded", "base.blind=true")):
        run_dir = tmp_path / name
        out_dir = f"base.output={run_dir}"
        code, _, err = run_cli_here("run", QUICKSTART, *settings(out_dir, *first))
        assert code == 0, err
        report = run_dir / "nominal" / "report.html"
        drawn = report.read_text()
        steps = ("--steps", "load,fit,limit")
        code, out, err = run_cli_here("run", QUICKSTART, *steps, *settings(out_dir, *first, later))
        assert code == 0, err
        assert "  not current: plots, HEPData, report" in out, out
        marked = report.read_bytes()
        assert marked.decode() == drawn.replace("<body>", "<body>\n" + NOT_CURRENT, 1)
        if name == "blinded":  # and the run says so (it said all were replaced)
            assert (
                "Without the plot step, the figures, combination and allocation tables, "
                "HEPData tables and report of nominal stay those of the observed results (not "
                "current) until it runs." in out + err
            )
        if name == "window":  # (a blinded run takes no export)
            code, _, err = run_cli_here("export-spey", run_dir, "--dataset", "demo")
            assert code == 0, err
        code, _, err = run_cli_here("project-reach", run_dir, "--scale", "demo=4")
        assert code == 0, err
        assert report.read_bytes() == marked


def test_a_toy_global_z_no_toy_reached_is_shown_as_a_bound(tmp_path):
    """A 20000-event signal at 60 MeV that none of 100 whole-scan toys reaches: the toys'
    p0 = 1/101 is an upper bound and their Z a lower one. Summary, report and index say
    "> 2.33" (they gave 2.33 as a value, with an error as large as p0)."""
    spectrum = tmp_path / "signal.root"
    code, _, err = run_cli_here(
        "demo-data", spectrum, "--signal-mass", "60MeV", "--signal-yield", "20000"
    )
    assert code == 0, err
    run_dir = tmp_path / "run"
    values = (
        f"datasets.demo.path={spectrum}",
        f"base.output={run_dir}",
        "scan.masses=[0.045,0.06,0.075]",
        "limit.global_toys=100",
        "plot.masses=[]",
        *FEW_FIGURES,
    )
    code, out, err = run_cli_here("run", QUICKSTART, *settings(*values))
    assert code == 0, err
    z = float(csv_rows(run_dir / "nominal" / "scan.csv")[1]["Z_global_toys"])
    assert z == pytest.approx(2.33, abs=0.01)  # z of p = 1/101
    assert f"Z_global (toys) > {z:.2f} (p0 < 0.0099: no toy reached it; more toys say more)" in out
    for page in (run_dir / "nominal" / "report.html", run_dir / "index.html"):
        assert f"<td>&gt; {z:.2f}</td>" in page.read_text()
    submission = (run_dir / "nominal" / "hepdata" / "submission.yaml").read_text()
    said = "the toys'' p0 is an upper bound and their Z a lower bound"  # (YAML quoting)
    assert said in " ".join(submission.split())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_the_hepdata_of_a_grid_point_names_it(shared_quickstart: Path, tmp_path: Path):
    """The HEPData submissions of two grid points were byte-identical in everything but the
    numbers: the comment and each table's location name the point."""
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.hepdata import build_submission

    nominal = shared_quickstart / "nominal"
    cfg = point_config_from_file(nominal / "config.toml")
    point = tmp_path / "blind_nsigma-1.96"
    point.mkdir()
    (point / "limit.h5").write_bytes((nominal / "limit.h5").read_bytes())
    (sub0, _), (sub1, _) = (build_submission(cfg, d / "limit.h5") for d in (nominal, point))
    assert sub0.comment.startswith("quickstart: limits and significances")
    assert sub1.comment.startswith("quickstart, grid point blind_nsigma-1.96: limits and")
    assert {t.location for t in sub0.tables} == {"gprpipe run quickstart: scan.csv"}
    assert {t.location for t in sub1.tables} == {
        "gprpipe run quickstart: blind_nsigma-1.96/scan.csv"
    }


def test_a_linked_hepdata_folder_is_replaced_every_time(shared_quickstart: Path, tmp_path: Path):
    """A ``hepdata/`` that is a link was moved aside as ``.hepdata.old``, which
    ``shutil.rmtree`` leaves (it removes no link): every later plot task then failed with
    ".hepdata.old: not a directory" until one deleted it by hand. A link inside the point
    folder is replaced (its target left as it is); one to a folder elsewhere is refused in
    one sentence, as for the exports and reach folders (it gave way without a word)."""
    from gprpipe.config import point_config_from_file
    from gprpipe.steps.hepdata import write_hepdata

    nominal = shared_quickstart / "nominal"
    cfg = point_config_from_file(nominal / "config.toml")
    point = tmp_path / "nominal"
    point.mkdir()
    (point / "limit.h5").write_bytes((nominal / "limit.h5").read_bytes())
    kept = point / "kept"
    kept.mkdir()
    (kept / "keep.txt").write_text("not gprpipe's")
    (point / "hepdata").symlink_to(kept)
    for _ in range(2):
        written = write_hepdata(cfg, point / "limit.h5", point / "hepdata")
        assert (point / "hepdata" / "submission.yaml") in written
        assert not (point / "hepdata").is_symlink()
        assert sorted(p.name for p in point.iterdir()) == [
            "hepdata",
            "hepdata.tar.gz",
            "kept",
            "limit.h5",
        ]
    assert [p.name for p in kept.iterdir()] == ["keep.txt"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(point / "hepdata")
    (point / "hepdata").symlink_to(elsewhere)
    with pytest.raises(GprpipeError) as err:
        write_hepdata(cfg, point / "limit.h5", point / "hepdata")
    assert str(err.value) == (
        f"{point / 'hepdata'}: the HEPData folder resolves to {elsewhere}, outside the point "
        f"folder {point}; remove the link."
    )
    assert (point / "hepdata").is_symlink() and not any(elsewhere.iterdir())


def test_the_exports_list_leaves_out_the_steps_own_tables(tmp_path: Path) -> None:
    """The report's "Exports" are what export commands wrote (and the HEPData archive),
    never a table a step keeps in the point folder (the toy scan's and the combination's
    were listed as exports)."""
    from gprpipe.steps.report import _exports

    own = ["scan.csv", "inject.csv", "toyscan.csv", "toyscan_summary.csv"]
    own += ["combination.csv", "allocation.csv", "run.json"]
    for name in [*own, "spey_mine.json", "hepdata.tar.gz", "copied_in.json", "limit.h5"]:
        (tmp_path / name).write_text("x\n")
    record_export(tmp_path, [tmp_path / "spey_mine.json"], tmp_path / "limit.h5")
    # (copied_in.json: no export command recorded it, so nothing says what it holds)
    assert _exports(tmp_path) == ["hepdata.tar.gz", "spey_mine.json"]


def test_timings_come_from_the_markers_of_the_planned_tasks(tmp_path):
    """The report read the .state folder's files itself (the marker format has one owner,
    pipeline.state) and put a failed task's error sentence in the seconds column (a
    review): a failed task's seconds are empty, a marker of a task the plan does not
    have is not shown."""
    import re

    from gprpipe.pipeline.state import write_state

    cfg, point = _point(tmp_path)
    write_state(point, "load", "done", "0.470 s")
    write_state(point, "fit__2015-000", "failed", "fit failed: bad histogram")
    write_state(point, "inject", "done", "3.000 s")  # an earlier config's task
    html = _reports(cfg, point)[0].read_text()
    table = html.split('id="timings"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr><td class="text">([^<]*)</td><td class="text">([^<]*)</td><td data-v="([^"]*)">',
        table,
    )
    assert rows == [("nominal/load", "done", "0.470"), ("nominal/fit/2015-000", "failed", "")]
    # the plot task writing the report is running: not the previous run's time run.json
    # holds (it showed 5.709 s of the run before: a review)
    run_json = point.parent / "run.json"
    info = json.loads(run_json.read_text())
    info["plan"].append({"id": "nominal/plot"})
    info["timings"] = {"nominal/plot": {"state": "done", "seconds": 5.709}}
    run_json.write_text(json.dumps(info))
    write_state(point, "plot", "running")
    html = _reports(cfg, point)[0].read_text()
    table = html.split('id="timings"', 1)[1].split("</table>", 1)[0]
    assert ("nominal/plot", "running", "") in re.findall(
        r'<tr><td class="text">([^<]*)</td><td class="text">([^<]*)</td><td data-v="([^"]*)">',
        table,
    )
    assert "5.709" not in table
    # a run.json without its plan (damaged, older): every finished task's marker is shown
    run_json = point.parent / "run.json"
    info = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({k: v for k, v in info.items() if k not in ("plan", "timings")}))
    html = _reports(cfg, point)[0].read_text()
    table = html.split('id="timings"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<td class="text">(nominal/[^<]*)</td>', table) == [
        "nominal/fit/2015-000",
        "nominal/inject",
        "nominal/load",
    ]


def test_a_report_of_other_results_says_so_in_the_page(tmp_path: Path) -> None:
    """A later run without the plot step (other masses) left report.html and index.html of
    the earlier results with nothing in them to say so: only the command line's summary
    said "not current", and the pages were read (and their HEPData uploaded) as the new
    results (a review). Both pages now carry a NOT CURRENT banner, which status does not
    take for damage, and the next plot task's pages have none."""
    run = tmp_path / "run"
    lean = (f"base.output={run}", 'plot.formats=["png"]', "plot.masses=[0.08]")
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*lean))
    assert code == 0, err
    pages = (run / "nominal" / "report.html", run / "index.html")
    assert not any('id="not-current"' in p.read_text() for p in pages)
    other = (*lean, "scan.masses=[0.045, 0.08]")
    code, out, err = run_cli_here("run", QUICKSTART, "--steps", "load,fit,limit", *settings(*other))
    assert code == 0, err
    assert "not current: plots, HEPData, report" in out
    for p in pages:
        assert p.read_text().count('id="not-current"') == 1, p
    code, out, _ = run_cli_here("status", run)
    assert code == 0 and out.rstrip().endswith("done=5"), out  # no damage
    code, _, err = run_cli_here("export-spey", run, "--dataset", "demo")  # keeps the mark
    assert code == 0, err
    assert 'id="not-current"' in pages[0].read_text()
    code, _, err = run_cli_here("run", QUICKSTART, *settings(*other))
    assert code == 0, err
    assert not any('id="not-current"' in p.read_text() for p in pages)


def test_plot_tasks_of_a_grid_rebuild_the_run_index_one_at_a_time(
    shared_quickstart: Path, tmp_path: Path
):
    """Each grid point's plot task rebuilds the run's index.html (and grid figures) from
    every point's results; two at once could write an index read before the other's
    report existed over a later one (a review). The rebuild waits for the run's index
    lock, which another task holds here."""
    import threading

    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.lock import index_lock

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point = run / "nominal"
    index = run / "index.html"
    index.write_text("held\n")
    cfg = point_config_from_file(point / "config.toml")
    with index_lock(run):
        writer = threading.Thread(target=write_reports, args=(cfg, point))
        writer.start()
        writer.join(timeout=3)
        assert writer.is_alive() and index.read_text() == "held\n"  # waits for the lock
    writer.join(timeout=60)
    assert not writer.is_alive() and "<html" in index.read_text()


def test_a_report_of_pdf_figures_links_them(shared_quickstart, tmp_path):
    """A run with ``plot.formats = ["pdf"]``: its report said "Figures (0)" and linked
    none of the PDFs the summary counted (a review); each is linked by name now, and the
    summary counts figures with their formats."""
    import shutil

    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.summary import run_summary
    from gprpipe.steps.report import write_reports

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point = run / "nominal"
    manifest = json.loads((point / "plots" / "manifest.json").read_text())
    names = []
    for rel in manifest["files"]:  # the same figures, drawn as PDF only
        if rel.endswith(".png"):
            (point / rel).rename(point / rel.replace(".png", ".pdf"))
            names.append(Path(rel).stem)
    manifest["files"] = [r.replace(".png", ".pdf") for r in manifest["files"]]
    (point / "plots" / "manifest.json").write_text(json.dumps(manifest))
    write_reports(point_config_from_file(point / "config.toml"), point)
    html = (point / "report.html").read_text()
    assert f'<h2 id="figures">Figures ({len(names)})</h2>' in html and len(names) > 5
    for name in names:
        assert f'<a href="plots/{name}.pdf">{name} (PDF)</a>' in html
    assert "<img" not in html.split('id="figures"')[1].split("</div>")[0]
    files = run_summary(run).points[0].files
    assert files["plots"] == f"{point / 'plots'}/ ({len(names)} figures: pdf)"
