"""Browse: the configs of templates/, user_configs/ and any folder given, each with its
validity, inheritance chain and rendered config (validated in a worker thread; opening a
file or starting a new config is a message to the app)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static, Tree

from gprpipe.tui.messages import NewFromTemplate, OpenConfig
from gprpipe.tui.model import Check, check_file, config_files, issue_location, show_path

STATE_STYLE = {"error": "bold red", "warning": "yellow"}


def check_renderable(
    check: Check, *, title: str | None = None, rendered: bool = True, max_issues: int = 20
):
    """Validity, chain, steps and (optionally) the rendered config of a check."""
    parts: list = []
    head = Text()
    if title:
        head.append(title + "  ", style="bold")
    head.append(check.summary(), style=check.style)
    parts.append(head)
    if check.chain:
        chain = Text("inherits: ", style="dim")
        for k, p in enumerate(check.chain):
            if k:
                chain.append(" → ", style="dim")
            chain.append(show_path(p), style="cyan" if k == 0 else "")
        parts.append(chain)
    if check.steps:
        parts.append(Text("steps: ", style="dim") + Text(" → ".join(check.steps)))
    for issue in [*check.errors, *check.warnings][:max_issues]:
        t = Text()
        t.append(f"{issue_location(issue)}", style="dim")
        if issue.key:
            t.append(f" {issue.key}", style=STATE_STYLE[issue.severity])
        # (one that names neither file nor key began ": /path: not a config file")
        t.append(f": {issue.message}" if t.plain.strip() else issue.message)
        parts.append(t)
    if rendered and check.points:
        n = len(check.points)
        label = f"rendered config of point {check.points[0].name}"
        label += f" (1 of {n})" if n > 1 else ""
        parts.append(Text(f"── {label} ──", style="dim"))
        parts.append(
            Syntax(check.rendered(), "toml", theme="ansi_dark", background_color="default")
        )
    return Group(*parts)


class BrowsePane(Widget):
    """A tree of config folders and a preview of the highlighted file."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open"),
        Binding("n", "new", "New from template"),
    ]

    def __init__(
        self, folders: list[Path], *, overrides: tuple[str, ...] = (), id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.folders = folders
        self.overrides = overrides  # the --set values given on the command line (only)
        self._cache: dict[Path, tuple[tuple[tuple[Path, float], ...], Check]] = {}
        self.current: Path | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            tree: Tree[Path] = Tree("configs", id="browse-tree")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with VerticalScroll(id="browse-preview"):
                yield Static("Select a config.", id="browse-text")

    def on_mount(self) -> None:
        self.refresh_tree()

    def refresh_tree(self) -> None:
        tree: Tree[Path] = self.query_one("#browse-tree", Tree)
        tree.clear()
        first = None
        for folder in self.folders:
            node = tree.root.add(show_path(folder) + "/", data=folder, expand=True)
            for f in config_files(folder):
                leaf = node.add_leaf(f.name, data=f)
                first = first or leaf
        if first is not None:
            self.preview(first.data)

    def select_path(self, path: Path) -> None:
        """Move the tree cursor to ``path`` if it is listed."""
        tree: Tree[Path] = self.query_one("#browse-tree", Tree)
        target = path.resolve()
        for node in tree.root.children:
            for leaf in node.children:
                if leaf.data is not None and leaf.data.resolve() == target:
                    tree.move_cursor(leaf)
                    self.preview(leaf.data)
                    return

    @staticmethod
    def _stamp(files: Sequence[Path]) -> tuple[tuple[Path, float], ...]:
        """The files a check read (the config and the ones it inherits) with their
        modification times: a check stays valid while none of them changed."""
        out = []
        for f in files:
            try:
                mtime = f.stat().st_mtime
            except OSError:
                mtime = 0.0
            out.append((f.resolve(), mtime))
        return tuple(out)

    def preview(self, path: Path | None) -> None:
        """Show the validity of ``path`` (validated in a worker unless known)."""
        if path is None or path.is_dir():
            return
        self.current = path
        known = self._cache.get(path.resolve())
        if known is not None and self._stamp([f for f, _ in known[0]]) == known[0]:
            self._show(path, known[1])
            return
        self.query_one("#browse-text", Static).update(
            Text(f"{show_path(path)}  validating…", style="dim")
        )
        self._validate(path)

    @work(exclusive=True, group="preview")
    async def _validate(self, path: Path) -> None:
        before = self._stamp([path])  # (a change while it is checked: checked again next time)
        check = await asyncio.to_thread(check_file, path, self.overrides)
        if check.chain:  # (none when a file of the chain did not load: checked again)
            chain = [f for f in check.chain if f.resolve() != path.resolve()]
            self._cache[path.resolve()] = (before + self._stamp(chain), check)
        if self.current == path:
            self._show(path, check)

    def _show(self, path: Path, check: Check) -> None:
        self.query_one("#browse-text", Static).update(
            check_renderable(check, title=show_path(path))
        )

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        data = event.node.data
        if isinstance(data, Path) and data.is_file():
            self.preview(data)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if isinstance(data, Path) and data.is_file():
            event.stop()
            self.post_message(OpenConfig(data))

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(OpenConfig(self.current))

    def action_new(self) -> None:
        if self.current is not None:
            self.post_message(NewFromTemplate(self.current))
