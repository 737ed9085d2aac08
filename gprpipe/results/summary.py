"""The summary of a scan and of an injection study, from their tables: what a physicist
looks for first. One summariser for the end-of-run text, ``gprpipe summary``, the TUI's
Results tab, ``report.html`` and the run's ``index.html``, so they give the same numbers.

``summarize_scan(rows)`` takes the rows of one point's ``scan.csv`` (dicts of column -> text,
as ``csv.DictReader`` gives them; blinded tables have no observed columns) and returns one
:class:`DatasetSummary` per dataset (and ``combined``): the most significant mass with its
local and global Z (and the toy-based global Z when the table has ``Z_global_toys``), the
weakest and strongest observed eps^2 limits (expected medians when blinded), the rows whose
status is not ok (flagged: numbers that failed a quality check; failed: no numbers), the
non-converged GP fits and the smallest goodness-of-fit p-value. Flagged rows count for
neither the largest significance nor the limits' extremes, as everywhere.
``summarize_injection(rows)`` gives the closure of an ``inject.csv``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gprpipe.results.schema import COMBINED, read_csv_table
from gprpipe.stats.quality import (
    FLAG_DATASET_LEFT_OUT,
    fit_usable,
    flags_of,
    has_result,
    is_flagged,
    limits_shown,
    observed_unresolved,
    toys_biased,
)

#: The deepest deficit (A_hat / sigma_A) at which a toy limit's Monte Carlo error was
#: checked against the spread between independent seeds (benchmarks/study_toy_limit_error.py,
#: 2015 data, 1,000-8,000 toys): std / error 0.83-1.17 (each +-0.1) from -2.06 to +2.66,
#: 1.61 +- 0.18 at -2.62; with signal added to the data (``--excess``), from +2.87 to +4.99
#: 0.96-1.09 (2,000 toys) and 0.87-1.19 (1,000 toys; 15 cases each, each +-0.1). Beyond +5
#: not checked (and not flagged: an excess of 5 sigma is not reported by its limit).
TOY_ERROR_CHECKED_TO = -2.1
#: what the summary and HEPData say of the errors beyond it
TOY_ERROR_CAVEAT = (
    "not checked there against the spread between seeds; may be too small, as at -2.6 (1.6x)"
)
#: The fewest toys per limit (``limit.n_toys``) with which the error was checked (the same
#: study, 60 seeds at each of 4 masses): from 1,000 toys on, std / error 0.83-1.06; with
#: 500, 200 and 100 toys it was too small at 60 MeV (1.26, 1.38, 1.51, each +-0.13), where
#: the limits were also high by 2, 10 and 17% (+-1.4, 2.4, 3.5%: the mean over seeds
#: against 2,000 toys').
TOY_ERROR_CHECKED_TOYS = 1000
TOY_ERROR_FEW_TOYS_CAVEAT = (
    "with 500, 200 and 100 toys the errors were found up to 1.3x, 1.4x and 1.5x too small, "
    "and the limits 2%, 10% and 17% high"
)

#: The chance that an observed limit lies below its expected band's lower -2 sigma edge
#: (background only), per band type (``limit.bands``): that edge is the quantile Phi(-2)
#: = 2.275% for asymptotic bands (N = -2, :data:`gprpipe.stats.cls.BAND_N`) and the 2.5%
#: quantile of the toys' limits for toy bands (:data:`gprpipe.stats.cls.TOY_QUANTILES`).
BELOW_BAND_CHANCE = {"asymptotic": 0.5 * math.erfc(math.sqrt(2.0)), "toys": 0.025}


@dataclass
class Extreme:
    """A value at a mass (GeV)."""

    mass: float
    value: float


def toys_bound(p: ArrayLike, err: ArrayLike) -> NDArray[np.bool_]:
    """Where no whole-scan toy reached the observed Z: ``p = 1 / (N + 1)`` is an upper
    bound on the p-value, global or the toys' local one at a mass (and its Z a lower
    bound). Exactly there the binomial error (:func:`gprpipe.stats.lee.p_global_toys_err`)
    equals ``p`` (with k >= 1 toys above it is below 0.71 p); False where either is NaN."""
    q, e = np.asarray(p, dtype=float), np.asarray(err, dtype=float)
    with np.errstate(invalid="ignore"):
        out: NDArray[np.bool_] = (q > 0) & (e >= 0.99 * q)
    return out


@dataclass
class DatasetSummary:
    """One dataset (or ``combined``) of one point."""

    dataset: str
    n_masses: int
    most_significant: Extreme | None = None  # value: Z_local
    Z_global: float | None = None  # Sidak, at the most significant mass
    p0_global: float | None = None
    Z_global_toys: float | None = None
    p0_global_toys: float | None = None
    p0_global_toys_err: float | None = None
    p0_local: float | None = None  # asymptotic, at the most significant mass
    p0_local_toys: float | None = None  # the whole-scan toys' at that mass
    p0_local_toys_err: float | None = None
    # the toys' Z_local = 0 fraction at that mass and its error for unbiased toys
    frac_Z0_toys: float | None = None
    frac_Z0_toys_err: float | None = None
    # runs of ok masses whose toys' Z_local = 0 fraction is more than 3 errors from 0.5
    toys_biased: list[list[float]] = field(default_factory=list)
    weakest: Extreme | None = None  # value: eps2_up (largest)
    strongest: Extreme | None = None  # value: eps2_up (smallest)
    not_ok: list[tuple[float, str]] = field(default_factory=list)  # (mass, status), in order
    not_converged: list[float] = field(default_factory=list)  # masses of non-converged fits
    worst_gof: Extreme | None = None  # value: gof_p (smallest)
    below_band: list[list[float]] = field(default_factory=list)  # runs of adjacent masses
    # the band type of the limits (limit.bands; from exp_band_rel_err when not known)
    bands: str = "asymptotic"
    # toy limits: Monte Carlo error / limit of the ok rows, median and largest
    toy_error_median: float | None = None
    toy_error_largest: Extreme | None = None
    toy_error_missing: int = 0  # ok rows with a limit but no error estimate (NaN)
    # runs of masses whose toy error lies beyond the checked range (TOY_ERROR_CHECKED_TO)
    toy_error_unchecked: list[list[float]] = field(default_factory=list)
    # the toys per limit when fewer than the error was checked with (TOY_ERROR_CHECKED_TOYS)
    toy_error_few_toys: int | None = None
    # toy expected bands: exp_band_rel_err of the rows that show them (ok, or only their
    # observed toy limit unresolved), median and largest
    band_error_median: float | None = None
    band_error_largest: Extreme | None = None
    blinded: bool = False  # no observed quantity: the limits are the expected medians
    # flagged rows whose observed toy limit alone was unresolved (their flag stands in
    # status; the observed limit is NaN), runs of adjacent masses
    flagged_unresolved: list[list[float]] = field(default_factory=list)
    # combined: dataset -> the masses where its failed fit left it out of the combination
    left_out: dict[str, list[float]] = field(default_factory=dict)
    # combined rows with only a dataset left out and no observed limit (unresolved toys)
    left_out_unresolved: list[list[float]] = field(default_factory=list)
    masses: list[float] = field(default_factory=list)  # every row's, in table order

    def where(self, status: str) -> str:
        """The masses of the rows with ``status``, runs of adjacent masses as their ends:
        ``30 MeV, 119-130 MeV``."""
        hit = {m for m, st in self.not_ok if st == status}
        return masses_text(mass_runs([m in hit for m in self.masses], self.masses), counted=False)

    @property
    def n_ok(self) -> int:
        """Rows with status ok."""
        return self.n_masses - len(self.not_ok)

    @property
    def toys_bound(self) -> bool:
        """No whole-scan toy reached the observed Z: ``p0_global_toys`` is an upper bound
        and ``Z_global_toys`` a lower one (:func:`toys_bound`)."""
        p, err = self.p0_global_toys, self.p0_global_toys_err
        return p is not None and err is not None and bool(toys_bound(p, err))

    @property
    def Z_global_toys_text(self) -> str:
        """``Z_global_toys`` as shown: ``> 2.88`` where it is a bound, '' without toys."""
        if self.Z_global_toys is None:
            return ""
        return f"{'> ' if self.toys_bound else ''}{self.Z_global_toys:.2f}"

    @property
    def local_toys_bound(self) -> bool:
        """No toy reached the observed Z at the most significant mass: ``p0_local_toys``
        is an upper bound (:func:`toys_bound`)."""
        p, err = self.p0_local_toys, self.p0_local_toys_err
        return p is not None and err is not None and bool(toys_bound(p, err))

    @property
    def p0_local_toys_text(self) -> str:
        """The toys' local p0 at the most significant mass as shown: ``0.01 +- 0.0022``,
        ``< 0.0005`` where no toy reached it, '' without toys."""
        p, err = self.p0_local_toys, self.p0_local_toys_err
        if p is None or err is None:
            return ""
        return f"< {p:.3g}" if self.local_toys_bound else f"{p:.3g} +- {err:.2g}"

    @property
    def toys_biased_here(self) -> bool:
        """The toys' ``Z_local = 0`` fraction at the most significant mass lies more than
        3 errors from 0.5 (:func:`gprpipe.stats.quality.toys_biased`)."""
        f, e = self.frac_Z0_toys, self.frac_Z0_toys_err
        return f is not None and e is not None and bool(toys_biased(f, e))

    @property
    def toys_bias_note(self) -> str:
        """``toys biased here: P(Z_local = 0) 0.352`` where :attr:`toys_biased_here`, for
        the report and the TUI beside the toys' local p0; '' elsewhere."""
        if not self.toys_biased_here or self.frac_Z0_toys is None:
            return ""
        return f"toys biased here: P(Z_local = 0) {self.frac_Z0_toys:.3f}"

    @property
    def toys_bias_text(self) -> str:
        """Why the toys' p-values at the most significant mass are no clean check of the
        asymptotic ones ('' when their ``Z_local = 0`` fraction is within 3 errors of 0.5):
        the fraction, and the miss of the window's fit it implies for unit-width Gaussian
        pulls (``P(Z = 0) = Phi(-shift)``; at a fraction of 0 or 1 a bound, from half a toy)."""
        f, e = self.frac_Z0_toys, self.frac_Z0_toys_err
        if not self.toys_biased_here or f is None or e is None:
            return ""
        half_toy = 2.0 * e * e  # 0.5 / N', from e = 0.5 / sqrt(N')
        fc = min(max(f, half_toy), 1.0 - half_toy)
        shift = -statistics.NormalDist().inv_cdf(fc)
        bound = "more than " if fc != f else "about "
        return (
            f"the toys' P(Z_local = 0) there is {f:.3f} (0.5 +- {e:.2g} for unbiased toys): "
            f"the window's fit puts the toys' background {bound}{abs(shift):.2f} sigma_A "
            f"{'below' if shift > 0 else 'above'} their mean there, so their p0 is no clean "
            "check of the asymptotic one (README, look-elsewhere toys)"
        )

    @property
    def flags(self) -> dict[str, int]:
        """Status -> count of the rows with numbers and a quality flag."""
        return dict(Counter(s for _, s in self.not_ok if has_result(s)))

    @property
    def failures(self) -> dict[str, int]:
        """Status -> count of the rows without numbers (the fit or the limit failed)."""
        return dict(Counter(s for _, s in self.not_ok if not has_result(s)))

    @property
    def n_flagged(self) -> int:
        return sum(self.flags.values())

    @property
    def n_left_out_unresolved(self) -> int:
        """Of :attr:`n_left_out`, the rows without an observed limit (unresolved toys)."""
        return sum(map(len, self.left_out_unresolved))

    @property
    def n_left_out(self) -> int:
        """Flagged ``combined`` rows whose only flag is a dataset left out (its fit failed
        there): the other datasets' numbers, no failed quality check."""
        return sum(v for k, v in self.flags.items() if flags_of(k) == (FLAG_DATASET_LEFT_OUT,))

    @property
    def n_failed(self) -> int:
        return sum(self.failures.values())

    @property
    def n_unresolved(self) -> int:
        """Failed rows whose observed toy limit alone was unresolved (numbers kept)."""
        return sum(v for k, v in self.failures.items() if observed_unresolved(k))

    @property
    def n_flagged_unresolved(self) -> int:
        """Flagged rows whose observed toy limit was unresolved too (the flag stands)."""
        return sum(map(len, self.flagged_unresolved))

    @property
    def n_not_converged(self) -> int:
        return len(self.not_converged)


