"""The SLURM job store ``RUN_DIR/slurm/jobs.json``: every submission's scripts, job ids
and array index -> task id maps."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gprpipe.errors import GprpipeError
from gprpipe.executors.slurm.render import JOBS_FILE, SlurmOptions, SlurmScript
from gprpipe.executors.slurm.scheduler import JOB_NAME_PREFIX
from gprpipe.io.atomic import atomic_write_text, read_json


@dataclass
class SlurmSubmission:
    """What :func:`submit` / :func:`resubmit` did (or would do, with ``dry_run``)."""

    run_dir: Path
    scripts: list[SlurmScript]
    job_ids: dict[str, str] = field(default_factory=dict)  # script name -> job id
    dependencies: dict[str, str] = field(default_factory=dict)  # script name -> --dependency
    dry_run: bool = False
    seconds: float = 0.0  # wall time of the sbatch calls
    recorded: bool = False  # in jobs.json already (its entry is replaced as it grows)

    def text(self) -> str:
        """All scripts, each preceded by the sbatch command that submits it (for --dry-run)."""
        out = []
        for s in self.scripts:
            dep = self.dependencies.get(s.name)
            cmd = ["sbatch", "--parsable", *([f"--dependency={dep}"] if dep else []), str(s.path)]
            out.append(f"# {shlex.join(cmd)}\n{s.text}")
        return "\n".join(out)


def jobs_path(run_dir: Path) -> Path:
    return Path(run_dir) / "slurm" / JOBS_FILE


def load_jobs(run_dir: Path) -> dict[str, Any]:
    """Content of ``RUN_DIR/slurm/jobs.json`` (an empty record when there is none, or when
    it records another folder's jobs: a copy of a run folder, whose jobs are not its own)."""
    p = jobs_path(run_dir)
    empty: dict[str, Any] = {"format": 1, "submissions": []}
    if not p.exists():
        return empty
    try:
        data = read_json(p)
    except ValueError as exc:
        raise GprpipeError(f"{p} is not valid JSON ({exc})") from None
    if not _well_formed(data):
        raise GprpipeError(f"{p} is not a record of SLURM submissions (edited or damaged)")
    assert isinstance(data, dict)
    data.setdefault("submissions", [])
    try:
        elsewhere = _elsewhere(data, run_dir)
    except (ValueError, OSError, RuntimeError):  # e.g. a NUL byte: no path
        raise GprpipeError(
            f"{p}: its run_dir is not a path (edited or damaged); remove the file once "
            "no job of this run is queued or running (squeue)"
        ) from None
    return empty if elsewhere else data


def _elsewhere(data: dict[str, Any], run_dir: Path) -> str | None:
    """The folder a jobs.json record names when another than ``run_dir`` (a copy of a run
    folder, or one moved while its jobs waited); None when it names none, or this one."""
    where = data.get("run_dir")
    if not where or Path(str(where)).resolve() == Path(run_dir).resolve():
        return None
    return str(where)


def recorded_elsewhere(run_dir: Path) -> tuple[str, list[str]] | None:
    """The folder whose jobs ``RUN_DIR/slurm/jobs.json`` records, when another than
    ``run_dir`` (:func:`_elsewhere`), and those jobs' ids; None otherwise (also for a file
    :func:`load_jobs` refuses)."""
    try:
        data = read_json(jobs_path(run_dir))
        where = _elsewhere(data, run_dir) if _well_formed(data) else None
    except (OSError, ValueError, RuntimeError):
        return None
    return None if where is None else (where, list(_job_names(data)))


def _well_formed(data: Any) -> bool:
    """The shape :func:`record` writes: submissions of jobs with a numeric id (or none, a
    dry run's), a log pattern and task ids."""
    if not isinstance(data, dict) or not isinstance(data.get("submissions", []), list):
        return False
    for sub in data.get("submissions", []):
        if not isinstance(sub, dict) or not isinstance(sub.get("jobs", []), list):
            return False
        for job in sub.get("jobs", []):
            if not isinstance(job, dict):
                return False
            jid, log, tasks = job.get("job_id"), job.get("log"), job.get("tasks", [])
            if jid is not None and not str(jid).isdigit():
                return False
            if log is not None and not isinstance(log, str):
                return False
            if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
                return False
    return True


def elements(run_dir: Path) -> dict[str, tuple[str, int, Path | None]]:
    """Task id -> (job id, array index, SLURM log) of its latest submission."""
    out: dict[str, tuple[str, int, Path | None]] = {}
    for sub in load_jobs(run_dir).get("submissions", []):
        if sub.get("dry_run"):
            continue
        for job in sub.get("jobs", []):
            jid = job.get("job_id")
            if not jid:  # sbatch refused it: its tasks have no element, not an earlier one
                for tid in job.get("tasks", []):
                    out.pop(tid, None)
                continue
            log = job.get("log")
            for i, tid in enumerate(job.get("tasks", [])):
                # absolute: it is named in failed markers, read from any folder
                name = log.replace("%A", str(jid)).replace("%a", str(i)) if log else None
                path = Path(run_dir).absolute() / name if name else None
                out[tid] = (str(jid), i, path)
    return out


def record(run_dir: Path, kind: str, sub: SlurmSubmission, options: SlurmOptions) -> None:
    data = load_jobs(run_dir)
    if sub.recorded and data["submissions"]:  # this submission's entry, recorded earlier
        data["submissions"].pop()
    # a real submission replaces the preview of earlier dry runs
    data["submissions"] = [s for s in data["submissions"] if not s.get("dry_run")]
    run_dir = Path(run_dir).absolute()
    data["run_dir"] = str(run_dir)
    jobs = []
    for s in sub.scripts:
        jobs.append(
            {
                "script": str(s.path.relative_to(run_dir)),
                "group": s.group,
                "job_id": sub.job_ids.get(s.name),
                "array": f"0-{len(s.task_ids) - 1}",
                "after": list(s.after),
                "dependency": sub.dependencies.get(s.name),
                "log": str(s.log.relative_to(run_dir)) if s.log else None,
                "tasks": list(s.task_ids),
            }
        )
    data["submissions"].append(
        {
            "kind": kind,
            "time": datetime.now().astimezone().isoformat(timespec="seconds"),
            "dry_run": sub.dry_run,
            "options": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()
            },
            "jobs": jobs,
        }
    )
    atomic_write_text(jobs_path(run_dir), json.dumps(data, indent=2) + "\n")
    sub.recorded = True


