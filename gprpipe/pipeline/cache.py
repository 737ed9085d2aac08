"""Cache keys: a task is skipped when the key stored in its output matches.

key = sha256(step, part, the config sections the step reads, input digests, version).
An HDF5 input's digest is its own stored cache key (cheap, and it changes whenever the
upstream result can change); any other input (the ROOT source) is hashed by content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gprpipe import __version__
from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.hdf5 import read_attr, sha256_file
from gprpipe.pipeline.task import Task

STEP_SECTIONS: dict[str, tuple[str, ...]] = {
    "load": ("datasets", "scan"),
    "fit": ("datasets", "scan", "fit", "slurm.chunk_size", "base.seed"),
    "limit": ("datasets", "scan", "fit", "limit", "slurm.chunk_size", "base.seed"),
    "inject": ("datasets", "scan", "fit", "inject", "base.seed"),
    "plot": ("plot", "base.name", "datasets", "scan"),
}


def input_digest(path: Path) -> str:
    if not path.exists():
        if path.suffix == ".h5":  # an upstream step's output
            raise GprpipeError(f"{path}: input file missing (did its upstream task finish?).")
        raise GprpipeError(f"{path}: data file not found.")
    if path.suffix == ".h5":
        key = read_attr(path, "cache_key")
        if key:
            return f"key:{key}"
    return f"sha256:{sha256_file(path)}"


def _section(cfg: dict, dotted: str):
    node = cfg
    for p in dotted.split("."):
        node = node[p]
    return node


def task_key(task: Task, config: Config) -> str:
    cfg = config.model_dump(mode="json")
    payload = {
        "step": task.step,
        "part": task.part,
        "version": __version__,
        "config": {s: _section(cfg, s) for s in STEP_SECTIONS[task.step]},
        "inputs": {str(p): input_digest(p) for p in task.inputs},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def stored_key(path: Path) -> str | None:
    if not path.exists():
        return None
    if path.suffix == ".h5":
        return read_attr(path, "cache_key")
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text()).get("cache_key")
        except (OSError, ValueError):
            return None
    return None


def is_fresh(task: Task, config: Config) -> bool:
    """All outputs exist and the primary output holds this task's current key."""
    if not task.outputs or not all(p.exists() for p in task.outputs):
        return False
    try:
        key = task_key(task, config)
    except GprpipeError:
        return False
    return stored_key(task.outputs[0]) == key
