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

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gprpipe.errors import GprpipeError, PartlySubmitted, cli_command
from gprpipe.executors.base import (
    THREAD_ENV,
    Executor,
    Hooks,
    Outcome,
    RunReport,
    TaskStatus,
    register,
)
from gprpipe.executors.slurm import scheduler
from gprpipe.executors.slurm.jobs import (
    SlurmSubmission,
    elements,
    job_ids,
    job_ids_by_task,
    job_names,
    jobs_path,
    load_jobs,
    next_number,
    record,
)
from gprpipe.executors.slurm.reconcile import (
    HELD,
    QUEUED,
    busy,
    finished,
    reconcile,
    unanswered,
)
from gprpipe.executors.slurm.render import (
    JOBS_FILE,
    PINNED,
    RUN_ENV,
    Engine,
    SlurmOptions,
    SlurmScript,
    group_name,
    render_scripts,
    sbatch_quote,
    task_log,
)
from gprpipe.executors.slurm.scheduler import NO_SBATCH, max_array_size
from gprpipe.io.atomic import atomic_write_text, inside
from gprpipe.pipeline.cache import up_to_date
from gprpipe.pipeline.commit import clear_commit
from gprpipe.pipeline.state import clear_state, read_state, unmarkable, write_state
from gprpipe.pipeline.task import Task

if TYPE_CHECKING:
    from gprpipe.config.schema import Config
    from gprpipe.engines.base import Engine as BaseEngine

# seconds to wait for a marker after SLURM reports the element ended (shared file systems
# such as NFS may show a file written on a compute node to the login node only later)
MARKER_GRACE = 20.0


def own_job(run_dir: Path, env: Mapping[str, str]) -> bool:
    """Whether a process of ``env`` is a task of a job that a run of ``run_dir`` submitted,
    not a shell of ``salloc`` or an ``srun`` typed by hand, where SLURM sets a job id too
    (a review): its job script names the folder (resolved here, on the node that runs
    it), or jobs.json records its job (the jobs of an older gprpipe, whose scripts name
    none; a job may start before its run records it, hence the script's word first)."""
    if not env.get("SLURM_JOB_ID"):
        return False
    named = env.get(RUN_ENV)
    if named and os.path.realpath(named) == os.path.realpath(run_dir):
        return True
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
    try:
        return job in job_ids(run_dir)
    except GprpipeError:  # a damaged jobs.json proves nothing (an salloc shell ran so)
        return False


def refuse_beside_jobs(
    run_dir: Path, why: str = "a task run by hand beside it would write the same outputs"
) -> None:
    """Refuse a task run by hand (or, saying ``why``, an export) while a job of the folder
    is queued or running: a SLURM run holds the folder's lock only while it submits, and
    both would clear, write and commit the task's outputs (a review)."""
    if not jobs_path(run_dir).is_file() or not scheduler.installed():
        return
    queue = scheduler.queue(job_ids(run_dir), run_dir)
    if queue is None:  # SLURM does not answer: a job without a finished marker may run
        open_ = [
            f"{j}_{i}" for t, (j, i, _) in elements(run_dir).items() if not finished(run_dir, t)
        ]
        if open_:
            raise GprpipeError(unanswered(f"job {open_[0]}", run_dir))
        return
    live = sorted(e for e, v in queue.items() if v.state in scheduler.ACTIVE)
    if live:
        raise GprpipeError(
            f"{run_dir} is in use by SLURM job {live[0]} of its run: {why}; wait for it, "
            f"or cancel the run's jobs with: {cli_command('cancel', run_dir)}"
        )


