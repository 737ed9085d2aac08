"""Jinja2 rendering of every string value of a config, repeated until stable.

The context is the merged config itself (so ``"w{{ fit.blind_nsigma }}"`` works), plus
``PWD``, ``USER``, ``ENV`` (only the environment variables named in ``base.env``) and
``gprpipe`` (``gprpipe.version``; ``gprpipe.data``: the folder of the shipped demo
spectrum). Undefined names are errors that name the key; the
environment is sandboxed and bounded (:class:`BoundedEnvironment`): ``range``, powers,
repetition and padding are capped, the output of one string is capped, and one string
may render for at most ``MAX_SECONDS`` (a whole config for ``MAX_CONFIG_SECONDS``); going
beyond is an error naming the key.
A string that uses a value which is itself still a template waits for it (so references
chain, and filters or arithmetic see the final value); a cycle of references is an error
naming the keys. Inside expressions a rendered value that spells a number is a number
(unless the schema types its key as text: a name, a path); in the rendered config it
stays a string, and the schema turns it into a number where the field is numeric.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import itertools
import math
import operator
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gprpipe import __version__
from gprpipe.config.issues import Issue, Loc, Where, at, issues_of, key_only
from gprpipe.errors import ConfigError

MAX_PASSES = 20
#: Bounds of one rendered string: items of a ``range``, characters of any string or list
#: built by repetition or padding (and of the output), bits of an integer power, seconds.
MAX_ITEMS = 100_000
MAX_CHARS = 100_000
MAX_POWER_BITS = 4096
MAX_SECONDS = 1.0
MAX_CONFIG_SECONDS = 3.0  # all strings of one config together
MAX_GRID_SECONDS = 30.0  # all points of one grid together (a typical point takes ~3 ms)
_WIDE_FORMAT = re.compile(r"[%:{][^%:{}]*?\d{6,}")  # a format width of 6+ digits
#: a width or precision given by an argument (not seen in the text): '%*s' or '%.*f' of a
#: % format (not after an escaped '%%'), '{:{}}' of str.format
_ARG_WIDTH_PERCENT = re.compile(r"(?<!%)(?:%%)*%[-#0 +]*(\d*\.)?\*")
_ARG_WIDTH_BRACES = re.compile(r"\{[^{}]*:[^{}]*\{")


if TYPE_CHECKING:
    from _typeshed import TraceFunction


class RenderLimit(Exception):
    """A template went beyond a bound of :class:`BoundedEnvironment`."""


def _size(value: Any, seen: dict[int, tuple[Any, int]] | None = None) -> int | None:
    """Items ``value`` stands for when it is shown: characters of a string, and of a list
    or tuple its items and theirs (``[[1] * 20000] * 20000`` is 400 million, not 20000),
    counted up to just past ``MAX_CHARS``; None for anything else. A list held twice
    counts twice but is walked once (``seen``), so a list that holds itself twice, set
    twenty times, costs twenty steps to size."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return None
    seen = {} if seen is None else seen
    if id(value) in seen:
        return seen[id(value)][1]
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = len(items)
    for item in items:
        if total > MAX_CHARS:
            break
        size = _size(item, seen)
        # (a number shows as its digits: 2**4096 is 1,234 characters)
        total += size if size is not None else _digits(item)
    seen[id(value)] = (value, total)  # (the value kept: its id is not reused meanwhile)
    return total


def _digits(value: Any) -> int:
    """Characters an integer takes as text beyond one (0 for anything else)."""
    return value.bit_length() * 3 // 10 if isinstance(value, int) else 0


def _bounded_items(values: Iterable[Any]) -> list[Any]:
    """The items of an iterator (a ``map`` or ``select``), refused as soon as they stand for
    more than ``MAX_CHARS`` items, and on the clock: ``|list`` built 10 million numbers
    before its result was checked."""
    out: list[Any] = []
    seen: dict[int, tuple[Any, int]] = {}
    total = 0
    for value in values:
        _tick()
        size = _size(value, seen)
        total += 1 + (size if size is not None else _digits(value))
        if total > MAX_CHARS:
            raise RenderLimit(f"a sequence of more than {MAX_CHARS} items")
        out.append(value)
    return out


