"""Snapshot tests of the TUI's main screens (pytest-textual-snapshot, 80x24).

Stable by construction: the app runs from the repository root on the shipped quickstart,
paths are shown relative to the current folder, no clock or timing is displayed, cursors
do not blink in headless runs, and the run directory is one that is never run
(``runs/_tui_snapshots``) so every task shows pending. Update after an intended change of
the screens (or of the quickstart, the templates or the shipped configs) with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHIPPED_USER_CONFIGS, run_cli_here
from test_tui import _validated
from textual.widgets import TextArea

from gprpipe.tui import browse
from gprpipe.tui.app import GprpipeApp
from gprpipe.tui.model import config_files

REPO = Path(__file__).resolve().parents[1]
CONFIG = "user_configs/quickstart.toml"
NEVER_RUN = "runs/_tui_snapshots"
SIZE = (80, 24)


@pytest.fixture
def in_repo(monkeypatch):
    """The app in the repository, seeing only the shipped configs of user_configs/ (a
    config a user saved there, e.g. from the TUI, must not change the screens)."""
    monkeypatch.chdir(REPO)
    assert not (REPO / NEVER_RUN).exists(), f"{NEVER_RUN} must not exist for these snapshots"

    def shipped_only(folder: Path) -> list[Path]:
        files = config_files(folder)
        if folder.resolve() == (REPO / "user_configs").resolve():
            files = [f for f in files if f.name in SHIPPED_USER_CONFIGS]
        return files

    monkeypatch.setattr(browse, "config_files", shipped_only)


def _app(*overrides: str) -> GprpipeApp:
    return GprpipeApp(CONFIG, overrides=[f"base.output={NEVER_RUN}", *overrides], check_delay=0.01)


async def _checked(pilot) -> None:
    """Validation runs in worker threads: wait for it before the keys and the picture."""
    await pilot.pause()
    await _validated(pilot)
    await pilot.pause()


def test_snapshot_browse(snap_compare, in_repo):
    assert snap_compare(_app(), press=["f1"], run_before=_checked, terminal_size=SIZE)


def test_snapshot_edit_valid(snap_compare, in_repo):
    assert snap_compare(_app(), run_before=_checked, terminal_size=SIZE)


def test_snapshot_edit_with_an_error(snap_compare, in_repo):
    async def typo(pilot) -> None:
        await pilot.pause()
        editor = pilot.app.query_one("#editor", TextArea)
        editor.focus()
        editor.move_cursor((14, 1))
        await pilot.press("x")  # masses -> mxasses in [plot]
        await pilot.pause(0.2)
        await _checked(pilot)

    assert snap_compare(_app(), run_before=typo, terminal_size=SIZE)


def test_snapshot_form(snap_compare, in_repo):
    assert snap_compare(_app(), press=["f3"], run_before=_checked, terminal_size=SIZE)


def test_snapshot_grid(snap_compare, in_repo):
    app = _app("grid.fit.blind_nsigma=[1.64, 1.96]", "grid.limit.mode=['asymptotic', 'toys']")
    assert snap_compare(app, press=["f4"], run_before=_checked, terminal_size=SIZE)


async def _run_tab(pilot) -> None:
    """The Run tab, once its task table has its width: pictured at once after F5, it
    sometimes still had the columns of the hidden tab ('nomin', 'pendi')."""
    await _checked(pilot)
    await pilot.press("f5")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def test_snapshot_run_before_launch(snap_compare, in_repo):
    assert snap_compare(_app(), run_before=_run_tab, terminal_size=SIZE)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real quickstart run (load, fit, limit: about 10 s) in a folder of its own, with
    the config copied there so that every displayed path is relative and stable."""
    root = tmp_path_factory.mktemp("tui-results")
    (root / "quickstart.toml").write_text((REPO / CONFIG).read_text())  # works anywhere
    code, out, err = run_cli_here(
        "run",
        root / "quickstart.toml",
        "--set",
        f"base.output={root / 'run'}",
        "--steps",
        "load,fit,limit",
    )
    assert code == 0, out + err
    return root


@pytest.mark.slow
def test_snapshot_results_table(snap_compare, finished_run, monkeypatch):
    monkeypatch.chdir(finished_run)
    app = GprpipeApp("quickstart.toml", overrides=["base.output=run"], check_delay=0.01)
    assert snap_compare(app, press=["f6"], run_before=_checked, terminal_size=SIZE)


@pytest.mark.slow
def test_snapshot_results_plot(snap_compare, finished_run, monkeypatch):
    monkeypatch.chdir(finished_run)
    app = GprpipeApp("quickstart.toml", overrides=["base.output=run"], check_delay=0.01)
    assert snap_compare(app, press=["f6", "p"], run_before=_checked, terminal_size=SIZE)
