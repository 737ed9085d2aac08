"""SLURM executor: the plan as job arrays chained with dependencies.

Tasks are grouped by step (merge tasks, ``task.part == "merge"``, in their own group
``<step>-merge``); each group becomes one sbatch script ``RUN_DIR/slurm/<nn>_<group>.sbatch``,
an array with one element per task. A group waits (``--dependency=afterany``) for the groups
holding its tasks' dependencies: ``afterany`` rather than ``afterok`` because every task
checks its own inputs and fails fast with a clear message, so a failure never leaves
dependents pending forever. Job ids and the index -> task-id map are kept in
``RUN_DIR/slurm/jobs.json``.

Task state comes from the marker files the tasks write themselves
(:mod:`gprpipe.pipeline.state`) combined with ``squeue`` (``sacct`` only when the cluster
has accounting): an array element that left the queue without a done/failed marker
(killed, out of memory, over its time limit, node failure) is ``failed``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text
from gprpipe.pipeline.state import clear_state, read_state, state_dir, write_state
from gprpipe.pipeline.task import Task

NO_SBATCH = "no SLURM here: sbatch not found; submit from a login node or use --executor local"
JOBS_FILE = "jobs.json"
# one BLAS thread per task (as the local executor), and unbuffered output for live logs
PINNED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# seconds to wait for a marker after SLURM reports the element ended (shared file systems
# such as NFS may show a file written on a compute node to the login node only later)
MARKER_GRACE = 20.0
# seconds without an answer from squeue before wait() gives up
UNREACHABLE_TIMEOUT = 120.0

_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING",
            "STAGE_OUT", "STOPPED"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Engine(Protocol):
    """How a task's command runs (see :mod:`gprpipe.engines`)."""

    def command(self, task: Task, *, run_dir: Path, env: Mapping[str, str]) -> list[str]: ...


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
                raise GprpipeError(f"slurm.{name} must be one word such as '01:00:00' or '4G', "
                                   f"not {value!r}")
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
    log: Path | None = None  # SLURM output pattern (%a = array index)

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class SlurmSubmission:
    """What :func:`submit` / :func:`resubmit` did (or would do, with ``dry_run``)."""

    run_dir: Path
    scripts: list[SlurmScript]
    job_ids: dict[str, str] = field(default_factory=dict)  # script name -> job id
    dependencies: dict[str, str] = field(default_factory=dict)  # script name -> --dependency
    dry_run: bool = False
    seconds: float = 0.0  # wall time of the sbatch calls

    def text(self) -> str:
        """All scripts, each preceded by the sbatch command that submits it (for --dry-run)."""
        out = []
        for s in self.scripts:
            dep = self.dependencies.get(s.name)
            cmd = ["sbatch", "--parsable", *([f"--dependency={dep}"] if dep else []), str(s.path)]
            out.append(f"# {shlex.join(cmd)}\n{s.text}")
        return "\n".join(out)


@dataclass(frozen=True)
class TaskStatus:
    """State of one task as :func:`poll_details` sees it."""

    id: str
    state: str  # pending, running, done, failed
    message: str = ""
    job: str | None = None  # array element, e.g. "123_4"
    slurm_state: str | None = None  # squeue %T (or sacct) of that element, if known
    log: Path | None = None
    active: bool = False  # still pending/running in SLURM (wait() blocks on it)


# ---------------------------------------------------------------------------- rendering


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
    needs = {g: {where[d] for t in ts for d in t.deps if d in where} - {g}
             for g, ts in by_group.items()}
    for g, ts in by_group.items():
        inner = {t.id for t in ts}
        if any(d in inner for t in ts for d in t.deps):
            raise GprpipeError(f"tasks of group {g!r} depend on each other; "
                               "they cannot share one SLURM array")
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
        raise GprpipeError(f"{value!r} holds a control character and cannot be an sbatch "
                           "directive")
    if _SAFE_WORD.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _directive(option: str) -> str:
    """``#SBATCH <option>`` for one ``slurm.extra`` entry (``--x=y``, or ``#SBATCH --x=y``)."""
    option = option.strip().removeprefix("#SBATCH").strip()
    return f"#SBATCH {sbatch_quote(option)}"


