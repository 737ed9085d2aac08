"""SLURM script rendering: the plan as sbatch scripts, one job array per group of tasks.

Tasks are grouped by step (merge tasks, ``task.part == "merge"``, in their own group
``<step>-merge``); each group becomes one script ``RUN_DIR/slurm/<nn>_<group>.sbatch``, an
array with one element per task, whose bash function (``task.sh`` beside this module)
runs the task and records a failed marker (:func:`gprpipe.pipeline.state.shell_write_failed`)
when it died before writing its own.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Protocol

from gprpipe.config.checks import slurm_log_folder_problem
from gprpipe.errors import GprpipeError
from gprpipe.executors.base import THREAD_ENV
from gprpipe.executors.slurm.scheduler import JOB_NAME_PREFIX
from gprpipe.pipeline.state import marker_stem, shell_write_failed
from gprpipe.pipeline.task import Task

#: the job store's file name, in RUN_DIR/slurm/
JOBS_FILE = "jobs.json"
# one BLAS thread per task (as the local executor), and unbuffered output for live logs
PINNED = {**THREAD_ENV, "PYTHONUNBUFFERED": "1"}
#: set by the job scripts of a run to its folder (the path the script changes into): a
#: task process of the run's jobs, which the check of tasks run by hand beside a run lets
#: through, unlike a shell of ``salloc`` or an ``srun`` typed by hand, where SLURM sets a
#: job id too
RUN_ENV = "GPRPIPE_SLURM_RUN"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Engine(Protocol):
    """How a task's command runs (see :mod:`gprpipe.engines`)."""

    def command(self, task: Task, *, run_dir: Path, env: Mapping[str, str]) -> list[str]: ...

    def stop_command(self, argv: Iterable[str]) -> list[str] | None: ...


