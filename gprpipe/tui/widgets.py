"""Small shared widgets: inputs that do not blink in headless (test) runs, dialogs."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea


class StillInput(Input):
    """An Input whose cursor does not blink when the app is headless (stable snapshots)."""

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.cursor_blink = False


class StillTextArea(TextArea):
    """A TextArea whose cursor does not blink when the app is headless."""

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.cursor_blink = False


def toml_editor(widget_id: str) -> TextArea:
    """A TOML code editor: tree-sitter highlighting when available, plain text otherwise."""
    try:
        if "toml" in StillTextArea().available_languages:
            return StillTextArea.code_editor(language="toml", id=widget_id, soft_wrap=False)
    except Exception:
        pass
    return StillTextArea.code_editor(id=widget_id, soft_wrap=False)


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no question (y / n / escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="warning", compact=True)
                yield Button(f"{self.no} (n)", id="no", compact=True)

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PathDialog(ModalScreen["str | None"]):
    """Ask for a file path (Enter accepts, escape cancels)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str) -> None:
        super().__init__()
        self.title_text, self.value = title, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-text")
            yield StillInput(self.value, id="path-input")
            yield Label("Enter: save · Esc: cancel", classes="dim")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
