"""Security on a real SLURM cluster (``scripts/local-slurm.sh start``), as a user runs it.

- A run directory whose path holds a space, a quote, ``$(...)`` and ``%`` completes through
  sbatch (logs, markers and results land inside it; nothing is executed from the path; a
  link at a job log's name is replaced, not written through).
- A newline in ``slurm.partition`` is refused before anything is submitted: no job reaches
  the queue and no run directory is made.

Skipped when no cluster answers, except under CI=true (then a missing cluster fails).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_slurm, settings

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "user_configs" / "quickstart.toml"
pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def _cluster() -> None:
    require_slurm()


def gprpipe(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "gprpipe", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env=env,
    )


def queue() -> set[str]:
    """The queued and running jobs: id, name, working directory and batch script."""
    res = subprocess.run(
        ["squeue", "-h", "-o", "%i|%j|%Z|%o"], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    return set(res.stdout.splitlines())


@pytest.mark.slow
def test_run_dir_with_space_and_quote_completes(tmp_path: Path) -> None:
    run = tmp_path / "my runs" / "it's $(touch pwned) 100%" / "run"
    # a link at the name of a job's log (as a copied run folder holds): SLURM opened it and
    # wrote the job's output into the file it points at, outside the run directory (the
    # logs' names hold the job id now: no job's log is at an earlier job's name)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (run / "slurm" / "logs").mkdir(parents=True)
    (run / "slurm" / "logs" / "01_load_0.out").symlink_to(victim)
    res = gprpipe(
        "run",
        QUICKSTART,
        "--executor",
        "slurm",
        "--wait",
        "--steps",
        "load,fit,limit",
        *settings("scan.masses=[0.06]", f"base.output={run}"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    scan = run / "nominal" / "scan.csv"
    rows = scan.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("demo,0.06,") and rows[1].endswith(",ok")
    logs = sorted(p for p in (run / "slurm" / "logs").glob("*.out") if not p.is_symlink())
    assert len(logs) == 5  # load, fit, fit-merge, limit, limit-merge: the %A, %a held
    assert all(re.fullmatch(r"0\d_[\w-]+_\d+_0\.out", p.name) for p in logs), logs
    assert all("gprpipe:" in p.read_text() for p in logs)
    assert victim.read_text() == "mine\n"
    assert (run / "nominal" / "logs" / "load.log").is_file()
    assert not (tmp_path / "pwned").exists() and not (run / "pwned").exists()
    status = gprpipe("status", run)
    assert status.returncode == 0 and "done=5" in status.stdout


def test_newline_in_partition_is_refused_before_submission(tmp_path: Path) -> None:
    run = tmp_path / "run"
    pwn = tmp_path / "pwned"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        f'[base]\ntemplate = "{QUICKSTART}"\noutput = "{run}"\n'
        f'[slurm]\npartition = "debug\\n#SBATCH --wrap=touch {pwn}"\n'
    )
    before = queue()
    res = gprpipe("run", cfg, "--executor", "slurm", "--wait", cwd=tmp_path)
    assert res.returncode == 1
    err = res.stderr.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {cfg}:5: slurm.partition:")
    assert "newline" in err and "Traceback" not in err
    assert not run.exists() and not pwn.exists()
    # nothing was submitted from here (other tests may submit jobs meanwhile)
    assert not [job for job in queue() - before if str(tmp_path) in job]
