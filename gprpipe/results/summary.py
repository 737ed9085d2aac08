"""The summary of a point: best local and global significance, flagged rows, non-converged
GP fits, blinded or not; read from the point's ``scan.csv`` (works for blinded scans, whose
observed columns are absent)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.results.schema import read_csv_table


def _num(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


@dataclass
class Best:
    """The most significant mass of one curve (dataset or ``combined``)."""

    dataset: str
    mass_GeV: float
    Z_local: float
    Z_global: float  # Sidak
    Z_global_toys: float = math.nan  # whole-scan toys (limit.global_toys), NaN without


@dataclass
class Summary:
    """What a reader wants first from a point."""

    blinded: bool
    n_rows: int
    datasets: list[str]
    best: list[Best] = field(default_factory=list)  # per dataset, unblinded only
    flagged: list[tuple[str, float, str]] = field(default_factory=list)  # status != ok
    not_converged: list[tuple[str, float]] = field(default_factory=list)

    @property
    def best_overall(self) -> Best | None:
        return max(self.best, key=lambda b: b.Z_local) if self.best else None


def read_scan_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a ``scan.csv``."""
    return read_csv_table(path)


def summarize(scan_csv: Path) -> Summary:
    """The :class:`Summary` of a point's ``scan.csv``."""
    header, rows = read_scan_rows(scan_csv)
    blinded = "Z_local" not in header or any(r.get("blinded") == "true" for r in rows)
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    out = Summary(blinded=blinded, n_rows=len(rows), datasets=names)
    for r in rows:
        if r.get("status", "ok") != "ok":
            out.flagged.append((r["dataset"], _num(r["mass_GeV"]), r["status"]))
        if (
            r["dataset"] != "combined"
            and r.get("gp_converged") == "false"
            and r.get("status") == "ok"
        ):
            out.not_converged.append((r["dataset"], _num(r["mass_GeV"])))
    if not blinded:
        for name in names:
            mine = [  # flagged rows are left out of the largest local significance
                r
                for r in rows
                if r["dataset"] == name
                and r.get("status", "ok") == "ok"
                and math.isfinite(_num(r["Z_local"]))
            ]
            if mine:
                r = max(mine, key=lambda r: _num(r["Z_local"]))
                out.best.append(
                    Best(
                        name,
                        _num(r["mass_GeV"]),
                        _num(r["Z_local"]),
                        _num(r["Z_global"]),
                        _num(r.get("Z_global_toys")),
                    )
                )
    return out