@dataclass
class InjectionSummary:
    """The closure of one dataset's injection study (inject.csv): ranges over its rows
    (mass x strength) of the pull mean and width and of the coverages."""

    dataset: str
    n_masses: int
    n_strengths: int
    n_kept: tuple[int, int]  # fewest and most toys kept in a row
    n_generated: int  # most toys generated in a row
    too_few: list[str]  # rows with fewer than 2 toys kept: "60 MeV z=3 (0 of 200)"
    pull_mean: tuple[float, float]
    pull_width: tuple[float, float]
    cov_1sigma: tuple[float, float]
    cov_2sigma: tuple[float, float]
    # the row whose pull mean lies the most errors from 0: (pull_mean, its error, where)
    pull_mean_furthest: tuple[float, float, str] | None = None
    # rows of 2 to MIN_PULL_TOYS - 1 toys kept: no error of the pull mean is quoted
    few_for_error: list[str] = field(default_factory=list)


#: the fewest toys kept whose pull width gives the pull mean's error (of fewer, that
#: width is itself uncertain by more than a quarter: 2 toys gave "8.4 standard errors"
#: from a width of 0.13; a review)
MIN_PULL_TOYS = 10


def summarize_injection(rows: Iterable[Mapping[str, str]]) -> list[InjectionSummary]:
    """One :class:`InjectionSummary` per dataset of an ``inject.csv`` (rows without toys
    or numbers left out of the ranges)."""
    by: dict[str, list[Mapping[str, str]]] = {}
    for r in rows:
        by.setdefault(r["dataset"], []).append(r)
    out = []
    for name, rs in by.items():

        def span(col: str, rs: list[Mapping[str, str]] = rs) -> tuple[float, float]:
            v = [x for r in rs if (x := _num(r, col)) is not None]
            return (min(v), max(v)) if v else (math.nan, math.nan)

        n = [int(x) for r in rs if (x := _num(r, "n_kept")) is not None]
        gen = [int(x) for r in rs if (x := _num(r, "n_generated")) is not None]
        pulls = [
            (p, e, f"{float(r['mass_GeV']) * 1e3:g} MeV z={r['z_inj']}")
            for r in rs
            if (p := _num(r, "pull_mean")) is not None
            and (e := _num(r, "pull_mean_err")) is not None
            and e > 0
            and (_num(r, "n_kept") or 0) >= MIN_PULL_TOYS
        ]
        few_for_error = [
            f"{float(r['mass_GeV']) * 1e3:g} MeV z={r['z_inj']} "
            f"({int(_num(r, 'n_kept') or 0)} of {r.get('n_generated', '?')})"
            for r in rs
            if 2 <= (_num(r, "n_kept") or 0) < MIN_PULL_TOYS
        ]
        few = [
            f"{float(r['mass_GeV']) * 1e3:g} MeV z={r['z_inj']} "
            f"({int(_num(r, 'n_kept') or 0)} of {r.get('n_generated', '?')})"
            for r in rs
            if (_num(r, "n_kept") or 0) < 2
        ]
        out.append(
            InjectionSummary(
                name,
                len({r["mass_GeV"] for r in rs}),
                len({r["z_inj"] for r in rs}),
                (min(n), max(n)) if n else (0, 0),
                max(gen) if gen else 0,
                few,
                span("pull_mean"),
                span("pull_width"),
                span("cov_1sigma"),
                span("cov_2sigma"),
                max(pulls, key=lambda t: abs(t[0]) / t[1]) if pulls else None,
                few_for_error,
            )
        )
    return out


