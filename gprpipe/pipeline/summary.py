"""The end-of-run summary of a run directory: ``run_summary(run_dir)`` reads its scan and
injection tables (summarised by :mod:`gprpipe.results.summary`, as the reports do), task
states, plots, HEPData tables, report and exports; ``summary_lines`` formats it as text. The
CLI prints it after every run and for ``gprpipe summary RUN_DIR``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError, cli_command
from gprpipe.io.atomic import absent
from gprpipe.pipeline.commit import read_commit, stale_exports, vouched, with_damage
from gprpipe.pipeline.lock import by_run, in_use_by, is_locked, run_holding
from gprpipe.pipeline.task import Task
from gprpipe.results.schema import has_observed, plot_manifest_files, read_csv
from gprpipe.results.summary import (
    DatasetSummary,
    InjectionSummary,
    dataset_lines,
    injection_lines,
    pull_closure_text,
    summarize_injection,
    summarize_scan,
    toyscan_tail_text,
)

if TYPE_CHECKING:
    from gprpipe.pipeline.store import RunInfo


@dataclass
class PointSummary:
    """One grid point: its datasets, its failed tasks and where its outputs are."""

    point: str
    point_dir: Path
    datasets: list[DatasetSummary] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason)
    pending: int = 0
    queued: int = 0  # of the pending: their jobs are in SLURM's queue
    unanswered: int = 0  # of the pending: SLURM did not answer for their jobs (squeue)
    running: int = 0
    files: dict[str, str] = field(default_factory=dict)  # label -> path (with a count)
    unvouched: str = ""  # why scan.csv is not summarised: damaged or never committed
    computing: str = ""  # scan.csv's task is pending or running in the run going on
    withheld: str = ""  # why scan.csv's numbers are not shown: observed, the config blinded
    injections: list[InjectionSummary] = field(default_factory=list)  # inject.csv
    toy_rows_failed: str = ""  # toyscan.csv: how many (toy, mass) rows failed, the first
    toy_pulls: str = ""  # toyscan_summary.csv: the pull means against 0, in their errors
    toy_tail: str = ""  # toyscan.h5: the whole-scan Z_local > 3 fraction, its largest Z
    not_current: list[str] = field(default_factory=list)  # summarised tables of other
    # settings or inputs, or of an older gprpipe (their numbers are shown, said so first)
    missing_data: list[str] = field(default_factory=list)  # "PATH (datasets.<key>.path)"
    # of a data file gone since the run: nothing is checked against it


#: why a blinded config's summary and report show no numbers of its point's scan.csv
OBSERVED_WITHHELD = (
    "scan.csv holds the observed (unblinded) results of an earlier run of this folder, "
    "and this config is blinded: none of them is shown (its limit step replaces them with "
    "expected limits only)."
)


def observed_withheld(config: Config | None, columns: Iterable[str]) -> str:
    """:data:`OBSERVED_WITHHELD` when a scan.csv of these ``columns`` holds observed results
    and the point's ``config`` is blinded (its summary, report and TUI show none of them),
    else ''."""
    blind = config is not None and config.base.blind
    return OBSERVED_WITHHELD if blind and has_observed(columns) else ""


@dataclass
class RunSummary:
    run_dir: Path
    points: list[PointSummary]
    in_use: str = ""  # who holds the run directory's lock now ('' when nobody)

    @property
    def by_run(self) -> bool:
        """Whether that holder is a run (gprpipe run or rerun)."""
        return bool(by_run(self.in_use))


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV table (empty when the file does not exist)."""
    return read_csv(path) if path.is_file() else []


