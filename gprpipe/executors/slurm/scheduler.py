"""The SLURM scheduler client: ``sbatch``, ``squeue``, ``sacct``, ``scancel`` and
``scontrol``, each called with an argument list (never a shell) and a timeout."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from gprpipe.errors import GprpipeError

NO_SBATCH = "no SLURM here: sbatch not found; submit from a login node or use --executor local"
PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
RUNNING = {
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
ACTIVE = PENDING | RUNNING


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices must stay below it); SLURM's default 1001."""
    try:
        res = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        )
        m = re.search(r"^MaxArraySize\s*=\s*(\d+)", res.stdout, re.M)
        if res.returncode == 0 and m and int(m.group(1)) > 0:
            return int(m.group(1))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return 1001


_SBATCH_ERROR = re.compile(r"error|fatal|unrecognized|invalid", re.IGNORECASE)


def _sbatch(args: Sequence[str], script: Path, cwd: Path, hint: str = "", what: str = "") -> str:
    """Run ``sbatch ARGS SCRIPT``; its output, or one sentence naming the script (or
    ``what`` it holds) and ``hint`` when sbatch is missing, silent or refuses."""
    try:
        res = subprocess.run(  # (its own session: a Ctrl-C of the terminal is not its)
            ["sbatch", *args, str(script)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise GprpipeError(NO_SBATCH) from None
    except subprocess.TimeoutExpired:
        raise GprpipeError(
            f"sbatch did not answer within 120 s for {what or script.name}{hint}"
        ) from None
    if res.returncode != 0:
        # sbatch's reason: not the 'Try "sbatch --help"' line that may follow it, nor a
        # warning that may come first
        said = [x for x in res.stderr.strip().splitlines() if not x.startswith("Try ")]
        errors = [x for x in said if _SBATCH_ERROR.search(x) and "warning" not in x.lower()]
        why = (errors or said or [f"exit code {res.returncode}"])[0]
        raise GprpipeError(f"sbatch refused {what or script.name}: {why}{hint}")
    return res.stdout


def test_only(script: Path, cwd: Path) -> None:
    """Ask ``sbatch --test-only`` whether SLURM would take ``script`` (its partition,
    account, time, memory and extra options), submitting nothing: a run refused here has
    changed nothing in its folder."""
    hint = (
        " (nothing was submitted; check slurm.partition, slurm.account, slurm.qos, "
        "slurm.time, slurm.memory, slurm.cpus_per_task and slurm.extra)"
    )
    _sbatch(["--test-only"], script, cwd, hint, what="the [slurm] settings")


def sbatch(script: Path, dependency: str | None, cwd: Path) -> str:
    args = ["--parsable", *([f"--dependency={dependency}"] if dependency else [])]
    out = _sbatch(args, script, cwd)
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise GprpipeError(f"sbatch gave no job id for {script.name} (output {out!r})")
    return job_id


#: every job of a run is named so (``--job-name`` is refused in ``slurm.extra``): an id in a
#: run's ``jobs.json`` whose job has another name was reused by SLURM for someone else's
JOB_NAME_PREFIX = "gprpipe-"


def installed() -> bool:
    """Whether this machine has SLURM's client commands (squeue) at all."""
    return shutil.which("squeue") is not None


def pending_reasons(job_ids: Sequence[str]) -> dict[str, str]:
    """Array element ("123_4") -> SLURM's reason for each pending element of ``job_ids``
    (``Priority``, ``Dependency``, ``JobHeldUser``, ...). {} when none is pending, or SLURM
    does not answer."""
    if not job_ids or not installed():
        return {}
    cmd = ["squeue", "-h", "-r", "-t", "PENDING", "-j", ",".join(job_ids), "-o", "%i|%r"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in res.stdout.splitlines() if res.returncode == 0 else ():
        element, _, reason = (x.strip() for x in line.partition("|"))
        out[element if "_" in element else f"{element}_0"] = reason
    return out


def held(job_ids: Sequence[str]) -> dict[str, str]:
    """:func:`pending_reasons` of the elements that are held (``JobHeldAdmin``,
    ``JobHeldUser``, "launch failed requeued held"): they never start until released."""
    return {e: r for e, r in pending_reasons(job_ids).items() if "held" in r.lower()}


def _resolved(run_dir: Path) -> Path:
    try:
        return run_dir.resolve()
    except (OSError, RuntimeError):
        return run_dir


def _whose(workdir: str, run_dir: Path) -> bool:
    """A job submitted from ``workdir`` (squeue's ``%Z``, sacct's ``WorkDir``: every job
    of a run is submitted from its folder) is of the run in ``run_dir`` (resolved by the
    caller, once); an empty field (a scheduler that does not say) proves nothing against
    it."""
    if not workdir:
        return True
    try:
        return Path(workdir).resolve() == run_dir
    except (OSError, RuntimeError, ValueError):
        return False


class Listed(NamedTuple):
    """What ``squeue`` says of one array element: its state, and its end and start times
    (seconds since the epoch; None where SLURM gives none)."""

    state: str
    end: float | None
    start: float | None = None


def _time(field: str) -> float | None:
    if field in ("N/A", "Unknown", "NONE", ""):
        return None
    try:
        return datetime.fromisoformat(field).timestamp()
    except ValueError:
        return None


def queue(job_ids: Sequence[str], run_dir: Path) -> dict[str, Listed] | None:
    """Array element ("123_4") -> what squeue lists of it; None when SLURM cannot answer.

    An element cancelled before it started has no end time: it ran nothing, so no marker
    of it will appear (SLURM gives it the cancel time as start and end, but no batch
    host). Elements of jobs not named by gprpipe (an id SLURM gave again to another job
    after the run's left it), or not submitted from ``run_dir`` (the jobs.json of a run
    folder copied while its jobs were queued: its ``cancel`` cancelled the original's
    jobs, a review), are left out: they are not the run's."""
    if not job_ids:
        return {}
    if not installed():
        return None
    fields = "%i|%T|%e|%B|%j|%S|%Z"  # (the folder last: a path may hold a "|")
    cmd = ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-o", fields]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        if "Invalid job id" in res.stderr:
            return {}  # every one of these jobs has left the controller's memory
        return None
    out: dict[str, Listed] = {}
    folder = _resolved(run_dir)
    for line in res.stdout.splitlines():
        parts = line.split("|", 6)  # (an empty field stays a field)
        parts = [p.strip() for p in parts[:6]] + parts[6:]
        if len(parts) < 2:
            continue
        if len(parts) >= 5 and not parts[4].startswith(JOB_NAME_PREFIX):
            continue  # not a gprpipe job: its id was reused after the run's job left SLURM
        if len(parts) == 7 and not _whose(parts[6], folder):
            continue  # another folder's job (a copied jobs.json)
        state = parts[1].rstrip("+")
        end = _time(parts[2]) if len(parts) > 2 else None
        if state == "CANCELLED" and parts[3:4] in (["n/a"], [""]):
            end = None  # cancelled while pending
        start = _time(parts[5]) if len(parts) > 5 else None
        element = parts[0] if "_" in parts[0] else f"{parts[0]}_0"
        out[element] = Listed(state, end, start)
    return out


def sacct(job_ids: Sequence[str], run_dir: Path) -> dict[str, str]:
    """Array element -> final state from accounting, or {} where there is none (jobs of
    ``run_dir`` only, as :func:`queue`)."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    fields = "JobID,State,JobName,WorkDir"
    cmd = ["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", fields]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if res.returncode != 0:
        return {}
    out = {}
    folder = _resolved(run_dir)
    for line in res.stdout.splitlines():
        jid, _, rest = line.partition("|")
        state, _, rest = rest.partition("|")
        name, _, workdir = rest.partition("|")
        if name and not name.startswith(JOB_NAME_PREFIX):
            continue  # a reused id (see :func:`queue`)
        if not _whose(workdir, folder):
            continue  # another folder's job (see :func:`queue`)
        if "_" in jid and "[" not in jid:
            out[jid] = state.split()[0] if state else ""
    return out


#: scancel's error for a job id SLURM no longer knows (the job ended and was purged)
GONE = "Invalid job id specified"


def scancel(job_ids: Sequence[str], names: Mapping[str, str]) -> None:
    """Cancel these jobs (all their array elements), each only if it still has the name
    ``names`` gives it (``scancel --name``): an id SLURM reused for another job is left
    alone even when the queue could not be asked which ids are the run's (scancel then
    exits 0 having cancelled nothing: the ids are those asked for, not proof of a cancel).

    Newest job first: a job waits (``afterany``) only for jobs submitted before it, so
    each is cancelled while it still waits. Oldest first, a dependent whose dependencies
    had just been cancelled could start (on their freed CPUs) before its own scancel."""
    batches: list[tuple[str, list[str]]] = []
    for jid in sorted(job_ids, key=int, reverse=True):
        if batches and batches[-1][0] == names[jid]:
            batches[-1][1].append(jid)
        else:
            batches.append((names[jid], [jid]))
    for name, ids in batches:
        try:
            res = subprocess.run(
                ["scancel", f"--name={name}", *ids],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GprpipeError(f"scancel failed: {exc}") from None
        # an id that has left SLURM is no failure: exit code 0 while slurmctld still
        # remembers the job, "Invalid job id specified" (exit 1) once it has purged it
        errors = [x for x in res.stderr.strip().splitlines() if GONE not in x]
        if res.returncode != 0 and (errors or not res.stderr.strip()):
            why = (errors or [f"exit code {res.returncode}"])[-1]
            raise GprpipeError(
                f"scancel {' '.join(ids)} failed: {why}; the jobs may still be queued "
                "(squeue shows them)"
            )
