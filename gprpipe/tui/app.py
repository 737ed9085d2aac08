"""The gprpipe textual app: browse configs, edit one with live validation (text or form),
preview its grid, launch and watch the run, browse its results.

``GprpipeApp(config)`` opens ``config`` in the editor (a folder: browse it); F1-F6 switch
between Browse, Edit, Form, Grid, Run and Results; ctrl+s saves, ctrl+o saves as,
ctrl+r starts the run, ctrl+p opens the command palette, ctrl+q quits.

The app owns the state (the edited file, its text, the latest validation) and hands it
down to the panes as attributes (``show_check``, the Results pane's ``run_dir``); the
panes post messages up (:mod:`gprpipe.tui.messages`). Validation runs in a worker thread
(:meth:`GprpipeApp.run_check`), never on the UI thread. Styles: ``app.tcss``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea, Tree

from gprpipe.config.loader import read_config_text, shipped_dir
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_path
from gprpipe.pipeline import service
from gprpipe.tui.browse import BrowsePane
from gprpipe.tui.editor import EditorPane, FormPane, replace_text
from gprpipe.tui.grid import GridPane
from gprpipe.tui.messages import EditText, NewFromTemplate, OpenConfig, RunEnded, StartRun
from gprpipe.tui.model import (
    Check,
    check_text,
    child_config_text,
    default_folders,
    show_path,
    unique_path,
)
from gprpipe.tui.results import ResultsPane
from gprpipe.tui.run import RunPane
from gprpipe.tui.tomledit import TomlEditError, literal, parses, set_key
from gprpipe.tui.widgets import ConfirmDialog, PathDialog

T = TypeVar("T")

TABS = (
    ("browse", "Browse", "f1"),
    ("edit", "Edit", "f2"),
    ("form", "Form", "f3"),
    ("grid", "Grid", "f4"),
    ("run", "Run", "f5"),
    ("results", "Results", "f6"),
)


class GprpipeApp(App[None]):
    """gprpipe's TUI (see the module docstring)."""

    TITLE = "gprpipe"
    CSS_PATH = "app.tcss"  # packaged beside this module (pyproject package-data)
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"show_tab('{tab}')", label, show=False, priority=True)
            for tab, label, key in TABS
        ),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+o", "save_as", "Save as", priority=True),
        Binding("ctrl+r", "launch", "Run", priority=True),
    ]

    def __init__(
        self,
        config: Path | str | None = None,
        *,
        overrides: Sequence[str] = (),
        folders: Sequence[Path | str] = (),
        check_delay: float = 0.3,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__()
        target = Path(config).expanduser() if config is not None else None
        # a run directory: open its results (and its config when it still exists)
        self.results_dir: Path | None = None
        recorded: tuple[str, ...] = ()
        self._open_notice = ""
        point_of_run = (
            target is not None
            and (target / "config.toml").is_file()
            and not (target / "run.json").is_file()
            and (target.resolve().parent / "run.json").is_file()
        )
        if point_of_run:  # (it opened nothing: the folder a physicist has the plots of)
            assert target is not None
            given = target
            target = target.resolve().parent
            point_notice = f"{given} is a point folder: its run folder {target} is open."
        else:
            point_notice = ""
        if target is not None and (target / "run.json").is_file():
            self.results_dir = target.resolve()
            target, recorded = service.config_of_run(self.results_dir)
            recorded, self._open_notice = self._usable(target, recorded, tuple(overrides))
        self._open_notice = " ".join(filter(None, (point_notice, self._open_notice)))
        self.overrides: tuple[str, ...] = (*recorded, *overrides)
        self._given = tuple(overrides)  # from the command line: they outlive the run folder
        self._run_config = target if self.results_dir is not None else None
        self.path: Path | None = target if target is not None and not target.is_dir() else None
        self.saved_text: str | None = None
        self.check: Check | None = None
        self.check_delay = check_delay
        self.poll_interval = poll_interval
        extra = [Path(f).expanduser() for f in folders]
        self.folders = default_folders(target) + [f.resolve() for f in extra if f.is_dir()]
        self.folders = list(dict.fromkeys(self.folders))
        self._check_timer: Timer | None = None
        self._stale: set[str] = set()
        self._checking = False  # a validation is running (its result is not shown yet)
        self._check_running: tuple[str, Path, tuple[str, ...]] | None = None
        self._check_next: tuple[str, Path, tuple[str, ...]] | None = None  # the latest asked
        self._launch_when_checked = False
        self._results_when_checked = False

    @staticmethod
    def _usable(
        config: Path | None, recorded: tuple[str, ...], given: tuple[str, ...]
    ) -> tuple[tuple[str, ...], str]:
        """``recorded`` when the config still takes them; else (the config was edited
        since, e.g. a dataset renamed) only its run directory and blinding, and a notice."""
        from gprpipe.config import load_points

        if config is None:
            return recorded, ""
        essential = tuple(
            o for o in recorded if o.partition("=")[0] in ("base.output", "base.blind")
        )
        if essential == recorded:
            return recorded, ""
        try:
            load_points(config, [*recorded, *given])
        except GprpipeError:
            try:
                load_points(config, [*essential, *given])
            except GprpipeError:
                return recorded, ""  # the config itself is at fault: the editor says why
            dropped = [o for o in recorded if o not in essential]
            return essential, (
                f"The run's --set values {', '.join(dropped)} no longer fit {config.name}; "
                "opened without them."
            )
        return recorded, ""

    # -------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        initial = (
            "results"
            if self.results_dir is not None
            else "edit"
            if self.path is not None
            else "browse"
        )
        with TabbedContent(id="tabs", initial=initial):
            for tab, label, key in TABS:
                with TabPane(f"{label} {key.upper()}", id=tab):
                    if tab == "browse":
                        # a preview checks a file as `gprpipe validate FILE` does: with the
                        # --set values given, not a run folder's (its run directory, steps)
                        yield BrowsePane(self.folders, overrides=self._given, id="browse-pane")
                    elif tab == "edit":
                        yield EditorPane(id="edit-pane")
                    elif tab == "form":
                        yield FormPane(id="form-pane")
                    elif tab == "grid":
                        yield GridPane(id="grid-pane")
                    elif tab == "run":
                        yield RunPane(poll_interval=self.poll_interval, id="run-pane")
                    else:
                        yield ResultsPane(id="results-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunPane).results_dir = self.results_dir
        if self._open_notice:
            self.notify(self._open_notice, severity="warning", timeout=10)
        if self.results_dir is not None:
            self.update_status()
            if self.path is not None:  # results after the config's check (its plot masses)
                self._results_when_checked = True
                self._load(self.path)
            if not self._checking:  # no config, or it could not be read
                self._results_when_checked = False
                self.call_after_refresh(self._show_results)
        elif self.path is not None:
            self._load(self.path)
            self.call_after_refresh(self.editor.focus)
        else:
            self.update_status()
            self.call_after_refresh(lambda: self.query_one("#browse-tree", Tree).focus())

    @property
    def editor(self) -> TextArea:
        return self.query_one("#editor", TextArea)

    @property
    def modified(self) -> bool:
        if self.path is None:  # text typed with no config open: ctrl+s names its file
            return bool(self.editor.text.strip())
        return self.saved_text is None or self.editor.text != self.saved_text

    def _edited(self) -> str:
        """What the editor holds, for a question: the file, or the text typed with none."""
        return show_path(self.path) if self.path is not None else "the text typed (no file)"

    # -------------------------------------------------------------- the edited config

    def _load(self, path: Path, text: str | None = None, saved: bool = True) -> None:
        if text is None and not path.exists():
            text, saved = "", False
            self.notify(f"{show_path(path)} does not exist yet: ctrl+s creates it.")
        if text is None:
            try:
                text = read_config_text(path)
            except GprpipeError as exc:
                self.notify(str(exc), severity="error")
                if self.path == path and self.saved_text is None:  # nothing was loaded:
                    self.path = None  # ctrl+s must not write the empty editor over it
                    self.update_status()
                return
        if self.results_dir is not None and not _same(path, self._run_config):
            self._leave_run_folder(path)
        self.path = path
        self.saved_text = text if saved else None
        self.editor.load_text(text)
        self.run_check()
        self.query_one(BrowsePane).select_path(path)

    def _leave_run_folder(self, path: Path) -> None:
        """Another config than the opened run folder's: the run's ``--set`` values (its
        masses, steps, run directory) are not this config's, and the tabs follow the new
        config's own run directory."""
        self.notify(
            f"{show_path(path)} is not the config of {show_path(self.results_dir)}: the "
            "run's --set values no longer apply.",
            timeout=8,
        )
        self.results_dir = self._run_config = None
        self.overrides = self._given
        self.query_one(RunPane).results_dir = None

    @on(OpenConfig)
    def _open_config(self, message: OpenConfig) -> None:
        self.open_config(message.path)

    @on(NewFromTemplate)
    def _new_from_template(self, message: NewFromTemplate) -> None:
        self.new_from_template(message.template)

    @on(EditText)
    def _edit_text(self, message: EditText) -> None:
        self.edit_text(message.change)

    def open_config(self, path: Path) -> None:
        """Open ``path`` in the editor (asking first if there are unsaved changes)."""

        def go(ok: bool | None = True) -> None:
            if ok:
                self._load(path)
                self.action_show_tab("edit")

        if self.modified:  # (also when it is the file shown: reopening reads the disk)
            self.push_screen(
                ConfirmDialog(
                    f"Discard the unsaved changes to {self._edited()}?", "Discard", "Keep"
                ),
                go,
            )
        else:
            go()

    def new_from_template(self, template: Path) -> None:
        """A new, unsaved config inheriting ``template``."""
        folder = Path.cwd() / "user_configs"
        folder = folder if folder.is_dir() else Path.cwd()
        target = unique_path(folder, f"my_{template.stem}")

        def go(ok: bool | None = True) -> None:
            if ok:
                self._load(target, child_config_text(template, target), saved=False)
                self.action_show_tab("edit")
                self.notify(f"New config inheriting {template.name}: save it with ctrl+s.")

        if self.modified:
            self.push_screen(
                ConfirmDialog(
                    f"Discard the unsaved changes to {self._edited()}?", "Discard", "Keep"
                ),
                go,
            )
        else:
            go()

    def edit_text(self, change: Callable[[str], str]) -> bool:
        """Apply a text transformation to the edited config (one undoable edit). Refused,
        with a notice, when it cannot be made safely or would leave text that is not TOML
        (the Form, the Grid and Save as edit valid TOML only); True when made."""
        if self.path is None:
            self.notify("Open a config first (Browse, F1).", severity="warning")
            return False
        old = self.editor.text
        try:
            new = change(old)
        except TomlEditError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return False
        if not parses(new):
            self.notify(
                "The edit was not made: "
                + (
                    "it would make the config text invalid TOML; edit it in the text."
                    if parses(old)
                    else "the config text is not valid TOML; fix it in the text (Edit, F2) first."
                ),
                severity="error",
                timeout=10,
            )
            return False
        replace_text(self.editor, new)
        self.run_check()
        return True

    @on(TextArea.Changed, "#editor")
    def _text_changed(self) -> None:
        self.update_status()
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(self.check_delay, self.run_check)

    def run_check(self) -> None:
        """Validate the editor's text now (in a worker thread); the result is shown
        everywhere when it arrives (of the latest text: see :meth:`_validate`)."""
        if self._check_timer is not None:
            self._check_timer.stop()
            self._check_timer = None
        if self.path is None or not self.query("#editor"):  # (the app is closing)
            return
        self._checking = True
        wanted = (self.editor.text, self.path, self.overrides)
        if wanted == self._check_running and self._check_next is None:
            return  # that very check is running (the load's and its first edit event's)
        self._check_next = wanted
        if self._check_running is None:
            self._validate()

    @work(group="check")
    async def _validate(self) -> None:
        """One check at a time, of the latest text (a check cannot be stopped once it
        runs: a newer one waits for it, and the checks typed meanwhile are one); in a
        daemon thread, so that quitting never waits for it."""
        while self._check_next is not None:
            self._check_running, self._check_next = self._check_next, None
            text, path, overrides = self._check_running
            try:
                check = await in_daemon_thread(check_text, text, path, overrides)
            finally:
                self._check_running = None
            if self._check_next is None:
                self._show_check(check)
        if self._check_running is None and self._check_next is None:
            self._checking = False

    def _show_check(self, check: Check) -> None:
        self._checking = self._check_next is not None  # (False: this one is the latest)
        self.check = check
        self.query_one(RunPane).set_check(check)  # (the UI updates when shown)
        self._stale = {"edit", "form", "grid", "run"}
        self._refresh_pane(self.query_one("#tabs", TabbedContent).active)
        self.update_status()
        if self._results_when_checked:
            self._results_when_checked = False
            self._show_results()
        if self._launch_when_checked:
            self._launch_when_checked = False
            self.action_launch()

    def _show_results(self) -> None:
        self._reload_results()
        self.query_one(ResultsPane).focus_main()

    def _refresh_pane(self, tab: str) -> None:
        """Show the latest check in a pane (hidden panes are refreshed when shown)."""
        if tab not in self._stale or self.check is None:
            return
        self._stale.discard(tab)
        panes: dict[str, type[EditorPane] | type[FormPane] | type[GridPane] | type[RunPane]] = {
            "edit": EditorPane,
            "form": FormPane,
            "grid": GridPane,
            "run": RunPane,
        }
        self.query_one(panes[tab]).show_check(self.check)

    def update_status(self) -> None:
        s = Text()
        if self.path is None:
            s.append(
                "no config open: pick one in Browse (Enter opens, n: new from template)",
                style="dim",
            )
        else:
            s.append(show_path(self.path), style="bold")
            if self.modified:
                s.append(" [modified]", style="yellow")
            check = self.check
            if check is not None:
                s.append("  ")
                s.append(check.summary(), style=check.style)
                if check.steps:
                    s.append("  " + "→".join(check.steps))
        self.query_one("#status", Static).update(s)

    # -------------------------------------------------------------- actions

    def action_show_tab(self, tab: str) -> None:
        # the focus leaves the pane shown before: as that pane hides, textual would move
        # it to a sibling there (the Run log after the task table), and TabbedContent then
        # shows the pane of the focused widget again, hiding the new one and its focus
        self.screen.set_focus(None)
        self.query_one("#tabs", TabbedContent).active = tab
        self._focus_tab(tab)

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or ""
        self._refresh_pane(tab)
        run = self.query_one(RunPane)
        run.shown = tab == "run"
        if tab == "run":
            run.poll()
        elif tab == "results":
            self._reload_results()

    def _reload_results(self) -> None:
        """Give the Results pane its run directory and the config's masses, and reload."""
        results = self.query_one(ResultsPane)
        results.run_dir = self.current_run_dir()
        check = self.check
        results.config_masses = (
            list(check.points[0].config.plot.masses) if check is not None and check.points else []
        )
        results.config_points = {p.name: p for p in check.points} if check is not None else {}
        results.reload()

    def _focus_tab(self, tab: str) -> None:
        if tab != "form":  # the form, built later, no longer takes the focus
            self.query_one(FormPane).focus_when_built = False

        def focus() -> None:
            if tab == "browse":
                self.query_one("#browse-tree", Tree).focus()
            elif tab == "edit":
                self.editor.focus()
            elif tab == "form":
                # its fields may not be built yet: the first takes the focus once it is,
                # and meanwhile the focus must leave the pane it was in (whose tab would be
                # shown again)
                form = self.query_one(FormPane)
                w = form.first_field()
                if w is None:
                    form.focus_when_built = True
                (w if w is not None else self.query_one("#form-body")).focus()
            elif tab == "grid":
                self.query_one("#grid-points").focus()
            elif tab == "run":
                self.query_one(RunPane).focus_main()
            elif tab == "results":
                self.query_one(ResultsPane).focus_main()

        self.call_after_refresh(focus)

    def apply_pending(self) -> bool:
        """Apply a value typed into a Form or Grid field and not applied yet (on Enter or
        on leaving the field): a save, a launch or a quit acts on it, not on the value
        before. False (the action stops) when it is refused: the notice says why."""
        for pane in (self.query_one(FormPane), self.query_one(GridPane)):
            ok, change = pane.pending_edit()
            if not ok or (change is not None and not self.edit_text(change)):
                return False
        return True

    def action_save(self) -> None:
        if not self.apply_pending() or (self.path is not None and self._refuse_shipped(self.path)):
            return
        if self.path is None or (self.saved_text is None and not self.path.exists()):
            self.action_save_as()
            return
        target = self.path
        try:
            on_disk: str | None = read_config_text(target) if target.exists() else None
        except (GprpipeError, OSError, UnicodeDecodeError):
            on_disk = ""  # unreadable now: not what was opened
        if on_disk is not None and on_disk != self.saved_text:  # changed or made meanwhile

            def overwrite(ok: bool | None) -> None:
                if ok:
                    self._write(target)

            self.push_screen(
                ConfirmDialog(
                    f"{show_path(target)} changed on disk since it was opened or saved "
                    "(another editor, another session). Overwrite it with this text?",
                    "Overwrite",
                    "Cancel",
                ),
                overwrite,
            )
            return
        self._write(target)

    def action_save_as(self) -> None:
        if not self.apply_pending():
            return
        if self.path is None and not self.modified:
            self.notify("Nothing to save: open a config first.", severity="warning")
            return

        def chosen(value: str | None) -> None:
            if not value:
                return
            target = Path(value).expanduser()
            if target.suffix != ".toml":
                target = target.with_name(target.name + ".toml")  # v1.2 -> v1.2.toml
            if self._refuse_shipped(target):  # (before any question about it)
                return
            if target.exists() and (self.path is None or target.resolve() != self.path.resolve()):

                def overwrite(ok: bool | None) -> None:
                    if ok:
                        self._check_output_then_write(target)

                self.push_screen(
                    ConfirmDialog(
                        f"{show_path(target)} exists: overwrite it?", "Overwrite", "Cancel"
                    ),
                    overwrite,
                )
            else:
                self._check_output_then_write(target)

        self.push_screen(
            PathDialog(
                "Save the config as (relative to the current folder):",
                show_path(self.path) if self.path is not None else "my_config.toml",
            ),
            chosen,
        )

    @work(exclusive=True, group="save")
    async def _check_output_then_write(self, target: Path) -> None:
        """Save as: a copy that keeps the original's run directory would overwrite the
        original's results, so offer to name it after the new file first (the configs are
        validated in a worker thread)."""
        text, stem = self.editor.text, target.stem
        same = await asyncio.to_thread(self._shared_output, target, text, self.path)
        if same is None:
            self._write(target)
            return
        try:
            renamed: str | None = set_key(text, ["base", "name"], literal(stem))
        except TomlEditError:
            renamed = None  # Rename says why, and writes nothing
        # still the same run directory after the rename: base.output is set directly
        keeps = (
            renamed is not None
            and await asyncio.to_thread(self._output_of, renamed, target) == same
        )

        def rename_in(text: str) -> str:
            text = set_key(text, ["base", "name"], literal(stem))
            if keeps:
                text = set_key(text, ["base", "output"], literal("runs/{{ base.name }}"))
            return text

        def answer(rename: bool | None) -> None:
            if rename and not self.edit_text(rename_in):
                return  # refused (the notice says why): not saved
            self._write(target)

        self.push_screen(
            ConfirmDialog(
                f"{show_path(target)} would write its results into {show_path(same)}, the run "
                f"directory of {show_path(self.path)}, and overwrite them. Set base.name = "
                f"{stem!r} (results in their own folder)?",
                "Rename",
                "Keep",
            ),
            answer,
        )

    def _overrides_of(self, path: Path) -> tuple[str, ...]:
        """The ``--set`` values a config at ``path`` runs with: an opened run folder's
        apply to its own config only (another file leaves the folder, as on opening)."""
        if self.results_dir is not None and not _same(path, self._run_config):
            return self._given
        return self.overrides

    def _output_of(
        self, text: str, path: Path, overrides: tuple[str, ...] | None = None
    ) -> Path | None:
        given = self._overrides_of(path) if overrides is None else overrides
        check = check_text(text, path, given)
        return check.run_dir.resolve() if check.run_dir is not None else None

    def _shared_output(self, target: Path, text: str, path: Path | None) -> Path | None:
        """The run directory that ``target`` (holding ``text``) shares with the saved
        original config at ``path`` (the opened run folder, or the original's own run
        directory), if any."""
        if path is None or not path.is_file():
            return None
        if target.resolve() == path.resolve():
            return None
        try:
            text_of = read_config_text(path)
            original = {
                self._output_of(text_of, path),
                self._output_of(text_of, path, self._given),
                self.results_dir,
            }
        except GprpipeError:
            return None
        new = self._output_of(text, target)
        return new if new is not None and new in original else None

    def _refuse_shipped(self, target: Path) -> bool:
        """Whether ``target`` is a shipped template or card (said in a notice): a save
        there would change every config that inherits it by name."""
        real = Path(os.path.realpath(target))
        shipped = [shipped_dir(kind).resolve() for kind in ("templates", "cards")]
        if not any(folder in real.parents for folder in shipped):
            return False
        self.notify(
            f"{show_path(target)} is shipped with gprpipe, and every config that inherits "
            "it by name reads it: save the changes as a config of your own (Save as, "
            "ctrl+o, to another file), or start one from it (Browse, F1: n).",
            severity="error",
            timeout=10,
        )
        return True

    def _write(self, target: Path) -> None:
        """Save the editor's text to ``target`` atomically: a failed write (disk full, a
        file size limit) leaves the file as it was. A link is written through, and the
        file keeps its permissions."""
        text = self.editor.text
        real = Path(os.path.realpath(target))
        if self._refuse_shipped(target):
            return
        try:
            mode = stat.S_IMODE(real.stat().st_mode) if real.is_file() else None
            if mode is not None and not os.access(real, os.W_OK):  # a rename would not ask
                raise PermissionError(errno.EACCES, "Permission denied")
            with atomic_path(real) as tmp:
                tmp.write_text(text, encoding="utf-8")  # (as configs are read)
                if mode is not None:
                    tmp.chmod(mode)
        except OSError as exc:
            self.notify(f"Cannot save {show_path(target)}: {exc.strerror}", severity="error")
            return
        moved = self.path is None or target.resolve() != self.path.resolve()
        if self.results_dir is not None and not _same(target, self._run_config):
            self._leave_run_folder(target)  # a copy: the run folder's --set values are not its
        self.path, self.saved_text = target, text
        self.notify(f"Saved {show_path(target)}.")
        browse = self.query_one(BrowsePane)
        if moved and target.resolve().parent not in browse.folders:
            browse.folders.append(target.resolve().parent)
        browse.refresh_tree()
        browse.select_path(target)
        self.run_check()

    async def action_quit(self) -> None:
        """Quit; ask first when the edited config has unsaved changes (they would be
        lost) or a run started here is still going (it keeps running)."""
        if not self.apply_pending():
            return
        launch = self.query_one(RunPane).launch
        worries = []
        if self.modified:
            what = show_path(self.path) if self.path is not None else "The text typed (no file)"
            worries.append(f"{what} has unsaved changes, which are lost.")
        if launch is not None and launch.running:
            worries.append(
                "A run started here is still going; it keeps running in the background "
                "(watch it with gprpipe status)."
            )
        if not worries:
            self.exit()
            return
        self.push_screen(
            ConfirmDialog(" ".join([*worries, "Quit anyway?"]), "Quit", "Stay"),
            lambda ok: self.exit() if ok else None,
        )

    def action_launch(self) -> None:
        if not self.apply_pending():  # (applied: modified, so the launch asks for a save)
            return
        if self._checking or self._check_timer is not None:  # launch on the latest check
            self._launch_when_checked = True
            if self._check_timer is not None:
                self.run_check()
            return
        self._refresh_pane("run")
        run, check = self.query_one(RunPane), self.check
        if run.busy:
            self.notify("A run is already going: cancel it first (x).", severity="warning")
        elif not self.editor.text.strip():
            gone = [f for f in (self.path, self._run_config) if f is not None and not f.exists()]
            self.notify(
                "There is no config to run: the editor is empty"
                + (f" ({show_path(gone[0])} does not exist)" if gone else "")
                + "; open one (Browse, F1) or start one from a template.",
                severity="warning",
            )
        elif check is None or not check.ok:
            self.notify("The config has errors: fix them first (Edit, F2).", severity="error")
        elif check.warnings:  # the run would fail on it at once
            self.notify(f"{check.warnings[0].message} Fix it first.", severity="error")
        elif self.path is None or self.modified:
            self.notify(
                "Save the config first (ctrl+s): the run reads the file.", severity="warning"
            )
        elif (changed := self._changed_on_disk()) is not None:
            self.notify(changed, severity="error", timeout=8)
        elif run.start(self.path, self.overrides, self._folder_points(check)):
            self.action_show_tab("run")

    def _folder_points(self, check: Check) -> str | None:
        """Opened as a run folder whose run (``--points``) holds some of the config's grid
        points: those points, so that a launch runs what the folder holds (it ran every
        point of the config); None for all."""
        from gprpipe.pipeline.store import load_run_info

        if self.results_dir is None or not _same(self.path, self._run_config):
            return None
        try:
            info = load_run_info(self.results_dir)
        except GprpipeError:
            return None
        command = [str(w) for w in info.data.get("command") or []]
        if not any(w == "--points" or w.startswith("--points=") for w in command):
            return None  # (a grid point added to the config since was left out: a review)
        names = [str(g.get("name")) for g in (info.data.get("grid") or []) if g.get("name")]
        known = {p.name for p in check.points}
        held = [n for n in names if n in known]
        return ",".join(held) if held and len(held) < len(check.points) else None

    def _changed_on_disk(self) -> str | None:
        """Why the saved config file is not the text shown (changed or removed since it
        was opened or saved: the run reads the file), or None."""
        assert self.path is not None
        try:  # as it was read when opened (a byte-order mark dropped)
            on_disk: str | None = read_config_text(self.path)
        except (GprpipeError, OSError, UnicodeDecodeError):
            on_disk = None
        if on_disk == self.saved_text:
            return None
        what = "changed on disk" if on_disk is not None else "is gone or unreadable"
        return (
            f"{self.path} {what} since it was opened or saved: the run would not read the "
            "text shown here. Save this text (ctrl+s) to run it, or open the file again."
        )

    @on(StartRun)
    def _start_run(self) -> None:
        self.action_launch()

    def current_run_dir(self) -> Path | None:
        if self.results_dir is not None:  # opened as ``gprpipe tui RUN_DIR``
            return self.results_dir
        return self.query_one(RunPane).run_dir()

    @on(RunEnded)
    def _run_ended(self) -> None:
        """A run launched in the Run pane ended: Results reloads (now, when it is shown)."""
        if self.query_one("#tabs", TabbedContent).active == "results":
            self._reload_results()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for tab, label, key in TABS:
            yield SystemCommand(
                f"Show {label}",
                f"Switch to the {label} tab ({key.upper()})",
                lambda t=tab: self.action_show_tab(t),
            )
        yield SystemCommand("Save", "Save the config (ctrl+s)", self.action_save)
        yield SystemCommand(
            "Save as", "Save the config under another name (ctrl+o)", self.action_save_as
        )
        yield SystemCommand(
            "New config from the highlighted template",
            "A new config inheriting the file highlighted in Browse",
            self.query_one(BrowsePane).action_new,
        )
        yield SystemCommand(
            "Start run", "Run the saved config in the background (ctrl+r)", self.action_launch
        )
        yield SystemCommand(
            "Cancel run",
            "Stop the running run (local) or scancel (SLURM)",
            lambda: self.query_one(RunPane).cancel(),
        )
        yield SystemCommand(
            "Rerun failed tasks",
            "Rerun the failed tasks and what follows them (f)",
            lambda: self.query_one(RunPane).rerun_failed(),
        )
        yield SystemCommand(
            "Toggle results plot/table",
            "Results: plot or scan table",
            lambda: self.query_one(ResultsPane).action_toggle_plot(),
        )


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread: unlike ``asyncio.to_thread`` (the loop's executor,
    joined at exit), one still running when the app quits does not hold the process."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def target() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:  # handed to the awaiting task
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits it
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, daemon=True, name="gprpipe-check").start()
    return await done


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - manual use
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    GprpipeApp(args[0] if args else None).run()


def _same(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()