# seconds without an answer from squeue before wait() gives up
UNREACHABLE_TIMEOUT = 120.0
#: seconds between the questions of a wait whether SLURM holds every job it waits for
HELD_CHECK = 30.0


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM (``gprpipe cancel``) take effect once the block (one sbatch and
    the record of its job id) has ended: an sbatch interrupted after SLURM took its job
    would leave a job that runs while neither the run nor ``gprpipe cancel`` knows of it.
    (Python handles signals in the main thread only; elsewhere nothing is deferred.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {k: signal.signal(k, lambda n, _f: got.append(n)) for k in kinds}
    ended = False
    try:
        yield
        ended = True
    finally:
        for k, handler in previous.items():
            signal.signal(k, handler if handler is not None else signal.SIG_DFL)
    if got and ended:  # (after a failed submission its error is what the caller sees)
        signal.raise_signal(got[0])


def _submit(
    kind: str,
    tasks: Sequence[Task],
    *,
    run_dir: Path,
    engine: Engine,
    options: SlurmOptions,
    env: Mapping[str, str],
    dry_run: bool,
) -> SlurmSubmission:
    run_dir = Path(run_dir).absolute()
    if not dry_run and shutil.which("sbatch") is None:
        raise GprpipeError(NO_SBATCH)
    scripts = render_scripts(
        tasks,
        run_dir=run_dir,
        engine=engine,
        options=options,
        env=env,
        first_number=next_number(run_dir),
        check_paths=not dry_run,
        max_array_size=max_array_size(),
    )
    sub = SlurmSubmission(run_dir=run_dir, scripts=scripts, dry_run=dry_run)
    if not scripts:
        return sub
    # dependencies outside this submission that are still queued (e.g. rerun during a run),
    # asked before anything is written: without SLURM's answer there is no dependency
    submitted = {tid for s in scripts for tid in s.task_ids}
    outside_deps = {d for t in tasks for d in t.deps if d not in submitted}
    external: dict[str, str] = {}
    if outside_deps and not dry_run:
        latest = elements(run_dir)
        wanted = {d: f"{latest[d][0]}_{latest[d][1]}" for d in outside_deps if d in latest}
        queue = scheduler.queue(sorted({e.split("_")[0] for e in wanted.values()}), run_dir)
        if queue is None:  # a dependency's job may still run unless its task finished
            open_ = sorted(d for d in wanted if not finished(run_dir, d))
            if open_:
                which = f"job {wanted[open_[0]]} of task {open_[0]}"
                also = ", and the tasks to submit would not wait for it"
                raise GprpipeError(unanswered(which, run_dir, also))
            queue = {}
        external = {
            d: e
            for d, e in wanted.items()
            if queue.get(e, ("", None))[0] in scheduler.PENDING | scheduler.RUNNING
        }
    for folder in (run_dir / "slurm", run_dir / "slurm" / "logs"):
        inside(folder, run_dir, "the run's SLURM folder", run_dir=True)
    (run_dir / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    for s in scripts:  # (SLURM's logs hold the job id, %A: no earlier file is at their names)
        atomic_write_text(s.path, s.text)
        s.path.chmod(0o755)

    by_task = {t.id: t for t in tasks}

    def dependency(s: SlurmScript, job_ids: Mapping[str, str]) -> str | None:
        ids = [job_ids.get(a, f"<{a}>") for a in s.after]
        ids += sorted(
            {external[d] for tid in s.task_ids for d in by_task[tid].deps if d in external}
        )
        return "afterany:" + ":".join(ids) if ids else None

    def clear(script: SlurmScript) -> None:
        # stale markers, so an old done/failed never stands for this attempt, and the
        # commit records: each task recomputes its outputs, and until it has they are not
        # fresh (a job cancelled before it starts leaves them so)
        for tid in script.task_ids:
            t = by_task[tid]
            clear_state(t.point_dir, t.slug)
            clear_commit(t)

    t0 = time.perf_counter()
    cleared = False
    try:  # (SlurmExecutor.check has asked sbatch about the [slurm] settings already)
        for i, s in enumerate(scripts):
            dep = dependency(s, sub.job_ids)
            if dep:
                sub.dependencies[s.name] = dep
            if dry_run:
                continue
            clear(s)  # before sbatch: the job may start at once and write its own
            cleared = True
            try:
                # an interrupt (KeyboardInterrupt) comes once the job id is on record; the
                # scripts after it are not submitted
                with _signals_deferred():
                    sub.job_ids[s.name] = scheduler.sbatch(s.path, dep, run_dir)
                    record(run_dir, kind, sub, options)
            except KeyboardInterrupt:
                for later in scripts[i + 1 :]:  # (as below)
                    clear(later)
                raise
            except GprpipeError as exc:
                # the later scripts' tasks read what this submission redoes: no earlier
                # done may stand for them either
                for later in scripts[i + 1 :]:
                    clear(later)
                if not sub.job_ids:
                    raise
                done = ", ".join(f"{k} (job {v})" for k, v in sub.job_ids.items())
                raise PartlySubmitted(
                    f"{exc}; already submitted: {done}; cancel them with: "
                    f"scancel {' '.join(sub.job_ids.values())}"
                ) from None
    finally:
        sub.seconds = time.perf_counter() - t0
        if sub.job_ids or dry_run or cleared:  # (cleared: its tasks now have no element)
            record(run_dir, kind, sub, options)
    return sub


def submit(
    tasks: Sequence[Task],
    *,
    run_dir: Path,
    engine: Engine,
    options: SlurmOptions,
    env: Mapping[str, str],
    dry_run: bool = False,
) -> SlurmSubmission:
    """Write one sbatch script per group into ``RUN_DIR/slurm/`` and submit them, chained.

    ``dry_run`` writes the scripts and records them in ``jobs.json`` (as a preview that the
    next real submission replaces) without calling ``sbatch``.
    """
    return _submit(
        "submit", tasks, run_dir=run_dir, engine=engine, options=options, env=env, dry_run=dry_run
    )


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


def resubmit(
    selected: Sequence[str] | Sequence[Task],
    *,
    tasks: Sequence[Task] | None = None,
    run_dir: Path,
    engine: Engine,
    options: SlurmOptions,
    env: Mapping[str, str],
    dry_run: bool = False,
    with_dependents: bool = True,
) -> SlurmSubmission:
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
            raise GprpipeError(
                f"task {b.id} is still {b.state} in SLURM (job {b.job}); "
                f"wait for it or cancel it with: scancel {b.job}"
            )
    return _submit(
        "resubmit",
        chosen,
        run_dir=run_dir,
        engine=engine,
        options=options,
        env=env,
        dry_run=dry_run,
    )


def poll_details(run_dir: Path, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
    """State of every task, from its markers and its latest array element in SLURM."""
    return reconcile(run_dir, tasks, grace=MARKER_GRACE, held=True)[0]


def poll(run_dir: Path, tasks: Sequence[Task]) -> dict[str, str]:
    """Task id -> pending | running | done | failed."""
    return {tid: s.state for tid, s in poll_details(run_dir, tasks).items()}


def wait(
    run_dir: Path,
    tasks: Sequence[Task],
    *,
    progress: Callable[[dict[str, str]], object] | None = None,
    interval: float = 2.0,
    first: float = 0.25,
    held_check: float = HELD_CHECK,
) -> bool:
    """Block until no task is pending or running in SLURM; True if every task is done.
    Raise when nothing of the run can start by itself: each queued task held by SLURM or
    waiting on a held job, none running (asked every ``held_check`` seconds while only
    queued jobs remain, :func:`_refuse_all_held`).

    ``progress`` is called with :func:`poll`'s result (task id -> state) after every poll.
    The queue is polled after ``first`` seconds, then 1.5 times later each time up to every
    ``interval`` seconds: a short run is seen finished soon, a long one does not query
    ``squeue`` more often than before.
    """
    unreachable_since: float | None = None
    asked = time.monotonic()  # when SLURM was last asked about holds
    pause = min(first, interval)
    while True:
        details, reachable = reconcile(run_dir, tasks, grace=MARKER_GRACE)
        if progress is not None:
            progress({tid: st.state for tid, st in details.items()})
        if reachable:
            active = [s for s in details.values() if s.active]
            if not active:
                return all(s.state == "done" for s in details.values())
            unreachable_since = None
            if time.monotonic() - asked >= held_check and all(s.message == QUEUED for s in active):
                asked = time.monotonic()
                _refuse_all_held(run_dir, tasks)
        else:
            # every task's marker says it ended: no job is left to wait for, whatever
            # SLURM answers (it waited out UNREACHABLE_TIMEOUT and failed; a review)
            if all(s.state in ("done", "failed") for s in details.values()):
                return all(s.state == "done" for s in details.values())
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_TIMEOUT:
                raise GprpipeError(
                    f"SLURM did not answer (squeue) for {UNREACHABLE_TIMEOUT:.0f}"
                    f" s; the jobs may still run: check with "
                    f"{cli_command('status', run_dir)}"
                )
        time.sleep(pause)
        pause = min(pause * 1.5, interval)


def _job_of(status: TaskStatus) -> str:
    """The SLURM job id of a task's array element ("123" of "123_4"; '' when none)."""
    return (status.job or "").split("_")[0]


def _refuse_all_held(run_dir: Path, tasks: Sequence[Task]) -> None:
    """Raise when nothing of the run can start again by itself: each task still queued in
    SLURM is held, or waits on a dependency (the arrays after a held one), and no job of
    the run's folder runs (an earlier submission's may be what one waits for)."""
    details = reconcile(run_dir, tasks, grace=MARKER_GRACE, held=True)[0]
    waiting = [s for s in details.values() if s.active]
    held = [s for s in waiting if s.message.startswith(HELD)]
    if not held:
        return
    if rest := [s for s in waiting if not s.message.startswith(HELD)]:
        reasons = scheduler.pending_reasons(sorted({_job_of(s) for s in rest} - {""}))
        if not all(reasons.get(s.job or "", "").startswith("Dependency") for s in rest):
            return
        queue = scheduler.queue(list(job_names(run_dir)), run_dir)
        if queue is None or any(v.state in scheduler.RUNNING for v in queue.values()):
            return
    jobs = sorted({_job_of(s) for s in held} - {""}, key=lambda j: (len(j), j))
    first = held[0]
    after = f", {len(rest)} after them waiting on them" if rest else ""
    raise GprpipeError(
        f"SLURM holds jobs this run waits for ({len(held)} task{'s' * (len(held) != 1)}"
        f"{after}; {first.id}: {first.message}): nothing of it can start, so --wait ends "
        f"here and the jobs stay queued; release them (scontrol release {' '.join(jobs)}) "
        f"and follow the run with {cli_command('status', run_dir)}, or remove them with "
        f"{cli_command('cancel', run_dir)}"
    )


#: the marker message of a task whose array element was cancelled before it started
CANCELLED_PENDING = "cancelled before it started (gprpipe cancel); rerun --failed runs it"


def cancel(run_dir: Path, tasks: Sequence[Task] = ()) -> list[str]:
    """``scancel`` the run's jobs that still have an element queued or running (every job
    of its submissions where SLURM does not answer); returns their ids. A task of ``tasks``
    whose element was still pending is marked failed at once: it will never start, and
    status says so without waiting for SLURM (an element that was running ends by itself
    and is then reconciled)."""
    names = job_names(run_dir)
    ids = list(names)
    queue = scheduler.queue(ids, run_dir)
    if queue is None:
        scheduler.scancel(ids, names)
        return ids
    live = {e.split("_")[0] for e, v in queue.items() if v.state in scheduler.ACTIVE}
    element = job_ids_by_task(run_dir)
    pending = [
        t
        for t in tasks
        if t.id in element and queue.get(element[t.id], ("", None))[0] in scheduler.PENDING
    ]
    cancelled = sorted(live, key=int)
    scheduler.scancel(cancelled, names)
    if pending:
        # an element that started between the two calls was cancelled while running: it
        # ends by itself and is reconciled. SLURM lists it with a batch host (an end
        # time); the elements of an array that never started are one record (filed as
        # its element 0) or none
        after = scheduler.queue(cancelled, run_dir) or {}
        pending = [t for t in pending if after.get(element[t.id], ("", None))[1] is None]
    for t in pending:
        if not unmarkable(run_dir, t.point_dir) and read_state(t.point_dir, t.slug)[0] not in (
            "done",
            "failed",
        ):
            write_state(t.point_dir, t.slug, "failed", CANCELLED_PENDING)
    return cancelled


def options_of(config: Config) -> SlurmOptions:
    """The ``[slurm]`` section of a config as :class:`SlurmOptions`."""
    s = config.slurm
    return SlurmOptions(
        partition=s.partition,
        account=s.account,
        qos=s.qos,
        time=s.time,
        memory=s.memory,
        cpus_per_task=s.cpus_per_task,
        max_parallel=s.max_parallel,
        extra=tuple(s.extra),
    )


@register
class SlurmExecutor(Executor):
    """Tasks as SLURM job arrays chained by dependencies (settings: ``[slurm]``);
    :meth:`submit` returns once they are queued."""

    name = "slurm"
    blocking = False

    def __init__(self, run_dir: Path, engine: BaseEngine, options: SlurmOptions) -> None:
        super().__init__(run_dir, engine)
        self.options = options

    @classmethod
    def from_config(
        cls, run_dir: Path, engine: BaseEngine, config: Config, **overrides: object
    ) -> SlurmExecutor:
        return cls(run_dir, engine, options_of(config))

    def submit(
        self,
        tasks: Sequence[Task],
        *,
        configs: dict[str, Config] | None = None,
        force: Sequence[str] | bool = False,
        resubmit: bool = False,
        hooks: Hooks | None = None,
    ) -> RunReport:
        """Queue ``tasks``; with ``configs`` (a new run), those already up to date are
        marked cached and not submitted (their jobs would only find that out)."""
        forced = {t.id for t in tasks} if force is True else set(force or ())
        notice = hooks.on_notice if hooks else None
        cached = [] if resubmit or configs is None else up_to_date(tasks, configs, forced, notice)
        for t in cached:
            write_state(t.point_dir, t.slug, "done", "cached")
        skipped = {t.id for t in cached}
        rest = [t for t in tasks if t.id not in skipped]
        rest = [replace(t, argv=(*t.argv, "--force")) if t.id in forced else t for t in rest]
        fn = globals()["resubmit"] if resubmit else submit
        job_ids: dict[str, str] = {}
        if rest:
            sub = fn(
                rest, run_dir=self.run_dir, engine=self.engine, options=self.options, env=THREAD_ENV
            )
            job_ids = dict(sub.job_ids)
        return RunReport(outcomes={t.id: Outcome("cached") for t in cached}, job_ids=job_ids)

    @classmethod
    def poll_run(cls, run_dir: Path, tasks: Sequence[Task]) -> dict[str, TaskStatus]:
        return poll_details(run_dir, tasks)

    def wait(
        self, tasks: Sequence[Task], progress: Callable[[dict[str, str]], object] | None = None
    ) -> bool:
        ok = wait(self.run_dir, tasks, progress=progress)
        poll(self.run_dir, tasks)  # writes failed markers for lost array elements
        return ok

    def cancel(self, tasks: Sequence[Task] = ()) -> list[str]:
        return cancel(self.run_dir, tasks)

    def check(self) -> None:
        """``sbatch`` is here and takes the ``[slurm]`` settings (``sbatch --test-only`` of
        a script holding them, outside the run folder): a run or rerun refused for them has
        written nothing (its config, run.json, scripts or markers)."""
        if shutil.which("sbatch") is None:
            raise GprpipeError(NO_SBATCH)
        import tempfile

        from gprpipe.executors.slurm.render import resource_directives

        text = "\n".join(["#!/bin/bash", *resource_directives(self.options), "true", ""])
        with tempfile.TemporaryDirectory(prefix="gprpipe-sbatch-") as tmp:
            script = Path(tmp) / "slurm-settings.sbatch"
            script.write_text(text, encoding="utf-8")
            scheduler.test_only(script, Path(tmp))

    def refuse_if_busy(self, tasks: Sequence[Task], *, others: bool = True) -> None:
        """A SLURM run holds its lock only while it submits: refuse while its jobs are
        queued."""
        if not jobs_path(self.run_dir).is_file() or not scheduler.installed():
            return  # (no SLURM here: no job of this machine's cluster can be queued)
        # one question to SLURM: every job of the folder (the tasks' are among them)
        queue = scheduler.queue(job_ids(self.run_dir), self.run_dir)
        why = busy(self.run_dir, tasks, queue, grace=MARKER_GRACE, others=others)
        if why:
            raise GprpipeError(why)

    def job_ids_by_task(self) -> dict[str, str]:
        return job_ids_by_task(self.run_dir)

    def preview(self, tasks: Sequence[Task]) -> str:
        scripts = render_scripts(
            tasks,
            run_dir=self.run_dir,
            engine=self.engine,
            options=self.options,
            env=THREAD_ENV,
            first_number=next_number(self.run_dir),  # as the submission would number them
            check_paths=False,
            max_array_size=max_array_size(),  # split as the submission would split them
        )
        return "\n".join(f"# ---- {s.name}\n{s.text}" for s in scripts)

    @property
    def owns_containers(self) -> bool:
        return False


__all__ = [
    "JOBS_FILE",
    "NO_SBATCH",
    "PINNED",
    "Engine",
    "SlurmExecutor",
    "SlurmOptions",
    "SlurmScript",
    "SlurmSubmission",
    "TaskStatus",
    "cancel",
    "dependents",
    "group_name",
    "job_ids",
    "job_ids_by_task",
    "job_names",
    "jobs_path",
    "load_jobs",
    "max_array_size",
    "options_of",
    "poll",
    "poll_details",
    "render_scripts",
    "resubmit",
    "sbatch_quote",
    "submit",
    "task_log",
    "wait",
]
