"""Jinja2 rendering of every string value of a config, repeated until stable.

The context is the merged config itself (so ``"w{{ fit.blind_nsigma }}"`` works), plus
``PWD``, ``USER``, ``ENV`` and ``gprpipe`` (``gprpipe.version``). Undefined names are
errors that name the key; the environment is sandboxed. Values stay strings here; the
schema turns a string that renders to a number into a number where the field is numeric.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gprpipe import __version__
from gprpipe.errors import ConfigError, GprpipeError

MAX_PASSES = 10

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _has_template(s: str) -> bool:
    return "{{" in s or "{%" in s


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
    for _ in range(MAX_PASSES):
        errors: list[str] = []
        changed = False

        def visit(node: Any, key: str, ctx: Mapping[str, Any]) -> Any:
            nonlocal changed
            if isinstance(node, dict):
                return {k: visit(v, f"{key}.{k}" if key else str(k), ctx) for k, v in node.items()}
            if isinstance(node, list):
                return [visit(v, f"{key}[{i}]", ctx) for i, v in enumerate(node)]
            if isinstance(node, str) and _has_template(node):
                try:
                    out = render_string(node, ctx, where=where(key.split("[")[0]))
                except GprpipeError as exc:
                    errors.append(str(exc))
                    return node
                if out != node:
                    changed = True
                return out
            return node

        current = visit(current, "", current)
        if errors:
            raise ConfigError(errors)
        if not changed:
            return current
    pending = [k for k, v in _leaves(current) if isinstance(v, str) and _has_template(v)]
    raise GprpipeError(
        f"{where(pending[0]) if pending else ''}: references do not resolve after "
        f"{MAX_PASSES} passes (a reference cycle?)."
    )


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
    else:
        yield key, node