def _files(
    pdir: Path,
    stale: set[Path],
    other: AbstractSet[Path] = frozenset(),
    drawn_current: bool = True,
    sources_not_current: AbstractSet[str] = frozenset(),
    drawing: tuple[str, str] | None = None,
    going_on: bool = False,
) -> dict[str, str]:
    """Where the point's products are; ``stale`` tables (of an earlier config, which this
    one does not make) are left out, ``other`` ones (committed under another key) named;
    the plot step's figures, tables, HEPData and report are offered only when
    ``drawn_current`` (of the results the point holds now); ``drawing``: (label, why)
    when its plot task, running or queued, is about to draw them anew; ``going_on``: a run
    holds the folder (its tables of other settings are those it recomputes)."""
    out: dict[str, str] = {}
    run_dir = pdir.parent

    def add(label: str, path: Path, pattern: str | None = None) -> None:
        if pattern is None:
            if path.is_file():
                out[label] = str(path)
        elif path.is_dir():
            n = len(list(path.glob(pattern)))
            if n:
                out[label] = f"{path}/ ({n} {pattern.rsplit('.', 1)[-1]} file{'s' * (n != 1)})"

    # the figures of the last plot task, not files an earlier config left there: each
    # figure once, with the formats it was drawn in (a pdf-only run has plots too)
    drawn = [p for p in plot_manifest_files(pdir) or [] if p.is_file()]
    figures = {p.with_suffix("") for p in drawn if p.suffix in (".png", ".pdf", ".svg")}
    if figures:
        n = len(figures)
        kinds = [k for k in ("png", "pdf", "svg") if any(p.suffix == f".{k}" for p in drawn)]
        out["plots"] = f"{pdir / 'plots'}/ ({n} figure{'s' * (n != 1)}: {', '.join(kinds)})"
    from gprpipe.pipeline.plan import Layout

    undrawn = set() if drawn_current else set(Layout(pdir).products())
    tables = sorted(p.name for p in pdir.glob("*.csv") if p.is_file() and p not in stale | undrawn)
    if tables:
        out["tables"] = f"{pdir}/ ({', '.join(tables)})"
    left = sorted(p.name for p in stale if p.is_file())
    if left:  # on disk, so say why nothing shows them
        out["not shown"] = f"{', '.join(left)} (of an earlier config; this one does not make them)"
    if other:
        then = (
            "the run going on recomputes those of its steps"
            if going_on
            else "run their steps again to recompute them"
        )
        out["tables not current"] = (
            f"{', '.join(sorted(p.name for p in other))} (made with other settings or inputs "
            f"than the point's config, or by an older gprpipe; {then})"
        )
    add("HEPData", pdir / "hepdata", "*.yaml")
    old = stale_exports(pdir, sources_not_current)
    exported = [
        p.name
        for p in sorted((pdir / "exports").glob("*.json"))
        if p.relative_to(pdir).as_posix() not in old
    ]
    if exported:  # export-pyhf, export-spey
        out["exports"] = f"{pdir / 'exports'}/ ({', '.join(exported)})"
    reach = [p for p in (pdir / "reach").glob("*.csv") if f"reach/{p.name}" not in old]
    if reach:  # project-reach (of the limits the point holds now)
        out["reach projection"] = (
            f"{pdir / 'reach'}/ ({len(reach)} csv file{'s' * (len(reach) != 1)})"
        )
    earlier = sorted(rel for rel in old if (pdir / rel).is_file())
    if earlier:  # on disk, so say why nothing offers them
        out["not current"] = (
            f"{', '.join(earlier)} (made from other results than the current ones this "
            "folder holds, edited since, or with no record of what they were made from; "
            "export or project them again)"
        )
    for cand in (
        pdir / "report.html",
        run_dir / "report.html",
        pdir / "report" / "index.html",
        run_dir / "report" / "index.html",
    ):
        if cand.is_file():
            out["report"] = str(cand)
            break
    if not drawn_current:  # on disk, but of other results: say so rather than offer them
        names = [k for k in ("plots", "HEPData", "report") if out.pop(k, None)]
        names += sorted(p.name for p in undrawn if p.suffix == ".csv" and p.is_file())
        if names and drawing:  # (it told a first run's user to run the config again)
            what, why = drawing
            out[what] = f"{', '.join(names)} ({why})"
        elif names:
            out["not current"] = (
                f"{', '.join(names)} (drawn from other results, or left by a plot task "
                "that did not finish; run the config again, with the plot step, to redraw them)"
                + (f"; {out['not current']}" if "not current" in out else "")
            )
    return out


#: (run info, tasks, point configs) -> (state, message) per task id, as the run's executor
#: sees them
Poll = Callable[["RunInfo", Sequence[Task], Mapping[str, Config]], Mapping[str, tuple[str, str]]]


