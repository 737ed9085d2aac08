"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

import csv
from pathlib import Path

from gprpipe.results.schema import collect, csv_text, write_merged

__all__ = ["collect", "csv_text", "failed_rows", "write_merged"]  # tables: results.schema


def failed_rows(path: Path) -> tuple[int, int, str]:
    """(rows that failed, rows, "dataset mass: status" of the first) of a CSV table; a row
    with a background-model quality flag has results and is not a failure; (0, n, "") for
    a table without a status column."""
    from gprpipe.stats.quality import has_result

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = [r for r in rows if "status" in r and not has_result(r["status"])]
    first = (
        f"{bad[0].get('dataset', '')} {bad[0].get('mass_GeV', '')} GeV: {bad[0]['status']}"
        if bad
        else ""
    )
    return len(bad), len(rows), first