def _check_power(base: Any, exp: Any) -> None:
    if (
        isinstance(base, int)
        and isinstance(exp, int)
        and exp > 0
        and abs(base) > 1
        and exp * math.log2(abs(base)) > MAX_POWER_BITS
    ):
        raise RenderLimit(f"{base} ** {exp} has more than {MAX_POWER_BITS} bits")


def _check_product(left: Any, right: Any) -> None:
    """A product of two integers has at most the sum of their bits: squaring in a loop
    doubles them each time (``ns.x * ns.x`` 19 times took 23 s and 900 MB)."""
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_POWER_BITS + 1  # (as ** allows)
    ):
        raise RenderLimit(f"a product of more than {MAX_POWER_BITS} bits")


def _check_repeat(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        size = _size(seq)
        if size is not None and isinstance(n, int) and size * n > MAX_CHARS:
            raise RenderLimit(f"a repetition builds more than {MAX_CHARS} items")


def _check_built(n: int, how: str) -> None:
    """Refuse, before it is built, a string or list of more than ``MAX_CHARS`` items."""
    if n > MAX_CHARS:
        raise RenderLimit(f"{how} builds more than {MAX_CHARS} items")


def _check_value(value: Any, what: str) -> None:
    """Refuse a value that stands for more than ``MAX_CHARS`` items (:func:`_size`): a list
    that holds itself twice, set twenty times, is a million items though it took twenty
    steps to build, and showing or comparing it would take them all."""
    size = _size(value)
    if size is not None and size > MAX_CHARS:
        raise RenderLimit(f"{what} holds more than {MAX_CHARS} items")


def _text_size(value: Any) -> int:
    """Characters ``value`` can take as text, at most (without building the text)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    size = _size(value)
    return 32 if size is None else 8 * size + 2


def _check_formatted(fmt: Any, values: Any, braces: bool = False) -> None:
    """A format whose fields, each as wide as its widest argument and written width, could
    build more than ``MAX_CHARS`` characters (``('{0}' * 20000).format('a' * 20000)``
    reuses one argument 20,000 times)."""
    if not isinstance(fmt, str):
        return
    _check_format(fmt, braces)
    if isinstance(values, Mapping):
        values = list(values.values())
    elif not isinstance(values, (list, tuple)):
        values = [values]
    fields = fmt.count("{" if braces else "%")
    widest = max((int(d) for d in re.findall(r"\d{1,5}", fmt)), default=0)
    most = max((_text_size(v) for v in values), default=0)
    _check_built(len(fmt) + fields * (most + widest), "a format")


def _replaced_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    """The length of ``s.replace(old, new, count)``, without building it."""
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    n = len(s) + 1 if old == "" else s.count(old)
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * (len(new) - len(old))


def _joined_size(items: Sequence[Any], sep: Any) -> int:
    parts = sum(len(x) if isinstance(x, str) else len(str(x)) for x in items)
    return parts + len(str(sep)) * max(len(items) - 1, 0)


def _bounded_concat(parts: Sequence[Any]) -> str:
    """``a ~ b ~ ...``: the parts joined as strings, once their total is known."""
    strings = [x if isinstance(x, str) else str(x) for x in parts]
    _check_built(sum(map(len, strings)), "a ~ concatenation")
    return "".join(strings)


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``~`` to :func:`_bounded_concat` (through the environment)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:  # never: no autoescape
            super().visit_Concat(node, frame)
            return
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _check_format(fmt: Any, braces: bool = False) -> None:
    """A % format (``braces``: a str.format one) whose widths could build a huge string."""
    if isinstance(fmt, str) and _WIDE_FORMAT.search(fmt):
        raise RenderLimit("a format width above 99999")
    arg = _ARG_WIDTH_BRACES if braces else _ARG_WIDTH_PERCENT
    if isinstance(fmt, str) and arg.search(fmt):
        raise RenderLimit("a format width given by an argument ('*' or a nested {})")


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise RenderLimit(f"range() of {len(r)} items (at most {MAX_ITEMS})")
    return r


_PADDING = {"center", "ljust", "rjust", "zfill", "expandtabs"}


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox whose templates cannot take unbounded time or memory (``RenderLimit``)."""

    intercepted_binops = frozenset(["**", "*", "%", "+"])
    code_generator_class = _BoundedCodeGenerator
    bounded_concat = staticmethod(_bounded_concat)
    named_value = staticmethod(lambda value: value)  # see _parse

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("finalize", _shown)
        super().__init__(**kwargs)
        # templates see the config's names, range() (bounded) and namespace() (the way a
        # loop sets a value outside it), not Jinja2's other globals (cycler, joiner, dict,
        # lipsum)
        namespace = self.globals["namespace"]
        self.globals.clear()
        self.globals.update(range=_bounded_range, namespace=namespace)
        for name in ("center", "indent", "format", "wordwrap", "truncate", "batch", "slice"):
            self.filters[name] = self._guarded(self.filters[name])
        replace, join = self.filters["replace"], self.filters["join"]

        def bounded_replace(ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
            _check_built(_replaced_size(s, old, new, -1 if count is None else count), "replace")
            return replace(ctx, s, old, new, count)

        def bounded_join(ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
            items = _bounded_items(value)
            if attribute is None:
                _check_built(_joined_size(items, d), "join")
            return join(ctx, items, d, attribute)

        def bounded_sum(env: Any, value: Any, attribute: Any = None, start: Any = 0) -> Any:
            """Jinja2's ``sum``; of lists or tuples (``start=[]``) built once, its size
            known first: Python adds them pairwise, in time quadratic in their number."""
            items = _bounded_items(value)
            if attribute is not None:
                get = make_attrgetter(env, attribute)
                items = [get(x) for x in items]
            if isinstance(start, (list, tuple)):
                _check_built(sum(_size(x) or 1 for x in [start, *items]), "sum")
                if all(type(x) is type(start) for x in items):
                    return type(start)(itertools.chain(start, *items))
            return sum(items, start)

        self.filters["replace"] = jinja2.pass_eval_context(bounded_replace)
        self.filters["join"] = jinja2.pass_eval_context(bounded_join)
        self.filters["sum"] = jinja2.pass_environment(bounded_sum)
        tables: tuple[dict[str, Any], ...] = (self.filters, self.tests)
        for table in tables:
            for name, f in table.items():
                table[name] = _sized(f, name)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template with every value it names (``set``, ``with``) checked by
        :func:`_check_value` as it is named: what a name holds stays bounded."""
        tree = super()._parse(source, name, filename)
        # Jinja2's own names and blocks that collect output beyond the output's bound (a
        # {% set %}...{% endset %} of a loop held 1 GB before the clock stopped it)
        kinds: dict[type[nodes.Node], str] = {
            nodes.Block: "blocks",
            nodes.AssignBlock: "{% set %} blocks",
            nodes.FilterBlock: "{% filter %} blocks",
            nodes.Macro: "macros",
            nodes.CallBlock: "{% call %} blocks",
        }
        bad: nodes.Node
        for bad in tree.find_all((*kinds, nodes.Name)):  # type: ignore[arg-type]
            if type(bad) in kinds or getattr(bad, "name", "") == "self":
                what = kinds.get(type(bad), "'self'")
                raise jinja2.TemplateSyntaxError(
                    f"{what}: templates see the config's names, range() and namespace()",
                    bad.lineno,
                    name,
                    filename,
                )
        for node in tree.find_all((nodes.Assign, nodes.With)):
            if isinstance(node, nodes.Assign):
                node.node = _named(node.node)
            elif isinstance(node, nodes.With):
                node.values = [_named(v) for v in node.values]
        return tree

    @staticmethod
    def _guarded(f: Callable[..., Any]) -> Callable[..., Any]:
        """``f`` with its widths bounded; it keeps ``f``'s attributes, among them Jinja2's
        mark of a filter that takes the environment first (``truncate``, ``wordwrap``)."""

        @functools.wraps(f)
        def filt(*args: Any, **kwargs: Any) -> Any:
            for v in [*args[1:], *kwargs.values()]:
                if isinstance(v, int) and v > MAX_CHARS:
                    raise RenderLimit(f"a width of {v} (at most {MAX_CHARS})")
            text = next((a for a in args if isinstance(a, str)), None)
            if f.__name__ == "do_format" and args:
                _check_formatted(args[0], kwargs or list(args[1:]))
            elif f.__name__ == "do_indent" and text is not None:
                width = kwargs.get("width", args[1] if len(args) > 1 else 4)
                size = len(width) if isinstance(width, str) else int(width)
                _check_built(len(text) + (text.count("\n") + 1) * size, "indent")
            elif f.__name__ == "do_wordwrap" and text is not None:
                wrap = kwargs.get("wrapstring") or "\n"
                pieces = len(text) + 1  # at most one line break per character
                _check_built(len(text) + pieces * len(str(wrap)), "wordwrap")
            return f(*args, **kwargs)

        return filt

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _check_value(left, "an operand")
        _check_value(right, "an operand")
        if op == "**":
            _check_power(left, right)
            return operator.pow(left, right)
        if op == "*":
            _check_product(left, right)
            _check_repeat(left, right)
            return operator.mul(left, right)
        if op == "%":
            _check_formatted(left, right)
            return operator.mod(left, right)
        if op == "+":
            if _size(left) is not None and _size(right) is not None:
                _check_built((_size(left) or 0) + (_size(right) or 0), "a + concatenation")
            return operator.add(left, right)
        return super().call_binop(context, op, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, by_map = value.__self__, value.__name__ == "format_map"
        _check_format(fmt, braces=True)

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> Any:
            values = args[0] if by_map and args else [*args, *kwargs.values()]
            _check_formatted(fmt, values, braces=True)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_arguments(args, kwargs, "an argument")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and args:
            method = getattr(__obj, "__name__", "")
            if method == "expandtabs" and isinstance(args[0], int):
                _check_built(len(owner) + owner.count("\t") * args[0], "expandtabs")
            elif method == "translate" and isinstance(args[0], Mapping):
                most = max((_text_size(v) for v in args[0].values()), default=1)
                _check_built(len(owner) * max(most, 1), "translate")
        if getattr(__obj, "__name__", "") in _PADDING and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            for v in [*args, *kwargs.values()]:
                if isinstance(v, int) and v > MAX_CHARS:
                    raise RenderLimit(f"a width of {v} (at most {MAX_CHARS})")
        name = getattr(__obj, "__name__", "")
        if (
            isinstance(getattr(__obj, "__self__", None), str)
            and name == "replace"
            and len(args) > 1
        ):
            _check_built(_replaced_size(__obj.__self__, *args[:3]), "replace")
        if isinstance(getattr(__obj, "__self__", None), str) and name == "join" and args:
            args = (list(args[0]),)
            _check_built(_joined_size(args[0], __obj.__self__), "join")
        if __obj is pow and len(args) >= 2:
            _check_power(args[0], args[1])
        out = super().call(__context, __obj, *args, **kwargs)
        _check_value(out, "a call's result")
        return out


def _named(value: Any) -> nodes.Expr:
    """``value`` passed through the environment's ``call`` (which checks its arguments)."""
    return nodes.Call(
        nodes.EnvironmentAttribute("named_value"), [value], [], None, None, lineno=value.lineno
    )


def _shown(value: Any) -> Any:
    """What ``{{ ... }}`` shows, checked before it becomes text."""
    _check_value(value, "a shown value")
    return value


def _check_arguments(args: Sequence[Any], kwargs: Mapping[str, Any], what: str) -> None:
    """:func:`_check_value` of each argument of a call or filter (not the loop and block
    variables Jinja2 passes along)."""
    for key, value in [*enumerate(args), *kwargs.items()]:
        if key not in ("_loop_vars", "_block_vars"):
            _check_value(value, what)


def _sized(f: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Filter or test ``f`` with its arguments and result checked by :func:`_check_value`
    (``|string`` of a list of 100,000 numbers is 700,000 characters: refused, and so the
    next ``|list`` never builds 700,000 one-character strings)."""

    @functools.wraps(f)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _tick()  # (a map's filter runs per item in jinja2's code, which the clock skips)
        args = tuple(_bounded_items(a) if isinstance(a, Iterator) else a for a in args)
        _check_arguments(args, kwargs, f"an argument of {name}")
        for value in (*args, *kwargs.values()):
            # a value not rendered yet: Jinja2's tests (``number``, ``string``,
            # ``callable``...) and ``tojson`` look at its type, not through its methods,
            # and answered for the placeholder, not the value (a review)
            if (pending := _pending_in(value)) is not None:
                raise _Deferred(pending.key)
        try:
            out = f(*args, **kwargs)
        except TypeError:  # it read the value being rendered (tojson of its own table)
            if (pending := _pending_in([*args, *kwargs.values()], own=True)) is not None:
                raise _Deferred(pending.key) from None
            raise
        _check_value(out, f"{name}'s result")
        return out

    return checked


_LOCAL = threading.local()  # deadline of the render running in this thread


def _tick() -> None:
    deadline = getattr(_LOCAL, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise RenderLimit(getattr(_LOCAL, "why", "rendering took too long"))


def _render_bounded(template: jinja2.Template, ctx: Mapping[str, Any]) -> str:
    """Render with a wall-time guard (a line tracer on the template's code) and a cap on
    the output size."""
    deadline = time.monotonic() + MAX_SECONDS
    total = getattr(_LOCAL, "config_deadline", None)
    why = f"rendering took longer than {MAX_SECONDS:g} s"
    if total is not None and total < deadline:
        deadline = total
        why = getattr(_LOCAL, "config_why", "")
    count = [0]

    def local(frame: FrameType, event: str, arg: Any) -> TraceFunction:
        count[0] += 1
        if count[0] % 256 == 0 and time.monotonic() > deadline:
            raise RenderLimit(why)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        return local if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    outer, _LOCAL.deadline = getattr(_LOCAL, "deadline", None), deadline
    outer_why, _LOCAL.why = getattr(_LOCAL, "why", None), why
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(ctx):
            size += len(chunk)
            if size > MAX_CHARS:
                raise RenderLimit(f"the output is longer than {MAX_CHARS} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        _LOCAL.deadline, _LOCAL.why = outer, outer_why
        sys.settrace(previous)


_ENV = BoundedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _has_template(s: str) -> bool:
    return "{{" in s or "{%" in s


def as_number(s: str) -> str | int | float:
    """``s`` as an int or float if it spells one (``"3"``, ``"0.25"``, ``"1e-3"``), else ``s``."""
    text = s.strip()
    if not _NUMBER.match(text):
        return s
    try:
        return int(text)
    except ValueError:
        return float(text)


class _Deferred(Exception):
    """Raised when a template uses a value that is not rendered yet."""


class _Pending:
    """Stands in for a not-yet-rendered value: any use of it defers the template."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def _defer(self, *args: Any, **kwargs: Any) -> Any:
        raise _Deferred(self.key)

    def __getattr__(self, name: str) -> Any:
        raise _Deferred(self.key)

    __hash__ = object.__hash__


for _name in (
    "__str__",
    "__repr__",
    "__format__",
    "__bool__",
    "__len__",
    "__iter__",
    "__contains__",
    "__getitem__",
    "__call__",
    "__int__",
    "__float__",
    "__index__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__neg__",
    "__pos__",
    "__abs__",
    "__round__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__mod__",
    "__rmod__",
    "__pow__",
    "__rpow__",
):
    setattr(_Pending, _name, _Pending._defer)


def _pending_in(value: Any, depth: int = 0, own: bool = False) -> _Pending | None:
    """A value not rendered yet given to a filter or test: itself (a test of it looks at
    its type: ``datasets.demo.label is string`` answered for the placeholder), or, with
    ``own``, one in its lists, tuples and dicts (a filter that read one failed). Not
    looked for inside them first: a filter of a table, ``{{ datasets | join('+') }}`` in
    two labels, reads no value, and the labels waited for each other (the reviews); one
    that does use a value uses it through its methods, which wait for it."""
    if isinstance(value, _Pending):
        return value if own or depth == 0 else None
    if not own:
        return None
    if depth < 16 and isinstance(value, (list, tuple, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            if (found := _pending_in(item, depth + 1, own)) is not None:
                return found
    return None


def env_allowed(config: Mapping[str, Any]) -> list[str]:
    """The environment variables templates may read: ``base.env`` (plain names)."""
    base = config.get("base") if isinstance(config, Mapping) else None
    names = base.get("env") if isinstance(base, Mapping) else None
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str)]


def base_context(env_names: Sequence[str] = ()) -> dict[str, Any]:
    """``PWD``, ``USER``, ``gprpipe`` and ``ENV``: only the variables in ``env_names``."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = os.environ.get("USER", "")
    env = {k: _literal(f"ENV.{k}", os.environ[k]) for k in env_names if k in os.environ}
    return {
        "PWD": _literal("PWD", os.getcwd()),
        "USER": _literal("USER", user),
        "ENV": env,
        "gprpipe": {"version": __version__, "data": str(shipped_data_dir())},
    }


_SYNTAX = ("{{", "{%", "{#")


def _literal(name: str, value: str) -> Any:
    """An outside value (the folder, the user, an allowed environment variable) as it is;
    one that holds template syntax would be rendered by the next pass, as if the config
    had written it: using it is an error naming it."""
    if not any(s in value for s in _SYNTAX):
        return value
    return jinja2.StrictUndefined(
        hint=f"{name} holds template syntax ({value[:40]!r}), which gprpipe would render as "
        "part of the config"
    )


def shipped_data_dir() -> Path:
    """Folder of the data shipped inside the package (the demo spectrum)."""
    return Path(__file__).resolve().parents[1] / "data"


def _short(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def render_string(value: str, config: Mapping[str, Any], where: Loc | str = "") -> str:
    """Render one string with ``config`` (plus the base context) as context; an error is
    a ``ConfigError`` with one issue at ``where``."""
    ctx = {**base_context(env_allowed(config)), **config}
    try:
        return _render_bounded(_ENV.from_string(value), ctx)
    except _Deferred:
        raise
    except jinja2.UndefinedError as exc:
        hint = ""
        if "ENV" in value and "holds template syntax" not in str(exc.message):
            hint = "; templates see only the environment variables listed in base.env"
            named = re.findall(r"ENV\s*(?:\.\s*|\[\s*['\"])([A-Za-z_]\w*)", value)
            unset = [n for n in named if n in env_allowed(config) and n not in os.environ]
            if unset:
                hint = f"; {unset[0]} is listed in base.env but not set in the environment"

        why = f"undefined name in {_short(value)} ({exc.message}{hint})."
    except RenderLimit as exc:
        why = f"{_short(value)} goes beyond the rendering bounds ({exc})."
    except jinja2.TemplateError as exc:
        why = f"cannot render {_short(value)} ({exc})."
    except (
        ArithmeticError,
        TypeError,
        ValueError,
        LookupError,
        AttributeError,
        MemoryError,
        RecursionError,
    ) as exc:
        what = (
            "includes, imports and template inheritance are not available in configs"
            if "no loader" in str(exc)
            else f"{type(exc).__name__}: {exc}"
        )
        why = f"cannot render {_short(value)} ({what})."
    raise ConfigError([at(where, why)])


def render_config(data: Mapping[str, Any], where: Where = key_only) -> dict[str, Any]:
    """Render every string leaf until nothing changes (bounded number of passes).

    ``where(dotted_key)`` gives the location used in error messages. All errors of a pass
    are collected and raised together.
    """
    outer = getattr(_LOCAL, "config_deadline", None), getattr(_LOCAL, "config_why", "")
    left = getattr(_LOCAL, "grid_left", None)  # within grid_budget(): what the grid has left
    start = time.monotonic()
    if left is not None and left < MAX_CONFIG_SECONDS:
        _LOCAL.config_deadline = start + left
        _LOCAL.config_why = (
            f"rendering the grid's points took longer than {MAX_GRID_SECONDS:g} s together"
        )
    else:
        _LOCAL.config_deadline = start + MAX_CONFIG_SECONDS
        _LOCAL.config_why = f"rendering the config took longer than {MAX_CONFIG_SECONDS:g} s"
    try:
        return _render_config(data, where)
    finally:
        _LOCAL.config_deadline, _LOCAL.config_why = outer
        if left is not None:
            _LOCAL.grid_left = left - (time.monotonic() - start)


@contextlib.contextmanager
def grid_budget() -> Iterator[None]:
    """Bound the rendering of every point of one grid together by ``MAX_GRID_SECONDS``
    (each config alone has ``MAX_CONFIG_SECONDS``: 1000 points of a slow template took
    50 minutes)."""
    outer = getattr(_LOCAL, "grid_left", None)
    _LOCAL.grid_left = MAX_GRID_SECONDS
    try:
        yield
    finally:
        _LOCAL.grid_left = outer


def _render_config(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    current: Any = _copy(data)
    templated = {k for k, v in _leaves(current) if isinstance(v, str) and _has_template(v)}
    for _ in range(MAX_PASSES):
        errors: list[Issue] = []
        deferred: list[str] = []
        changed: list[str] = []
        ctx = _context(current, templated)
        current = _render_pass(current, ctx, where, errors, deferred, changed)
        if errors:
            raise ConfigError(errors)
        if not changed:
            if deferred:
                keys = ", ".join(_dotted(k) for k in deferred)
                raise ConfigError(
                    [
                        at(
                            where(_dotted(deferred[0])),
                            f"references cannot be resolved (a reference cycle among {keys}).",
                        )
                    ]
                )
            assert isinstance(current, dict)
            return current
    pending = [k for k, v in _leaves(current) if isinstance(v, str) and _has_template(v)]
    why = f"references do not resolve after {MAX_PASSES} passes (a reference cycle?)."
    raise ConfigError([at(where(_dotted(pending[0])), why) if pending else Issue(why, prefix="")])


def _render_pass(
    node: Any,
    ctx: Mapping[str, Any],
    where: Where,
    errors: list[Issue],
    deferred: list[str],
    changed: list[str],
    key: str = "",
) -> Any:
    """One rendering pass over ``node``; collects errors, keys that must wait and keys
    whose value changed."""
    args = (ctx, where, errors, deferred, changed)
    if isinstance(node, dict):
        return {k: _render_pass(v, *args, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_pass(v, *args, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and _has_template(node):
        try:
            out = render_string(node, ctx, where=where(_dotted(key)))
            if out != node:
                changed.append(key)
            return out
        except _Deferred:
            deferred.append(key)
        except ConfigError as exc:
            errors += issues_of(exc)
    return node


def _dotted(key: str) -> str:
    """``plot.formats[0]`` -> ``plot.formats``."""
    return key.split("[")[0]


def _context(node: Any, templated: set[str], key: str = "") -> Any:
    """Copy of ``node`` for use as the rendering context: still-templated strings are
    ``_Pending``; rendered templated strings that spell numbers are numbers, except in
    keys the schema types as text (``name = "{{ '%03d' % 7 }}"`` stays "007" for a
    template that reads it: as the run folder's name)."""
    from gprpipe.config.schema import is_text_key

    if isinstance(node, Mapping):
        return {k: _context(v, templated, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_context(v, templated, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and _has_template(node):
        return _Pending(key)
    if isinstance(node, str) and key in templated and not is_text_key(key):
        return as_number(node)
    return node


def _copy(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _leaves(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, node