def run_summary(
    run_dir: Path, poll: Poll | None = None, point: str | None = None, *, again: int = 2
) -> RunSummary:
    """The summary of every point of a run directory (of ``point`` only, if given). Task
    states from the markers (with damaged outputs failed); ``poll``
    (:func:`gprpipe.pipeline.service.summary` passes the executor's) is asked when a task
    is neither done nor failed by its markers, so that a SLURM job lost without a marker
    is failed here as in ``status``. A run that started or ended while the summary was
    read (its lock taken or let go, its run.json written) is read ``again`` (at most that
    many times): read across a run's end, its tasks were not run yet and its lock gone
    ("To finish the run: rerun --failed" of a finished run), across its plot task the
    figures not current and nobody drawing them ("run the config again"; CI, a race
    audit)."""
    from gprpipe.executors.slurm.reconcile import QUEUED, UNANSWERED
    from gprpipe.pipeline.cache import output_of
    from gprpipe.pipeline.plan import producers, stale_outputs
    from gprpipe.pipeline.store import run_plan, task_states

    before = _generation(Path(run_dir))
    locked = bool(run_holding(Path(run_dir)))  # a run's lock (before the states: see above)
    info, tasks, configs = run_plan(run_dir)
    marked = task_states(tasks)
    with_damage(tasks, marked)  # as status says: outputs damaged since they finished
    states: Mapping[str, tuple[str, str]] = marked
    # a failed marker is no end either while its job may be queued again (scontrol
    # requeue, a preempted or failed node: summary said "failed, rerun --failed" while
    # status said pending; a review)
    if poll is not None and any(s != "done" for s, _ in marked.values()):
        states = poll(info, tasks, configs)
    points: dict[str, PointSummary] = {}
    for t in tasks:
        ps = points.get(t.point)
        if ps is None:
            ps = points[t.point] = PointSummary(t.point, t.point_dir)
        state, msg = states[t.id]
        if state == "failed":
            ps.failures.append((t.id, (msg or "failed").strip().splitlines()[-1]))
        elif state == "running":
            ps.running += 1
        elif state != "done":
            ps.pending += 1
            ps.queued += msg.startswith(QUEUED)
            ps.unanswered += msg == UNANSWERED
    if point is not None:
        points = {k: v for k, v in points.items() if k == point}
    writes_scan = {t.point for t in tasks if t.point_dir / "scan.csv" in t.outputs}
    for ps in points.values():
        scan = ps.point_dir / "scan.csv"
        inject = ps.point_dir / "inject.csv"
        toyscan = ps.point_dir / "toyscan.csv"
        config = configs.get(ps.point)
        stale = stale_outputs(ps.point, ps.point_dir, config) if config else set()
        intact: list[Path] = []  # the tables read below, once vouched for
        scan_rows: list[dict[str, str]] = []
        try:
            if scan.is_file():
                n_toys = config.limit.n_toys if config else None
                bands = config.limit.bands if config else None
                scan_rows = read_table(vouched(scan))
                ps.withheld = observed_withheld(config, scan_rows[0] if scan_rows else ())
                if ps.withheld:
                    scan_rows = []
                else:
                    ps.datasets = summarize_scan(scan_rows, n_toys, bands)
                    intact.append(scan)
        except GprpipeError as exc:
            ps.unvouched = str(exc)
        unfinished = ps.failures or ps.pending or ps.running
        writer = next((t for t in tasks if t.point == ps.point and scan in t.outputs), None)
        if ps.point in writes_scan and not scan.is_file() and unfinished:
            there = absent(scan)
            what = "not there" if there == "is missing" else there.removeprefix("was ")
            ps.unvouched = f"{scan}: {what} ({_why_not_written(writer, tasks, states)})."
        w_state, w_msg = states[writer.id] if writer is not None else ("", "")
        computing = (  # by a run holding the folder, or by its SLURM job (queued or not)
            (w_state == "running" and _live_writer(writer, Path(run_dir), locked))
            or (w_state == "pending" and w_msg.startswith(QUEUED))
            or (w_state == "pending" and locked)
        )
        if ps.unvouched and computing:
            # (it said "no task committed it; run the point again" of a table the run
            # going on was writing, and exited 1: a race audit)
            ps.unvouched = ""
            ps.computing = f"{scan} (by the run going on; run summary again when it has ended)"
        if inject.is_file() and inject not in stale:
            try:
                ps.injections = summarize_injection(read_table(vouched(inject)))
                intact.append(inject)
            except GprpipeError:  # damaged or not committed: not offered (files says so)
                ps.injections = []
        if toyscan.is_file() and toyscan not in stale:
            from gprpipe.results.summary import FailedRows, failed_rows

            try:
                rows = FailedRows(toyscan, *failed_rows(vouched(toyscan)))
                intact.append(toyscan)
            except GprpipeError:  # damaged or not committed: not offered (files says so)
                rows = FailedRows(toyscan, 0, 0, "")
            if rows.bad:
                ps.toy_rows_failed = rows.sentence(where=False)
            toy_summary = ps.point_dir / "toyscan_summary.csv"
            pulls = _toy_pulls(toy_summary, stale)
            if pulls is not None:  # read and vouched for: its currency is judged below
                ps.toy_pulls = pulls  # ('' of too few toys for an error)
                intact.append(toy_summary)
                ps.toy_tail = _toy_tail(ps.point_dir / "toyscan.h5")
        # intact tables this config makes, committed under another key: a later run with
        # other settings did not redo them, or an older gprpipe made them (its config had
        # fewer keys); summarised as they are, and said to be so
        made = producers(ps.point, ps.point_dir, config) if config else {}
        digests: dict[Path, str] = {}  # each input hashed once for the checks below
        other = {
            p
            for p in intact
            if config is not None
            and p not in stale
            and not output_of(p, config, made, digests, older=False)  # an older gprpipe's too
        }
        ps.not_current = sorted(p.name for p in other)
        if scan in other:  # limit.n_toys and limit.bands of the config need not be the table's
            ps.datasets = summarize_scan(scan_rows)
        ps.missing_data = _missing_data(config)
        current = config is None or plots_current(ps.point, ps.point_dir, config)
        sources = {  # what exports and reach projections are made from
            name
            for name in ("fit.h5", "limit.h5")
            if config is not None
            and (ps.point_dir / name).is_file()
            and not output_of(ps.point_dir / name, config, made, digests)
        }
        ps.files = _files(
            ps.point_dir,
            stale,
            other,
            current,
            sources,
            _drawing(ps, states, locked),
            locked and bool(ps.pending or ps.running),
        )
    in_use = in_use_by(run_dir)
    if again > 0 and _generation(Path(run_dir)) != before:  # (so ``locked`` held throughout)
        return run_summary(run_dir, poll, point, again=again - 1)
    return RunSummary(Path(run_dir).resolve(), list(points.values()), in_use)


