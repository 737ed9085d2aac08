"""The HTML report of a run: ``report.html`` per point, ``index.html`` across grid points.

Written by the plot step; self-contained (no network: figures are files inside the run
directory referenced by relative paths, the table sorting is a few lines of inline
JavaScript). Jinja2 templates (``gprpipe/results/templates``, autoescaped) see only the
values collected here. Any PNG in ``plots/`` and any export (``exports/``, ``hepdata/``,
JSON files of the point) appears automatically.
"""

from __future__ import annotations

import csv
import datetime as dt
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import jinja2

from gprpipe import __version__
from gprpipe.errors import GprpipeError, os_error_sentence
from gprpipe.io.atomic import atomic_write_text
from gprpipe.io.hdf5 import open_h5
from gprpipe.pipeline.cache import output_of
from gprpipe.pipeline.commit import export_files, rerecord, stale_exports, vouched
from gprpipe.pipeline.lock import holder, index_lock, run_holding
from gprpipe.pipeline.plan import (
    GRID_FIGURES,
    INDEX,
    Layout,
    producers,
    stale_outputs,
)
from gprpipe.pipeline.state import finished_slugs, read_state, read_state_marker
from gprpipe.pipeline.summary import observed_withheld
from gprpipe.pipeline.task import slug_of, task_id_of
from gprpipe.results.schema import (
    COMBINED,
    has_observed,
    plot_manifest_files,
    read_csv,
    read_csv_table,
)
from gprpipe.results.summary import (
    dataset_lines,
    injection_lines,
    most_significant,
    summarize_injection,
    summarize_scan,
)

if TYPE_CHECKING:
    from gprpipe.config.schema import Config

PROVENANCE_ATTRS = (
    "created",
    "engine",
    "image",
    "image_digest",
    "gprpipe_version",
    "blinded",
    "cache_key",
)
#: what each table a step keeps in the point folder holds (the report's "Tables")
TABLE_DOCS = {
    "scan.csv": "one row per dataset and test mass: fit, limits, significance",
    "inject.csv": "signal injection: bias, pull and coverage per mass and strength",
    "toyscan.csv": "the scan of every background-only toy, one row per toy and mass",
    "toyscan_summary.csv": "spurious signal per mass over the toys",
    "combination.csv": "per combined mass: each dataset's share of the information",
    "allocation.csv": "combination.csv at the allocation masses (plot.allocation_masses)",
}


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gprpipe.results", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _fmt(value: str) -> str:
    """A CSV cell for display (numbers to 5 significant digits)."""
    try:
        v = float(value)
    except ValueError:
        return value
    if v != v or abs(v) == float("inf"):
        return str(v)  # nan, inf, -inf
    if v == int(v) and abs(v) < 1e6:
        return f"{int(v)}"
    return f"{v:.5g}"


@dataclass
class PageFigure:
    src: str | None  # the image (PNG, else SVG) relative to the page; None: a PDF only
    name: str
    pdf: str | None


# figures a reader wants first; any other PNG follows in name order
ORDER = (
    "spectrum",
    "brazil_eps2",
    "brazil_A",
    "significance",
    "Ahat",
    "observed",
    "eps2_overlay",
    "brazil_eps2_combined",
    "gpfit",
    "gp_hyper",
    "inject",
)


def _rank(figure: Path) -> tuple[int, str]:
    hits = [i for i, p in enumerate(ORDER) if figure.name.startswith(p)]
    return (max(hits) if hits else len(ORDER), figure.as_posix())


