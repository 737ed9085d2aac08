"""Edit: the TOML text with live validation beside it; Form: the common keys of the same
file as fields (each edit rewrites only that key's value in the text).

Both panes receive the latest validation (:class:`~gprpipe.tui.model.Check`) from the app
through :meth:`show_check` and post :class:`~gprpipe.tui.messages.EditText` up to change
the text; the form's field kinds and choices come from the config schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from gprpipe.config.checks import RESERVED_NAMES, SAFE_NAME
from gprpipe.config.issues import Issue
from gprpipe.config.loader import get_dotted
from gprpipe.config.schema import key_kind
from gprpipe.tui.messages import EditText
from gprpipe.tui.model import Check, issue_location, show_path
from gprpipe.tui.tomledit import remove_key, set_key
from gprpipe.tui.widgets import StillInput, toml_editor

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def replace_text(area: TextArea, new: str) -> None:
    """Replace the text of ``area`` by ``new`` as one undoable edit of the changed span."""
    old = area.text
    if old == new:
        return
    i = 0
    n = min(len(old), len(new))
    while i < n and old[i] == new[i]:
        i += 1
    j = 0
    while j < n - i and old[len(old) - 1 - j] == new[len(new) - 1 - j]:
        j += 1

    def loc(off: int) -> tuple[int, int]:
        row = old.count("\n", 0, off)
        return row, off - (old.rfind("\n", 0, off) + 1)

    area.replace(new[i : len(new) - j], loc(i), loc(len(old) - j), maintain_selection_offset=False)


def issue_prompt(issue: Issue, current: str | None) -> Text:
    t = Text()
    here = issue.file is not None and current is not None and issue.file == current
    style = "bold red" if issue.severity == "error" else "bold yellow"
    if here and issue.line:
        t.append(f"line {issue.line}", style=style)
    elif issue.file:
        t.append(issue_location(issue), style=style)
    if issue.key:
        t.append(f" {issue.key}", style="bold")
    t.append("\n" + issue.message, style="" if issue.severity == "error" else "yellow")
    return t


class EditorPane(Widget):
    """The config text (TOML highlighting) and, beside it, errors and the rendered config."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._check: Check | None = None
        self._issues: list[Issue] = []

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield toml_editor("editor")
            with Vertical(id="side"):
                yield Static("", id="validity")
                yield OptionList(id="issues")
                yield Static("", id="rendered-title", classes="section-title")
                with VerticalScroll(id="rendered-scroll"):
                    yield Static("", id="rendered")

    def show_check(self, check: Check) -> None:
        self._check = check
        validity = Text(check.summary(), style=check.style)  # (says the warnings too)
        for line in check.notices:  # a setting the config makes that nothing uses
            validity.append("\n" + line, style="yellow")
        self.query_one("#validity", Static).update(validity)
        issues = self.query_one("#issues", OptionList)
        current = str(check.path.resolve())
        opts = [
            Option(issue_prompt(i, current), id=f"issue-{k}")
            for k, i in enumerate([*check.errors, *check.warnings])
        ]
        issues.clear_options()
        issues.add_options(opts)
        issues.display = bool(opts)
        if opts:
            issues.highlighted = 0
        self._issues = [*check.errors, *check.warnings]
        title = self.query_one("#rendered-title", Static)
        rendered = self.query_one("#rendered", Static)
        if check.points:
            n = len(check.points)
            more = f" (1 of {n})" if n > 1 else ""
            title.update(f"Rendered: point {check.points[0].name}{more}")
            rendered.update(
                Syntax(check.rendered(), "toml", theme="ansi_dark", background_color="default")
            )
        else:
            title.update("Rendered: (fix the errors to see it)")
            rendered.update("")

    @on(OptionList.OptionSelected, "#issues")
    def _jump(self, event: OptionList.OptionSelected) -> None:
        """Move the cursor to the line of the selected error (when it is in this file)."""
        issue = self._issues[event.option_index]
        current = str(self._check.path.resolve()) if self._check is not None else None
        area = self.query_one("#editor", TextArea)
        if issue.file == current and issue.line:
            col = (issue.column or 1) - 1
            area.move_cursor((issue.line - 1, col), center=True)
            area.focus()
        elif issue.file and issue.key:
            self.notify(
                f"{issue.key} is set in {issue_location(issue)}: override it in this "
                "file (Form, F3) or fix it there.",
                timeout=6,
            )


# ------------------------------------------------------------------ the form


