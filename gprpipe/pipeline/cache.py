"""Cache keys: a task is skipped when its commit record holds its current key and every
file it wrote is intact (see :mod:`gprpipe.pipeline.commit`).

key = sha256(step, part, the config sections the step reads, input digests,
``NUMERICS_VERSION``). The key holds no absolute path, so a moved or copied run directory
keeps its keys: an input inside the point folder enters by its path relative to the
folder and its digest, a data file outside the run by its content digest alone
(``datasets.<key>.path`` is left out of the config part: moving the data file changes
nothing). An HDF5 input's digest is its own stored cache key (cheap, and it changes
whenever the upstream result can change); any other input (the ROOT source) is hashed by
content. The package version is not in the key (it changes with every commit); the
numerics version is (see :data:`gprpipe.NUMERICS_VERSION`), and for the plot task the
version of its outputs alone (:data:`gprpipe.PLOT_VERSION`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gprpipe import NUMERICS_VERSION, PLOT_VERSION
from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.hdf5 import read_attr, sha256_file
from gprpipe.pipeline.commit import check_outputs, read_commit, vouched
from gprpipe.pipeline.task import Task

STEP_SECTIONS: dict[str, tuple[str, ...]] = {
    "load": ("datasets", "scan", "base.blind"),  # every output records whether it is blinded
    "fit": ("datasets", "scan", "fit", "base.seed", "base.blind"),
    "limit": ("datasets", "scan", "fit", "limit", "base.seed", "base.blind"),
    "inject": ("datasets", "scan", "fit", "inject", "base.seed", "base.blind"),
    "toyscan": ("datasets", "scan", "fit", "limit", "toyscan", "base.seed", "base.blind"),
    "plot": (
        "plot",
        "base.name",
        "base.seed",
        "datasets",
        "scan",
        "fit",
        "limit",
        "inject",
        "toyscan",
        "base.blind",
    ),
}
#: keys of a dataset table that locate a file rather than change a result
LOCATION_KEYS = ("path",)
#: likewise in other sections (the file's digest is in the key of the tasks that read it)
SECTION_LOCATION_KEYS = {"toyscan": ("file",)}


def input_digest(path: Path) -> str:
    if not path.exists():
        if path.suffix in (".h5", ".csv"):  # an upstream step's output
            raise GprpipeError(f"{path}: input file missing (did its upstream task finish?).")
        raise GprpipeError(f"{path}: data file not found.")
    if path.is_dir():  # (it stopped summary and status with "is a directory")
        if path.suffix in (".h5", ".csv"):  # an output: as damaged as a missing one
            raise GprpipeError(f"{path}: a folder stands at this input's name.")
        return "folder"  # a data file: changed, as an emptied one (no key matches it)
    if not path.is_file():  # (a FIFO or a device: HDF5 and the digest waited for ever)
        raise GprpipeError(f"{path}: is a device, FIFO or socket, not a file.")
    if path.suffix == ".h5":
        key = read_attr(path, "cache_key")
        if key:
            return f"key:{key}"
    return f"sha256:{sha256_file(path)}"


def _section(cfg: dict[str, Any], dotted: str) -> Any:
    node = cfg
    for p in dotted.split("."):
        node = node[p]
    if dotted == "datasets":
        node = copy.deepcopy(node)
        for ds in node.values():
            for k in LOCATION_KEYS:
                ds.pop(k, None)
    elif dotted in SECTION_LOCATION_KEYS:
        node = {k: v for k, v in node.items() if k not in SECTION_LOCATION_KEYS[dotted]}
    return node


def _input_name(path: Path, point_dir: Path) -> str:
    """An input's name in the key: relative to the point folder, or '' (data file)."""
    try:
        return Path(path).relative_to(point_dir).as_posix()
    except ValueError:
        return ""


def task_key(task: Task, config: Config, numerics: int | None = None) -> str:
    """The cache key of ``task`` under ``config`` (and ``numerics``, default
    :data:`NUMERICS_VERSION`): its step, part, the config sections it reads and the
    digests of its inputs."""
    return _task_keys(task, config, (NUMERICS_VERSION if numerics is None else numerics,))[0]