def next_number(run_dir: Path) -> int:
    subs = load_jobs(run_dir)["submissions"]
    return 1 + sum(len(s.get("jobs", [])) for s in subs if not s.get("dry_run"))


def job_ids_by_task(run_dir: Path) -> dict[str, str]:
    """Task id -> array element ("123_4") of its latest submission, from jobs.json."""
    return {tid: f"{jid}_{i}" for tid, (jid, i, _) in elements(run_dir).items()}


def job_ids(run_dir: Path) -> list[str]:
    """Every job id of the run's real submissions (oldest first, each once)."""
    return list(job_names(run_dir))


def job_names(run_dir: Path) -> dict[str, str]:
    """Job id -> the name its script gave it, for every job of the run's real submissions
    (oldest first)."""
    return _job_names(load_jobs(run_dir))


def _job_names(data: dict[str, Any]) -> dict[str, str]:
    """:func:`job_names` of a jobs.json record."""
    names: dict[str, str] = {}
    for sub in data.get("submissions", []):
        if sub.get("dry_run"):
            continue
        for j in sub.get("jobs", []):
            if j.get("job_id"):
                # (an id given again to a later submission: its name is the live one)
                names[str(j["job_id"])] = f"{JOB_NAME_PREFIX}{j.get('group', '')}"
    return names
