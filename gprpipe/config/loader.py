"""TOML loading with template inheritance, deep merge and key provenance.

A config file may name a parent with ``[base].template`` (a path relative to the file that
names it, or the name of a shipped template such as ``"hps2015"``); the chain ends at the
shipped ``templates/defaults.toml`` or at ``template = false``. Children deep-merge over
parents. Every leaf key remembers where it was set (file and line) so that errors can say
exactly where to look.
"""

from __future__ import annotations

import codecs
import importlib
import json
import re
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gprpipe.config.issues import Issue, Loc, name_hint
from gprpipe.errors import ConfigError, GprpipeError, resolved
from gprpipe.io.toml_write import split_key, toml_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Origin:
    """Where a key was set: a file (line and column), or ``--set key``, or ``grid``."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def is_file(self) -> bool:
        """Set in a config file (not by ``--set`` or the grid)."""
        return not self.file.startswith("--set") and self.file != "grid"

    def folder(self) -> Path:
        """Folder that relative paths set here are relative to (the CWD for ``--set``)."""
        return Path(self.file).parent if self.is_file else Path.cwd()

    def at(self, key: str) -> Loc:
        """The location of ``key`` set here (``file:line: key``)."""
        return Loc(self.file, self.line, self.column, key)


@dataclass
class Loaded:
    """A merged config tree and the origin of each dotted key."""

    data: dict[str, Any]
    origins: dict[str, Origin] = field(default_factory=dict)
    chain: list[Path] = field(default_factory=list)  # child first

    def origin(self, dotted: str) -> Origin | None:
        """Origin of ``dotted``, else of the nearest ancestor that was set or has a set
        descendant (so a key missing from a new ``--set datasets.x.path`` table blames the
        ``--set``, not the defaults that define ``[datasets]``). A top-level empty key
        (``"" = 1``) has the dotted key ``""``, set like any other."""
        if dotted in self.origins:
            return self.origins[dotted]
        key = dotted
        while key:
            if key in self.origins:
                return self.origins[key]
            prefix = key + "."
            hits = [o for k, o in self.origins.items() if k.startswith(prefix)]
            if hits:
                return hits[0]
            key = key.rpartition(".")[0]
        return None

    def where(self, dotted: str) -> Loc:
        """Where ``dotted`` was set (``file:line: key`` in messages; just the key when
        nothing set it)."""
        origin = self.origin(dotted)
        return origin.at(dotted) if origin else Loc(key=dotted)


def shipped_dir(kind: str) -> Path:
    """Folder of shipped ``templates`` or ``cards`` (inside the installed package)."""
    try:  # a namespace package (TOML files only): its first path entry is the folder
        return Path(next(iter(importlib.import_module(f"gprpipe.{kind}").__path__)))
    except (ModuleNotFoundError, StopIteration):  # source tree without installation
        return Path(__file__).resolve().parents[2] / kind


def resolve_ref(ref: str, relative_to: Path, kind: str) -> Path:
    """Resolve a template/card reference: a path relative to a folder, or a shipped name
    (FileNotFoundError when there is none, or the path cannot be resolved)."""
    try:
        return _resolve_ref(ref, relative_to, kind)
    except FileNotFoundError:
        raise
    except (RuntimeError, OSError) as exc:  # a symlink loop; '~user' unknown; a name too long
        why = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).rstrip(".")
        raise FileNotFoundError(f"{ref[:80]!r}: cannot resolve this path ({why}).") from None


def _resolve_ref(ref: str, relative_to: Path, kind: str) -> Path:
    p = Path(ref).expanduser()
    cand = p if p.is_absolute() else relative_to / p
    if cand.is_file():
        return cand.resolve()
    if not p.is_absolute() and len(p.parts) == 1:
        name = p.name if p.suffix == ".toml" else p.name + ".toml"
        shipped = shipped_dir(kind) / name
        if shipped.is_file():
            return shipped.resolve()
    if cand.is_dir():
        raise FileNotFoundError(f"{ref!r}: is a folder ({cand}); name a TOML file.")
    if cand.exists():  # a device, a FIFO, a socket: no TOML file either
        raise FileNotFoundError(f"{ref!r}: not a regular file ({cand}); name a TOML file.")
    if p.is_absolute() or len(p.parts) > 1:
        raise FileNotFoundError(f"{ref!r}: no such file ({cand}).")
    raise FileNotFoundError(_missing_ref(ref, cand, kind))


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped ``templates`` or ``cards``, sorted."""
    return sorted(p.stem for p in shipped_dir(kind).glob("*.toml"))


