"""`gprpipe export-pyhf`: pyhf's asymptotic limits on the exported workspace agree with
scan.csv (A_up and A_exp_med) within 1% at several masses (pyhf's CLs brackets 0.05 between
0.99 and 1.01 times each limit). pyhf is an optional test extra."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DEMO_ROOT, CliResult, assert_pyhf_limits_within

pytestmark = pytest.mark.slow


def test_a_mass_is_the_test_mass_within_the_packages_one_tolerance(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A review: export-pyhf took a mass within 0.5 keV of a test mass, where every other
    command (``step --masses``, ``rerun --masses``) takes 1 keV: 60.0007MeV was refused."""
    out = tmp_path / "ws.json"
    args = ("export-pyhf", shared_quickstart, "--dataset", "demo", "-o", out)
    code, _, err = cli(*args, "--mass", "60.0007MeV")
    assert code == 0 and json.loads(out.read_text())["channels"], err
    code, _, err = cli(*args, "--mass", "60.002MeV", "--force")
    assert code == 1 and "mass 0.060002 GeV is not a test mass of 'demo'" in err, err


def test_exported_workspace_reproduces_scan_limits(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    with open(shared_quickstart / "nominal" / "scan.csv") as fh:
        rows = {round(float(r["mass_GeV"]), 6): r for r in csv.DictReader(fh)}
    pyhf = pytest.importorskip("pyhf")  # here, not at collection: every worker would import it
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
        h5 = "limit.h5" if command == "export-spey" else "fit.h5"  # the file each reads
        assert code == 1 and err.strip() == (
            f"error: {shared_quickstart}/nominal/{h5}: no dataset 'dmeo' (have: demo)."
        )


@pytest.mark.parametrize("command", ["export-pyhf", "export-spey"])
def test_an_export_whose_source_a_run_replaces_meanwhile_is_refused(
    shared_quickstart: Path,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """A run that replaces fit.h5 (limit.h5) while an export reads it: the export was
    recorded with the new file's digest, so `summary` listed it as current although it
    holds the old fit (a review: 3 of 23 exports beside a run). Now it is refused, and
    nothing is written or recorded."""
    import shutil

    import h5py

    import gprpipe.steps.export as export

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point = run / "nominal"
    module, name, source = (
        (export, "_read_fit", point / "fit.h5")
        if command == "export-pyhf"
        else (export, "_provenance", point / "limit.h5")  # after it read every window
    )
    original = getattr(module, name)

    def read_then_replaced(*args: object) -> object:
        got = original(*args)
        new = source.with_suffix(".new")  # a run commits its new file by a rename
        shutil.copy(source, new)
        with h5py.File(new, "a") as f:
            f.attrs["rewritten"] = 1
        new.replace(source)
        return got

    monkeypatch.setattr(module, name, read_then_replaced)
    record = point / ".state" / "exports.json"  # (an export elsewhere may have made it)
    before = record.read_bytes() if record.exists() else None
    mass = ("--mass", "60MeV") if command == "export-pyhf" else ()
    code, out, err = cli(command, run, "--dataset", "demo", *mass)
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: {point}: {source.name} changed while this export read it (a run of the "
        "point?); nothing was written: export again when the run has ended."
    )
    assert not (point / "exports").exists()
    assert (record.read_bytes() if record.exists() else None) == before


def test_an_export_never_replaces_a_file_of_the_run(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """``-o`` naming a file of the run (run.json, fit.h5, a commit record) is refused with
    one sentence and the file is left as it was; a point's exports folder, a new file in
    it and places outside every run folder are fine."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point = run / "nominal"
    base = ("export-pyhf", run, "--dataset", "demo", "--mass", "30MeV", "-o")
    # (and names a run may write: inject.h5 of a later config, a file among the figures;
    # they were taken for an earlier config's inject.h5, or left among the plot step's)
    for target in (
        *(run / "run.json", point / "fit.h5", point / ".state" / "exports.json"),
        *(point / "inject.h5", point / "plots" / "new.json"),
        # a file at a folder's name: every later default export (exports/) or projection
        # (reach/) failed on it (a review)
        *(point / "exports", point / "reach", run / "compare"),
    ):
        before = target.read_bytes() if target.exists() else None
        code, out, err = cli(*base, target)
        assert code == 1, out
        assert err.strip() == (
            f"error: {target}: is a file of the run {run} (or one it may write); write exports "
            "to a point's exports folder (the default), a new file or outside the run."
        )
        assert (target.read_bytes() if target.exists() else None) == before
    assert cli("summary", run)[0] == 0
    mine = point / "exports" / "mine.json"
    for _ in range(2):  # and again: an earlier export is not a file of the run
        code, _, err = cli(*base, mine)
        assert code == 0, err
        assert json.loads(mine.read_text())["version"] == "1.0.0"
    outside = tmp_path / "x" / "ws.json"
    assert cli(*base, outside)[0] == 0
    assert cli(*base, outside)[0] == 1  # no record out there (see the test below)
    assert cli(*base, outside, "--force")[0] == 0
    assert json.loads(outside.read_text())["version"] == "1.0.0"
    # nor of another run that -o reaches into
    other = tmp_path / "other"
    shutil.copytree(shared_quickstart, other, symlinks=True)
    for target in (
        other / "nominal" / "scan.csv",
        *(other / "nominal" / d / "ws.json" for d in (".state", "parts", "plots", "logs")),
    ):
        before = target.read_bytes() if target.exists() else None
        code, _, err = cli(*base, target)
        assert code == 1 and f"is a file of the run {other} (or one it may write);" in err
        assert (target.read_bytes() if target.exists() else None) == before
    # in a run folder outside the exported point folder (the run's own top, another run's
    # exports): in no run's records, so a later blinded run of that folder kept it, and its
    # summary offered another run's export as its own
    for target, holder in (
        (run / "ws.json", run),
        (other / "nominal" / "exports" / "ws.json", other),
    ):
        code, _, err = cli(*base, target)
        assert code == 1 and err.strip() == (
            f"error: {target}: inside the run folder {holder} but outside the exported point "
            f"folder {point}: an export there is in no run's records (a later blinded run of "
            "that folder, its summary and report would not know it); write it into the point "
            "folder (exports/, the default) or outside every run folder."
        )
        assert not target.exists()
    code, _, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "30MeV", "--point", "1")
    assert code == 1 and err.strip() == f"error: {run}: no grid point '1' (have: nominal)."


def test_an_export_replaces_no_file_but_an_earlier_export_without_force(
    shared_quickstart: Path, tmp_path: Path, cli
) -> None:
    """``-o victim.root`` turned a data file into a workspace (exit 0), and ``export-spey
    -o folder`` replaced a spey_demo.json that no export wrote (a review): an existing
    file that is no recorded export of the point is refused with one sentence and kept;
    ``--force`` replaces it."""
    import shutil

    victim = tmp_path / "victim.root"
    shutil.copy(DEMO_ROOT, victim)
    folder = tmp_path / "theirs"
    folder.mkdir()
    for name in ("spey_demo.json", "pyhf_demo_bkgonly.json"):
        (folder / name).write_text("{}\n")
    point = shared_quickstart / "nominal"
    for args, target in (
        (("export-pyhf", "--mass", "60MeV", "-o", victim), victim),
        (("export-pyhf", "--patchset", "-o", folder), folder / "pyhf_demo_bkgonly.json"),
        (("export-spey", "-o", folder), folder / "spey_demo.json"),
    ):
        before = target.read_bytes()
        code, out, err = cli(args[0], shared_quickstart, "--dataset", "demo", *args[1:])
        assert code == 1, out
        assert err.strip() == (
            f"error: {target}: already exists and is no earlier export of {point} (exports "
            "written outside it are not recorded); choose another name (-o) or use --force "
            "to replace it."
        )
        assert target.read_bytes() == before
        code, _, err = cli(args[0], shared_quickstart, "--dataset", "demo", *args[1:], "--force")
        assert code == 0, err
        assert json.loads(target.read_text()), target
    # a folder: said at once (the refusal offered --force, which could not help)
    code, _, err = cli(
        "export-pyhf", shared_quickstart, "--dataset", "demo", "--mass", "60MeV", "-o", folder
    )
    assert code == 1 and err.strip() == f"error: {folder}: is a folder, not a file to write."


def test_an_export_to_a_symlink_loop_is_one_sentence(
    shared_quickstart: Path, tmp_path: Path, cli
) -> None:
    """``-o`` at a link that leads back to itself (or into a folder that is one) was
    "internal error: RuntimeError: Symlink loop from ..." (a review): one sentence naming
    it, and nothing written."""
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    (tmp_path / "d1").symlink_to("d2")
    (tmp_path / "d2").symlink_to("d1")
    for args, target in (
        (("export-pyhf", "--mass", "60MeV", "-o", tmp_path / "a.json"), tmp_path / "a.json"),
        (("export-spey", "-o", tmp_path / "d1"), tmp_path / "d1" / "spey_demo.json"),
    ):
        code, out, err = cli(args[0], shared_quickstart, "--dataset", "demo", *args[1:])
        assert code == 1, out
        assert err.strip() == (
            f"error: {target}: cannot resolve this path (Symlink loop from '{target}')."
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "d1", "d2"]


def test_an_export_of_a_mass_whose_gp_fit_failed_says_so(tmp_path: Path, cli) -> None:
    """A mass whose GP fit failed has no stored window: the export said fit.h5 was damaged
    once the window reader checked its groups (a review); it says the fit failed."""
    from tests.conftest import QUICKSTART, settings

    run = tmp_path / "run"
    sets = settings(
        f"base.output={run}", "scan.masses=[0.06, 0.1]", "datasets.demo.data_range=[0.01, 0.07]"
    )
    cli("run", QUICKSTART, *sets, "--steps", "load,fit")
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "100MeV")
    assert code == 1, out
    assert err.startswith(f"error: {run / 'nominal' / 'fit.h5'}: the GP fit at 0.1 GeV failed (fit")
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "60MeV")
    assert code == 0, err


def test_exports_of_no_ok_mass_say_the_statuses(tmp_path: Path, cli) -> None:
    """Every mass flagged (fits that converged, a goodness of fit below fit.gof_p_min):
    export-pyhf --patchset said "no successful GP fit" and export-spey "nothing to export"
    (a review); both name the statuses."""
    from tests.conftest import QUICKSTART, settings

    run = tmp_path / "run"
    sets = settings(f"base.output={run}", "scan.masses=[0.06, 0.1]", "fit.gof_p_min=0.9")
    assert cli("run", QUICKSTART, *sets, "--steps", "load,fit,limit")[0] == 0
    said = (
        f"error: {run / 'nominal' / 'fit.h5'}: no mass of 'demo' is ok (2 flag_gof); the "
        "exports take the ok masses only, and those whose observed toy limit alone is "
        "unresolved (the status column of scan.csv says why each is not)."
    )
    for export in (["export-pyhf", "--patchset"], ["export-spey"]):
        code, out, err = cli(export[0], run, "--dataset", "demo", *export[1:])
        assert (code, out, err.strip()) == (1, "", said)
    assert not (run / "nominal" / "exports").exists()


def test_exports_say_which_masses_they_leave_out(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A PatchSet and a Spey file hold the masses whose fit is ``ok``: the masses left out
    (flagged) are named in their description and on the command line, as in HEPData (they
    were dropped without a word); a workspace of one flagged mass says what it is."""
    from tests.conftest import QUICKSTART, settings

    data = tmp_path / "sig70.root"  # a 20,000-event signal at 70 MeV: 60 MeV's sidebands fail
    assert cli("demo-data", data, "--signal-mass", "70MeV", "--signal-yield", "20000")[0] == 0
    run = tmp_path / "run"
    code, _, err = cli(
        "run",
        QUICKSTART,
        *settings(f"base.output={run}", f"datasets.demo.path={data}", "scan.masses=[0.06, 0.07]"),
        "--steps",
        "load,fit,limit",
    )
    assert code == 0, err
    rows = list(csv.DictReader((run / "nominal" / "scan.csv").open()))
    assert [r["status"] for r in rows] == ["flag_gof", "ok"]
    note = (
        "Test masses left out (a quality flag, or a failed fit or limit, in brackets): "
        "0.06 GeV (flag_gof)."
    )
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--patchset")
    assert code == 0 and "(1 patches, one per mass not left out)" in out and note in out, err
    ps = json.loads((run / "nominal" / "exports" / "pyhf_demo_patchset.json").read_text())
    assert ps["metadata"]["description"].endswith(note)
    assert [p["metadata"]["name"] for p in ps["patches"]] == ["m70MeV"]
    code, out, err = cli("export-spey", run, "--dataset", "demo")
    assert code == 0 and note in out, err
    spey = json.loads((run / "nominal" / "exports" / "spey_demo.json").read_text())
    assert [e["mass_GeV"] for e in spey["masses"]] == [0.07]
    assert spey["masses_left_out"] == [{"mass_GeV": 0.06, "status": "flag_gof"}]
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "60MeV")
    assert code == 0 and "notice: 60 MeV of demo is flag_gof: HEPData's limit tables" in out, err


def test_exports_leave_out_a_mass_whose_limit_failed(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A mass whose GP fit is ok but whose limit failed (8 MeV, below the demo spectrum's
    turn-on: the window holds no events, so the signal fit has no minimum; it gave
    A_up = 2.9 without an eps^2 until NUMERICS_VERSION 29) is left out of the
    PatchSet and the Spey file and named, as in scan.csv: the exports read the fit's status
    alone, so the PatchSet held it and the Spey file had ``"eps2_up": NaN`` and
    ``Infinity``, which are no JSON. (The case was the demo emptied above 55 MeV, until the
    30 MeV fit of that spectrum, whose window prediction was 30x the data, failed too.)"""
    import numpy as np

    from tests.conftest import QUICKSTART, settings

    run = tmp_path / "run"
    sets = settings(
        f"base.output={run}",
        "datasets.demo.range=[0.005, 0.15]",
        "scan.masses=[0.008, 0.03]",
        "fit.require_two_sidebands=false",
        'plot.formats=["png"]',
    )
    code, _, _ = cli("run", QUICKSTART, *sets, "--steps", "load,fit,limit")
    rows = list(csv.DictReader((run / "nominal" / "scan.csv").open()))
    failed = rows[0]["status"]
    assert code == 1 and [r["status"] for r in rows] == [failed, "ok"]
    assert re.fullmatch(
        r"limit failed: the signal fit in the window \(or its profile at A = 0\) did not "
        r"converge \(A_hat -\d\.\d+, "
        r"sigma_A inf\): the window holds no events",
        failed,
    )
    assert rows[0]["A_up"] == rows[0]["eps2_up"] == "nan"
    note = (
        "Test masses left out (a quality flag, or a failed fit or limit, in brackets): "
        f"0.008 GeV ({failed})."
    )
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--patchset")
    assert code == 0 and "(1 patches, one per mass not left out)" in out and note in out, err
    ps = json.loads((run / "nominal" / "exports" / "pyhf_demo_patchset.json").read_text())
    assert [p["metadata"]["name"] for p in ps["patches"]] == ["m30MeV"]
    code, out, err = cli("export-spey", run, "--dataset", "demo")
    assert code == 0 and note in out, err
    text = (run / "nominal" / "exports" / "spey_demo.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    spey = json.loads(text)
    assert [e["mass_GeV"] for e in spey["masses"]] == [0.03]
    assert np.isfinite(spey["masses"][0]["eps2_up"])
    assert spey["masses_left_out"] == [{"mass_GeV": 0.008, "status": failed}]
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "8MeV")
    assert code == 0 and f"notice: 8 MeV of demo is {failed}: HEPData's limit tables" in out, err
    # the reach projection counts the masses it projected (it said "2 masses")
    code, out, err = cli("project-reach", run, "--scale", "demo=4")
    assert code == 0 and "1 mass (1 flagged or failed left out); median gain" in out, err
    # in the point's plot.formats (a PDF was written whatever they said)
    reach = sorted(p.name for p in (run / "nominal" / "reach").iterdir())
    assert reach == ["reach.csv", "reach.png"]
    # a limit.h5 of other settings: the workspaces need the fit alone (it was refused)
    code, _, err = cli("run", QUICKSTART, *sets, "--set", "fit.n_restarts=3", "--steps", "load,fit")
    assert code == 0, err
    code, out, err = cli("export-pyhf", run, "--dataset", "demo", "--patchset")
    assert code == 0 and "notice: the limits' statuses are not applied (" in out, err
    # the fits' statuses alone: each mass is a patch or left out for its fit's status
    patches = int(re.search(r"\((\d+) patches, one per mass not left out\)", out).group(1))
    left = re.findall(r"([\d.]+) (?:MeV|GeV) \((flag_\w+|fit failed[^)]*)\)", out)
    assert patches + len(left) == 2 and failed not in out, out
    # a damaged limit.h5 is refused, as export-spey and project-reach refuse it (the
    # patchset went on without its statuses, flagged masses included)
    limit = run / "nominal" / "limit.h5"
    limit.write_bytes(limit.read_bytes()[:500])
    for args in (("--patchset",), ("--mass", "30MeV")):
        code, out, err = cli("export-pyhf", run, "--dataset", "demo", *args)
        assert (code, out) == (1, ""), args
        assert err.strip() == (
            f"error: {limit}: differs from what its task nominal/limit/merge wrote (sha256 "
            "mismatch); run the point again to recompute it."
        )


def test_exports_written_elsewhere_say_which_run_they_come_from(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A Spey JSON or a PatchSet written outside the run (``-o``) names the gprpipe, run and
    point it came from, with the sha256 and cache key of the step output it was made
    from (limit.h5 for Spey, fit.h5 for pyhf): a collaborator's copy can be traced."""
    import h5py

    from gprpipe.io.hdf5 import sha256_file

    point = shared_quickstart / "nominal"

    def origin(name: str) -> tuple[str, str]:
        with h5py.File(point / name, "r") as f:
            return sha256_file(point / name), str(f.attrs["cache_key"])

    assert cli("export-spey", shared_quickstart, "--dataset", "demo", "-o", tmp_path)[0] == 0
    made = json.loads((tmp_path / "spey_demo.json").read_text())["provenance"]
    digest, key = origin("limit.h5")
    assert made["made_by"].startswith("gprpipe ") and len(key) == 32
    assert {k: v for k, v in made.items() if k != "made_by"} == {
        "run": "quickstart",
        "point": "nominal",
        "source": "limit.h5",
        "source_sha256": digest,
        "source_cache_key": key,
    }
    args = ("export-pyhf", shared_quickstart, "--dataset", "demo", "--patchset", "-o", tmp_path)
    assert cli(*args)[0] == 0
    text = json.loads((tmp_path / "pyhf_demo_patchset.json").read_text())["metadata"]
    digest, key = origin("fit.h5")
    assert text["description"].endswith(  # the masses left out, if any, follow
        f" Made by {made['made_by']} from fit.h5 of run 'quickstart', point 'nominal' "
        f"(sha256 {digest}, cache key {key})."
    )


def test_a_point_of_an_earlier_config_exports_by_name_as_by_folder(
    shared_quickstart: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A point folder the run's last config no longer has (a shrunk grid) was exported when
    given as a folder, with a notice, but ``--point NAME`` refused it ("no grid point");
    both now export it with the notice. A name that is no folder of the run still fails."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    shutil.copytree(run / "nominal", run / "old", symlinks=True)
    notice = (
        f"notice: {run / 'old'} is no point of its run's last config ({run / 'run.json'}); "
        "its results are those of an earlier config of that run."
    )
    for args in ((run, "--point", "old"), (run / "old",)):
        code, out, err = cli("export-spey", *args, "--dataset", "demo")
        assert code == 0, err
        assert notice in " ".join(out.split())
        assert json.loads((run / "old" / "exports" / "spey_demo.json").read_text())["masses"]
    # a link to another run's point is no point of this run
    other = tmp_path / "other"
    shutil.copytree(shared_quickstart, other, symlinks=True)
    (run / "evil").symlink_to(other / "nominal")
    code, _, err = cli("export-spey", run, "--point", "evil", "--dataset", "demo")
    assert code == 1 and "outside the run directory" in err, err
    assert not (other / "nominal" / "exports").exists()
    for name in ("../old", "gone", ".."):
        code, _, err = cli("export-spey", run, "--point", name, "--dataset", "demo")
        assert code == 1 and err.strip() == (
            f"error: {run}: no grid point {name!r} (have: nominal)."
        ), err


def test_exports_of_the_current_folder_given_as_dot(
    shared_quickstart: Path,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``export-spey .`` in a point folder said it was "no point of its run's last config"
    (the name of ``.`` is '') and wrote the run's index.html into the point folder (the
    parent of ``.`` is ``.``): the notice is gone and the index is the run folder's."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    monkeypatch.chdir(run / "nominal")
    index = (run / "index.html").stat().st_mtime_ns
    for args in (("export-spey",), ("export-pyhf", "--mass", "60MeV")):
        code, out, err = cli(args[0], ".", "--dataset", "demo", *args[1:])
        assert (code, err) == (0, ""), err
        assert out.startswith(f"wrote {run / 'nominal' / 'exports'}/") and "notice" not in out
    assert not (run / "nominal" / "index.html").exists()
    assert (run / "index.html").stat().st_mtime_ns > index
    assert "spey_demo.json" in (run / "nominal" / "report.html").read_text()