def _task_keys(
    task: Task, config: Config, versions: Sequence[int], digests: dict[Path, str] | None = None
) -> list[str]:
    """:func:`task_key` under each of ``versions`` (config and inputs read once;
    ``digests``: input digests already taken in this call, reused and added to)."""

    def digest(p: Path) -> str:
        if digests is None:
            return input_digest(p)
        if Path(p) not in digests:
            digests[Path(p)] = input_digest(p)
        return digests[Path(p)]

    cfg = config.model_dump(mode="json")
    payload: dict[str, Any] = {
        "step": task.step,
        "part": task.part,
        "config": {s: _section(cfg, s) for s in STEP_SECTIONS[task.step]},
        "inputs": [[_input_name(p, task.point_dir), digest(p)] for p in task.inputs],
    }
    if task.step == "plot" and PLOT_VERSION:  # (absent at 0: the keys made before it)
        payload["plot_version"] = PLOT_VERSION
    blobs = (
        json.dumps(payload | {"numerics": v}, sort_keys=True, default=str).encode()
        for v in versions
    )
    return [hashlib.sha256(b).hexdigest()[:32] for b in blobs]


def freshness(task: Task, config: Config) -> tuple[bool, str]:
    """(fresh, notice): fresh when the commit record holds the current key and every
    output is intact; ``notice`` says which committed output was damaged, if one was."""
    if not task.outputs:
        return False, ""
    try:
        key = task_key(task, config)
    except GprpipeError:
        return False, ""
    return check_outputs(task, key)


def up_to_date(
    tasks: Sequence[Task],
    configs: Mapping[str, Config],
    forced: Iterable[str] = (),
    on_notice: Callable[[str], None] | None = None,
) -> list[Task]:
    """The tasks (in plan order) whose outputs are fresh and whose upstream tasks in
    ``tasks`` are all up to date too: what a queueing executor need not submit (a task
    downstream of one that runs again may see new inputs, so it is submitted). A damaged
    output of a task that would otherwise be up to date is told to ``on_notice``."""
    skip = set(forced)
    out: list[Task] = []
    ok: set[str] = set()
    planned = {t.id for t in tasks}
    for t in tasks:  # plan order is topological
        deps = [d for d in t.deps if d in planned]
        if t.id in skip or not all(d in ok for d in deps):
            continue
        fresh, notice = freshness(t, configs[t.point])
        if fresh:
            ok.add(t.id)
            out.append(t)
        elif notice and on_notice:
            on_notice(damaged_notice(t, notice))
    return out


def damaged_notice(task: Task, notice: str) -> str:
    """The line a run shows for a task whose committed output was damaged."""
    return f"notice: {task.id}: {notice}; running the task again"


def _committed_key_matches(
    producer: Task,
    config: Config,
    versions: Iterable[int],
    digests: dict[Path, str] | None = None,
    uncommitted: bool | None = None,
) -> bool | None:
    """Whether ``producer``'s commit record holds a key ``config`` gives it now (of one
    of ``versions``); ``uncommitted`` (default None) when nothing is committed, None when
    the key cannot be computed here (an input of the producer is gone or not at hand)."""
    rec = read_commit(producer)
    if rec is None:
        return uncommitted
    try:
        return rec.get("cache_key") in _task_keys(producer, config, tuple(versions), digests)
    except GprpipeError:
        return None


def versions(any_version: bool) -> tuple[int, ...]:
    """The NUMERICS_VERSIONs whose keys count: this one, or (``any_version``) every one."""
    return tuple(range(NUMERICS_VERSION, 0, -1)) if any_version else (NUMERICS_VERSION,)


def key_current(
    producer: Task,
    config: Config,
    versions: Iterable[int] = (NUMERICS_VERSION,),
    digests: dict[Path, str] | None = None,
) -> bool:
    """Whether ``producer``'s commit record holds a key ``config`` gives it now, or its key
    cannot be computed only because data files of the config are gone since it ran (a
    data file moved away leaves load.h5 as current as the scan.csv drawn from it; summary
    names the file). Any other input gone counts against it: an output copied in with
    its record from another run must not pass once an intermediate file is deleted."""
    found = _committed_key_matches(producer, config, versions, digests, uncommitted=False)
    if found is not None:
        return found
    data = {Path(path).absolute() for path, _ in config.data_files()}
    gone = [Path(p).absolute() for p in producer.inputs if not Path(p).exists()]
    return bool(gone) and all(p in data for p in gone)