def _figures(point_dir: Path) -> list[PageFigure]:
    """The figures the point's plot task wrote (its ``plots/manifest.json``; any name, so
    every step's figures appear), never a file left in ``plots/`` by an earlier config:
    each shown as its PNG (else SVG) with a link to its PDF, or as the PDF's link alone
    (``plot.formats = ["pdf"]``)."""
    files = [p for p in plot_manifest_files(point_dir) or [] if p.is_file()]
    by_stem: dict[Path, dict[str, Path]] = {}
    for f in files:
        by_stem.setdefault(f.with_suffix(""), {})[f.suffix] = f
    out = []
    for stem in sorted(by_stem, key=_rank):
        kinds = by_stem[stem]
        image = kinds.get(".png") or kinds.get(".svg")
        pdf = kinds.get(".pdf")
        if image is None and pdf is None:
            continue

        def rel(f: Path | None) -> str | None:
            return f.relative_to(point_dir).as_posix() if f is not None else None

        out.append(PageFigure(rel(image), stem.name, rel(pdf)))
    return out


def _exports(point_dir: Path, point: bool = True) -> list[str]:
    """Relative paths of the export products of the point folder (:func:`export_files`),
    never an export made from an earlier fit, nor one of no record (``point=False``: the
    run's folder, which keeps none)."""
    stale = stale_exports(point_dir, unrecorded=point)
    return [f for f in export_files(point_dir) if f not in stale]


def _tables(
    point_dir: Path, cfg, made: dict[Path, Any], stale: set[Path]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The tables the point's steps keep in its folder, each with its row count and what it
    holds, and the names of those made with other settings or inputs than ``cfg`` (not
    current: a later run left their step out). A table of an earlier config that ``cfg``
    does not make (``stale``) is neither. ``made``: the point's producers."""
    out, other = [], []
    for path in Layout(point_dir).tables():
        if path in stale or not path.is_file():
            continue
        if path in made and not (_intact(path) and output_of(path, cfg, made)):
            other.append(path.name)  # damaged, or of other settings (the plot's own: current)
            continue
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            rows = max(sum(1 for _ in csv.reader(f)) - 1, 0)
        out.append({"name": path.name, "rows": rows, "doc": TABLE_DOCS[path.name]})
    return out, other


def _intact(path: Path) -> bool:
    """Whether ``path`` is there as its task wrote it (a table edited or damaged since is
    shown nowhere, nor summarised)."""
    try:
        return path.exists() and vouched(path) is not None
    except GprpipeError:
        return False


def _h5_provenance(point_dir: Path, stale: set[Path]) -> list[dict[str, str]]:
    """Provenance attributes of the point's HDF5 files (not those of an earlier config)."""
    rows: list[dict[str, Any]] = []
    lay = Layout(point_dir)
    for path in (lay.load, lay.fit, lay.limit, lay.inject):
        if not path.exists() or path in stale:
            continue
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: f.attrs.get(k) for k in PROVENANCE_ATTRS}
        except OSError:
            continue
        row = {"file": path.name}
        for k, v in attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            row[k] = "" if v is None else str(v)
        rows.append(row)
    return rows


def _run_info(run_dir: Path) -> dict[str, Any]:
    """run.json, or nothing when it is missing or not what gprpipe wrote."""
    from gprpipe.pipeline.store import load_run_info

    try:
        info = load_run_info(run_dir, missing_ok=True)
    except GprpipeError:
        return {}
    return info.data if info is not None else {}


def _command(argv: object) -> str:
    """A recorded command line as a shell would take it back."""
    return shlex.join(str(a) for a in argv) if isinstance(argv, list) else ""


def _reruns(info: dict[str, Any]) -> list[dict[str, Any]]:
    """run.json's reruns (``gprpipe rerun``), each with its command as one line."""
    out = []
    for r in info.get("reruns", []):
        if isinstance(r, dict):
            tasks = r.get("tasks")
            n = len(tasks) if isinstance(tasks, list) else 0
            # (a field missing or edited, as an older gprpipe may have left it: said as
            # "?", not an "internal error" of the report and of every export, a review)
            out.append(
                {
                    "command": _command(r.get("command")) or "?",
                    "at": str(r.get("at", "?")),
                    "gprpipe_version": str(r.get("gprpipe_version", "?")),
                    "n_tasks": n,
                }
            )
    return out


