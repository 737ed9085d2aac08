"""The ``gprpipe`` command line (typer). Parses arguments, shows progress, nothing else."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gprpipe import __version__
from gprpipe.errors import ConfigError, GprpipeError
from gprpipe.units import fmt_mass, parse_mass, parse_masses

app = typer.Typer(
    name="gprpipe",
    help="Declarative Gaussian-process bump hunts: configs -> grid -> load/fit/limit/inject/plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key: key.path=VALUE (VALUE parsed as TOML)."),
]
ConfigArg = Annotated[Path, typer.Argument(help="User config (TOML).")]


def _version(value: bool) -> None:
    if value:
        console.print(f"gprpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error (any position).")
    ] = False,
) -> None:
    """gprpipe: run GPR bump hunts from a short TOML config."""


def _points(
    config: Path, overrides: list[str] | None, *, check: bool = False, inputs: bool = False
):
    """Every grid point. ``check``: refuse (ConfigError) what ``run`` could not do (nothing
    to scan, masses not in GeV or out of range); ``inputs``: also refuse a data file that
    does not exist (``validate``; ``run`` leaves that to the load task)."""
    from gprpipe.config import load_points
    from gprpipe.config.checks import check_plan, missing_files
    from gprpipe.config.issues import Loc

    loaded, points = load_points(config, overrides or [])

    def where(key: str) -> Loc:
        if key == "datasets" and not points[0].config.datasets:
            return Loc(file=str(config), key="datasets")  # the user's file, not the defaults
        return loaded.where(key)

    errors = check_plan(points, where) if check or inputs else []
    if inputs and not errors:  # the histograms are read by config.check_inputs next
        errors = missing_files(points, where)
    if errors:
        raise ConfigError(errors)
    return loaded, points


def _run_dir(points) -> Path:
    """The run directory: ``base.output``, which must be the same for every grid point."""
    outputs = {p.config.base.output for p in points}
    if len(outputs) > 1:
        raise GprpipeError(
            "base.output differs between grid points; the points of one run share one "
            "run directory (vary the point folder names through other keys instead)."
        )
    return Path(outputs.pop())


def _refuse_set_unblind(overrides: list[str]) -> None:
    """Blinding is lifted only by ``run --unblind``, never by ``--set base.blind=false``."""
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "base.blind" and value.strip().lower() not in ("true", "1"):
            raise GprpipeError(
                f"--set {o}: blinding is lifted only by 'gprpipe run --unblind' "
                "(recorded in run.json)."
            )


def _select(points, sel: str | None):
    """``--points``: comma-separated indices, ranges (0-3), names or glob patterns."""
    if not sel:
        return list(points)
    chosen = []
    for item in [s.strip() for s in sel.split(",") if s.strip()]:
        if item.isdigit():
            hits = [p for p in points if p.index == int(item)]
        elif "-" in item and all(x.isdigit() for x in item.split("-", 1)):
            a, b = (int(x) for x in item.split("-", 1))
            hits = [p for p in points if a <= p.index <= b]
        else:
            hits = [p for p in points if fnmatch.fnmatch(p.name, item)]
        if not hits:
            names = ", ".join(f"{p.index}:{p.name}" for p in points)
            raise GprpipeError(f"--points {item!r} matches no grid point (have {names}).")
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen, key=lambda p: p.index)


# ---------------------------------------------------------------- config inspection


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a config: exit 0, or 1 with every error (file, key, line)."""
    from gprpipe.config import check_inputs
    from gprpipe.pipeline.store import plan_points

    loaded, points = _points(config, set_, inputs=True)
    tasks = plan_points(_run_dir(points), points, _where(loaded))
    check_inputs(loaded, points)
    steps = ", ".join(points[0].config.steps.run)
    console.print(
        f"{config}: valid ({len(points)} point{'s' * (len(points) != 1)}, "
        f"{len(tasks)} tasks; steps: {steps})"
    )


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Config name: writes NAME.toml here.")],
    template: Annotated[str, typer.Option(help="Shipped template to inherit.")] = "hps2015",
    data: Annotated[
        str | None,
        typer.Option(help="ROOT file of every dataset (default: the demo spectrum where it fits)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite NAME.toml.")] = False,
) -> None:
    """Write a ready, commented user config NAME.toml in the current folder."""
    from gprpipe.config.init import write_init

    path = write_init(name, template, Path.cwd(), data=data, force=force)
    console.print(
        f"wrote {path.name} (inherits the shipped template {template!r}). "
        f"Next: gprpipe validate {path.name} && gprpipe run {path.name}",
        markup=False,
        highlight=False,
    )