@dataclass(frozen=True)
class FormField:
    parts: tuple[str, ...]  # the key's path from the config root (a dataset key may hold '.')
    label: str
    kind: str  # str, int, float, floats, choice, bool
    choices: tuple[str, ...] = ()
    optional: bool = False

    @classmethod
    def of(cls, parts: tuple[str, ...], label: str) -> FormField:
        """The field of key ``parts``: kind, choices and optionality from the config schema."""
        kind, choices, optional = key_kind(parts)
        return cls(parts, label, kind, choices, optional)

    @property
    def key(self) -> str:
        """Dotted, as messages and the loader's origins name it."""
        return ".".join(self.parts)

    @property
    def widget_id(self) -> str:
        """A textual id: readable where the parts allow it (letters, digits, '_', '-'),
        else from a hash (a dataset key may hold '.' or '+')."""
        if all(_ID_PART.fullmatch(p) for p in self.parts):
            return "f-" + "--".join(self.parts)
        return "f-h" + hashlib.sha1("\0".join(self.parts).encode()).hexdigest()[:16]


_ID_PART = re.compile(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*")


#: The common keys on the form and their labels (kinds and choices: from the schema).
COMMON = tuple(
    FormField.of(tuple(key.split(".")), label)
    for key, label in (
        ("base.name", "Analysis name"),
        ("base.output", "Run directory"),
        ("scan.mass_step", "Mass step (GeV)"),
        ("scan.masses", "Explicit masses (GeV)"),
        ("fit.blind_nsigma", "Blind width (σ)"),
        ("limit.mode", "Limit mode"),
        ("limit.n_toys", "Toys (observed limit)"),
        ("limit.bands", "Expected bands"),
        ("limit.band_toys", "Toys (bands)"),
        ("base.engine", "Engine"),
        ("base.image", "Container image"),
        ("base.executor", "Executor"),
        ("base.jobs", "Local workers"),
    )
)
DATASET_KEYS = (
    ("path", "ROOT file"),
    ("range", "Scan range [lo, hi] (GeV)"),
    ("enabled", "Enabled"),
)


def dataset_fields(name: str) -> tuple[FormField, ...]:
    return tuple(FormField.of(("datasets", name, key), label) for key, label in DATASET_KEYS)


_MISSING = object()


def effective_value(check: Check, key: tuple[str, ...]) -> Any:
    """The value a key has for this config: as written (unrendered) in the chain, else the
    rendered value (e.g. from a dataset card), else missing."""
    v = get_dotted(check.merged, key, _MISSING)
    if v is _MISSING and check.points:
        v = get_dotted(check.points[0].data, key, _MISSING)
    return v


def field_text(check: Check, f: FormField) -> str:
    """A field's text: the key's value for this config, or the values the grid gives it
    (``1.64, 1.96``: a field of a key the grid varies is not edited here)."""
    varied = check.varied(f.key)
    if varied is not None:
        return ", ".join(shown(v) for v in varied)
    return shown(effective_value(check, f.parts))


def origin_text(check: Check, f: FormField) -> Text:
    """The origin column of a field: where its value comes from; for a choice the grid
    varies, the values too (its selector cannot show them)."""
    origin = check.origin_of(f.key)
    if f.kind in ("choice", "bool") and check.varied(f.key) is not None:
        origin += f": {field_text(check, f)}"
    return Text(origin, style="dim")


def shown(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def to_literal(f: FormField, raw: str) -> str | None:
    """TOML literal for a field's text; None means 'remove the key'; ValueError if bad."""
    raw = raw.strip()
    if not raw:
        if f.optional or f.kind == "str":
            return None
        raise ValueError(f"{f.key} needs a value")
    if f.kind == "str":
        from gprpipe.tui.tomledit import literal

        return literal(raw)
    if f.kind == "int":
        try:
            return str(int(raw))
        except ValueError:
            raise ValueError(f"{f.key}: {raw!r} is not a whole number, e.g. 2") from None
    if f.kind == "float":
        number = _number(raw)
        if number is None:
            raise ValueError(f"{f.key}: {raw!r} is not a number, e.g. 1.64")
        return number
    if f.kind == "floats":
        items = [x.strip() for x in raw.strip("[] ").split(",") if x.strip()]
        numbers = [_number(x) for x in items]
        if not numbers or None in numbers:
            raise ValueError(
                f"{f.key}: give numbers (GeV) separated by commas, e.g. 0.02, 0.13; "
                f"{raw!r} is not such a list"
            )
        return "[" + ", ".join(str(n) for n in numbers) + "]"
    if f.kind in ("choice", "bool"):
        if raw not in f.choices:
            raise ValueError(f"{f.key}: one of {', '.join(f.choices)}")
        return raw if f.kind == "bool" else f'"{raw}"'
    raise ValueError(f"unknown field kind {f.kind}")


def _number(raw: str) -> str | None:
    """A TOML literal of the number typed (as typed where TOML reads it so: '.5' and '5.'
    are numbers to Python only), or None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    try:
        kept = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        kept = None
    return raw if type(kept) in (int, float) else repr(value)


class FormPane(Widget):
    """Fields for the common keys; each change rewrites one key of the edited text."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields: dict[str, FormField] = {}
        self._datasets: tuple[str, ...] | None = None
        #: set by the app when its tab opened before the fields were built
        self.focus_when_built = False
        self._check: Check | None = None
        self._filling = False

    def compose(self) -> ComposeResult:
        yield Static("", id="form-note")
        yield VerticalScroll(id="form-body")

    def _row(self, f: FormField, check: Check) -> Horizontal:
        value = field_text(check, f)
        if f.kind in ("choice", "bool"):
            w: Widget = Select(
                [(c, c) for c in f.choices],
                id=f.widget_id,
                compact=True,
                allow_blank=True,
                prompt="(default)",
                value=value if value in f.choices else Select.NULL,
            )
        else:
            w = StillInput(value, id=f.widget_id, compact=True, placeholder="(not set)")
        w.disabled = check.varied(f.key) is not None  # the grid's values, set in [grid]
        return Horizontal(
            Label(f.label, classes="form-label"),
            w,
            Static(
                origin_text(check, f),
                id=f"o-{f.widget_id}",
                classes="form-origin",
            ),
            classes="form-row",
        )

    async def _build(self, datasets: tuple[str, ...], check: Check) -> None:
        body = self.query_one("#form-body", VerticalScroll)
        await body.remove_children()
        self.fields = {}
        widgets: list[Widget] = []
        for name in datasets:
            widgets.append(Static(f"Dataset {name}", classes="section-title"))
            for f in dataset_fields(name):
                self.fields[f.widget_id] = f
                widgets.append(self._row(f, check))
        widgets.append(
            Horizontal(
                Label("Add a dataset", classes="form-label"),
                StillInput(
                    id="f-add-dataset", compact=True, placeholder="key = card, e.g. 2016 = hps2016"
                ),
                Static("", classes="form-origin"),
                classes="form-row",
            )
        )
        widgets.append(Static("Scan, fit, limits, execution", classes="section-title"))
        for f in COMMON:
            self.fields[f.widget_id] = f
            widgets.append(self._row(f, check))
        self._datasets = datasets
        await body.mount_all(widgets)
        self._fill()
        focused = self.screen.focused
        wanted, self.focus_when_built = self.focus_when_built, False
        if wanted or (self._shown() and (focused is None or self not in focused.ancestors)):
            first = self.first_field()
            if first is not None:
                first.focus()

    def _shown(self) -> bool:
        """The form's tab is the active one (hidden tabs have display off)."""
        return all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))

    def show_check(self, check: Check) -> None:
        self._check = check
        note = self.query_one("#form-note", Static)
        if not check.merged:
            note.update(
                Text("Fix the TOML syntax in the editor (F2) to use the form.", style="bold red")
            )
            return
        note.update(
            Text(
                "Enter (or leaving a field) sets the value in the config text "
                "(the Edit tab); ctrl+s saves the file. Empty: inherit. Origin on "
                "the right.",
                style="dim",
            )
        )
        datasets = tuple((check.merged.get("datasets") or {}).keys())
        if datasets != self._datasets:
            self._datasets = datasets
            self.call_later(self._build, datasets, check)
        else:
            self._fill()

    def _fill(self) -> None:
        check = self._check
        if check is None:
            return
        focused = self.screen.focused
        self._filling = True
        try:
            for wid, f in self.fields.items():
                try:  # a row being mounted (by _build) may lack its origin yet
                    w = self.query_one(f"#{wid}")
                    origin = self.query_one(f"#o-{wid}", Static)
                except Exception:
                    continue
                value = field_text(check, f)
                w.disabled = check.varied(f.key) is not None  # the grid's values
                if isinstance(w, Select):
                    target = value if value in f.choices else Select.NULL
                    with w.prevent(Select.Changed):
                        # set twice: a Select mounted with its value may not show it
                        w.value = f.choices[0] if target == Select.NULL else Select.NULL
                        w.value = target
                elif isinstance(w, Input) and w is not focused and w.value != value:
                    with w.prevent(Input.Changed):
                        w.value = value
                origin.update(origin_text(check, f))
        finally:
            self._filling = False

    def _apply(self, f: FormField, raw: str) -> None:
        change = self._change_for(f, raw)
        if change is not None:
            self.post_message(EditText(change))

    def _change_for(self, f: FormField, raw: str) -> Callable[[str], str] | None:
        """The edit that sets field ``f`` to ``raw`` (None: nothing to change, or refused
        with a notice)."""
        check = self._check
        if check is None or self._filling:
            return None
        if raw.strip() == field_text(check, f):
            return None
        if check.varied(f.key) is not None:  # a value in the file would have no effect
            self.notify(
                f'{f.key} is varied by the grid ([grid] "{f.key}"): change its values '
                "there (Grid tab or the text); a value here would be overridden.",
                severity="warning",
            )
            self._fill()
            return None
        try:
            lit = to_literal(f, raw)
        except (ValueError, RecursionError, tomllib.TOMLDecodeError) as exc:
            self.notify(str(exc), severity="error")
            return None
        return lambda text: (
            remove_key(text, f.parts) if lit is None else set_key(text, f.parts, lit)
        )

    def pending_edit(self) -> tuple[bool, Callable[[str], str] | None]:
        """(False when a value typed into the focused field is refused, with a notice; the
        edit of one not applied yet, or None). A value is applied on Enter or on leaving
        the field: the app applies it before it saves, launches or quits, which would
        otherwise act on the value before it, and stops on a refused one (a review)."""
        focused = self.screen.focused
        if not isinstance(focused, Input):
            return True, None
        if focused.id == "f-add-dataset":
            if not focused.value.strip():
                return True, None
            self.notify(
                "A dataset is typed under Add a dataset and not added: press Enter to add "
                "it, or clear the field.",
                severity="warning",
            )
            return False, None
        f, check = self.fields.get(focused.id or ""), self._check
        if f is None or check is None or focused.value.strip() == field_text(check, f):
            return True, None
        change = self._change_for(f, focused.value)
        return change is not None, change

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "f-add-dataset":
            self._add_dataset(event.value)
            event.input.value = ""
            return
        f = self.fields.get(event.input.id or "")
        if f is not None:
            self._apply(f, event.value)

    @on(Input.Blurred)
    def _blurred(self, event: Input.Blurred) -> None:
        f = self.fields.get(event.input.id or "")
        if f is not None:
            self._apply(f, event.value)

    @on(Select.Changed)
    def _selected(self, event: Select.Changed) -> None:
        f = self.fields.get(event.select.id or "")
        if f is None or self._filling:
            return
        value = "" if event.value is Select.NULL else str(event.value)
        varied = self._check is not None and self._check.varied(f.key) is not None
        if f.kind == "choice" and not value and not varied:
            self.post_message(EditText(lambda text: remove_key(text, f.parts)))
            return
        self._apply(f, value)

    def _add_dataset(self, raw: str) -> None:
        key, _, card = (x.strip() for x in raw.partition("="))
        if not key:
            return
        if not SAFE_NAME.match(key) or key in RESERVED_NAMES:  # as the config's check
            self.notify(
                "A dataset key uses letters, digits, _, + and - (ASCII, starting with a "
                "letter or digit; not 'combined').",
                severity="error",
            )
            return
        datasets = self._check.merged.get("datasets") if self._check is not None else None
        if isinstance(datasets, dict) and key in datasets:  # (it set its card or enabled)
            self.notify(
                f"datasets.{key} is there already: change its fields above (a new dataset "
                "needs a new key).",
                severity="error",
            )
            return
        if card:  # (a TOML string whatever the name holds: the edit stays valid TOML)
            parts, lit = ["datasets", key, "card"], json.dumps(card, ensure_ascii=False)
        else:
            parts, lit = ["datasets", key, "enabled"], "true"
        self.post_message(EditText(lambda text: set_key(text, parts, lit)))
        self.notify(f"Added [datasets.{key}]: set its ROOT file above.")

    def first_field(self) -> Widget | None:
        for wid in self.fields:
            try:
                return self.query_one(f"#{wid}")
            except Exception:
                return None
        return None


__all__ = ["EditorPane", "FormPane", "replace_text", "show_path"]