def _run_version(info: dict[str, Any]) -> str:
    """The gprpipe that created the run (run.json), else this one."""
    v = info.get("versions", {}).get("gprpipe") if isinstance(info.get("versions"), dict) else None
    return str(v) if v else __version__


def _marker_timings(point_dir: Path, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Timings of the finished tasks among ``task_ids`` (this point's) from the state
    markers the tasks write themselves (so the plot task sees every upstream task's time
    before run.json is updated at the end of the run): seconds, "cached", or nothing for
    a failed task (its sentence is in the summary's failures); a running task (the plot
    task writing the report) has none yet (it showed the previous run's time from
    run.json: a review)."""
    out: dict[str, dict[str, Any]] = {}
    for tid in task_ids:
        state, msg = read_state(point_dir, slug_of(tid))
        if state in ("done", "failed"):
            seconds = msg.removesuffix(" s") if state == "done" else ""
            out[tid] = {"state": state, "seconds": seconds}
        elif state == "running":
            out[tid] = {"state": "running", "seconds": ""}
    return out


def _point_entry(info: dict[str, Any], point_dir: Path) -> dict[str, Any]:
    for p in info.get("grid", []):
        if Path(p.get("dir", "")).name == point_dir.name:
            return p
    return {"name": point_dir.name, "values": {}, "seed": None}


def point_context(cfg, point_dir: Path) -> dict[str, Any]:
    """Everything ``report.html`` shows (and nothing else)."""
    run_dir = point_dir.parent
    info = _run_info(run_dir)
    scan_path = point_dir / "scan.csv"
    header: list[str] = []
    rows: list[list[tuple[str, str]]] = []
    summary: dict[str, Any] | None = None
    entry = _point_entry(info, point_dir)
    name = entry.get("name", point_dir.name)
    made = producers(name, point_dir, cfg)  # planned once: the tables and the summary
    scan_current, withheld = True, ""
    if scan_path.exists():
        header, raw = read_csv_table(scan_path)
        # the config's toys per limit are the table's only if the config made it
        scan_current = own = output_of(scan_path, cfg, made)
        withheld = observed_withheld(cfg, header)  # an earlier unblinded run's results
        if withheld:
            header, raw = [], []
        else:
            rows = [[(_fmt(r.get(c, "")), r.get(c, "")) for c in header] for r in raw]
            n_toys, bands = (cfg.limit.n_toys, cfg.limit.bands) if own else (None, None)
            summary = _scan_summary(header, raw, n_toys, bands)
    timings = {tid: t for tid, t in info.get("timings", {}).items() if tid.split("/")[0] == name}
    order = [str(t.get("id")) for t in info.get("plan", [])]
    planned = set(order)
    ids = [i for i in order if i.split("/")[0] == name] or [  # no plan: run.json lost
        task_id_of(name, s) for s in finished_slugs(point_dir)
    ]
    timings |= _marker_timings(point_dir, ids)
    if planned:  # not the tasks of an earlier config of this folder (its injection, say)
        timings = {tid: t for tid, t in timings.items() if tid in planned}
    config_path = point_dir / "config.toml"
    stale = stale_outputs(name, point_dir, cfg)
    inject = point_dir / "inject.csv"
    injections = []  # the closure as summary says it (the report had only its figures)
    if inject.is_file() and inject not in stale and output_of(inject, cfg, made):
        injections = [
            (s.dataset, injection_lines(s)[1:]) for s in summarize_injection(read_csv(inject))
        ]
    return {
        "title": cfg.base.name,
        "point": name,
        "values": entry.get("values", {}),
        "blinded": bool(cfg.base.blind),
        "labels": _labels(cfg),
        "summary": summary,
        "injections": injections,
        "scan_current": scan_current,
        "scan_withheld": withheld,
        "figures": _figures(point_dir),
        "header": header,
        "rows": rows,
        **dict(zip(("tables", "tables_not_current"), _tables(point_dir, cfg, made, stale))),
        "exports": _exports(point_dir),
        "config_text": config_path.read_text(encoding="utf-8") if config_path.exists() else "",
        "versions": info.get("versions", {}),
        "blinding": info.get("blinding", {}),
        "command": _command(info.get("command")),
        "reruns": _reruns(info),
        "created": info.get("created", ""),
        "seed": cfg.base.seed,
        "timings": timings,
        "h5": _h5_provenance(point_dir, stale),
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gprpipe_version": _run_version(info),
        "has_index": True,
    }


def _points(run_dir: Path) -> list[tuple[str, dict[str, Any], Path]]:
    info = _run_info(run_dir)
    out = []
    for p in info.get("grid", []):
        d = run_dir / Path(p.get("dir", "")).name
        if (d / "config.toml").exists():
            out.append((p.get("name", d.name), p.get("values", {}), d))
    return out


def grid_figure(run_dir: Path, points, out: Path, labels: dict[str, str]) -> bool:
    """The eps^2 limits of every point on one figure (:func:`grid_limits_figure`), saved as
    ``out``. False (and no such file) if the run has one point, whose report shows the same
    limits, or no point has limits (as its run wrote them, of its config) yet."""
    from gprpipe.plotting.grid import grid_limits_figure
    from gprpipe.plotting.style import save
    from gprpipe.results.schema import read_scan

    if len(points) < 2:
        out.unlink(missing_ok=True)  # an earlier config's grid
        return False
    curves: dict[str, list[tuple[str, dict[str, Any], bool]]] = {}
    for name, _, d in points:
        path = d / "limit.h5"
        if not _current(path):  # not yet, edited since its run, or of other inputs
            continue
        with open_h5(path) as f:
            blind = bool(f.attrs.get("blinded", False))
        for ds, a in read_scan(path).items():
            curves.setdefault(ds, []).append((name, a, blind))
    if not curves:
        out.unlink(missing_ok=True)  # of limits since edited (or an earlier config's)
        return False
    save(grid_limits_figure(curves, labels), out.parent, out.stem, ["png"])
    return True


def grid_comparison(
    run_dir: Path, points, vouched: Sequence[Any], labels: dict[str, str]
) -> list[dict[str, Any]]:
    """Every unblinded point's eps^2 limits over the first one's (the grid's ``gprpipe
    compare``): per dataset a figure with ratio panels and a table of ratio statistics;
    only the ``vouched`` points (their scan.csv as their runs wrote it) are compared.
    Comparison figures of an earlier config are removed."""
    earlier = set(run_dir.glob(GRID_FIGURES[1]))
    out = _grid_comparison(run_dir, [p for p in points if p in vouched], labels)
    for path in earlier - {run_dir / c["figure"] for c in out}:
        path.unlink(missing_ok=True)  # an earlier config's (perhaps unblinded) comparison
    return out


def _grid_comparison(run_dir: Path, points, labels: dict[str, str]) -> list[dict[str, Any]]:
    from gprpipe.plotting.compare import curves_figure
    from gprpipe.plotting.style import save
    from gprpipe.results.compare import compare_curves

    tables = {}
    for name, _, d in points:
        if (d / "scan.csv").exists():
            header, rows = read_csv_table(d / "scan.csv")
            if "eps2_up" in header:  # blinded points have no observed limit to compare
                tables[name] = rows
    if len(tables) < 2:
        return []
    out = []
    for comp in compare_curves(tables):
        if not comp.ratios:
            continue
        fig = curves_figure(comp.curves, labels.get(comp.dataset, comp.dataset))
        figure = GRID_FIGURES[1].replace("*", comp.dataset)
        save(fig, run_dir, figure.removesuffix(".png"), ["png"])
        out.append(
            {
                "dataset": labels.get(comp.dataset, comp.dataset),
                "figure": figure,
                "reference": comp.curves[0].label,
                "rows": [
                    {
                        "point": r.label,
                        "masses": r.masses_text(),
                        "observed": r.stats("observed"),
                        "expected": r.stats("expected"),
                    }
                    for r in comp.ratios
                ],
            }
        )
    return out


def _labels(cfg) -> dict[str, str]:
    """Dataset key -> the label every display shows (the key when it has none)."""
    return {n: cfg.datasets[n].label or n for n in cfg.datasets} | {COMBINED: "Combined"}


def _scan_summary(
    header: list[str],
    raw: list[dict[str, str]],
    n_toys: int | None = None,
    bands: str | None = None,
) -> dict[str, Any]:
    """What report.html and index.html show of a point's scan.csv (one summariser,
    :func:`summarize_scan`, totalled over its datasets and the combination), and each
    dataset's lines as ``gprpipe summary`` prints them (limits, Monte Carlo errors and
    their caveats, deficits, fit quality); ``n_toys``, ``bands``: the config's
    ``limit.n_toys`` and ``limit.bands``."""
    datasets = summarize_scan(raw, n_toys, bands)
    return {
        "lines": [(s.dataset, dataset_lines(s)[1:]) for s in datasets],
        "n_rows": len(raw),
        "datasets": datasets,
        # a blinded scan: its rows say so, or the table has no observed column at all
        "blinded": any(s.blinded for s in datasets) or not has_observed(header),
        "toys": any(s.Z_global_toys is not None for s in datasets),
        "best": most_significant(datasets),
        "n_flagged": sum(s.n_flagged for s in datasets),
        "n_left_out": sum(s.n_left_out for s in datasets),
        "n_left_out_unresolved": sum(s.n_left_out_unresolved for s in datasets),
        "n_failed": sum(s.n_failed for s in datasets),
        "n_unresolved": sum(s.n_unresolved for s in datasets),
        "n_flagged_unresolved": sum(s.n_flagged_unresolved for s in datasets),
        "not_ok": [(s.dataset, m, st) for s in datasets for m, st in s.not_ok],
        "not_converged": [(s.dataset, m) for s in datasets for m in s.not_converged],
    }


def _current(path: Path) -> bool:
    """Whether an output of a point folder (scan.csv, limit.h5) is as its task wrote it and
    of the point's config, back to the data files."""
    from gprpipe.config import point_config_from_file

    try:
        cfg = point_config_from_file(path.parent / "config.toml")
    except GprpipeError:
        return False
    return _intact(path) and output_of(path, cfg)


