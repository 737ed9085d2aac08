"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

import csv
from pathlib import Path

from gprpipe.results.schema import collect, csv_text, write_merged

__all__ = ["collect", "csv_text", "failed_rows", "write_merged"]  # tables: results.schema


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
