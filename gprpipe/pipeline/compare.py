"""Compare runs or grid points: their eps^2 limits at common masses, as tables of ratios.

``compare_curves(tables)`` is pure: it takes ``{label: scan.csv rows}`` (the first label
is the reference) and returns per dataset the curves and, per other label, the ratios of
its observed and expected limits to the reference at the masses both have. ``points_of``
turns command-line arguments (run folders or point folders) into labelled point folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gprpipe.errors import GprpipeError
from gprpipe.pipeline.summary import read_table


@dataclass
class Curve:
    label: str
    mass: np.ndarray  # GeV
    observed: np.ndarray  # eps2_up
    expected: np.ndarray  # eps2_exp_med


@dataclass
class Ratio:
    """One curve against the reference at their common masses."""

    label: str
    mass: np.ndarray
    observed: np.ndarray
    expected: np.ndarray

    def stats(self, which: str) -> tuple[float, float, float]:
        """(median, min, max) of the observed or expected ratio."""
        r = getattr(self, which)
        return float(np.median(r)), float(r.min()), float(r.max())


@dataclass
class DatasetComparison:
    dataset: str
    curves: list[Curve] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)


def compare_curves(tables: Mapping[str, Sequence[Mapping[str, str]]]) -> list[DatasetComparison]:
    """Curves and ratios per dataset present in the reference (the first table)."""
    labels = list(tables)
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for r in tables[labels[0]]))
    for ds in datasets:
        comp = DatasetComparison(ds)
        for lab in labels:
            rows = [r for r in tables[lab] if r["dataset"] == ds and r.get("status") == "ok"]
            if not rows:
                continue
            m = np.array([float(r["mass_GeV"]) for r in rows])
            order = np.argsort(m)
            comp.curves.append(Curve(
                lab, m[order], np.array([float(r["eps2_up"]) for r in rows])[order],
                np.array([float(r["eps2_exp_med"]) for r in rows])[order]))
        if len(comp.curves) < 2 or comp.curves[0].label != labels[0]:
            out.append(comp)
            continue
        ref = comp.curves[0]
        for c in comp.curves[1:]:
            common, ia, ib = np.intersect1d(np.round(ref.mass, 6), np.round(c.mass, 6),
                                            return_indices=True)
            if len(common):
                comp.ratios.append(Ratio(c.label, ref.mass[ia], c.observed[ib] / ref.observed[ia],
                                         c.expected[ib] / ref.expected[ia]))
        out.append(comp)
    return out


def points_of(args: Sequence[Path]) -> dict[str, Path]:
    """Label -> point folder: a run folder gives all its points (``run/point``), a point
    folder itself. Labels are as short as they can be while staying distinct."""
    found: list[tuple[Path, str]] = []
    for a in args:
        a = Path(a)
        if (a / "scan.csv").is_file() or (a / "config.toml").is_file():
            found.append((a, a.name))
            continue
        from gprpipe.pipeline.store import load_run_info

        info = load_run_info(a)
        for g in info.data.get("grid", []):
            here = a / g["name"]  # the run folder may have moved since it ran
            found.append((here if here.is_dir() else Path(g["dir"]), g["name"]))
    if len(found) < 2:
        raise GprpipeError("compare needs two or more points: give two run folders, point "
                           "folders, or a run folder with a grid.")
    names = [n for _, n in found]
    if len(set(names)) < len(names):  # the same point name in several runs: add the run
        names = [f"{p.parent.name}/{n}" for (p, _), n in zip(found, names)]
    if len(set(names)) < len(names):
        names = [str(p) for p, _ in found]
    out = {}
    for (p, _), n in zip(found, names):
        if not (p / "scan.csv").is_file():
            raise GprpipeError(f"{p}: no scan.csv (has the limit step run?).")
        out[n] = p
    return out


def read_tables(points: Mapping[str, Path]) -> dict[str, list[dict[str, str]]]:
    return {lab: read_table(p / "scan.csv") for lab, p in points.items()}