def _output_pattern(path: Path) -> str:
    """``path`` as an sbatch filename pattern: ``%`` of the path doubled (``%a`` kept)."""
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


_RUN_FUNCTION = """\
set -o pipefail
trap 'echo "gprpipe: SIGTERM from SLURM (time limit or scancel)"' TERM
task() {  # task LOG MARKER COMMAND...: run a task, output to LOG (and to the SLURM log)
    local log=$1 marker=$2 code=0 why
    shift 2
    mkdir -p "$(dirname "$log")" "$(dirname "$marker")"
    rm -f -- "$log" "$marker.failed.tmp"  # replaced, never written through a symlink
    echo "gprpipe: ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname), log $log"
    "$@" 2>&1 | tee "$log" || code=$?
    if ((code != 0)) && [[ ! -e $marker.done && ! -e $marker.failed ]]; then
        # the task died before writing its marker (crash, out of memory, time limit)
        why="exit code $code"
        ((code > 128)) && why="$why (signal $((code - 128)))"
        why="$why without a done/failed marker"
        why="$why: $(tail -n 1 "$log" | tr -d '"\\\\\\n\\r' | tr -c '[:print:]' ' ' | cut -c 1-200)"
        printf '{"state": "failed", "time": %s, "host": "%s", "slurm_job": "%s", ' \\
            "$(date +%s)" "$(hostname)" "${SLURM_JOB_ID:-}" >"$marker.failed.tmp"
        printf '"message": "%s"}\\n' "$why" >>"$marker.failed.tmp"
        mv -f "$marker.failed.tmp" "$marker.failed"
        rm -f "$marker.running"
    fi
    return "$code"
}"""



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
        raise GprpipeError(f"run directory {str(run_dir)!r} holds a control character; "
                           "it cannot appear in a job script")
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
            pieces.append((group, members[j * size:(j + 1) * size], note))
    for k, (group, members, note) in enumerate(pieces):
        number = first_number + k
        name = f"{number:02d}_{group}"
        after = tuple(dict.fromkeys(
            a for t in members for d in t.deps
            if d in where and where[d] != group for a in names_of[where[d]]
        ))
        names_of.setdefault(group, []).append(name)
        log = slurm_dir / "logs" / f"{name}_%a.out"
        array = f"0-{len(members) - 1}"
        if options.max_parallel is not None:
            array += f"%{options.max_parallel}"
        q = sbatch_quote
        lines = [
            "#!/bin/bash",
            f"#SBATCH {q(f'--job-name=gprpipe-{group}')}",
            f"#SBATCH --array={array}",
            f"#SBATCH {q(f'--output={_output_pattern(log)}')}",
            f"#SBATCH {q(f'--time={options.time}')}",
            f"#SBATCH {q(f'--mem={options.memory}')}",
            f"#SBATCH --cpus-per-task={int(options.cpus_per_task)}",
        ]
        for key in ("partition", "account", "qos"):
            value = getattr(options, key)
            if value:
                lines.append(f"#SBATCH {q(f'--{key}={value}')}")
        lines += [_directive(x) for x in options.extra]
        # a comment, after the directives (sbatch stops reading them at the first command)
        lines.append(f"# gprpipe: group {group}{note}, {len(members)} task(s)"
                     + (f", after {', '.join(after)}" if after else "")
                     + f"; index -> task id in {slurm_dir / JOBS_FILE}")
        lines += _env_lines(env)
        lines.append(f"cd {shlex.quote(str(run_dir))} || exit 1")
        lines.append(_RUN_FUNCTION)
        lines.append('case "$SLURM_ARRAY_TASK_ID" in')
        for i, t in enumerate(members):
            kw = {} if check_paths else {"check_paths": False}
            cmd = engine.command(t, run_dir=run_dir, env=env, **kw)
            prefix = "".join(f"{k}={shlex.quote(str(v))} " for k, v in t.env.items()
                             if _ENV_NAME.match(k))
            base = state_dir(t.point_dir) / t.slug
            lines.append(f"    {i}) {prefix}task {shlex.quote(str(task_log(t)))} "
                         f"{shlex.quote(str(base))} {shlex.join(cmd)} ;;")
        lines.append('    *) echo "gprpipe: no task for array index $SLURM_ARRAY_TASK_ID" >&2; '
                     "exit 2 ;;")
        lines.append("esac")
        lines.append("exit $?")
        scripts.append(SlurmScript(
            number=number, group=group, path=slurm_dir / f"{name}.sbatch",
            text="\n".join(lines) + "\n", task_ids=tuple(t.id for t in members),
            after=after, log=log,
        ))
    return scripts


