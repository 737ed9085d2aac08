"""Results: a finished point's scan table (sortable), key numbers, and the eps^2 limit
plot drawn in the terminal, with the paths of its PNG/PDF files."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Input, Label, Select, Static

from gprpipe.config import Point, point_config_from_file
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.lock import run_holding
from gprpipe.pipeline.summary import (
    failure_lines,
    not_current_files_line,
    observed_withheld,
    point_currency,
    run_summary,
)
from gprpipe.results.schema import csv_header, has_observed
from gprpipe.tui.model import show_path
from gprpipe.tui.runs import (
    Scan,
    default_masses,
    field_masses,
    key_numbers,
    limit_text,
    number,
    plot_files,
    read_scan,
    result_points,
)
from gprpipe.tui.textplot import Band, Line, braille_plot, legend
from gprpipe.tui.widgets import StillInput

FIXED = ("dataset", "mass_GeV")  # columns that stay when the table scrolls right


def fmt(v: object) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)


def _sort_key(reverse: bool = False) -> Callable[[object], tuple[int, float, str]]:
    """The table's sort key: numbers by value, and after them in either direction the
    cells that are no number (NaN, empty, text), by their text (a NaN key left the
    column unsorted)."""
    last = -1 if reverse else 1  # DataTable reverses the whole order

    def key(v: object) -> tuple[int, float, str]:
        text = v.plain if isinstance(v, Text) else str(v)
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        return (last, 0.0, text) if math.isnan(x) else (0, x, "")

    return key


def _files_text(files: list[Path], current: bool = True, checking: bool = False) -> str:
    """``dir/stem.png, .pdf`` for the files of one plot."""
    if checking:
        return "(checking whether its PNG/PDF are of these results…)"
    if not current:
        return "(its PNG/PDF are not current: drawn from other results; the plot step redraws)"
    if not files:
        return "(no PNG/PDF yet: the plot step writes them)"
    first = files[0]
    rest = [
        f.suffix if f.with_suffix("") == first.with_suffix("") else show_path(f) for f in files[1:]
    ]
    return ", ".join([show_path(first), *rest])


class PlotView(Widget, can_focus=True):
    """The eps^2 Brazil plot of one dataset, drawn to the widget's size (focused while
    shown, so that the pane's keys, ``p`` back to the table among them, still work)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.scan: Scan | None = None
        self.dataset = ""
        self.files: list[Path] = []
        self.current = True  # its figures are of the results shown
        self.checking = False  # whether they are is being checked
        self.cl = 95.0  # the limits' confidence level, in percent

    def show(
        self,
        scan: Scan | None,
        dataset: str,
        files: list[Path],
        current: bool = True,
        checking: bool = False,
        cl: float = 95.0,
    ) -> None:
        self.scan, self.dataset, self.files, self.current = scan, dataset, files, current
        self.checking, self.cl = checking, cl
        self.refresh()

    def render(self):
        if self.scan is None or not self.dataset:
            return Text("No results yet.", style="dim")
        rows = self.scan.of(self.dataset)
        x = [number(r["mass_GeV"]) * 1e3 for r in rows]

        def col(k: str) -> list[float]:
            return [float(r[k]) if isinstance(r.get(k), float) else math.nan for r in rows]

        bands = [
            Band(x, col("eps2_exp_lo2"), col("eps2_exp_hi2"), "#8a7a00", "±2σ expected"),
            Band(x, col("eps2_exp_lo1"), col("eps2_exp_hi1"), "#1f7a1f", "±1σ expected"),
        ]
        lines = [Line(x, col("eps2_exp_med"), "#87cefa", "expected median")]
        if has_observed(self.scan.columns):  # a blinded run: no observed line, not in the legend
            lines.append(Line(x, col("eps2_up"), "bold white", "observed"))
        w, h = self.size.width, self.size.height
        files = _files_text(self.files, self.current, self.checking)
        plot = braille_plot(
            lines,
            bands,
            width=max(20, w),
            height=max(7, h - 2),
            logy=True,
            xlabel="mass (MeV)",
            ylabel=f"ε² upper limit, {self.dataset} ({self.cl:g}% CL)",
        )
        return Group(plot, legend([*lines, *bands]), Text("files: " + files, style="dim"))


