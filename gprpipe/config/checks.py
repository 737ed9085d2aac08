"""Checks beyond the typed schema, each error an :class:`~gprpipe.config.issues.Issue`
(one sentence naming the file, line and key).

- **Control characters** (newlines, carriage returns, escapes, ...) are refused in every key
  and string value: values reach sbatch scripts, command lines and file names.
- **Names**: dataset keys name files and folders of the run, so they are safe identifiers.
- **Plan size**: grid points, masses per dataset and tasks are capped (``base.max_points``,
  ``base.max_masses``, ``base.max_tasks``); the counts are computed without building the
  grid or the mass arrays.
- **Physics sense** over the scan: a positive, finite resolution and radiative fraction at
  every test mass, ordered length-scale factors, no duplicate masses, and enough bins
  after rebinning, inside the histogram (:func:`histogram_errors`, which needs it).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from gprpipe.config.issues import Issue, Loc, Where, at, unique
from gprpipe.config.schema import Base, Config, Dataset, Point
from gprpipe.units import (
    BARE_MAX_GEV,
    MASS_TOL_GEV,
    MIN_MASS_SPACING_GEV,
    looks_like_mev,
    mass_within,
    mev_hint,
    same_mass,
)

#: control characters, line separators, and the invisible format characters that make
#: printed text lie (zero-width ones, bidirectional overrides and isolates, the BOM)
CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
    r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2060-\u2064\u206a-\u206f"
    r"\u3164\ufe00-\ufe0f\uffa0\ufff0-\ufffb\U000e0000-\U000e0fff"
    r"\ud800-\udfff]"  # (lone surrogates: bytes that are not UTF-8, from argv or a path)
)
#: Dataset keys: letters, digits, ``_ . + -``; first a letter or digit; at most 64 characters.
#: no '.': ``--set`` and ``[grid]`` address a dataset's keys as ``datasets.<name>.<key>``
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,63}\Z")
RESERVED_NAMES = ("combined",)  # the joint fit's chunks and groups are called so
#: Fewest bins a dataset must keep after rebinning (GP training needs sidebands).
MIN_BINS = 10
#: Most bins the GP may see after rebinning (its covariance holds every pair of them:
#: 10,000 bins are 0.8 GB; the real spectra have 300-1,600).
MAX_FIT_BINS = 10_000


def _char_name(c: str) -> str:
    if "\ud800" <= c <= "\udfff":
        return "a byte that is not UTF-8"
    return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
        c, unicodedata.name(c, "a control character").lower()
    )


def _escaped(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, str, bool]]:
    """(dotted key, text, is_key) of every key and string value below ``node``."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            dotted = f"{key}.{k}" if key else str(k)
            yield dotted, str(k), True
            yield from _walk(v, dotted)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    elif isinstance(node, str):
        yield key, node, False


def control_char_errors(
    data: Mapping[str, Any], where: Where, resolved: bool = False
) -> list[Issue]:
    """One error per key or string value holding a control character (``resolved``: the
    paths of ``data`` are resolved, links followed: the error shows where one leads)."""
    errors = []
    for dotted, text, is_key in _walk(data):
        m = CONTROL.search(text)
        if m and resolved and dotted == "base.output" and "\ud800" <= m.group() <= "\udfff":
            continue  # a folder whose name is not UTF-8: the run says so in its own words
        if m:
            what = "key" if is_key else "value"
            if resolved and not is_key:
                what = f"path leads to {text!r}, which"
            # found where the key itself was set (the escaped name was set nowhere: the
            # error named the table of the shipped defaults; a review), shown escaped
            loc = where(dotted)
            if isinstance(loc, Loc) and loc.key is not None:
                file = f"--set {_escaped(dotted)}" if loc.file == f"--set {dotted}" else loc.file
                loc = dataclasses.replace(loc, key=_escaped(dotted), file=file)
            elif not isinstance(loc, Loc):
                loc = where(_escaped(dotted))
            errors.append(
                at(
                    loc,
                    f"the {what} holds {_char_name(m.group())} "
                    f"(U+{ord(m.group()):04X}), and no key or value may hold control characters "
                    "or invisible formatting characters, because values reach job scripts, "
                    "command lines, file names and printed paths.",
                )
            )
    return errors


#: a dataset key ending so would name its mass parts (``<key>-<k>``) like the toy parts of
#: another dataset or of the combination (``<dataset>-toys-<k>``, ``<dataset>-refit-<k>``)
TOY_PART_ENDINGS = ("-toys", "-refit")


def name_errors(data: Mapping[str, Any], where: Where) -> list[Issue]:
    """Dataset keys must be safe identifiers (they name part files, logs and plots)."""
    errors: list[Issue] = []
    datasets = data.get("datasets")
    seen: dict[str, str] = {}  # lower case -> the key
    for name in datasets if isinstance(datasets, Mapping) else ():
        if CONTROL.search(str(name)):
            continue  # reported as a control character
        clash = str(name).endswith(TOY_PART_ENDINGS)
        reserved = str(name).lower() in RESERVED_NAMES
        twin = seen.setdefault(str(name).lower(), str(name))
        if twin != name:
            errors.append(
                at(
                    where(f"datasets.{name}"),
                    f"the dataset keys {twin!r} and {name!r} differ only in case: the HEPData "
                    "tables (lower case) and the files of a case-blind file system would be "
                    "one; rename one of them.",
                )
            )
        if not SAFE_NAME.match(str(name)) or reserved or clash:
            why = (
                f"{name!r} is reserved for the joint fit"
                + ("" if name in RESERVED_NAMES else " (in any case)")
                if reserved
                else f"{name!r} ends like the toy tasks' parts of a dataset "
                f"(<dataset>{'/'.join(TOY_PART_ENDINGS)}-<k>)"
                if clash
                else f"{name!r} is not a safe name (letters, digits, '_', '+', '-', "
                "starting with a letter or digit, at most 64 characters; no '.', which "
                "--set and [grid] read as a level of datasets.<name>.<key>)"
            )
            errors.append(
                at(
                    where(f"datasets.{name}"),
                    f"the dataset key {why}; it names files and folders inside the run directory.",
                )
            )
    return errors


