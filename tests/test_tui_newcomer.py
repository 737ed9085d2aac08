"""TUI pilot tests (App.run_test) for the newcomer issue: Save as never silently shares the
original's run directory; the Form says what Enter does; Results keep the mass column,
mark the sort; ``gprpipe tui RUN_DIR`` opens that run's results; durations in one format."""

from __future__ import annotations

import csv
import resource
import shutil
import signal
from pathlib import Path

import pytest
from conftest import DEMO_ROOT, QUICKSTART, run_cli_here
from test_tui import SIZE, _settle, _static, sync
from textual.widgets import DataTable, Input, TextArea

from gprpipe.config import load_points
from gprpipe.pipeline.state import fmt_duration
from gprpipe.tui.app import GprpipeApp
from gprpipe.tui.tomledit import set_key
from gprpipe.tui.widgets import ConfirmDialog


def _copy_quickstart(folder: Path) -> Path:
    target = folder / "quickstart.toml"
    shutil.copy(QUICKSTART, target)  # portable: the demo is found through {{ gprpipe.data }}
    return target


async def _save_as(app: GprpipeApp, pilot, name: str) -> None:
    await pilot.press("ctrl+o")
    await _settle(pilot)
    app.screen.query_one("#path-input", Input).value = name
    await pilot.press("enter")
    await _settle(pilot)


