"""The end-of-run summary: what a physicist looks for first, from a run's tables.

``summarize_scan(rows)`` takes the rows of one point's ``scan.csv`` (dicts of column ->
text, as ``csv.DictReader`` gives them) and returns one :class:`DatasetSummary` per dataset
(and ``combined``): the most significant mass with its local and global Z (and the
toy-based global Z when the table has ``Z_global_toys``/``p0_global_toys``), the weakest and
strongest observed eps^2 limits, how many masses failed (no numbers) or are flagged, or have
a non-converged GP fit, the flag reasons, and the smallest goodness-of-fit p-value when
the table has ``gof_p``. ``run_summary(run_dir)`` reads a run directory (scan tables, task
states, plots, HEPData tables, report, exports); ``summary_lines`` formats it as text.
The CLI prints it after every run and for ``gprpipe summary RUN_DIR``; the HTML report can
use the same dataclasses.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.commit import stale_exports, vouched
from gprpipe.results.schema import plot_manifest_files, read_csv
from gprpipe.stats.quality import has_result


@dataclass
class Extreme:
    """A value at a mass (GeV)."""

    mass: float
    value: float


@dataclass
class DatasetSummary:
    """One dataset (or ``combined``) of one point."""

    dataset: str
    n_masses: int
    most_significant: Extreme | None = None  # value: Z_local
    Z_global: float | None = None
    Z_global_toys: float | None = None
    p0_global_toys: float | None = None
    weakest: Extreme | None = None  # value: eps2_up (largest)
    strongest: Extreme | None = None  # value: eps2_up (smallest)
    n_flagged: int = 0  # rows with numbers and a quality flag
    flags: dict[str, int] = field(default_factory=dict)  # status -> count
    n_failed: int = 0  # rows without numbers (the fit or the limit failed)
    failures: dict[str, int] = field(default_factory=dict)  # status -> count
    n_not_converged: int = 0
    worst_gof: Extreme | None = None  # value: gof_p (smallest)
    blinded: bool = False  # no observed quantity: the limits are the expected medians


@dataclass
class InjectionSummary:
    """The closure of one dataset's injection study (inject.csv): ranges over its rows
    (mass x strength) of the pull mean and width and of the coverages."""

    dataset: str
    n_masses: int
    n_strengths: int
    n_toys: tuple[int, int]  # fewest and most toys kept in a row
    pull_mean: tuple[float, float]
    pull_width: tuple[float, float]
    cov_1sigma: tuple[float, float]
    cov_2sigma: tuple[float, float]


def summarize_injection(rows: Iterable[Mapping[str, str]]) -> list[InjectionSummary]:
    """One :class:`InjectionSummary` per dataset of an ``inject.csv`` (rows without toys
    or numbers left out of the ranges)."""
    by: dict[str, list[Mapping[str, str]]] = {}
    for r in rows:
        by.setdefault(r["dataset"], []).append(r)
    out = []
    for name, rs in by.items():

        def span(col: str, rs: list[Mapping[str, str]] = rs) -> tuple[float, float]:
            v = [x for r in rs if (x := _num(r, col)) is not None]
            return (min(v), max(v)) if v else (math.nan, math.nan)

        n = [int(x) for r in rs if (x := _num(r, "n_toys")) is not None]
        out.append(
            InjectionSummary(
                name,
                len({r["mass_GeV"] for r in rs}),
                len({r["z_inj"] for r in rs}),
                (min(n), max(n)) if n else (0, 0),
                span("pull_mean"),
                span("pull_width"),
                span("cov_1sigma"),
                span("cov_2sigma"),
            )
        )
    return out


def injection_lines(s: InjectionSummary) -> list[str]:
    """One dataset's injection closure as text (ranges over masses and strengths)."""

    def rng(x: tuple[float, float], f: str = ".2f") -> str:
        return f"{x[0]:{f}}" if x[0] == x[1] else f"{x[0]:{f}} to {x[1]:{f}}"

    toys = f"{s.n_toys[0]}" if s.n_toys[0] == s.n_toys[1] else f"{s.n_toys[0]}-{s.n_toys[1]}"
    return [
        f"injection {s.dataset} ({s.n_masses} mass{'es' * (s.n_masses != 1)} x "
        f"{s.n_strengths} strength{'s' * (s.n_strengths != 1)}, {toys} toys each)",
        f"pull mean {rng(s.pull_mean)}, width {rng(s.pull_width)}; coverage of "
        f"+-1 sigma_A {rng(s.cov_1sigma, '.3f')} (0.683), +-2 {rng(s.cov_2sigma, '.3f')} (0.954)",
    ]


