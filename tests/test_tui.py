"""Behaviour tests of the textual TUI (App.run_test + Pilot), on the shipped quickstart."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import math
import time
from pathlib import Path

import pytest
from conftest import DEMO_ROOT, require_slurm
from rich.console import Console
from textual.widgets import DataTable, Input, OptionList, Select, Static, TextArea

from gprpipe.pipeline import service
from gprpipe.pipeline.store import load_run_info, task_states, tasks_of_run
from gprpipe.tui.app import GprpipeApp
from gprpipe.tui.model import check_text
from gprpipe.tui.results import ResultsPane
from gprpipe.tui.run import RunPane
from gprpipe.tui.textplot import Band, Line, braille_plot
from gprpipe.tui.tomledit import TomlEditError, remove_key, set_key
from gprpipe.tui.widgets import ConfirmDialog

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "user_configs" / "quickstart.toml"
SIZE = (100, 30)


def sync(fn):
    """Run an async test with asyncio.run (no pytest asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def _app(tmp_path: Path, config: Path = QUICKSTART, *sets: str, **kw) -> GprpipeApp:
    return GprpipeApp(
        config,
        overrides=[f"base.output={tmp_path / 'run'}", *sets],
        check_delay=0.05,
        poll_interval=0.2,
        **kw,
    )


#: Worker groups of the app that validate configs (in threads) or save after validating.
VALIDATING = ("check", "preview", "save")


async def _validated(pilot, timeout: float = 60.0) -> None:
    """Wait until no validation worker of the app is pending or running."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not [w for w in pilot.app.workers if w.group in VALIDATING and not w.is_finished]:
            return
        await pilot.pause(0.02)


async def _to_form(app: GprpipeApp, pilot) -> None:
    """Once the opened config checks valid, show the Form tab (F3)."""
    await _settle(pilot)
    assert app.check.ok, app.check.errors
    await pilot.press("f3")
    await _settle(pilot)


async def _results_keys(app: GprpipeApp, pilot, seconds: float = 0.3) -> str:
    """The Results tab's key numbers, once shown (F6) and checked."""
    await pilot.press("f6")
    await _settle(pilot, seconds)
    return _static(app, "#res-keys")


async def _settle(pilot, seconds: float = 0.15) -> None:
    await pilot.pause(seconds)
    await _validated(pilot)
    await _results_checked(pilot)


async def _results_checked(pilot, timeout: float = 10.0) -> None:
    """Wait until the Results pane's point has been checked (currency, summary's lines)."""
    from gprpipe.tui.results import ResultsPane

    pane = pilot.app.query_one(ResultsPane)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and pane.checking:
        await pilot.pause(0.02)
    await pilot.pause()


def _issues_text(app: GprpipeApp) -> str:
    lst = app.query_one("#issues", OptionList)
    return "\n".join(str(lst.get_option_at_index(i).prompt) for i in range(lst.option_count))


def _plain(renderable) -> str:
    """Text of a rich renderable or string, as a wide terminal would print it."""
    console = Console(width=300, color_system=None, file=io.StringIO())
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def _static(app: GprpipeApp, selector: str) -> str:
    return _plain(app.query_one(selector, Static).content)


# ---------------------------------------------------------------- pure helpers


def test_a_form_field_says_which_key_and_what_it_takes():
    """Bad text in a form field named neither the key nor what it takes: 'could not
    convert string to float', 'Unclosed array (at line 1, column 9)' of a hidden string."""
    from gprpipe.tui.editor import COMMON, dataset_fields, to_literal

    fields = {f.key: f for f in [*COMMON, *dataset_fields("demo")]}
    for key, raw, said in (
        ("fit.blind_nsigma", "abc", "fit.blind_nsigma: 'abc' is not a number, e.g. 1.64"),
        ("base.jobs", "two", "base.jobs: 'two' is not a whole number, e.g. 2"),
        (
            "scan.masses",
            "30MeV, 60MeV",
            "scan.masses: give numbers (GeV) separated by commas, e.g. 0.02, 0.13; "
            "'30MeV, 60MeV' is not such a list",
        ),
        (
            "datasets.demo.range",
            "20 130",
            "datasets.demo.range: give numbers (GeV) separated by commas, e.g. 0.02, 0.13; "
            "'20 130' is not such a list",
        ),
    ):
        with pytest.raises(ValueError) as err:
            to_literal(fields[key], raw)
        assert str(err.value) == said
    assert to_literal(fields["scan.masses"], "0.03, 0.06") == "[0.03, 0.06]"
    assert to_literal(fields["datasets.demo.range"], ".02, 5.") == "[0.02, 5.0]"
    # numbers to Python but not to TOML ('.5', '5.') were written as typed: a syntax error
    assert [to_literal(fields["fit.blind_nsigma"], x) for x in (".5", "5.", "1e-1", "2")] == [
        "0.5",
        "5.0",
        "1e-1",
        "2",
    ]


def test_check_text_gives_structured_issues_with_file_line_column_key():
    """The loader's issues reach the TUI as fields (no sentence parsed back)."""
    text = QUICKSTART.read_text() + "\n[fit]\n  n_restart = 3\n"
    c = check_text(text, QUICKSTART)
    [i] = c.errors
    line = text.splitlines().index("  n_restart = 3") + 1
    assert (i.file, i.line, i.column, i.key) == (str(QUICKSTART), line, 3, "fit.n_restart")
    assert i.message == "unknown key; did you mean 'n_restarts'?"
    assert str(i) == f"{QUICKSTART}:{line}: fit.n_restart: unknown key; did you mean 'n_restarts'?"
    broken = QUICKSTART.read_text().replace('name = "quickstart"', 'name = "quickstart')
    [t] = check_text(broken, QUICKSTART).errors
    assert (t.file, t.line, t.column, t.key) == (str(QUICKSTART), 4, 19, None)
    assert str(t).startswith(f"{QUICKSTART}: invalid TOML: ")


def test_set_and_remove_key_keep_the_rest_of_the_file():
    text = QUICKSTART.read_text()
    out = set_key(text, ["fit", "blind_nsigma"], "1.96")
    out = set_key(out, ["datasets", "demo", "range"], "[0.02, 0.12]")
    out = set_key(out, ["scan", "masses"], "[0.03, 0.05]")
    out = remove_key(out, ["plot", "masses"])
    assert "# Quickstart: one dataset" in out  # comments kept
    assert (
        'path = "{{ gprpipe.data }}/demo_2015.root"   # the demo spectrum shipped inside gprpipe'
    ) in out
    assert "masses = [0.03, 0.05]   # GeV" in out  # the value replaced, its comment kept
    assert "[0.030, 0.060, 0.100]" not in out
    assert out.rstrip().endswith("[fit]\nblind_nsigma = 1.96")
    block = out.split("[datasets.demo]")[1].split("[scan]")[0]
    assert "range = [0.02, 0.12]" in block
    c = check_text(out, QUICKSTART)
    assert c.ok, c.errors
    cfg = c.points[0].config
    assert cfg.fit.blind_nsigma == 1.96
    assert cfg.datasets["demo"].range == (0.02, 0.12)
    assert cfg.plot.masses == []  # back to the default


def test_set_and_remove_key_never_leave_invalid_toml():
    """A key of a table made of dotted keys is one more dotted line; a key inside an inline
    table, or one that would need a second table, is refused (TomlEditError)."""
    text = 'base.output = "runs/a"\nbase.x = [\n  1,\n]  # here\ny = 1\n[[runs]]\nn = 1\n'
    assert set_key(text, ["base", "name"], '"b"') == text.replace(
        "here\n", 'here\nbase.name = "b"\n'
    )
    inline = '[datasets]\n2015 = { path = "a.root" }\n'
    for edit, verb in (
        (lambda: set_key(inline, ["datasets", "2015", "path"], '"b.root"'), "set"),
        (lambda: remove_key(inline, ["datasets", "2015", "path"]), "remove"),
    ):
        with pytest.raises(TomlEditError) as err:
            edit()
        assert str(err.value) == (
            f"Cannot {verb} datasets.2015.path from here: datasets.2015 is an inline table "
            "in the text; edit it in the text."
        )
    assert remove_key(inline, ["datasets", "2015", "range"]) == inline  # not set: no-op
    with pytest.raises(TomlEditError) as err:
        set_key(text, ["runs", "m"], "2")  # [[runs]] is an array of tables
    assert str(err.value) == (
        "Cannot set runs.m from here without making the text invalid TOML; edit it in the text."
    )


def test_check_text_of_unsaved_text_reports_the_real_file(tmp_path):
    text = QUICKSTART.read_text().replace("[plot]\nmasses", "[plot]\nmasess")
    c = check_text(text, QUICKSTART)
    assert not c.ok
    assert [(e.file, e.line, e.key) for e in c.errors] == [(str(QUICKSTART), 15, "plot.masess")]
    assert "did you mean 'masses'" in c.errors[0].message
    assert not list(QUICKSTART.parent.glob(".quickstart.*"))  # temporary file removed


def test_braille_plot_has_the_requested_size():
    x = [30.0, 45.0, 60.0, 80.0, 100.0]
    y = [2.4e-6, 8.2e-6, 7.3e-6, 2.0e-5, 4.3e-5]
    t = braille_plot(
        [Line(x, y, "white", "obs")],
        [Band(x, [v / 2 for v in y], [v * 2 for v in y], "green", "1s")],
        width=50,
        height=12,
        xlabel="mass (MeV)",
        ylabel="eps2",
    )
    lines = t.plain.split("\n")
    assert len(lines) == 12
    assert max(len(s) for s in lines) <= 50
    assert lines[1].startswith("8.6e-05┤") or "┤" in lines[1]
    assert any(ch for ch in t.plain if 0x2800 < ord(ch) <= 0x28FF)


# ---------------------------------------------------------------- the app


@sync
async def test_opens_quickstart_shows_validity_chain_and_steps(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        status = _static(app, "#status")
        assert "user_configs/quickstart.toml" in status or "quickstart.toml" in status
        assert "✓ valid, 1 point, 6 tasks" in status
        assert "load→fit→limit→plot" in status
        assert app.query_one("#editor", TextArea).text == QUICKSTART.read_text()
        assert "[datasets.demo]" in _static(app, "#rendered")
        await pilot.press("f1")
        await _settle(pilot)
        preview = _static(app, "#browse-text")
        assert "inherits:" in preview and "templates/defaults.toml" in preview
        assert "steps: load → fit → limit → plot" in preview
        # the first F3 from here opens the form (it came back to Browse: its fields were
        # built after the switch, and the focus stayed in the Browse tree)
        await pilot.press("f3")
        await _settle(pilot)
        assert app.query_one("#tabs").active == "form"
        assert app.focused is not None and app.focused.id == "f-datasets--demo--path"


@sync
async def test_a_setting_no_dataset_uses_is_noticed_beside_the_validity(tmp_path):
    """The notice that validate and run print (a fit.ls_hi_factor every card overrides)
    is shown under the validity line: the TUI said "valid" without a word."""
    app = _app(tmp_path, QUICKSTART, "fit.ls_hi_factor=12")
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.check is not None and app.check.ok
        assert len(app.check.notices) == 1
        shown = " ".join(_static(app, "#validity").split())
        assert shown.startswith("✓ valid, 1 point, 6 tasks notice: fit.ls_hi_factor = 12 ")
        assert "is not used for dataset demo" in shown


@sync
async def test_typo_in_a_key_shows_the_error_with_its_line_then_fixing_it_validates(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        assert editor.document.get_line(14) == "masses = [0.030, 0.060, 0.100]"
        editor.move_cursor((14, 1))  # m|asses in [plot]
        await pilot.press("x")  # mxasses
        await _settle(pilot)
        assert editor.document.get_line(14) == "mxasses = [0.030, 0.060, 0.100]"
        assert app.check is not None and not app.check.ok
        shown = _issues_text(app)
        assert "line 15" in shown and "plot.mxasses" in shown
        assert "did you mean 'masses'" in shown
        assert "✗ 1 error" in _static(app, "#status")
        assert "[modified]" in _static(app, "#status")
        # the error list jumps to the line
        editor.move_cursor((0, 0))
        app.query_one("#issues", OptionList).focus()
        await pilot.press("enter")
        await _settle(pilot)
        assert editor.cursor_location[0] == 14
        # fix it
        editor.focus()
        editor.move_cursor((14, 2))
        await pilot.press("backspace")
        await _settle(pilot)
        assert editor.document.get_line(14) == "masses = [0.030, 0.060, 0.100]"
        assert app.check.ok
        assert "✓ valid, 1 point, 6 tasks" in _static(app, "#status")
        assert not app.query_one("#issues", OptionList).display
        assert not app.modified


@sync
async def test_broken_toml_shows_line_and_column(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        editor.move_cursor((3, 19))  # name = "quickstart"| -> remove the closing quote
        await pilot.press("backspace")
        await _settle(pilot)
        err = app.check.errors[0]
        assert err.line == 4 and "invalid TOML" in err.message
        assert "line 4" in _issues_text(app)
        await pilot.press("f3")
        await _settle(pilot)
        assert "Fix the TOML syntax" in _static(app, "#form-note")


@sync
async def test_changing_the_grid_changes_the_point_count(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        editor.move_cursor(editor.document.end)
        editor.insert('\n[grid]\n"fit.blind_nsigma" = [1.64]')  # as a paste would
        await _settle(pilot)
        assert "✓ valid, 1 point, 6 tasks" in _static(app, "#status")
        assert app.check.points[0].name == "blind_nsigma-1.64"
        editor.move_cursor((editor.document.line_count - 1, 26))  # before the "]"
        await pilot.press(*", 1.96")
        await _settle(pilot)
        assert editor.text.endswith('"fit.blind_nsigma" = [1.64, 1.96]')
        assert "✓ valid, 2 points, 12 tasks" in _static(app, "#status")
        await pilot.press("f4")
        await _settle(pilot)
        assert "2 points × 6 tasks = 12 tasks" in _static(app, "#grid-summary")
        table = app.query_one("#grid-points", DataTable)
        assert table.row_count == 2
        assert [str(c.label) for c in table.columns.values()] == [
            "#",
            "point",
            "fit.blind_nsigma",
            "output folder",
        ]
        assert table.get_row_at(1)[1:3] == ["blind_nsigma-1.96", "1.96"]
        assert table.get_row_at(1)[3].endswith("run/blind_nsigma-1.96")
        steps = app.query_one("#grid-steps", DataTable)
        assert [steps.get_row_at(i)[0] for i in range(steps.row_count)] == [
            "load",
            "fit",
            "limit",
            "plot",
        ]
        assert steps.get_row_at(1)[1:] == ["1", "1", "2", "4"]
        # a second axis from the grid tab's input: 2 x 3 points
        vary = app.query_one("#grid-vary", Input)
        vary.focus()
        vary.value = "fit.n_restarts = 0, 1, 2"
        await pilot.press("enter")
        await _settle(pilot)
        assert app.check.ok and len(app.check.points) == 6
        assert '"fit.n_restarts" = [0, 1, 2]' in editor.text
        assert "6 points × 6 tasks = 36 tasks" in _static(app, "#grid-summary")


def test_the_grid_tab_reads_a_typed_axis_as_toml_first():
    """A review: the Grid tab's "vary a key" split at every comma, so a label holding one
    became two values ("HPS, 2015" -> "HPS", "2015": 3 points for 2) and a list-valued key
    ([0.02, 0.1], [0.03, 0.13]) came out as strings."""
    import tomllib

    from gprpipe.tui.grid import grid_values_literal

    for typed, values in (
        ('"HPS, 2015", "HPS 2016"', ["HPS, 2015", "HPS 2016"]),
        ("[0.02, 0.1], [0.03, 0.13]", [[0.02, 0.1], [0.03, 0.13]]),
        ("0, 1, 2", [0, 1, 2]),
        ("[0, 1, 2]", [0, 1, 2]),
        ("toys, asymptotic", ["toys", "asymptotic"]),  # bare words: strings, as before
        ('"a,b", c', ["a,b", "c"]),  # a quoted comma beside a bare word (a review)
        ("Bob's fit, plain", ["Bob's fit", "plain"]),  # a quote inside a word opens nothing
        ("1.64", [1.64]),
    ):
        assert tomllib.loads(f"v = {grid_values_literal(typed)}")["v"] == values, typed


def test_the_grid_tab_counts_tasks_per_point_when_points_differ(tmp_path):
    """Points of other chunk sizes have other task counts: the Grid tab said "2 points x
    5 tasks = 10 tasks" and "per point 8, all points 10" from the first point alone (a
    review). The counts that differ are ranges."""
    from conftest import QUICKSTART

    text = f'[base]\ntemplate = "{QUICKSTART}"\n[grid]\n"scan.chunk_size" = [1, 16]\n'
    check = check_text(text, tmp_path / "g.toml")
    # 5 masses: load, 5|1 fit chunks + a merge, as many limit tasks, plot
    assert check.ok and check.tasks_per_point() == (6, 14)
    rows = {r[0]: r[1:] for r in check.steps_table()}
    assert rows["fit"] == ("1-5", "1", "2-6", 8) and rows["load"] == ("1", "0", "1", 2)


@sync
async def test_form_edits_the_same_file(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)
        blind = app.query_one("#f-fit--blind_nsigma", Input)
        assert blind.value == "1.64"
        assert "defaults.toml" in _static(app, "#o-f-fit--blind_nsigma")
        blind.focus()
        blind.value = "1.96"
        await pilot.press("enter")
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        assert editor.text.rstrip().endswith("[fit]\nblind_nsigma = 1.96")
        assert app.check.points[0].config.fit.blind_nsigma == 1.96
        assert "this file" in _static(app, "#o-f-fit--blind_nsigma")
        # scan range of the dataset (from its card) and limit mode (a choice)
        rng = app.query_one("#f-datasets--demo--range", Input)
        assert rng.value == "[0.02, 0.13]"
        rng.focus()
        rng.value = "0.03, 0.1"
        await pilot.press("enter")
        await _settle(pilot)
        assert app.check.points[0].config.datasets["demo"].range == (0.03, 0.1)
        app.query_one("#f-limit--mode", Select).value = "toys"
        await _settle(pilot)
        assert 'mode = "toys"' in editor.text
        assert app.check.points[0].config.limit.mode == "toys"
        # undo in the editor reverts the last form edit
        editor.focus()
        await pilot.press("ctrl+z")
        await _settle(pilot)
        assert app.check.points[0].config.limit.mode == "asymptotic"


@sync
async def test_a_value_typed_in_a_form_field_is_what_save_and_launch_take(tmp_path):
    """A review: a value typed into a Form field was applied only on Enter or on leaving
    the field, so ctrl+s saved, and ctrl+r launched, the value before it (the Form then
    showed the typed one), and quit lost it without asking."""
    from conftest import quickstart_child

    cfg = quickstart_child(tmp_path / "q.toml")
    app = _app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)
        blind = app.query_one("#f-fit--blind_nsigma", Input)
        blind.focus()
        blind.value = "2.5"  # typed, no Enter
        await pilot.press("ctrl+s")
        await _settle(pilot)
        assert "[fit]\nblind_nsigma = 2.5" in cfg.read_text()
        blind.value = "2.6"
        await pilot.press("ctrl+r")
        await _settle(pilot)
        assert not (tmp_path / "run").exists()  # asked for a save: the file has 2.5
        said = [n.message for n in app._notifications]
        assert "Save the config first (ctrl+s): the run reads the file." in said, said
        assert app.modified and "blind_nsigma = 2.6" in app.query_one("#editor", TextArea).text
        await pilot.press("ctrl+s")
        await _settle(pilot)
        # a value the Form refuses stops the action (it launched the saved value)
        blind.value = "2.5x"
        await pilot.press("ctrl+r")
        await _settle(pilot)
        assert not (tmp_path / "run").exists() and not app.modified
        await pilot.press("ctrl+q")
        await _settle(pilot)
        assert app.is_running  # (quit stopped too: the typed value is still there)
        # an axis typed in the Grid tab and not added yet: saved with the config
        blind.value = "2.6"
        await pilot.press("f4")
        await _settle(pilot)
        vary = app.query_one("#grid-vary", Input)
        vary.focus()
        vary.value = "fit.n_restarts = 0, 1"
        await pilot.press("ctrl+s")
        await _settle(pilot)
        assert '"fit.n_restarts" = [0, 1]' in cfg.read_text() and vary.value == ""


@sync
async def test_a_shipped_template_is_not_saved_over(tmp_path):
    """A review: the TUI opened a shipped template (Browse lists them) and ctrl+s saved an
    edit into it, which changed every config that inherits it by name without a word."""
    from gprpipe.config.loader import shipped_dir

    template = shipped_dir("templates") / "hps2015.toml"
    before = template.read_bytes()
    app = _app(tmp_path, template)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        editor.load_text(editor.text + "# an edit\n")
        await pilot.press("ctrl+s")
        await _settle(pilot)
        assert template.read_bytes() == before
        said = " ".join(n.message for n in app._notifications)
        assert "is shipped with gprpipe, and every config that inherits it by name" in said
    # Save as of a config of one's own onto it: refused before any question (it asked
    # whether to overwrite and to rename base.name, changed the config, then refused)
    from conftest import quickstart_child

    app = _app(tmp_path, quickstart_child(tmp_path / "mine.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        text = app.query_one("#editor", TextArea).text
        await pilot.press("ctrl+o")
        await _settle(pilot)
        app.screen.query_one("#path-input", Input).value = str(template)
        await pilot.press("enter")
        await _settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert template.read_bytes() == before
        assert app.query_one("#editor", TextArea).text == text
        said = " ".join(n.message for n in app._notifications)
        assert "is shipped with gprpipe, and every config that inherits it by name" in said


@sync
async def test_a_form_field_the_grid_varies_shows_the_grids_values_and_is_not_written(tmp_path):
    """A key the grid varies showed one value "from this file", and an edit to it wrote
    a `[fit] blind_nsigma = 2.5` that the grid overrides, silently (a review). Its field
    shows the grid's values, is disabled, and an edit is refused with a notice."""
    from conftest import quickstart_child

    from gprpipe.tui.editor import FormPane

    cfg = quickstart_child(
        tmp_path / "grid.toml",
        f'output = "{tmp_path / "run"}"\n[grid]\n"fit.blind_nsigma" = [1.64, 1.96]\n',
    )
    app = GprpipeApp(cfg, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)
        blind = app.query_one("#f-fit--blind_nsigma", Input)
        assert blind.value == "1.64, 1.96" and blind.disabled
        assert _static(app, "#o-f-fit--blind_nsigma").strip() == "varied by the grid"
        jobs = app.query_one("#f-base--jobs", Input)
        assert not jobs.disabled  # a key the grid does not vary is edited as before
        text = app.editor.text
        form = app.query_one(FormPane)
        form._apply(form.fields["f-fit--blind_nsigma"], "2.5")  # as Enter or leaving it
        await _settle(pilot)
        assert app.editor.text == text and "blind_nsigma = 2.5" not in text
        [note] = [n.message for n in app._notifications if "grid" in n.message]
        assert note.startswith('fit.blind_nsigma is varied by the grid ([grid] "fit.blind_nsigma")')
        assert [p.config.fit.blind_nsigma for p in app.check.points] == [1.64, 1.96]


@sync
async def test_form_of_a_dataset_key_with_a_dash_or_plus(tmp_path):
    """Dataset keys may hold '-' and '+' (not '.', which ``--set`` and ``[grid]`` read as a
    level): the form made 'a+b' a widget id textual refuses."""
    demo = REPO / "gprpipe" / "data" / "demo_2015.root"
    config = tmp_path / "ds.toml"
    config.write_text(
        f'[base]\ntemplate = "{QUICKSTART}"\n[datasets.demo]\nenabled = false\n'
        f'[datasets."v1-2"]\ncard = "hps2015"\npath = "{demo}"\n'
        f'[datasets."a+b"]\ncard = "hps2015"\nlabel = "a+b"\npath = "{demo}"\n'
        '[scan]\ndatasets = ["v1-2", "a+b"]\n'
    )
    app = _app(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await _to_form(app, pilot)
        form = app.query_one("#form-pane")
        by_key = {f.parts: wid for wid, f in form.fields.items()}
        rng = app.query_one("#" + by_key[("datasets", "a+b", "range")], Input)
        assert rng.value == "[0.02, 0.13]"  # from the card, read at the right key
        path = app.query_one("#" + by_key[("datasets", "v1-2", "path")], Input)
        assert path.value == str(demo)
        rng.focus()
        rng.value = "0.03, 0.1"
        await pilot.press("enter")
        await _settle(pilot)
        assert '[datasets."a+b"]\ncard = "hps2015"\nlabel = "a+b"\npath = ' in app.editor.text
        assert "range = [0.03, 0.1]" in app.editor.text
        assert app.check.ok, app.check.errors
        assert app.check.points[0].config.datasets["a+b"].range == (0.03, 0.1)
        assert app.check.points[0].config.datasets["v1-2"].range == (0.02, 0.13)


@sync
async def test_form_edits_dotted_keys_in_place_and_refuses_an_inline_table(tmp_path):
    """A table written with dotted keys (``base.template = ...``) got a second ``[base]``
    table appended, an inline table (``2015 = { path = ... }``) a ``2015.range`` line:
    invalid TOML both. Now a dotted key is added beside the others; an inline table is
    left alone, with a notice naming the key."""
    config = tmp_path / "dotted.toml"
    config.write_text(
        'base.template = "hps2015"\n'
        "scan.masses = [0.03, 0.06]\n"
        "[datasets]\n"
        '2015 = { path = "{{ gprpipe.data }}/demo_2015.root" }\n'
    )
    app = _app(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await _to_form(app, pilot)
        for wid, value in (("f-base--name", "dotted"), ("f-datasets--2015--range", "0.03, 0.1")):
            field = app.query_one(f"#{wid}", Input)
            field.focus()
            field.value = value
            await pilot.press("enter")
            await _settle(pilot)
        assert app.editor.text == config.read_text().replace(
            'hps2015"\n', 'hps2015"\nbase.name = "dotted"\n'
        )
        assert app.check.ok, app.check.errors
        assert app.check.points[0].config.base.name == "dotted"
        assert app.check.points[0].config.datasets["2015"].range == (0.02, 0.13)  # unchanged
        assert [n.message for n in app._notifications][-1] == (
            "Cannot set datasets.2015.range from here: datasets.2015 is an inline table in "
            "the text; edit it in the text."
        )


@sync
async def test_new_config_from_a_template_and_save_as(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_configs").mkdir()
    app = GprpipeApp(None, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert "no config open" in _static(app, "#status")
        browse = app.query_one("#browse-pane")
        hps2015 = next(p for p in browse.folders[0].glob("hps2015.toml"))
        browse.select_path(hps2015)
        await pilot.press("n")
        await _settle(pilot)
        assert app.path == tmp_path / "user_configs" / "my_hps2015.toml"
        assert 'template = "hps2015"' in app.query_one("#editor", TextArea).text
        # the template needs the data file: the error names the template's file and line
        err = app.check.errors[0]
        assert err.key == "datasets.2015.path" and err.file.endswith("templates/hps2015.toml")
        assert "required but not set" in _issues_text(app)
        # the form shows the dataset of the template; set its file there
        await pilot.press("f3")
        await _settle(pilot)
        demo = REPO / "gprpipe" / "data" / "demo_2015.root"
        field = app.query_one("#f-datasets--2015--path", Input)
        field.focus()
        field.value = str(demo)
        await pilot.press("enter")
        await _settle(pilot)
        assert app.check.ok, app.check.errors
        assert app.check.points[0].config.datasets["2015"].path == str(demo)
        # save: a new file asks for its name
        await pilot.press("ctrl+s")
        await _settle(pilot)
        dialog_input = app.screen.query_one("#path-input", Input)
        assert dialog_input.value == "user_configs/my_hps2015.toml"
        dialog_input.value = "user_configs/mine.toml"
        await pilot.press("enter")
        await _settle(pilot)
        saved = tmp_path / "user_configs" / "mine.toml"
        assert saved.read_text() == app.query_one("#editor", TextArea).text
        assert app.path == Path("user_configs/mine.toml") and not app.modified
        assert "mine.toml" in _static(app, "#status")


@sync
async def test_browse_a_folder_and_keep_unsaved_changes(tmp_path, monkeypatch):
    """A folder as argument is browsed; opening another file asks before discarding."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    demo = REPO / "gprpipe" / "data" / "demo_2015.root"
    text = QUICKSTART.read_text().replace('"../gprpipe/data/demo_2015.root"', f'"{demo}"')
    (folder / "a.toml").write_text(text)
    (folder / "b.toml").write_text(text.replace('name = "quickstart"', 'name = "bee"'))
    app = GprpipeApp(folder, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.query_one("#tabs").active == "browse"
        tree = app.query_one("#browse-tree")
        assert [str(n.label) for n in tree.root.children][-1] == "mine/"
        browse = app.query_one("#browse-pane")
        browse.select_path(folder / "a.toml")
        await pilot.press("enter")
        await _settle(pilot)
        assert app.path == folder / "a.toml" and app.query_one("#tabs").active == "edit"
        await _comment_out_first_line(app, pilot)
        await pilot.press("f1")
        browse.select_path(folder / "b.toml")
        await _settle(pilot)  # the preview is validated in a worker
        assert "✓ valid, 1 point, 6 tasks" in _static(app, "#browse-text")
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("n")  # keep the changes
        await _settle(pilot)
        assert app.path == folder / "a.toml" and app.modified
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("y")  # discard them
        await _settle(pilot)
        assert app.path == folder / "b.toml" and not app.modified
        assert app.check.points[0].config.base.name == "bee"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Start run", "Cancel run", "Rerun failed tasks", "Save as"} <= set(titles)


async def _comment_out_first_line(app, pilot) -> None:
    """Type '#' at the start of the edited config: an unsaved change."""
    editor = app.query_one("#editor", TextArea)
    editor.move_cursor((0, 0))
    editor.focus()  # under load the tab switch may not have moved the focus yet
    await _settle(pilot)
    await pilot.press("#")
    for _ in range(50):  # the change reaches app.modified through a message
        if app.modified:
            break
        await pilot.pause(0.1)
    assert app.modified


@sync
async def test_run_refuses_an_invalid_or_unsaved_config(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        editor = app.query_one("#editor", TextArea)
        editor.move_cursor((14, 0))
        await pilot.press("x")
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)
        run = app.query_one(RunPane)
        assert run.launch is None
        assert not (tmp_path / "run").exists()


@sync
async def test_quit_asks_before_losing_unsaved_changes(tmp_path):
    """ctrl+q quit at once and the edit was lost; now it asks, and "n" stays."""
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await _comment_out_first_line(app, pilot)
        await pilot.press("ctrl+q")
        await _settle(pilot)
        assert "has unsaved changes, which are lost" in str(app.screen.query_one("Label").render())
        await pilot.press("n")  # stay
        await _settle(pilot)
        assert app.is_running and app.modified
        await pilot.press("ctrl+q")
        await _settle(pilot)
        await pilot.press("y")  # quit after all
        await _settle(pilot)
        assert not app.is_running


@sync
async def test_run_tab_shows_every_planned_task_pending(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        # the Run pane holds the latest check before its tab is first shown (Results asks it)
        assert app.query_one(RunPane).run_dir() == tmp_path / "run"
        await pilot.press("f5")
        await _settle(pilot)
        table = app.query_one("#run-tasks", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [(r[1], r[2]) for r in rows] == [
            ("load", ""),
            ("fit", "demo-000"),
            ("fit", "merge"),
            ("limit", "demo-000"),
            ("limit", "merge"),
            ("plot", ""),
        ]
        assert {str(r[3]) for r in rows} == {"pending"}
        assert "pending 6" in _static(app, "#run-summary")
        assert str(app.query_one("#run-engine", Select).value) == "local"
        assert app.query_one("#run-jobs", Input).value == "2"


@sync
async def test_a_launch_whose_masses_failed_says_so(tmp_path):
    """Every task done, masses failed (exit 1): the TUI said "exit code 1: 0 failed" and the
    last log line (a review); it gives the run's sentence of the failed rows, and not
    those of an earlier run's table when a launch is refused before any task ran."""
    import shutil

    data = tmp_path / "demo.root"
    shutil.copy(DEMO_ROOT, data)
    app = _app(
        tmp_path,
        QUICKSTART,
        f"datasets.demo.path={data}",
        "datasets.demo.data_range=[0.05, 0.06]",
        'steps.run=["load", "fit", "limit"]',
    )
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)
        run = app.query_one(RunPane)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            await pilot.pause(0.3)
            if run.launch.returncode() is not None and run.view and run.view.finished:
                break
        await _settle(pilot, 0.5)
        assert run.launch.returncode() == 1
        notes = [n.message for n in app._notifications if "exit code" in n.message]
        scan = tmp_path / "run" / "nominal" / "scan.csv"
        assert notes and notes[-1].startswith(
            f"Run ended with exit code 1: 3 of 5 masses failed in {scan} (first: demo 0.03 "
        ), notes
        data.unlink()
        app._notifications.clear()
        await pilot.press("ctrl+r")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            await pilot.pause(0.3)
            if any("refused" in n.message for n in app._notifications):
                break
        (note,) = [n.message for n in app._notifications if "refused" in n.message]
        assert note.startswith("Run refused: ") and f"{data}: data file not found" in note
        assert "masses failed" not in note
        assert note.endswith("Nothing ran; its output is below.")  # the earlier run's folder
        assert scan.is_file()  # stays


@pytest.mark.slow
@sync
async def test_launch_quickstart_locally_all_tasks_done_and_results(tmp_path):
    """The real run (about 30 s): every task reaches done; Results shows scan.csv rows."""
    # one GP-fit figure, no event display: the figures the Results tab shows are drawn
    app = _app(tmp_path, QUICKSTART, "plot.masses=[0.06]", "plot.displays.datasets=[]")
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)
        run = app.query_one(RunPane)
        assert run.launch is not None and app.query_one("#tabs").active == "run"
        seen: set[str] = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            await pilot.pause(0.3)
            if run.view is not None:
                seen |= {s for s, _ in run.view.states.values()}
            if run.launch.returncode() is not None and run.view and run.view.finished:
                break
        assert run.launch.returncode() == 0, (tmp_path / "run" / "tui-launch.log").read_text()
        await _settle(pilot, 0.5)
        assert run.view.all_done and len(run.view.tasks) == 6
        assert "running" in seen  # the live view saw tasks running
        table = app.query_one("#run-tasks", DataTable)
        assert {str(table.get_row_at(i)[3]) for i in range(table.row_count)} == {"done"}
        # each note shown whole (the column stayed as wide as its title: "0.3 " of "0.3 s")
        notes = [str(table.get_row_at(i)[4]) for i in range(table.row_count)]
        assert table.columns["note"].content_width >= max(map(len, notes)) > len("note")  # type: ignore[index]
        assert "done 6" in _static(app, "#run-summary")
        # log tail of the selected task (the plot task)
        table.move_cursor(row=5)
        await _settle(pilot)
        assert "logs/plot.log" in _static(app, "#log-title")
        # results
        await pilot.press("f6")
        await _settle(pilot, 0.3)
        scan = tmp_path / "run" / "nominal" / "scan.csv"
        rows = list(csv.DictReader(scan.open()))
        res = app.query_one("#res-table", DataTable)
        assert res.row_count == len(rows) == 5
        masses = [res.get_row_at(i)[1] for i in range(res.row_count)]
        assert masses == [f"{float(r['mass_GeV']):.4g}" for r in rows]
        a_up = [res.get_row_at(i)[5] for i in range(res.row_count)]
        assert a_up == [f"{float(r['A_up']):.4g}" for r in rows]
        # columns no row has a value in (asymptotic limits: no Monte Carlo error; no
        # whole-scan toys) are hidden, and the tab says so
        shown = [str(k.value) for k in res.columns]
        assert {r["A_up_err"] for r in rows} == {"nan"} and "A_up_err" not in shown
        assert "Z_global_toys" not in shown and "Z_global" in shown and "status" in shown
        assert "10 columns without values hidden (scan.csv has them)" in _static(app, "#res-keys")
        best = max(rows, key=lambda r: float(r["Z_local"]))
        keys = _static(app, "#res-keys")
        assert f"best local Z {float(best['Z_local']):.2f}" in keys
        assert f"global Z (Sidak) {float(best['Z_global']):.2f}" in keys
        # sort by eps2_up descending (s on the column twice)
        res.focus()  # "s" is the table's key; in the masses field it would be typed
        res.move_cursor(column=list(res.columns).index("eps2_up"))
        await _settle(pilot)
        assert app.focused is res
        await pilot.press("s")
        await _settle(pilot)
        await pilot.press("s")
        await _settle(pilot)
        ordered = sorted(rows, key=lambda r: -float(r["eps2_up"]))
        assert [res.get_row_at(i)[1] for i in range(5)] == [
            f"{float(r['mass_GeV']):.4g}" for r in ordered
        ]
        # the plot and its files
        await pilot.press("p")
        await _settle(pilot)
        plot = app.query_one("#res-plot")
        assert plot.files and {f.suffix for f in plot.files} == {".png", ".pdf"}
        assert "ε² upper limit, demo (95% CL)" in _plain(plot.render())
        # and p again back to the table (the hidden table had the focus: nothing had it)
        assert app.focused is plot
        await pilot.press("p")
        await _settle(pilot)
        assert app.focused is res and app.query_one("#res-switch").current == "res-table"


@pytest.mark.slow
@sync
async def test_cancel_then_rerun_failed(tmp_path):
    """Cancel a local run mid-way (tasks become failed), then rerun the failed ones."""
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("ctrl+r")
        run = app.query_one(RunPane)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            await pilot.pause(0.2)
            if run.view and run.view.states.get("nominal/plot", ("",))[0] == "running":
                break
        assert run.view.states["nominal/plot"][0] == "running"
        await pilot.press("x")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and run.launch.running:
            await pilot.pause(0.2)
        await _settle(pilot, 0.5)
        assert run.launch.cancelled and not run.launch.running
        assert run.view.states["nominal/plot"][0] == "failed"
        assert "failed 1" in _static(app, "#run-summary")
        # the notice agrees with the table (it said "0 running tasks marked failed")
        notes = [n.message for n in app._notifications]
        assert (
            "Run cancelled: any task it was running is marked failed (rerun them with f)." in notes
        ), notes
        # recorded in the run directory: gprpipe status and rerun --failed see it
        tasks, _ = tasks_of_run(load_run_info(tmp_path / "run"))
        state, message = task_states(tasks)["nominal/plot"]
        # the TUI or the run's own SIGTERM handler records the cancellation
        assert state == "failed" and message.startswith("cancelled")
        await pilot.press("f")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180:
            await pilot.pause(0.3)
            if run.launch.returncode() is not None and run.view.all_done:
                break
        assert run.launch.returncode() == 0
        assert run.view.all_done
        assert (tmp_path / "run" / "nominal" / "plots" / "manifest.json").is_file()


@pytest.mark.slow
@pytest.mark.slurm
@sync
async def test_launch_quickstart_on_slurm_and_watch_it(tmp_path):
    """Executor slurm chosen in the Run tab: the run is submitted as job arrays and the
    live view follows squeue and the markers until every task is done. (Without the plot
    step: its job on SLURM is test_slurm_e2e's.)"""
    require_slurm()
    app = GprpipeApp(
        QUICKSTART,
        overrides=[f"base.output={tmp_path / 'run'}", 'steps.run=["load","fit","limit"]'],
        check_delay=0.05,
        poll_interval=0.2,
    )
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f5")
        await _settle(pilot)
        app.query_one("#run-executor", Select).value = "slurm"
        await pilot.press("ctrl+r")
        run = app.query_one(RunPane)
        seen: set[str] = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            await pilot.pause(0.5)
            if run.view is not None and run.view.started:
                seen |= {s for s, _ in run.view.states.values()}
                if run.view.finished and not run.launch.running:
                    break
        assert run.launch.returncode() == 0
        assert run.view.executor == "slurm" and run.view.all_done, run.view.states
        assert "running" in seen or "pending" in seen
        assert "(slurm)" in _static(app, "#run-summary")
        # every task is done: cancel stops at most an element SLURM still winds up (its
        # completing state), never a job of another run
        jobs = json.loads((tmp_path / "run" / "slurm" / "jobs.json").read_text())
        ids = {j["job_id"] for sub in jobs["submissions"] for j in sub["jobs"]}
        assert len(ids) == 5 and set(service.cancel(tmp_path / "run").jobs) <= ids
        await pilot.press("f6")
        await _settle(pilot, 0.3)
        assert app.query_one("#res-table", DataTable).row_count == 5


def test_a_run_folder_opens_with_the_overrides_it_was_run_with(tmp_path):
    """``gprpipe tui RUN_DIR``: the Run tab acts on that run (its config with the run's
    recorded ``--set`` values: its folder, its blinding), never on the bare config; an
    ``--unblind`` is not carried over."""
    from conftest import QUICKSTART, run_cli_here

    out = tmp_path / "blinded"
    sets = [f"base.output={out}", "base.blind=true"]
    code, _, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load", *[x for s in sets for x in ("--set", s)]
    )
    assert code == 0, err
    app = GprpipeApp(out)
    assert app.path == QUICKSTART and app.results_dir == out.resolve()
    # the run directory as an absolute path: the same folder wherever the TUI started
    assert app.overrides == ("base.blind=true", 'steps.run=["load"]', f"base.output={out}")
    assert check_text(QUICKSTART.read_text(), QUICKSTART, app.overrides).points
    code, _, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load", "--set", f"base.output={out}", "--unblind"
    )
    assert code == 0, err
    assert GprpipeApp(out, overrides=["limit.alpha=0.1"]).overrides == (
        'steps.run=["load"]',
        f"base.output={out}",
        "limit.alpha=0.1",
    )
    # a recorded value the config no longer takes (its dataset renamed since): opened
    # with the run directory and blinding only, and a notice naming the dropped value
    cfg = tmp_path / "c.toml"
    cfg.write_text(QUICKSTART.read_text())
    code, _, err = run_cli_here(
        "run",
        cfg,
        "--steps",
        "load",
        "--set",
        f"base.output={out}-2",
        "--set",
        "datasets.demo.label=X",
    )
    assert code == 0, err
    cfg.write_text(cfg.read_text().replace("[datasets.demo]", "[datasets.demo2]"))
    app = GprpipeApp(f"{out}-2")
    assert app.overrides == (f"base.output={out}-2",)
    assert "datasets.demo.label=X, steps.run=" in app._open_notice


def test_the_editor_refuses_what_validate_refuses(tmp_path):
    """The editor's check said "valid" for configs `gprpipe validate` (and the launch)
    refuse: a plot mass between test masses, a histogram the data file lacks, a --set
    that lifts blinding. A data file not at hand stays a warning."""
    from conftest import QUICKSTART

    text = QUICKSTART.read_text()
    between = text.replace("masses = [0.030, 0.060, 0.100]", "masses = [0.0505]")
    assert [str(e) for e in check_text(between, QUICKSTART).errors] == [
        f"{QUICKSTART}:15: plot.masses: 0.0505 GeV lies between the test masses 0.045 and "
        "0.06 GeV; the figures are drawn at test masses only."
    ]
    nohist = text.replace('label = "Demo', 'hist = "nohist"\nlabel = "Demo')
    (err,) = check_text(nohist, QUICKSTART).errors
    assert str(err).startswith(f"{QUICKSTART}:8: datasets.demo.hist: ") and "'nohist'" in str(err)
    (err,) = check_text(text, QUICKSTART, ["base.blind=false"]).errors
    assert str(err).startswith("--set base.blind=false: blinding is lifted only by")
    # the editor's text, not the file on disk (here: none), decides what lifts blinding
    jinja = text.replace("[base]", '[base]\nblind = "{{ limit.alpha < 0.06 }}"', 1)
    assert jinja != text
    (err,) = check_text(jinja, tmp_path / "unsaved.toml", ["limit.alpha=0.1"]).errors
    assert str(err).startswith("--set limit.alpha=0.1: blinding is lifted only by")
    assert not check_text(jinja, tmp_path / "unsaved.toml", ["limit.alpha=0.05"]).errors
    elsewhere = tmp_path / "c.toml"
    missing = text.replace("{{ gprpipe.data }}/demo_2015.root", "later.root")
    check = check_text(missing, elsewhere)
    assert not check.errors and len(check.tasks) == 6
    assert [w.key for w in check.warnings] == ["datasets.demo.path"]
    assert check.warnings[0].severity == "warning"
    assert check.warnings[0].message == (
        f"{tmp_path / 'later.root'}: data file not found (point it at your file: --set "
        "datasets.demo.path=FILE, or edit the config)."
    )
    # and the status line says so (it said "✓ valid"), and no run is launched
    assert check.summary() == "⚠ 1 point, 6 tasks; 1 input file not found: a run would fail"
    assert check.style == "bold yellow"  # (it was the green of a valid config)


@sync
async def test_a_config_whose_data_file_is_missing_is_not_launched(tmp_path):
    """ctrl+r on a config whose data file is not there started a run that failed at once
    ("Run ended with exit code 1"): it says which file is missing and starts nothing."""
    from conftest import QUICKSTART

    cfg = tmp_path / "c.toml"
    cfg.write_text(QUICKSTART.read_text().replace("{{ gprpipe.data }}/demo_2015.root", "x.root"))
    app = _app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert _static(app, "#status").count("1 input file not found: a run would fail") == 1
        await pilot.press("ctrl+r")
        await _settle(pilot)
        assert app.query_one(RunPane).launch is None
        assert not (tmp_path / "run").exists()
        (note,) = [n.message for n in app._notifications]
        assert note == (
            f"{tmp_path / 'x.root'}: data file not found (point it at your file: --set "
            "datasets.demo.path=FILE, or edit the config). Fix it first."
        )


@sync
async def test_a_config_changed_or_removed_on_disk_is_not_launched(tmp_path):
    """ctrl+r ran the file on disk: changed outside the TUI after it was opened, the run
    took settings never shown (and another run folder, which the Run pane did not watch);
    removed, it left a run folder of launch files only."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(QUICKSTART.read_text())
    app = _app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.check.ok and not app.modified
        for change in ("edit", "remove"):
            app._notifications.clear()
            if change == "edit":
                cfg.write_text(cfg.read_text() + "\n[fit]\nblind_nsigma = 2.5\n")
            else:
                cfg.unlink()
            await pilot.press("ctrl+r")
            await _settle(pilot)
            assert app.query_one(RunPane).launch is None
            assert not (tmp_path / "run").exists()
            (note,) = [n.message for n in app._notifications]
            what = "changed on disk" if change == "edit" else "is gone or unreadable"
            assert note == (
                f"{cfg} {what} since it was opened or saved: the run would not read the text "
                "shown here. Save this text (ctrl+s) to run it, or open the file again."
            )
        await pilot.press("ctrl+s")  # the text shown is the file again
        await _settle(pilot)
        assert cfg.read_text() == app.editor.text and app._changed_on_disk() is None
    # a file with a byte-order mark is its text without it (as it was opened), not changed
    cfg.write_bytes(b"\xef\xbb\xbf" + QUICKSTART.read_bytes())
    app = _app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.check.ok and not app.modified and app._changed_on_disk() is None


@sync
async def test_a_run_with_a_damaged_run_json_shows_no_results(shared_quickstart, tmp_path):
    """The Results tab refuses a run whose run.json is damaged, in the sentence of
    `gprpipe summary` and `status` (it listed the point folders and showed their numbers)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    (run / "run.json").write_text("{not json")
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        keys = _static(app, "#res-keys")
        assert keys.startswith(f"{run / 'run.json'}: unreadable (")
        assert app.query_one("#res-table", DataTable).row_count == 0


@sync
async def test_a_blinded_point_shows_no_observed_result_an_earlier_run_left(
    shared_quickstart, tmp_path
):
    """A review: a blinded run without the limit step keeps an earlier unblinded run's
    scan.csv; the report withheld its numbers, but summary and the Results tab showed its
    local Z and observed limits. The tab says why it shows none, as summary does."""
    import shutil

    from conftest import QUICKSTART, run_cli_here, settings

    from gprpipe.pipeline.summary import OBSERVED_WITHHELD

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    sets = settings(f"base.output={run}", 'plot.formats=["png"]', "base.blind=true")
    code, out, err = run_cli_here("run", QUICKSTART, "--steps", "load,fit,plot", *sets)
    assert code == 0, out + err
    app = GprpipeApp(run)
    seen: list[tuple[str, int]] = []  # what the pane showed at each of its updates
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(ResultsPane)
        shown = pane.update_numbers

        def spy() -> None:
            shown()
            table = app.query_one("#res-table", DataTable)
            seen.append((_static(app, "#res-keys"), table.row_count))

        pane.update_numbers = spy  # type: ignore[method-assign]
        pane.reload()  # (also from the r key and on showing the tab: each load is checked)
        await _settle(pilot, 0.3)
        keys = _static(app, "#res-keys")
        assert keys.strip() == OBSERVED_WITHHELD, keys
        assert "local Z" not in keys and app.query_one("#res-table", DataTable).row_count == 0
        # said once, not again at each reload or showing of the tab (a review: 3 times)
        for key in ("f5", "f6", "r"):
            await pilot.press(key)
            await _settle(pilot, 0.3)
        told = [n for n in app._notifications if n.message == OBSERVED_WITHHELD]
        assert len(told) == 1, [n.message for n in app._notifications]
    # nor while the point was checked (a review: its local Z, observed limits and table
    # were on screen for the second or so the check took)
    assert len(seen) >= 2 and "checking" in seen[0][0], seen
    assert all("local Z" not in keys and "obs/exp" not in keys and not n for keys, n in seen)
    # its point copied into a folder of its own, opened by its blinded config: they were
    # shown (a review)
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copytree(run / "nominal", copied / "nominal", symlinks=True)
    run = copied
    from conftest import quickstart_child

    cfg = quickstart_child(tmp_path / "c.toml", f'output = "{run}"\nblind = true\n')
    app = GprpipeApp(cfg, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        keys = await _results_keys(app, pilot)
        assert keys.strip() == OBSERVED_WITHHELD, keys
        assert app.query_one("#res-table", DataTable).row_count == 0


@sync
async def test_a_task_not_started_in_this_run_shows_no_earlier_runs_log(
    shared_quickstart, tmp_path
):
    """A blinded run into the folder of an unblinded one, stopped before its limit tasks:
    the Run tab showed the pending limit merge's log of the unblinded run ("max Z_local
    1.86 at 100 MeV"), which summary and Results withhold (a review). A pending task has
    no log of this run."""
    import shutil

    from gprpipe.pipeline.state import clear_state

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point = run / "nominal"
    assert "max Z_local" in (point / "logs" / "limit__merge.log").read_text()
    clear_state(point, "limit__merge")  # as a run stopped before it leaves it: pending
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f5")
        await _settle(pilot, 0.3)
        table = app.query_one("#run-tasks", DataTable)
        rows = [(str(table.get_row_at(i)[1]), str(table.get_row_at(i)[2])) for i in range(6)]
        table.move_cursor(row=rows.index(("limit", "merge")))
        await _settle(pilot)
        assert str(table.get_row_at(rows.index(("limit", "merge")))[3]) == "pending"
        assert (
            _static(app, "#log-title").strip()
            == "Log of nominal/limit/merge: not started in this run"
        )
        assert "Z_local" not in _static(app, "#log-tail")
        table.move_cursor(row=rows.index(("limit", "demo-000")))  # done: its own log
        await _settle(pilot)
        assert "logs/limit__demo-000.log" in _static(app, "#log-title")


@sync
async def test_results_of_a_config_edited_since_its_run_say_so(shared_quickstart, tmp_path):
    """A config edited since its run (fit.blind_nsigma 1.64 -> 1.96): the Results tab
    showed the 1.64 results, valid and current, as those of the config open (a review);
    they are said to be of the settings its point folder holds."""
    import shutil

    from conftest import quickstart_child

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    cfg = quickstart_child(tmp_path / "qe.toml", f'output = "{run}"\n[plot]\nformats = ["png"]\n')
    for edited in (False, True):
        if edited:
            cfg.write_text(cfg.read_text() + "[fit]\nblind_nsigma = 1.96\n")
        app = GprpipeApp(cfg, check_delay=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await _validated(pilot)
            keys = await _results_keys(app, pilot, 0.5)
            assert ("NOT OF THIS CONFIG" in keys) is edited, keys
            assert "best local Z" in keys  # (the numbers stay, said to be of the earlier run)
    assert "config.toml, which the config open here no longer holds; run it (ctrl+r)" in (
        " ".join(keys.split())
    )


@sync
async def test_results_that_summary_refuses_are_not_shown(shared_quickstart, tmp_path):
    """A point config edited by hand after the run: `gprpipe summary` refuses the run in
    one sentence, but the Results tab showed its numbers with no word (its check dropped
    summary's refusal; a review)."""
    import shutil

    from conftest import run_cli_here

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    with (run / "nominal" / "config.toml").open("a") as f:
        f.write("# a note\n")
    code, out, err = run_cli_here("summary", run)
    assert code == 1 and "changed since the run wrote it" in err, out + err
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        keys = _static(app, "#res-keys")
        assert " ".join(keys.split()) in " ".join(err.split()), (keys, err)
        assert "changed since the run wrote it" in keys and "local Z" not in keys
        assert app.query_one("#res-table", DataTable).row_count == 0


@sync
async def test_the_results_masses_are_the_opened_configs(shared_quickstart, tmp_path):
    """The Results masses field kept the masses of the run opened first for any config
    opened after it (a review); a mass outside the scan gave the nearest row's limit."""
    import shutil

    from conftest import quickstart_child

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    other = quickstart_child(
        tmp_path / "other.toml", f'output = "{run}"\n[plot]\nmasses = [0.045, 0.08]\n'
    )
    app = GprpipeApp(shared_quickstart, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        masses = app.query_one("#res-masses", Input)
        assert masses.value == "30, 60, 100"
        app.open_config(other)
        await _settle(pilot, 0.3)
        await pilot.press("f6")
        await _settle(pilot, 0.3)
        assert masses.value == "45, 80", _static(app, "#res-keys")
        limits = _static(app, "#res-keys").split("limits obs/exp: ")[1]
        assert "45 MeV" in limits and "80 MeV" in limits and "100 MeV" not in limits
        # a mass typed outside the scan (30-100 MeV) has no limit (not the 30 MeV row's)
        masses.focus()
        masses.value = "20, 60"
        await pilot.press("enter")
        await _settle(pilot)
        limits = _static(app, "#res-keys").split("limits obs/exp: ")[1]
        assert "30 MeV" not in limits and "60 MeV" in limits
        assert "(no limit at 20 MeV: outside the scanned masses)" in limits


@sync
async def test_a_damaged_scan_csv_is_one_sentence_naming_it(shared_quickstart, tmp_path):
    """A point's scan.csv edited after its task: the Results tab says so in the sentence
    `gprpipe summary` gives, naming the file once (it said "Cannot read scan.csv: " before
    that sentence, which names the file itself), and shows no numbers from it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    scan = run / "nominal" / "scan.csv"
    scan.write_text(scan.read_text().replace("demo", "dem0", 1))
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        notes = [n.message for n in app._notifications if "scan.csv" in n.message]
        assert len(notes) == 1, notes
        assert notes[0].startswith(f"{scan}: ") and notes[0].count("scan.csv") == 1, notes
        assert app.query_one("#res-table", DataTable).row_count == 0
        assert _static(app, "#res-keys").strip() == notes[0]  # it stays in view


def test_the_results_masses_field_reads_units_and_refuses_gev_typed_as_mev():
    """The field is in MeV: ``60MeV``/``0.1GeV`` with their unit, a bare 0.06 (GeV typed
    here) left out with a hint; it dropped ``60MeV`` and read 0.06 as 0.06 MeV."""
    from gprpipe.tui.runs import field_masses

    assert field_masses("30, 60MeV, 0.06, 0.1GeV, abc, 37;48") == (
        [0.03, 0.06, 0.1, 0.037, 0.048],
        [
            "0.06: masses here are in MeV; 60 for 0.06 GeV",
            "masses 'abc': not a mass; write e.g. 60MeV or 0.06GeV.",
        ],
    )


@sync
async def test_a_blinded_run_shows_blinded_and_expected_limits_only(tmp_path):
    from conftest import QUICKSTART, run_cli_here

    out = tmp_path / "blinded"
    sets = [f"base.output={out}", "base.blind=true"]
    args = ["--steps", "load,fit,limit", *[x for s in sets for x in ("--set", s)]]
    code, _, err = run_cli_here("run", QUICKSTART, *args)
    assert code == 0, err
    rows = {
        round(float(r["mass_GeV"]), 6): r
        for r in csv.DictReader((out / "nominal" / "scan.csv").open())
    }
    app = GprpipeApp(out)
    async with app.run_test(size=SIZE) as pilot:
        await _validated(pilot)  # the config's check, then its results
        await _settle(pilot, 0.3)
        keys = _static(app, "#res-keys")
        assert "BLINDED: no significance and no observed limit" in keys
        assert "nan" not in keys and "best local Z" not in keys
        assert f"60 MeV {float(rows[0.06]['eps2_exp_med']):.2e}" in keys
        # the terminal plot: the expected band, no observed line in its legend (a review)
        await pilot.press("p")
        await _settle(pilot)
        plot = _plain(app.query_one("#res-plot").render())
        assert "expected median" in plot and "observed" not in plot


@sync
async def test_results_of_other_settings_or_figures_are_said_not_current(
    shared_quickstart, tmp_path
):
    """After a run without the plot step (other masses) the Results tab showed the earlier
    figures as the plot of the new results; after one without the limit step it showed
    scan.csv of other settings without a word, which summary calls not current (a
    review). Both are said; stale figures are not offered."""
    import shutil

    from conftest import QUICKSTART, run_cli_here, settings

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    other = settings(f"base.output={run}", 'plot.formats=["png"]', "scan.masses=[0.035,0.05]")
    code, _, err = run_cli_here("run", QUICKSTART, "--steps", "load,fit,limit", *other)
    assert code == 0, err
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert "NOT CURRENT" not in _static(app, "#res-keys")
        plot = app.query_one("#res-plot")
        assert plot.files == [] and plot.current is False
    code, _, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load,fit", *other, "--set", "fit.blind_nsigma=1.96"
    )
    assert code == 0, err
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert "NOT CURRENT: scan.csv was made with other settings or inputs" in " ".join(
            _static(app, "#res-keys").split()
        )


@sync
async def test_results_say_the_failed_task_and_figures_not_current_as_summary(
    shared_quickstart, tmp_path
):
    """A point whose limit.h5 was deleted after its run: `gprpipe summary` says its task
    failed and its plots, HEPData and report are not current; the Results key numbers
    showed the same Z and limits without a word of it (a review). Now they carry
    summary's own lines."""
    import shutil

    from conftest import run_cli_here

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    (run / "nominal" / "limit.h5").unlink()
    code, out, _ = run_cli_here("summary", run)
    assert code == 0, out
    lines = [x.strip() for x in out.splitlines()]
    failed = next(i for i, x in enumerate(lines) if x.startswith("failed tasks: "))
    said = [lines[failed], lines[failed + 1]]
    said += [x for x in lines if x.startswith("not current: plots, HEPData, report")]
    assert said[0] == "failed tasks: 1" and "limit.h5 deleted" in said[1] and len(said) == 3
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        await _results_checked(pilot)
        keys = [x.strip() for x in _static(app, "#res-keys").splitlines()]
        assert keys[1:4] == said, keys
        assert keys[4].startswith("best local Z ")  # the numbers are still shown


@sync
async def test_results_check_currency_in_a_worker_thread(shared_quickstart, tmp_path, monkeypatch):
    """Whether a point's results are current hashes its data files: it ran on the UI
    thread at every Results load, 'r' and point change (a 1 s freeze with an 800 MB file,
    a review). It runs in a thread; meanwhile the pane says "checking…" and shows no number
    (a blinded run's would be observed ones) and no figure, then the numbers and the
    point's figures are shown."""
    import shutil
    import threading

    from gprpipe.tui import results

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    gate, on_main = threading.Event(), []
    currency = results.point_currency

    def slow(pdir: Path) -> tuple[bool, bool]:
        on_main.append(threading.current_thread() is threading.main_thread())
        gate.wait(timeout=60)  # (set below; a loaded host may take seconds to get there)
        return currency(pdir)

    monkeypatch.setattr(results, "point_currency", slow)
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        t0 = time.monotonic()
        while not _static(app, "#res-keys").strip() and time.monotonic() - t0 < 30:
            await pilot.pause(0.05)
        plot = app.query_one("#res-plot")
        keys = _static(app, "#res-keys")
        assert keys == f"{run / 'nominal'}: checking whether its results may be shown…\n"
        assert app.query_one("#res-table", DataTable).row_count == 0
        assert plot.files == []
        gate.set()
        await _settle(pilot)
        keys = _static(app, "#res-keys")
        assert "checking" not in keys and "best local Z 1.86 (demo, 100 MeV)" in keys
        assert not plot.checking and plot.current and plot.files
        await pilot.press("f6", "r")
        await _settle(pilot)
        assert _static(app, "#res-keys") == keys
    assert on_main and not any(on_main), on_main


@sync
async def test_switching_tabs_leaves_the_focus_in_the_tab_shown(shared_quickstart, tmp_path):
    """After F5 then F6, Results was left with no focused widget in 3 of 12 switches: the
    Run table, hidden, passed the focus to the Run log, TabbedContent showed Run again
    for it, and the Results table lost the focus as it hid; the footer lost p/s/r and
    they did nothing (a review). Each switch leaves the tab's main widget focused."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    app = GprpipeApp(run, check_delay=0.05, poll_interval=0.3)
    async with app.run_test(size=(140, 40)) as pilot:  # (the race is rarer at 100x30)
        await _settle(pilot, 0.3)
        app.animation_level = "none"  # F5/F6 wait for no tab underline to slide
        focused = []
        for _ in range(6):  # 12 switches
            await pilot.press("f5")
            await pilot.pause(0.1)
            focused.append(getattr(app.focused, "id", None))
            await pilot.press("f6")
            await pilot.pause(0.2)
            focused.append(getattr(app.focused, "id", None))
        assert focused == ["run-tasks", "res-table"] * 6, focused
        await pilot.press("p")  # the pane's keys work
        await pilot.pause()
        assert app.focused is app.query_one("#res-plot")


@sync
async def test_a_config_refused_for_its_folder_still_shows_the_folders_results(tmp_path):
    """A config that validate refuses for its run folder (blinded by an earlier run) hid
    the folder's finished results: Results said "No finished point" (a review)."""
    from conftest import quickstart_child, run_cli_here

    cfg = quickstart_child(tmp_path / "qsb.toml", f'output = "{tmp_path / "run"}"\n')
    steps = ("--steps", "load,fit,limit")
    code, _, err = run_cli_here("run", cfg, *steps, "--set", "base.blind=true")
    assert code == 0, err
    app = GprpipeApp(cfg, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert not app.check.ok and "its last run was blinded" in _issues_text(app)
        app.action_show_tab("results")
        await _settle(pilot, 0.3)
        assert "BLINDED: no significance and no observed limit" in _static(app, "#res-keys")


@sync
async def test_a_launch_from_a_run_folder_runs_the_points_it_holds(tmp_path, monkeypatch):
    """A run folder made with ``--points`` (one of a grid's points): ctrl+r launched every
    point of the config (a review); it runs the points the folder holds."""
    from conftest import quickstart_child, run_cli_here

    from gprpipe.errors import GprpipeError
    from gprpipe.tui import run as run_module

    cfg = quickstart_child(
        tmp_path / "g.toml",
        f'output = "{tmp_path / "run"}"\n[grid]\n"fit.blind_nsigma" = [1.64, 1.96, 2.5]\n',
    )
    code, _, err = run_cli_here("run", cfg, "--points", "0,2", "--steps", "load")
    assert code == 0, err
    given = []

    def launch(config, options, run_dir):
        given.append(options)
        raise GprpipeError("not started in this test")

    monkeypatch.setattr(run_module, "launch_run", launch)

    async def launched(n_points: int) -> list[str | None]:
        """The --points of a launch (ctrl+r) from the run folder."""
        given.clear()
        app = GprpipeApp(tmp_path / "run", check_delay=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot, 0.3)
            assert app.check.ok and len(app.check.points) == n_points
            await pilot.press("ctrl+r")
            await _settle(pilot)
        return [o.points for o in given]

    assert await launched(3) == ["blind_nsigma-1.64,blind_nsigma-2.5"]
    # a run of every point, then a point added to the config: all are run, as the CLI
    # runs them (the added one was left out, "The run folder holds 2 of the grid points":
    # a review)
    code, _, err = run_cli_here("run", cfg, "--steps", "load")
    assert code == 0, err
    cfg.write_text(cfg.read_text().replace("2.5]", "2.5, 3.0]"))
    assert await launched(4) == [None]


@sync
async def test_the_results_table_sorts_nan_and_empty_cells_last_both_ways(tmp_path):
    """A NaN cell gave a NaN sort key: the column came out unsorted. Now the numbers are
    in order and the cells that are no number follow them, ascending and descending."""
    from gprpipe.tui.results import ResultsPane
    from gprpipe.tui.runs import Scan, _value

    text = (
        "dataset,mass_GeV,eps2_up,status\n"
        "demo,0.03,3e-06,ok\ndemo,0.04,nan,failed\ndemo,0.05,1e-06,ok\n"
        "demo,0.06,,failed\ndemo,0.07,2e-06,ok\ndemo,0.08,nan,failed\n"
    )
    columns, *rows = [line.split(",") for line in text.splitlines()]
    scan = Scan(
        tmp_path / "scan.csv",
        columns,
        [{k: _value(k, v) for k, v in zip(columns, r)} for r in rows],
    )
    app = GprpipeApp(tmp_path, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        pane = app.query_one(ResultsPane)
        pane.scan = scan
        pane._fill_table()
        table = app.query_one("#res-table", DataTable)
        shown = []
        for _ in range(2):
            pane.sort_by("eps2_up")
            await pilot.pause()
            shown.append([tuple(table.get_row_at(i)[1:3]) for i in range(table.row_count)])
    numbers = [("0.05", "1e-06"), ("0.07", "2e-06"), ("0.03", "3e-06")]
    assert shown[0] == [*numbers, ("0.06", ""), ("0.04", "nan"), ("0.08", "nan")]
    assert shown[1] == [*numbers[::-1], ("0.04", "nan"), ("0.08", "nan"), ("0.06", "")]


def test_results_key_numbers_take_the_reports_row_and_the_toys_global_z(tmp_path):
    """The Results tab's headline picks the row the reports pick (ok rows only, across the
    datasets and the combination) and gives the toys' global Z beside Sidak's when the
    scan has whole-scan toys (it gave Sidak's alone)."""
    from gprpipe.tui.runs import Scan, _value, key_numbers

    text = (
        "dataset,mass_GeV,Z_local,Z_global,p0_global,Z_global_toys,eps2_up,eps2_exp_med,"
        "gp_converged,status\n"
        "2015,0.03,2.5,1.2,0.11,0.7,1e-6,2e-6,true,ok\n"
        "2015,0.04,3.9,,,,1e-6,2e-6,true,flag_gof\n"  # larger, but flagged
        "combined,0.03,2.1,0.8,0.21,,1e-6,2e-6,true,ok\n"
    )
    table = list(csv.DictReader(io.StringIO(text)))  # as read_scan parses a vouched file
    rows = [{c: _value(c, v) for c, v in r.items()} for r in table]
    k = key_numbers(Scan(tmp_path / "scan.csv", list(table[0]), rows), [0.03])
    assert (k.best_dataset, k.best_mass, k.best_z) == ("2015", 0.03, 2.5)
    assert (k.global_z, k.global_p, k.global_z_toys) == (1.2, 0.11, "0.70")
    assert k.limits == [("2015", 0.03, 1e-6, 2e-6, "ok"), ("combined", 0.03, 1e-6, 2e-6, "ok")]
    # a flagged or failed row is said so (a flagged one was quoted as a result, though
    # summary leaves it out: a review)
    from gprpipe.tui.runs import limit_text

    k = key_numbers(Scan(tmp_path / "scan.csv", list(table[0]), rows), [0.04], "2015")
    assert [limit_text(*x[1:]) for x in k.limits] == [
        "40 MeV 1.00e-06/2.00e-06 (flagged: flag_gof)"
    ]
    assert limit_text(0.05, 1e-6, 2e-6, "ok") == "50 MeV 1.00e-06/2.00e-06"
    assert limit_text(0.05, None, 2e-6, "flag_one_sideband") == (
        "50 MeV 2.00e-06 (flagged: flag_one_sideband)"
    )
    assert limit_text(0.05, math.nan, math.nan, "fit failed: no sideband") == (
        "50 MeV (no limit: fit failed)"
    )
    # no toy reached the observed Z: a bound, shown as one (it showed "2.71")
    bound = [
        {**r, "p0_global_toys": 1 / 301, "p0_global_toys_err": (1 / 301 * 300 / 301 / 300) ** 0.5}
        if r["mass_GeV"] == 0.03 and r["dataset"] == "2015"
        else r
        for r in rows
    ]
    k = key_numbers(Scan(tmp_path / "scan.csv", [*table[0], "p0_global_toys"], bound), [0.03])
    assert k.global_z_toys == "> 0.70"
    assert math.isnan(k.local_p) and k.local_p_toys == ""  # no local p0 columns
    # the local p0 there, asymptotic and from the toys at that mass (as the summary gives)
    local = {"p0_local": 0.0062, "p0_local_toys": 0.021, "p0_local_toys_err": 0.0083}
    with_local = [{**r, **local} if r is bound[0] else r for r in bound]
    k = key_numbers(Scan(tmp_path / "scan.csv", [*table[0], *local], with_local), [0.03])
    assert (k.local_p, k.local_p_toys) == (0.0062, "0.021 +- 0.0083")
    # toys whose Z_local = 0 fraction there is more than 3 errors from 0.5 are named biased
    for frac, shown in ((0.352, " (toys biased here: P(Z_local = 0) 0.352)"), (0.48, "")):
        biased = {**local, "frac_Z0_toys": frac, "frac_Z0_toys_err": 0.0079}
        with_bias = [{**r, **biased} if r is bound[0] else r for r in bound]
        k = key_numbers(Scan(tmp_path / "scan.csv", [*table[0], *biased], with_bias), [0.03])
        assert k.local_p_toys == "0.021 +- 0.0083" + shown
    # every row flagged: no best row (the tab says so instead of "best local Z nan")
    flagged = [{**r, "status": "flag_gof"} for r in rows]
    k = key_numbers(Scan(tmp_path / "scan.csv", list(table[0]), flagged), [0.03])
    assert math.isnan(k.best_z) and k.best_dataset == ""


async def _polled(pilot, run: RunPane, timeout: float = 30.0) -> None:
    """Wait until the Run pane shows a poll of the directory it watches now."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        await pilot.pause(0.1)
        if run.view is not None and run.view.run_dir == run.run_dir() and not run._polling:
            return
    raise AssertionError(f"no poll of {run.run_dir()} shown within {timeout} s")


def _load_run(out: Path, config: Path = QUICKSTART, *sets: str) -> None:
    from conftest import run_cli_here

    args = [x for s in (f"base.output={out}", *sets) for x in ("--set", s)]
    code, _, err = run_cli_here("run", config, "--steps", "load", *args)
    assert code == 0, err


@sync
async def test_another_config_opened_after_a_run_folder_is_not_run_into_it(tmp_path):
    """``gprpipe tui RUN_DIR`` then another config (Browse, new from template): the run's
    --set values (its masses, steps, run directory) stayed, and ctrl+r ran the other config
    into the run's folder (a review). They now belong to the run's config only."""
    from conftest import quickstart_child

    out = tmp_path / "first"
    _load_run(out, QUICKSTART, "scan.masses=[0.03,0.06]")
    other = quickstart_child(tmp_path / "other.toml", f'output = "{tmp_path / "second"}"\n')
    app = GprpipeApp(out, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        run = app.query_one(RunPane)
        assert app.current_run_dir() == out.resolve() and run.run_dir() == out.resolve()
        app.open_config(other)
        await _settle(pilot, 0.3)
        assert app.results_dir is None and app.overrides == ()
        assert run.run_dir() == tmp_path / "second"
        assert app.current_run_dir() == tmp_path / "second"
        assert len(app.check.points[0].config.scan.masses or []) != 2
        assert any("no longer apply" in n.message for n in app._notifications)


@sync
async def test_browse_previews_other_configs_without_the_run_folders_values(tmp_path, monkeypatch):
    """``gprpipe tui RUN_DIR``: Browse previewed every config with the run's recorded --set
    values (its run directory, masses), so another config showed the run's folder. A
    preview is the check of ``gprpipe validate FILE``, with the --set values given only."""
    from conftest import quickstart_child

    from gprpipe.tui.browse import BrowsePane, check_renderable
    from gprpipe.tui.model import check_file

    monkeypatch.chdir(tmp_path)
    a = quickstart_child(tmp_path / "cfg" / "a.toml")
    b = quickstart_child(tmp_path / "cfg" / "b.toml", 'name = "bee"\n')
    out = tmp_path / "run"
    _load_run(out, a, "scan.masses=[0.03,0.06]")
    given = ("fit.blind_nsigma=1.96",)
    app = GprpipeApp(out, overrides=given, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert app.overrides[-1] == given[0] and len(app.overrides) > 1  # the run's, given
        browse = app.query_one(BrowsePane)
        browse.preview(b)
        await _settle(pilot)
        shown = _static(app, "#browse-text")
    assert shown == _plain(check_renderable(check_file(b, given), title="cfg/b.toml"))
    assert "✓ valid, 1 point, 6 tasks" in shown and 'output = "runs/bee"' in shown
    assert "blind_nsigma = 1.96" in shown and 'run = ["load", "fit", "limit", "plot"]' in shown
    assert str(out) not in shown and "masses = [0.03, 0.06]\n" not in shown


@sync
async def test_a_run_folder_whose_config_is_gone_shows_its_tasks(tmp_path):
    """The Run tab of a run folder whose config was moved away was empty ("No run to rerun
    yet"), although status and rerun work from the folder alone (a review)."""
    cfg = tmp_path / "gone.toml"
    cfg.write_text(QUICKSTART.read_text())
    out = tmp_path / "run"
    _load_run(out, cfg)
    cfg.unlink()
    app = GprpipeApp(out, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        await pilot.press("f5")
        run = app.query_one(RunPane)
        await _polled(pilot, run)
        assert run.run_dir() == out.resolve()
        assert run.view.states == {"nominal/load": ("done", run.view.states["nominal/load"][1])}
        # ctrl+r said "The config has errors" of a config that is not there (a review)
        await pilot.press("ctrl+r")
        await _settle(pilot)
        assert [n.message for n in app._notifications][-1] == (
            "There is no config to run: the editor is empty; open one (Browse, F1) or start "
            "one from a template."
        )
        assert run.launch is None


@sync
async def test_after_a_launch_ends_the_run_tab_follows_the_config_opened_next(tmp_path):
    """The Run and Results tabs stayed on the run launched here for any config opened
    later, and x / f acted on it (a review)."""
    from conftest import quickstart_child

    first = quickstart_child(tmp_path / "first.toml", f'output = "{tmp_path / "run"}"\n')
    other = quickstart_child(tmp_path / "other.toml", f'output = "{tmp_path / "second"}"\n')
    app = GprpipeApp(first, overrides=['steps.run=["load"]'], check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("ctrl+r")
        run = app.query_one(RunPane)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and (run.busy or not run._reported):
            await pilot.pause(0.2)
        assert run.launch.returncode() == 0 and run.run_dir() == tmp_path / "run"
        app.open_config(other)
        await _settle(pilot, 0.3)
        assert run.launch is None and run.run_dir() == tmp_path / "second"
        assert app.current_run_dir() == tmp_path / "second"
        await pilot.press("f5")
        await _polled(pilot, run)
        assert "not started" in _static(app, "#run-summary")


@sync
async def test_a_launch_into_a_folder_in_use_says_why_and_writes_nothing_there(tmp_path):
    """ctrl+r while another process runs the folder: the notice said "Run ended with exit
    code 1: 0 failed. See the log below" over another task's log, and the launch had
    replaced the other run's tui-launch files (a review)."""
    from gprpipe.pipeline.lock import run_lock

    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        with run_lock(tmp_path / "run", command="gprpipe run other.toml"):
            await pilot.press("ctrl+r")
            await _settle(pilot)
        assert app.query_one(RunPane).launch is None
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".gprpipe.lock"]
        (note,) = [n.message for n in app._notifications]
        assert note.startswith(f"{tmp_path / 'run'} is in use by gprpipe run other.toml (pid ")
        assert note.endswith(": wait for it to finish, or stop it first.")


@sync
async def test_the_run_tab_polls_in_a_worker_thread(tmp_path, monkeypatch):
    """A poll of SLURM (squeue slow to answer) or of thousands of local markers ran on the
    UI thread: a key press waited 8.7 s for a hung squeue (a review)."""
    import threading

    from gprpipe.pipeline.watch import RunWatcher

    threads: list[bool] = []
    poll = RunWatcher.poll

    def recorded(self, run_dir, planned=()):
        threads.append(threading.current_thread() is threading.main_thread())
        return poll(self, run_dir, planned)

    monkeypatch.setattr(RunWatcher, "poll", recorded)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f5")
        await _polled(pilot, app.query_one(RunPane))
    assert threads and not any(threads), threads


@sync
async def test_a_launch_that_fails_at_once_shows_why(tmp_path):
    """A launch the run refuses (its data file gone after the check) said "Run ended with
    exit code 1: 0 failed. See the log below" with a task's log below, or none; then "exit
    code 1: 0 tasks failed: error: ...", and left a new run folder holding only its
    tui-launch files, where ``gprpipe run`` leaves nothing. Now the notice says "refused"
    with the run's own sentence, the pane shows the launch's output, and the folder the
    launch made is gone."""
    import shutil

    data = tmp_path / "data.root"
    shutil.copy(REPO / "gprpipe" / "data" / "demo_2015.root", data)
    cfg = tmp_path / "c.toml"
    cfg.write_text(QUICKSTART.read_text().replace("{{ gprpipe.data }}/demo_2015.root", str(data)))
    app = _app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        data.unlink()  # after the check: the run itself refuses it
        await pilot.press("ctrl+r")
        run = app.query_one(RunPane)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and (run.busy or not run._reported):
            await pilot.pause(0.2)
        await _settle(pilot)
        assert run.launch.returncode() == 2 and run.launch.refused
        why = f"{data}: data file not found"
        notes = [n.message for n in app._notifications if "refused" in n.message]
        assert notes == [
            f"Run refused: {cfg}:9: datasets.demo.path: {why} (point it at your file: --set "
            "datasets.demo.path=FILE, or edit the config). Nothing ran "
            f"({tmp_path / 'run'} removed); its output is below."
        ]
        assert _static(app, "#log-title").startswith("Output of the run (refused; ")
        assert why in _static(app, "#log-tail")
        assert "run refused" in _static(app, "#run-summary")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_a_refused_launch_removes_only_the_folders_it_made(tmp_path):
    """Launch.discard: after a refusal (exit REFUSED) the spec, the log and the folders the
    launch made go, the log's text kept; a folder holding anything else stays whole."""
    import sys

    from gprpipe.pipeline.launch import LAUNCH_LOG, LAUNCH_SPEC, REFUSED, Launch

    said = "import sys; print('error: apptainer not found.'); sys.exit(%d)"
    for extra, code in ((None, REFUSED), ("point", REFUSED), (None, 1)):
        top = tmp_path / f"{extra}-{code}"
        run_dir = top / "runs" / "x"
        run_dir.mkdir(parents=True)
        (run_dir / LAUNCH_SPEC).write_text("{}")
        if extra:
            (run_dir / extra).mkdir()
        launch = Launch([sys.executable, "-c", said % code], run_dir / LAUNCH_LOG, made=top)
        launch.start()
        assert launch.proc is not None and launch.proc.wait(30) == code
        removed = launch.discard()
        assert removed == (extra is None and code == REFUSED)
        assert top.exists() != removed and run_dir.is_dir() != removed
        assert launch.read_output() == "error: apptainer not found.\n"


@sync
async def test_checks_run_one_at_a_time_on_the_latest_text(tmp_path, monkeypatch):
    """Each pause in typing started another full check in a thread that cancelling could
    not stop (five at once on a 1000-point grid, 9 s each), and quitting waited for them
    all (a review): one check runs at a time, the edits made meanwhile are one check of
    the latest text, and its thread never holds the process at exit."""
    import threading

    from gprpipe.tui import app as app_module

    real = app_module.check_text
    running, calls, most = [0], [], [0]

    def slow(text, path, overrides):
        running[0] += 1
        most[0] = max(most[0], running[0])
        calls.append(text)
        time.sleep(0.6)
        try:
            return real(text, path, overrides)
        finally:
            running[0] -= 1

    monkeypatch.setattr(app_module, "check_text", slow)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        threads: list[threading.Thread] = []
        for _ in range(300):  # the first check starts once the app is up (later under load)
            await pilot.pause(0.1)
            threads = [t for t in threading.enumerate() if t.name == "gprpipe-check"]
            if threads:
                break
        assert threads and all(t.daemon for t in threads)
        for i in range(5):
            app.editor.text = app.editor.text + f"\n# edit {i}"
            await pilot.pause(0.15)
        for _ in range(60):
            await pilot.pause(0.1)
            if not app._checking:
                break
        assert most[0] == 1
        assert len(calls) <= 5 and calls[-1].endswith("# edit 4")  # of 7 asked for
        assert app.check is not None and app.check.text.endswith("# edit 4")


def test_a_launch_whose_submission_failed_partway_is_no_refusal(tmp_path, monkeypatch):
    """sbatch failing after some jobs were queued raised a plain GprpipeError before the
    observer heard of any submission: the launch exited REFUSED and the TUI said "Run
    refused: ... Nothing ran" while those jobs ran on (a review). It exits 1."""
    import io

    from gprpipe.errors import GprpipeError, PartlySubmitted
    from gprpipe.pipeline import launch

    def run(*args, **kwargs):
        raise PartlySubmitted("sbatch failed; already submitted: nominal/load (job 7)")

    monkeypatch.setattr(launch.service, "run", run)
    monkeypatch.setattr(launch, "_prestart_workers", lambda spec: None)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "run", "config": "c.toml", "options": {}}))
    out = io.StringIO()
    assert launch._main([str(spec)], out) == 1
    assert "already submitted: nominal/load (job 7)" in out.getvalue()

    def refused(*args, **kwargs):
        raise GprpipeError("apptainer not found")

    monkeypatch.setattr(launch.service, "run", refused)
    assert launch._main([str(spec)], io.StringIO()) == launch.REFUSED


@sync
async def test_a_save_as_copy_of_a_run_folders_config_leaves_the_folder(tmp_path, monkeypatch):
    """A run folder opened and its config saved under another name (Save as, Rename): the
    copy kept the folder's --set values, its run directory among them, and ctrl+r ran the
    copy into the original's folder, over its results (a review)."""
    from conftest import quickstart_child

    monkeypatch.chdir(tmp_path)
    cfg = quickstart_child(tmp_path / "cfg" / "qs.toml")
    out = tmp_path / "qs"
    _load_run(out, cfg)
    app = GprpipeApp(out, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert app.check.run_dir.resolve() == out.resolve()
        await pilot.press("f2")
        await pilot.press("ctrl+o")
        await _settle(pilot)
        app.screen.query_one("#path-input", Input).value = "cfg/variant.toml"
        await pilot.press("enter")
        await _settle(pilot)
        # the copy would write where the original config does by itself (runs/quickstart)
        assert isinstance(app.screen, ConfirmDialog), app.screen
        assert "cfg/variant.toml would write its results into" in app.screen.question
        await pilot.press("y")
        await _settle(pilot)
        assert 'name = "variant"' in (tmp_path / "cfg" / "variant.toml").read_text()
        assert app.results_dir is None and app.overrides == ()
        assert app.check.run_dir.resolve() == (tmp_path / "runs" / "variant").resolve()
        assert app.query_one(RunPane).run_dir().resolve() != out.resolve()


@sync
async def test_workers_beyond_what_a_run_takes_are_refused_in_their_field(tmp_path):
    """5000 workers in the Run tab was refused as "--set base.jobs: Input should be less
    than or equal to 1024", a setting the user never typed (a review)."""
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f5")
        await _settle(pilot)
        app.query_one("#run-jobs", Input).value = "5000"
        await pilot.press("ctrl+r")
        await _settle(pilot)
        assert [n.message for n in app._notifications][-1] == (
            "Workers: a whole number of local worker processes from 1 to 1024, not '5000'."
        )
        assert app.query_one(RunPane).launch is None and not (tmp_path / "run").exists()
        # nor 0, -3 or words (they ran with one worker, where -j refuses them: a review)
        for typed in ("0", "-3", "two"):
            app.query_one("#run-jobs", Input).value = typed
            await pilot.press("ctrl+r")
            await _settle(pilot)
            assert [n.message for n in app._notifications][-1].endswith(f"not {typed!r}.")
            assert app.query_one(RunPane).launch is None and not (tmp_path / "run").exists()


@sync
async def test_browse_validates_a_config_again_when_a_file_it_inherits_changed(
    tmp_path, monkeypatch
):
    """The Browse preview of a config stayed "valid" after the config it inherits was
    broken (the preview was kept by the file's own modification time; a review)."""
    import os

    from conftest import quickstart_child, write

    from gprpipe.tui.browse import BrowsePane

    monkeypatch.chdir(tmp_path)
    parent = quickstart_child(tmp_path / "cfg" / "parent.toml")
    child = write(tmp_path / "cfg" / "child.toml", f'[base]\ntemplate = "{parent}"\n')
    app = GprpipeApp(child, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        browse = app.query_one(BrowsePane)
        browse.preview(child)
        await _settle(pilot)
        assert "✓ valid" in _static(app, "#browse-text")
        text = parent.read_text()
        parent.write_text(text + "[scan]\nmass_step = -1\n")
        later = parent.stat().st_mtime + 5
        os.utime(parent, (later, later))
        browse.preview(child)
        await _settle(pilot)
        shown = _static(app, "#browse-text")
        assert "✗ 1 error" in shown and "mass_step" in shown, shown
        # a parent that does not load (no chain known), then mended: valid again
        for written, said in (("name = = broken\n", "invalid TOML"), (text, "✓ valid")):
            parent.write_text(written)
            later += 5
            os.utime(parent, (later, later))
            browse.preview(child)
            await _settle(pilot)
            assert said in _static(app, "#browse-text"), written


@pytest.mark.slow
@sync
async def test_the_results_dataset_choice_outlives_a_reload(real_combined):
    """The Results tab went back to the first dataset at each reload (r, or showing the
    tab again): its check emptied the dataset list while it ran (a review)."""
    app = GprpipeApp(real_combined, check_delay=0.05, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        choice = app.query_one("#res-dataset", Select)
        assert choice.value == "2015"
        first = _static(app, "#res-keys")
        choice.value = "2016"
        await _settle(pilot)
        app.query_one(ResultsPane).reload()
        await _settle(pilot)
        assert choice.value == "2016"
        assert "limits obs/exp: 75 MeV" in _static(app, "#res-keys")
        # the blank choice listed the limits of every dataset unlabelled, each mass three
        # times (a review): a dataset is always chosen
        choice.value = Select.NULL
        await _settle(pilot)
        assert choice.value == "2015" and _static(app, "#res-keys") == first
        assert first.count("75 MeV") == 1


@sync
async def test_a_check_that_fails_is_said_and_the_app_stays(
    shared_quickstart, tmp_path, monkeypatch
):
    """The Results pane shows no number until its check answers: a check that raised
    anything but a file error ended the app (a worker failure; a review)."""
    import shutil

    from gprpipe.tui import results

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)

    def broken(point_dir: Path) -> tuple[bool, bool]:
        raise ValueError("boom")

    monkeypatch.setattr(results, "point_currency", broken)
    app = GprpipeApp(run)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.3)
        assert _static(app, "#res-keys").strip() == (
            f"{run / 'nominal'}: could not be checked (ValueError: boom)."
        )
        assert app.query_one("#res-table", DataTable).row_count == 0 and app.is_running


@sync
async def test_the_text_plot_says_the_points_confidence_level(tmp_path):
    """The Results tab's text plot said "95% CL" whatever limit.alpha the point was run
    with (a newcomer audit; the figures, HEPData and compare say 1 - alpha)."""
    from conftest import quickstart_child, run_cli_here

    run = tmp_path / "run"
    cfg = quickstart_child(tmp_path / "a.toml", f'output = "{run}"\n[limit]\nalpha = 0.1\n')
    code, out, err = run_cli_here("run", cfg, "--steps", "load,fit,limit")
    assert code == 0, out + err
    app = GprpipeApp(run, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _results_keys(app, pilot, 0.5)
        await pilot.press("p")
        await _settle(pilot)
        assert "ε² upper limit, demo (90% CL)" in _plain(app.query_one("#res-plot").render())


@sync
async def test_a_point_folder_given_opens_its_run(shared_quickstart, tmp_path):
    """`gprpipe tui runs/mine/nominal` (the folder holding scan.csv and plots/) opened
    nothing: "No finished point ... Start a run" (a newcomer audit). It opens the point's
    run folder and says so."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    app = GprpipeApp(run / "nominal", check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        keys = await _results_keys(app, pilot, 0.5)
        assert app.results_dir == run.resolve()
        assert "best local Z" in keys, keys
        said = [n.message for n in app._notifications]
        assert (
            f"{run / 'nominal'} is a point folder: its run folder {run.resolve()} is open." in said
        )


@sync
async def test_the_run_tab_of_a_refused_folder_shows_no_invented_counts(
    shared_quickstart, tmp_path
):
    """A finished run whose point config was edited by hand: the Run tab showed its 6
    tasks as "pending 6   not started" above the refusal (status refuses the folder), and
    f said "No run to rerun yet." (a newcomer audit). It shows the refusal alone, and f
    repeats it."""
    import shutil

    from textual.widgets import DataTable

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    point_cfg = run / "nominal" / "config.toml"
    point_cfg.write_text(point_cfg.read_text() + "# edited\n")
    app = GprpipeApp(run, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await _settle(pilot, 0.5)
        summary = " ".join(_static(app, "#run-summary").split())
        assert f"{point_cfg}: changed since the run wrote it" in summary, summary
        assert "pending" not in summary and "not started" not in summary, summary
        assert app.query_one("#run-tasks", DataTable).row_count == 0
        await pilot.press("f")
        await _settle(pilot)
        said = [n.message for n in app._notifications]
        assert any(m.startswith(f"{point_cfg}: changed since the run wrote it") for m in said)
        assert "No run to rerun yet." not in said


@sync
async def test_results_during_a_run_of_other_settings_say_the_run_recomputes_them(
    shared_quickstart, tmp_path
):
    """Opened while a run of other settings went on, the Results tab said "NOT CURRENT ...
    (a later run left its step out, or the data changed); run the point again", and with
    no scan.csv yet "Start a run in Run (F5)" (a newcomer audit). Both name the run going
    on; once it is gone, the advice is back."""
    import hashlib
    import shutil

    from gprpipe.config import load_points
    from gprpipe.pipeline.lock import run_lock
    from gprpipe.pipeline.store import load_run_info, write_point_configs

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    sets = [f"base.output={run}", 'plot.formats=["png"]', "fit.blind_nsigma=1.9"]
    _, points = load_points(QUICKSTART, sets)
    with run_lock(run, command="gprpipe run"):
        write_point_configs(run, points)  # and run.json, as the run writes them
        info = load_run_info(run)
        sha = hashlib.sha256((run / "nominal" / "config.toml").read_bytes()).hexdigest()
        info.data["grid"][0]["config_sha256"] = sha
        info.save()
        app = GprpipeApp(run, check_delay=0.05)
        async with app.run_test(size=SIZE) as pilot:
            keys = " ".join((await _results_keys(app, pilot, 0.5)).split())
        assert "NOT CURRENT: scan.csv was made with other settings" in keys, keys
        assert "(the run going on recomputes it: Run, F5, follows it)" in keys, keys
        assert "run the point again" not in keys
        (run / "nominal" / "scan.csv").rename(tmp_path / "scan.csv")
        app = GprpipeApp(run, check_delay=0.05)
        async with app.run_test(size=SIZE) as pilot:
            keys = " ".join((await _results_keys(app, pilot, 0.5)).split())
        assert "A run is going on there: Run (F5) follows it." in keys, keys
        (tmp_path / "scan.csv").rename(run / "nominal" / "scan.csv")
    app = GprpipeApp(run, check_delay=0.05)  # the run gone, its tasks not redone
    async with app.run_test(size=SIZE) as pilot:
        keys = " ".join((await _results_keys(app, pilot, 0.5)).split())
    assert "(a later run left its step out, or the data changed); run the point again" in keys