def pull_closure_text(
    mass: ArrayLike, pull_mean: ArrayLike, pull_mean_err: ArrayLike, n_kept: ArrayLike
) -> str:
    """A toy scan's pull means against 0, in their standard errors (``toyscan_summary.csv``):
    at how many masses more than 3 errors off, and the furthest ('' without errors); of
    masses with at least :data:`MIN_PULL_TOYS` toys kept (3 toys gave "-1.862 +- 0.212":
    the whole-diff review)."""
    m = np.asarray(mass, dtype=float)
    p, e = np.asarray(pull_mean, dtype=float), np.asarray(pull_mean_err, dtype=float)
    e = np.where(np.asarray(n_kept, dtype=float) >= MIN_PULL_TOYS, e, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(e > 0, np.abs(p) / e, np.nan)
    have = np.isfinite(dev)
    if not have.any():
        return ""
    i = int(np.nanargmax(dev))
    n_off, n = int(np.sum(dev[have] > 3)), int(have.sum())
    return (
        f"pull mean more than 3 standard errors from 0 at {n_off} of {n} "
        f"mass{'es' * (n != 1)}; furthest {p[i]:+.3f} +- {e[i]:.3f} at {m[i] * 1e3:g} MeV "
        "(pull_mean_err in toyscan_summary.csv)"
    )


def toyscan_tail_text(overview: Mapping[str, Any]) -> str:
    """A toy scan's whole-scan numbers (``toyscan.h5 /summary`` attrs): the fraction of
    unflagged rows with Z_local > 3, its error and the background-only expectation, the
    largest unflagged Z_local and how many exceed 5 ('' without them)."""
    try:
        f, e, p = (
            float(overview[k]) for k in ("frac_Z_gt3", "frac_Z_gt3_err", "frac_Z_gt3_expected")
        )
        n_toys, n_ok, n_flagged, n_failed, n_gt5 = (
            int(overview[k]) for k in ("n_toys", "n_ok", "n_flagged", "n_failed", "n_ok_Z_gt5")
        )
        z_max = float(overview["max_Z_local_ok"])
    except (KeyError, TypeError, ValueError):  # a file of an older gprpipe, or edited
        return ""
    return (
        f"{n_toys} toys, {n_ok} unflagged rows ({n_flagged} flagged, {n_failed} failed); "
        f"Z_local > 3 in {f:.5f} +- {e:.5f} (background-only {p:.5f}); max unflagged "
        f"Z_local {z_max:.2f}; unflagged Z_local > 5: {n_gt5}"
    )


def _of_ok(runs: list[list[float]], n_ok: int) -> str:
    """``8 of 111 masses (2 masses at 56-57 MeV, ...)``: the masses in ``runs`` among the
    ``n_ok`` ok rows."""
    n = sum(len(r) for r in runs)
    return f"{n} of {n_ok} mass{'es' * (n_ok != 1)} ({masses_text(runs)})"


def injection_lines(s: InjectionSummary) -> list[str]:
    """One dataset's injection closure as text (ranges over masses and strengths)."""

    def rng(x: tuple[float, float], f: str = ".2f") -> str:
        return f"{x[0]:{f}}" if x[0] == x[1] else f"{x[0]:{f}} to {x[1]:{f}}"

    toys = f"{s.n_kept[0]}" if s.n_kept[0] == s.n_kept[1] else f"{s.n_kept[0]}-{s.n_kept[1]}"
    if s.n_generated > s.n_kept[0]:
        toys += f" of {s.n_generated}"
    lines = [
        f"injection {s.dataset} ({s.n_masses} mass{'es' * (s.n_masses != 1)} x "
        f"{s.n_strengths} strength{'s' * (s.n_strengths != 1)}, {toys} toys kept each)",
        f"pull mean {rng(s.pull_mean)}, width {rng(s.pull_width)}; coverage of "
        f"+-1 sigma_A {rng(s.cov_1sigma, '.3f')} (0.683), +-2 {rng(s.cov_2sigma, '.3f')} (0.954)",
    ]
    if s.pull_mean_furthest is not None:
        p, e, where = s.pull_mean_furthest
        lines.append(
            f"pull mean furthest from 0: {p:+.3f} +- {e:.3f} at {where} ({abs(p) / e:.1f} "
            "standard errors; pull_mean_err in inject.csv)"
        )
    if s.few_for_error:
        lines.append(
            f"fewer than {MIN_PULL_TOYS} toys kept at {', '.join(s.few_for_error)}: no error "
            "of their pull means is quoted (raise inject.n_toys)"
        )
    if s.too_few:  # a toy is kept when its fits converge with a finite window background
        lines.append(
            f"too few toys kept for a closure at {', '.join(s.too_few)}: their fits failed or "
            "did not converge (per toy in inject.h5)"
        )
    return lines


def _num(row: Mapping[str, Any], key: str) -> float | None:
    try:
        x = float(row[key])
    except (KeyError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _false(text: str | None) -> bool:
    return str(text).strip().lower() in ("false", "0", "no")


def summarize_scan(
    rows: Iterable[Mapping[str, Any]], n_toys: int | None = None, bands: str | None = None
) -> list[DatasetSummary]:
    """Per dataset (in table order): the figures above, from ``scan.csv`` rows; ``n_toys``:
    the toys per limit of the point's config (``limit.n_toys``), None when not known;
    ``bands``: its ``limit.bands``, None when not known (then toy bands where a row has a
    toy band's Monte Carlo error, ``exp_band_rel_err``, NaN for asymptotic bands)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["dataset"], []).append(r)
    out = []
    for name, rs in groups.items():
        s = DatasetSummary(name, len(rs), masses=[float(r["mass_GeV"]) for r in rs])
        s.not_ok = [(float(r["mass_GeV"]), st) for r in rs if (st := r.get("status", "ok")) != "ok"]
        # fits whose numbers stand although the optimiser did not converge: a failed row
        # (no numbers) is counted as failed only, and a combined row has no fit of its own
        # (its gp_converged says whether every fit it combines converged)
        s.not_converged = [
            float(r["mass_GeV"])
            for r in rs
            if name != COMBINED
            and fit_usable(r.get("status", "ok"))
            and _false(r.get("gp_converged"))
        ]
        if name == COMBINED:
            s.left_out = _left_out(groups, rs)
        no_observed = [
            is_flagged(r.get("status", "ok"))
            and "eps2_up" in r  # (a blinded table has no observed limit at all)
            and _num(r, "eps2_up") is None
            and _num(r, "eps2_exp_med") is not None
            for r in rs
        ]
        only_left = [flags_of(r.get("status", "ok")) == (FLAG_DATASET_LEFT_OUT,) for r in rs]
        # a failed quality check; a row with only a dataset left out is said apart
        s.flagged_unresolved = mass_runs(
            [n and not o for n, o in zip(no_observed, only_left, strict=True)], s.masses
        )
        s.left_out_unresolved = mass_runs(
            [n and o for n, o in zip(no_observed, only_left, strict=True)], s.masses
        )
        # flagged rows are left out of the largest local significance, as everywhere
        sig = [
            (z, r)
            for r in rs
            if r.get("status", "ok") == "ok" and (z := _num(r, "Z_local")) is not None
        ]
        if sig:
            z, r = max(sig, key=lambda t: t[0])
            s.most_significant = Extreme(float(r["mass_GeV"]), z)
            s.Z_global = _num(r, "Z_global")
            s.p0_global = _num(r, "p0_global")
            s.Z_global_toys = _num(r, "Z_global_toys")
            s.p0_global_toys = _num(r, "p0_global_toys")
            s.p0_global_toys_err = _num(r, "p0_global_toys_err")
            s.p0_local = _num(r, "p0_local")
            s.p0_local_toys = _num(r, "p0_local_toys")
            s.p0_local_toys_err = _num(r, "p0_local_toys_err")
            s.frac_Z0_toys = _num(r, "frac_Z0_toys")
            s.frac_Z0_toys_err = _num(r, "frac_Z0_toys_err")
        s.blinded = any(str(r.get("blinded", "")).lower() == "true" for r in rs)
        column = "eps2_exp_med" if s.blinded else "eps2_up"
        lim = [  # and out of the strongest and weakest limits
            (v, float(r["mass_GeV"]))
            for r in rs
            if r.get("status", "ok") == "ok" and (v := _num(r, column)) is not None and v > 0
        ]
        if lim:
            s.weakest = Extreme(*max(lim)[::-1])
            s.strongest = Extreme(*min(lim)[::-1])
        limited = [
            (v, r)
            for r in rs
            if r.get("status", "ok") == "ok" and (v := _num(r, "eps2_up")) is not None
        ]
        rel = [
            (e / v, float(r["mass_GeV"]))
            for v, r in limited
            if v > 0 and (e := _num(r, "eps2_up_err")) is not None
        ]
        if rel:  # toy limits (asymptotic ones have no Monte Carlo error)
            s.toy_error_median = float(np.median([x for x, _ in rel]))
            s.toy_error_largest = Extreme(*max(rel)[::-1])
            s.toy_error_missing = len(limited) - len(rel)
            if few_toys(n_toys):  # every toy limit's error: unchecked with so few
                s.toy_error_few_toys = n_toys
            else:
                ok = np.array([r.get("status", "ok") == "ok" for r in rs])
                col = {k: np.array([_nan_if_none(_num(r, k)) for r in rs]) for k in _Z_COLUMNS}
                deep = ok & toy_error_unchecked(*(col[k] for k in _Z_COLUMNS))
                masses = [float(r["mass_GeV"]) for r in rs]
                s.toy_error_unchecked = mass_runs(deep.tolist(), masses)
        # the bands shown (HEPData's, the figures'): of the ok rows and of those whose
        # observed toy limit alone is unresolved (they keep their band)
        band = [
            (e, float(r["mass_GeV"]))
            for r in rs
            if limits_shown(r.get("status", "ok"))
            and (e := _num(r, "exp_band_rel_err")) is not None
        ]
        if band:  # toy bands (asymptotic ones have no Monte Carlo error)
            s.band_error_median = float(np.median([e for e, _ in band]))
            s.band_error_largest = Extreme(*max(band)[::-1])
        if bands is not None:
            s.bands = bands
        elif any(_num(r, "exp_band_rel_err") is not None for r in rs):
            s.bands = "toys"
        biased = [
            r.get("status", "ok") == "ok"
            and (f := _num(r, "frac_Z0_toys")) is not None
            and (e := _num(r, "frac_Z0_toys_err")) is not None
            and bool(toys_biased(f, e))
            for r in rs
        ]
        s.toys_biased = mass_runs(biased, [float(r["mass_GeV"]) for r in rs])
        if not s.blinded:  # observed limits below the expected band: deficits, named
            below = [r.get("status", "ok") == "ok" and _below_band(r) for r in rs]
            s.below_band = mass_runs(below, [float(r["mass_GeV"]) for r in rs])
        gof = [  # of the rows whose fit stands (a failed fit's is no model the scan used)
            (v, float(r["mass_GeV"]))
            for r in rs
            if fit_usable(r.get("status", "ok")) and (v := _num(r, "gof_p")) is not None
        ]
        if gof:
            s.worst_gof = Extreme(*min(gof)[::-1])
        out.append(s)
    return out


def _below_band(row: Mapping[str, Any]) -> bool:
    up, lo2 = _num(row, "eps2_up"), _num(row, "eps2_exp_lo2")
    return up is not None and lo2 is not None and up < lo2


_Z_COLUMNS = ("A_hat", "sigma_A", "eps2_up_err")


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else x


def toy_error_unchecked(a_hat: ArrayLike, sigma_a: ArrayLike, err: ArrayLike) -> NDArray[np.bool_]:
    """Which toy limits (a finite Monte Carlo error ``err``) lie at a deficit deeper than
    the error study checked: ``A_hat / sigma_A < TOY_ERROR_CHECKED_TO`` (``sigma_A > 0``)."""
    a, s, e = (np.asarray(x, dtype=float) for x in (a_hat, sigma_a, err))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, a / s, np.nan)
    return np.isfinite(e) & (z < TOY_ERROR_CHECKED_TO)


def few_toys(n_toys: int | None) -> bool:
    """Whether toy limits from ``n_toys`` toys each are from fewer than their Monte Carlo
    error was checked with (:data:`TOY_ERROR_CHECKED_TOYS`)."""
    return n_toys is not None and n_toys < TOY_ERROR_CHECKED_TOYS


def _left_out(
    groups: Mapping[str, list[Mapping[str, Any]]], combined: list[Mapping[str, Any]]
) -> dict[str, list[float]]:
    """Per dataset, the masses of the ``combined`` rows flagged ``flag_dataset_left_out``
    where that dataset's fit failed (its row has no result, and not because its own limit
    failed: the combination takes a usable fit whatever its limit did)."""
    masses = {  # one mass, one text in scan.csv (written from the same float)
        round(float(r["mass_GeV"]), 9)
        for r in combined
        if FLAG_DATASET_LEFT_OUT in flags_of(r.get("status", "ok"))
    }
    out: dict[str, list[float]] = {}
    for d, rs in groups.items():
        if d == COMBINED:
            continue
        for r in rs:
            m = float(r["mass_GeV"])
            if not fit_usable(str(r.get("status", "ok"))) and round(m, 9) in masses:
                out.setdefault(d, []).append(m)
    return out


def masses_text(runs: Sequence[Sequence[float]], counted: bool = True) -> str:
    """Runs of masses as text, a run as its count and ends: ``58 MeV, 3 masses at 108-110
    MeV`` (the scan's masses between the ends, as :func:`mass_runs` found them); without
    the counts (``counted=False``) ``58 MeV, 108-110 MeV``."""
    out = []
    for r in sorted(runs, key=min):
        lo, hi = min(r), max(r)
        n = len(r)
        count = f"{n} masses at " if counted else ""
        out.append(_mev(lo) if n == 1 else f"{count}{lo * 1e3:g}-{hi * 1e3:g} MeV")
    return ", ".join(out)


def mass_runs(marked: Sequence[bool], masses: Sequence[float]) -> list[list[float]]:
    """The masses where ``marked``, grouped into runs of adjacent entries (a row not
    marked, flagged or failed, between two ends a run)."""
    runs: list[list[float]] = []
    for i, (on, m) in enumerate(zip(marked, masses)):
        if on:
            if i and marked[i - 1] and runs:
                runs[-1].append(m)
            else:
                runs.append([m])
    return runs


def most_significant(datasets: Iterable[DatasetSummary]) -> DatasetSummary | None:
    """The dataset (or ``combined``) holding a point's largest ok local significance (the
    first on a tie); None when no row has one (blinded, or all flagged)."""
    best, best_z = None, -math.inf
    for s in datasets:
        if s.most_significant is not None and s.most_significant.value > best_z:
            best, best_z = s, s.most_significant.value
    return best


def _mev(m: float) -> str:
    return f"{m * 1e3:g} MeV"


def dataset_lines(s: DatasetSummary) -> list[str]:
    """One dataset as a few lines of text."""
    lines = [
        f"{s.dataset} ({s.n_masses} mass{'es' * (s.n_masses != 1)}"
        f"{', BLINDED' if s.blinded else ''})"
    ]
    if s.most_significant:
        z = (
            f"most significant: {_mev(s.most_significant.mass)}, Z_local "
            f"{s.most_significant.value:.2f}"
        )
        if s.Z_global is not None:
            z += f", Z_global {s.Z_global:.2f}"
            if s.Z_global_toys is None:  # Sidak's alone: it can understate the global p0
                z += " (Sidak; limit.global_toys for the toys' number)"
        if s.Z_global_toys is not None:
            z += f", Z_global (toys) {s.Z_global_toys_text}"
            if s.toys_bound:
                z += f" (p0 < {s.p0_global_toys:.3g}: no toy reached it; more toys say more)"
            elif s.p0_global_toys is not None and s.p0_global_toys_err is not None:
                z += f" (p0 {s.p0_global_toys:.3g} +- {s.p0_global_toys_err:.2g})"
        lines.append(z)
        toys = s.p0_local_toys_text
        if s.p0_local is not None and toys:
            bound = " (no toy reached it)" if s.local_toys_bound else ""
            bias = f"; {s.toys_bias_text}" if s.toys_bias_text else ""
            lines.append(
                f"local p0 at {_mev(s.most_significant.mass)}: {s.p0_local:.3g} (asymptotic), "
                f"{toys} from the toys at this mass{bound}{bias}"
            )
    if s.toys_biased:
        lines.append(
            f"whole-scan toys biased at {_of_ok(s.toys_biased, s.n_ok)}: P(Z_local = 0) "
            "more than 3 standard errors "
            "from 0.5 (frac_Z0_toys); there the toys' local p0 is no clean check of the "
            "asymptotic one, and their global p0 counts maxima there"
        )
    if s.weakest and s.strongest:
        lines.append(
            f"{'expected (median) ' if s.blinded else ''}eps^2 limits: strongest "
            f"{s.strongest.value:.3g} at "
            f"{_mev(s.strongest.mass)}, weakest {s.weakest.value:.3g} at "
            f"{_mev(s.weakest.mass)}"
        )
    if s.toy_error_median is not None and s.toy_error_largest is not None:
        lines.append(
            f"toy limits' Monte Carlo error (eps2_up_err): median {s.toy_error_median:.1%}, "
            f"largest {s.toy_error_largest.value:.1%} at {_mev(s.toy_error_largest.mass)} "
            "(more toys: limit.n_toys)"
            + (
                f"; {s.toy_error_missing} ok limits without an estimate (NaN: limit 0 or no "
                "slope of CLs there)"
                if s.toy_error_missing
                else ""
            )
            + (
                f"; from {s.toy_error_few_toys} toys each, fewer than the "
                f"{TOY_ERROR_CHECKED_TOYS} it was checked with: {TOY_ERROR_FEW_TOYS_CAVEAT}"
                if s.toy_error_few_toys is not None
                else ""
            )
            + (
                f"; {sum(map(len, s.toy_error_unchecked))} at deficits deeper than "
                f"A_hat/sigma_A = {TOY_ERROR_CHECKED_TO:g} "
                f"({masses_text(s.toy_error_unchecked)}): {TOY_ERROR_CAVEAT}"
                if s.toy_error_unchecked
                else ""
            )
        )
    if s.band_error_median is not None and s.band_error_largest is not None:
        lines.append(
            f"toy bands' Monte Carlo error (exp_band_rel_err): median "
            f"{s.band_error_median:.2%}, largest {s.band_error_largest.value:.2%} at "
            f"{_mev(s.band_error_largest.mass)} (more toys: limit.band_toys)"
        )
    if s.below_band:
        lines.append(
            f"observed limit below the expected -2 sigma band: {_of_ok(s.below_band, s.n_ok)}"
            ", deficits in the data "
            f"({BELOW_BAND_CHANCE[s.bands]:.1%} expected by chance; neighbouring masses are "
            "correlated)"
        )
    unresolved = {k: v for k, v in s.failures.items() if observed_unresolved(k)}
    failed = {k: v for k, v in s.failures.items() if k not in unresolved}
    if failed:
        lines.append(
            f"failed (no limit): {sum(failed.values())} ("
            + ", ".join(f"{k}: {v} at {s.where(k)}" for k, v in failed.items())
            + ")"
        )
    if unresolved:
        lines.append(
            f"failed (no observed limit; its fit, significance and expected limits kept): "
            f"{s.n_unresolved} ("
            + ", ".join(f"{k}: {v} at {s.where(k)}" for k, v in unresolved.items())
            + ")"
        )
    # a quality check failed; a combined row with only a dataset left out is said apart
    # (counted among them, it read as a failed check, as report.html counts it: a review)
    quality = {k: v for k, v in s.flags.items() if flags_of(k) != (FLAG_DATASET_LEFT_OUT,)}
    flagged = f"flagged: {sum(quality.values())}"
    if quality:
        flagged += " (" + ", ".join(f"{k}: {v} at {s.where(k)}" for k, v in quality.items()) + ")"
    if s.flagged_unresolved:
        flagged += (
            f", {s.n_flagged_unresolved} of them with no observed limit (the "
            f"toys could not resolve it: raise limit.n_toys) at "
            f"{masses_text(s.flagged_unresolved, counted=False)}"
        )
    if s.dataset == COMBINED:
        lines.append(flagged)
        for d, ms in s.left_out.items():
            lines.append(
                f"left out of the combination: {d} at {', '.join(map(_mev, ms))} (no usable fit "
                "there; those rows are flag_dataset_left_out)"
            )
        if s.n_left_out and not s.left_out:  # (its dataset's rows not in this table)
            lines.append(
                f"rows with a dataset left out: {s.n_left_out} at "
                f"{s.where(FLAG_DATASET_LEFT_OUT)} (flag_dataset_left_out)"
            )
        if s.left_out_unresolved:
            lines.append(
                "rows with a dataset left out and no observed limit (the toys could not "
                f"resolve it: raise limit.n_toys): {s.n_left_out_unresolved} at "
                f"{masses_text(s.left_out_unresolved, counted=False)}"
            )
    else:
        lines.append(f"{flagged}; GP fits not converged: {s.n_not_converged}")
    if s.worst_gof:
        lines.append(f"smallest GOF p-value: {s.worst_gof.value:.3g} at {_mev(s.worst_gof.mass)}")
    return lines


#: :meth:`FailedRows.sentence` of a table of masses, as a run prints it (found in its output)
FAILED_ROWS_SENTENCE = re.compile(r"\d+ of \d+ masses failed in .*")


@dataclass(frozen=True)
class FailedRows:
    """A table (``scan.csv``, ``inject.csv``, ``toyscan.csv``) with rows that failed."""

    path: Path
    bad: int
    total: int
    first: str  # "dataset mass GeV: status" of the first failed row

    @property
    def toys(self) -> bool:
        """Rows of a validation scan of toys: a failed toy fit is one of its results
        (counted in toyscan_summary.csv), not a failure of the run."""
        return self.path.name == "toyscan.csv"

    def sentence(self, where: bool = True) -> str:
        """``N of M masses failed in PATH (first: ...)`` (``where``: with the path)."""
        what = "toy rows (toy, mass)" if self.toys else "masses"
        at = f" in {self.path}" if where else ""
        return f"{self.bad} of {self.total} {what} failed{at} (first: {self.first})"


def failed_rows(path: Path) -> tuple[int, int, str]:
    """(rows that failed, rows, "dataset mass GeV: status" of the first) of a CSV table
    (of a toy scan, "toy 'HIST' at mass GeV: status"); a row with a background-model
    quality flag has results and is not a failure; (0, n, "") for a table without a status
    column."""
    rows = read_csv_table(path)[1]
    bad = [r for r in rows if "status" in r and not has_result(r["status"])]
    if not bad:
        return 0, len(rows), ""
    r = bad[0]
    where = f"toy {r['hist']!r} at" if "hist" in r else r.get("dataset", "")
    return len(bad), len(rows), f"{where} {r.get('mass_GeV', '')} GeV: {r['status']}"