def summary_said(run_dir: Path | None, point: str) -> tuple[list[str], str]:
    """What ``gprpipe summary`` says of the point's failed tasks and of its products that
    are not current (its own lines), and why it shows no number of the point's scan.csv
    (observed results, the config blinded: '' when it shows them); of a folder without
    run.json only the latter, from the point's config.toml. A run summary refuses (a point
    config edited by hand, a damaged record) raises its :class:`GprpipeError`: the pane
    shows no number summary would not."""
    if run_dir is None:
        return [], ""
    if not (run_dir / "run.json").is_file():
        # (a copied or half-made folder: its blinded config still holds back the observed
        # results an earlier run left; they were shown, a blinding review)
        pdir = run_dir / point
        try:
            config = point_config_from_file(pdir / "config.toml")
        except (GprpipeError, OSError):
            return [], ""
        return [], observed_withheld(config, csv_header(pdir / "scan.csv"))
    points = run_summary(run_dir, point=point).points
    if not points:
        return [], ""
    lines = [*failure_lines(points[0]), not_current_files_line(points[0])]
    return [x for x in lines if x], points[0].withheld


class PointChecked(Message):
    """The worker's verdict on point ``point_dir`` (check number ``number``): whether its
    scan.csv and figures are current, and summary's lines; or why it cannot be shown."""

    def __init__(
        self,
        number: int,
        point_dir: Path,
        current: tuple[bool, bool],
        said: list[str],
        problem: str = "",
        of_config: bool = True,
        cl: float = 95.0,
    ) -> None:
        super().__init__()
        self.number, self.point_dir, self.current = number, point_dir, current
        self.said, self.problem, self.of_config = said, problem, of_config
        self.cl = cl  # the confidence level of its limits, in percent (1 - limit.alpha)