def _lock_since(run_dir: Path) -> float:
    """When the run holding the folder's lock took it (epoch seconds; 0 when unknown)."""
    try:
        return dt.datetime.fromisoformat(str(holder(run_dir).get("since"))).timestamp()
    except ValueError:
        return 0.0


def index_context(cfg, run_dir: Path) -> dict[str, Any]:
    """Everything ``index.html`` shows: one row per grid point and the grid figure."""
    info = _run_info(run_dir)
    points = _points(run_dir)
    rows: list[dict[str, Any]] = []
    # another point's table, edited since its run, or made with other settings or inputs
    # than its config (a later run of other points after the data changed): never
    # summarised nor compared
    intact = {p[2] for p in points if _intact(p[2] / "scan.csv")}
    vouched_scans = [p for p in points if p[2] in intact and _current(p[2] / "scan.csv")]
    # the points the run writing this page (a plot task's, under its run's lock) has yet
    # to redo (a task of theirs not done: the run took back their done markers as it
    # started): no point to "run again" (a race audit)
    ids = [str(t.get("id", "")) for t in info.get("plan", [])] if run_holding(run_dir) else []
    since = _lock_since(run_dir) if ids else 0.0
    dirs = {name: d for name, _, d in points}
    seen: dict[str, set[str]] = {}  # point -> the states of its planned tasks
    for i in ids:
        if (pt := i.split("/")[0]) in dirs:
            state, marker = read_state_marker(dirs[pt], slug_of(i))
            if state == "failed" and float(marker.get("time") or 0) < since:
                state = "pending"  # failed in an earlier run: this one redoes it
            seen.setdefault(pt, set()).add(state)
    # (one with a task failed in this run, not to be redone: "run the point again")
    in_run = {pt for pt, states in seen.items() if states - {"done"} and "failed" not in states}
    for point in points:
        name, values, d = point
        scan = d / "scan.csv"
        sm = _scan_summary(*read_csv_table(scan)) if point in vouched_scans else None
        rows.append(
            {
                "name": name,
                "values": values,
                "dir": d.name,
                "report": f"{d.name}/{Layout(d).report.name}"
                if Layout(d).report.exists()
                else None,
                "blinded": sm["blinded"] if sm else None,
                "best": sm["best"] if sm else None,
                # counted as report.html counts them: a failed quality check apart from a
                # dataset left out, no numbers apart from no observed limit (a review)
                "flagged": sm["n_flagged"] - sm["n_left_out"] if sm else None,
                "left_out": sm["n_left_out"] if sm else 0,
                "failed": sm["n_failed"] - sm["n_unresolved"] if sm else None,
                "unresolved": sm["n_unresolved"] if sm else 0,
                "not_converged": len(sm["not_converged"]) if sm else None,
                "toys": bool(sm and sm["toys"]),
                "damaged": scan.exists() and d not in intact,
                "not_current": d in intact and point not in vouched_scans,
                "in_run": name in in_run,
            }
        )
    labels = _labels(cfg)
    has_fig = grid_figure(run_dir, points, run_dir / GRID_FIGURES[0], labels)
    return {
        # a grid's points may name themselves after their values (``name = "w{{
        # fit.blind_nsigma }}"``): the index, which any point's plot task writes, was
        # titled after whichever wrote it last (a review); the run's folder names them all
        "title": cfg.base.name if len(points) <= 1 else run_dir.name,
        "rows": rows,
        "labels": labels,
        # a combination has no whole-scan toys: the column is there when a dataset has them
        "toys": any(r["toys"] for r in rows),
        "figure": GRID_FIGURES[0] if has_fig else None,
        "comparisons": grid_comparison(run_dir, points, vouched_scans, labels),
        "exports": _exports(run_dir, point=False),
        "versions": info.get("versions", {}),
        "command": _command(info.get("command")),
        "reruns": _reruns(info),
        "created": info.get("created", ""),
        "blinding": info.get("blinding", {}),
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gprpipe_version": _run_version(info),
    }