def _cap(data: Mapping[str, Any], key: str) -> int:
    """``base.<key>`` from unvalidated data, as validation reads it (``"2"`` and ``2.0``
    are 2: they were passed over, and the grid of 5 points ran; the own-diff review);
    its default when unset or no whole number."""
    from pydantic import TypeAdapter, ValidationError

    base = data.get("base") if isinstance(data, Mapping) else None
    value = base.get(key) if isinstance(base, Mapping) else None
    try:  # as the schema reads it ("+2", "2_0", 2.0; the own-diff reviews)
        got = TypeAdapter(int).validate_python(value) if value is not None else None
    except (ValidationError, ValueError, TypeError):
        got = None
    if got is not None and not isinstance(value, bool) and got >= 1:
        return got
    return int(Base.model_fields[key].default)


def grid_size(grid: Mapping[str, Any]) -> int:
    """Number of grid points, without building them (0 for a malformed grid)."""
    from gprpipe.config.loader import flatten

    n = 1
    for values in flatten({k: v for k, v in grid.items() if k != "zip"}).values():
        n *= len(values) if isinstance(values, list) else 0
    zipped = grid.get("zip")
    if isinstance(zipped, Mapping) and zipped:
        lengths = [len(v) if isinstance(v, list) else 0 for v in flatten(zipped).values()]
        n *= min(lengths) if lengths else 1
    return n


def grid_size_error(data: Mapping[str, Any], where: Where) -> Issue | None:
    """Too many grid points (counted without building them)."""
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        return None
    base = data.get("base")
    given = base.get("max_points") if isinstance(base, Mapping) else None
    if isinstance(given, str) and ("{{" in given or "{%" in given):
        # the grid is counted before any template is rendered (a million points are not
        # rendered to be refused): a template here was passed over (a review)
        return at(
            where("base.max_points"),
            "a template; the grid's points are counted before templates are rendered: "
            "write a number.",
        )
    n, cap = grid_size(grid), _cap(data, "max_points")
    if n <= cap:
        return None
    return at(
        where("grid"),
        f"the grid has {n} points, more than base.max_points = {cap}; "
        "shrink the grid or raise base.max_points.",
    )


def mass_count(lo: float, hi: float, step: float, origin: float | None = None) -> int:
    """How many masses ``scan_masses(lo, hi, step, origin)`` would hold."""
    from gprpipe.stats.window import grid_steps

    first, last = grid_steps(lo, hi, step, origin)
    return last - first + 1


def slurm_log_folder_problem(folder: str) -> str:
    """Why SLURM cannot write its logs under ``folder`` ('' when it can): it drops a
    backslash from an output pattern and stops expanding ``%a``, so the logs of every
    element would go to one file of another folder."""
    if "\\" not in folder:
        return ""
    return (
        f"{folder}: SLURM cannot write its logs to a folder whose path holds a backslash "
        "(it drops it, and writes elsewhere); choose another base.output."
    )


def label_errors(cfg: Config, where: Where) -> list[Issue]:
    """Figure labels (``plot.experiment``, ``plot.status``, the datasets' ``label``) with
    math text (``$...$``) that matplotlib cannot lay out: the plot step would fail on
    them after every other step ran. matplotlib is imported only for such a label."""
    labels = {"plot.experiment": cfg.plot.experiment, "plot.status": cfg.plot.status}
    labels |= {f"datasets.{n}.label": d.label for n, d in cfg.datasets.items() if d.label}
    errors = []
    for key, text in labels.items():
        if "$" not in text:
            continue
        from matplotlib import cbook
        from matplotlib.font_manager import FontProperties
        from matplotlib.mathtext import MathTextParser

        if not cbook.is_math_text(text):
            continue
        if (depth := _brace_depth(text)) > MAX_MATH_DEPTH:
            why = f"braces nested {depth} deep, more than the {MAX_MATH_DEPTH} a figure can draw"
            errors.append(at(where(key), f"'{text}' is no valid math text ({why})."))
            continue
        try:
            MathTextParser("path").parse(text, 72, FontProperties())
        except (ValueError, RecursionError) as exc:
            why = " ".join(str(exc).split()) or "unbalanced braces or dollar signs"
            errors.append(at(where(key), f"'{text}' is no valid math text ({why})."))
    return errors


#: the deepest brace nesting of a label's math text: 21 levels (``\sqrt{`` in
#: ``\sqrt{``...) passed matplotlib's parser and failed the plot step's drawing with
#: RecursionError, 22 the parser (a review); a physics label needs a few
MAX_MATH_DEPTH = 10


