"""Compare runs or grid points: ``points_of`` turns command-line arguments (run folders or
point folders) into labelled point folders, ``read_tables`` reads their ``scan.csv``; the
ratios are :func:`gprpipe.results.compare.compare_curves`; :func:`write_comparison` draws
and writes them (``gprpipe compare``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gprpipe.config import point_config_from_file
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import absent, read_json
from gprpipe.pipeline.commit import as_recorded, vouched
from gprpipe.pipeline.store import last_run_blind
from gprpipe.pipeline.summary import read_table

if TYPE_CHECKING:
    from gprpipe.results.compare import DatasetComparison


def output_folder(out: Path | None, points: Mapping[str, Path]) -> Path:
    """Where the comparison is written: ``out``, else ``RUN/compare`` for the points of one
    run, else ``./compare``. Inside a run directory only its ``compare/`` folder: the
    figures would otherwise lie among the run's own (a report shows every PNG of
    ``plots/``)."""
    import os

    from gprpipe.io.atomic import inside
    from gprpipe.pipeline.plan import RUN_JSON

    parents = {p.parent.resolve() for p in points.values()}
    folder = out or (parents.pop() / "compare" if len(parents) == 1 else Path("compare"))
    # a folder in a run directory (as written, -o or not) must stay in it: a link there
    # (RUN/compare -> elsewhere) would lead the writes out, past the blinded-run check
    lexical = Path(os.path.abspath(folder))
    holder = next((d for d in (lexical, *lexical.parents) if (d / RUN_JSON).is_file()), None)
    real = Path(os.path.realpath(folder))
    if holder is not None and out is None:
        inside(folder, holder, "the comparison folder", run_dir=True)
    elif holder is not None and not real.is_relative_to(os.path.realpath(holder)):
        raise GprpipeError(
            f"-o {folder}: resolves to {real}, outside the run directory {holder} it lies "
            "in; remove the link, or write the comparison elsewhere (-o)."
        )
    run = next((d for d in (real, *real.parents) if (d / RUN_JSON).is_file()), None)
    if run is not None and real != run / "compare" and run / "compare" not in real.parents:
        named = f"-o {folder}" if out is not None else f"{folder} (the comparison folder)"
        raise GprpipeError(
            f"{named}: leads inside the run directory {run}, among its own files; write "
            f"the comparison to {run / 'compare'} or outside any run directory (-o)."
        )
    if folder.exists() and not folder.is_dir():
        raise GprpipeError(f"{folder}: a file; -o names the folder to write the comparison to.")
    if run is not None and last_run_blind(run):
        unblinded = [lab for lab, p in points.items() if not _blinded_point(p)]
        if unblinded:
            raise GprpipeError(
                f"{folder}: inside {run}, a blinded run, and {unblinded[0]} is unblinded (its "
                "observed limits would be drawn there): write the comparison outside it (-o)."
            )
    return folder


def _blinded_point(point: Path) -> bool:
    """Whether the point's results were made blinded (its config.toml; else its run's)."""
    from gprpipe.pipeline.store import point_blinded

    blind = point_blinded(point)
    return last_run_blind(point.parent) if blind is None else blind


def points_of(args: Sequence[Path]) -> dict[str, Path]:
    """Label -> point folder: a run folder gives all its points (``run/point``), a point
    folder itself. Labels are as short as they can be while staying distinct."""
    found: list[tuple[Path, str]] = []
    for a in args:
        a = Path(a)
        if (a / "scan.csv").is_file() or (a / "config.toml").is_file():
            found.append((a, a.name))
            continue
        from gprpipe.pipeline.store import load_run_info

        info = load_run_info(a)
        assert info is not None  # without missing_ok a missing run.json raises
        for g in info.data.get("grid", []):
            here = a / g["name"]  # the run folder may have moved since it ran
            found.append((here if here.is_dir() else Path(g["dir"]), g["name"]))
    seen: set[Path] = set()
    for p, _ in found:
        if p.resolve() in seen:
            raise GprpipeError(f"{p}: this point is given twice; compare distinct points.")
        seen.add(p.resolve())
    if len(found) < 2:
        earlier = sorted(  # point folders of a run that its last config does not have
            d.name
            for a in args
            if (Path(a) / "run.json").is_file()
            for d in Path(a).iterdir()
            if (d / "scan.csv").is_file() and d.resolve() not in seen
        )
        hint = (
            f" ({', '.join(earlier)} in {args[0]} "
            f"{'belongs' if len(earlier) == 1 else 'belong'} to an earlier config of the run: "
            "give the point folders to compare them anyway)"
            if earlier
            else ""
        )
        raise GprpipeError(
            "compare needs two or more points: give two run folders, point "
            f"folders, or a run folder with a grid{hint}."
        )
    names = [n for _, n in found]
    if len(set(names)) < len(names):  # the same point name in several runs: add the run
        names = [f"{p.parent.name}/{n}" for (p, _), n in zip(found, names)]
    if len(set(names)) < len(names):
        names = [str(p) for p, _ in found]
    out = {}
    for (p, _), n in zip(found, names):
        there = absent(p / "scan.csv")
        if there == "is missing":
            raise GprpipeError(f"{p}: no scan.csv (has the limit step run?).")
        if there:
            raise GprpipeError(f"{p / 'scan.csv'} {there}: its results cannot be compared.")
        out[n] = p
    return out


def _vouched_scan(pdir: Path) -> Path:
    """The point's scan.csv, vouched for (:func:`vouched`); one without a commit record in
    a folder a run holds is being rewritten by it (it said "run the point again", a race
    audit)."""
    from gprpipe.pipeline.lock import run_holding

    try:
        return vouched(pdir / "scan.csv")
    except GprpipeError:
        who = run_holding(pdir.parent) if as_recorded(pdir / "scan.csv") is None else ""
        if who:  # (a run's lock only: status holds one for a moment, a review)
            raise GprpipeError(
                f"{pdir / 'scan.csv'}: being rewritten by the run going on in {pdir.parent} "
                f"({who}): compare when it has ended."
            ) from None
        raise


def read_tables(points: Mapping[str, Path]) -> dict[str, list[dict[str, str]]]:
    """Each point's ``scan.csv``, once it is intact and its config.toml the one its run
    wrote (one edited by hand is refused, as by status and the exports); one committed
    under another key than its config's (a later run with other settings did not redo
    it, or an older gprpipe made it) is compared with a notice; so is the table of a
    blinded point that holds an earlier run's observed results, without them."""
    from gprpipe.pipeline.cache import output_of
    from gprpipe.pipeline.store import check_point_config
    from gprpipe.results.schema import OBSERVED

    for p in points.values():
        check_point_config(p)
    tables = {lab: read_table(_vouched_scan(p)) for lab, p in points.items()}
    for p in points.values():
        # the table its limit task wrote beside it is intact, limit.h5 not: said, as status
        # and summary say it (the comparison's numbers are scan.csv's alone)
        if (match := as_recorded(p / "limit.h5")) is not None and not match[0]:
            print(
                f"notice: {p / 'limit.h5'} differs from what its task {match[1]} wrote; its "
                "scan.csv is intact and compared (run the point again to recompute limit.h5)."
            )
    for lab, p in points.items():
        rows = tables[lab]
        if rows and not set(OBSERVED).isdisjoint(rows[0]) and _blinded_point(p):
            # an earlier unblinded run's results, kept by a blinded run without the limit
            # step: summary, report and TUI show none of them; the comparison neither
            print(
                f"notice: {p / 'scan.csv'} holds the observed results of an earlier "
                "unblinded run and its config is blinded: compared as blinded (expected "
                "limits only)."
            )
            tables[lab] = [{k: v for k, v in r.items() if k not in OBSERVED} for r in rows]
    for p in points.values():
        if (p / "config.toml").is_file() and not output_of(
            p / "scan.csv", point_config_from_file(p / "config.toml")
        ):
            print(
                f"notice: {p / 'scan.csv'} was made with other settings or inputs than its "
                "point's config, or by an older gprpipe; compared as it is."
            )
    return tables