@dataclass
class PointSummary:
    """One grid point: its datasets, its failed tasks and where its outputs are."""

    point: str
    point_dir: Path
    datasets: list[DatasetSummary] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason)
    pending: int = 0
    running: int = 0
    files: dict[str, str] = field(default_factory=dict)  # label -> path (with a count)
    unvouched: str = ""  # why scan.csv is not summarised: damaged or never committed
    injections: list[InjectionSummary] = field(default_factory=list)  # inject.csv


@dataclass
class RunSummary:
    run_dir: Path
    points: list[PointSummary]


def _num(row: Mapping[str, str], key: str) -> float | None:
    try:
        x = float(row[key])
    except (KeyError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _false(text: str | None) -> bool:
    return str(text).strip().lower() in ("false", "0", "no")


def summarize_scan(rows: Iterable[Mapping[str, str]]) -> list[DatasetSummary]:
    """Per dataset (in table order): the figures above, from ``scan.csv`` rows."""
    groups: dict[str, list[Mapping[str, str]]] = {}
    for r in rows:
        groups.setdefault(r["dataset"], []).append(r)
    out = []
    for name, rs in groups.items():
        s = DatasetSummary(name, len(rs))
        statuses = [r.get("status", "ok") for r in rs]
        flags = Counter(x for x in statuses if x != "ok" and has_result(x))
        failures = Counter(x for x in statuses if not has_result(x))
        s.n_flagged, s.flags = sum(flags.values()), dict(flags)
        s.n_failed, s.failures = sum(failures.values()), dict(failures)
        s.n_not_converged = sum(_false(r.get("gp_converged")) for r in rs)
        # flagged rows are left out of the largest local significance, as everywhere
        sig = [
            (z, r)
            for r in rs
            if r.get("status", "ok") == "ok" and (z := _num(r, "Z_local")) is not None
        ]
        if sig:
            z, r = max(sig, key=lambda t: t[0])
            s.most_significant = Extreme(float(r["mass_GeV"]), z)
            s.Z_global = _num(r, "Z_global")
            s.Z_global_toys = _num(r, "Z_global_toys")
            s.p0_global_toys = _num(r, "p0_global_toys")
        s.blinded = any(str(r.get("blinded", "")).lower() == "true" for r in rs)
        column = "eps2_exp_med" if s.blinded else "eps2_up"
        lim = [  # and out of the strongest and weakest limits
            (v, float(r["mass_GeV"]))
            for r in rs
            if r.get("status", "ok") == "ok" and (v := _num(r, column)) is not None and v > 0
        ]
        if lim:
            s.weakest = Extreme(*max(lim)[::-1])
            s.strongest = Extreme(*min(lim)[::-1])
        gof = [(v, float(r["mass_GeV"])) for r in rs if (v := _num(r, "gof_p")) is not None]
        if gof:
            s.worst_gof = Extreme(*min(gof)[::-1])
        out.append(s)
    return out


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV table (empty when the file does not exist)."""
    return read_csv(path) if path.is_file() else []


def _files(pdir: Path, stale: set[Path]) -> dict[str, str]:
    """Where the point's products are; ``stale`` tables (of an earlier config) are left out."""
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

    # the figures of the last plot task, not files an earlier config left there
    n = sum(p.suffix == ".png" and p.is_file() for p in plot_manifest_files(pdir) or [])
    if n:
        out["plots"] = f"{pdir / 'plots'}/ ({n} png file{'s' * (n != 1)})"
    tables = sorted(p.name for p in pdir.glob("*.csv") if p not in stale)
    if tables:
        out["tables"] = f"{pdir}/ ({', '.join(tables)})"
    left = sorted(p.name for p in stale if p.is_file())
    if left:  # on disk, so say why nothing shows them
        out["not shown"] = f"{', '.join(left)} (of an earlier config; this one does not make them)"
    add("HEPData", pdir / "hepdata", "*.yaml")
    old = stale_exports(pdir)
    ws = [p for p in pdir.glob("pyhf_*.json") if p.name not in old]
    if ws:
        out["pyhf workspaces"] = f"{pdir}/ ({len(ws)} json file{'s' * (len(ws) != 1)})"
    exported = [
        p.name
        for p in sorted((pdir / "exports").glob("*.json"))
        if p.relative_to(pdir).as_posix() not in old
    ]
    if exported:  # export-pyhf --patchset, export-spey
        out["exports"] = f"{pdir / 'exports'}/ ({', '.join(exported)})"
    reach = [p for p in (pdir / "reach").glob("*.csv") if f"reach/{p.name}" not in old]
    if reach:  # project-reach (of the limits the point holds now)
        out["reach projection"] = (
            f"{pdir / 'reach'}/ ({len(reach)} csv file{'s' * (len(reach) != 1)})"
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
    return out


def run_summary(run_dir: Path) -> RunSummary:
    """The summary of every point of a run directory."""
    from gprpipe.pipeline.plan import stale_outputs
    from gprpipe.pipeline.store import load_run_info, task_states, tasks_of_run

    info = load_run_info(run_dir)
    assert info is not None  # without missing_ok a missing run.json raises
    tasks, configs = tasks_of_run(info)
    states = task_states(tasks)
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
    writes_scan = {t.point for t in tasks if t.point_dir / "scan.csv" in t.outputs}
    for ps in points.values():
        scan = ps.point_dir / "scan.csv"
        try:
            ps.datasets = summarize_scan(read_table(vouched(scan))) if scan.is_file() else []
        except GprpipeError as exc:
            ps.unvouched = str(exc)
        if ps.point in writes_scan and not scan.is_file() and ps.failures:
            ps.unvouched = f"{scan}: not there (its task failed, see below)."
        config = configs.get(ps.point)
        stale = stale_outputs(ps.point, ps.point_dir, config) if config else set()
        inject = ps.point_dir / "inject.csv"
        if inject.is_file() and inject not in stale:
            try:
                ps.injections = summarize_injection(read_table(vouched(inject)))
            except GprpipeError:  # damaged or not committed: not offered (files says so)
                ps.injections = []
        ps.files = _files(ps.point_dir, stale)
        if config is not None and not _plots_current(ps.point, ps.point_dir, config):
            drawn = [k for k in ("plots", "HEPData", "report") if ps.files.pop(k, None)]
            if drawn:  # on disk, but of other results: say so rather than offer them
                ps.files["not current"] = (
                    f"{', '.join(drawn)} (drawn from earlier results; run the plot step "
                    "to redraw them)"
                )
    return RunSummary(Path(run_dir).resolve(), list(points.values()))


def _plots_current(point: str, pdir: Path, config: Config) -> bool:
    """Whether the point's figures, HEPData tables and report are those of the results it
    holds now: no other task committed after the plot task did (a later run without the
    plot step, e.g. with other masses, leaves the earlier figures on disk), and, when the
    config runs the plot step, it committed with the key the config gives it now."""
    from gprpipe.pipeline.cache import made_by
    from gprpipe.pipeline.commit import read_commit
    from gprpipe.pipeline.plan import plan_point

    tasks = plan_point(point, pdir, _with_plot(config))
    if "plot" in config.steps.run:
        return made_by(next(t for t in tasks if t.step == "plot"), config, any_version=True)
    drawn, latest = None, 0.0
    for t in tasks:
        if (rec := read_commit(t)) is not None:
            when = float(rec.get("time", 0))
            if t.step == "plot":
                drawn = when
            else:
                latest = max(latest, when)
    return drawn is None or latest <= drawn


def _with_plot(config: Config) -> Config:
    if "plot" in config.steps.run:
        return config
    steps = config.steps.model_copy(update={"run": [*config.steps.run, "plot"]})
    return config.model_copy(update={"steps": steps})


def _mev(m: float) -> str:
    return f"{m * 1e3:g} MeV"


def dataset_lines(s: DatasetSummary) -> list[str]:
    """One dataset as a few lines of text."""
    lines = [f"{s.dataset} ({s.n_masses} masses{', BLINDED' if s.blinded else ''})"]
    if s.most_significant:
        z = (
            f"most significant: {_mev(s.most_significant.mass)}, Z_local "
            f"{s.most_significant.value:.2f}"
        )
        if s.Z_global is not None:
            z += f", Z_global {s.Z_global:.2f}"
        if s.Z_global_toys is not None:
            z += f", Z_global (toys) {s.Z_global_toys:.2f}"
        lines.append(z)
    if s.weakest and s.strongest:
        lines.append(
            f"{'expected (median) ' if s.blinded else ''}eps^2 limits: strongest "
            f"{s.strongest.value:.3g} at "
            f"{_mev(s.strongest.mass)}, weakest {s.weakest.value:.3g} at "
            f"{_mev(s.weakest.mass)}"
        )
    if s.failures:
        lines.append(
            f"failed (no limit): {s.n_failed} ("
            + ", ".join(f"{k}: {v}" for k, v in s.failures.items())
            + ")"
        )
    flagged = f"flagged: {s.n_flagged}"
    if s.flags:
        flagged += " (" + ", ".join(f"{k}: {v}" for k, v in s.flags.items()) + ")"
    lines.append(f"{flagged}; GP fits not converged: {s.n_not_converged}")
    if s.worst_gof:
        lines.append(f"smallest GOF p-value: {s.worst_gof.value:.3g} at {_mev(s.worst_gof.mass)}")
    return lines


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary as plain text lines."""
    lines = [f"Summary of {summary.run_dir}"]
    for ps in summary.points:
        lines.append(f"{ps.point}")
        if ps.unvouched:
            lines.append(f"  not summarised: {ps.unvouched}")
        elif not ps.datasets:
            lines.append(
                "  no scan results"
                + (" (the scan did not finish)" if ps.failures or ps.pending or ps.running else "")
            )
        for s in ps.datasets:
            first, *rest = dataset_lines(s)
            lines += [f"  {first}", *(f"    {x}" for x in rest)]
        for inj in ps.injections:
            first, *rest = injection_lines(inj)
            lines += [f"  {first}", *(f"    {x}" for x in rest)]
        if ps.failures:
            lines.append(f"  failed tasks: {len(ps.failures)}")
            lines += [f"    {tid}: {why}" for tid, why in ps.failures]
        if ps.running:
            lines.append(f"  tasks running: {ps.running}")
        if ps.pending:
            lines.append(f"  tasks not run (pending or skipped): {ps.pending}")
        lines += [f"  {label}: {where}" for label, where in ps.files.items()]
    points = summary.points
    if any(ps.failures or ps.pending for ps in points) and not any(ps.running for ps in points):
        lines.append(
            f"To finish the run (once any cause above is fixed): gprpipe rerun "
            f"{summary.run_dir} --failed (it keeps the config the run recorded; after "
            "fixing the config file, run it again instead)"
        )
    return lines
