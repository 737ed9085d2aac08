"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from gprpipe.io.hdf5 import read_group, write_group


def collect(paths: Sequence[Path]) -> dict[str, dict[str, np.ndarray]]:
    """Arrays of every dataset group across chunk files, sorted by ``mass`` when present."""
    per: dict[str, list[dict[str, np.ndarray]]] = {}
    for p in paths:
        with h5py.File(p, "r") as f:
            for name in f:
                per.setdefault(name, []).append(read_group(f[name]))
    out = {}
    for name, arrays in per.items():
        merged = {k: np.concatenate([np.atleast_1d(a[k]) for a in arrays]) for k in arrays[0]}
        if "mass" in merged:
            order = np.argsort(merged["mass"], kind="stable")
            merged = {k: v[order] for k, v in merged.items()}
        out[name] = merged
    return out


def write_merged(out: h5py.File, paths: Sequence[Path],
                 arrays: dict[str, dict[str, np.ndarray]]) -> None:
    """Write merged arrays and copy every sub-group (e.g. ``blind/<index>``) of the parts."""
    for name, merged in arrays.items():
        write_group(out.require_group(name), merged)
    for p in paths:
        with h5py.File(p, "r") as f:
            for name in f:
                for sub, obj in f[name].items():
                    if isinstance(obj, h5py.Group):
                        dst = out[name].require_group(sub)
                        for item in obj:
                            f.copy(obj[item], dst, name=item)


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{float(v):.8g}"
    return str(v)


def csv_text(per_ds: dict[str, dict[str, np.ndarray]], columns: Sequence[str]) -> str:
    """CSV of merged arrays: one row per (dataset, mass); floats with 8 significant digits."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for name, arrays in per_ds.items():
        for i in range(len(arrays["mass_GeV"])):
            w.writerow([name if c == "dataset" else _fmt(arrays[c][i]) for c in columns])
    return buf.getvalue()


def failed_rows(path: Path) -> tuple[int, int, str]:
    """(rows that failed, rows, "dataset mass: status" of the first) of a CSV table; a row
    with a background-model quality flag has results and is not a failure; (0, n, "") for
    a table without a status column."""
    from gprpipe.stats.quality import has_result

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = [r for r in rows if "status" in r and not has_result(r["status"])]
    first = (f"{bad[0].get('dataset', '')} {bad[0].get('mass_GeV', '')} GeV: {bad[0]['status']}"
             if bad else "")
    return len(bad), len(rows), first