def refresh_reports(point_dir: Path, exported: Sequence[Path]) -> None:
    """Write the point's report again (and the run's index) after an export, so that they
    list it; nothing when the plot step has not written a report yet, or when the report
    is of other results than the point holds now (a later run without the plot step: the
    report keeps its own figures and tables, and the summary says it is not current; it
    took the new tables beside the old figures, even a BLINDED badge beside observed ones).
    A refresh that fails says that the ``exported`` files are written and recorded (the
    export stands; it is the report that is not current)."""
    try:
        _refresh_reports(Path(point_dir))
    except (GprpipeError, OSError) as exc:
        why = str(exc) if isinstance(exc, GprpipeError) else os_error_sentence(exc)
        if not why:
            raise
        files = ", ".join(map(str, exported))
        verb = "is" if len(exported) == 1 else "are"
        raise GprpipeError(
            f"{files} {verb} written and recorded, but the report was not refreshed: {why}"
        ) from exc


#: the banner a report and index of other results get (a later run without the plot step)
NOT_CURRENT = (
    '<div class="not-current" id="not-current" role="alert" style="background: #b00000; '
    'color: white; padding: 8px 12px; margin: 8px 0; font-weight: bold;">NOT CURRENT: this '
    "page, its figures and the HEPData files beside them were drawn from other results than "
    "the run folder holds now (a later run without the plot step). Run the config again, "
    "with the plot step, to redraw them; <code>gprpipe summary</code> gives the current "
    "numbers.</div>"
)


