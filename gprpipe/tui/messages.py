"""Messages the panes post up to the app (the app passes data down as attributes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message


class EditText(Message):
    """Apply ``change`` to the edited config text (one undoable edit), then validate."""

    def __init__(self, change: Callable[[str], str]) -> None:
        super().__init__()
        self.change = change


class OpenConfig(Message):
    """Open ``path`` in the editor (asking first about unsaved changes)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class NewFromTemplate(Message):
    """Start a new, unsaved config that inherits ``template``."""

    def __init__(self, template: Path) -> None:
        super().__init__()
        self.template = template


class StartRun(Message):
    """Start the run of the edited config (the app checks that it is valid and saved)."""


class RunEnded(Message):
    """A run or rerun started in the Run pane has ended (its process exited)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
