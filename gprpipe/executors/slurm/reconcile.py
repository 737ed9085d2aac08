"""State reconciliation: a task's state from its markers (:mod:`gprpipe.pipeline.state`)
and its latest array element in SLURM. An element that left the queue without a
done/failed marker (killed, out of memory, over its time limit, node failure) is
``failed``, and that verdict is written as its marker."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from gprpipe.errors import GprpipeError, cli_command
from gprpipe.executors.base import TaskStatus
from gprpipe.executors.slurm import jobs, scheduler
from gprpipe.executors.slurm.render import task_log
from gprpipe.io.atomic import check_within
from gprpipe.io.processes import alive, as_pid
from gprpipe.pipeline.state import read_state, read_state_marker, unmarkable, write_state
from gprpipe.pipeline.task import Task, slug_of


def reconcile(
    run_dir: Path,
    tasks: Sequence[Task],
    *,
    grace: float,
    queue: Mapping[str, scheduler.Listed] | Literal["ask"] | None = "ask",
    held: bool = False,
) -> tuple[dict[str, TaskStatus], bool]:
    """State of every task and whether SLURM answered (or was not needed); an
    element that ended less than ``grace`` seconds ago is still running (its marker may
    not be visible yet on a shared file system). ``queue``: :func:`scheduler.queue`'s
    answer for (at least) the tasks' jobs when the caller has it, else it is asked.
    ``held``: also ask which queued jobs SLURM holds (a second squeue, for the readers
    that show it: status, summary, the TUI; not the polls of a wait)."""
    elements = jobs.elements(run_dir)
    mine = {t.id: elements[t.id] for t in tasks if t.id in elements}
    if queue == "ask":
        queue = scheduler.queue(sorted({jid for jid, _, _ in mine.values()}, key=int), run_dir)
    now = time.time()
    result: dict[str, TaskStatus] = {}
    lost: list[str] = []
    for t in tasks:
        marker_state, info = read_state_marker(t.point_dir, t.slug)
        message = str(info.get("message", ""))
        if t.id not in mine:
            result[t.id] = TaskStatus(t.id, marker_state, message, log=task_log(t))
            continue
        jid, idx, slurm_log = mine[t.id]
        element = f"{jid}_{idx}"
        log = task_log(t) if task_log(t).exists() else slurm_log
        common = TaskStatus(t.id, marker_state, message, job=element, log=log)
        if queue is None:  # SLURM does not answer: report what the markers say
            unknown = marker_state not in ("done", "failed")
            result[t.id] = replace(common, message=UNANSWERED) if unknown else common
            continue
        sstate, end, start = queue.get(element) or (None, None, None)
        if sstate in scheduler.PENDING:
            result[t.id] = replace(
                common, state="pending", message=QUEUED, slurm_state=sstate, active=True
            )
        elif sstate in scheduler.RUNNING:
            # markers were cleared at submission: a done/failed one is this attempt's,
            # unless written before it started (a requeued element's earlier attempt:
            # shown failed while it ran again, a review)
            finished = marker_state in ("done", "failed")
            if finished and start is not None:
                finished = _marker_time(info) >= start
            state = marker_state if finished else "running"
            result[t.id] = replace(
                common,
                state=state,
                message=message if state == "failed" else "",
                slurm_state=sstate,
                active=state == "running",
            )
        elif marker_state in ("done", "failed"):
            result[t.id] = replace(common, slurm_state=sstate)
        elif marker_state == "running" and (pid := _run_by_hand(info)) is not None:
            # no job of the run: a live process of this host runs the task (`gprpipe step`
            # by hand, also in a shell of salloc; or a job's task that outlived its job):
            # running, not lost (its marker was once rewritten failed: a review)
            job = str(info.get("slurm_job") or "")
            where = (
                f"SLURM_JOB_ID {job}, while no element of the run's queue runs it"
                if job
                else "outside SLURM"
            )
            result[t.id] = replace(
                common,
                state="running",
                message=f"run by process {pid} of this host, {where}",
                slurm_state=sstate,
                active=True,
                by_hand=pid,
            )
        elif sstate is not None and end is not None and now - end < grace:
            # ended moments ago: give a shared file system time to show the marker
            result[t.id] = replace(
                common, state="running", message="", slurm_state=sstate, active=True
            )
        else:
            lost.append(t.id)
            result[t.id] = replace(common, state="failed", message="", slurm_state=sstate)
    pending = [st for st in result.values() if st.message == QUEUED] if held else []
    if pending:  # one more question, only while jobs wait: are they held?
        reasons = scheduler.held(sorted({(st.job or "").split("_")[0] for st in pending}))
        for st in pending:
            if st.job in reasons:
                result[st.id] = replace(st, message=held_message(st.job, reasons[st.job]))
    if lost:
        by_id = {t.id: t for t in tasks}
        final = scheduler.sacct(sorted({mine[tid][0] for tid in lost}, key=int), run_dir)
        for tid in lost:
            st = result[tid]
            how = st.slurm_state or final.get(st.job or "")
            ended = f"ended {how}" if how else "left the queue"
            slurm_log = mine[tid][2]  # SLURM's own words (CANCELLED DUE TO TIME LIMIT) are there
            refused = _last_line(slurm_log) if _inside(slurm_log, run_dir) else ""
            if refused.startswith("gprpipe: ") and refused.endswith(REFUSED):
                # the job's bash ran nothing (a link in the run's folders; it cannot write
                # a marker there): its reason, not a task log of an earlier attempt
                msg = f"SLURM job {st.job} ran nothing: {refused[9:]}; see {slurm_log}"
            else:
                last = _last_line(st.log) if _inside(st.log, run_dir) else ""
                also = f" and {slurm_log}" if slurm_log and slurm_log != st.log else ""
                msg = (
                    f"SLURM job {st.job} {ended} without a done/failed marker "
                    f"(killed, out of memory or over its time limit?)"
                    + (f": {last}" if last else "")
                    + f"; see {st.log}{also}"
                )
            if how in ("CANCELLED", None, "") and slurm_log is not None and not slurm_log.exists():
                # SLURM writes this attempt's log (a file of its own) when the element
                # starts; the task's log may be an earlier attempt's. Without accounting
                # (no sacct) the queue alone cannot say it was cancelled
                why = "was cancelled" if how else "left the queue (cancelled?)"
                msg = (
                    f"SLURM job {st.job} {why} before it started; it runs with: "
                    f"{cli_command('rerun', run_dir, '--failed')}"
                )
            result[tid] = TaskStatus(
                tid, "failed", msg, job=st.job, slurm_state=how or None, log=st.log
            )
            # persist the verdict, so marker-only readers (rerun --failed, the TUI) see it
            if not unmarkable(run_dir, by_id[tid].point_dir):
                with contextlib.suppress(OSError):
                    write_state(by_id[tid].point_dir, by_id[tid].slug, "failed", msg)
    return result, queue is not None


def _marker_time(info: Mapping[str, Any]) -> float:
    """When a marker (its JSON ``info``) was written (its own record; +inf when it says
    none: trusted as before)."""
    written = info.get("time")
    return float(written) if isinstance(written, (int, float)) else float("inf")


def _run_by_hand(info: Mapping[str, Any]) -> int | None:
    """The pid of the live process of this host that a task's ``running`` marker (its JSON
    ``info``) names, else None: asked once no element of the run runs the task, it runs
    the task by hand (outside SLURM or in an allocation of its own: both were judged lost,
    and a rerun started a second writer)."""
    if info.get("host") != socket.gethostname():
        return None
    if not alive(info.get("pid"), info.get("pid_started")):
        return None
    return as_pid(info.get("pid"))


def busy(
    run_dir: Path,
    tasks: Sequence[Task],
    queue: Mapping[str, scheduler.Listed] | None,
    *,
    grace: float,
    others: bool = True,
) -> str:
    """Why ``run_dir`` may not be run now, or "" when it may: a task of ``tasks`` whose
    job is queued or running, or (``others``) an active job of the folder that no task of
    ``tasks`` owns (an earlier config's run: it would write into the folder). ``queue``:
    :func:`scheduler.queue`'s answer for every job of the folder. A task's element that
    SLURM still lists as running after its done/failed marker was written (its script
    ending, the node's epilogue) is judged by its marker, not refused as a foreign job.
    ``queue`` None (SLURM does not answer): refused while a job of the folder may run, a
    task's element without a done/failed marker or (``others``) another run's such element; a
    second job for a task whose first may still run would write the same outputs."""
    details, _ = reconcile(run_dir, tasks, grace=grace, queue=queue)
    then = f"wait for it or cancel the run's jobs with: {cli_command('cancel', run_dir)}"
    if queue is None:  # SLURM does not answer: a job without a finished marker may still run
        unfinished = [s for s in details.values() if s.job and s.state not in ("done", "failed")]
        mine = {t.id for t in tasks}
        foreign = [
            e
            for tid, e in jobs.elements(run_dir).items()
            if tid not in mine and not finished(run_dir, tid)
        ]
        if unfinished or (others and foreign):
            which = (
                f"job {unfinished[0].job} of task {unfinished[0].id}"
                if unfinished
                else f"job {foreign[0][0]}_{foreign[0][1]} of an earlier run of the folder"
            )
            return unanswered(which, run_dir)
        return ""
    active = [s for s in details.values() if s.active]
    if active:
        b = active[0]
        if b.by_hand is not None:  # (a second writer beside it: a review)
            return f"{run_dir}: task {b.id} is {b.message}: wait for it to finish."
        return f"{run_dir} is in use by SLURM job {b.job} (task {b.id} is {b.state}): {then}"
    if not others:
        return ""
    judged = {s.job for s in details.values() if s.job}
    live = sorted(
        e for e, v in (queue or {}).items() if v.state in scheduler.ACTIVE and e not in judged
    )
    if live:
        return (
            f"{run_dir} is in use by SLURM job {live[0]} (queued by an earlier run of the "
            f"folder): {then}"
        )
    return ""


def unanswered(which: str, run_dir: Path, also: str = "") -> str:
    """The sentence of a run or rerun refused while squeue does not answer for ``which``
    job (``also``: what follows from it)."""
    return (
        f"SLURM does not answer (squeue): gprpipe cannot tell whether {which} still runs in "
        f"{run_dir}{also}; try again when squeue answers."
    )


def finished(run_dir: Path, task_id: str) -> bool:
    """Whether task ``task_id`` of the run (a task of any config of the folder) has a done
    or failed marker: its job ended."""
    point = task_id.partition("/")[0]
    return read_state(Path(run_dir) / point, slug_of(task_id))[0] in ("done", "failed")


#: how the job's bash (task.sh) ends the line that refuses to run a task
REFUSED = "the task does not run"
#: the message of a task whose job SLURM holds in its queue (pending, not started)
QUEUED = "queued in SLURM"


HELD = f"{QUEUED}, held"  # how the message of a held job's task starts


def held_message(job: str, reason: str) -> str:
    """The message of a task whose job SLURM holds: it waits for a release."""
    return (
        f"{HELD} ({reason}): it starts only once released (scontrol release "
        f"{job.split('_')[0]}) or cancelled"
    )


#: the message of a submitted, unfinished task while squeue does not answer
UNANSWERED = "SLURM does not answer (squeue): its job may be pending, running or ended"


def _inside(path: Path | None, run_dir: Path) -> bool:
    """Whether a log's file resolves inside the run directory: a log folder swapped for a
    link (the job then refuses to run) must not bring a file from elsewhere into status."""
    if path is None:
        return False
    try:
        check_within(path, run_dir)
    except GprpipeError:
        return False
    return True


def _last_line(path: Path | None) -> str:
    try:
        lines = (
            path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path else []
        )
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""