def _live_writer(writer: Task | None, run_dir: Path, locked: bool) -> bool:
    """Whether the task that its marker says is running is someone's: the run holding the
    folder's, a live process of this host (a dead one's marker is failed already), or a
    SLURM job of this folder's jobs.json (its state asked of SLURM). A marker nothing can
    confirm (another host's, in a copied folder) made summary say "being computed" of a
    table nobody computes, and exit 0 (a review)."""
    if writer is None:
        return False
    if locked:
        return True
    from gprpipe.executors.slurm.jobs import load_jobs
    from gprpipe.pipeline.state import read_marker

    info = read_marker(writer.point_dir, writer.slug, "running")
    if info.get("slurm_job"):
        try:
            return bool(load_jobs(run_dir).get("submissions"))
        except (GprpipeError, OSError):  # (a damaged jobs.json: status says so)
            return False
    return bool(info.get("host") == socket.gethostname())


def _generation(run_dir: Path) -> tuple[bool, int, int]:
    """What changes when a run of the folder starts or ends: its lock held, the lock
    file's and run.json's modification times (the lock's record is written when it is
    taken and emptied when it is let go)."""
    from gprpipe.pipeline.lock import LOCK_NAME
    from gprpipe.pipeline.plan import RUN_JSON

    def mtime(name: str) -> int:
        try:
            return (run_dir / name).stat().st_mtime_ns
        except OSError:
            return -1

    return is_locked(run_dir), mtime(LOCK_NAME), mtime(RUN_JSON)


def _why_not_written(
    writer: Task | None, tasks: Sequence[Task], states: Mapping[str, tuple[str, str]]
) -> str:
    """Why the output of task ``writer`` is missing: it failed, a task it needs (directly
    or not) failed, or it has not run."""
    if writer is None or states[writer.id][0] == "failed":
        return "its task failed, see below"
    by_id = {t.id: t for t in tasks}
    todo, seen = list(writer.deps), set()
    while todo:
        d = todo.pop()
        if d in seen or d not in by_id:
            continue
        seen.add(d)
        if states[d][0] == "failed":
            return "a task it needs failed, see below"
        todo += by_id[d].deps
    return "its task has not run"


