"""Configuration: load (inheritance), cards, grid, render (Jinja2) and validate.

``load_points(path, overrides)`` is the one entry point the CLI, the planner and the TUI
use: it returns every grid point with its fully rendered, validated config, or raises a
``ConfigError`` whose ``issues`` list every problem with its file, line, column and dotted
key (:class:`~gprpipe.config.issues.Issue`; ``str(issue)`` is the sentence the CLI prints).
``text=`` validates a text (an editor's buffer) as if it were saved at ``path``.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gprpipe.config.checks import (
    HistogramIssue,
    control_char_errors,
    grid_size_error,
    name_errors,
    plan_errors,
)
from gprpipe.config.grid import expand, point_names
from gprpipe.config.issues import Issue, Loc, Where, at, issues_of, unique
from gprpipe.config.loader import (
    Loaded,
    Origin,
    apply_overrides,
    deep_merge,
    get_dotted,
    load_chain,
    override_leaves,
    prefixes,
    read_toml,
    reason_of,
    resolve_ref,
    set_dotted,
)
from gprpipe.config.render import grid_budget, render_config
from gprpipe.config.schema import Base, Config, Point, validate
from gprpipe.errors import ConfigError, GprpipeError
from gprpipe.io.paths import absolute, mount_files, unwritable_in_bind

__all__ = [
    "BlindingVaries",
    "Config",
    "Issue",
    "Point",
    "check_config_inputs",
    "check_inputs",
    "issues_of",
    "load",
    "load_points",
    "point_config_from_file",
]


def load(path: Path | str, overrides: Sequence[str] = (), text: str | None = None) -> Loaded:
    """Merged (unrendered) config of ``path`` (or of ``text`` standing for it) with
    ``--set`` overrides applied."""
    loaded = apply_overrides(load_chain(path, text), list(overrides))
    not_tables = [
        at(loaded.where(key), f"must be a table ([{key}] with keys), not {loaded.data[key]!r}.")
        for key in ("base", "grid")
        if key in loaded.data and not isinstance(loaded.data[key], dict)
    ]
    if not_tables:
        raise ConfigError(not_tables)
    base = loaded.data.setdefault("base", {})
    if isinstance(base, dict):  # a chain ended by ``template = false``: render this default too
        for key in ("name", "output"):
            base.setdefault(key, Base.model_fields[key].default)
    return loaded


def _where(loaded: Loaded) -> Where:
    return loaded.where


def apply_cards(data: dict[str, Any], loaded: Loaded) -> list[Issue]:
    """Merge each dataset over its card's ``[dataset]`` table; returns errors."""
    errors: list[Issue] = []
    datasets = data.get("datasets")
    for name, ds in datasets.items() if isinstance(datasets, dict) else ():
        if not isinstance(ds, dict) or not ds.get("card"):
            continue
        key = f"datasets.{name}.card"
        origin = loaded.origin(key) or Origin("--set")
        ref = str(ds["card"])
        if "{{" in ref or "{%" in ref:  # rendered as base.template is (every string is)
            from gprpipe.config.render import render_string

            try:
                ref = render_string(ref, data, where=origin.at(key))
            except ConfigError as exc:
                errors += [i for i in exc.issues if isinstance(i, Issue)]
                continue
        try:
            card_path = resolve_ref(ref, origin.folder(), "cards")
        except FileNotFoundError as exc:
            errors.append(origin.at(key).issue(f"card {exc}"))
            continue
        try:
            card, positions = read_toml(card_path)
        except GprpipeError as exc:  # not TOML, or unreadable: the key that named it
            errors.append(
                origin.at(key).issue(f"card {card_path} is no card: {reason_of(exc, card_path)}")
            )
            continue
        unknown = set(card) - {"card", "dataset"}
        if unknown:
            table = sorted(unknown)[0]
            pos = positions.get(table)
            errors.append(
                Issue(
                    f"unknown table {table!r} in a card.",
                    str(card_path),
                    pos[0] if pos else None,
                    pos[1] if pos else None,
                    table,
                    prefix=str(card_path),
                )
            )
        data["datasets"][name] = deep_merge(card.get("dataset", {}), ds)
        for k, pos in positions.items():
            if k.startswith("dataset.") and k.removeprefix("dataset.") not in ds:
                loaded.origins[f"datasets.{name}.{k.removeprefix('dataset.')}"] = Origin(
                    str(card_path), *pos
                )
    return errors


