"""Grid expansion: ``[grid]`` (Cartesian product) and ``[grid.zip]`` (axes varied together)."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from gprpipe.config.issues import Issue, Where, at, key_only
from gprpipe.config.loader import flatten
from gprpipe.errors import ConfigError

DEFAULT_POINT = "nominal"


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Counter[str]:
    """How many leaves of ``data`` each dotted key names (two where a dotted key and a
    table spell the same one: ``"fit.x"`` and ``fit = {x = ...}``)."""
    out: Counter[str] = Counter()
    for k, v in data.items():
        if isinstance(v, Mapping) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] += 1
    return out


def grid_axes(grid: Mapping[str, Any], where: Where = key_only) -> list[list[dict[str, Any]]]:
    """Axes of the grid; each axis is a list of {dotted key: value} settings."""
    errors: list[Issue] = []
    axes: list[list[dict[str, Any]]] = []
    zip_rows: list[dict[str, Any]] | None = None
    zipped = grid.get("zip", {})
    for prefix, table in (("grid.", grid), ("grid.zip.", zipped)):
        if not isinstance(table, Mapping):
            continue
        for key, n in _leaves({k: v for k, v in table.items() if k != "zip"}).items():
            if n > 1:  # one axis of the two would replace the other without a word
                errors.append(
                    at(
                        where(prefix + key),
                        f'{key} is varied twice, as a dotted key ("{key}" = [...]) and in a '
                        "table ([grid.<section>] ...): one list would replace the other; "
                        "give its values once.",
                    )
                )
    if errors:
        raise ConfigError(errors)
    for key, values in flatten({k: v for k, v in grid.items() if k != "zip"}).items():
        if "." in key and not all(part.strip() for part in key.split(".")):
            # ("." was said without its file; "" is said where it stands, by the schema)
            errors.append(
                at(where("grid"), f"{key!r}: an empty key name is not a setting; remove it.")
            )
            continue
        if not isinstance(values, list) or not values:
            errors.append(at(where("grid." + key), "must be a non-empty list of values."))
            continue
        twice = _repeated(values)
        if twice is not None:
            errors.append(
                at(where("grid." + key), f"lists {twice!r} twice (two identical points).")
            )
            continue
        axes.append([{key: v} for v in values])
    if zipped:
        if not isinstance(zipped, Mapping):
            errors.append(at(where("grid.zip"), "must be a table of lists."))
        else:
            flat = flatten(zipped)
            lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in flat.items()}
            if any(n <= 0 for n in lengths.values()):
                bad = next(k for k, n in lengths.items() if n <= 0)
                errors.append(at(where("grid.zip." + bad), "must be a non-empty list."))
            elif len(set(lengths.values())) > 1:
                shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
                errors.append(at(where("grid.zip"), f"its lists differ in length ({shown})."))
            elif both := sorted(set(lengths) & {k for axis in axes for k in axis[0]}):
                errors.append(
                    at(
                        where("grid.zip." + both[0]),
                        f"{both[0]} is varied in [grid] as well; vary each key in [grid] "
                        "or in [grid.zip], not in both.",
                    )
                )
            else:
                n = next(iter(lengths.values()))
                rows = [{k: v[i] for k, v in flat.items()} for i in range(n)]
                twice = _repeated(rows)
                if twice is None:
                    axes.append(rows)
                    zip_rows = rows
                else:
                    shown = ", ".join(f"{k}={v!r}" for k, v in twice.items())
                    errors.append(
                        at(where("grid.zip"), f"lists ({shown}) twice (two identical points).")
                    )
    for axis in axes:  # a table value would set a whole section (base = [{blind = false}])
        table = next(
            (k for k, v in axis[0].items() if any(isinstance(x[k], dict) for x in axis)), None
        )
        if table is not None:
            errors.append(
                at(
                    where(("grid.zip." if axis is zip_rows else "grid.") + table),
                    "a grid value may not be a table; vary the keys inside it "
                    f'("{table}.<key>" = [...]).',
                )
            )
    if any("base.blind" in axis[0] for axis in axes):
        errors.append(
            at(
                where("grid.base.blind"),
                "blinding is no grid axis: it is lifted only by 'gprpipe run --unblind' "
                "(recorded in run.json).",
            )
        )
    nested = next(((axis, k) for axis in axes for k in axis[0] if k.split(".")[0] == "grid"), None)
    if nested is not None:  # it would name points and set nothing the schema reads
        axis, key = nested
        errors.append(
            at(
                where(("grid.zip." if axis is zip_rows else "grid.") + key),
                "a grid key may not name the grid itself; vary the keys of the config "
                '(e.g. "fit.blind_nsigma" = [...]).',
            )
        )
    for axis in axes:
        for key in axis[0]:
            if any(key == k or key.startswith(k + ".") for k in RUN_SETTINGS):
                errors.append(
                    at(
                        where(("grid.zip." if axis is zip_rows else "grid.") + key),
                        "a run has one value of it for all its points (how and where the "
                        "tasks run, or the run's limits); make one run per value (--set, "
                        "with another base.output).",
                    )
                )
    if any("base.output" in axis[0] for axis in axes):
        errors.append(
            at(
                where("grid.base.output"),
                "the points of one run share its run directory (base.output); the point "
                "folders are named after the other keys of the grid.",
            )
        )
    if errors:
        raise ConfigError(errors)
    return axes


#: Keys (and sections) that a run reads once, from its first point: no grid axis.
RUN_SETTINGS = (
    "base.engine",
    "base.image",
    "base.step_images",
    "base.gpu",
    "base.check_image_version",
    "base.executor",
    "base.jobs",
    "base.max_points",
    "base.max_tasks",
    "slurm",
)


def _repeated(values: list[Any]) -> Any:
    """The first value that occurs twice in ``values`` (two identical points), or None; a
    string spelling a number is that number (the schema reads "1.64" as 1.64)."""
    seen: list[Any] = []
    for v in values:
        c = _canonical(v)
        if c in seen:
            return v
        seen.append(c)
    return None


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):  # true is no repeat of 1.0 (Python's True == 1)
        return (bool, value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def expand(grid: Mapping[str, Any], where: Where = key_only) -> list[dict[str, Any]]:
    """All grid points as {dotted key: value}; one empty point when there is no grid."""
    axes = grid_axes(grid, where)
    if not axes:
        return [{}]
    points = []
    for combo in itertools.product(*axes):
        values: dict[str, Any] = {}
        for setting in combo:
            values.update(setting)
        points.append(values)
    return points


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    return str(value)


MAX_NAME = 120  # characters of a point folder name (file systems allow 255 bytes)


def point_name(values: Mapping[str, Any]) -> str:
    """Safe folder name from varied values: ``[A-Za-z0-9._+-]``, no leading dot, bounded."""
    if not values:
        return DEFAULT_POINT
    parts = [f"{k.rsplit('.', 1)[-1]}-{_fmt(v)}" for k, v in values.items()]
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", "_".join(parts)).lstrip(".-") or "point"
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}_{digest}"
    return name


def point_names(points: list[dict[str, Any]]) -> list[str]:
    """Readable, unique folder names from the varied values (``blind_nsigma-1.64_...``),
    unique in any case too (``label-A`` and ``label-a`` were one folder on a case-blind
    file system, as dataset keys would be; a review): such names are numbered."""
    names = [point_name(values) for values in points]
    counts = Counter(n.lower() for n in names)
    taken = {n.lower() for n in names}  # a numbered name must not be another point's own
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        if counts[name.lower()] > 1:
            k = seen.get(name.lower(), 0)
            while f"{name}_{k + 1}".lower() in taken:
                k += 1
            seen[name.lower()] = k + 1
            name = f"{name}_{k + 1}"
            taken.add(name.lower())
        unique.append(name)
    return unique