def _drawing(
    ps: PointSummary, states: Mapping[str, tuple[str, str]], locked: bool
) -> tuple[str, str] | None:
    """(label, why) when the point's plot task is about to draw its figures anew: it is
    running, queued in SLURM, or waits in a local run going on (between two of its tasks;
    ``locked``: a run holds the folder); None otherwise."""
    from gprpipe.executors.slurm.reconcile import QUEUED

    state, msg = states.get(f"{ps.point}/plot", ("", ""))
    if state == "running":
        return "being drawn", "the plot task is running"
    if state == "pending" and msg.startswith(QUEUED):  # (a review)
        return "to be drawn", "the plot task is queued in SLURM"
    # (a run going on removes its plan's earlier 'done' markers one by one as it starts:
    # read between, the plot's said "run the config again" of the run's own task, CI)
    if (state == "pending" and (ps.running or locked)) or (state == "done" and locked):
        return "to be drawn", "the plot task of the run going on now"
    return None


def plots_current(point: str, pdir: Path, config: Config) -> bool:
    """Whether the point's figures, HEPData tables and report are those of the results it
    holds now, and those results this config's back to the data files: the plot task's
    commit record holds the key it has now (its inputs' digests: a later run without the
    plot step, e.g. with other masses, leaves the earlier figures on disk; one that
    brought the results back makes them current again), and every output it drew (its
    manifest's ``drawn``; one of other settings it left out does not count) is of this
    config, its upstream tasks too (a replaced data file leaves load.h5 and all after it
    of other data)."""
    from gprpipe.pipeline.cache import key_current, outputs_of, versions
    from gprpipe.pipeline.plan import plan_point, producers
    from gprpipe.results.schema import plot_manifest_drawn

    drawing = _with_plot(config)
    plot = next(t for t in plan_point(point, pdir, drawing) if t.step == "plot")
    if read_commit(plot) is None:  # nothing drawn, or drawn by a task that did not finish
        return not _plot_products_left(pdir)
    if not key_current(plot, drawing, versions(any_version=True)):
        return False
    drawn = plot_manifest_drawn(pdir)
    inputs = [p for p in plot.inputs if p.suffix == ".h5" and (drawn is None or p.name in drawn)]
    return outputs_of(inputs, config, producers(point, pdir, config), older=False)


def _toy_pulls(path: Path, stale: set[Path]) -> str | None:
    """The toy scan's pull means against 0 (:func:`pull_closure_text`, '' of too few
    toys) from its summary table; None when that table is missing, not this config's to
    make (``stale``), damaged, uncommitted or of an older gprpipe (no ``pull_mean_err``)."""
    if not path.is_file() or path in stale:
        return None
    try:
        rows = read_table(vouched(path))
    except GprpipeError:
        return None

    if not rows or "pull_mean_err" not in rows[0]:  # a table of an older gprpipe
        return None
    m, p, e, n = (
        [float(r.get(k) or "nan") for r in rows]
        for k in ("mass_GeV", "pull_mean", "pull_mean_err", "n_kept")
    )
    return pull_closure_text(m, p, e, n)


def _toy_tail(path: Path) -> str:
    """The toy scan's whole-scan numbers (:func:`toyscan_tail_text`) from ``toyscan.h5``,
    written by the merge task that wrote its summary table; '' when damaged or
    uncommitted."""
    from gprpipe.results.schema import read_toyscan_overview

    try:
        return toyscan_tail_text(read_toyscan_overview(vouched(path)))
    except GprpipeError:
        return ""


def _missing_data(config: Config | None) -> list[str]:
    """The point's data files that are gone (``PATH (datasets.<key>.path)``)."""
    if config is None:
        return []
    return [f"{path} ({key})" for path, key in config.data_files() if not Path(path).exists()]


def _plot_products_left(pdir: Path) -> bool:
    """Whether the point folder holds anything a plot task writes (figures, HEPData, the
    report): with no commit record of the plot task, a task that did not finish left it."""
    from gprpipe.pipeline.plan import Layout

    lay = Layout(pdir)
    if any(p.exists() for p in (lay.report, *lay.products())):
        return True
    return any(d.is_dir() and any(d.iterdir()) for d in (lay.plots, lay.hepdata))


def point_currency(pdir: Path) -> tuple[bool, bool]:
    """Whether a point folder's scan.csv, and its figures, are of the point's config back
    to the data files (what ``summary`` calls "not current" otherwise): for a reader of a
    single point (the TUI's Results). (True, True) when the point has no readable config
    (nothing to judge them by)."""
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.cache import output_of

    pdir = Path(pdir)
    try:
        config = point_config_from_file(pdir / "config.toml")
    except GprpipeError:
        return True, True
    scan = output_of(pdir / "scan.csv", config, older=False)  # as summary says it
    return scan, plots_current(pdir.name, pdir, config)


