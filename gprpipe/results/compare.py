"""Limits of runs or grid points side by side: ratios at common masses (pure tables).

``compare_curves(tables)`` takes ``{label: scan.csv rows}`` (the first label is the
reference) and returns per dataset the curves and, per other label, the ratios of its
observed and expected eps^2 limits to the reference at the masses where both have a
limit (observed: NaN where either run is blinded, or where a row's observed toy limit alone
was unresolved: its expected limit stands). A curve keeps every mass its run scanned,
NaN where a row has no limit (a gap in its figure). Used by
``gprpipe compare`` and by the grid's ``index.html``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gprpipe.stats.quality import limits_shown
from gprpipe.units import matching_masses


@dataclass
class Curve:
    """One run's limits of a dataset at every mass it scanned, NaN where a row has none
    (``compared`` false: failed or flagged), so that a figure leaves a gap there (it drew
    straight across a mass that failed mid-scan: a review)."""

    label: str
    mass: np.ndarray  # GeV
    observed: np.ndarray  # eps2_up
    expected: np.ndarray  # eps2_exp_med
    compared: np.ndarray  # bool


@dataclass
class Ratio:
    """One curve against the reference at their common masses."""

    label: str
    mass: np.ndarray
    observed: np.ndarray
    expected: np.ndarray

    def stats(self, which: str) -> tuple[float, float, float]:
        """(median, min, max) of the observed or expected ratio over the masses where it is
        defined; NaN where it is nowhere (a blinded run has no observed limit)."""
        r = self.defined(which)
        if not len(r):
            return np.nan, np.nan, np.nan
        return float(np.median(r)), float(r.min()), float(r.max())

    def defined(self, which: str) -> np.ndarray:
        """The observed or expected ratios that are numbers."""
        r: np.ndarray = getattr(self, which)
        return r[np.isfinite(r)]

    def masses_text(self) -> str:
        """How many masses are compared, and of them how many with an observed ratio when
        some lack one in an unblinded comparison (an unresolved observed toy limit)."""
        n, n_obs = len(self.mass), len(self.defined("observed"))
        return f"{n} ({n_obs} observed)" if 0 < n_obs < n else str(n)


@dataclass
class DatasetComparison:
    dataset: str
    curves: list[Curve] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)


def compare_curves(tables: Mapping[str, Sequence[Mapping[str, str]]]) -> list[DatasetComparison]:
    """Curves and ratios per dataset of any table (the reference's first); a dataset the
    reference (the first table) lacks has none (it was not named at all: a review)."""
    labels = list(tables)
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for lab in labels for r in tables[lab]))
    for ds in datasets:
        comp = DatasetComparison(ds)
        for lab in labels:
            rows = [r for r in tables[lab] if r["dataset"] == ds]
            used = np.array([_compared(r) for r in rows], dtype=bool)
            if not used.any():
                continue
            m = np.array([float(r["mass_GeV"]) for r in rows])
            order = np.argsort(m)
            obs, exp = (
                np.where(used, [_float(r.get(key)) for r in rows], np.nan)[order]
                for key in ("eps2_up", "eps2_exp_med")
            )
            comp.curves.append(Curve(lab, m[order], obs, exp, used[order]))
        if len(comp.curves) < 2 or comp.curves[0].label != labels[0]:
            out.append(comp)
            continue
        ref = comp.curves[0]
        for c in comp.curves[1:]:
            ia, ib = matching_masses(ref.mass, c.mass)
            both = ref.compared[ia] & c.compared[ib]
            ia, ib = ia[both], ib[both]
            if len(ia):
                comp.ratios.append(
                    Ratio(
                        c.label,
                        ref.mass[ia],
                        c.observed[ib] / ref.observed[ia],
                        c.expected[ib] / ref.expected[ia],
                    )
                )
        out.append(comp)
    return out


def comparison_csv(comp: DatasetComparison) -> str:
    """``compare_<dataset>.csv`` of one dataset's ratios (the table
    :data:`~gprpipe.results.schema.COMPARE`)."""
    from gprpipe.results.schema import COMPARE, csv_text

    def column(get) -> np.ndarray:
        return np.concatenate([get(r) for r in comp.ratios]) if comp.ratios else np.array([])

    arrays = {
        "point": column(lambda r: np.full(len(r.mass), r.label, dtype=object)),
        "mass_GeV": column(lambda r: r.mass),
        "ratio_observed": column(lambda r: r.observed),
        "ratio_expected": column(lambda r: r.expected),
    }
    return csv_text({comp.dataset: arrays}, COMPARE)


def observed_ratios(table: Path) -> bool | None:
    """Whether a comparison table (``compare_<dataset>.csv``) holds observed limit ratios
    (a comparison of unblinded results); None for an unreadable one (no one can tell)."""
    from gprpipe.errors import GprpipeError
    from gprpipe.results.schema import read_csv

    try:
        rows = read_csv(table)
    except (OSError, ValueError, GprpipeError):
        return None
    return any(np.isfinite(_float(r.get("ratio_observed"))) for r in rows)


def _compared(row: Mapping[str, str]) -> bool:
    """A row with limits (:func:`~gprpipe.stats.quality.limits_shown`)."""
    return limits_shown(row.get("status", ""))


def _float(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return float("nan")