def mark_not_current(run_dir: Path) -> list[Path]:
    """Put :data:`NOT_CURRENT` at the top of each point's report when the point's figures
    are not of the results it holds now (they stay on disk: the summary said "not
    current", the files themselves did not, and were uploaded or read as the new results,
    a review), and at the top of the run's index while any point's are not; take it away
    once they are again (a later run brought the results back: the banner outlived its
    cause). A report that does not hold what its commit record recorded (edited by hand)
    is left as it is: marking it recorded the edit's digest, and the plot step never
    redrew it. Returns the files rewritten; their commit records take the new digests
    (the tool's rewrite is no damage). A point whose config cannot be read is left out,
    and said in a GprpipeError once the others are marked."""
    from gprpipe.pipeline.commit import as_recorded

    drawn: dict[Path, bool] = {}
    problems: list[str] = []
    for _, _, d in _points(Path(run_dir)):
        try:
            state = _drawn(d)
        except GprpipeError as exc:
            problems.append(str(exc))
            continue
        if state is not None:
            drawn[d] = state[1]
    # (page, the folders whose commit records may name it, whether its figures are current)
    pages: list[tuple[Path, tuple[Path, ...], bool]] = [
        (Layout(d).report, (d, d.parent), current) for d, current in drawn.items()
    ]
    if drawn:
        pages.append((Path(run_dir) / INDEX, (Path(run_dir),), all(drawn.values())))
    rewritten: list[Path] = []
    banner = "<body>\n" + NOT_CURRENT
    for page, folders, current in pages:
        text = page.read_text(encoding="utf-8") if page.is_file() and not page.is_symlink() else ""
        recorded = as_recorded(page)
        if "<body>" not in text or (recorded is not None and not recorded[0]):
            continue  # no page, or one edited by hand: left as it is
        if not current and banner not in text:
            atomic_write_text(page, text.replace("<body>", banner, 1))
        elif current and banner in text:
            atomic_write_text(page, text.replace(banner, "<body>", 1))
        else:
            continue
        rewritten.append(page)
        for folder in set(folders):  # (at once: a later page may fail)
            rerecord(folder, [page])
    if problems:
        raise GprpipeError(problems[0])
    return rewritten