@sync
async def test_save_as_offers_a_new_name_instead_of_sharing_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = _copy_quickstart(tmp_path)
    app = GprpipeApp(original, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.check.ok, app.check.errors
        await _save_as(app, pilot, "variant.toml")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert "would write its results into runs/quickstart" in dialog.question
        assert "Set base.name = 'variant'" in dialog.question
        await pilot.press("y")  # Rename
        await _settle(pilot, 0.3)
        saved = tmp_path / "variant.toml"
        assert saved.read_text() == app.query_one("#editor", TextArea).text
        assert 'name = "variant"' in saved.read_text()
        (p_orig,) = load_points(original)[1]
        (p_new,) = load_points(saved)[1]
        assert p_orig.config.base.output == str(tmp_path / "runs" / "quickstart")
        assert p_new.config.base.output == str(tmp_path / "runs" / "variant")
        assert original.read_text() == QUICKSTART.read_text()  # the original is untouched
        # a copy whose base.name was already changed is saved without a question
        app.edit_text(lambda text: set_key(text, ["base", "name"], '"third"'))
        await _settle(pilot)
        await _save_as(app, pilot, "third.toml")
        assert not isinstance(app.screen, ConfirmDialog)
        assert 'name = "third"' in (tmp_path / "third.toml").read_text()


@sync
async def test_save_as_renames_a_dotted_key_config_and_refuses_an_inline_table(
    tmp_path, monkeypatch
):
    """Rename appended a second ``[base]`` table to a config whose base is written with
    dotted keys and saved the invalid file ("Saved"). Now base.name and base.output are
    set as dotted keys; a base written as an inline table is refused and nothing saved."""
    monkeypatch.chdir(tmp_path)
    body = 'datasets.2015.path = "{{ gprpipe.data }}/demo_2015.root"\nscan.masses = [0.03]\n'
    dotted = tmp_path / "dotted.toml"
    dotted.write_text(f'base.template = "hps2015"\nbase.output = "{tmp_path}/runs/a"\n{body}')
    inline = tmp_path / "inline.toml"
    inline.write_text(f'base = {{ template = "hps2015", output = "{tmp_path}/runs/a" }}\n{body}')
    for original, name in ((dotted, "copy"), (inline, "other")):
        before = original.read_text()
        app = GprpipeApp(original, check_delay=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot)
            assert app.check.ok, app.check.errors
            await _save_as(app, pilot, f"{name}.toml")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")  # Rename
            await _settle(pilot, 0.3)
            notes = [n.message for n in app._notifications]
        assert original.read_text() == before
        if original == dotted:
            assert notes[-1] == "Saved copy.toml."
            assert (tmp_path / "copy.toml").read_text() == before.replace(
                f'"{tmp_path}/runs/a"\n', '"runs/{{ base.name }}"\nbase.name = "copy"\n'
            )
            (point,) = load_points(tmp_path / "copy.toml")[1]
            assert point.config.base.name == "copy"
            assert point.config.base.output == str(tmp_path / "runs" / "copy")
        else:
            assert notes[-1] == (
                "Cannot set base.name from here: base is an inline table in the text; "
                "edit it in the text."
            )
            assert not (tmp_path / "other.toml").exists()


@sync
async def test_save_as_keep_writes_the_text_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = _copy_quickstart(tmp_path)
    app = GprpipeApp(original, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await _save_as(app, pilot, "same_run.toml")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # Keep: the user wants the same run directory
        await _settle(pilot)
        assert (tmp_path / "same_run.toml").read_text() == original.read_text()


@sync
async def test_save_as_onto_an_existing_file_asks_before_overwriting(tmp_path, monkeypatch):
    """Cancel leaves the existing file as it was; Overwrite writes the editor's text."""
    monkeypatch.chdir(tmp_path)
    original = _copy_quickstart(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("# someone else's config\n")
    app = GprpipeApp(original, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.edit_text(lambda text: set_key(text, ["base", "name"], '"other"'))
        await _settle(pilot)
        for answer, expected in (("n", "# someone else's config\n"), ("y", None)):
            await _save_as(app, pilot, "other.toml")
            dialog = app.screen
            assert isinstance(dialog, ConfirmDialog)
            assert dialog.question == "other.toml exists: overwrite it?"
            await pilot.press(answer)
            await _settle(pilot, 0.3)
            assert not isinstance(app.screen, ConfirmDialog)
            text = app.query_one("#editor", TextArea).text
            assert other.read_text() == (expected or text)
        assert 'name = "other"' in other.read_text()
        assert original.read_text() == QUICKSTART.read_text()


@sync
async def test_form_note_says_enter_sets_the_text_and_ctrl_s_saves(tmp_path):
    app = GprpipeApp(QUICKSTART, overrides=[f"base.output={tmp_path}"], check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)
        note = " ".join(_static(app, "#form-note").split())
        assert "Enter (or leaving a field) sets the value in the config text" in note
        assert "ctrl+s saves the file" in note and "writes it to the file" not in note


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tui-run") / "run"
    code, _, err = run_cli_here(
        "run",
        QUICKSTART,
        "--steps",
        "load,fit,limit",
        "--set",
        f"base.output={run_dir}",
    )
    assert code == 0, err
    return run_dir


@sync
async def test_tui_run_dir_opens_its_results_mass_column_fixed_and_sort_marked(finished: Path):
    rows = list(csv.DictReader((finished / "nominal" / "scan.csv").open()))
    app = GprpipeApp(finished, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot, 0.4)
        assert app.query_one("#tabs").active == "results"
        assert app.current_run_dir() == finished.resolve()
        table = app.query_one("#res-table", DataTable)
        assert table.row_count == len(rows) == 5
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[:2] == ["dataset", "mass_GeV"] and table.fixed_columns == 2
        # scrolled to the far right, the mass is still on screen
        table.focus()
        table.move_cursor(column=len(labels) - 1)
        await _settle(pilot)
        assert table.scroll_x > 0
        header = table.render_line(0).text
        assert header.lstrip().startswith("dataset") and "mass_GeV" in header
        assert "eps2_up" not in header  # scrolled past it
        # sort by eps2_up: the header shows the column and the direction
        table.move_cursor(column=labels.index("eps2_up"))
        await pilot.press("s")
        await _settle(pilot)
        heads = {str(k.value): str(c.label) for k, c in table.columns.items()}
        assert heads["eps2_up"] == "eps2_up ▲" and heads["mass_GeV"] == "mass_GeV"
        eps = [float(table.get_row_at(i)[labels.index("eps2_up")]) for i in range(5)]
        assert eps == sorted(eps)
        await pilot.press("s")
        await _settle(pilot)
        heads = {str(k.value): str(c.label) for k, c in table.columns.items()}
        assert heads["eps2_up"] == "eps2_up ▼"
        eps = [float(table.get_row_at(i)[labels.index("eps2_up")]) for i in range(5)]
        assert eps == sorted(eps, reverse=True)


def test_one_duration_format():
    assert [fmt_duration(x) for x in (0.04, 4.25, 59.9, 60.0, 185.2)] == [
        "0.0 s",
        "4.2 s",
        "59.9 s",
        "1 min 00 s",
        "3 min 05 s",
    ]


@sync
async def test_a_file_that_is_not_a_config_is_refused_and_never_overwritten(tmp_path):
    """``gprpipe tui data.root`` crashed the app with a UnicodeDecodeError; now it says why
    and opens nothing, so ctrl+s cannot write the empty editor over the ROOT file."""
    data = tmp_path / "data.root"
    shutil.copy(DEMO_ROOT, data)
    app = GprpipeApp(data, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert app.path is None
        (note,) = [n.message for n in app._notifications]
        assert note == f"{data}: not a config file (byte 6 is not UTF-8 text; a config is TOML)."
        await pilot.press("ctrl+s")
        await _settle(pilot)
    assert data.read_bytes() == DEMO_ROOT.read_bytes()


@sync
async def test_ctrl_s_asks_before_overwriting_a_file_changed_on_disk(tmp_path, monkeypatch):
    """ctrl+s wrote over a config changed on disk since it was opened (another editor) or
    made meanwhile at the path of a new config (another session): it asks; and reopening
    the file shown from Browse dropped the unsaved edits without asking (a review)."""
    monkeypatch.chdir(tmp_path)
    config = _copy_quickstart(tmp_path)
    app = GprpipeApp(config, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.edit_text(lambda text: set_key(text, ["base", "name"], '"mine"'))
        await _settle(pilot)
        outside = config.read_text() + "# an edit made in another editor\n"
        config.write_text(outside)
        for answer in ("n", "y"):
            await pilot.press("ctrl+s")
            await _settle(pilot)
            dialog = app.screen
            assert isinstance(dialog, ConfirmDialog)
            assert "changed on disk since it was opened or saved" in dialog.question
            await pilot.press(answer)
            await _settle(pilot)
            if answer == "n":
                assert config.read_text() == outside
        assert 'name = "mine"' in config.read_text() and "another editor" not in config.read_text()
        await pilot.press("ctrl+s")  # saved as it is on disk now: no question
        await _settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        app.edit_text(lambda text: set_key(text, ["base", "name"], '"again"'))
        await _settle(pilot)
        app.open_config(config)  # the file shown, from Browse
        await _settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # Keep
        await _settle(pilot)
        assert 'name = "again"' in app.query_one("#editor", TextArea).text


@sync
async def test_a_save_that_fails_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    """A failed save (here a file size limit; disk full alike) truncated the config: the
    text was written in place. Now it is written beside and renamed: the old bytes stay,
    and the notice says the file could not be saved."""
    monkeypatch.chdir(tmp_path)
    config = _copy_quickstart(tmp_path)
    config.chmod(0o640)
    before = config.read_bytes()
    app = GprpipeApp(config, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.edit_text(lambda text: text + "# " + "x" * 20_000 + "\n")
        await _settle(pilot)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an OSError, not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, hard))
        try:
            app._write(config)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, handler)
        await pilot.pause()
        assert config.read_bytes() == before
        assert [n.message for n in app._notifications][-1] == (
            "Cannot save quickstart.toml: File too large"
        )
        assert app.modified and [p.name for p in tmp_path.iterdir()] == ["quickstart.toml"]
        await pilot.press("ctrl+s")  # without the limit: saved, its permissions kept
        await _settle(pilot)
        assert config.read_text() == app.query_one("#editor", TextArea).text
    assert len(config.read_bytes()) > len(before) + 20_000
    assert config.stat().st_mode & 0o777 == 0o640


@sync
async def test_text_typed_with_no_config_open_is_saved_or_asked_for(tmp_path, monkeypatch):
    """With no config open, typed text was lost without a word: ctrl+s said "Nothing to
    save" and ctrl+q quit (a review). ctrl+s asks for a file name; quitting asks first."""
    monkeypatch.chdir(tmp_path)
    app = GprpipeApp(tmp_path, check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        app.query_one("#editor", TextArea).text = '[base]\\nname = "typed"\\n'
        await _settle(pilot)
        assert app.modified
        await pilot.press("ctrl+q")
        await _settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "The text typed (no file) has unsaved changes" in app.screen.question
        await pilot.press("n")  # Stay
        await _settle(pilot)
        await pilot.press("ctrl+s")
        await _settle(pilot)
        app.screen.query_one("#path-input", Input).value = "typed.toml"
        await pilot.press("enter")
        await _settle(pilot, 0.3)
        assert (tmp_path / "typed.toml").read_text() == '[base]\\nname = "typed"\\n'
        assert app.path.resolve() == tmp_path / "typed.toml" and not app.modified


@sync
async def test_form_dataset_keys_and_save_as_names_follow_the_config(tmp_path, monkeypatch):
    """The form's "Add a dataset" refused '+' and took 'données', the opposite of the
    config's rule; Save as "v1.2" wrote v1.toml (a review)."""
    monkeypatch.chdir(tmp_path)
    app = GprpipeApp(_copy_quickstart(tmp_path), check_delay=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("f3")
        await _settle(pilot)
        form = app.query_one("#form-pane")
        for key in ("données", "a.b", "combined"):
            form._add_dataset(f"{key} = hps2016")
            await _settle(pilot)
            assert f"[datasets.{key}]" not in app.query_one("#editor", TextArea).text
        form._add_dataset("a+b = hps2016")
        await _settle(pilot)
        assert '[datasets."a+b"]\ncard = "hps2016"' in app.query_one("#editor", TextArea).text
        # a key that is there already: refused, its card unchanged (a review: "adding"
        # demo = hps2016 rewrote the existing dataset's card, and a disabled dataset's
        # enabled = false to true, without a word)
        before = app.query_one("#editor", TextArea).text
        for raw in ("demo = hps2016", "demo", "a+b = hps2021"):
            form._add_dataset(raw)
            await _settle(pilot)
            assert app.query_one("#editor", TextArea).text == before, raw
        said = [n.message for n in app._notifications]
        assert "datasets.demo is there already: change its fields above (a new dataset " in (
            " ".join(said)
        )
        # a card name with a quote stays one TOML string
        form._add_dataset('c2 = hps"2016')
        await _settle(pilot)
        assert '[datasets.c2]\ncard = "hps\\"2016"' in app.query_one("#editor", TextArea).text
        await _save_as(app, pilot, "v1.2")
        if isinstance(app.screen, ConfirmDialog):  # (the run-directory question)
            await pilot.press("n")
            await _settle(pilot, 0.3)
        assert (tmp_path / "v1.2.toml").is_file() and not (tmp_path / "v1.toml").exists()


def test_browse_says_a_file_that_is_not_a_config_without_an_empty_prefix(tmp_path):
    """Browsing a binary file named .toml showed "✗ 1 error" and ": /path: not a config
    file", an empty place before the colon (a newcomer audit)."""
    from gprpipe.tui.browse import check_renderable
    from gprpipe.tui.model import check_file

    path = tmp_path / "x.toml"
    path.write_bytes(b"\x00\xff\xfebinary")
    parts = check_renderable(check_file(path)).renderables
    lines = [p.plain for p in parts if hasattr(p, "plain")]
    assert lines[0] == "✗ 1 error"
    assert lines[1].startswith(f"{path}: not a config file (byte "), lines
