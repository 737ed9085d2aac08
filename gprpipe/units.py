"""Masses: GeV in every file and config; explicit units on the command line.

One parser for every command-line mass (``rerun --masses``, ``export-pyhf --mass``,
``demo-data --signal-mass``): ``60MeV``, ``60 MeV``, ``0.06GeV`` and a bare ``0.06`` (GeV)
are accepted; a bare value above 1 is refused with the GeV value it probably meant,
because HPS masses are below 1 GeV and a bare 60 is almost always MeV.
"""

from __future__ import annotations

import math
import re
from typing import overload

import numpy as np
from numpy.typing import NDArray

from gprpipe.errors import GprpipeError

_MASS = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(MeV|GeV|keV)?\s*$", re.IGNORECASE
)
_SCALE = {"kev": 1e-6, "mev": 1e-3, "gev": 1.0}
#: bare numbers above this (in GeV) are taken as a unit mistake
BARE_MAX_GEV = 1.0
#: two masses closer than this (GeV) are the same mass: files round masses to 1e-9 GeV, a
#: config may spell a test mass to a few digits, and distinct test masses are at least
#: :data:`MIN_MASS_SPACING_GEV` apart (validation refuses closer ones)
MASS_TOL_GEV = 1e-6
#: the smallest distance (GeV) between two test masses, or two injected masses: 10 keV,
#: far below any mass resolution
MIN_MASS_SPACING_GEV = 1e-5


@overload
def same_mass(a: float, b: float) -> bool: ...
@overload
def same_mass(a: NDArray[np.floating], b: float) -> NDArray[np.bool_]: ...
def same_mass(a: float | NDArray[np.floating], b: float) -> bool | NDArray[np.bool_]:
    """Whether ``a`` (GeV; or each mass of an array) and ``b`` name the same mass
    (:data:`MASS_TOL_GEV`)."""
    if isinstance(a, np.ndarray):
        return np.abs(a - b) < MASS_TOL_GEV
    return bool(abs(a - b) < MASS_TOL_GEV)


def matching_masses(
    a: NDArray[np.floating], b: NDArray[np.floating]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices ``(ia, ib)`` of the masses of ``a`` and ``b`` (GeV) that name the same mass
    (:func:`same_mass`), in the order of ``a``. Test masses lie at least
    :data:`MIN_MASS_SPACING_GEV` apart: each has at most one partner."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        none = np.zeros(0, dtype=np.intp)
        return none, none
    d = np.abs(a[:, None] - b[None, :])
    j = np.argmin(d, axis=1)
    ia = np.flatnonzero(d[np.arange(len(a)), j] < MASS_TOL_GEV)
    return ia, j[ia]


def mass_within(m: float, lo: float, hi: float) -> bool:
    """Whether ``m`` lies in ``[lo, hi]`` (GeV), ends included to :data:`MASS_TOL_GEV`."""
    return lo - MASS_TOL_GEV <= m <= hi + MASS_TOL_GEV


def looks_like_mev(value: float) -> bool:
    """Whether ``value`` (a bare number above :data:`BARE_MAX_GEV`) reads as a mass in MeV
    typed for GeV: as MeV it is a mass of this search (1e300 is neither)."""
    return value / 1e3 <= BARE_MAX_GEV


def mev_hint(value: float) -> str:
    """``did you mean 0.060 GeV?`` for a value that looks like MeV typed as GeV; for a
    value that is no mass in either unit, how masses are written."""
    if not looks_like_mev(value):
        return "masses are in GeV, below 1 (0.060 is 60 MeV)."
    gev = value / 1e3
    shown = f"{gev:.3f}" if abs(round(gev, 3) - gev) < 1e-12 else f"{gev:g}"
    return f"did you mean {shown} GeV?"


def with_unit(text: str) -> float | None:
    """The mass in GeV of ``text`` when it says its unit (``80MeV``), else None."""
    m = _MASS.match(text)
    return float(m.group(1)) * _SCALE[m.group(2).lower()] if m and m.group(2) else None


def parse_mass(text: str, option: str) -> float:
    """A mass in GeV from ``60MeV``, ``0.06GeV`` or a bare ``0.06`` (GeV)."""
    m = _MASS.match(str(text))
    if not m:
        raise GprpipeError(f"{option} {text!r}: not a mass; write e.g. 60MeV or 0.06GeV.")
    value = float(m.group(1))
    unit = m.group(2)
    if not math.isfinite(value):
        raise GprpipeError(f"{option} {text}: not a finite mass.")
    if unit is None and value > BARE_MAX_GEV:
        hint = (
            f"{mev_hint(value)} (or write {text}MeV)"
            if looks_like_mev(value)
            else "write e.g. 0.060 or 60MeV."
        )
        raise GprpipeError(f"{option} {text}: masses are in GeV unless a unit is given; {hint}")
    if unit is not None and unit not in ("MeV", "GeV", "keV", "mev", "gev", "kev", "MEV", "GEV"):
        raise GprpipeError(f"{option} {text}: write the unit as MeV, GeV or keV.")
    gev = value * _SCALE[(unit or "GeV").lower()]
    if gev <= 0:
        raise GprpipeError(f"{option} {text}: a mass must be positive.")
    return gev


def parse_masses(text: str, option: str) -> list[float]:
    """Comma-separated masses (each as :func:`parse_mass`); a trailing unit applies to all."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise GprpipeError(f"{option}: no mass given; write e.g. 37MeV,48MeV or 0.037,0.048.")
    tail = _MASS.match(items[-1])
    unit = tail.group(2) if tail else None
    if unit and unit.lower() == "gev":  # "60,0.08GeV": bare masses are GeV anyway, and
        unit = None  # parse_mass refuses a bare 60 with its hint (it took 60 GeV)
    for s in items[:-1] if unit else []:
        m = _MASS.match(s)
        if m and not m.group(2) and float(m.group(1)) <= BARE_MAX_GEV:
            raise GprpipeError(  # "0.03,60MeV": 0.03 MeV, or the GeV of a bare number?
                f"{option} {text}: {s} would take the unit of the last mass ({unit}); "
                f"write {s}GeV, or every mass in {unit}."
            )
    if unit:  # "37,48MeV": the unit of the last applies to the bare ones
        items = [s if (m := _MASS.match(s)) and m.group(2) else s + unit for s in items]
    return [parse_mass(s, option) for s in items]


def fmt_mass(gev: float) -> str:
    """A mass for messages: ``0.06 GeV (60 MeV)``."""
    return f"{gev:g} GeV ({gev * 1e3:g} MeV)"