def _resolve_paths(data: dict[str, Any], loaded: Loaded, where: Where) -> list[Issue]:
    """Make dataset paths absolute: relative to the file that set them (CWD for --set).
    A path that cannot be resolved (a symlink loop, ``~nosuchuser``) is an issue."""
    errors: list[Issue] = []

    def absolute(value: str, key: str, relative: bool = True) -> str:
        var = _SHELL_VARIABLE.search(value)
        if var and not Path(value).expanduser().exists():  # ($HOME/runs made ./$HOME/runs)
            name = var.group("name")
            errors.append(
                at(
                    where(key),
                    f"{value}: {var.group(0).strip('/')} is not expanded (no shell reads "
                    f"the config): write the path, or list {name} in base.env and write "
                    f"{{{{ ENV.{name} }}}}.",
                )
            )
            return value
        try:
            p = Path(value).expanduser()
            if relative and not p.is_absolute():
                origin = loaded.origin(key)
                p = (origin.folder() if origin else Path.cwd()) / p
            return str(p.resolve())
        except (RuntimeError, OSError) as exc:  # symlink loop; unknown user of '~user'
            why = str(exc).rstrip(".")
            errors.append(at(where(key), f"{value}: cannot resolve this path ({why})."))
            return value

    datasets = data.get("datasets")
    for name, ds in datasets.items() if isinstance(datasets, dict) else ():
        if isinstance(ds, dict) and isinstance(ds.get("path"), str):
            ds["path"] = absolute(ds["path"], f"datasets.{name}.path")
    ts = data.get("toyscan")
    if isinstance(ts, dict) and isinstance(ts.get("file"), str):
        ts["file"] = absolute(ts["file"], "toyscan.file")
    base = data.get("base")
    output = base.get("output") if isinstance(base, dict) else None
    here = isinstance(output, str) and os.path.normpath(output.strip() or ".") == "."
    if isinstance(base, dict) and isinstance(output, str) and not here:  # (here: refused)
        base["output"] = absolute(output, "base.output", relative=False)
    return errors


#: a shell variable as a path part (``$HOME/runs``, ``${DATA}/x.root``)
_SHELL_VARIABLE = re.compile(r"(?:^|/)\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?(?=/|$)")