# ---------------------------------------------------------------------------- jobs.json


def jobs_path(run_dir: Path) -> Path:
    return Path(run_dir) / "slurm" / JOBS_FILE


def load_jobs(run_dir: Path) -> dict:
    """Content of ``RUN_DIR/slurm/jobs.json`` (an empty record when there is none)."""
    p = jobs_path(run_dir)
    if not p.exists():
        return {"format": 1, "submissions": []}
    try:
        data = json.loads(p.read_text())
    except ValueError as exc:
        raise GprpipeError(f"{p} is not valid JSON ({exc})") from None
    data.setdefault("submissions", [])
    return data


def _elements(run_dir: Path) -> dict[str, tuple[str, int, Path | None]]:
    """Task id -> (job id, array index, SLURM log) of its latest submission."""
    out: dict[str, tuple[str, int, Path | None]] = {}
    for sub in load_jobs(run_dir).get("submissions", []):
        if sub.get("dry_run"):
            continue
        for job in sub.get("jobs", []):
            jid = job.get("job_id")
            if not jid:
                continue
            log = job.get("log")
            for i, tid in enumerate(job.get("tasks", [])):
                path = Path(run_dir) / log.replace("%a", str(i)) if log else None
                out[tid] = (str(jid), i, path)
    return out


def _record(run_dir: Path, kind: str, sub: SlurmSubmission, options: SlurmOptions) -> None:
    data = load_jobs(run_dir)
    # a real submission replaces the preview of earlier dry runs
    data["submissions"] = [s for s in data["submissions"] if not s.get("dry_run")]
    run_dir = Path(run_dir).absolute()
    data["run_dir"] = str(run_dir)
    jobs = []
    for s in sub.scripts:
        jobs.append({
            "script": str(s.path.relative_to(run_dir)),
            "group": s.group,
            "job_id": sub.job_ids.get(s.name),
            "array": f"0-{len(s.task_ids) - 1}",
            "after": list(s.after),
            "dependency": sub.dependencies.get(s.name),
            "log": str(s.log.relative_to(run_dir)) if s.log else None,
            "tasks": list(s.task_ids),
        })
    data["submissions"].append({
        "kind": kind,
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "dry_run": sub.dry_run,
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in asdict(options).items()},
        "jobs": jobs,
    })
    atomic_write_text(jobs_path(run_dir), json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------- submission


def _next_number(run_dir: Path) -> int:
    subs = load_jobs(run_dir)["submissions"]
    return 1 + sum(len(s.get("jobs", [])) for s in subs if not s.get("dry_run"))


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices must stay below it); SLURM's default 1001."""
    try:
        res = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=30)
        m = re.search(r"^MaxArraySize\s*=\s*(\d+)", res.stdout, re.M)
        if res.returncode == 0 and m and int(m.group(1)) > 0:
            return int(m.group(1))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return 1001


