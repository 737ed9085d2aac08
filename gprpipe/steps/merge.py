"""Merging per-chunk step outputs: per-dataset arrays concatenated and sorted by mass."""

from __future__ import annotations

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