def made_by(producer: Task, config: Config, any_version: bool = False) -> bool:
    """Whether ``producer``'s commit record holds the key that ``config`` gives it now:
    its outputs were made from this config's settings and these inputs, not by an earlier
    config (nor copied in with another run's record). ``any_version``: or the key of an
    earlier :data:`NUMERICS_VERSION` (results of an older gprpipe, still this config's:
    to compare or export them, not to compute on)."""
    return bool(_committed_key_matches(producer, config, versions(any_version)))


def made_with_other_settings(producer: Task, config: Config) -> bool:
    """Whether ``producer``'s commit record holds a key other than the one ``config`` gives
    it now. False when nothing is committed (``verify_inputs`` says so) or when that key
    cannot be computed here: an input of the producer is not at hand (a container mounts
    only its own task's inputs)."""
    return _committed_key_matches(producer, config, (NUMERICS_VERSION,)) is False


def output_of(
    path: Path,
    config: Config,
    made: Mapping[Path, Task] | None = None,
    digests: dict[Path, str] | None = None,
    *,
    older: bool = True,
) -> bool:
    """Whether the output ``path`` of a point folder was made by ``config``: the task that
    writes it under ``config`` (``made``: the point's producers, if already planned)
    committed it with the key it has now, and so did every task upstream of it.
    ``digests``: input digests a caller checking several outputs shares between calls.
    ``older``: a key of an earlier :data:`NUMERICS_VERSION` counts too (results of an
    older gprpipe, still this config's: to compare or export them)."""
    from gprpipe.pipeline.plan import producers

    if made is None:
        made = producers(path.parent.name, path.parent, config)
    return outputs_of([path], config, made, digests, older=older)


def outputs_of(
    paths: Iterable[Path],
    config: Config,
    made: Mapping[Path, Task],
    digests: dict[Path, str] | None = None,
    *,
    older: bool = True,
) -> bool:
    """:func:`output_of` of every path, each task and input digest checked once (the data
    file of a point is hashed once, not once per output drawn from it)."""
    made_here: dict[str, bool] = {}  # a producer of one of the paths (its key must match)
    seen: dict[str, bool] = {}  # an upstream task (a key not computable here passes)
    digests = {} if digests is None else digests
    versions_ok = versions(older)
    for path in paths:
        producer = made.get(path)
        if producer is None:
            return False
        if producer.id not in made_here:
            made_here[producer.id] = key_current(
                producer, config, versions_ok, digests
            ) and _upstream_current(producer, config, made, seen, digests, versions_ok)
        if not made_here[producer.id]:
            return False
    return True


def _upstream_current(
    task: Task,
    config: Config,
    made: Mapping[Path, Task],
    seen: dict[str, bool],
    digests: dict[Path, str],
    versions: tuple[int, ...],
) -> bool:
    """Whether every task upstream of ``task`` (that writes one of its inputs, and so on back
    to the data files) holds the key ``config`` gives it now. A task's key holds its
    inputs' keys, so the task that wrote a file vouches for its direct inputs only: after a
    changed data file with only load and fit rerun, the limit merge still matches its
    parts, which were made from the earlier fit. An upstream task with nothing committed
    (it was stopped or failed after it cleared its record) counts against it; a key that
    cannot be computed here (an input not at hand: a container mounts only its own task's
    inputs) does not. ``digests``: the inputs' digests, each taken once per check;
    ``versions``: the NUMERICS_VERSIONs whose keys count."""
    for p in task.inputs:
        up = made.get(Path(p))
        if up is None or up.id == task.id:
            continue
        if up.id not in seen:
            seen[up.id] = True  # (a cycle cannot occur: plan order is topological)
            seen[up.id] = _committed_key_matches(
                up, config, versions, digests, uncommitted=False
            ) is not False and _upstream_current(up, config, made, seen, digests, versions)
        if not seen[up.id]:
            return False
    return True


def vouched_for(path: Path | str, config: Config | None = None) -> Path:
    """:func:`~gprpipe.pipeline.commit.vouched` (intact, committed), and made by the
    point's config (``config``, else its ``config.toml``): an output of an earlier config,
    or one copied in with another run's commit record, is refused with a GprpipeError."""
    from gprpipe.config import point_config_from_file

    path = vouched(path)
    where = path.parent / "config.toml"
    if not output_of(path, config or point_config_from_file(where)):
        raise GprpipeError(
            f"{path}: made with other settings or inputs than the point's config "
            f"({where}); run the point again to recompute it."
        )
    return path