def _sbatch(script: Path, dependency: str | None, cwd: Path) -> str:
    cmd = ["sbatch", "--parsable"]
    if dependency:
        cmd.append(f"--dependency={dependency}")
    cmd.append(str(script))
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise GprpipeError(NO_SBATCH) from None
    except subprocess.TimeoutExpired:
        raise GprpipeError(f"sbatch did not answer within 120 s for {script.name}") from None
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        raise GprpipeError(f"sbatch refused {script.name}: {why}")
    job_id = res.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise GprpipeError(f"sbatch gave no job id for {script.name} (output {res.stdout!r})")
    return job_id


def _submit(kind: str, tasks: Sequence[Task], *, run_dir: Path, engine: Engine,
            options: SlurmOptions, env: Mapping[str, str], dry_run: bool) -> SlurmSubmission:
    run_dir = Path(run_dir).absolute()
    if not dry_run and shutil.which("sbatch") is None:
        raise GprpipeError(NO_SBATCH)
    scripts = render_scripts(tasks, run_dir=run_dir, engine=engine, options=options, env=env,
                             first_number=_next_number(run_dir), check_paths=not dry_run,
                             max_array_size=max_array_size())
    sub = SlurmSubmission(run_dir=run_dir, scripts=scripts, dry_run=dry_run)
    if not scripts:
        return sub
    (run_dir / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    for s in scripts:
        atomic_write_text(s.path, s.text)
        s.path.chmod(0o755)

    # dependencies outside this submission that are still queued (e.g. rerun during a run)
    inside = {tid for s in scripts for tid in s.task_ids}
    outside_deps = {d for t in tasks for d in t.deps if d not in inside}
    external: dict[str, str] = {}
    if outside_deps and not dry_run:
        elements = _elements(run_dir)
        wanted = {d: f"{elements[d][0]}_{elements[d][1]}" for d in outside_deps if d in elements}
        queue = _queue(sorted({e.split("_")[0] for e in wanted.values()})) or {}
        external = {d: e for d, e in wanted.items()
                    if queue.get(e, ("", None))[0] in _PENDING | _RUNNING}
    by_task = {t.id: t for t in tasks}

    def dependency(s: SlurmScript, job_ids: Mapping[str, str]) -> str | None:
        ids = [job_ids.get(a, f"<{a}>") for a in s.after]
        ids += sorted({external[d] for tid in s.task_ids for d in by_task[tid].deps
                       if d in external})
        return "afterany:" + ":".join(ids) if ids else None

    t0 = time.perf_counter()
    try:
        for s in scripts:
            dep = dependency(s, sub.job_ids)
            if dep:
                sub.dependencies[s.name] = dep
            if dry_run:
                continue
            # clear stale markers first, so an old done/failed never stands for this attempt
            for tid in s.task_ids:
                t = by_task[tid]
                clear_state(t.point_dir, t.slug)
            try:
                sub.job_ids[s.name] = _sbatch(s.path, dep, run_dir)
            except GprpipeError as exc:
                if not sub.job_ids:
                    raise
                done = ", ".join(f"{k} (job {v})" for k, v in sub.job_ids.items())
                raise GprpipeError(f"{exc}; already submitted: {done}; cancel them with: "
                                   f"scancel {' '.join(sub.job_ids.values())}") from None
    finally:
        sub.seconds = time.perf_counter() - t0
        if sub.job_ids or dry_run:
            _record(run_dir, kind, sub, options)
    return sub


def submit(tasks: Sequence[Task], *, run_dir: Path, engine: Engine, options: SlurmOptions,
           env: Mapping[str, str], dry_run: bool = False) -> SlurmSubmission:
    """Write one sbatch script per group into ``RUN_DIR/slurm/`` and submit them, chained.

    ``dry_run`` writes the scripts and records them in ``jobs.json`` (as a preview that the
    next real submission replaces) without calling ``sbatch``.
    """
    return _submit("submit", tasks, run_dir=run_dir, engine=engine, options=options, env=env,
                   dry_run=dry_run)


def dependents(tasks: Sequence[Task], task_ids: Sequence[str]) -> list[Task]:
    """The named tasks and every task downstream of them, in plan order."""
    chosen = set(task_ids)
    changed = True
    while changed:  # plan order is normally topological; loop anyway for safety
        changed = False
        for t in tasks:
            if t.id not in chosen and chosen.intersection(t.deps):
                chosen.add(t.id)
                changed = True
    return [t for t in tasks if t.id in chosen]


def resubmit(selected: Sequence[str] | Sequence[Task], *, tasks: Sequence[Task] | None = None,
             run_dir: Path, engine: Engine, options: SlurmOptions, env: Mapping[str, str],
             dry_run: bool = False, with_dependents: bool = True) -> SlurmSubmission:
    """Submit new arrays over exactly the selected tasks (plus, by default, their dependents).

    ``selected`` holds task ids, looked up in ``tasks`` (the whole plan, which also gives the
    dependents), or Task objects, submitted as they are (plus their dependents in ``tasks``
    when it is given). Indices are mapped anew; ``jobs.json`` gets a new submission, which
    from now on stands for these tasks. Refused while one of them is still queued.
    """
    given = [t for t in selected if isinstance(t, Task)]
    ids = [t.id if isinstance(t, Task) else str(t) for t in selected]
    plan = list(tasks) if tasks is not None else given
    if given:  # the caller's versions (e.g. with --force) replace the plan's
        mine = {t.id: t for t in given}
        plan = [mine.pop(t.id, t) for t in plan] + list(mine.values())
    known = {t.id for t in plan}
    unknown = [tid for tid in ids if tid not in known]
    if unknown:
        raise GprpipeError(f"no task {unknown[0]!r} in the plan of {run_dir}")
    chosen = dependents(plan, ids) if with_dependents else [t for t in plan if t.id in set(ids)]
    if not dry_run:
        busy = [s for s in poll_details(run_dir, chosen).values() if s.active]
        if busy:
            b = busy[0]
            raise GprpipeError(f"task {b.id} is still {b.state} in SLURM (job {b.job}); "
                               f"wait for it or cancel it with: scancel {b.job}")
    return _submit("resubmit", chosen, run_dir=run_dir, engine=engine, options=options,
                   env=env, dry_run=dry_run)


# ---------------------------------------------------------------------------- state


def _queue(job_ids: Sequence[str]) -> dict[str, tuple[str, float | None]] | None:
    """Array element ("123_4") -> (squeue state, end time); None when SLURM cannot answer."""
    if not job_ids:
        return {}
    if shutil.which("squeue") is None:
        return None
    cmd = ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %T %e"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        if "Invalid job id" in res.stderr:
            return {}  # every one of these jobs has left the controller's memory
        return None
    out: dict[str, tuple[str, float | None]] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        end = None
        if len(parts) > 2 and parts[2] not in ("N/A", "Unknown", "NONE"):
            try:
                end = datetime.fromisoformat(parts[2]).timestamp()
            except ValueError:
                end = None
        element = parts[0] if "_" in parts[0] else f"{parts[0]}_0"
        out[element] = (parts[1].rstrip("+"), end)
    return out


def _sacct(job_ids: Sequence[str]) -> dict[str, str]:
    """Array element -> final state from accounting, or {} where there is none."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    cmd = ["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if res.returncode != 0:
        return {}
    out = {}
    for line in res.stdout.splitlines():
        jid, _, state = line.partition("|")
        if "_" in jid and "[" not in jid:
            out[jid] = state.split()[0] if state else ""
    return out


def poll_details(run_dir: Path, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
    """State of every task, from its markers and its latest array element in SLURM."""
    return _poll(run_dir, tasks)[0]


def _poll(run_dir: Path, tasks: Sequence[Task]) -> tuple[dict[str, TaskStatus], bool]:
    """(:func:`poll_details`, whether SLURM answered or was not needed)."""
    elements = _elements(run_dir)
    mine = {t.id: elements[t.id] for t in tasks if t.id in elements}
    queue = _queue(sorted({jid for jid, _, _ in mine.values()}, key=int))
    now = time.time()
    result: dict[str, TaskStatus] = {}
    lost: list[str] = []
    for t in tasks:
        marker_state, message = read_state(t.point_dir, t.slug)
        if t.id not in mine:
            result[t.id] = TaskStatus(t.id, marker_state, message, log=task_log(t))
            continue
        jid, idx, slurm_log = mine[t.id]
        element = f"{jid}_{idx}"
        log = task_log(t) if task_log(t).exists() else slurm_log
        common = {"job": element, "log": log}
        if queue is None:  # SLURM does not answer: report what the markers say
            result[t.id] = TaskStatus(t.id, marker_state, message, **common)
            continue
        sstate, end = queue.get(element, (None, None))
        if sstate in _PENDING:
            result[t.id] = TaskStatus(t.id, "pending", "", slurm_state=sstate, active=True,
                                      **common)
        elif sstate in _RUNNING:
            # markers were cleared at submission: a done/failed one is from this attempt
            state = marker_state if marker_state in ("done", "failed") else "running"
            result[t.id] = TaskStatus(t.id, state, message if state == "failed" else "",
                                      slurm_state=sstate, active=state == "running", **common)
        elif marker_state in ("done", "failed"):
            result[t.id] = TaskStatus(t.id, marker_state, message, slurm_state=sstate,
                                      **common)
        elif sstate is not None and end is not None and now - end < MARKER_GRACE:
            # ended moments ago: give a shared file system time to show the marker
            result[t.id] = TaskStatus(t.id, "running", "", slurm_state=sstate, active=True,
                                      **common)
        else:
            lost.append(t.id)
            result[t.id] = TaskStatus(t.id, "failed", "", slurm_state=sstate, **common)
    if lost:
        by_id = {t.id: t for t in tasks}
        final = _sacct(sorted({mine[tid][0] for tid in lost}, key=int))
        for tid in lost:
            st = result[tid]
            how = st.slurm_state or final.get(st.job or "")
            ended = f"ended {how}" if how else "left the queue"
            last = _last_line(st.log)
            msg = (f"SLURM job {st.job} {ended} without a done/failed marker "
                   f"(killed, out of memory or over its time limit?)"
                   + (f": {last}" if last else "") + f"; see {st.log}")
            result[tid] = TaskStatus(tid, "failed", msg, job=st.job, slurm_state=how or None,
                                     log=st.log)
            # persist the verdict, so marker-only readers (rerun --failed, the TUI) see it
            with contextlib.suppress(OSError):
                write_state(by_id[tid].point_dir, by_id[tid].slug, "failed", msg)
    return result, queue is not None


def _last_line(path: Path | None) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines() if path else []
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def job_ids_by_task(run_dir: Path) -> dict[str, str]:
    """Task id -> array element ("123_4") of its latest submission, from jobs.json."""
    return {tid: f"{jid}_{i}" for tid, (jid, i, _) in _elements(run_dir).items()}


def poll(run_dir: Path, tasks: Sequence[Task]) -> dict[str, str]:
    """Task id -> pending | running | done | failed."""
    return {tid: s.state for tid, s in poll_details(run_dir, tasks).items()}


def wait(run_dir: Path, tasks: Sequence[Task], *,
         progress: Callable[[dict[str, str]], object] | None = None,
         interval: float = 2.0) -> bool:
    """Block until no task is pending or running in SLURM; True if every task is done.

    ``progress`` is called with :func:`poll`'s result (task id -> state) after every poll.
    """
    unreachable_since: float | None = None
    while True:
        details, reachable = _poll(run_dir, tasks)
        if progress is not None:
            progress({tid: st.state for tid, st in details.items()})
        if reachable:
            if not any(s.active for s in details.values()):
                return all(s.state == "done" for s in details.values())
            unreachable_since = None
        else:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_TIMEOUT:
                raise GprpipeError(f"SLURM did not answer (squeue) for {UNREACHABLE_TIMEOUT:.0f}"
                                   f" s; the jobs may still run: check with "
                                   f"gprpipe status {run_dir}")
        time.sleep(interval)