def _brace_depth(text: str) -> int:
    """The deepest nesting of unescaped ``{`` in the math (``$...$``) of ``text``."""
    deepest = 0
    for part in re.split(r"(?<!\\)\$", text)[1::2]:
        depth = 0
        for m in re.finditer(r"\\.|[{}]", part):
            depth += {"{": 1, "}": -1}.get(m.group(), 0)
            deepest = max(deepest, depth)
    return deepest


def plan_errors(cfg: Config, where: Where) -> list[Issue]:
    """Caps on masses and the physics checks of one validated point config."""
    from gprpipe.stats.resolution import polyval, sigma_m

    errors: list[Issue] = unit_errors(cfg, where)
    if errors:  # MeV typed for GeV: say so, not "no test mass lies in the range"
        return errors
    if cfg.base.executor == "slurm" and (why := slurm_log_folder_problem(cfg.base.output)):
        errors.append(at(where("base.output"), why))
    errors += label_errors(cfg, where)
    joint = list(RESERVED_NAMES) if len(cfg.combined_masses()) else []  # as the plan makes
    shown = [*cfg.scanned(), *joint]
    for name in cfg.plot.displays.datasets or []:
        if name not in shown:
            why = (
                "no combination is made (scan.combined, two scanned datasets sharing masses)"
                if name in RESERVED_NAMES
                else "it is not a scanned dataset"
            )
            errors.append(
                at(
                    where("plot.displays.datasets"),
                    f"{name!r}: {why}; the displays are of {', '.join(shown) or 'none'}.",
                )
            )
    cap = cfg.base.max_masses
    for key in ("scan.masses", "inject.masses"):
        masses = cfg.scan.masses if key == "scan.masses" else cfg.inject.masses
        seen: dict[str, float] = {}
        before = len(errors)
        for m in masses or []:
            tag = f"{m * 1e3:g}"  # inject part names use this spelling
            if tag in seen:
                errors.append(
                    at(
                        where(key),
                        f"the mass {m:g} GeV is listed twice (or two "
                        f"masses round to the same {tag} MeV).",
                    )
                )
                break
            seen[tag] = m
        close = [
            (a, b)
            for a, b in itertools.pairwise(sorted(set(masses or [])))
            if b - a < MIN_MASS_SPACING_GEV
        ]
        if close and len(errors) == before:
            a, b = close[0]
            errors.append(
                at(
                    where(key),
                    f"the masses {a:.9g} and {b:.9g} GeV are closer than "
                    f"{MIN_MASS_SPACING_GEV * 1e3:g} MeV; list distinct masses.",
                )
            )
    if cfg.scan.masses == []:
        return [
            at(
                where("scan.masses"),
                "an empty list; list the test masses (GeV), or leave scan.masses out to "
                "scan each range in steps of scan.mass_step.",
            )
        ]
    if cfg.scan.masses is not None and len(cfg.scan.masses) > cap:
        errors.append(
            at(
                where("scan.masses"),
                f"{len(cfg.scan.masses)} masses, more than base.max_masses = {cap}.",
            )
        )
        return errors
    lo_f, fit_hi = cfg.fit.ls_lo_factor, cfg.fit.ls_hi_factor
    for name in cfg.scanned():
        ds = cfg.datasets[name]
        if cfg.scan.masses is None:
            if cfg.scan.mass_step < MIN_MASS_SPACING_GEV:  # (before the count: 5e-324 overflows it)
                errors.append(
                    at(
                        where("scan.mass_step"),
                        f"a step of {cfg.scan.mass_step:g} GeV is below "
                        f"{MIN_MASS_SPACING_GEV * 1e3:g} MeV; test masses so close are not "
                        "distinct.",
                    )
                )
                break
            n = mass_count(ds.range[0], ds.range[1], cfg.scan.mass_step, cfg.grid_origin())
            if n > cap:
                errors.append(
                    at(
                        where("scan.mass_step"),
                        f"a step of {cfg.scan.mass_step:g} GeV over "
                        f"[{ds.range[0]:g}, {ds.range[1]:g}] GeV gives {n} masses for dataset "
                        f"{name}, more than base.max_masses = {cap}.",
                    )
                )
                continue
            if n < 1:  # a range narrower than the step, off the combined scan's grid
                errors.append(
                    at(
                        where("scan.mass_step"),
                        f"a step of {cfg.scan.mass_step:g} GeV from {cfg.grid_origin():g} GeV "
                        "(the combined scan's grid starts at the lowest range start) puts no "
                        f"test mass in [{ds.range[0]:g}, {ds.range[1]:g}] GeV of dataset {name}.",
                    )
                )
                continue
            if n == 1 and ds.range[1] > ds.range[0]:
                step = cfg.scan.mass_step
                errors.append(
                    at(
                        where("scan.mass_step"),
                        f"a step of {step:g} GeV over [{ds.range[0]:g}, {ds.range[1]:g}] GeV "
                        f"gives one test mass for dataset {name}"
                        + (f"; {mev_hint(step)}" if step >= 0.5 and looks_like_mev(step) else "."),
                    )
                )
        hi_f = ds.ls_hi_factor if ds.ls_hi_factor is not None else fit_hi
        if lo_f >= hi_f:
            key = (
                f"datasets.{name}.ls_hi_factor"
                if ds.ls_hi_factor is not None
                else "fit.ls_hi_factor"
            )
            errors.append(
                at(
                    where(key),
                    f"the length-scale upper factor {hi_f:g} must "
                    f"exceed fit.ls_lo_factor = {lo_f:g} (dataset {name}).",
                )
            )
        ms = cfg.test_masses(name)
        if not len(ms):
            errors.append(
                at(
                    where("scan.masses"),
                    f"no test mass lies in the range "
                    f"[{ds.range[0]:g}, {ds.range[1]:g}] GeV of dataset {name}.",
                )
            )
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # huge coefficients: inf, said
            sigma = sigma_m(ms, ds.sigma_coeffs, ds.sigma_tail_m0, ds.sigma_tail_slope)
            frad = polyval(ds.frad_coeffs, ms)
        for key, values, what, bad in (
            (
                "sigma_coeffs",
                sigma,
                # wider than the mass: coefficients not in GeV (sum c_k m^k, m in GeV)
                "the resolution sigma(m) is not positive and below the mass",
                ~(np.isfinite(sigma) & (sigma > 0) & (sigma < ms)),
            ),
            (
                "frad_coeffs",
                frad,
                "the radiative fraction f_rad(m) is not in (0, 1]",
                ~(np.isfinite(frad) & (frad > 0) & (frad <= 1)),
            ),
        ):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                errors.append(
                    at(
                        where(f"datasets.{name}.{key}"),
                        f"{what} over the scan of dataset {name} ({values[i]:g} at m = "
                        f"{ms[i]:g} GeV).",
                    )
                )
    return errors