@dataclass(frozen=True)
class SlurmOptions:
    """``[slurm]`` settings of one submission."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "01:00:00"
    memory: str = "4G"
    cpus_per_task: int = 1
    max_parallel: int | None = None  # the P of --array=0-N%P
    extra: tuple[str, ...] = ()  # raw directives: "--constraint=avx2" or "#SBATCH ..."

    def __post_init__(self) -> None:
        if self.cpus_per_task < 1:
            raise GprpipeError(f"slurm.cpus_per_task must be >= 1, not {self.cpus_per_task}")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise GprpipeError(f"slurm.max_parallel must be >= 1, not {self.max_parallel}")
        for name in ("time", "memory"):
            value = getattr(self, name)
            if not value or any(c.isspace() for c in value):
                raise GprpipeError(
                    f"slurm.{name} must be one word such as '01:00:00' or '4G', not {value!r}"
                )
        object.__setattr__(self, "extra", tuple(self.extra))


@dataclass(frozen=True)
class SlurmScript:
    """One rendered sbatch script: an array over the tasks of one group."""

    number: int
    group: str
    path: Path  # RUN_DIR/slurm/<nn>_<group>.sbatch
    text: str
    task_ids: tuple[str, ...]  # array index -> task id
    after: tuple[str, ...] = ()  # names (<nn>_<group>) of the scripts it waits for
    log: Path | None = None  # SLURM output pattern (%A = the array's job id, %a its index)

    @property
    def name(self) -> str:
        return self.path.stem


def group_name(task: Task) -> str:
    """``<step>``, or ``<step>-merge`` for merge tasks."""
    return f"{task.step}-merge" if task.part == "merge" else task.step


def task_log(task: Task) -> Path:
    """Per-task log file (the same place as the local executor's)."""
    return task.log


def _groups(tasks: Sequence[Task]) -> list[tuple[str, list[Task]]]:
    """Tasks grouped by :func:`group_name`, groups ordered so dependencies come first."""
    by_group: dict[str, list[Task]] = {}
    for t in tasks:
        by_group.setdefault(group_name(t), []).append(t)
    where = {t.id: group_name(t) for t in tasks}
    needs = {
        g: {where[d] for t in ts for d in t.deps if d in where} - {g} for g, ts in by_group.items()
    }
    for g, ts in by_group.items():
        inner = {t.id for t in ts}
        if any(d in inner for t in ts for d in t.deps):
            raise GprpipeError(
                f"tasks of group {g!r} depend on each other; they cannot share one SLURM array"
            )
    ordered: list[str] = []
    while len(ordered) < len(by_group):
        ready = [g for g in by_group if g not in ordered and needs[g] <= set(ordered)]
        if not ready:
            raise GprpipeError("the SLURM groups of this plan depend on each other in a cycle")
        ordered.append(ready[0])  # first in plan order among the ready ones
    return [(g, by_group[g]) for g in ordered]


_SAFE_WORD = re.compile(r"[\w@%+=:,./-]+", re.ASCII)


def sbatch_quote(value: str) -> str:
    """``value`` as one argument of an ``#SBATCH`` line.

    sbatch splits directive lines at blanks, ends them at an unquoted ``#``, and reads
    ``\\`` as an escape even inside quotes: anything but a plain word is put in single
    quotes with backslashes and quotes escaped. Control characters cannot be quoted (a
    newline ends the directive and starts a shell line): they are refused.
    """
    if _CONTROL.search(value):
        raise GprpipeError(f"{value!r} holds a control character and cannot be an sbatch directive")
    if _SAFE_WORD.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resource_directives(options: SlurmOptions) -> list[str]:
    """The ``#SBATCH`` lines of the ``[slurm]`` settings (time, memory, CPUs, partition,
    account, qos, extra): the same in every script of a run."""
    q = sbatch_quote
    lines = [
        f"#SBATCH {q(f'--time={options.time}')}",
        f"#SBATCH {q(f'--mem={options.memory}')}",
        f"#SBATCH --cpus-per-task={int(options.cpus_per_task)}",
    ]
    for key in ("partition", "account", "qos"):
        value = getattr(options, key)
        if value:
            lines.append(f"#SBATCH {q(f'--{key}={value}')}")
    return lines + [_directive(x) for x in options.extra]


def _directive(option: str) -> str:
    """``#SBATCH <option>`` for one ``slurm.extra`` entry (``--x=y``, or ``#SBATCH --x=y``)."""
    option = option.strip().removeprefix("#SBATCH").strip()
    return f"#SBATCH {sbatch_quote(option)}"


def _output_pattern(path: Path) -> str:
    """``path`` as an sbatch filename pattern: ``%`` of the path doubled (``%A``, ``%a`` of
    the name kept). A backslash is refused (validation refuses it first)."""
    if why := slurm_log_folder_problem(str(path.parent)):
        raise GprpipeError(why)
    head, name = str(path.parent).replace("%", "%%"), path.name
    return f"{head}/{name}"


def _env_lines(env: Mapping[str, str]) -> list[str]:
    lines = ["export " + " ".join(f"{k}={v}" for k, v in PINNED.items())]
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise GprpipeError(f"invalid environment variable name {key!r} for SLURM tasks")
        if PINNED.get(key) != str(value):
            lines.append(f"export {key}={shlex.quote(str(value))}")
    return lines


@cache
def run_function() -> str:
    """The bash of every job script: ``task.sh`` (its comment header dropped) with the
    failed-marker lines of :mod:`gprpipe.pipeline.state`."""
    text = files("gprpipe.executors.slurm").joinpath("task.sh").read_text(encoding="utf-8")
    body = text[text.index("set -o pipefail") :].rstrip("\n")
    return body.replace("@WRITE_FAILED_MARKER@", shell_write_failed("$marker", "$why"))


def render_scripts(
    tasks: Sequence[Task],
    *,
    run_dir: Path,
    engine: Engine,
    options: SlurmOptions,
    env: Mapping[str, str],
    first_number: int = 1,
    check_paths: bool = True,
    max_array_size: int | None = None,
) -> list[SlurmScript]:
    """One sbatch script per group of ``tasks`` (an array over its tasks), dependencies first.

    A group larger than ``max_array_size`` (the cluster's MaxArraySize) is split into
    several consecutive scripts. ``check_paths=False`` (dry runs) is passed on to the
    engine, which then does not require its bind paths to exist yet.
    """
    run_dir = Path(run_dir).absolute()
    if _CONTROL.search(str(run_dir)):
        raise GprpipeError(
            f"run directory {str(run_dir)!r} holds a control character; "
            "it cannot appear in a job script"
        )
    slurm_dir = run_dir / "slurm"
    scripts: list[SlurmScript] = []
    names_of: dict[str, list[str]] = {}  # group -> its script names
    where = {t.id: group_name(t) for t in tasks}
    pieces: list[tuple[str, list[Task], str]] = []  # (group, tasks, note)
    for group, members in _groups(tasks):
        size = max_array_size or len(members)
        n = -(-len(members) // size)
        for j in range(n):
            note = f" (part {j + 1} of {n}: MaxArraySize is {max_array_size})" if n > 1 else ""
            pieces.append((group, members[j * size : (j + 1) * size], note))
    # a container does not see the job's variables: the CPUs the job asked for limit the
    # plot step's figure workers there as they do outside (``steps.plot.workers``)
    inside = {**env, "SLURM_CPUS_PER_TASK": str(int(options.cpus_per_task))}
    for k, (group, members, note) in enumerate(pieces):
        number = first_number + k
        name = f"{number:02d}_{group}"
        after = tuple(
            dict.fromkeys(
                a
                for t in members
                for d in t.deps
                if d in where and where[d] != group
                for a in names_of[where[d]]
            )
        )
        names_of.setdefault(group, []).append(name)
        # the job id in the name: a job of a run folder moved, and made anew by another run
        # at its path, opened (truncated) the new run's log of the same number (a review)
        log = slurm_dir / "logs" / f"{name}_%A_%a.out"
        array = f"0-{len(members) - 1}"
        if options.max_parallel is not None:
            array += f"%{options.max_parallel}"
        q = sbatch_quote
        lines = [
            "#!/bin/bash",
            f"#SBATCH {q(f'--job-name={JOB_NAME_PREFIX}{group}')}",
            f"#SBATCH --array={array}",
            f"#SBATCH {q(f'--output={_output_pattern(log)}')}",
            *resource_directives(options),
        ]
        # a comment, after the directives (sbatch stops reading them at the first command)
        lines.append(
            f"# gprpipe: group {group}{note}, {len(members)} task(s)"
            + (f", after {', '.join(after)}" if after else "")
            + f"; index -> task id in {slurm_dir / JOBS_FILE}"
        )
        lines += _env_lines(env)
        lines.append(f"export {RUN_ENV}={shlex.quote(str(run_dir))}")  # whose tasks these are
        lines.append(f"cd {shlex.quote(str(run_dir))} || exit 1")
        lines.append(  # named in the failed marker of a task SLURM stopped
            f"slurm_log={shlex.quote(str(log.parent / name))}"
            '_"$SLURM_ARRAY_JOB_ID"_"$SLURM_ARRAY_TASK_ID".out'
        )
        lines.append(run_function())
        lines.append("recorded || exit 1")
        lines.append('case "$SLURM_ARRAY_TASK_ID" in')
        for i, t in enumerate(members):
            kw = {} if check_paths else {"check_paths": False}
            cmd = engine.command(t, run_dir=run_dir, env=inside, **kw)
            prefix = "".join(
                f"{k}={shlex.quote(str(v))} " for k, v in t.env.items() if _ENV_NAME.match(k)
            )
            base = marker_stem(t.point_dir, t.slug)
            stop = engine.stop_command(cmd)  # run by the bash's SIGTERM trap
            arm = f"stop=({shlex.join(stop)}); " if stop else ""
            lines.append(
                f"    {i}) {arm}{prefix}task {shlex.quote(str(task_log(t)))} "
                f"{shlex.quote(str(base))} {shlex.join(cmd)} ;;"
            )
        lines.append(
            '    *) echo "gprpipe: no task for array index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;'
        )
        lines.append("esac")
        lines.append("exit $?")
        scripts.append(
            SlurmScript(
                number=number,
                group=group,
                path=slurm_dir / f"{name}.sbatch",
                text="\n".join(lines) + "\n",
                task_ids=tuple(t.id for t in members),
                after=after,
                log=log,
            )
        )
    return scripts