def load_points(
    path: Path | str, overrides: Sequence[str] = (), text: str | None = None
) -> tuple[Loaded, list[Point]]:
    """Every grid point of ``path`` (or of ``text`` standing for it), rendered and
    validated; all errors at once (a ``ConfigError`` with every issue)."""
    loaded = load(path, overrides, text)
    where = _where(loaded)
    grid = loaded.data.get("grid") or {}
    too_big = grid_size_error(loaded.data, where)
    if too_big:
        raise ConfigError([too_big])
    settings = expand(grid, where)
    names = point_names(settings)
    errors: list[Issue] = []
    varied = {key for values in settings for key in values}
    for item in overrides:
        try:
            keys = set(override_leaves(item))
        except ConfigError:
            keys = {item.split("=", 1)[0].strip()}  # (the loader names a malformed one)
        hit = sorted(keys & varied)
        if hit:
            key = hit[0]
            origin = loaded.origins.get(f"grid.{key}") or loaded.origins.get(f"grid.zip.{key}")
            errors.append(
                Issue(
                    f"this key is varied by the grid"
                    f"{f' ({origin})' if origin else ''}; choose grid points with "
                    f"--points, or change the [grid] table.",
                    f"--set {key}",
                    key=key,
                )
            )
    if errors:
        raise ConfigError(errors)
    points: list[Point] = []
    with grid_budget():  # the points of one grid share one rendering budget
        for index, (name, values) in enumerate(zip(names, settings)):
            data = copy.deepcopy(loaded.data)
            data.pop("grid", None)
            clash = [
                at(
                    where(prefix),
                    f"{get_dotted(data, prefix)!r} is not a table, yet the grid sets {key} in "
                    f"it; set a key inside it ({prefix}.KEY = VALUE).",
                )
                for key in values
                for prefix in prefixes(key)
                if not isinstance(get_dotted(data, prefix, {}), Mapping)
            ]
            if clash:  # the grid's table would replace that value and the section's keys
                errors += clash
                continue
            for key, value in values.items():
                set_dotted(data, key, value)
                loaded.origins[key] = (
                    loaded.origins.get(f"grid.{key}")
                    or loaded.origins.get(f"grid.zip.{key}")
                    or Origin("grid")
                )
            missing_cards = apply_cards(data, loaded)
            unsafe = control_char_errors(data, where) + name_errors(data, where)
            if unsafe or missing_cards:
                # without its card a dataset lacks the card's keys: say only what is wrong
                errors += missing_cards + unsafe
                continue
            try:
                data = render_config(data, where)
            except ConfigError as exc:
                errors += issues_of(exc)
                # still report unknown keys (typos), which do not depend on rendering
                errors += [
                    e for e in validate(data, where)[1] if e.message.startswith("unknown key")
                ]
                continue
            unsafe = control_char_errors(data, where)
            if unsafe:
                errors += unsafe
                continue
            unresolved = _resolve_paths(data, loaded, where)
            if unresolved:
                errors += unresolved
                continue
            # and as resolved: a link (or the folder a relative path is taken in) whose
            # name holds a newline passed validate, and every task failed (a review)
            unsafe = control_char_errors(data, where, resolved=True)
            if unsafe:
                errors += unsafe
                continue
            model, errs = validate(data, where)
            errors += errs
            if model is not None:
                errs = plan_errors(model, where)
                errors += errs
                if not errs:
                    points.append(Point(index, name, values, model, model.model_dump(mode="json")))
    if not errors and len({p.config.base.blind for p in points}) > 1:
        raise BlindingVaries([_blinding_varies(points, where)])
    if not errors:
        errors += _alike_points(points, where) + _run_settings_vary(points, where)
    if errors:
        raise ConfigError(unique(errors))
    return loaded, points