def _label_as(points: Mapping[str, Path]) -> None:
    """The figures' experiment label as the plot step draws it: the first point's
    ``plot.experiment`` and ``plot.status``, BLINDED if any point is blinded (they read
    "HPS Preliminary" whatever the config said, a review)."""
    from gprpipe.plotting.style import set_labels

    configs = [
        point_config_from_file(p / "config.toml")
        for p in points.values()
        if (p / "config.toml").is_file()
    ]
    if configs:
        first = configs[0].plot
        set_labels(first.experiment, first.status, any(c.base.blind for c in configs))


@dataclass
class Comparison:
    """What :func:`write_comparison` wrote: per dataset its ratios and files, or why it has
    none (``skipped``)."""

    folder: Path
    reference: str
    datasets: list[DatasetComparison]
    skipped: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)  # dataset -> figures, csv


def write_comparison(
    runs: Sequence[Path], out: Path | None, formats: Sequence[str], force: bool = False
) -> Comparison:
    """Compare the points of ``runs`` (the first is the reference): per dataset with
    ratios, ``compare_eps2_<dataset>.<format>`` and ``compare_<dataset>.csv`` in the
    output folder (:func:`output_folder`). Nothing is written when a target is a folder,
    or (without ``force``) a file no earlier comparison there wrote, and a GprpipeError
    says when no dataset can be compared."""
    from gprpipe.io.atomic import atomic_write_text
    from gprpipe.pipeline.plan import RUN_JSON
    from gprpipe.pipeline.store import earlier_point_notice
    from gprpipe.plotting.compare import curves_figure
    from gprpipe.plotting.style import save
    from gprpipe.results.compare import compare_curves, comparison_csv

    points = points_of(runs)
    for p in points.values():
        if notice := earlier_point_notice(p):
            print(notice)
    folder = output_folder(out, points)
    tables = read_tables(points)
    result = Comparison(folder, next(iter(points)), compare_curves(tables))
    result.skipped = {c.dataset: _not_compared(c, tables) for c in result.datasets if not c.ratios}
    if len(result.skipped) == len(result.datasets):
        raise GprpipeError(
            "nothing to compare: "
            + "; ".join(f"{d}: {why}" for d, why in result.skipped.items())
            + "."
        )
    targets = [
        folder / name
        for c in result.datasets
        if c.ratios
        for name in (
            f"compare_{c.dataset}.csv",
            *(f"compare_eps2_{c.dataset}.{k}" for k in formats),
        )
    ]
    if folders := [t for t in targets if t.is_dir()]:
        raise GprpipeError(f"{folders[0]}: is a folder, not a file to write.")
    record = folder / COMPARE_RECORD
    ours = set(_recorded(record))
    theirs = [t for t in targets if (t.exists() or t.is_symlink()) and t.name not in ours]
    # (a user's file of that name was replaced unasked: a review); a run's own compare/
    # folder is gprpipe's, also as written before comparisons kept their record
    own = folder.name == "compare" and (folder.parent / RUN_JSON).is_file()
    if theirs and not (force or own):
        raise GprpipeError(
            f"{theirs[0]}: already exists and is no earlier comparison's file (its record "
            f"{COMPARE_RECORD} does not list it); choose another folder (-o) or use --force "
            "to replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    # recorded before they are written: a comparison cut short leaves files it owns
    mine = sorted(ours | {t.name for t in targets})
    atomic_write_text(record, json.dumps({"files": mine}) + "\n")
    _label_as(points)
    for comp in result.datasets:
        if comp.ratios:
            figures = save(
                curves_figure(comp.curves, comp.dataset),
                folder,
                f"compare_eps2_{comp.dataset}",
                formats,
            )
            table = folder / f"compare_{comp.dataset}.csv"
            atomic_write_text(table, comparison_csv(comp))
            result.files[comp.dataset] = [*figures, table]
    # an earlier comparison's files of datasets not compared now (they stayed, showing the
    # ratios of other points with nothing to say so: a review): those its record lists,
    # never a file of the user's (every compare_* went: the whole-diff review)
    written = sorted(f.name for files in result.files.values() for f in files)
    for name in ours:
        old = folder / name
        if name not in written and name.startswith("compare_") and old.is_file():
            old.unlink()
    atomic_write_text(record, json.dumps({"files": written}) + "\n")
    return result


#: the files a comparison wrote, in its output folder
COMPARE_RECORD = ".gprpipe-compare.json"


def _recorded(record: Path) -> list[str]:
    """The file names an earlier comparison recorded (none when unreadable)."""
    try:
        files = read_json(record).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and "/" not in f and f != COMPARE_RECORD]


def _not_compared(
    comp: DatasetComparison, tables: Mapping[str, Sequence[Mapping[str, str]]]
) -> str:
    """Why a dataset has no ratio to show: a point without it, a point without a limit,
    or no common mass."""
    absent = [k for k, rows in tables.items() if all(r["dataset"] != comp.dataset for r in rows)]
    if absent:
        return f"{', '.join(absent)} {'has' if len(absent) == 1 else 'have'} no such dataset"
    have = {c.label for c in comp.curves}
    missing = [label for label in tables if label not in have]
    if missing:
        return (
            f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no mass with a "
            "limit (every row failed or flagged)"
        )
    return "the points have no mass with a limit in common"
