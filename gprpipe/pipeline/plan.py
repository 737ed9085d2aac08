"""Plan: the DAG of tasks of every grid point, from rendered configs.

Per point: ``load``; ``fit`` and ``limit`` in mass chunks (``scan.chunk_size`` masses of
one dataset per task, plus ``combined`` chunks for the joint fit) each followed by a merge
(a dataset's limit chunk reads its own fit chunk, so it starts when that chunk is done;
the combined and toy chunks read the merged ``fit.h5``);
``inject`` one task per (dataset, injection mass) and a merge; ``plot``. With
``limit.global_toys`` the limit step also has chunks of whole-scan toys per dataset. The plan
depends only on the config, never on the executor, so local and SLURM runs compute the same
thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gprpipe.config.schema import STEPS, Config
from gprpipe.pipeline.task import Task, TaskLine
from gprpipe.results.schema import COMBINED
from gprpipe.units import mass_within

MERGE = "merge"


def mass_parts(config: Config) -> dict[str, tuple[str, np.ndarray]]:
    """Chunk name (``<dataset>-<k>``) -> (dataset or ``combined``, masses)."""
    size = config.scan.chunk_size
    parts: dict[str, tuple[str, np.ndarray]] = {}
    groups = [(n, config.test_masses(n)) for n in config.scanned()]
    groups.append((COMBINED, config.combined_masses()))
    for name, masses in groups:
        for k in range(0, len(masses), size):
            parts[f"{name}-{k // size:03d}"] = (name, masses[k : k + size])
    return parts


def inject_parts(config: Config) -> dict[str, tuple[str, float]]:
    """Injection part (``<dataset>-<MeV>``) -> (dataset or ``combined``, mass)."""
    parts: dict[str, tuple[str, float]] = {}
    names = list(config.scanned())
    if config.scan.combined and len(config.combined_masses()):
        names.append(COMBINED)
    for name in names:
        masses = config.combined_masses() if name == COMBINED else config.test_masses(name)
        lo, hi = (masses.min(), masses.max()) if len(masses) else (1.0, 0.0)
        for m in config.inject.masses:
            if mass_within(m, lo, hi):
                parts[f"{name}-{m * 1e3:g}MeV"] = (name, round(float(m), 9))  # as in files
    return parts


REFIT_TOYS_PER_TASK = 4  # GP-refit whole-scan toys per task (about 5 s per toy on 2015)


def toy_parts(config: Config) -> dict[str, tuple[str, str, int, int]]:
    """Part name -> (kind ``toys`` | ``refit``, dataset or ``combined``, first toy, end toy)."""
    lim = config.limit
    parts: dict[str, tuple[str, str, int, int]] = {}
    if lim.global_toys <= 0 or config.base.blind:  # the toys' mean is fitted on every bin
        return parts
    combined = [COMBINED] if len(config.combined_masses()) else []  # toy t of each, jointly
    for name in [*config.scanned(), *combined]:
        kinds = [("toys", lim.global_toys, lim.global_toys_chunk)]
        if name != COMBINED:  # the GP-refit toys: per dataset
            kinds.append(
                ("refit", min(lim.global_toys_refit, lim.global_toys), REFIT_TOYS_PER_TASK)
            )
        for kind, total, size in kinds:
            for k, start in enumerate(range(0, total, size)):
                parts[f"{name}-{kind}-{k:03d}"] = (kind, name, start, min(start + size, total))
    return parts


def toyscan_parts(config: Config) -> dict[str, tuple[int, int]]:
    """Toy-scan part (``<k>``) -> (first, end) index among the matching toy histograms."""
    ts = config.toyscan
    return {
        f"{k:03d}": (s, min(s + ts.chunk, ts.max_toys))
        for k, s in enumerate(range(0, ts.max_toys, ts.chunk))
    }


#: files of a run folder beside its point folders (a single-point run's folder is also its
#: point folder): the run record and the index of the points' reports
RUN_JSON = "run.json"
INDEX = "index.html"
#: a grid run's figures beside its index (glob patterns; one per dataset for the comparison)
GRID_FIGURES = ("grid_limits.png", "grid_compare_*.png")


@dataclass(frozen=True)
class Layout:
    """Files of one point folder (docs/design.md run-directory contract)."""

    point_dir: Path

    config = property(lambda self: self.point_dir / "config.toml")
    load = property(lambda self: self.point_dir / "load.h5")
    fit = property(lambda self: self.point_dir / "fit.h5")
    limit = property(lambda self: self.point_dir / "limit.h5")
    inject = property(lambda self: self.point_dir / "inject.h5")
    scan_csv = property(lambda self: self.point_dir / "scan.csv")
    inject_csv = property(lambda self: self.point_dir / "inject.csv")
    toyscan = property(lambda self: self.point_dir / "toyscan.h5")
    toyscan_csv = property(lambda self: self.point_dir / "toyscan.csv")
    toyscan_summary_csv = property(lambda self: self.point_dir / "toyscan_summary.csv")
    combination_csv = property(lambda self: self.point_dir / "combination.csv")
    allocation_csv = property(lambda self: self.point_dir / "allocation.csv")
    hepdata = property(lambda self: self.point_dir / "hepdata")
    hepdata_archive = property(lambda self: self.point_dir / "hepdata.tar.gz")
    plots = property(lambda self: self.point_dir / "plots")
    plot_manifest = property(lambda self: self.point_dir / "plots" / "manifest.json")
    logs = property(lambda self: self.point_dir / "logs")
    report = property(lambda self: self.point_dir / "report.html")

    def tables(self) -> tuple[Path, ...]:
        """The CSV tables the steps write in the point folder itself."""
        return (
            self.scan_csv,
            self.inject_csv,
            self.toyscan_csv,
            self.toyscan_summary_csv,
            self.combination_csv,
            self.allocation_csv,
        )

    def products(self) -> tuple[Path, ...]:
        """What the plot step writes in the point folder itself (beside plots/ and
        hepdata/)."""
        return (self.combination_csv, self.allocation_csv, self.hepdata_archive)

    def files(self) -> tuple[Path, ...]:
        """Every file a run (of any config) may keep in the point folder itself."""
        outputs = (self.load, self.fit, self.limit, self.inject, self.toyscan)
        return (self.config, *outputs, *self.tables(), self.report, self.hepdata_archive)

    def part(self, step: str, part: str) -> Path:
        return self.point_dir / "parts" / step / f"{part}.h5"


def _task(point: str, point_dir: Path, step: str, part: str | None, **kw: Any) -> Task:
    tid = f"{point}/{step}" + (f"/{part}" if part else "")
    argv = TaskLine(step, point_dir, part, tid).argv()
    return Task(id=tid, point=point, step=step, point_dir=point_dir, argv=argv, part=part, **kw)


def plan_point(point: str, point_dir: Path, config: Config) -> list[Task]:
    """Tasks of one point, in a valid execution order."""
    lay = Layout(point_dir)
    steps = config.steps.run
    tasks: list[Task] = []
    sources = tuple(Path(config.datasets[n].path) for n in config.scanned())
    ids: dict[str, str] = {}

    def add(t: Task) -> Task:
        tasks.append(t)
        return t

    if "load" in steps:
        ids["load"] = add(
            _task(point, point_dir, "load", None, inputs=sources, outputs=(lay.load,))
        ).id

    def chunked(
        step: str,
        inputs: tuple[Path, ...],
        deps: tuple[str, ...],
        parts: Mapping[str, tuple[str, Any]],
        own: Mapping[str, tuple[tuple[Path, ...], tuple[str, ...]]] | None = None,
    ) -> None:
        """Chunk tasks of ``step`` reading ``inputs`` after ``deps`` (``own``: other
        inputs and deps for some parts), and their merge."""
        part_tasks = []
        for part, (_, masses) in parts.items():
            ms = tuple(float(m) for m in np.atleast_1d(masses))
            ins, ds = (own or {}).get(part, (inputs, deps))
            part_tasks.append(
                add(
                    _task(
                        point,
                        point_dir,
                        step,
                        part,
                        inputs=ins,
                        outputs=(lay.part(step, part),),
                        deps=ds,
                        masses=ms,
                    )
                )
            )
        outs = {
            "fit": (lay.fit,),
            "limit": (lay.limit, lay.scan_csv),
            "inject": (lay.inject, lay.inject_csv),
            "toyscan": (lay.toyscan, lay.toyscan_csv, lay.toyscan_summary_csv),
        }[step]
        merged = add(
            _task(
                point,
                point_dir,
                step,
                MERGE,
                inputs=tuple(t.outputs[0] for t in part_tasks),
                outputs=outs,
                deps=tuple(t.id for t in part_tasks),
            )
        )
        ids[step] = merged.id

    def dep(*names: str) -> tuple[str, ...]:
        return tuple(ids[n] for n in names if n in ids)

    parts = mass_parts(config)
    fit_parts = {p: v for p, v in parts.items() if v[0] != COMBINED}
    if "fit" in steps:
        chunked("fit", (lay.load,), dep("load"), fit_parts)
    if "limit" in steps:
        toys = {p: (d, np.array([])) for p, (_, d, _, _) in toy_parts(config).items()}
        # a dataset's limit chunk reads the fit chunk of the same name (the same masses)
        # and waits for it alone; combined and toy chunks read the merged fit.h5
        fitted = "fit" in steps
        own = {
            p: (
                (lay.load, lay.part("fit", p)),
                (*dep("load"), *([f"{point}/fit/{p}"] if fitted else [])),
            )
            for p in fit_parts
        }
        chunked("limit", (lay.load, lay.fit), dep("load", "fit"), {**parts, **toys}, own)
    if "inject" in steps and config.inject.masses:
        ip = {p: (d, np.array([m])) for p, (d, m) in inject_parts(config).items()}
        # background histograms are read from the dataset's file: an input (a container
        # mounts it; its digest is in the task's key)
        reads = {
            p: ((lay.load, lay.fit, Path(config.datasets[d].path)), dep("load", "fit"))
            for p, (d, _) in ip.items()
            if config.inject.background == "histograms" and d in config.datasets
        }
        chunked("inject", (lay.load, lay.fit), dep("load", "fit"), ip, reads)
    if "toyscan" in steps and config.toyscan.file:
        tp = {p: ("toyscan", np.array([])) for p in toyscan_parts(config)}
        chunked("toyscan", (Path(config.toyscan.file),), (), tp)
    if "plot" in steps:
        made = ("load", "fit", "limit", "inject", "toyscan")
        # every file the figures, tables and report read: what this run makes, and what
        # earlier runs left (``--steps plot``); their digests are in the plot task's key,
        # and a damaged one (a hand-edited scan.csv) is refused before the plot runs
        inputs = tuple(
            p
            for s, paths in (
                ("load", (lay.load,)),
                ("fit", (lay.fit,)),
                ("limit", (lay.limit, lay.scan_csv)),
                ("inject", (lay.inject, lay.inject_csv)),
                ("toyscan", (lay.toyscan, lay.toyscan_csv, lay.toyscan_summary_csv)),
            )
            for p in paths
            if s in ids or p.is_file()
        )
        add(
            _task(
                point,
                point_dir,
                "plot",
                None,
                inputs=inputs,
                outputs=(lay.plot_manifest,),
                deps=tuple(ids[s] for s in made if s in ids),
            )
        )
    return tasks


def producers(point: str, point_dir: Path, config: Config) -> dict[Path, Task]:
    """Output path -> the task that writes it, over every step (whatever ``steps.run``
    selects: a task reading an output of a step left out of this run still verifies it)."""
    every = config.model_copy(deep=True)
    every.steps.run = list(STEPS)  # type: ignore[arg-type]
    return {p: t for t in plan_point(point, point_dir, every) for p in t.outputs}


def stale_outputs(point: str, point_dir: Path, config: Config) -> set[Path]:
    """The step outputs of the point folder that ``config`` does not make (whatever
    ``steps.run`` selects): an ``inject.h5`` left by an earlier config with injection
    masses, when this one has none. Figures, tables and reports must not show them."""
    lay = Layout(point_dir)
    made = producers(point, point_dir, config)
    every = [lay.load, lay.fit, lay.limit, lay.scan_csv, lay.inject, lay.inject_csv]
    every += [lay.toyscan, lay.toyscan_csv, lay.toyscan_summary_csv]
    return {p for p in every if p not in made}


def find_task(tasks: Iterable[Task], task_id: str) -> Task | None:
    return next((t for t in tasks if t.id == task_id), None)


def downstream(tasks: Sequence[Task], selected: Iterable[str]) -> list[Task]:
    """``selected`` tasks and every task that depends on them, in plan order."""
    chosen = set(selected)
    for t in tasks:  # plan order is topological
        if chosen.intersection(t.deps):
            chosen.add(t.id)
    return [t for t in tasks if t.id in chosen]