def _with_plot(config: Config) -> Config:
    if "plot" in config.steps.run:
        return config
    steps = config.steps.model_copy(update={"run": [*config.steps.run, "plot"]})
    return config.model_copy(update={"steps": steps})


def not_current_line(table: str) -> str:
    """The line before the numbers of a summarised table that is not current."""
    return (
        f"  NOT CURRENT: the numbers below are of {table}, made with other settings or inputs "
        "than the point's config, or by an older gprpipe"
    )


def failure_lines(ps: PointSummary) -> list[str]:
    """A point's failed tasks, as ``summary`` prints them (unindented)."""
    if not ps.failures:
        return []
    return [f"failed tasks: {len(ps.failures)}", *(f"  {tid}: {why}" for tid, why in ps.failures)]


def not_current_files_line(ps: PointSummary) -> str:
    """The ``not current:`` line of a point's products (figures, HEPData, report, exports
    of other results), as ``summary`` prints it (unindented); empty when all are current."""
    where = ps.files.get("not current")
    return f"not current: {where}" if where else ""


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary as plain text lines."""
    lines = [f"Summary of {summary.run_dir}"]
    for ps in summary.points:
        lines.append(f"{ps.point}")
        if ps.unvouched:
            lines.append(f"  not summarised: {ps.unvouched}")
        elif ps.computing:
            lines.append(f"  being computed: {ps.computing}")
        elif ps.withheld:
            lines.append(f"  not shown: {ps.withheld}")
        elif not ps.datasets:
            lines.append(
                "  no scan results"
                + (" (the scan did not finish)" if ps.failures or ps.pending or ps.running else "")
            )
        for gone in ps.missing_data:
            lines.append(
                f"  not checked against the data: {gone} is not there; what follows is as "
                "the run recorded it"
            )
        if "scan.csv" in ps.not_current and ps.datasets:
            lines.append(not_current_line("scan.csv"))
        for s in ps.datasets:
            first, *rest = dataset_lines(s)
            lines += [f"  {first}", *(f"    {x}" for x in rest)]
        if "inject.csv" in ps.not_current and ps.injections:
            lines.append(not_current_line("inject.csv"))
        for inj in ps.injections:
            first, *rest = injection_lines(inj)
            lines += [f"  {first}", *(f"    {x}" for x in rest)]
        if ps.toy_rows_failed:
            lines.append(f"  toy scan: {ps.toy_rows_failed}")
        if ps.toy_pulls or ps.toy_tail:
            if "toyscan_summary.csv" in ps.not_current:
                lines.append(not_current_line("toyscan_summary.csv"))
            if ps.toy_tail:
                lines.append(f"  toy scan: {ps.toy_tail}")
            if ps.toy_pulls:
                lines.append(f"  toy scan: {ps.toy_pulls}")
        lines += [f"  {x}" for x in failure_lines(ps)]
        if ps.running:
            lines.append(f"  tasks running: {ps.running}")
        if ps.queued:
            lines.append(f"  tasks queued in SLURM: {ps.queued} (gprpipe status follows them)")
        if ps.unanswered:  # (they were "not run", and a rerun was suggested and refused)
            lines.append(
                f"  tasks SLURM does not answer for (squeue): {ps.unanswered} (their jobs "
                "may be pending, running or ended; run summary again when it answers)"
            )
        if ps.pending > ps.queued + ps.unanswered:
            not_run = ps.pending - ps.queued - ps.unanswered
            lines.append(f"  tasks not run (pending or skipped): {not_run}")
        lines += [f"  {label}: {where}" for label, where in ps.files.items()]
    points = summary.points
    if summary.in_use:  # (it said "to finish the run: rerun --failed" of a run going on)
        todo = summary.by_run and any(ps.pending for ps in points)
        lines.append(
            f"In use by {summary.in_use}"
            + (
                f": the tasks not run yet are its to run ({cli_command('status', summary.run_dir)}"
                " follows them)."
                if todo
                else "."
            )
        )
    # (a rerun would be refused)
    busy = summary.by_run or any(ps.running or ps.queued or ps.unanswered for ps in points)
    if any(ps.failures or ps.pending for ps in points) and not busy:
        lines.append(
            "To finish the run (once any cause above is fixed): "
            f"{cli_command('rerun', summary.run_dir, '--failed')} (it keeps the config the run "
            "recorded; after fixing the config file, run it again instead)"
        )
    return lines