class ResultsPane(Widget):
    """Point and dataset choice, key numbers, then the scan table or the plot (p). Whether
    the point's results may be shown (blinding, a run summary that refuses) and are current
    (which hashes its data files) is checked in a worker thread; until it answers, no number
    of the point is shown, only "checking…"."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_plot", "Plot/table"),
        Binding("s", "sort", "Sort column"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_dir: Path | None = None  # set by the app: the run whose results are shown
        self.config_masses: list[float] = []  # set by the app: plot.masses of the config
        self.config_points: dict[str, Point] = {}  # set by the app: the config's points
        self.of_config = True  # the point's config.toml is the open config's point
        self.points: list[tuple[str, Path]] = []
        self.scan: Scan | None = None
        self.point_dir: Path | None = None
        self._unchecked: Scan | None = None  # the point's scan.csv, shown once checked
        self._masses_of: tuple[Path | None, tuple[float, ...]] | None = None  # the field's
        self.current: tuple[bool, bool] = (True, True)  # scan.csv, figures (point_currency)
        self.said_by_summary: list[str] = []  # summary's failed-task, not-current lines
        self.cl = 95.0  # the point's confidence level (percent), once checked
        self.checking = False  # the point's currency is being checked (in a thread)
        self._checks = 0  # the number of the latest check (earlier ones' verdicts are dropped)
        self._sort: tuple[str, bool] | None = None
        self._filling = False
        self.problem = ""  # why the point's results are not shown (shown in #res-keys)
        self._said = ""  # the problem last notified

    def compose(self) -> ComposeResult:
        with Horizontal(id="res-bar"):
            yield Label("Point ")
            yield Select([], id="res-point", compact=True, allow_blank=True, prompt="(none)")
            yield Label(" Dataset ")
            yield Select([], id="res-dataset", compact=True, allow_blank=True, prompt="(none)")
            yield Label(" Masses (MeV) ")
            yield StillInput("", id="res-masses", compact=True, placeholder="e.g. 30, 60")
        yield Static("", id="res-keys")
        with ContentSwitcher(initial="res-table", id="res-switch"):
            yield DataTable(id="res-table", cursor_type="cell", zebra_stripes=True)
            yield PlotView(id="res-plot")

    # -------------------------------------------------------------- loading

    def reload(self) -> None:
        run_dir = self.run_dir
        problem = ""
        try:
            self.points = result_points(run_dir) if run_dir is not None else []
        except GprpipeError as exc:  # a damaged run.json: its results are not shown
            self.points, problem = [], str(exc)
        sel = self.query_one("#res-point", Select)
        old = sel.value
        self._filling = True
        try:
            with sel.prevent(Select.Changed):
                sel.set_options([(n, n) for n, _ in self.points])
                names = [n for n, _ in self.points]
                sel.value = old if old in names else (names[0] if names else Select.NULL)
        finally:
            self._filling = False
        self.load_point()
        if problem:
            self.query_one("#res-keys", Static).update(Text(problem, style="bold red"))
        elif not self.points:
            where = show_path(run_dir) if run_dir is not None else "the run directory"
            then = "Start a run in Run (F5)."
            if run_dir is not None and run_holding(run_dir):  # (it said "Start a run")
                then = "A run is going on there: Run (F5) follows it."
            elif run_dir is not None and (run_dir / "run.json").is_file():  # (SLURM jobs too)
                then = "Run (F5) shows where its tasks are (f there reruns those that failed)."
            self.query_one("#res-keys", Static).update(
                Text(
                    f"No finished point in {where} yet (a point is finished when its scan.csv "
                    f"exists). {then}",
                    style="dim",
                )
            )

    def load_point(self) -> None:
        name = self.query_one("#res-point", Select).value
        found = [d for n, d in self.points if n == name]
        self.point_dir = found[0] if found else None
        self.scan = self._unchecked = None
        self.current = (True, True)
        self.said_by_summary = []
        self.problem = ""
        self._checks += 1
        self.checking = False
        if self.point_dir is not None:
            try:
                self._unchecked = read_scan(self.point_dir / "scan.csv")
            except GprpipeError as exc:  # it names the file and what to do
                self.problem = str(exc)
            except OSError as exc:
                where = show_path(self.point_dir / "scan.csv")
                self.problem = f"Cannot read {where}: {exc.strerror or exc}."
        if self._unchecked is not None and self.point_dir is not None:
            self.checking = True
            point = self.config_points.get(str(name))
            self._check(self._checks, self.run_dir, str(name), self.point_dir, point)
        self._tell_problem()
        self._show_scan()

    def _show_scan(self) -> None:
        """The datasets, masses field, table and numbers of :attr:`scan` (none while it is
        checked). The masses field is the config's plot.masses for each run directory and
        config anew; within them it keeps what was typed."""
        ds = self.query_one("#res-dataset", Select)
        datasets = self.scan.datasets() if self.scan else []
        if self.scan is not None or not self.checking:  # (kept while checked: the choice)
            with ds.prevent(Select.Changed):
                old = ds.value
                ds.set_options([(d, d) for d in datasets])
                ds.value = old if old in datasets else (datasets[0] if datasets else Select.NULL)
        masses = self.query_one("#res-masses", Input)
        of = (self.run_dir, tuple(self.config_masses))
        if self.scan is not None and (not masses.value.strip() or of != self._masses_of):
            self._masses_of = of
            wanted = self.config_masses
            dataset = str(ds.value) if ds.value is not Select.NULL else ""
            ms = default_masses(self.scan, dataset, wanted)
            masses.value = ", ".join(f"{m * 1e3:g}" for m in ms)
        self._fill_table()
        self.update_numbers()

    def _tell_problem(self) -> None:
        """Notify the point's problem once, not at every reload: not while the point is
        checked (its empty problem then reset what was said, and each reload or showing
        of the tab said it again; a review)."""
        if self.checking:
            return
        if self.problem and self.problem != self._said:
            self.notify(self.problem, severity="error")
        self._said = self.problem

    @work(thread=True, exclusive=True, group="results-check")
    def _check(
        self,
        number: int,
        run_dir: Path | None,
        point: str,
        point_dir: Path,
        of: Point | None = None,
    ) -> None:
        """Whether the point's scan.csv and figures are current (as summary says it: of
        other settings or inputs, or figures of other results, are not), and summary's
        lines of the point: it hashes the data files, so not on the UI thread. ``of``:
        the open config's point of that name, whose settings the point's config.toml
        should hold (an edited config showed the results of its earlier settings)."""
        from gprpipe.config.loader import read_config_text
        from gprpipe.pipeline.store import same_point_config

        current, problem = (True, True), ""
        said: list[str] = []
        of_config = True
        cl = 95.0
        with contextlib.suppress(GprpipeError, OSError):  # (said by the checks below)
            cl = 100 * (1 - point_config_from_file(point_dir / "config.toml").limit.alpha)
        try:
            current = point_currency(point_dir)
            said, problem = summary_said(run_dir, point)  # (withheld: shown as a problem)
            if of is not None:
                text = read_config_text(point_dir / "config.toml")
                of_config = same_point_config(text, of, same_version=False)
        except GprpipeError as exc:  # it names the file and what to do
            problem = str(exc)
        except OSError as exc:
            problem = f"Cannot read {show_path(point_dir)}: {exc.strerror or exc}."
        except Exception as exc:  # the pane shows no number until it answers: it must
            problem = f"{show_path(point_dir)}: could not be checked ({type(exc).__name__}: {exc})."
        self.post_message(PointChecked(number, point_dir, current, said, problem, of_config, cl))

    @on(PointChecked)
    def _checked(self, event: PointChecked) -> None:
        if event.number != self._checks or event.point_dir != self.point_dir:
            return  # a later load of the pane asked again
        self.checking = False
        self.current, self.said_by_summary = event.current, event.said
        self.of_config = event.of_config
        self.cl = event.cl
        self.problem = event.problem
        self._tell_problem()
        if not event.problem:
            self.scan = self._unchecked
        self._show_scan()

    def _fill_table(self) -> None:
        table = self.query_one("#res-table", DataTable)
        table.clear(columns=True)
        if self.scan is None:
            return
        columns = self.shown_columns()
        cells = [[fmt(r.get(c, "")) for c in columns] for r in self.scan.rows]
        for k, c in enumerate(columns):  # widths fixed here: correct even if
            width = max([len(c), *(len(row[k]) for row in cells)])  # filled while hidden
            table.add_column(c, key=c, width=width + 2)  # room for the sort arrow
        # dataset and mass stay visible when scrolling right
        table.fixed_columns = sum(c in FIXED for c in columns[: len(FIXED)])
        for row in cells:
            table.add_row(*row)
        if self._sort and self._sort[0] in columns:
            table.sort(self._sort[0], key=_sort_key(self._sort[1]), reverse=self._sort[1])
        self._show_sort()

    def shown_columns(self) -> list[str]:
        """The scan's columns that some row has a value in (e.g. no ``A_up_err`` column of
        NaN for asymptotic limits, no ``_toys`` columns without whole-scan toys)."""
        if self.scan is None:
            return []
        return [
            c
            for c in self.scan.columns
            if c in FIXED or any(fmt(r.get(c, "")) not in ("", "nan") for r in self.scan.rows)
        ]

    def _show_sort(self) -> None:
        """Mark the sort column's header with its direction (▲ ascending, ▼ descending)."""
        table = self.query_one("#res-table", DataTable)
        for key, col in table.columns.items():
            name = str(key.value)
            arrow = ""
            if self._sort and self._sort[0] == name:
                arrow = " ▼" if self._sort[1] else " ▲"
            col.label = Text(name + arrow)
        table._clear_caches()  # the header row is cached by textual's DataTable
        table.refresh()

    def masses(self) -> list[float]:
        """The masses field in GeV (entries that are no mass are left out)."""
        return field_masses(self.query_one("#res-masses", Input).value)[0]

    def update_numbers(self) -> None:
        keys = self.query_one("#res-keys", Static)
        plot = self.query_one("#res-plot", PlotView)
        ds = self.query_one("#res-dataset", Select).value
        dataset = str(ds) if ds is not Select.NULL else ""
        if self.scan is None:
            if self.problem:
                keys.update(Text(self.problem, style="bold red"))
            elif self.checking:
                where = show_path(self.point_dir)
                keys.update(Text(f"{where}: checking whether its results may be shown…", "dim"))
            else:
                keys.update("")
            plot.show(None, "", [])
            return
        k = key_numbers(self.scan, self.masses(), dataset or None)
        blinded = not has_observed(self.scan.columns)  # a blinded run: expected limits only
        t = Text()
        t.append(f"{show_path(self.point_dir)}", style="dim")
        t.append(f"  {len(self.scan.rows)} rows", style="dim")
        shown = set(self.shown_columns())
        empty = [c for c in self.scan.columns if c not in shown]
        if empty:
            t.append(
                f"; {len(empty)} columns without values hidden (scan.csv has them)", style="dim"
            )
        t.append("\n")
        for line in self.said_by_summary:  # failed tasks, products not current
            head, _, rest = line.partition(":")
            t.append(head, style="" if line.startswith(" ") else "bold red")
            t.append(f":{rest}\n")
        if not self.of_config and self.point_dir is not None:
            t.append("NOT OF THIS CONFIG", style="bold red")
            t.append(
                f": made with the settings in {show_path(self.point_dir / 'config.toml')}, "
                "which the config open here no longer holds; run it (ctrl+r) to recompute\n"
            )
        if not self.current[0]:
            t.append("NOT CURRENT", style="bold red")
            going_on = self.run_dir is not None and bool(run_holding(self.run_dir))
            t.append(
                ": scan.csv was made with other settings or inputs than the point's config "
                + (
                    "(the run going on recomputes it: Run, F5, follows it)\n"
                    if going_on
                    else "(a later run left its step out, or the data changed); run the point "
                    "again\n"
                )
            )
        if blinded:
            t.append("BLINDED", style="bold red")
            t.append(": no significance and no observed limit (expected limits only)\n")
            t.append("ε² limits exp: ")
            limits = [limit_text(m, None, exp, st) for _, m, _, exp, st in k.limits]
        elif math.isnan(k.best_z):
            t.append("no ok row: every mass is flagged or failed (see the status column)\n")
            t.append("ε² limits obs/exp: ")
            limits = [limit_text(m, obs, exp, st) for _, m, obs, exp, st in k.limits]
        else:
            t.append("best local Z ")
            t.append(f"{k.best_z:.2f}", style="bold")
            t.append(f" ({k.best_dataset}, {k.best_mass * 1e3:g} MeV)   global Z (Sidak) ")
            t.append(f"{k.global_z:.2f}", style="bold")
            t.append(f" (p = {k.global_p:.3g})")
            if k.global_z_toys:
                t.append("   global Z (whole-scan toys) ")
                t.append(k.global_z_toys, style="bold")
            if k.local_p_toys and not math.isnan(k.local_p):
                t.append(f"\nlocal p0 there {k.local_p:.3g}, toys at that mass {k.local_p_toys}")
            t.append("\n")
            t.append("ε² limits obs/exp: ")
            limits = [limit_text(m, obs, exp, st) for _, m, obs, exp, st in k.limits]
        t.append("   ".join(limits) or "(give masses above)")
        if k.outside:
            far = ", ".join(f"{m * 1e3:g}" for m in k.outside)
            t.append(f"   (no limit at {far} MeV: outside the scanned masses)", style="dim")
        keys.update(t)
        figures = self.current[1] and not self.checking
        drawn = plot_files(self.point_dir, dataset) if self.point_dir and figures else []
        plot.show(self.scan, dataset, drawn, self.current[1], self.checking, self.cl)

    # -------------------------------------------------------------- events and actions

    @on(Select.Changed, "#res-point")
    def _point(self) -> None:
        if not self._filling:
            self.load_point()

    @on(Select.Changed, "#res-dataset")
    def _dataset(self) -> None:
        ds = self.query_one("#res-dataset", Select)
        datasets = self.scan.datasets() if self.scan else []
        if ds.value is Select.NULL and datasets:
            # the blank choice listed every dataset's limits unlabelled (a review): one
            # dataset is always chosen while there are any
            ds.value = datasets[0]
            return
        self.update_numbers()

    @on(Input.Submitted, "#res-masses")
    def _masses(self) -> None:
        problems = field_masses(self.query_one("#res-masses", Input).value)[1]
        if problems:
            self.notify("; ".join(problems) + ".", severity="warning")
        self.update_numbers()

    @on(DataTable.HeaderSelected, "#res-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def sort_by(self, column: str) -> None:
        reverse = bool(self._sort and self._sort[0] == column and not self._sort[1])
        self._sort = (column, reverse)
        table = self.query_one("#res-table", DataTable)
        table.sort(column, key=_sort_key(reverse), reverse=reverse)
        self._show_sort()
        self.notify(f"Sorted by {column} ({'descending' if reverse else 'ascending'}).", timeout=2)

    def action_sort(self) -> None:
        table = self.query_one("#res-table", DataTable)
        if not table.columns:
            return
        col = list(table.columns)[table.cursor_column]
        self.sort_by(str(col.value))

    def action_toggle_plot(self) -> None:
        sw = self.query_one("#res-switch", ContentSwitcher)
        sw.current = "res-plot" if sw.current == "res-table" else "res-table"
        self.focus_main()  # the hidden one had the focus

    def action_reload(self) -> None:
        self.reload()

    def focus_main(self) -> None:
        self.query_one(f"#{self.query_one('#res-switch', ContentSwitcher).current}").focus()
