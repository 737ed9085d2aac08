"""Jinja2 rendering of every string value of a config, repeated until stable.

The context is the merged config itself (so ``"w{{ fit.blind_nsigma }}"`` works), plus
``PWD``, ``USER``, ``ENV`` and ``gprpipe`` (``gprpipe.version``). Undefined names are
errors that name the key; the environment is sandboxed. A string that uses a value which
is itself still a template waits for it (so references chain, and filters or arithmetic
see the final value); a cycle of references is an error naming the keys. Inside
expressions a rendered value that spells a number is a number; in the rendered config it
stays a string, and the schema turns it into a number where the field is numeric.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gprpipe import __version__
from gprpipe.errors import ConfigError, GprpipeError

MAX_PASSES = 20

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

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
    "__str__", "__repr__", "__format__", "__bool__", "__len__", "__iter__", "__contains__",
    "__getitem__", "__call__", "__int__", "__float__", "__index__", "__eq__", "__ne__",
    "__lt__", "__le__", "__gt__", "__ge__", "__neg__", "__pos__", "__abs__", "__round__",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__",
    "__rpow__",
):
    setattr(_Pending, _name, _Pending._defer)


def base_context() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = os.environ.get("USER", "")
    return {
        "PWD": os.getcwd(),
        "USER": user,
        "ENV": dict(os.environ),
        "gprpipe": {"version": __version__},
    }


def render_string(value: str, config: Mapping[str, Any], where: str = "") -> str:
    """Render one string with ``config`` (plus the base context) as context."""
    ctx = {**base_context(), **config}
    try:
        return _ENV.from_string(value).render(ctx)
    except jinja2.UndefinedError as exc:
        raise GprpipeError(f"{where}: undefined name in {value!r} ({exc.message}).") from None
    except jinja2.TemplateError as exc:
        raise GprpipeError(f"{where}: cannot render {value!r} ({exc}).") from None


def render_config(data: Mapping[str, Any], where=lambda key: key) -> dict[str, Any]:
    """Render every string leaf until nothing changes (bounded number of passes).

    ``where(dotted_key)`` gives the location used in error messages. All errors of a pass
    are collected and raised together.
    """
    current: Any = _copy(data)
    templated = {k for k, v in _leaves(current) if isinstance(v, str) and _has_template(v)}
    for _ in range(MAX_PASSES):
        errors: list[str] = []
        deferred: list[str] = []
        changed: list[str] = []
        ctx = _context(current, templated)
        current = _render_pass(current, ctx, where, errors, deferred, changed)
        if errors:
            raise ConfigError(errors)
        if not changed:
            if deferred:
                keys = ", ".join(_dotted(k) for k in deferred)
                raise GprpipeError(
                    f"{where(_dotted(deferred[0]))}: references cannot be resolved "
                    f"(a reference cycle among {keys})."
                )
            return current
    pending = [k for k, v in _leaves(current) if isinstance(v, str) and _has_template(v)]
    raise GprpipeError(
        f"{where(_dotted(pending[0])) if pending else ''}: references do not resolve after "
        f"{MAX_PASSES} passes (a reference cycle?)."
    )


def _render_pass(node: Any, ctx: Mapping[str, Any], where, errors: list[str],
                 deferred: list[str], changed: list[str], key: str = "") -> Any:
    """One rendering pass over ``node``; collects errors, keys that must wait and keys
    whose value changed."""
    args = (ctx, where, errors, deferred, changed)
    if isinstance(node, dict):
        return {k: _render_pass(v, *args, f"{key}.{k}" if key else str(k))
                for k, v in node.items()}
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
        except GprpipeError as exc:
            errors.append(str(exc))
    return node


def _dotted(key: str) -> str:
    """``plot.formats[0]`` -> ``plot.formats``."""
    return key.split("[")[0]


def _context(node: Any, templated: set[str], key: str = "") -> Any:
    """Copy of ``node`` for use as the rendering context: still-templated strings are
    ``_Pending``; rendered templated strings that spell numbers are numbers."""
    if isinstance(node, Mapping):
        return {k: _context(v, templated, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_context(v, templated, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and _has_template(node):
        return _Pending(key)
    if isinstance(node, str) and key in templated:
        return as_number(node)
    return node


def _copy(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _leaves(node: Any, key: str = ""):
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, node
