"""export-pyhf: the blind-window likelihood of one (dataset, mass) as a HistFactory workspace.

The POI ``A`` of the workspace is the signal yield in units of ``signal_scale`` (a round
number near sigma_A, so that pyhf's minimisers see an O(1) parameter); the scale is in
the measurement name and in the file name, and upper limits multiply by it. The signal
sample is the template the point's ``fit.signal_leakage`` selects (``w_eff`` by default,
``w`` with ``"ignore"``), so pyhf sees exactly the likelihood of the limit step.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gprpipe.errors import GprpipeError, resolved
from gprpipe.io.atomic import atomic_write_text, inside
from gprpipe.io.hdf5 import open_h5, sha256_file
from gprpipe.pipeline.cache import vouched_for
from gprpipe.pipeline.commit import record_export, recorded_exports, run_files, vouched
from gprpipe.pipeline.plan import GRID_FIGURES, INDEX, RUN_JSON, Layout
from gprpipe.pipeline.store import earlier_point_notice, last_run_blind, load_run_info
from gprpipe.results.schema import COMBINED
from gprpipe.steps.report import refresh_reports
from gprpipe.units import same_mass


def checked_point_dir(run_dir: Path, point: str | None) -> Path:
    """The point folder an export reads (``run_dir`` itself, or its point ``point``),
    refused when its config.toml was edited by hand since its run wrote it (run.json's
    sha256), as status and summary refuse it: the export would follow another config."""
    from gprpipe.pipeline.lock import refuse_reader_beside_a_run
    from gprpipe.pipeline.state import state_dir
    from gprpipe.pipeline.store import check_point_config

    pdir = _find_point_dir(Path(run_dir), point)
    # the export, its record and the reports are written there: inside its run folder
    # (that of the point folder given itself: the folder holding its run.json)
    given = pdir == Path(os.path.abspath(run_dir))  # (then absolute: see _find_point_dir)
    run = pdir.parent if given else Path(run_dir)
    if pdir != run and (run / RUN_JSON).is_file():
        inside(pdir, run, "the point folder", run_dir=True)
    for folder in (state_dir(pdir), Layout(pdir).plots):
        inside(folder, pdir, "this folder of the point")
    refuse_reader_beside_a_run(pdir.parent)
    check_point_config(pdir)
    return pdir


def _find_point_dir(run_dir: Path, point: str | None) -> Path:
    if Layout(run_dir).config.is_file() and point is None:
        # a point folder given itself (maybe ``.``): its name and run folder are those of
        # its absolute path, without resolving links (inside() checks where they lead)
        run_dir = Path(os.path.abspath(run_dir))
        if notice := earlier_point_notice(run_dir):
            print(notice)
        return run_dir
    info = load_run_info(run_dir)
    points = info.data.get("grid", [])
    names = ", ".join(p["name"] for p in points)
    if point is None:
        if len(points) != 1:
            raise GprpipeError(
                f"{run_dir}: several grid points ({names}); choose one with --point."
            )
        return run_dir / points[0]["name"]
    for p in points:
        if p["name"] == point:
            return run_dir / p["name"]
    stale = run_dir / point
    if "/" not in point and point not in (".", "..") and Layout(stale).config.is_file():
        # a point of an earlier config kept on disk: as when its folder is given (a link
        # to another run's point is no point of this run)
        inside(stale, run_dir, f"the point folder {point!r}", run_dir=True)
        if notice := earlier_point_notice(stale):
            print(notice)
        return stale
    raise GprpipeError(f"{run_dir}: no grid point {point!r} (have: {names}).")


def point_config_of(pdir: Path):
    """The point's config as its folder holds it (whichever steps its last run selected:
    an export after ``--steps plot`` reads the fit as any other)."""
    from gprpipe.config import point_config_from_file

    path = Layout(pdir).config
    if not path.is_file():
        raise GprpipeError(f"{pdir}: not a point folder of a gprpipe run (no config.toml).")
    return point_config_from_file(path)


_RESERVED = {RUN_JSON, INDEX, *(p.name for p in Layout(Path(".")).files())}
"""Names of the files a run (of any config) keeps in a point folder or its run folder."""
_FOLDERS = {"plots", "parts", "hepdata", "reach", "exports", "logs", "compare"}
"""Names of the folders a run, its exports and comparisons make there."""


def _refuse_managed(path: Path, pdir: Path) -> None:
    """Refuse an export file (``-o``) that is a file of the exported run, or of another run
    folder it lies in (the same rules: a review wrote into another run's ``.state``,
    ``parts`` and ``plots``): a file the run keeps (:func:`~gprpipe.pipeline.commit.run_files`:
    ``-o run/nominal/fit.h5`` would replace the fit with the export's JSON), one in its
    records (dot-folders) or its logs. A new file, or an earlier export, may be written."""
    real = Path(os.path.realpath(path.parent)) / path.name  # the link itself is replaced
    holder = next((f for f in real.parents if (f / RUN_JSON).is_file()), None)
    point = Path(os.path.realpath(pdir))
    run = point.parent if (point.parent / RUN_JSON).is_file() else point
    if not real.is_relative_to(run) and holder is not None:
        run = holder  # another run's folder: the same rules (its records, logs, plots)
    kept = False
    if real.is_relative_to(run):
        inner = real.relative_to(run).parts
        kept = any(part.startswith(".") for part in inner)
        # the steps' own folders and logs (exports/ is the exports' own; a run's compare/
        # is refused below, outside the point), and the names of their outputs in a point
        # folder (one a later step or config may make: inject.h5 was taken for an earlier
        # config's)
        kept = kept or bool((_FOLDERS - {"exports", "compare"}) & set(inner[:-1]))
        kept = kept or (len(inner) <= 2 and real.name in _RESERVED | _FOLDERS)
        kept = kept or (len(inner) == 1 and any(fnmatch(real.name, g) for g in GRID_FIGURES))
        kept = kept or real in run_files(run)
    if kept:
        raise GprpipeError(
            f"{path}: is a file of the run {run} (or one it may write); write exports to a "
            "point's exports folder (the default), a new file or outside the run."
        )
    if holder is not None and last_run_blind(holder):
        raise GprpipeError(
            f"{path}: inside {holder}, a blinded run; an export carries observed counts of "
            "an unblinded fit: write it outside the blinded run's folder."
        )
    if holder is not None and not real.is_relative_to(point):
        raise GprpipeError(
            f"{path}: inside the run folder {holder} but outside the exported point folder "
            f"{point}: an export there is in no run's records (a later blinded run of that "
            "folder, its summary and report would not know it); write it into the point "
            "folder (exports/, the default) or outside every run folder."
        )


def source_digests(pdir: Path) -> dict[Path, str | None]:
    """The sha256 of the outputs an export reads (fit.h5, limit.h5; None where absent),
    taken before it reads them: :func:`unchanged_sources` checks that no run replaced
    them since (an export is recorded as made from these bytes)."""
    lay = Layout(pdir)
    return {p: sha256_file(p) if p.is_file() else None for p in (lay.fit, lay.limit)}


def unchanged_sources(pdir: Path, read: dict[Path, str | None]) -> None:
    """Refuse an export whose sources changed since ``read`` (:func:`source_digests`)."""
    now = source_digests(pdir)
    if changed := [p.name for p in read if read[p] != now[p]]:
        raise GprpipeError(
            f"{pdir}: {' and '.join(changed)} changed while this export read "
            f"{'them' if len(changed) > 1 else 'it'} (a run of the point?); nothing was "
            "written: export again when the run has ended."
        )


def _publish(
    pdir: Path,
    files: dict[Path, str],
    source: Path,
    read: dict[Path, str | None],
    force: bool = False,
    also: Sequence[Path] = (),
) -> None:
    """Write the export ``files`` and record which ``source`` (fit.h5, or limit.h5 for
    exports that carry limits) they came from, and which other outputs ``also`` decided
    what they hold (limit.h5's statuses); if either fails, no file of this export is left
    behind (an unrecorded export would pass for one of the current fit). ``read``:
    :func:`source_digests` before the export read them; one a run replaced since is
    refused (the export would be recorded as made from bytes it never read). An existing
    file that is no recorded export of the point (``-o`` at a data file, a collaborator's
    JSON) is replaced only with ``force``."""
    unchanged_sources(pdir, read)
    digest = read[source]
    for path in files:
        resolved(path)  # a link (or a folder's) that leads back to itself: said
        _refuse_managed(path, pdir)
    earlier = {p.resolve() for p in recorded_exports(pdir, observed_only=False)}
    for path in files:
        if path.is_dir():
            raise GprpipeError(f"{path}: is a folder, not a file to write.")
        exists = path.exists() or path.is_symlink()
        if exists and not force and resolved(path) not in earlier:
            outside = not path.resolve().is_relative_to(pdir.resolve())
            raise GprpipeError(
                f"{path}: already exists and is no earlier export of {pdir}"
                + (" (exports written outside it are not recorded)" if outside else "")
                + "; choose another name (-o) or use --force to replace it."
            )
    written: list[Path] = []
    try:
        for path, text in files.items():
            atomic_write_text(path, text)
            written.append(path)
        record_export(pdir, written, source, digest, also=also)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    refresh_reports(pdir, written)


def _provenance(pdir: Path, source: Path, run: str, digest: str | None) -> dict[str, str]:
    """Where an export came from, for a file that may leave its run folder (``-o``, a
    collaborator's copy): the gprpipe that wrote it, the run and point, and the step output
    it was made from (its sha256 and cache key: the config, inputs and numerics); ``run``:
    the run's name (``base.name``); ``digest``: the source's sha256 as the export read it
    (:func:`source_digests`), if taken."""
    from gprpipe.io.source import package_version

    with open_h5(source) as f:
        key = str(f.attrs.get("cache_key", ""))
    return {
        "made_by": f"gprpipe {package_version()}",
        "run": run,
        "point": pdir.name,
        "source": source.name,
        "source_sha256": digest or sha256_file(source),
        "source_cache_key": key,
    }


def round_scale(x: float) -> float:
    """A round number (1, 2 or 5 times a power of ten) near ``x``."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    e = math.floor(math.log10(x))
    return min((1, 2, 5, 10), key=lambda k: abs(math.log(k * 10**e / x))) * 10**e


def _read_fit(lay: Layout, pdir: Path, dataset: str) -> dict:
    from gprpipe.steps.fit import read_fit

    if not lay.fit.exists():
        raise GprpipeError(f"{pdir}: no fit.h5 (run the fit step first).")
    try:
        return read_fit(vouched_for(lay.fit), dataset)
    except KeyError:
        with open_h5(lay.fit) as f:
            have = ", ".join(k for k in f if isinstance(f[k], h5py.Group)) or "none"
        if dataset == COMBINED:  # the joint fit is no window of one histogram
            raise GprpipeError(
                f"--dataset {COMBINED}: this export is of one dataset's window (have: {have}); "
                f"the combination's likelihood is exported by export-spey --dataset {COMBINED}."
            ) from None
        raise GprpipeError(f"{lay.fit}: no dataset {dataset!r} (have: {have}).") from None


def _window(lay: Layout, cfg, dataset: str, fit: dict, i: int) -> dict:
    """The stored blind window of mass index ``i``, with the likelihood's template."""
    from gprpipe.stats.quality import has_result
    from gprpipe.steps.displays import template_of
    from gprpipe.steps.fit import read_blind

    m = float(fit["mass_GeV"][i])
    if not has_result(str(fit["status"][i])):  # no window stored
        raise GprpipeError(f"{lay.fit}: the GP fit at {m:g} GeV failed ({fit['status'][i]}).")
    index = int(np.argmin(np.abs(cfg.test_masses(dataset) - m)))
    blind, attrs = read_blind(lay.fit, dataset, index)
    if "n" not in blind:
        raise GprpipeError(
            f"{lay.fit}: the run is blinded (base.blind), so it holds no "
            "observed counts to export; rerun with 'gprpipe run --unblind'."
        )
    return {**blind, "w": template_of(blind, cfg), "rho": float(attrs["rho"]), "mass": m}


def _single(n, b, L, w) -> float:
    from gprpipe.stats.likelihood import WindowModel

    return round_scale(float(WindowModel(b, L, w).fit(n).sigma_A))


def export_workspace(
    run_dir: Path,
    dataset: str,
    mass: float,
    *,
    point: str | None = None,
    output: Path | None = None,
    force: bool = False,
) -> tuple[Path, dict]:
    from gprpipe.stats.histfactory import workspace
    from gprpipe.stats.likelihood import cholesky_jitter

    pdir = checked_point_dir(run_dir, point)
    lay = Layout(pdir)
    read = source_digests(pdir)
    fit = _read_fit(lay, pdir, dataset)
    masses = fit["mass_GeV"]
    i = int(np.argmin(np.abs(masses - mass)))
    if not same_mass(float(masses[i]), mass):
        raise GprpipeError(
            f"{lay.fit}: mass {mass:g} GeV is not a test mass of {dataset!r} "
            f"({masses.min():g}-{masses.max():g} GeV, nearest {masses[i]:g})."
        )
    cfg = point_config_of(pdir)
    blind = _window(lay, cfg, dataset, fit, i)
    status = str(_status(lay, dataset, fit, cfg)[i])
    if not _exported(np.array([status]))[0]:
        print(
            f"notice: {masses[i] * 1e3:g} MeV of {dataset} is {status}: HEPData's limit "
            "tables and the PatchSet leave it out (scan.csv keeps its row); this workspace "
            "is its likelihood as fitted"
        )
    elif status != "ok":
        print(
            f"notice: {masses[i] * 1e3:g} MeV of {dataset} has no observed limit in the "
            f"scan's tables ({status}); its likelihood is complete"
        )
    L = cholesky_jitter(blind["C"])
    scale = _single(blind["n"], blind["b"], L, blind["w"])
    tag = f"{dataset}_{masses[i] * 1e3:g}MeV"
    ws = workspace(blind["n"], blind["b"], L, blind["w"], name=f"blind_{tag}", signal_scale=scale)
    ws["measurements"][0]["name"] = f"A_in_units_of_{scale:g}"
    if output:
        path = Path(output)
    else:
        path = inside(pdir / "exports", pdir, "the exports folder") / f"pyhf_{tag}.json"
    _publish(pdir, {path: json.dumps(ws, indent=1) + "\n"}, lay.fit, read, force)
    return path, ws


def _exported(status: np.ndarray) -> np.ndarray:
    """The masses the likelihood exports hold: those whose limits are shown
    (:func:`~gprpipe.stats.quality.limits_shown`: ``ok``, or only the observed toy limit
    unresolved, whose fit and so likelihood is ``ok``)."""
    from gprpipe.stats.quality import limits_shown

    return np.array([limits_shown(str(st)) for st in status], dtype=bool)


def _left_out(mass: np.ndarray, status: np.ndarray) -> tuple[list[dict], str]:
    """The masses an export leaves out (:func:`_exported`; ``[{mass_GeV, status}]``) and
    the note that names them and those it holds without an observed limit ('' when none),
    HEPData's: an export without a mass, or a limit, must say so."""
    from gprpipe.steps.hepdata import left_out_note

    ok = _exported(status)
    rows = [{"mass_GeV": float(m), "status": str(st)} for m, st in zip(mass[~ok], status[~ok])]
    note = left_out_note({"mass_GeV": mass, "status": status}, ok)
    if (unresolved := ok & (status != "ok")).any():
        held = ", ".join(f"{m:g} GeV" for m in mass[unresolved])
        note += (
            " Test masses held without an observed limit in the scan's tables (too few toys "
            f"resolve it; the likelihood is complete): {held}."
        )
    return rows, note.strip()


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _nothing_ok(where: Path, dataset: str, left: list[dict]) -> GprpipeError:
    """Why an export of ``dataset`` has no mass: the statuses of those ``left`` out."""
    counts = collections.Counter(str(r["status"]) for r in left)
    what = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none scanned"
    return GprpipeError(
        f"{where}: no mass of {dataset!r} is ok ({what}); the exports take the ok masses "
        "only, and those whose observed toy limit alone is unresolved (the status column of "
        "scan.csv says why each is not)."
    )


def _status(lay: Layout, dataset: str, fit: dict, cfg) -> np.ndarray:
    """The status of each mass of ``fit``: the scan's (``limit.h5``: a limit that failed
    after an ``ok`` fit) where it has the mass, else the fit's; the exports leave out
    what HEPData's limit tables leave out."""
    from gprpipe.steps.limit import read_scan

    status = np.array([str(x) for x in fit["status"]], dtype=object)
    if not lay.limit.exists():
        return status
    vouched(lay.limit)  # damaged or never committed: refused, as the other exports do
    try:  # a limit.h5 of other settings: the fit's own status alone
        tables = read_scan(vouched_for(lay.limit, cfg))
    except GprpipeError as exc:
        print(f"notice: the limits' statuses are not applied ({exc})")
        return status
    scan = tables.get(dataset, {})
    for j, m in enumerate(scan.get("mass_GeV", ())):
        status[same_mass(fit["mass_GeV"], m)] = str(scan["status"][j])
    return status


def _ok_windows(pdir: Path, dataset: str) -> tuple[list, tuple[list[dict], str]]:
    """(config, window) of every test mass the exports hold (:func:`_exported`), and
    those left out (flagged or failed; :func:`_left_out`)."""
    lay = Layout(pdir)
    fit = _read_fit(lay, pdir, dataset)
    cfg = point_config_of(pdir)
    status = _status(lay, dataset, fit, cfg)
    wins = [
        (cfg, _window(lay, cfg, dataset, fit, int(i))) for i in np.flatnonzero(_exported(status))
    ]
    return wins, _left_out(fit["mass_GeV"], status)


def export_patchset(
    run_dir: Path,
    dataset: str,
    *,
    point: str | None = None,
    output: Path | None = None,
    force: bool = False,
    inspire: str = "ins0000000",
) -> tuple[list[Path], int, str]:
    """``pyhf_<dataset>_bkgonly.json`` and ``pyhf_<dataset>_patchset.json`` (one patch per
    test mass whose fit is ``ok``) in ``output`` (default ``<point>/exports``); the paths,
    the number of patches and the note on the masses left out (also in the PatchSet's
    description)."""
    from gprpipe.stats.histfactory import patchset
    from gprpipe.stats.likelihood import cholesky_jitter

    pdir = checked_point_dir(run_dir, point)
    read = source_digests(pdir)
    wins = []
    ok_windows, (rows, left) = _ok_windows(pdir, dataset)
    for _, blind in ok_windows:
        L = cholesky_jitter(blind["C"])
        wins.append(
            {
                "tag": f"m{blind['mass'] * 1e3:g}MeV",
                "mass": blind["mass"],
                "n": blind["n"],
                "b": blind["b"],
                "L": L,
                "w": blind["w"],
                "scale": _single(blind["n"], blind["b"], L, blind["w"]),
            }
        )
    if not wins:
        raise _nothing_ok(Layout(pdir).fit, dataset, rows)
    if not re.fullmatch(r"ins[0-9]{7}", inspire):
        raise GprpipeError(f"--inspire {inspire!r}: an INSPIRE id is 'ins' and 7 digits.")
    fit = Layout(pdir).fit
    made = _provenance(pdir, fit, ok_windows[0][0].base.name, read[fit])
    bkg, ps = patchset(
        wins,
        name=f"gprpipe_{dataset}",
        inspire=inspire,
        description=f"{dataset}: the blind-window likelihood of each test mass; "
        "POI A = signal yield / the unit in the measurement name."
        + f" Made by {made['made_by']} from {made['source']} of run {made['run']!r}, point "
        f"{made['point']!r} (sha256 {made['source_sha256']}, cache key "
        f"{made['source_cache_key']})." + (f" {left}" if left else ""),
    )
    out = Path(output) if output else inside(pdir / "exports", pdir, "the exports folder")
    paths = [out / f"pyhf_{dataset}_bkgonly.json", out / f"pyhf_{dataset}_patchset.json"]
    texts = {p: json.dumps(doc) + "\n" for p, doc in zip(paths, (bkg, ps))}
    _publish(pdir, texts, Layout(pdir).fit, read, force, [Layout(pdir).limit])
    return paths, len(wins), left


# The GP covariance of a window is smooth, so nearly singular (condition number ~1e12);
# Spey's optimiser stalls at its start on it. A diagonal of 1e-6 of the largest variance
# (standard deviations ~1e-3 of the largest) changes the model by far less than the Poisson
# noise and lets it converge (recorded per mass as ``covariance_jitter``).
SPEY_JITTER = 1e-6


def spey_note(mode: str) -> str:
    """What the limits of a Spey export are, for the run's ``limit.mode``."""
    how = (
        "asymptotic CLs, Asimov data = the background prediction"
        if mode == "asymptotic"
        else "CLs from toys (limit.mode = toys; Monte Carlo error eps2_up_err)"
    )
    differs = (
        "lower than eps2_up where the data have a deficit"
        if mode == "asymptotic"
        else "asymptotic, so it differs from the toys' eps2_up also by the asymptotic "
        "approximation, besides lying lower where the data have a deficit"
    )
    return (
        f"eps2_up: gprpipe's observed limit (q~, {how}). eps2_up_spey_convention: the same "
        "likelihood with Spey's Asimov data (background fitted to the data at eps2 = 0, "
        "constraint kept at the prediction), what poi_upper_limit(expected=observed) gives; "
        f"{differs}. null: no value (an observed toy limit too few toys resolve; the entry's "
        "likelihood is complete)."
    )


def export_spey(
    run_dir: Path,
    dataset: str,
    *,
    point: str | None = None,
    output: Path | None = None,
    force: bool = False,
) -> tuple[Path, int, str]:
    """``spey_<dataset>.json``: per test mass the inputs of Spey's correlated-background
    model (``default.correlated_background``): ``data``, ``background``, ``covariance``
    and ``signal_per_eps2`` (signal yields per unit eps^2 = K w), with ``scan.csv``'s
    ``eps2_up`` and ``eps2_up_spey_convention`` (:func:`spey_convention_limit`: the limit
    Spey's observed CLs gives); the covariance includes ``covariance_jitter`` on its diagonal.
    ``dataset = "combined"``: the concatenated windows of the combination
    (block-diagonal covariance; one shared eps^2). ``datasets`` of each entry: dataset ->
    its bins ``[start, stop)`` in the arrays."""
    from gprpipe.results.schema import COMBINED
    from gprpipe.steps.limit import read_scan

    pdir = checked_point_dir(run_dir, point)
    lay = Layout(pdir)
    read = source_digests(pdir)
    if not lay.limit.exists():  # its limits go into every entry
        raise GprpipeError(f"{pdir}: no limit.h5 (run the limit step first).")
    cfg = point_config_of(pdir)
    scans = read_scan(vouched_for(lay.limit, cfg))
    if dataset not in scans:
        raise GprpipeError(
            f"{lay.limit}: no dataset {dataset!r} (have: {', '.join(scans) or 'none'})."
        )
    scan = scans[dataset]
    entries = []
    if dataset == COMBINED:
        windows = _combined_windows(pdir, scan)
        rows, left = _left_out(scan["mass_GeV"], scan["status"]) if scan else ([], "")
    else:
        windows = []
        ok_windows, (rows, left) = _ok_windows(pdir, dataset)
        for _, blind in ok_windows:  # each with the point's config, cfg
            from gprpipe.steps.inject import unit_yield

            k = unit_yield(cfg, dataset, blind["mass"], blind["rho"])
            part = {dataset: [0, len(blind["b"])]}
            windows.append(
                (blind["mass"], blind["n"], blind["b"], blind["C"], k * blind["w"], part)
            )
    for m, n, b, C, s, parts in windows:
        jitter = SPEY_JITTER * float(np.max(np.diag(C)))
        e = {
            "mass_GeV": m,
            # which dataset's window each bin is, [start, stop) (a combined entry joins
            # those with a usable fit at that mass: a review found them unnamed)
            "datasets": parts,
            "data": n,
            "background": b,
            "covariance": C + jitter * np.eye(len(b)),
            "covariance_jitter": jitter,
            "signal_per_eps2": s,
        }
        if scan:
            j = np.flatnonzero(same_mass(scan["mass_GeV"], m))
            if len(j):
                keys: tuple[str, ...] = ("eps2_up", "eps2_exp_med", "A_up")
                if cfg.limit.mode == "toys" and "eps2_up_err" in scan:
                    keys += ("eps2_up_err",)
                # an unresolved observed limit is null (NaN is no JSON)
                e |= {k: _finite_or_none(float(scan[k][j[0]])) for k in keys}
                if e["eps2_up"] is not None and e["eps2_up"] > 0:
                    e["eps2_up_spey_convention"] = e["eps2_up"] * spey_convention_limit(
                        n, b, e["covariance"], s * e["eps2_up"], alpha=cfg.limit.alpha
                    )
        entries.append({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in e.items()})
    if not entries:
        raise _nothing_ok(lay.limit if dataset == COMBINED else lay.fit, dataset, rows)
    doc = {
        "dataset": dataset,
        "model": "default.correlated_background",
        "poi": "eps2 (signal = eps2 * signal_per_eps2)",
        "limit_mode": cfg.limit.mode,
        "conventions": spey_note(cfg.limit.mode)
        + (
            " datasets: the bins [start, stop) of each dataset's window in an entry's "
            "concatenated arrays (a combined entry joins the datasets with a usable fit at "
            "its mass); A_up of a combined entry is the signal yield summed over them."
            if dataset == COMBINED
            else " datasets: the bins [start, stop) of the dataset's window."
        ),
        "alpha": cfg.limit.alpha,  # the limits' CL is 1 - alpha
        "masses": entries,
        "masses_left_out": rows,  # flagged or failed: no entry ({mass_GeV, status})
        "provenance": _provenance(pdir, lay.limit, cfg.base.name, read[lay.limit]),
    }
    out = Path(output) if output else inside(pdir / "exports", pdir, "the exports folder")
    path = out / f"spey_{dataset}.json"
    _publish(pdir, {path: json.dumps(doc) + "\n"}, lay.limit, read, force)  # fit, limits
    return path, len(entries), left


def spey_convention_limit(
    n: np.ndarray, b: np.ndarray, C: np.ndarray, s: np.ndarray, *, alpha: float
) -> float:
    """The observed CLs upper limit on ``mu`` (signal ``mu s``) with gprpipe's likelihood
    and q~, but Spey's Asimov convention: the Asimov data are the background fitted to the
    observed data at ``mu = 0``, ``b + L theta_hat0``, while the constraint on ``theta``
    stays centred at 0 (gprpipe, like pyhf with its recentred auxiliary data, uses an
    Asimov set whose fit is exactly ``mu = 0``). At a deficit the shifted Asimov data look
    like a deficit too, which raises q_A and lowers the limit. Reproduces
    ``poi_upper_limit(expected=observed)`` of Spey's ``default.correlated_background``."""
    from scipy.optimize import brentq

    from gprpipe.stats.cls import cls_asymptotic
    from gprpipe.stats.likelihood import WindowModel, cholesky_jitter

    L = cholesky_jitter(C)
    model = WindowModel(b, L, s)
    n_asimov = b + L @ model.profile(0.0, n)[1]

    def h(mu: float) -> float:
        q, qA = model.qtilde(mu, n), model.qtilde(mu, n_asimov)
        return float(cls_asymptotic(q, qA)) - alpha

    lo, hi = 1.0, 1.0
    while h(lo) < 0 and lo > 1e-8:
        lo /= 2
    while h(hi) > 0 and hi < 1e8:
        hi *= 2
    return float(brentq(h, lo, hi, xtol=1e-9, rtol=1e-8))


def _combined_windows(pdir: Path, scan: dict):
    from gprpipe.stats.combine import combine
    from gprpipe.steps.combine import load_blocks

    if not scan:
        raise GprpipeError(f"{pdir}: no combined rows in limit.h5.")
    cfg = point_config_of(pdir)
    lay = Layout(pdir)
    if cfg.base.blind:  # the combination would stand the Asimov counts in for the data
        raise GprpipeError(
            f"{lay.fit}: the run is blinded (base.blind), so it holds no observed counts "
            "to export; rerun with 'gprpipe run --unblind'."
        )
    vouched_for(lay.fit, cfg)
    out: list[Any] = []
    fits: dict[Any, Any] = {}  # load_blocks' cache of fit results
    for m in scan["mass_GeV"][_exported(scan["status"])]:
        blocks, _, _ = load_blocks(cfg, lay.fit, float(m), fits)
        cw = combine(blocks)
        parts = {blk.name: [sl.start, sl.stop] for blk, sl in zip(blocks, cw.slices, strict=True)}
        out.append((float(m), cw.n, cw.b, cw.C, cw.s_unit, parts))
    return out