def _run_settings_vary(points: Sequence[Point], where: Where) -> list[Issue]:
    """A setting of the whole run (:data:`~gprpipe.config.grid.RUN_SETTINGS`: engine,
    image, executor, SLURM, limits) that renders differently at different grid points (its
    Jinja2 reads a key the grid varies): the run would take the first point's everywhere."""
    import json

    from gprpipe.config.grid import RUN_SETTINGS

    def leaves(key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            return {key: value}
        return {k: v for sub, x in value.items() for k, v in leaves(f"{key}.{sub}", x).items()}

    values = [
        {k: v for key in RUN_SETTINGS for k, v in leaves(key, get_dotted(p.data, key)).items()}
        for p in points
    ]
    errors = []
    for key in sorted({k for v in values for k in v}):
        seen: dict[str, str] = {}
        for p, v in zip(points, values):
            seen.setdefault(json.dumps(v.get(key), sort_keys=True), p.name)
        if len(seen) > 1:
            (a, pa), (b, pb) = list(seen.items())[:2]
            errors.append(
                at(
                    where(key),
                    f"renders {a} at grid point {pa} and {b} at {pb}: a run has one value of "
                    "it for all its points (how and where the tasks run, or the run's limits); "
                    "make one run per value (--set, with another base.output).",
                )
            )
    return errors


#: lists whose order changes no result (sets of masses, strengths, formats); not the
#: datasets: their order picks the toy scan's default dataset and each one's colour
_ORDERLESS = (
    "scan.masses",
    "inject.masses",
    "inject.strengths",
    "plot.formats",
    "plot.masses",
    "plot.allocation_masses",
    "plot.displays.masses",
    "plot.displays.observed",
    "plot.displays.z",
    "plot.displays.variants",
)


def _alike_points(points: Sequence[Point], where: Where) -> list[Issue]:
    """Two grid points whose values differ as written but render to one config (a Jinja2
    value, two spellings of one file) or to one analysis (a list of masses in two orders):
    one point, run twice."""
    import json

    seen: dict[str, tuple[str, str]] = {}  # analysis -> (point, config)
    for p in points:
        config = json.dumps(p.data, sort_keys=True, default=str)
        analysis = json.dumps(_orderless(p.data), sort_keys=True, default=str)
        if analysis in seen:
            first, first_config = seen[analysis]
            why = (
                "their values differ as written, not once rendered"
                if config == first_config
                else "their lists differ only in order, which changes no result"
            )
            return [
                at(
                    where("grid"),
                    f"grid points {first} and {p.name} give the same config ({why}); drop "
                    "one of them.",
                )
            ]
        seen[analysis] = (p.name, config)
    return []


def _orderless(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the lists of :data:`_ORDERLESS` sorted."""
    out = copy.deepcopy(data)
    for dotted in _ORDERLESS:
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) or {}
        if isinstance(node.get(leaf), list):
            node[leaf] = sorted(node[leaf], key=str)
    return out


class BlindingVaries(ConfigError):
    """``base.blind`` renders differently at different grid points."""


def _blinding_varies(points: Sequence[Point], where: Where) -> Issue:
    """A ``base.blind`` that renders differently at different grid points (its Jinja2
    reads a key the grid varies): blinding is one setting of the whole config."""

    def names(blind: bool) -> str:
        chosen = [p.name for p in points if p.config.base.blind is blind]
        return ", ".join(chosen[:3]) + (f" and {len(chosen) - 3} more" if len(chosen) > 3 else "")

    return at(
        where("base.blind"),
        f"renders true at grid points {names(True)} and false at {names(False)}: blinding is "
        "one setting of the whole config, lifted only by 'gprpipe run --unblind' (recorded "
        "in run.json).",
    )


def check_inputs(loaded: Loaded, points: Sequence[Point]) -> None:
    """Read every scanned histogram once and check it against its dataset (binning after
    rebinning, ranges inside it: :func:`~gprpipe.config.checks.histogram_errors`); raise a
    ``ConfigError`` whose sentences name the config file, key and data file.

    A data file that does not exist is skipped here: ``checks.missing_files`` names it
    (``run`` and ``validate`` refuse it; the TUI's editor warns).
    """
    check_config_inputs([p.config for p in points], _where(loaded))


def check_config_inputs(configs: Sequence[Config], where: Where) -> None:
    """:func:`check_inputs` of rendered point configs, ``where`` locating their keys (a
    rerun: the point's config.toml)."""
    from gprpipe.config.checks import histogram_errors
    from gprpipe.io.root import HistogramError, read_hist

    errors: list[Issue] = []
    read: dict[tuple[str, str], tuple[np.ndarray, np.ndarray] | GprpipeError] = {}
    matched: dict[tuple[str, str, str], Matched] = {}
    for cfg in configs:
        for name in cfg.scanned():
            ds = cfg.datasets[name]
            key = (ds.path, ds.hist)
            if not Path(ds.path).exists():
                continue
            if key not in read:
                try:
                    read[key] = read_hist(ds.path, ds.hist)
                except GprpipeError as exc:
                    read[key] = exc
            got = read[key]
            if isinstance(got, GprpipeError):
                field = "hist" if isinstance(got, HistogramError) else "path"
                errors.append(at(where(f"datasets.{name}.{field}"), str(got)))
                continue
            counts, edges = got
            for issue in histogram_errors(name, cfg, counts, edges):
                errors.append(_range_of_a_card(where, issue, name))
        errors += _combined_twice(cfg, where, read)
        errors += _mount_errors(cfg, where)
        errors += _pattern_errors(cfg, where, matched, read)
    if errors:
        raise ConfigError(unique(errors))


def _range_of_a_card(where: Where, issue: HistogramIssue, name: str) -> Issue:
    """A histogram's issue at its key; a range the histogram does not cover, set by a
    shipped card or template and not by the user, is said at the data file's key (it was
    blamed on the card's line: the wrong year's file, or one in other units; a newcomer
    review)."""
    from gprpipe.config.loader import shipped_dir

    loc = where(issue.key)
    field = issue.key.rpartition(".")[2]
    why = issue.why
    shipped = [shipped_dir(kind).resolve() for kind in ("cards", "templates")]
    if (
        issue.uncovered
        and isinstance(loc, Loc)
        and loc.file is not None
        and any(Path(loc.file).resolve().is_relative_to(d) for d in shipped)
    ):
        line = f" (line {loc.line})" if loc.line else ""
        said = why.rstrip(".") + ("; it is" if why.rstrip(".").endswith("?") else ":")
        said += f" the {field} of the shipped {Path(loc.file).name}{line}"
        return at(
            where(f"datasets.{name}.path"),
            f"{said}: another file, or set datasets.{name}.{field} in this config.",
        )
    return at(loc, why)


def _mount_errors(cfg: Config, where: Where) -> list[Issue]:
    """Paths a container engine would mount that hold ':' or ',' (a bind spec cannot say
    them): the run directory and each data file outside it, by the engines' own rule
    (:func:`~gprpipe.io.paths.mount_files`); the run refused them only when it built a
    task's command, naming the task and not the key."""
    if cfg.base.engine == "local":
        return []
    run_dir = absolute(cfg.base.output)
    found = [("base.output", run_dir)]
    found += [(key, f) for file, key in cfg.data_files() for f in mount_files([file], run_dir)]
    return [
        at(
            where(key),
            f"{path}: a {cfg.base.engine} container cannot mount a path that holds "
            "':' or ',' (a bind spec cannot write them); move it, or run with "
            'base.engine = "local".',
        )
        for key, path in dict.fromkeys(found)
        if unwritable_in_bind(path)
    ]


def _combined_twice(
    cfg: Config,
    where: Where,
    read: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray] | GprpipeError],
) -> list[Issue]:
    """Two datasets of a combination (``scan.combined``) whose histograms hold the same
    counts in the same bins: one spectrum combined with itself counts its events twice
    (a single ``init --data`` for every dataset once did this without a word)."""
    if not cfg.scan.combined:
        return []
    seen: dict[bytes, str] = {}
    errors: list[Issue] = []
    for name in cfg.scanned():
        ds = cfg.datasets[name]
        got = read.get((ds.path, ds.hist))
        if got is None or isinstance(got, GprpipeError):
            continue
        counts, edges = got
        key = np.asarray(counts, dtype=float).tobytes() + np.asarray(edges, dtype=float).tobytes()
        if key in seen:
            errors.append(
                at(
                    where(f"datasets.{name}.path"),
                    f"{ds.path} ({ds.hist}) holds the same counts as datasets.{seen[key]}: a "
                    "combination (scan.combined) of a spectrum with itself counts its events "
                    "twice; give each dataset its own data file.",
                )
            )
        else:
            seen[key] = name
    return errors


#: what a histogram pattern of a file matched: its first histogram as read and how many
#: matched, or why none
Matched = tuple[str, tuple[np.ndarray, np.ndarray], int] | GprpipeError


def _pattern_errors(
    cfg: Config,
    where: Where,
    matched: dict[tuple[str, str, str], Matched],
    read: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray] | GprpipeError],
) -> list[Issue]:
    """Histogram patterns that match nothing in their (existing) file: the injection
    backgrounds (``inject.histograms``), whose first histogram must also have the binning
    of the data (``read``: the datasets' histograms), and the toys of ``toyscan``, whose
    first toy must scan like its dataset (:func:`~gprpipe.config.checks.toy_errors`);
    ``matched`` keeps what each file gave across the grid points (each is listed and read
    once)."""
    from gprpipe.config.checks import (
        OBSERVED_AS_TOY,
        binning_mismatch,
        holds_observed,
        observed_windows,
        toy_errors,
    )
    from gprpipe.io.root import HistogramError, match_hists, read_hist

    wanted: list[tuple[str, str, str]] = []  # (key of the pattern, file, pattern)
    inj = cfg.inject
    if "inject" in cfg.steps.run and inj.masses and inj.background == "histograms":
        wanted += [
            ("inject.histograms", cfg.datasets[n].path, str(inj.histograms)) for n in cfg.scanned()
        ]
    if "toyscan" in cfg.steps.run and cfg.toyscan.file:
        wanted.append(("toyscan.pattern", cfg.toyscan.file, cfg.toyscan.pattern))
    errors = []
    for want in wanted:
        key, path, pattern = want
        if not Path(path).exists():
            continue
        if key == "toyscan.pattern" and not Path(path).is_file():  # the file is at fault
            errors.append(at(where("toyscan.file"), f"{path}: not a file."))
            continue
        if want not in matched:
            try:
                names = match_hists(path, pattern, key)
                matched[want] = (names[0], read_hist(path, names[0]), len(names))
            except GprpipeError as exc:  # none matches, or the file is unreadable
                matched[want] = exc
        got = matched[want]
        if isinstance(got, GprpipeError):
            file_at_fault = key == "toyscan.pattern" and not isinstance(got, HistogramError)
            errors.append(at(where("toyscan.file" if file_at_fault else key), str(got)))
            continue
        named = set()
        for n in cfg.scanned():  # the data among the toys ('*'): it would pass for one
            ds = cfg.datasets[n]
            same = Path(ds.path).resolve() == Path(path).resolve()
            if same and got[2] > 1 and fnmatch.fnmatchcase(ds.hist, pattern):
                named.add(n)
                errors.append(
                    at(
                        where(key),
                        f"{pattern!r} matches {ds.hist!r}, the observed histogram of dataset "
                        f"{n} in {path}, among {got[2] - 1} other histograms; a pattern of "
                        "background-only toys must leave the data out (e.g. '*_toy_*').",
                    )
                )
        if cfg.base.blind:  # the data histogram passed off as a toy (the tasks check them all)
            name = cfg.toyscan_dataset() if key == "toyscan.pattern" else None
            for n in [name] if name else cfg.scanned():
                if n in named:  # said above
                    continue
                ds = cfg.datasets[n]
                data = read.get((ds.path, ds.hist))
                near = (
                    holds_observed(got[1][0], data[0], observed_windows(cfg, n, *data))
                    if isinstance(data, tuple)
                    else None
                )
                if near is not None:  # (the tasks' rule: a copy, or nearly one)
                    errors.append(
                        at(
                            where(key),
                            f"{path}: histogram {got[0]!r} holds the observed counts of dataset "
                            f"{n} (histogram {ds.hist!r}){near}; {OBSERVED_AS_TOY}",
                        )
                    )
        if key == "inject.histograms":
            first, (_, edges), count = got
            if count < 2:
                errors.append(
                    at(
                        where(key),
                        f"{path}: {pattern!r} matches 1 histogram ({first!r}); its background "
                        "histograms are the study's toys, and a pull width needs at least 2.",
                    )
                )
            for n in cfg.scanned():
                ds = cfg.datasets[n]
                data = read.get((ds.path, ds.hist))
                if ds.path == path and isinstance(data, tuple):
                    why = binning_mismatch(path, first, edges, ds.hist, data[1])
                    errors += [at(where(key), why)] if why else []
        elif key == "toyscan.pattern":  # the first toy stands for all: they scan alike
            bad = toy_errors(cfg, *got[1], got[0])
            ds = cfg.datasets[cfg.toyscan_dataset()]
            data = read.get((ds.path, ds.hist))
            if not bad and isinstance(data, tuple):  # toys of the data's spectrum
                toy, edges = got[0], got[1][1]
                why = binning_mismatch(path, toy, edges, ds.hist, data[1], "toyscan.file", ds.path)
                bad = [why] if why else []
            errors += [at(where("toyscan.file"), bad[0])] if bad else []
    return errors


def point_config_from_file(path: Path | str, text: str | None = None) -> Config:
    """Read a point's fully rendered ``config.toml`` (what ``gprpipe step`` uses), or
    ``text`` already read from it."""
    data, _ = read_toml(Path(path), text)

    def where(key: str) -> Loc:
        return Loc(str(path), key=key)

    unsafe = control_char_errors(data, where)
    if unsafe:
        raise ConfigError(unsafe)
    model, errors = validate(data, where)
    if model is None:
        raise ConfigError(errors)
    return model


def check_point(path: Path | str) -> None:
    """Raise if a point config file cannot be read (used by status/rerun)."""
    if not Path(path).is_file():
        raise GprpipeError(f"{path}: not a gprpipe point folder (config.toml missing).")