def starting_templates() -> list[str]:
    """The shipped templates a user config starts from: all but ``defaults``, which every
    config inherits beneath them."""
    return [n for n in shipped_names("templates") if n != "defaults"]


def _missing_ref(ref: str, cand: Path, kind: str) -> str:
    """Why ``ref`` names nothing, with the shipped names (and the closest one; the
    templates as ``init`` offers them: it listed ``defaults``, which init refuses)."""
    shipped = starting_templates() if kind == "templates" else shipped_names(kind)
    what = kind.removesuffix("s")
    return (
        f"{ref!r} is neither a file ({cand}) nor a shipped {what} "
        f"({', '.join(shipped)}){name_hint(Path(ref).stem, shipped) or '.'}"
    )


_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_PART = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_dotted(s: str) -> list[str]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""", s)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def key_lines(text: str) -> dict[str, int]:
    """Map dotted keys to the line where they are set (tables and key/value lines)."""
    return {k: line for k, (line, _) in key_positions(text).items()}


def key_positions(text: str) -> dict[str, tuple[int, int]]:
    """Map dotted keys to the (line, column) where they are set (1-based; tables and
    key/value lines).

    A light scanner, not a parser: enough to point users at the right place.
    """
    lines: dict[str, tuple[int, int]] = {}
    table: list[str] = []
    depth = 0  # inside a multi-line array/inline table: skip nested lines
    open_string = ""  # the delimiter of a multi-line string the line starts inside
    for no, raw in enumerate(text.splitlines(), start=1):
        inside, open_string = open_string, _open_string(raw, open_string)
        if inside:  # (a string's lines are no keys, whatever they look like)
            continue
        if depth > 0:
            depth += _nesting(raw)
            continue
        m = _TABLE.match(raw)
        if m:
            table = _split_dotted(m.group(1))
            lines.setdefault(".".join(table), (no, m.start(1) + 1))
            continue
        m = _KEY.match(raw)
        if m:
            dotted = ".".join([*table, *_split_dotted(m.group(1))])
            lines.setdefault(dotted, (no, m.start(1) + 1))
            depth = max(0, _nesting(raw[m.end() :]))
    return lines


def _open_string(line: str, open_string: str = "") -> str:
    """The multi-line string delimiter (``\"\"\"`` or ``'''``) still open at the end of
    ``line``, which starts inside ``open_string`` ('' for none): quotes in a comment or in
    a one-line string open nothing, a backslash escapes in basic strings."""
    i, quote = 0, open_string
    while i < len(line):
        if quote:
            if line.startswith(quote, i) and len(quote) == 3:
                i, quote = i + 3, ""
                continue
            if quote in ('"', '"""') and line[i] == "\\":
                i += 2
                continue
            if len(quote) == 1 and line[i] == quote:
                quote = ""
            i += 1
            continue
        c = line[i]
        if c == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            quote, i = line[i : i + 3], i + 3
            continue
        if c in "\"'":
            quote = c
        i += 1
    return quote if len(quote) == 3 else ""


def _nesting(line: str) -> int:
    """Brackets and braces a line opens minus those it closes, outside its strings and
    its comment (a bracket in either moved the scan off every later key)."""
    code, quote, i = [], "", 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        else:
            code.append(c)
        i += 1
    text = "".join(code)
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


#: a config is a few kB; a larger file is a mistake (a data file given as the config)
MAX_CONFIG_BYTES = 10**7

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_config_text(path: Path) -> str:
    """The text of a config file (UTF-8, as TOML requires; a byte-order mark that some
    editors write is dropped); what cannot be read, or is not text, is a ``GprpipeError``
    naming the file."""
    bom = 0
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_CONFIG_BYTES:
            raise GprpipeError(
                f"{path}: {info.st_size / 1e6:.1f} MB, too large for a config file "
                f"(at most {MAX_CONFIG_BYTES // 10**6} MB)."
            )
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            raise GprpipeError(f"{path}: not a regular file (a config file is needed).")
        data = path.read_bytes()
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        # as read_text does: universal newlines
        return data[bom:].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise GprpipeError(f"{path}: config file not found.") from None
    except IsADirectoryError:
        raise GprpipeError(f"{path}: is a folder, not a config file.") from None
    except OSError as exc:
        raise GprpipeError(f"{path}: cannot read config file ({exc.strerror}).") from None
    except UnicodeDecodeError as exc:
        raise GprpipeError(
            f"{path}: not a config file (byte {bom + exc.start} is not UTF-8 text; a config is "
            "TOML)."
        ) from None


_DOTS = re.compile(r"\s*\.\s*")
_TABLE_LINE = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(
    r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _twice_set(text: str, line: int | None) -> str | None:
    """The dotted key written at ``line`` (1-based) under its table header: what the
    parser's "Cannot overwrite a value" found set twice; None when the line holds none."""
    lines = text.splitlines()
    if line is None or not 0 < line <= len(lines):
        return None
    m = _KEY_LINE.match(lines[line - 1])
    if not m:
        return None
    key = _DOTS.sub(".", m.group(1))
    for above in reversed(lines[: line - 1]):
        if t := _TABLE_LINE.match(above):
            key = f"{_DOTS.sub('.', t.group(1))}.{key}"
            break
    # named only when the text without that line sets that very key (a line scan knows no
    # multi-line strings or arrays: a '[0.02, 0.1]' line is no table header)
    try:
        data = tomllib.loads("\n".join(lines[: line - 1] + lines[line:]))
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    missing = object()
    return None if get_dotted(data, split_key(key), missing) is missing else key


def read_toml(
    path: Path, text: str | None = None
) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Parse one TOML file (or ``text`` standing for it): its data and the (line, column)
    of each key. Invalid TOML is a ``ConfigError`` with one issue naming the file, line and
    column; a file that cannot be read is a ``GprpipeError`` naming the file."""
    if text is None:
        text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        pos = _TOML_POS.search(str(exc))  # the parser's own "(at line L, column C)"
        line, col = (int(pos.group(1)), int(pos.group(2))) if pos else (None, None)
        key = _twice_set(text, line) if str(exc).startswith("Cannot overwrite") else None
        if key:  # the parser does not name the key set twice
            raise ConfigError(
                [Issue(f"set twice (invalid TOML: {exc}).", str(path), line, col, key=key)]
            ) from None
        # the sentence names the file only: the parser's message says line and column
        raise ConfigError(
            [Issue(f"invalid TOML: {exc}.", str(path), line, col, prefix=str(path))]
        ) from None
    except RecursionError:  # the parser recurses per level of nesting
        raise ConfigError(
            [
                Issue(
                    "invalid TOML: arrays or tables nested too deeply.", str(path), prefix=str(path)
                )
            ]
        ) from None
    except ValueError:  # int() of more digits than Python converts ("internal error")
        raise ConfigError([_long_integer(text, str(path))]) from None
    return data, key_positions(text)


def _long_integer(text: str, file: str) -> Issue:
    """The issue of an integer longer than Python converts from text (4300 digits)."""
    limit = sys.get_int_max_str_digits()
    found = re.search(f"[0-9_]{{{limit + 1},}}", text)
    line = text.count("\n", 0, found.start()) + 1 if found else None
    col = found.start() - text.rfind("\n", 0, found.start()) if found else None
    return Issue(
        f"invalid TOML: an integer of more than {limit} digits.",
        file,
        line,
        col,
        prefix=None if line else file,
    )


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of the leaves of a nested dict (lists are leaves)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def deep_merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """Child over parent; tables merge recursively, everything else is replaced."""
    out = dict(parent)
    for k, v in child.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _origins_for(
    data: Mapping[str, Any], positions: Mapping[str, tuple[int, int]], file: str
) -> dict[str, Origin]:
    origins: dict[str, Origin] = {}
    for key in [*flatten(data), *positions]:
        pos = positions.get(key)
        k = key
        while pos is None and "." in k:
            k = k.rpartition(".")[0]
            pos = positions.get(k)
        origins[key] = Origin(file, *pos) if pos else Origin(file)
    return origins


def _render_ref(
    value: str, data: Mapping[str, Any], file: Path, positions: Mapping[str, tuple[int, int]]
) -> str:
    if "{{" not in value and "{%" not in value:
        return value
    from gprpipe.config.render import render_string  # local: render imports this module

    line, column = positions.get("base.template", (None, None))
    return render_string(value, data, where=Loc(str(file), line, column, "base.template"))


def load_chain(path: Path | str, text: str | None = None) -> Loaded:
    """Load ``path`` and its template ancestors, merged child over parent.

    ``text``: the content of ``path`` (which need not exist; e.g. an editor's unsaved
    buffer): template references and relative paths resolve from the folder of ``path``.
    """
    path = resolved(Path(path).expanduser())  # (a link that leads back to itself: said)
    defaults = (shipped_dir("templates") / "defaults.toml").resolve()
    files: list[tuple[Path, dict[str, Any], dict[str, tuple[int, int]]]] = []
    seen: list[Path] = []
    ref: Any = None  # the base.template that led to ``current``
    current: Path | None = path
    while current is not None:
        if current in seen:
            cycle = " -> ".join(str(p) for p in [*seen[seen.index(current) :], current])
            closer, _, closer_lines = files[-1]  # its base.template closes the cycle
            raise ConfigError(
                [
                    _template_issue(
                        closer,
                        closer_lines,
                        f"base.template: {ref!r} makes an inheritance cycle: {cycle}.",
                    )
                ]
            )
        seen.append(current)
        try:
            data, lines = read_toml(current, text if current == path else None)
        except GprpipeError as exc:
            if not files:  # the config itself: its own sentence names it
                raise
            referrer, _, referrer_lines = files[-1]  # its base.template named this file
            raise ConfigError(
                [
                    _template_issue(
                        referrer,
                        referrer_lines,
                        f"base.template: {current} is no config template: "
                        + reason_of(exc, current),
                    )
                ]
            ) from None
        files.append((current, data, lines))
        base = data.get("base", {})
        ref = base.get("template") if isinstance(base, Mapping) else None
        if ref is False or current == defaults:
            current = None
        elif ref is None or ref is True:
            current = defaults
        elif isinstance(ref, str):
            ref = _render_ref(ref, data, current, lines)
            try:
                current = resolve_ref(ref, current.parent, "templates")
            except FileNotFoundError as exc:
                raise ConfigError(
                    [
                        _template_issue(
                            current,
                            lines,
                            f"base.template: {exc}",
                        )
                    ]
                ) from None
        else:
            raise ConfigError(
                [
                    _template_issue(
                        current, lines, f"base.template must be a path or false, not {ref!r}."
                    )
                ]
            )
    merged: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for file, data, lines in reversed(files):
        merged = deep_merge(merged, data)
        origins.update(_origins_for(data, lines, str(file)))
    if isinstance(merged.get("base"), dict):
        merged["base"].pop("template", None)
    return Loaded(merged, origins, [f for f, _, _ in files])


def reason_of(exc: GprpipeError, path: Path) -> str:
    """Why reading ``path`` failed (``exc``), without the file name the sentence starts with:
    for the sentence of the key that named the file."""
    issues = getattr(exc, "issues", [])
    text = issues[0].message if issues and isinstance(issues[0], Issue) else str(exc)
    return str(text).removeprefix(f"{path}: ")


def _template_issue(file: Path, positions: Mapping[str, tuple[int, int]], message: str) -> Issue:
    """An issue with ``base.template`` of ``file`` (the message starts with the key)."""
    pos = positions.get("base.template")
    line = pos[0] if pos else None
    return Issue(
        message, str(file), line, pos[1] if pos else None, "base.template", prefix=f"{file}:{line}"
    )


def _table_form(key: str, value: str) -> str:
    """``grid={"fit.blind_nsigma" = VALUE}`` for the key ``grid."fit.blind_nsigma"``: the
    table before the first quoted part, the rest as nested inline tables, one per part (a
    quoted part one key, dots and all: ``datasets."demo".label`` gives
    ``datasets={"demo" = {label = VALUE}}``); a VALUE that is no TOML becomes a string."""
    i = min(key.find(q) for q in "\"'" if q in key)
    table, rest = key[:i].rstrip(". "), key[i:]
    parts = [p.strip("\"'") for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^."\'\s]+', rest)]
    try:
        tomllib.loads(f"v = {value}")
    except (tomllib.TOMLDecodeError, RecursionError):
        value = json.dumps(value, ensure_ascii=False)
    for part in reversed(parts):
        value = f"{{{toml_key(part)} = {value}}}"
    return f"{table}={value}" if table else value[1:-1].strip()


def parse_override(item: str) -> tuple[str, Any]:
    """``key.path=VALUE`` with VALUE parsed as TOML, falling back to a string; for a key
    the schema types as text, a bare VALUE that TOML reads as a number, date or boolean
    stays the text given (``base.name=1e3`` is "1e3", not "1000.0")."""
    from gprpipe.config.schema import is_text_key

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not all(part.strip() for part in key.split(".")):
        raise ConfigError(
            [Issue("expected key.path=VALUE.", f"--set {item}", prefix=f"--set {item!r}")]
        )
    if any(q in key for q in "\"'"):  # a quoted key part: `grid."fit.blind_nsigma"`
        raise ConfigError(
            [
                Issue(
                    "--set keys are plain dotted names (a quoted part is not read as one); "
                    f"set its table instead: --set '{_table_form(key, raw.strip())}'.",
                    f"--set {item}",
                    prefix=f"--set {key}",
                )
            ]
        )
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except ValueError:  # an integer longer than Python converts
        issue = _long_integer(raw, f"--set {item}")
        raise ConfigError([Issue(issue.message, f"--set {key}", prefix=f"--set {key}")]) from None
    except RecursionError:
        raise ConfigError(
            [Issue("nested too deeply.", f"--set {item}", prefix=f"--set {item!r}")]
        ) from None
    if not isinstance(value, (str, list, dict)) and is_text_key(key):
        value = raw.strip()
    return key, value


def override_leaves(item: str) -> dict[str, Any]:
    """The dotted keys ``--set ITEM`` sets, with their values: a table
    (``fit={blind_nsigma=3}``) sets the keys inside it. ConfigError if ITEM is malformed."""
    key, value = parse_override(item)
    return flatten(value, f"{key}.") if isinstance(value, dict) else {key: value}


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key in a nested dict, creating tables on the way."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def prefixes(dotted: str) -> list[str]:
    """The tables a dotted key lies in: ``a.b.c`` -> ``a``, ``a.b``."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def get_dotted(data: Mapping[str, Any], key: str | Sequence[str], default: Any = None) -> Any:
    """The value at a key, dotted or as its parts (a dataset key may hold a '.'), else
    ``default``."""
    node: Any = data
    for p in key.split(".") if isinstance(key, str) else key:
        if not isinstance(node, Mapping) or p not in node:
            return default
        node = node[p]
    return node


def apply_overrides(loaded: Loaded, overrides: list[str]) -> Loaded:
    """Apply ``--set`` overrides (they win over every file). ``base.template`` is refused:
    inheritance is resolved before the overrides apply, so it would change nothing."""
    for item in overrides:
        key, value = parse_override(item)
        if "base.template" in override_leaves(item):
            raise ConfigError(
                [
                    Issue(
                        "the template a config inherits is set in its file ([base] "
                        "template = ...), not with --set; edit the file or write a child "
                        "config that names another template.",
                        f"--set {item}",
                        key="base.template",
                        prefix="--set base.template",
                    )
                ]
            )
        before = get_dotted(loaded.data, key)
        if isinstance(value, dict) and isinstance(before, Mapping):
            # a table merges into the one it overrides, as a child config's does
            set_dotted(loaded.data, key, deep_merge(before, value))
            for leaf in flatten(value, f"{key}."):
                loaded.origins[leaf] = Origin(f"--set {key}")
        else:
            for prefix in prefixes(key):  # a value it turns into a table is its doing
                if not isinstance(get_dotted(loaded.data, prefix, {}), Mapping):
                    loaded.origins[prefix] = Origin(f"--set {key}")
            set_dotted(loaded.data, key, value)
        loaded.origins[key] = Origin(f"--set {key}")
    return loaded