def _drawn(point_dir: Path) -> tuple[Config, bool] | None:
    """The config of a point whose plot step wrote a report, and whether the report is of
    the results the point holds now; None without a report."""
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.summary import plots_current

    if not Layout(point_dir).report.is_file():
        return None
    cfg = point_config_from_file(point_dir / "config.toml")
    return cfg, plots_current(point_dir.name, point_dir, cfg)


def _rerecord_pages(point_dir: Path, pages: Sequence[Path]) -> None:
    """Pages the tool rewrote are no damage: the commit records of the point (the report)
    and of the run (index.html, when the point is the run) take their digests."""
    for folder in {point_dir, point_dir.parent}:
        rerecord(folder, pages)


def _refresh_reports(point_dir: Path) -> None:
    drawn = _drawn(point_dir)
    if drawn is None or not drawn[1]:
        return
    scan = Layout(point_dir).scan_csv
    if scan.exists():  # the report shows it: never one edited or damaged since
        vouched(scan)
    written: list[Path] = []
    try:
        write_reports(drawn[0], point_dir, written)
    finally:  # a report written before the index failed is the tool's, not damage
        _rerecord_pages(point_dir, written)


def write_reports(cfg, point_dir: Path, written: list[Path] | None = None) -> list[Path]:
    """Write ``<point>/report.html`` and ``<run>/index.html``; returns both paths, each
    also appended to ``written`` once it is written."""
    written = [] if written is None else written
    env = _env()
    point_dir = Path(point_dir)
    report = Layout(point_dir).report
    atomic_write_text(
        report, env.get_template("report.html.j2").render(**point_context(cfg, point_dir))
    )
    written.append(report)
    index = point_dir.parent / INDEX
    with index_lock(point_dir.parent):  # read every point's results, write: one at a time
        atomic_write_text(
            index, env.get_template("index.html.j2").render(**index_context(cfg, point_dir.parent))
        )
    written.append(index)
    return written
