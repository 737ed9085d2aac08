"""The ``gprpipe`` command line (typer). Parses arguments, shows progress, nothing else."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from gprpipe import __version__
from gprpipe.errors import ConfigError, GprpipeError, cli_command, os_error_sentence, printable
from gprpipe.units import fmt_mass, parse_mass


def Flag(*names: str, **kwargs: Any) -> Any:
    """``typer.Option`` of an on/off switch: shown without a value (typer shows ``<bool>``,
    as if it took one: ``--dry-run true`` is refused)."""
    return typer.Option(*names, metavar="", **kwargs)


if TYPE_CHECKING:  # the run service is imported by the commands that use it (start-up time)
    from gprpipe.pipeline.service import Outcome, RunObserver, RunResult
    from gprpipe.pipeline.task import Task

    _Observer = RunObserver  # type-checked as one, without importing the service at start-up
else:
    _Observer = object

app = typer.Typer(
    name="gprpipe",
    help="Declarative Gaussian-process bump hunts: configs -> grid -> load/fit/limit/inject/plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# piped or captured output has no terminal width: wide enough that tables keep whole names;
# no markup: text from paths, names and logs ("[job 3232_0]") is printed as it is
# no markup, no emoji codes: a path like runs/a:smile: is printed as it is
console = Console(
    soft_wrap=True, markup=False, emoji=False, width=None if sys.stdout.isatty() else 200
)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)

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
        bool, Flag("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, Flag("--debug", help="Show the traceback of an error (any position).")
    ] = False,
) -> None:
    """gprpipe: run GPR bump hunts from a short TOML config."""


# ---------------------------------------------------------------- config inspection


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a config: exit 0, or 1 with the errors of its first failing stage (file, key, line)."""
    from gprpipe.pipeline import service

    found = service.validate(config, set_ or [])
    for line in found.notices:
        err.print(line)
    points, tasks = found.points, found.tasks
    steps = ", ".join(points[0].config.steps.run)
    console.print(
        f"{config}: valid ({len(points)} point{'s' * (len(points) != 1)}, "
        f"{len(tasks)} task{'s' * (len(tasks) != 1)}; steps: {steps})"
    )


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Config name: writes NAME.toml here.")],
    template: Annotated[str, typer.Option(help="Shipped template to inherit.")] = "hps2015",
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="ROOT file of the template's dataset, or DATASET=FILE for each dataset of a "
            "combination (default: the demo spectrum where it fits)."
        ),
    ] = None,
    force: Annotated[bool, Flag("--force", help="Overwrite NAME.toml.")] = False,
) -> None:
    """Write a ready, commented user config NAME.toml in the current folder."""
    from gprpipe.config.init import PLACEHOLDER, write_init

    path = write_init(name, template, Path.cwd(), data=data or (), force=force)
    first = (
        f"set each dataset's path in {path.name}, then "
        if PLACEHOLDER in path.read_text(encoding="utf-8")
        else ""
    )
    console.print(
        f"wrote {path.name} (inherits the shipped template {template!r}). "
        f"Next: {first}{cli_command('validate', path.name)} && {cli_command('run', path.name)}",
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
    from gprpipe.pipeline import service

    _, points = service.load_points(config, set_ or [])
    if not 0 <= point < len(points):
        have = "one point, 0" if len(points) == 1 else f"points 0-{len(points) - 1}"
        raise GprpipeError(f"--point {point}: the config has {have}.")
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
    from gprpipe.pipeline import service
    from gprpipe.pipeline.store import point_dir

    loaded, points = service.load_points(config, set_ or [])
    run_dir = service.run_dir_of(points, loaded)
    for p in points:
        values = " ".join(f"{k}={json.dumps(v)}" for k, v in p.values.items()) or "(no grid)"
        out = point_dir(run_dir, p)
        print(f"{p.index}\t{p.name}\t{values}\t{out}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the rendered config (what `gprpipe render` prints); a user
    config holds overrides of it, and base.template."""
    from gprpipe.config.schema import Config

    doc = Config.model_json_schema()
    doc["$defs"]["Base"]["properties"]["template"] = {
        "type": "string",
        "title": "Template",
        "description": "Parent config: a shipped template name or a path; this file "
        "overrides what it inherits (read by the loader; absent from the rendered config).",
    }
    print(json.dumps(doc, indent=2))


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


class _Bars(_Observer):
    """The terminal's view of a run (a :class:`~gprpipe.pipeline.service.RunObserver`):
    progress bars on stderr (one per running task with its masses or toys), or one line
    per task when stderr is not a terminal."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.bar: TaskID | None = None
        self.inner: dict[str, TaskID] = {}  # running task id -> its bar

    def notice(self, line: str) -> None:
        _notice(line)

    def rerunning(self, tasks: Sequence[Task]) -> None:
        console.print(f"Rerunning {len(tasks)} tasks: " + ", ".join(t.id for t in tasks))

    def submitted(
        self, executor: str, tasks: Sequence[Task], job_ids: dict[str, str], cached: int = 0
    ) -> None:
        from gprpipe.pipeline.service import submitted_line

        console.print(submitted_line(executor, tasks, job_ids, cached))

    def started(self, tasks: Sequence[Task], executor: str) -> None:
        self.progress = _progress()
        self.progress.start()
        label = "tasks" if executor == "local" else executor
        self.bar = self.progress.add_task(label, total=len(tasks), detail="")

    def stopped(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def task_ended(self, task: Task, outcome: Outcome) -> None:
        from gprpipe.pipeline.service import task_line

        progress, bar = self.progress, self.bar
        assert progress is not None and bar is not None
        if task.id in self.inner:
            progress.remove_task(self.inner.pop(task.id))
        progress.advance(bar)
        progress.update(bar, detail=f"{task.id}: {outcome.state}")
        if progress.disable and (line := task_line(task, outcome)):
            err.print(line)

    def tick(self, running: list[Task]) -> None:
        from gprpipe.pipeline.state import progress_text, read_progress

        progress = self.progress
        if progress is None or progress.disable:
            return
        for t in running:
            rec = read_progress(t.point_dir, t.slug)
            if not rec:
                continue
            if t.id not in self.inner:
                self.inner[t.id] = progress.add_task(f"  {t.id}", total=rec["total"], detail="")
            progress.update(
                self.inner[t.id],
                completed=rec["done"],
                total=rec["total"],
                detail=progress_text(rec, count=False),  # (the bar's column has the count)
            )

    def queue(self, states: dict[str, str]) -> None:
        from gprpipe.pipeline.service import count

        assert self.progress is not None and self.bar is not None
        n = sum(s in ("done", "failed") for s in states.values())
        detail = " ".join(f"{k}={v}" for k, v in count(states).items())
        self.progress.update(self.bar, completed=n, detail=detail)


def _show(result: RunResult, *, rows: bool = True) -> None:
    """Print what a run or rerun did (after its progress bars); exit 1 when it failed."""
    if result.queued:
        if not result.waited:
            console.print(f"Watch with: {cli_command('status', result.run_dir)}")
        else:
            console.print(", ".join(f"{n} {s}" for s, n in sorted(result.state_counts().items())))
            for t in result.tasks:
                state, msg = result.states[t.id]
                if state == "failed":
                    err.print(Text.assemble(("failed", "red"), f" {t.id}: {msg} (log: {t.log})"))
    else:
        console.print(result.headline())
        for task, message in result.failures():
            err.print(Text.assemble(("failed", "red"), f" {task.id} (log: {task.log})"))
            if message:
                err.print("  " + message.replace("\n", "\n  "), markup=False, highlight=False)
    for fr in result.failed_rows if rows else ():
        err.print(fr.sentence(), style="yellow" if fr.toys else "red", markup=False)
    if not result.queued or result.waited:
        _print_summary(result.run_dir)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    config: ConfigArg,
    engine: Annotated[str | None, typer.Option(help="local|docker|podman|apptainer")] = None,
    executor: Annotated[str | None, typer.Option(help="local|slurm")] = None,
    jobs: Annotated[
        int | None, typer.Option("-j", "--jobs", min=1, max=1024, help="Local workers.")
    ] = None,
    dry_run: Annotated[bool, Flag("--dry-run", help="Print the plan only.")] = False,
    force: Annotated[bool, Flag("--force", help="Ignore cached results.")] = False,
    steps: Annotated[str | None, typer.Option(help="Steps to run, e.g. load,fit.")] = None,
    points_sel: Annotated[
        str | None, typer.Option("--points", help="Grid points: 0,2-3,name,glob*.")
    ] = None,
    wait: Annotated[bool, Flag("--wait", help="SLURM: block until done.")] = False,
    wait_lock: Annotated[
        float,
        typer.Option(
            "--wait-lock",
            help="Seconds to wait for another run of the "
            "same directory to finish (default: refuse at once).",
        ),
    ] = 0.0,
    unblind: Annotated[
        bool, Flag("--unblind", help="Lift base.blind (recorded in run.json).")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Run the whole job: every grid point through the configured steps."""
    from gprpipe.pipeline import service

    options = service.RunOptions(
        engine=engine,
        executor=executor,
        jobs=jobs,
        dry_run=dry_run,
        force=force,
        steps=None if steps is None else [s.strip() for s in steps.split(",") if s.strip()],
        points=points_sel,
        wait=wait,
        wait_lock=wait_lock,
        unblind=unblind,
        overrides=list(set_ or []),
        command="gprpipe run",
        record=["gprpipe", *(ctx.obj or {}).get("argv", sys.argv[1:])],
    )
    with service.sigterm_interrupts():  # SIGTERM (gprpipe cancel) stops it like Ctrl-C
        result = service.run(config, options, _Bars())  # (Interrupted: said by main)
    if result.preview is not None:
        print(result.preview)
        return
    _show(result)


def _print_summary(run_dir: Path) -> None:
    from gprpipe.pipeline import service

    console.print("\n".join(service.summarise(run_dir)), markup=False, highlight=False)


@app.command()
def summary(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Print a run's summary again: most significant mass, limits, flags, failures, files.
    Exit code 1 when a point's scan.csv could not be summarised (damaged, or no task
    committed it), not while a run or its SLURM jobs are computing it."""
    from gprpipe.pipeline import service
    from gprpipe.pipeline.summary import summary_lines

    s = service.summary(Path(run_dir))
    console.print("\n".join(summary_lines(s)), markup=False, highlight=False)
    if any(p.unvouched for p in s.points):
        raise typer.Exit(1)


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Task states per point and step: done/running/failed/pending."""
    from gprpipe.pipeline import service

    st = service.status(run_dir, notice=_notice)
    table = Table(title=f"{run_dir}  ({st.executor} executor)")
    for col in ("point", "step", "done", "running", "failed", "pending"):
        table.add_column(
            col, justify="left" if col in ("point", "step") else "right", overflow="fold"
        )
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for t in st.tasks:
        g = groups.setdefault((t.point, t.step), {})
        s = st.states[t.id][0]
        g[s] = g.get(s, 0) + 1
    for (point, step), c in groups.items():
        cells = (str(c.get(s, 0)) for s in ("done", "running", "failed", "pending"))
        table.add_row(point, step, *cells)
    console.print(table)
    held = st.held()  # (pending, but they never start unreleased)
    for t in st.tasks:
        state, msg = st.states[t.id]
        if state in ("failed", "running") or t.id in held:
            job = f" [job {st.jobs[t.id]}]" if t.id in st.jobs else ""
            why = f": {msg}" if msg else ""
            console.print(f"{state:8s} {t.id}{job}{why}  (log: {t.log})", highlight=False)
    if st.in_use:
        console.print(f"in use by {st.in_use}", highlight=False)
    console.print(" ".join(f"{k}={v}" for k, v in sorted(st.counts().items())))
    if unknown := st.unanswered():
        console.print(
            f"note: SLURM does not answer (squeue): {unknown} submitted task"
            f"{'s' * (unknown != 1)} counted above from {'their' if unknown != 1 else 'its'} "
            "markers may be pending, running or ended; run status again when it answers.",
            highlight=False,
        )


@app.command()
def rerun(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    failed: Annotated[
        bool, Flag("--failed", help="Redo failed tasks and those that never ran.")
    ] = False,
    masses: Annotated[
        str | None,
        typer.Option(
            help="Redo the tasks owning these masses: 37MeV,48MeV or 0.037,0.048 (GeV); "
            "with --failed, the failed tasks as well."
        ),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("-j", "--jobs", min=1, max=1024, help="Local workers.")
    ] = None,
    wait: Annotated[bool, Flag("--wait", help="SLURM: block until done.")] = False,
    wait_lock: Annotated[
        float,
        typer.Option(
            "--wait-lock",
            help="Seconds to wait for another run of the "
            "same directory to finish (default: refuse at once).",
        ),
    ] = 0.0,
) -> None:
    """Redo only what is named (failed tasks, or the tasks of some masses) and what follows,
    with the config the run recorded (after a change to the config file, run it again)."""
    from gprpipe.pipeline import service

    with service.sigterm_interrupts():  # SIGTERM (gprpipe cancel) stops it like Ctrl-C
        result = service.rerun(  # (Interrupted: said by main)
            run_dir,
            failed=failed,
            masses=masses,
            jobs=jobs,
            wait=wait,
            wait_lock=wait_lock,
            observer=_Bars(),
            record=["gprpipe", *(ctx.obj or {}).get("argv", sys.argv[1:])],
        )
    if result is None:
        console.print("Nothing to rerun: no task matches.")
        return
    _show(result, rows=False)


@app.command()
def cancel(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the run to stop before killing it.")
    ] = 10.0,
) -> None:
    """Stop the run of RUN_DIR on this host and cancel its SLURM jobs.

    Its running tasks become failed (gprpipe rerun RUN_DIR --failed redoes them)."""
    from gprpipe.pipeline import service
    from gprpipe.pipeline.lock import LOCK_NAME
    from gprpipe.pipeline.plan import RUN_JSON
    from gprpipe.pipeline.store import load_run_info

    if not (math.isfinite(timeout) and timeout >= 0):
        raise GprpipeError(f"--timeout {timeout:g}: give the seconds to wait, a number >= 0.")
    if not (run_dir / RUN_JSON).is_file() and not (run_dir / LOCK_NAME).exists():
        load_run_info(run_dir)  # no run was ever here: the sentence of status and summary
    done = service.cancel(run_dir, timeout=timeout)
    if done.pids:
        console.print(f"Stopped the run of {run_dir} (pid {', '.join(map(str, done.pids))}).")
    if done.jobs:
        console.print(f"Cancelled SLURM jobs: {' '.join(done.jobs)}")
    if done.containers:
        console.print(f"Removed containers of its jobs: {', '.join(done.containers)}")
    if done.marked:
        hint = cli_command("rerun", run_dir, "--failed")
        console.print(f"Marked failed: {', '.join(done.marked)} ({hint})")
    for why in done.unmarked:
        console.print(f"Marked nothing failed there: {why}")
    if not done.anything:
        console.print(f"Nothing running in {run_dir}.")
    if elsewhere := service.jobs_elsewhere(run_dir):
        _notice(elsewhere)


@app.command()
def step(
    name: Annotated[str, typer.Argument(help="load|fit|limit|inject|toyscan|plot")],
    point_dir: Annotated[Path, typer.Option("--point-dir", help="Point folder of a run.")],
    part: Annotated[str | None, typer.Option(help="Chunk, e.g. 2015-003, or merge.")] = None,
    task: Annotated[str | None, typer.Option(help="Task id (for state markers).")] = None,
    force: Annotated[
        bool, Flag("--force", help="Run even when the outputs are up to date.")
    ] = False,
    masses: Annotated[
        str | None,
        typer.Option(help="Instead of --part: the chunk owning these masses (37MeV,48MeV)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="With --masses: the dataset's chunk (or combined).")
    ] = None,
) -> None:
    """Run one task (what engines and executors run)."""
    from gprpipe.io.processes import end_with_run
    from gprpipe.pipeline.lock import refuse_beside_a_run
    from gprpipe.steps.runner import part_of_masses, run_task

    end_with_run()  # a task process of a local run ends with that run
    refuse_beside_a_run(point_dir)

    if masses is not None:
        if part is not None:
            raise GprpipeError("give --part or --masses, not both.")
        part = part_of_masses(point_dir, name, masses, dataset)
    elif dataset is not None:
        raise GprpipeError("--dataset goes with --masses (--part names a dataset's chunk).")
    code = run_task(point_dir, name, part, task, force)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------- utilities


# demo-data: at most this many times the shipped spectrum's events (2e13 events), and
# signal events (drawn one by one)
_DEMO_MAX_SCALE = 1e6
_DEMO_MAX_SIGNAL = 1e8


#: the longest histogram name demo-data writes, in bytes: far below what ROOT's key header
#: holds (its length in 16 bits: 32,731 characters gave "internal error", a review)
MAX_HIST_NAME = 1000


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
    force: Annotated[bool, Flag("--force", help="Overwrite an existing OUT.")] = False,
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
    if m_sig is not None:
        from gprpipe.demo import SIGMA_2015
        from gprpipe.stats.resolution import sigma_m

        if not float(sigma_m(m_sig, SIGMA_2015)) > 0:
            raise GprpipeError(
                f"--signal-mass {signal_mass}: the demo's mass resolution sigma(m) is not "
                f"positive at {fmt_mass(m_sig)}; give a mass of a few MeV or more."
            )
    if seed is not None and seed < 0:
        raise GprpipeError(f"--seed {seed}: a seed is a non-negative integer.")
    if not 0 < scale <= _DEMO_MAX_SCALE:
        raise GprpipeError(f"--scale {scale:g}: must be above 0 and at most {_DEMO_MAX_SCALE:g}.")
    if not 0 <= signal_yield <= _DEMO_MAX_SIGNAL:
        raise GprpipeError(
            f"--signal-yield {signal_yield:g}: must be at least 0 and at most "
            f"{_DEMO_MAX_SIGNAL:g} events."
        )
    if signal_yield > 0 and m_sig is None:
        raise GprpipeError(f"--signal-yield {signal_yield:g} needs --signal-mass.")
    if m_sig is not None and signal_yield == 0:  # else a background-only file, silently
        raise GprpipeError(
            f"--signal-mass {signal_mass} needs --signal-yield (the signal events, > 0)."
        )
    if (
        not hist
        or ";" in hist  # ROOT's cycle separator: 'a;1' was written as key 'a;1;1'
        or any(part in ("", ".", "..") for part in hist.split("/"))
        or not hist.isprintable()
    ):
        raise GprpipeError(
            f"--hist {hist!r}: a histogram name, folders joined by '/' (no ';', and no folder "
            "'.' or '..')."
        )
    if len(hist.encode()) > MAX_HIST_NAME:  # (ROOT's key header holds its length in 16 bits)
        raise GprpipeError(
            f"--hist: a name of {len(hist.encode())} bytes; demo-data writes names of at most "
            f"{MAX_HIST_NAME} bytes."
        )
    if out.is_dir():
        raise GprpipeError(f"{out}: is a folder; give the ROOT file to write.")
    if out.suffix.lower() != ".root":  # --force replaced a config or a run's run.json
        raise GprpipeError(f"{out}: demo-data writes a ROOT file; give a name ending in .root.")
    if (out.exists() or out.is_symlink()) and not force:  # real data, maybe
        raise GprpipeError(f"{out}: already exists; choose another name or use --force.")
    counts, edges = demo_spectrum(
        seed=DEMO_SEED if seed is None else seed,
        scale=scale,
        signal_mass=m_sig,
        signal_yield=signal_yield,
    )
    write_hist(out, counts, edges, hist)
    signal = ""
    if m_sig is not None and signal_yield > 0:  # what was put in, for a closure by hand
        from gprpipe.demo import SIGMA_2015
        from gprpipe.stats.resolution import sigma_m

        s = float(sigma_m(m_sig, SIGMA_2015))
        signal = (
            f", with a Gaussian signal of {signal_yield:g} events (Poisson mean) at "
            f"{fmt_mass(m_sig)}, sigma(m) {s:.4g} GeV"
        )
    console.print(
        f"wrote {out}: {hist}, {len(counts)} bins over {edges[0]:g}-{edges[-1]:g} GeV, "
        f"{counts.sum():.4g} events{signal}"
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
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="File (--mass; default <point>/exports/pyhf_<dataset>_<mass>MeV.json) or "
            "folder (--patchset; default <point>/exports).",
        ),
    ] = None,
    force: Annotated[
        bool, Flag("--force", help="Replace an existing file that is no earlier export.")
    ] = False,
) -> None:
    """Write the blind-window likelihood as pyhf HistFactory JSON: one mass (--mass), or
    every mass as a background-only workspace plus a PatchSet (--patchset)."""
    from gprpipe.steps.export import export_patchset, export_workspace

    if patchset and mass is not None:
        raise GprpipeError(
            "export-pyhf: give --mass M (one workspace) or --patchset (every mass), not both."
        )
    if patchset:
        paths, n, left = export_patchset(
            run_dir, dataset, point=point, output=output, inspire=inspire, force=force
        )
        console.print(f"wrote {paths[0]} and {paths[1]} ({n} patches, one per mass not left out)")
        if left:
            console.print(left, markup=False, highlight=False)
        return
    if mass is None:
        raise GprpipeError("export-pyhf: give --mass M (e.g. 60MeV) or --patchset.")
    path, ws = export_workspace(
        run_dir, dataset, parse_mass(mass, "--mass"), point=point, output=output, force=force
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
    force: Annotated[
        bool, Flag("--force", help="Replace an existing file that is no earlier export.")
    ] = False,
) -> None:
    """Per mass, the inputs of Spey's correlated-background model (data, background,
    covariance, signal per unit eps^2): <point>/exports/spey_<dataset>.json."""
    from gprpipe.steps.export import export_spey as run_spey

    path, n, left = run_spey(run_dir, dataset, point=point, output=output, force=force)
    console.print(f"wrote {path} ({n} mass{'es' * (n != 1)})")
    if left:
        console.print(left, markup=False, highlight=False)


@app.command("project-reach")
def project_reach(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or point folder).")],
    scale: Annotated[str, typer.Option(help="Luminosity factors, e.g. 2015=1,2016=10,2021=100.")],
    point: Annotated[str | None, typer.Option(help="Grid point name.")] = None,
) -> None:
    """Expected eps^2 limits with each dataset's luminosity scaled (1/sqrt(factor)), and
    their inverse-variance combination: <point>/reach/reach.csv and the figure reach.<fmt>
    in the point's plot.formats."""
    from gprpipe.steps.reach import project_reach as run_reach

    written, s = run_reach(run_dir, scale, point=point)
    for p in written:
        console.print(f"wrote {p}")
    console.print(
        f"{s['n_masses']} mass{'es' * (s['n_masses'] != 1)}"
        + (f" ({s['n_left_out']} flagged or failed left out)" if s["n_left_out"] else "")
        + f"; median gain of the combined expected limit {s['gain_median']:.2f}x"
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
    force: Annotated[
        bool, Flag("--force", help="Replace an existing file that is no earlier comparison's.")
    ] = False,
) -> None:
    """Compare eps^2 limits of runs or grid points: overlay, ratio panels, ratio table."""
    from gprpipe.config.schema import FIGURE_FORMATS
    from gprpipe.pipeline.compare import write_comparison

    kinds = list(dict.fromkeys(f.strip() for f in formats.split(",") if f.strip()))  # once
    if not kinds or not set(kinds) <= set(FIGURE_FORMATS):
        raise GprpipeError(
            f"--formats {formats!r}: figure formats are {', '.join(FIGURE_FORMATS)}."
        )
    result = write_comparison(runs, out, kinds, force)
    for comp in result.datasets:
        if not comp.ratios:
            console.print(f"{comp.dataset}: not compared: {result.skipped[comp.dataset]}.")
            continue
        table = Table(title=f"{comp.dataset}: eps^2 limit / {result.reference}")
        table.add_column("point", overflow="fold")  # wrapped, never cut short
        for col in ("masses", "obs median", "obs range", "exp median", "exp range"):
            table.add_column(col, justify="right", overflow="fold")
        for r in comp.ratios:
            (om, olo, ohi), (em, elo, ehi) = r.stats("observed"), r.stats("expected")
            blind = math.isnan(om)  # a blinded run has no observed limit
            table.add_row(
                r.label,
                r.masses_text(),
                "blinded" if blind else f"{om:.3f}",
                "-" if blind else f"{olo:.3f}-{ohi:.3f}",
                f"{em:.3f}",
                f"{elo:.3f}-{ehi:.3f}",
            )
        console.print(table)
        console.print(
            f"wrote {', '.join(str(f) for f in result.files[comp.dataset])}",
            markup=False,
            highlight=False,
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

    if config is not None and not config.exists() and config.suffix != ".toml":
        raise GprpipeError(  # a mistyped run folder, not a new config to write
            f"{config}: no such config, folder or run directory (a new config's name ends "
            "in .toml)."
        )
    GprpipeApp(config).run()


_E = TypeVar("_E", bound=BaseException)


def _click_classes(cls: type[_E]) -> tuple[type[_E], ...]:
    """click's exception class ``cls`` and, where typer vendors its own click, typer's class
    of that name too (the same interface)."""
    found = [cls]
    try:
        from typer import _click as vendored  # type: ignore[attr-defined]

        found.append(getattr(vendored.exceptions, cls.__name__))
    except (ImportError, AttributeError):
        pass
    return tuple(found)


_CLICK_EXIT = _click_classes(click.exceptions.Exit)
_CLICK_ABORT = _click_classes(click.exceptions.Abort)
_CLICK_ERROR = _click_classes(click.exceptions.ClickException)


def _repeated_option(command: Any, args: Sequence[str]) -> str | None:
    """The first option of the subcommand in ``args`` that takes one value and is given
    twice (click would keep the last one silently), or None."""
    sub_at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if sub_at is None or (sub := command.commands.get(args[sub_at])) is None:
        return None
    single = {
        opt: p.name
        for p in sub.params
        if p.param_type_name == "option" and not (p.multiple or p.is_flag or p.count)
        for opt in p.opts
    }
    seen: set[str] = set()
    words = iter(args[sub_at + 1 :])
    for word in words:
        if word == "--":
            break
        opt, eq, _ = word.partition("=") if word.startswith("--") else (word, "", "")
        if opt in single:
            if single[opt] in seen:
                return opt
            seen.add(single[opt])
            if not eq:
                next(words, None)  # its value, whatever it looks like
    return None


def _run_interrupted(exc: Exception) -> bool:
    """Whether ``exc`` is a run stopped by Ctrl-C, SIGTERM or a cancel
    (:class:`~gprpipe.pipeline.service.Interrupted`; the run service imported it)."""
    service = sys.modules.get("gprpipe.pipeline.service")
    return service is not None and isinstance(exc, service.Interrupted)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one sentence and exit code 1 (--debug: traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        # the commands see the command line they were given (run.json records it), also
        # when a program calls main(argv) rather than the shell
        command = typer.main.get_command(app)
        twice = _repeated_option(command, args)
        if twice is not None:
            raise GprpipeError(f"{twice} is given twice; it takes one value: give it once.")
        code = command(args=args, prog_name="gprpipe", standalone_mode=False, obj={"argv": args})
        if code == 130:  # typer's own answer to Ctrl-C, which says nothing
            err.print("interrupted")
    except ConfigError as exc:
        if debug:
            raise
        for e in exc.shown():
            err.print(f"error: {printable(e)}", markup=False, highlight=False)
        sys.exit(1)
    except GprpipeError as exc:
        if debug:
            raise
        err.print(f"error: {printable(str(exc))}", markup=False, highlight=False)
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
        if _run_interrupted(exc):  # what a stopped run keeps and how to resume it
            err.print(str(exc), markup=False, highlight=False)
            sys.exit(130)
        if debug:
            raise
        if said := os_error_sentence(exc):  # the file system said no
            msg = f"error: {said}"
        else:
            msg = (
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
            )
        err.print(msg, markup=False, highlight=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