#: twice the electron mass: no A' decaying to e+e- lies below it
PAIR_THRESHOLD_GEV = 2 * 0.51099895e-3


def _gev(value: float) -> str:
    """A range end as GeV: a value above :data:`BARE_MAX_GEV` read as MeV."""
    gev = value / 1e3 if value > BARE_MAX_GEV else value
    return f"{gev:.3f} GeV" if abs(round(gev, 3) - gev) < 1e-12 else f"{gev:g} GeV"


def blinded_bins(cfg: Config, name: str, edges: np.ndarray) -> np.ndarray:
    """Bins whose centre lies in the blind window of any test mass of dataset ``name``."""
    from gprpipe.stats.resolution import sigma_m

    x = 0.5 * (edges[1:] + edges[:-1])
    masses = cfg.test_masses(name)
    if not len(masses):
        return np.zeros(len(x), bool)
    ds = cfg.datasets[name]
    sigma = sigma_m(masses, ds.sigma_coeffs, ds.sigma_tail_m0, ds.sigma_tail_slope)
    half = cfg.fit.blind_nsigma * np.asarray(sigma)
    inside: np.ndarray = np.any(np.abs(x[:, None] - masses[None, :]) <= half[None, :], axis=1)
    return inside


def observed_windows(cfg: Config, name: str, observed: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bins of the test masses' blind windows that hold events of dataset ``name``
    (``observed``, ``edges``): where :func:`holds_observed` compares (an empty bin equals
    an empty toy's)."""
    windows: np.ndarray = blinded_bins(cfg, name, edges) & (observed > 0)
    return windows


#: a histogram closer to the data in the blind windows than an independent draw of the
#: same means would be with this probability holds the observed counts
#: (:func:`holds_observed`)
NEAR_COPY_P = 1e-6


def holds_observed(counts: np.ndarray, observed: np.ndarray, windows: np.ndarray) -> str | None:
    """Whether a toy or background histogram (``counts``, of ``observed``'s binning) holds
    the observed counts: ``""`` for a copy, ``" in K of the N bins ..."`` when it equals
    them in more than half of the ``windows`` bins (:func:`observed_windows`: the data with
    an event added passed, a review; at most 2.1% of those bins of the real 2015, 2016 and
    2021 toys equal the data's), ``" (closer to them ...)"`` when it lies closer to them
    than chance allows (the data plus one event in every bin passed; a review), else
    None. One rule for validate and the tasks.

    Closeness: ``chi2 = sum (t - d)^2 / (|t| + d)`` over the N ``windows`` bins; a histogram
    drawn independently of the data, from the same means, gives chi2 ~ chi2_N (the real
    toys, drawn from a functional form, give 13.5-60 N). Below its :data:`NEAR_COPY_P`
    quantile it is taken for the data (the data + 1 in every bin: chi2 ~ 0.001 N)."""
    from scipy.special import gammainc  # (the chi2_N distribution function)

    if len(counts) != len(observed):
        return None
    if (counts == observed).all():
        return ""
    n = int(windows.sum())
    if not n:
        return None
    t, d = counts[windows].astype(float), observed[windows].astype(float)
    same = int((t == d).sum())
    if 2 * same > n:
        return f" in {same} of the {n} bins of the blind windows that hold events"
    chi2 = float(((t - d) ** 2 / (np.abs(t) + d)).sum())
    if float(gammainc(n / 2, chi2 / 2)) < NEAR_COPY_P:
        return (
            f" (closer to them than chance allows: chi2 {chi2:.3g} over the {n} bins of the "
            f"blind windows that hold events, where a histogram drawn apart from the data "
            f"gives about {n})"
        )
    return None


#: why a blinded run refuses a toy or background histogram holding the observed counts
OBSERVED_AS_TOY = (
    "a blinded run uses no observed count in a blind window: choose toy histograms, or "
    "unblind (gprpipe run --unblind)."
)


class HistogramIssue(NamedTuple):
    """One reason a histogram is unusable: the dotted key it is said at, the sentence, and
    whether it is a range (``range``, ``data_range``) the histogram does not cover, which
    the config check says at the data file's key when a shipped card set that range."""

    key: str
    why: str
    uncovered: bool = False


def histogram_errors(
    name: str,
    cfg: Config,
    counts: np.ndarray,
    edges: np.ndarray,
    source: tuple[str, str] | None = None,
) -> list[HistogramIssue]:
    """What makes a histogram (``counts``, ``edges`` as read) unusable for the scan of
    dataset ``name``; empty when usable.

    The rebin must leave at least :data:`MIN_BINS` bins, none wider than the blind window at
    any test mass, the scan and training ranges must lie inside the histogram, and the
    blind window must leave training bins at every test mass.
    ``source`` (file, histogram) names it when it is not the dataset's own (a toy). The
    load and toyscan tasks and ``validate`` use this one function, so a run refuses before
    any task starts what a task would refuse.
    """
    ds = cfg.datasets[name]
    path, hist = source or (ds.path, ds.hist)
    what = f"histogram {hist!r} in {path}"
    key = f"datasets.{name}."
    top = float(edges[-1])
    if top > 10 * BARE_MAX_GEV:  # MeV: every range and window check would mislead
        why = (
            f"{what} has an axis that runs to {top:g}: in MeV? histogram axes are read in "
            "GeV; write a copy with the edges divided by 1000 (README, Real HPS data)"
        )
        return [HistogramIssue(key + "path", why + ".")]
    if ds.rebin > len(counts):
        why = f"a rebin of {ds.rebin} exceeds the {len(counts)} bins of {what}"
        return [HistogramIssue(key + "rebin", why + ".")]
    from gprpipe.io.root import MAX_COUNT, rebin

    dropped = len(counts) % ds.rebin
    counts, edges = rebin(counts, edges, ds.rebin)
    if counts.max() > MAX_COUNT:
        i = int(np.argmax(counts))
        why = (
            f"a rebin of {ds.rebin} puts {counts[i]:g} events in bin {i + 1} "
            f"({edges[i]:g}-{edges[i + 1]:g} GeV) of {what}, above 2^53 = {MAX_COUNT:.3g} "
            "where numbers are no longer exact whole numbers"
        )
        return [HistogramIssue(key + "rebin", why + ".")]
    seen = counts.size
    if ds.data_range is not None:
        centres = 0.5 * (edges[1:] + edges[:-1])
        seen = int(np.sum((centres >= ds.data_range[0]) & (centres <= ds.data_range[1])))
    if seen > MAX_FIT_BINS:
        why = (
            f"{what} has {seen} bins after a rebin of {ds.rebin}"
            + (" in its data_range" if ds.data_range is not None else "")
            + f", more than the {MAX_FIT_BINS} the GP fit takes (its covariance holds "
            f"every pair of bins: {seen**2 * 8 / 1e9:.1f} GB); rebin by "
            f"{ds.rebin * math.ceil(seen / MAX_FIT_BINS)} or more, or narrow data_range"
        )
        return [HistogramIssue(key + "rebin", why + ".")]
    errors: list[HistogramIssue] = []
    ms = cfg.test_masses(name)
    coarse = _binning_error(ds, what, ms, cfg.fit.blind_nsigma, edges)
    if coarse:
        errors.append(HistogramIssue("rebin", coarse))
    lo, hi = float(edges[0]), float(edges[-1])
    for field, rng in (("range", ds.range), ("data_range", ds.data_range)):
        if rng is not None and (rng[0] < lo or rng[1] > hi):
            cut = (
                f", after a rebin of {ds.rebin}, which drops the last {dropped} of its bins "
                f"(they fill no group of {ds.rebin})"
                if dropped and rng[1] > hi
                else ""
            )
            apart = rng[0] >= hi or rng[1] <= lo
            how = "lies outside" if apart else "extends past"
            why = f"[{rng[0]:g}, {rng[1]:g}] GeV {how} {what} ({lo:g}-{hi:g} GeV{cut})"
            if rng[0] >= hi and hi * 1e3 > rng[0]:  # an axis 1000 times too short
                why += "; its axis ends below the range: in TeV, or divided by 1000 twice?"
            errors.append(HistogramIssue(field, why, uncovered=True))
    dr = ds.data_range
    if not errors and dr is not None and len(ms) and not ((ms >= dr[0]) & (ms <= dr[1])).any():
        errors.append(
            HistogramIssue(
                "data_range",
                f"[{dr[0]:g}, {dr[1]:g}] GeV holds none of the test masses of dataset {name} "
                f"({ms.min():g}-{ms.max():g} GeV): the GP would extrapolate into every window",
            )
        )
    out = [
        e._replace(key=key + e.key, why=e.why if e.why.endswith("?") else e.why + ".")
        for e in errors
    ]
    if not errors:
        out += _no_training_bins(cfg, name, edges)
        out += _gap_errors(name, counts, edges, what, ds.data_range)
        out += _sparse_errors(name, ds, counts, edges, what)
    return out


def _sparse_errors(
    name: str, ds: Dataset, counts: np.ndarray, edges: np.ndarray, what: str
) -> list[HistogramIssue]:
    """A scan range where most bins are empty: the GP fits ln y, and an empty bin enters
    as the placeholder ln y = 0, so its background there follows the placeholders, not the
    data (a spectrum empty but for one bin gave Z_local 81 with no flag). The shipped
    spectra and their toys have at most 14% empty bins in their scan ranges (the 2021 toys
    at a rebin of 1; 4% at the shipped rebin of 5)."""
    x = 0.5 * (edges[1:] + edges[:-1])
    inside = (x >= ds.range[0]) & (x <= ds.range[1])
    empty = counts[inside] == 0
    if inside.sum() and empty.mean() > 0.5:
        why = (
            f"{int(empty.sum())} of the {int(inside.sum())} bins of {what} in the scan range "
            f"are empty (after a rebin of {ds.rebin}): the GP fits the log of the counts and "
            f"cannot model so sparse a spectrum; rebin (datasets.{name}.rebin) or narrow "
            "the range"
        )
        return [HistogramIssue(f"datasets.{name}.range", why + ".")]
    return []


#: the fewest events of the bins on both sides of an empty stretch for it to be a gap in
#: the data, not a fluctuation (an empty bin between bins of >= 25 events has a Poisson
#: probability below 1.4e-11)
GAP_NEIGHBOUR_EVENTS = 25


def _gap_errors(
    name: str,
    counts: np.ndarray,
    edges: np.ndarray,
    what: str,
    data_range: tuple[float, float] | None,
) -> list[HistogramIssue]:
    """Empty bins between well-filled ones inside the GP's training span: a gap in the
    data (a dead region, a masked range) that the GP cannot model (an empty bin enters
    as ln y = 0), so its fit fails or bends at every mass, far from the gap too."""
    c = np.asarray(counts, dtype=float)
    x = 0.5 * (edges[1:] + edges[:-1])
    inside = (
        np.ones(len(c), bool)
        if data_range is None
        else ((x >= data_range[0]) & (x <= data_range[1]))
    )
    idx = np.flatnonzero(inside)
    filled = idx[c[idx] > 0]
    for a, b in itertools.pairwise(int(i) for i in filled):
        if b - a > 1 and min(c[a], c[b]) >= GAP_NEIGHBOUR_EVENTS:
            return [
                HistogramIssue(
                    f"datasets.{name}.{'path' if data_range is None else 'data_range'}",
                    f"{what} has {b - a - 1} empty bin{'s' * (b - a > 2)} from "
                    f"{edges[a + 1]:g} to {edges[b]:g} GeV between bins of {c[a]:g} and "
                    f"{c[b]:g} events: a gap in the data, which the GP cannot model (at "
                    "every mass); fill it, or train on one side of it (data_range).",
                )
            ]
    return []


def _no_training_bins(cfg: Config, name: str, edges: np.ndarray) -> list[HistogramIssue]:
    """A blind window that leaves too few training bins at every test mass: no fit of
    the scan could succeed. (Some masses without training bins fail alone, each with its
    reason in scan.csv and in the run's summary.)"""
    from gprpipe.stats.resolution import sigma_m
    from gprpipe.stats.window import MIN_TRAIN_BINS, WindowMasks

    ds = cfg.datasets[name]
    x = 0.5 * (edges[1:] + edges[:-1])
    ms = cfg.test_masses(name)
    sigma = sigma_m(ms, ds.sigma_coeffs, ds.sigma_tail_m0, ds.sigma_tail_slope)
    excl = cfg.fit.train_exclude_nsigma
    key, n = (
        ("fit.train_exclude_nsigma", excl) if excl else ("fit.blind_nsigma", cfg.fit.blind_nsigma)
    )
    masks = [
        WindowMasks(m, s, cfg.fit.blind_nsigma, excl, ds.data_range) for m, s in zip(ms, sigma)
    ]
    trains = [w.train(x) for w in masks]
    left = [int(t.sum()) for t in trains]
    if not len(ms):
        return []
    if max(left) >= MIN_TRAIN_BINS:
        # the goodness-of-fit region (fit.gof_nsigma beyond the window; quality.window_gof)
        reach = cfg.fit.gof_nsigma * sigma
        near = [
            bool((t & (np.abs(x - m) <= w.exclude_nsigma * s + r)).any())
            for t, w, m, s, r in zip(trains, masks, ms, sigma, reach)
        ]
        if any(near):
            return []
        return [
            HistogramIssue(
                "fit.gof_nsigma",
                f"{cfg.fit.gof_nsigma:g} sigma(m) beyond the window holds no training bin of "
                f"dataset {name} at any test mass (at m = {ms[0]:g} GeV it reaches "
                f"{reach[0]:g} GeV; its bins are {float(np.max(np.diff(edges))):g} GeV "
                "wide): every fit would fail, its background untested.",
            )
        ]
    return [
        HistogramIssue(
            key,
            f"the window of +/-{n:g} sigma(m) leaves fewer than {MIN_TRAIN_BINS} bins of "
            f"dataset {name} to train the GP on at every test mass (at m = {ms[0]:g} GeV, "
            f"+/-{n * sigma[0]:g} GeV leaves {left[0]}); no fit of the scan could succeed.",
        )
    ]


def toy_errors(cfg: Config, counts: np.ndarray, edges: np.ndarray, name: str) -> list[str]:
    """Why the toy histogram ``name`` cannot be scanned like the data of
    ``toyscan.dataset`` (rebin, binning, ranges), as sentences about ``toyscan.file``."""
    dataset = cfg.toyscan_dataset()
    source = (str(cfg.toyscan.file), name)
    return [  # a "path" sentence is about the toy file itself, not the dataset's file
        why if key.endswith(".path") else f"toy {name!r}, scanned with {key}: {why}"
        for key, why, _ in histogram_errors(dataset, cfg, counts, edges, source)
    ]


def binning_mismatch(
    path: str,
    hist: str,
    edges: np.ndarray,
    data_hist: str,
    data_edges: np.ndarray,
    key: str = "inject.histograms",
    data_path: str | None = None,
) -> str | None:
    """Why histogram ``hist`` of ``path`` (an injection background, or a toy) cannot stand
    in for the data histogram ``data_hist``: a different binning; None when the edges
    agree."""
    if len(edges) == len(data_edges) and np.allclose(edges, data_edges, rtol=0, atol=1e-12):
        return None
    data = f"{data_hist!r}" + (f" in {data_path}" if data_path and data_path != path else "")
    return f"{path}: histogram {hist!r} ({key}) does not have the binning of {data}."


def _binning_error(
    ds: Dataset, what: str, masses: np.ndarray, blind_nsigma: float, edges: np.ndarray
) -> str | None:
    """Why ``what`` rebinned by ``ds.rebin`` (``edges``) is too coarse for the test
    ``masses``, or None: it must keep :data:`MIN_BINS` bins and a bin no wider than the
    blind window (resolution of ``ds``) at every test mass."""
    from gprpipe.stats.resolution import sigma_m

    nbins = len(edges) - 1
    if nbins < MIN_BINS:
        return f"a rebin of {ds.rebin} leaves {nbins} bins of {what}, fewer than {MIN_BINS}"
    if len(masses):
        width = float(np.max(np.diff(edges)))
        window = (
            2
            * blind_nsigma
            * sigma_m(masses, ds.sigma_coeffs, ds.sigma_tail_m0, ds.sigma_tail_slope)
        )
        i = int(np.argmin(window))
        if width > window[i]:
            return (
                f"a rebin of {ds.rebin} makes bins of {what} {width:g} GeV wide, wider than the "
                f"{window[i]:g} GeV blind window at m = {masses[i]:g} GeV"
            )
    return None


# ---------------------------------------------------------------- what run would refuse
# (masses in GeV and in a scanned range, something to scan; the data of each dataset)


def _ranges(cfg: Config) -> dict[str, tuple[float, float]]:
    return {n: cfg.datasets[n].range for n in cfg.scanned()}


def _fmt_ranges(ranges: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{n}: {lo:g}-{hi:g} GeV" for n, (lo, hi) in ranges.items())


def unit_errors(cfg: Config, where: Where) -> list[Issue]:
    """Masses above 1 GeV in the mass lists and the scanned datasets' ranges: MeV typed
    for GeV (with the GeV values)."""
    errors = []
    for name in cfg.scanned():
        ds = cfg.datasets[name]
        for key, span in (("range", ds.range), ("data_range", ds.data_range)):
            if span is not None and span[1] > BARE_MAX_GEV:
                lo, hi = span
                errors.append(
                    at(
                        where(f"datasets.{name}.{key}"),
                        f"[{lo:g}, {hi:g}] is not in GeV; "
                        + (
                            # (an end already in GeV is kept: 0.02 became "2e-05 GeV")
                            f"did you mean {_gev(lo)} to {hi / 1e3:.3f} GeV?"
                            if looks_like_mev(hi)
                            else mev_hint(hi)
                        ),
                    )
                )
            elif span is not None and span[1] < PAIR_THRESHOLD_GEV:
                # (it fell through to the mass step and the resolution of the card, which
                # were blamed: a newcomer review)
                lo, hi = span
                errors.append(
                    at(
                        where(f"datasets.{name}.{key}"),
                        f"[{lo:g}, {hi:g}] GeV ends below the e+e- threshold "
                        f"({PAIR_THRESHOLD_GEV * 1e3:.3f} MeV): masses are in GeV (0.020 is "
                        f"20 MeV); did you mean [{lo * 1e3:g}, {hi * 1e3:g}]?",
                    )
                )
    for key, masses in (
        ("scan.masses", cfg.scan.masses or []),
        ("inject.masses", cfg.inject.masses),
        *_plot_masses(cfg),
        ("plot.displays.masses", cfg.plot.displays.masses or []),
    ):
        errors += [
            at(where(key), f"{m:g} is not a mass in GeV; {mev_hint(m)}")
            for m in masses
            if m > BARE_MAX_GEV
        ]
    return errors


def _plot_masses(cfg: Config) -> list[tuple[str, list[float]]]:
    """The plot step's lists of test masses (its extraction displays are at injected
    masses, ``plot.displays.masses``)."""
    d = cfg.plot.displays
    return [
        ("plot.masses", cfg.plot.masses),
        ("plot.allocation_masses", cfg.plot.allocation_masses),
        ("plot.displays.observed", d.observed or []),
    ]


def _not_tested(m: float, tested: np.ndarray) -> str:
    """Why ``m`` names no test mass although it lies among them ('' when it is one, or
    lies outside them: a scan cut to fewer masses leaves its figure out)."""
    below, above = tested[tested < m - MASS_TOL_GEV], tested[tested > m + MASS_TOL_GEV]
    if not len(below) or not len(above) or same_mass(tested, m).any():
        return ""
    return (
        f"{m:g} GeV lies between the test masses {below[-1]:g} and {above[0]:g} GeV; "
        "the figures are drawn at test masses only."
    )


def check_plan(points: Sequence[Point], where: Where) -> list[Issue]:
    """Errors of every point's config that would make ``run`` fail or do nothing."""
    errors: list[Issue] = []
    for p in points:
        cfg = p.config
        ranges = _ranges(cfg)
        if not ranges:
            if not cfg.datasets:
                why = (
                    "no dataset to scan; add a [datasets.<key>] table with path and card "
                    '(e.g. [datasets.2015] card = "hps2015")'
                )
                key = "datasets"
            else:
                why = (
                    f"no dataset to scan: {', '.join(cfg.datasets)} "
                    f"{'is' if len(cfg.datasets) == 1 else 'are'} disabled or not in "
                    "scan.datasets"
                )
                # blamed on what left them out: a disabled dataset that scan.datasets
                # would scan, else scan.datasets
                listed = cfg.scan.datasets if cfg.scan.datasets is not None else cfg.datasets
                off = [n for n in listed if n in cfg.datasets and not cfg.datasets[n].enabled]
                key = f"datasets.{off[0]}.enabled" if off else "scan.datasets"
            errors.append(at(where(key), f"{why}."))
            continue
        lists: list[tuple[str, list[float]]] = [("scan.masses", cfg.scan.masses or [])]
        spans: dict[str, tuple[float, float]] = {}  # test-mass span per dataset (inject)
        if "inject" in cfg.steps.run:
            tested = {n: cfg.test_masses(n) for n in ranges}
            spans = {n: (float(t.min()), float(t.max())) for n, t in tested.items() if len(t)}
            lists.append(("inject.masses", cfg.inject.masses))
        if "plot" in cfg.steps.run:
            lists += _plot_masses(cfg)
            tested_all = np.unique(np.concatenate([cfg.test_masses(n) for n in ranges]))
        injected = cfg.inject.masses
        for m in cfg.plot.displays.masses or [] if "plot" in cfg.steps.run else []:
            if m <= BARE_MAX_GEV and not any(same_mass(m, x) for x in injected):
                errors.append(
                    at(
                        where("plot.displays.masses"),
                        f"{m:g} GeV is not an injected mass (inject.masses: "
                        f"[{', '.join(f'{x:g}' for x in injected)}]); an extraction "
                        "display shows an injection.",
                    )
                )
        for key, masses in lists:
            for m in masses:
                if m > BARE_MAX_GEV:
                    errors.append(at(where(key), f"{m:g} is not a mass in GeV; {mev_hint(m)}"))
                elif not any(mass_within(m, lo, hi) for lo, hi in ranges.values()):
                    errors.append(
                        at(
                            where(key),
                            f"{m:g} GeV lies outside the scan range of "
                            f"every scanned dataset ({_fmt_ranges(ranges)}).",
                        )
                    )
                elif key.startswith("plot.") and _not_tested(m, tested_all):
                    errors.append(at(where(key), _not_tested(m, tested_all)))
                elif key == "inject.masses" and not any(
                    mass_within(m, lo, hi) for lo, hi in spans.values()
                ):
                    errors.append(
                        at(
                            where(key),
                            f"{m:g} GeV lies outside the test masses of every scanned dataset "
                            f"({_fmt_ranges(spans)}); an injection uses the fits around it.",
                        )
                    )
                elif (  # the planner's rule: a combined injection part exists there
                    key == "inject.masses"
                    and cfg.inject.background == "histograms"
                    and len(shared := cfg.combined_masses())
                    and mass_within(m, float(shared.min()), float(shared.max()))
                ):
                    errors.append(
                        at(
                            where("inject.background"),
                            f"'histograms' is not available for the combination ({m:g} GeV "
                            "lies in the scans of several datasets): set scan.combined = "
                            "false or inject.background = 'gp'.",
                        )
                    )
    return unique(errors)


def missing_files(points: Sequence[Point], where: Where) -> list[Issue]:
    """A data file (or toy file) that a step of the run reads and that does not exist:
    ``run`` and ``validate`` refuse it (the data file when the load step runs, or the
    inject step with histogram backgrounds, which it reads from the data file)."""
    return missing_config_files([p.config for p in points], where)


def missing_config_files(configs: Sequence[Config], where: Where) -> list[Issue]:
    """:func:`missing_files` of rendered point configs."""
    from pathlib import Path

    errors = []
    for cfg in configs:
        steps = cfg.steps.run
        reads_data = "load" in steps or (
            "inject" in steps and cfg.inject.background == "histograms"
        )
        for path, key in cfg.data_files():
            toys = key == "toyscan.file"
            if (toys or reads_data) and not Path(path).exists():
                errors.append(_not_found(where, key, path, "toy" if toys else "data"))
    return unique(errors)


def _not_found(where: Where, key: str, path: str, what: str) -> Issue:
    """``PATH: <what> file not found``, and how to name another file when a config file
    (not a --set) gave this one: the shipped real-data configs name a placeholder."""
    loc = where(key)
    given = loc.file if isinstance(loc, Loc) else str(loc)
    hint = (
        ""
        if given is None or given.startswith("--set")
        else f" (point it at your file: --set {key}=FILE, or edit the config)"
    )
    return at(loc, f"{path}: {what} file not found{hint}.")
