"""HDF5 output files: atomic writes and the provenance attributes every output carries."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_path, open_regular
from gprpipe.io.source import source_version


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """The file's sha256; OSError unless it is a regular file (a FIFO or /dev/zero at an
    output's name: the digest waited, or read, for ever; a review)."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(cache_key: str, config_sha256: str) -> dict[str, str]:
    """Attributes of every output: version, cache key, time, config digest, where it ran."""
    return {
        "gprpipe_version": source_version(),  # with the commit of a moved-on checkout
        "cache_key": cache_key,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config_sha256": config_sha256,
        "engine": os.environ.get("GPRPIPE_ENGINE", "local"),
        "image": os.environ.get("GPRPIPE_IMAGE", ""),
        "image_digest": os.environ.get("GPRPIPE_IMAGE_DIGEST", ""),
    }


@contextlib.contextmanager
def write_h5(path: Path | str, attrs: Mapping[str, Any]) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing; it appears at ``path`` only when complete."""
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        yield f


def open_h5(path: Path | str) -> h5py.File:
    """Open an output file for reading; a missing, truncated or foreign file is one sentence
    naming it (a ``GprpipeError``)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        why = "missing" if not Path(path).exists() else f"unreadable as HDF5 ({exc})"
        raise GprpipeError(f"{path}: {why}; run the step that writes it again.") from None


def read_attr(path: Path | str, name: str) -> Any:
    """One root attribute of an HDF5 file, or None if the file or attribute is missing."""
    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get(name)
    except (OSError, FileNotFoundError):
        return None
    return v.decode() if isinstance(v, bytes) else v


def write_group(group: h5py.Group, arrays: Mapping[str, Any]) -> None:
    """Write a dict of arrays (str arrays as UTF-8) into ``group``."""
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype.kind in "UO":
            group.create_dataset(k, data=a.astype(object), dtype=h5py.string_dtype())
        else:
            group.create_dataset(k, data=a)


def read_group(group: h5py.Group) -> dict[str, np.ndarray]:
    out = {}
    for k, ds in group.items():
        if isinstance(ds, h5py.Dataset):
            a = ds[()]
            if ds.dtype.kind == "O":
                a = np.array([x.decode() if isinstance(x, bytes) else x for x in np.atleast_1d(a)])
            out[k] = a
    return out