@app.command()
def render(
    config: ConfigArg,
    point: Annotated[int, typer.Option(help="Grid point index.")] = 0,
    format: Annotated[str, typer.Option("--format", help="toml or json.")] = "toml",
    set_: SetOpt = None,
) -> None:
    """Print the fully rendered config of one grid point."""
    from gprpipe.io.toml_write import dumps

    _, points = _points(config, set_)
    if not 0 <= point < len(points):
        raise GprpipeError(f"--point {point}: the grid has points 0-{len(points) - 1}.")
    data = {k: v for k, v in points[point].data.items() if k != "grid"}
    if format == "json":
        console.print_json(json.dumps(data))
    elif format == "toml":
        sys.stdout.write(dumps(data))
    else:
        raise GprpipeError(f"--format {format!r}: use toml or json.")


@app.command()
def grid(config: ConfigArg, set_: SetOpt = None) -> None:
    """One line per grid point: index, name, varied values, output folder."""
    from gprpipe.pipeline.store import point_dir

    _, points = _points(config, set_)
    run_dir = _run_dir(points)
    for p in points:
        values = " ".join(f"{k}={json.dumps(v)}" for k, v in p.values.items()) or "(no grid)"
        out = point_dir(run_dir, p)
        print(f"{p.index}\t{p.name}\t{values}\t{out}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the config."""
    from gprpipe.config.schema import Config

    print(json.dumps(Config.model_json_schema(), indent=2))


# ---------------------------------------------------------------- running


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def _notice(line: str) -> None:
    err.print(line, markup=False, highlight=False)


def _locked(run_dir: Path, wait_lock: float):
    """The run directory's lock (one writer at a time), for a ``with`` block."""
    from gprpipe.pipeline.lock import run_lock

    return run_lock(
        run_dir, command=" ".join(["gprpipe", *sys.argv[1:2]]), wait=wait_lock, notice=_notice
    )


def _clean_containers(engine, run_dir: Path) -> None:
    """Remove containers an earlier, killed run of ``run_dir`` left (under its lock)."""
    left = engine.cleanup(run_dir)
    if left:
        _notice(
            f"notice: removed {len(left)} container(s) left by an earlier run of "
            f"{run_dir}: {', '.join(left)}"
        )


def _executor(name: str, run_dir: Path, engine, config, jobs: int | None = None):
    """The executor ``name`` (:mod:`gprpipe.executors.registry`) for a run."""
    from gprpipe.executors.registry import get_executor

    return get_executor(name, run_dir, engine, config, jobs=jobs)


def _execute_local(ex, tasks, configs, run_dir, force, info, resume: str = "") -> bool:
    """Run ``tasks`` with a blocking executor, with progress bars; print the outcome."""
    from gprpipe.executors.base import Hooks
    from gprpipe.pipeline.state import fmt_duration, progress_text, read_progress

    _clean_containers(ex.engine, run_dir)
    t0 = time.perf_counter()
    finished: dict[str, str] = {}
    with _progress() as progress:
        bar = progress.add_task("tasks", total=len(tasks), detail="")
        inner: dict[str, object] = {}  # running task id -> its progress bar

        def update(task, outcome) -> None:
            finished[task.id] = outcome.state
            if task.id in inner:
                progress.remove_task(inner.pop(task.id))
            progress.advance(bar)
            progress.update(bar, detail=f"{task.id}: {outcome.state}")
            if not progress.disable:
                return
            if outcome.state in ("done", "failed"):
                err.print(f"{task.id}: {outcome.state} ({fmt_duration(outcome.seconds)})")

        def tick(running) -> None:
            if progress.disable:
                return
            for t in running:
                rec = read_progress(t.point_dir, t.slug)
                if not rec:
                    continue
                if t.id not in inner:
                    inner[t.id] = progress.add_task(f"  {t.id}", total=rec["total"], detail="")
                progress.update(
                    inner[t.id],
                    completed=rec["done"],
                    total=rec["total"],
                    detail=progress_text(rec),
                )

        try:
            report = ex.submit(
                tasks,
                configs=configs,
                force=force,
                hooks=Hooks(on_update=update, on_notice=_notice, on_tick=tick),
            )
        except KeyboardInterrupt:
            states = ex.poll(tasks)  # the markers: what is really on disk
            kept = sum(states[t.id].state == "done" for t in tasks)
            stopped = len(tasks) - kept
            err.print(
                f"interrupted: {kept} finished task{'s' * (kept != 1)} kept in {run_dir} "
                f"(a new run skips them); {stopped} not finished (stopped or not started). "
                f"Resume with: {resume or f'gprpipe rerun {run_dir} --failed'}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(130) from None
    wall = time.perf_counter() - t0
    timings = info.data.setdefault("timings", {})
    for tid, o in report.outcomes.items():
        timings[tid] = {"state": o.state, "seconds": round(o.seconds, 3)}
    info.data["wall_seconds"] = round(wall, 4)
    info.save()
    done, cached = report.count("done"), report.count("cached")
    failed, skipped = report.count("failed"), report.count("skipped")
    if done == 0 and not failed and not skipped:
        console.print(f"Nothing to do: all {cached} tasks are up to date ({run_dir}).")
    elif failed or skipped:
        console.print(
            f"{len(tasks)} tasks in {fmt_duration(wall)}: {done} ran, {cached} cached, "
            f"{failed} failed, {skipped} skipped. The run is incomplete: fix the cause below, "
            f"then run the same command again (finished tasks are kept) or gprpipe rerun "
            f"{run_dir} --failed."
        )
    else:
        console.print(
            f"{len(tasks)} tasks in {fmt_duration(wall)}: {done} ran, {cached} cached, "
            f"{failed} failed, {skipped} skipped. Results in {run_dir}"
        )
    by_id = {t.id: t for t in tasks}
    for tid, o in report.outcomes.items():
        if o.state == "failed":
            err.print(f"[red]failed[/red] {tid} (log: {by_id[tid].log})")
            if o.message:
                err.print("  " + o.message.replace("\n", "\n  "), markup=False, highlight=False)
    return report.ok


def _engine(name: str, config, dry_run: bool):
    from gprpipe.engines import engine_for_config

    engine = engine_for_config(
        name,
        image=config.base.image,
        gpu=config.base.gpu,
        step_images=config.base.step_images,
        check_version=config.base.check_image_version,
    )
    if not dry_run:
        engine.check()
    return engine


@app.command()
def run(
    config: ConfigArg,
    engine: Annotated[str | None, typer.Option(help="local|docker|podman|apptainer")] = None,
    executor: Annotated[str | None, typer.Option(help="local|slurm")] = None,
    jobs: Annotated[int | None, typer.Option("-j", "--jobs", help="Local workers.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Ignore cached results.")] = False,
    steps: Annotated[str | None, typer.Option(help="Steps to run, e.g. load,fit.")] = None,
    points_sel: Annotated[
        str | None, typer.Option("--points", help="Grid points: 0,2-3,name,glob*.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="SLURM: block until done.")] = False,
    wait_lock: Annotated[
        float,
        typer.Option(
            "--wait-lock",
            help="Seconds to wait for another run of the "
            "same directory to finish (default: refuse at once).",
        ),
    ] = 0.0,
    unblind: Annotated[
        bool, typer.Option("--unblind", help="Lift base.blind (recorded in run.json).")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Run the whole job: every grid point through the configured steps."""
    from gprpipe.config import check_inputs
    from gprpipe.pipeline.store import new_run_info, plan_points, write_point_configs

    overrides = list(set_ or [])
    _refuse_set_unblind(overrides)
    if engine:
        overrides.append(f"base.engine={engine}")
    if executor:
        overrides.append(f"base.executor={executor}")
    if steps:
        names = [s.strip() for s in steps.split(",") if s.strip()]
        overrides.append("steps.run=" + json.dumps(names))
    blind_in_config = False
    if unblind:
        _, as_written = _points(config, overrides)
        blind_in_config = any(p.config.base.blind for p in as_written)
        overrides.append("base.blind=false")
    loaded, all_points = _points(config, overrides, check=True)
    points = _select(all_points, points_sel)
    cfg0 = points[0].config
    run_dir = _run_dir(all_points)
    tasks = plan_points(run_dir, points, _where(loaded))
    eng = _engine(cfg0.base.engine, cfg0, dry_run)
    ex = _executor(cfg0.base.executor, run_dir, eng, cfg0, jobs)
    configs = {p.name: p.config for p in points}
    if dry_run:
        print(ex.preview(tasks))
        return
    check_inputs(loaded, points)
    _make_run_dir(run_dir, loaded)
    with _locked(run_dir, wait_lock):
        ex.refuse_if_busy(tasks)
        write_point_configs(run_dir, points)
        info = new_run_info(
            run_dir,
            config.resolve(),
            overrides,
            points,
            tasks,
            engine=cfg0.base.engine,
            executor=cfg0.base.executor,
        )
        info.data["blinding"] = {
            "blind": any(p.config.base.blind for p in points),
            "unblind_option": unblind,
            "config_was_blind": blind_in_config,
        }
        info.save()
        if not ex.blocking:
            ok = _submit_queued(ex, tasks, run_dir, wait=wait, force=force)
            ok = ok and (not wait or _report_rows(tasks))
            if wait:
                _print_summary(run_dir)
        else:
            import shlex

            resume = shlex.join(
                ["gprpipe", "run", str(config), *[x for o in overrides for x in ("--set", o)]]
            )
            ok = _execute_local(ex, tasks, configs, run_dir, force, info, resume=resume)
            ok = _report_rows(tasks) and ok
            _print_summary(run_dir)
    if not ok:
        raise typer.Exit(1)


def _where(loaded):
    from gprpipe.config import _where as where_of

    return where_of(loaded)


def _make_run_dir(run_dir: Path, loaded) -> None:
    """Create the run directory, or say in one sentence why it cannot be."""
    where = _where(loaded)("base.output")
    if run_dir.exists() and not run_dir.is_dir():
        raise GprpipeError(f"{where}: {run_dir} is a file, not a folder for the run.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".gprpipe-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise GprpipeError(
            f"{where}: cannot write the run directory {run_dir} ({exc.strerror or exc})."
        ) from None


def _report_rows(tasks) -> bool:
    """Say how many masses of each table (``scan.csv``, ``inject.csv``) failed; True when
    none did."""
    from gprpipe.steps.merge import failed_rows

    ok = True
    seen = set()
    for t in tasks:
        for out in t.outputs:
            if out.suffix != ".csv" or out in seen or not out.is_file():
                continue
            seen.add(out)
            bad, total, first = failed_rows(out)
            if bad:
                ok = False
                err.print(
                    f"[red]{bad} of {total} masses failed[/red] in {out} (first: {first})",
                    highlight=False,
                )
    return ok


def _print_summary(run_dir: Path) -> None:
    from gprpipe.pipeline.summary import run_summary, summary_lines

    console.print("\n".join(summary_lines(run_summary(run_dir))), markup=False, highlight=False)


@app.command()
def summary(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Print a run's summary again: most significant mass, limits, flags, failures, files."""
    _print_summary(run_dir)


def _submit_queued(ex, tasks, run_dir, *, wait: bool, force: bool, resubmit: bool = False) -> bool:
    """Queue ``tasks`` with a queueing executor (SLURM); with ``wait``, follow them."""
    report = ex.submit(tasks, force=force, resubmit=resubmit)
    jobs = ", ".join(f"{k}={v}" for k, v in report.job_ids.items())
    console.print(f"Submitted {len(tasks)} tasks to {ex.name.upper()} as job arrays: {jobs}")
    if not wait:
        console.print(f"Watch with: gprpipe status {run_dir}")
        return True
    with _progress() as progress:
        bar = progress.add_task(ex.name, total=len(tasks), detail="")

        def update(states: dict[str, str]) -> None:
            n = sum(s in ("done", "failed") for s in states.values())
            progress.update(
                bar, completed=n, detail=" ".join(f"{k}={v}" for k, v in _count(states).items())
            )

        ok = ex.wait(tasks, progress=update)
    _report_states(tasks)
    return ok


def _count(states: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in states.values():
        out[s] = out.get(s, 0) + 1
    return out


def _report_states(tasks) -> None:
    from gprpipe.pipeline.store import task_states

    states = task_states(tasks)
    counts = _count({k: v[0] for k, v in states.items()})
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for t in tasks:
        state, msg = states[t.id]
        if state == "failed":
            err.print(f"[red]failed[/red] {t.id}: {msg} (log: {t.log})", highlight=False)


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Task states per point and step: done/running/failed/pending."""
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    info = load_run_info(run_dir)
    tasks, configs = tasks_of_run(info)
    ex = _run_executor(run_dir, info, configs)
    _clean_if_unlocked(run_dir, ex)
    polled = ex.poll(tasks)
    states = {t.id: (polled[t.id].state, polled[t.id].message) for t in tasks}
    slurm_jobs = ex.job_ids_by_task()
    table = Table(title=f"{run_dir}  ({info.data.get('executor', 'local')} executor)")
    for col in ("point", "step", "done", "running", "failed", "pending"):
        table.add_column(col, justify="left" if col in ("point", "step") else "right")
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for t in tasks:
        g = groups.setdefault((t.point, t.step), {})
        s = states[t.id][0]
        g[s] = g.get(s, 0) + 1
    for (point, step), c in groups.items():
        cells = (str(c.get(s, 0)) for s in ("done", "running", "failed", "pending"))
        table.add_row(point, step, *cells)
    console.print(table)
    for t in tasks:
        state, msg = states[t.id]
        if state in ("failed", "running"):
            job = f" [job {slurm_jobs[t.id]}]" if t.id in slurm_jobs else ""
            console.print(f"{state:8s} {t.id}{job}: {msg or ''}  (log: {t.log})", highlight=False)
    from gprpipe.pipeline.lock import describe, holder, is_locked

    if is_locked(run_dir):
        console.print(f"in use by {describe(holder(run_dir))}", highlight=False)
    total = _count({k: v[0] for k, v in states.items()})
    console.print(" ".join(f"{k}={v}" for k, v in sorted(total.items())))


def _run_executor(run_dir: Path, info, configs, jobs: int | None = None, *, check: bool = False):
    """The executor (and engine, checked with ``check``) that a recorded run used."""
    cfg0 = next(iter(configs.values())) if configs else None
    if cfg0 is None:
        from gprpipe.config.schema import Config

        cfg0 = Config()
    eng = _engine(info.data.get("engine", "local"), cfg0, not check)
    return _executor(info.data.get("executor", "local"), run_dir, eng, cfg0, jobs)


def _clean_if_unlocked(run_dir: Path, ex) -> None:
    """No run holds the directory: containers of it still there are leftovers (the run and
    its watchdog were killed); stop and remove them."""
    from gprpipe.pipeline.lock import is_locked, run_lock

    if not ex.owns_containers or is_locked(run_dir):
        return
    try:
        with run_lock(run_dir, command="gprpipe status"):
            _clean_containers(ex.engine, run_dir.absolute())
    except GprpipeError:
        return  # a run started meanwhile: its containers are its own


@app.command()
def rerun(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    failed: Annotated[bool, typer.Option("--failed", help="Redo failed tasks.")] = False,
    masses: Annotated[
        str | None,
        typer.Option(help="Redo the tasks owning these masses: 37MeV,48MeV or 0.037,0.048 (GeV)."),
    ] = None,
    jobs: Annotated[int | None, typer.Option("-j", "--jobs")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="SLURM: block until done.")] = False,
    wait_lock: Annotated[
        float,
        typer.Option(
            "--wait-lock",
            help="Seconds to wait for another run of the "
            "same directory to finish (default: refuse at once).",
        ),
    ] = 0.0,
) -> None:
    """Redo only what is named (failed tasks, or the tasks of some masses) and what follows."""
    from gprpipe.pipeline.store import load_run_info

    if not failed and not masses:
        raise GprpipeError("rerun needs --failed or --masses (e.g. --masses 37MeV,48MeV).")
    load_run_info(run_dir)  # a run directory?
    with _locked(run_dir, wait_lock):
        _rerun(run_dir.absolute(), failed, masses, jobs, wait)


def _rerun(run_dir: Path, failed: bool, masses: str | None, jobs: int | None, wait: bool) -> None:
    from gprpipe.pipeline.plan import downstream
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    info = load_run_info(run_dir)
    tasks, configs = tasks_of_run(info)
    ex = _run_executor(run_dir, info, configs, jobs)
    chosen: set[str] = set()
    if failed:
        states = ex.poll(tasks)
        chosen |= {t.id for t in tasks if states[t.id].state == "failed"}
    if masses:
        for m in parse_masses(masses, "--masses"):
            owners = [t for t in tasks if any(abs(x - m) < 5e-7 for x in t.masses)]
            if not owners:
                raise GprpipeError(f"--masses: no task of {run_dir} owns {fmt_mass(m)}.")
            chosen |= {t.id for t in owners}
    if not chosen:
        console.print("Nothing to rerun: no task matches.")
        return
    todo = downstream(tasks, chosen)
    console.print(f"Rerunning {len(todo)} tasks: " + ", ".join(t.id for t in todo))
    ex.engine.check()
    if not ex.blocking:
        ok = _submit_queued(ex, todo, run_dir, wait=wait, force=True, resubmit=True)
        if wait:
            _print_summary(run_dir)
    else:
        ok = _execute_local(ex, todo, configs, run_dir, [t.id for t in todo], info)
        _print_summary(run_dir)
    if not ok:
        raise typer.Exit(1)


@app.command()
def step(
    name: Annotated[str, typer.Argument(help="load|fit|limit|inject|plot")],
    point_dir: Annotated[Path, typer.Option("--point-dir", help="Point folder of a run.")],
    part: Annotated[str | None, typer.Option(help="Chunk, e.g. 2015-003, or merge.")] = None,
    task: Annotated[str | None, typer.Option(help="Task id (for state markers).")] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
) -> None:
    """Run one task (what engines and executors run)."""
    from gprpipe.steps.runner import run_task

    code = run_task(point_dir, name, part, task, force)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------- utilities


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Argument(help="Output ROOT file.")],
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default: the shipped spectrum's).")
    ] = None,
    scale: Annotated[float, typer.Option(help="Multiply the number of events.")] = 1.0,
    signal_mass: Annotated[
        str | None, typer.Option(help="Signal mass: 60MeV, 0.06GeV or 0.06 (GeV).")
    ] = None,
    signal_yield: Annotated[float, typer.Option(help="Signal events.")] = 0.0,
    hist: Annotated[str, typer.Option(help="Histogram name.")] = "input_hist",
) -> None:
    """Write a realistic synthetic HPS-2015-like spectrum (optionally with a signal)."""
    from gprpipe.demo import DEMO_HI, DEMO_LO, DEMO_SEED, demo_spectrum
    from gprpipe.io.root import write_hist

    m_sig = None if signal_mass is None else parse_mass(signal_mass, "--signal-mass")
    if m_sig is not None and not DEMO_LO < m_sig < DEMO_HI:
        raise GprpipeError(
            f"--signal-mass {signal_mass}: {fmt_mass(m_sig)} lies outside the "
            f"demo histogram ({DEMO_LO:g}-{DEMO_HI:g} GeV)."
        )
    counts, edges = demo_spectrum(
        seed=DEMO_SEED if seed is None else seed,
        scale=scale,
        signal_mass=m_sig,
        signal_yield=signal_yield,
    )
    write_hist(out, counts, edges, hist)
    console.print(
        f"wrote {out}: {hist}, {len(counts)} bins over {edges[0]:g}-{edges[-1]:g} GeV, "
        f"{counts.sum():.4g} events"
    )


@app.command("export-pyhf")
def export_pyhf(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or point folder).")],
    dataset: Annotated[str, typer.Option(help="Dataset key.")],
    mass: Annotated[
        str | None, typer.Option(help="Test mass: 60MeV, 0.06GeV or 0.06 (GeV); one workspace.")
    ] = None,
    patchset: Annotated[
        bool,
        typer.Option("--patchset", help="Every mass: a background-only workspace and a PatchSet."),
    ] = False,
    inspire: Annotated[
        str, typer.Option(help="INSPIRE id for the PatchSet's reference (ins0000000: none yet).")
    ] = "ins0000000",
    point: Annotated[str | None, typer.Option(help="Grid point name.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """Write the blind-window likelihood as pyhf HistFactory JSON: one mass (--mass), or
    every mass as a background-only workspace plus a PatchSet (--patchset)."""
    from gprpipe.steps.export import export_patchset, export_workspace

    if patchset:
        paths, n = export_patchset(run_dir, dataset, point=point, output=output, inspire=inspire)
        console.print(f"wrote {paths[0]} and {paths[1]} ({n} patches, one per mass)")
        return
    if mass is None:
        raise GprpipeError("export-pyhf: give --mass M (e.g. 60MeV) or --patchset.")
    path, ws = export_workspace(
        run_dir, dataset, parse_mass(mass, "--mass"), point=point, output=output
    )
    nbins = len(ws["channels"][0]["samples"][0]["data"])
    unit = ws["measurements"][0]["name"].removeprefix("A_in_units_of_")
    console.print(f"wrote {path}: {nbins} blind bins; POI A is the signal yield / {unit}")


@app.command("export-spey")
def export_spey(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or point folder).")],
    dataset: Annotated[str, typer.Option(help="Dataset key, or 'combined'.")],
    point: Annotated[str | None, typer.Option(help="Grid point name.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Folder.")] = None,
) -> None:
    """Per mass, the inputs of Spey's correlated-background model (data, background,
    covariance, signal per unit eps^2): <point>/exports/spey_<dataset>.json."""
    from gprpipe.steps.export import export_spey as run_spey

    path, n = run_spey(run_dir, dataset, point=point, output=output)
    console.print(f"wrote {path} ({n} masses)")


@app.command("project-reach")
def project_reach(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or point folder).")],
    scale: Annotated[str, typer.Option(help="Luminosity factors, e.g. 2015=1,2016=10,2021=100.")],
    point: Annotated[str | None, typer.Option(help="Grid point name.")] = None,
) -> None:
    """Expected eps^2 limits with each dataset's luminosity scaled (1/sqrt(factor)), and
    their inverse-variance combination: <point>/reach/reach.csv and reach.png/pdf."""
    from gprpipe.steps.reach import project_reach as run_reach

    written, s = run_reach(run_dir, scale, point=point)
    for p in written:
        console.print(f"wrote {p}")
    console.print(
        f"{s['n_masses']} masses; median gain of the combined expected limit "
        f"{s['gain_median']:.2f}x"
        + (
            f"; inverse-variance / joint-fit combination at factor 1: median "
            f"{s['ivw_over_fit_median']:.3f}"
            if s["ivw_over_fit_median"] == s["ivw_over_fit_median"]
            else ""
        )
    )


@app.command()
def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders (all their points) or point folders; the first is the reference."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Folder for figures and tables (default: RUN/compare for the "
            "points of one run, else ./compare).",
        ),
    ] = None,
    formats: Annotated[str, typer.Option(help="Figure formats, e.g. png,pdf.")] = "png",
) -> None:
    """Compare eps^2 limits of runs or grid points: overlay, ratio panels, ratio table."""
    from gprpipe.io.atomic import atomic_write_text
    from gprpipe.pipeline.compare import points_of, read_tables
    from gprpipe.plotting.compare import compare_limits_figure
    from gprpipe.plotting.style import save
    from gprpipe.results.compare import compare_curves

    points = points_of(runs)
    parents = {p.parent.resolve() for p in points.values()}
    folder = out or (parents.pop() / "compare" if len(parents) == 1 else Path("compare"))
    folder.mkdir(parents=True, exist_ok=True)
    labels = list(points)
    ref = labels[0]
    for comp in compare_curves(read_tables(points)):
        if not comp.ratios:
            console.print(f"{comp.dataset}: fewer than two curves with common masses; skipped.")
            continue
        fig = compare_limits_figure(
            [c.mass for c in comp.curves],
            [c.observed for c in comp.curves],
            [c.expected for c in comp.curves],
            [c.label for c in comp.curves],
            title=comp.dataset,
        )
        files = save(
            fig,
            folder,
            f"compare_eps2_{comp.dataset}",
            [f.strip() for f in formats.split(",") if f.strip()],
        )
        table = Table(title=f"{comp.dataset}: eps^2 limit / {ref}")
        table.add_column("point", no_wrap=True, min_width=max(len(r.label) for r in comp.ratios))
        for col in ("masses", "obs median", "obs range", "exp median", "exp range"):
            table.add_column(col, justify="right", no_wrap=True)
        lines = ["dataset,point,mass_GeV,ratio_observed,ratio_expected"]
        for r in comp.ratios:
            (om, olo, ohi), (em, elo, ehi) = r.stats("observed"), r.stats("expected")
            table.add_row(
                r.label,
                str(len(r.mass)),
                f"{om:.3f}",
                f"{olo:.3f}-{ohi:.3f}",
                f"{em:.3f}",
                f"{elo:.3f}-{ehi:.3f}",
            )
            lines += [
                f"{comp.dataset},{r.label},{m:.6g},{o:.6g},{e:.6g}"
                for m, o, e in zip(r.mass, r.observed, r.expected)
            ]
        csv_path = folder / f"compare_{comp.dataset}.csv"
        atomic_write_text(csv_path, "\n".join(lines) + "\n")
        console.print(table)
        console.print(
            f"wrote {', '.join(str(f) for f in files)}, {csv_path}", markup=False, highlight=False
        )


@app.command()
def tui(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="Config to open, a folder to browse, or a run directory (opens its results)."
        ),
    ] = None,
) -> None:
    """The textual app: build, validate, launch and watch runs; browse a run's results."""
    from gprpipe.tui.app import GprpipeApp

    GprpipeApp(config).run()


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """click's exception class and, where typer vendors its own click, typer's too."""
    found: list[type[BaseException]] = [getattr(click.exceptions, name)]
    try:
        from typer import _click as vendored  # type: ignore[attr-defined]

        found.append(getattr(vendored.exceptions, name))
    except (ImportError, AttributeError):
        pass
    return tuple(found)


_CLICK_EXIT = _click_classes("Exit")
_CLICK_ABORT = _click_classes("Abort")
_CLICK_ERROR = _click_classes("ClickException")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one sentence and exit code 1 (--debug: traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        code = app(args=args, prog_name="gprpipe", standalone_mode=False)
    except ConfigError as exc:
        if debug:
            raise
        for e in exc.errors:
            err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(1)
    except GprpipeError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)
    except _CLICK_EXIT as exc:
        sys.exit(exc.exit_code)
    except _CLICK_ABORT:
        err.print("aborted")
        sys.exit(1)
    except _CLICK_ERROR as exc:
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "gprpipe"
        err.print(
            f"error: {exc.format_message()} (see {cmd} --help)", markup=False, highlight=False
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            markup=False,
            highlight=False,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
