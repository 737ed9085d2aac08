"""Run: choose engine, executor and workers, start the run in the background, watch every
task's state, the log of the selected task, cancel, rerun failed tasks.

Everything goes through the run service: a run starts as the service's own background
process (:mod:`gprpipe.pipeline.launch`, running :func:`gprpipe.pipeline.service.run` as
``gprpipe run`` does; quitting the TUI leaves it running), states come from
:class:`~gprpipe.pipeline.service.RunWatcher` (the run's executor, as ``gprpipe status``),
cancelling is :func:`gprpipe.pipeline.service.cancel`. The app hands the pane the latest
check (:meth:`RunPane.show_check`) and whether its tab is shown (:attr:`RunPane.shown`);
the pane posts :class:`~gprpipe.tui.messages.StartRun` and
:class:`~gprpipe.tui.messages.RunEnded` up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from gprpipe.config.schema import MAX_JOBS, choices
from gprpipe.errors import GprpipeError
from gprpipe.pipeline import service
from gprpipe.pipeline.launch import Launch, launch_rerun, launch_run
from gprpipe.pipeline.service import RunView, RunWatcher
from gprpipe.pipeline.state import fmt_duration
from gprpipe.pipeline.task import Task
from gprpipe.results.summary import FAILED_ROWS_SENTENCE
from gprpipe.tui.messages import RunEnded, StartRun
from gprpipe.tui.model import Check, show_path
from gprpipe.tui.runs import tail
from gprpipe.tui.widgets import StillInput

STATE_STYLE = {
    "done": "bold green",
    "running": "bold yellow",
    "failed": "bold red",
    "pending": "dim",
}
ENGINES = choices("base.engine")  # from the config schema
EXECUTORS = choices("base.executor")


class RunPane(Widget):
    """Launch controls, the task table, and the log tail of the selected task."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "cancel", "Cancel run"),
        Binding("f", "rerun_failed", "Rerun failed"),
    ]

    def __init__(self, *, poll_interval: float = 0.5, id: str | None = None) -> None:
        super().__init__(id=id)
        self.poll_interval = poll_interval
        self.watcher = RunWatcher()
        self.view: RunView | None = None
        self.launch: Launch | None = None
        self.launch_dir: Path | None = None
        self.launch_kind = ""
        self.check: Check | None = None  # the latest validation (the app: set_check)
        self.results_dir: Path | None = None  # set by the app: a run folder it opened
        self.shown = False  # set by the app: whether the Run tab is the active one
        self._reported = True
        self._selected: str | None = None
        self._defaults: tuple[str, str, int] | None = None
        self._polling = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="run-bar"):
            yield Label("Engine ")
            yield Select(
                [(e, e) for e in ENGINES],
                id="run-engine",
                value="local",
                allow_blank=False,
                compact=True,
            )
            yield Label(" Executor ")
            yield Select(
                [(e, e) for e in EXECUTORS],
                id="run-executor",
                value="local",
                allow_blank=False,
                compact=True,
            )
            yield Label(" Workers ")
            yield StillInput("2", id="run-jobs", compact=True, type="integer")
            yield Button("Start", id="run-start", compact=True, variant="success")
            yield Button("Cancel", id="run-cancel", compact=True, variant="error")
            yield Button(
                "Rerun", id="run-rerun", compact=True, tooltip="Rerun the failed tasks (f)"
            )
        yield Static("", id="run-summary")
        yield DataTable(id="run-tasks", cursor_type="row", zebra_stripes=True)
        yield Static("", id="log-title", classes="section-title")
        with VerticalScroll(id="log-scroll"):
            yield Static("", id="log-tail")

    def on_mount(self) -> None:
        table = self.query_one("#run-tasks", DataTable)
        table.add_column("point", key="point")
        table.add_column("step", key="step")
        table.add_column("part", key="part")
        table.add_column("state", key="state")
        table.add_column("note", key="note")
        self.set_interval(self.poll_interval, self.poll)

    # -------------------------------------------------------------- config and choices

    def set_check(self, check: Check) -> None:
        """Take the latest check (the UI updates when the tab is shown). A run launched here
        that has ended is watched until the edited config names another run directory (the
        user opened or edited another config): the pane then follows that one."""
        self.check = check
        if (
            self.launch_dir is not None
            and not self.busy
            and self._reported
            and check.run_dir is not None
            and check.run_dir.resolve() != self.launch_dir.resolve()
        ):
            self.launch, self.launch_dir, self.launch_kind = None, None, ""
            self.watcher, self.view = RunWatcher(), None

    def show_check(self, check: Check) -> None:
        """Take the latest check; engine/executor/workers defaults from a (new) valid config."""
        self.check = check
        if not check.points:
            return
        base = check.points[0].config.base
        defaults = (base.engine, base.executor, base.jobs)
        if defaults != self._defaults:
            self._defaults = defaults
            self.query_one("#run-engine", Select).value = base.engine
            self.query_one("#run-executor", Select).value = base.executor
            self.query_one("#run-jobs", Input).value = str(base.jobs)
        if not (self.launch and self.launch.running):
            self.poll()

    def choices(self) -> tuple[str, str, int]:
        engine = str(self.query_one("#run-engine", Select).value)
        executor = str(self.query_one("#run-executor", Select).value)
        try:
            jobs = int(self.query_one("#run-jobs", Input).value)
        except ValueError:
            jobs = 0  # (refused by _workers_ok, naming what was typed)
        return engine, executor, jobs

    def _workers_ok(self, jobs: int) -> bool:
        """Whether the Workers field is within what a run takes (else said in a notice: 0,
        -3 or "two" ran with one worker, where -j refuses them; a review)."""
        if 1 <= jobs <= MAX_JOBS:
            return True
        typed = self.query_one("#run-jobs", Input).value.strip()
        self.notify(
            f"Workers: a whole number of local worker processes from 1 to {MAX_JOBS}, not "
            f"{typed!r}.",
            severity="error",
        )
        return False

    def run_dir(self) -> Path | None:
        """The run being watched: the launched one, else the edited config's, else the run
        folder the app opened (its config gone or not valid now: the run's own record,
        run.json, still gives its tasks)."""
        if self.launch_dir is not None:
            return self.launch_dir
        if self.check is not None and self.check.run_dir is not None:
            return self.check.run_dir
        return self.results_dir

    @property
    def busy(self) -> bool:
        """A run or rerun started here is still going."""
        return self.launch is not None and self.launch.running

    # -------------------------------------------------------------- actions

    def start(self, config: Path, overrides: Sequence[str], points: str | None = None) -> bool:
        """Run the saved ``config`` (with ``overrides``; ``points``: a selection of its
        grid points, as ``--points``) in the background, with the engine, executor and
        workers chosen here; the app checked that it is valid."""
        check = self.check
        if self.busy:
            self.notify("A run is already going: cancel it first (x).", severity="warning")
            return False
        if check is None or check.run_dir is None:
            return False
        engine, executor, jobs = self.choices()
        if not self._workers_ok(jobs):
            return False
        options = service.RunOptions(
            engine=engine, executor=executor, jobs=jobs, overrides=list(overrides), points=points
        )
        if points is not None:
            self.notify(
                f"The run folder holds {points.count(',') + 1} of the grid points: runs those."
            )
        run_dir = check.run_dir
        return self._begin(lambda: launch_run(config, options, run_dir), run_dir, "run")

    def _begin(self, start: Callable[[], Launch], run_dir: Path, kind: str) -> bool:
        try:
            launch = start()
        except GprpipeError as exc:  # the folder is in use by another run
            self.notify(str(exc), severity="error", timeout=10)
            return False
        except OSError as exc:
            self.notify(f"Cannot start: {exc}", severity="error")
            return False
        self.launch, self.launch_dir, self.launch_kind = launch, run_dir, kind
        self._reported = False
        self.watcher = RunWatcher() if kind == "run" else self.watcher
        self.notify(f"Started {kind} in {show_path(run_dir)}.")
        self.poll()
        return True

    def action_cancel(self) -> None:
        self.cancel()

    @work(thread=True, exclusive=True, group="cancel")
    def cancel(self) -> None:
        """Stop the run (:func:`gprpipe.pipeline.service.cancel`): the background process
        started here, or whichever run holds the directory; SLURM jobs are cancelled."""
        run_dir = self.run_dir()
        launch = self.launch if self.busy else None
        if run_dir is None:
            self.app.call_from_thread(self.notify, "Nothing running to cancel.")
            return
        if launch is not None:
            launch.cancelled = True
        try:
            done = service.cancel(
                run_dir,
                pid=launch.pid if launch is not None else None,
                why="cancelled from gprpipe tui",
            )
        except GprpipeError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        if done.pids or done.marked:
            # (the stopped run marks its own tasks: done.marked counts only those it could not)
            self.app.call_from_thread(
                self.notify,
                "Run cancelled: any task it was running is marked failed (rerun them with f).",
                severity="warning",
            )
        if done.jobs:
            if self.launch is not None and run_dir == self.launch_dir:
                self.launch.cancelled = True  # (its process had ended: it submitted them)
            self.app.call_from_thread(
                self.notify, f"scancel {' '.join(done.jobs)}", severity="warning"
            )
        for why in done.unmarked:
            self.app.call_from_thread(self.notify, why, severity="error")
        if not done.anything:
            self.app.call_from_thread(self.notify, "Nothing running to cancel.")

    def action_rerun_failed(self) -> None:
        self.rerun_failed()

    def rerun_failed(self) -> bool:
        run_dir = self.run_dir()
        view = self.view
        if self.busy:
            self.notify("Wait for the run to end (or cancel it) first.", severity="warning")
            return False
        if view is not None and view.error and not view.tasks:  # (it said "No run to rerun yet.")
            self.notify(view.error, severity="error")
            return False
        if run_dir is None or view is None or not view.started:
            self.notify("No run to rerun yet.", severity="warning")
            return False
        counts = view.counts()  # rerun --failed also runs the tasks that never ran (a
        # queued executor's pending tasks may still be held by its scheduler)
        if not counts.get("failed") and (view.queued or not counts.get("pending")):
            self.notify("No failed task." if view.queued else "No failed task, none to run.")
            return False
        _, _, jobs = self.choices()
        if not self._workers_ok(jobs):
            return False
        return self._begin(lambda: launch_rerun(run_dir, jobs=jobs), run_dir, "rerun")

    @on(Button.Pressed, "#run-start")
    def _start_pressed(self) -> None:
        self.post_message(StartRun())

    @on(Button.Pressed, "#run-cancel")
    def _cancel_pressed(self) -> None:
        self.cancel()

    @on(Button.Pressed, "#run-rerun")
    def _rerun_pressed(self) -> None:
        self.rerun_failed()

    # -------------------------------------------------------------- watching

    def poll(self) -> None:
        """Refresh states, in a worker thread: markers of thousands of tasks, or a scheduler
        that is slow to answer, never hold the UI (one poll at a time)."""
        running = self.launch is not None and (self.launch.running or not self._reported)
        if not running and not self.shown:
            return
        run_dir = self.run_dir()
        if run_dir is None or self._polling:
            return
        check = self.check
        planned = check.tasks if check is not None and check.run_dir == run_dir else []
        self._polling = True
        # a launch is reported from a view read after it ended (one read while its process
        # wrote its last markers is not final)
        ended = self.launch if self.launch is not None and not self.launch.running else None
        self._poll_thread(self.watcher, run_dir, planned, ended)

    @work(thread=True, group="poll")
    def _poll_thread(
        self, watcher: RunWatcher, run_dir: Path, planned: list[Task], ended: Launch | None
    ) -> None:
        try:
            view = watcher.poll(run_dir, planned)
        finally:
            self._polling = False
        self.app.call_from_thread(self.show_view, view, ended)

    def show_view(self, view: RunView, ended: Launch | None = None) -> None:
        if view.run_dir != self.run_dir():  # polled before the pane moved to another run
            self.poll()
            return
        self.view = view
        try:
            table = self.query_one("#run-tasks", DataTable)
        except NoMatches:  # a poll that ended while the app was closing (its pane removed)
            return
        ids = [t.id for t in view.tasks]
        if list(table.rows) != ids:
            table.clear()
            for t in view.tasks:
                table.add_row(t.point, t.step, t.part or "", "", "", key=t.id)
        for t in view.tasks:
            state, msg = view.states.get(t.id, ("pending", ""))
            cell = Text(state, style=STATE_STYLE.get(state, ""))
            if table.get_cell(t.id, "state") != cell:
                table.update_cell(t.id, "state", cell, update_width=True)
            note = msg.splitlines()[0][:80] if msg else ""
            if state == "done" and note.removesuffix(" s").replace(".", "", 1).isdigit():
                note = fmt_duration(float(note.removesuffix(" s")))
            if state == "running":  # progress within the task: masses or toys, rate, ETA
                note = view.progress.get(t.id) or note
            if table.get_cell(t.id, "note") != note:  # (the column was as wide as "note")
                table.update_cell(t.id, "note", note, update_width=True)
        self._summary(view)
        self._log()
        if ended is not None and ended is self.launch:
            self._finish_launch(view)

    def _summary(self, view: RunView) -> None:
        c = view.counts()
        s = Text()
        s.append(show_path(view.run_dir), style="bold")
        s.append(f" ({view.executor}) ", style="dim")
        refused = view.error and not view.tasks  # (a SLURM poll's error keeps its states)
        for state in ("done", "running", "failed", "pending") if not refused else ():
            s.append(f" {state} {c.get(state, 0)}", style=STATE_STYLE[state])
        if self.launch is not None:
            code = self.launch.returncode()
            if code is None:
                s.append(f"   {self.launch_kind} in progress", style="yellow")
            elif self.launch.cancelled:
                s.append(f"   {self.launch_kind} cancelled", style="red")
            elif self.launch.refused:
                s.append(f"   {self.launch_kind} refused", style="red")
            else:
                s.append(
                    f"   {self.launch_kind} exited {code}", style="green" if code == 0 else "red"
                )
        elif not view.started and not view.error:
            s.append("   not started", style="dim")
        if view.error:
            s.append(f"\n{view.error}", style="red")
        self.query_one("#run-summary", Static).update(s)

    def _finish_launch(self, view: RunView) -> None:
        if self.launch is None or self._reported or self.launch.running:
            return
        self._reported = True
        code = self.launch.returncode()
        c = view.counts()
        if self.launch.cancelled:
            return
        if self.launch.refused:  # before any task ran: its sentence, and no folder left
            # that this launch made (the CLI leaves none)
            output = self.launch.read_output()
            removed = self.launch.discard()
            lines = [ln for ln in output.splitlines() if ln.strip()]
            errors = [ln.removeprefix("error: ") for ln in lines if ln.startswith("error: ")]
            why = (errors or lines[-1:] or ["(no output)"])[0].rstrip()
            why += "" if why.endswith((".", ")")) else "."
            gone = f" ({show_path(view.run_dir)} removed)" if removed else ""
            self.notify(
                f"{self.launch_kind.capitalize()} refused: {why} Nothing ran{gone}; its "
                "output is below.",
                severity="error",
                timeout=10,
            )
            self._log()
        elif code == 0 and not view.queued:
            self.notify(
                f"{self.launch_kind.capitalize()} finished: {c['done']} of "
                f"{len(view.tasks)} tasks done."
            )
        elif code == 0:
            self.notify(
                f"Submitted to {view.executor.upper()}; states update from the queue and markers."
            )
        else:
            # every task done but rows failed (masses without a limit): the run's sentence
            # the run's own sentence of failed rows, from its output (the tables on disk
            # may be an earlier run's: a run refused before it started leaves them)
            said = [
                m.group(0)
                for line in tail(self.launch.log, 200).splitlines()
                if (m := FAILED_ROWS_SENTENCE.search(line))
            ]
            if c["failed"] == 0 and said:
                why = said[0]
            else:
                last = tail(self.launch.log, 1).strip()
                why = f"{c['failed']} tasks failed" + (f": {last}" if last else "")
            self.notify(
                f"{self.launch_kind.capitalize()} ended with exit code {code}: {why} (its "
                "output is below).",
                severity="error",
                timeout=10,
            )
        self.post_message(RunEnded(view.run_dir))

    @on(DataTable.RowHighlighted, "#run-tasks")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._selected = event.row_key.value if event.row_key else None
        self._log()

    def _log(self) -> None:
        view = self.view
        title = self.query_one("#log-title", Static)
        body = self.query_one("#log-tail", Static)
        path = None
        task_log = view.logs.get(self._selected) if view and self._selected else None
        code = self.launch.returncode() if self.launch is not None else None
        # a launch that failed shows its own output (why it was refused, or which task
        # failed) unless a failed task is selected: another task's log says nothing of it
        state = view.states.get(self._selected, ("",))[0] if view and self._selected else ""
        launch_failed = code not in (None, 0) and state != "failed"
        if task_log is not None and state == "pending" and not launch_failed and task_log.exists():
            # a log left by an earlier run is not this task's (it showed the unblinded
            # run's Z_local beside a blinded run's pending limit merge: a review)
            label = f"Log of {self._selected}: not started in this run"
        elif (
            task_log is not None
            and not launch_failed
            and (task_log.exists() or self.launch is None)
        ):
            path = task_log
            label = f"Log of {self._selected}: {show_path(path)}"
        elif self.launch is not None:  # e.g. the run failed before its first task
            path = self.launch.log
            label = f"Output of the {self.launch_kind}: {show_path(path)}"
            if self.launch.output is not None:  # refused, and its folder removed
                label = f"Output of the {self.launch_kind} (refused; nothing was written)"
        else:
            label = "Log (select a task)"
        if self.launch is not None and path == self.launch.log and self.launch.output is not None:
            text = "\n".join(self.launch.output.splitlines()[-12:])
        else:
            text = tail(path, 12) if path is not None else ""
        title.update(label)
        body.update(Text(text or "(no log yet)", style="" if text else "dim"))

    def focus_main(self) -> None:
        self.query_one("#run-tasks", DataTable).focus()
