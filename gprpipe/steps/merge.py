"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from gprpipe.results.schema import collect, csv_text, write_merged

__all__ = [
    "FailedRows",
    "collect",
    "csv_text",
    "failed_rows",
    "write_merged",
]  # tables: results.schema


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
    from gprpipe.stats.quality import has_result

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = [r for r in rows if "status" in r and not has_result(r["status"])]
    if not bad:
        return 0, len(rows), ""
    r = bad[0]
    where = f"toy {r['hist']!r} at" if "hist" in r else r.get("dataset", "")
    return len(bad), len(rows), f"{where} {r.get('mass_GeV', '')} GeV: {r['status']}"
