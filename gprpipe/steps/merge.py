"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

from gprpipe.results.schema import collect, csv_text, write_merged

__all__ = ["collect", "csv_text", "write_merged"]  # tables: results.schema
