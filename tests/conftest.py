"""Shared fixtures: the repository, the real data folder, run folders and CLI runners.

``run_cli`` runs ``python -m gprpipe ...`` in a subprocess, exactly as a user would;
``cli`` calls the same entry point (``gprpipe.cli.main``) in this process, which is much
faster for commands that do not start tasks (validate, render, grid, schema...).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "hps"
QUICKSTART = REPO / "user_configs" / "quickstart.toml"
DEMO_ROOT = REPO / "gprpipe" / "data" / "demo_2015.root"

# what every subprocess gets: no display, one BLAS thread, no colours in the output
SUBPROCESS_ENV = {
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "COLUMNS": "200",
}

CliResult = tuple[int, str, str]

#: the user configs shipped in user_configs/ (tests never read others: a user's own files
#: there must not change a test's result)
SHIPPED_USER_CONFIGS = (
    "hps2015.toml",
    "hps2015_2016_2021_combined.toml",
    "hps2015_2016_combined.toml",
    "hps2015_funcform_injection.toml",
    "hps2015_injection.toml",
    "hps2015_leakage_closure.toml",
    "hps2015_rpen7.toml",
    "hps2015_toyscan.toml",
    "hps2016.toml",
    "hps2016_leakage_closure.toml",
    "hps2021.toml",
    "quickstart.toml",
)


def pytest_configure(config: pytest.Config) -> None:
    """Tests write nothing into the repository: the snapshot plugin's failure report goes
    to the temporary folder instead of ./snapshot_report.html (unless given explicitly)."""
    import tempfile

    if getattr(config.option, "snapshot_report", None) == "snapshot_report.html":
        config.option.snapshot_report = str(
            Path(tempfile.gettempdir()) / "gprpipe_snapshot_report.html"
        )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real HPS histograms (``../shared/data/hps``); skips when they are absent."""
    if not (SHARED_DATA / "funcform_2015_toys.root").is_file():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh (not yet existing) run directory inside the test's temporary folder."""
    return tmp_path / "run"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **SUBPROCESS_ENV, **(extra or {})}


def run_cli_subprocess(
    *args: str | Path,
    cwd: Path | None = None,
    timeout: float = 180,
    env: dict[str, str] | None = None,
) -> CliResult:
    """``python -m gprpipe ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gprpipe", *map(str, args)],
        cwd=cwd or REPO,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """Run the CLI in a subprocess; returns (code, stdout, stderr)."""
    return run_cli_subprocess


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``gprpipe.cli.main(args)`` in this process; returns (code, stdout, stderr)."""
    from gprpipe.cli import main

    def call(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (creating folders); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def quickstart_child(path: Path, body: str = "") -> Path:
    """A config at ``path`` that inherits the shipped quickstart, plus ``body``."""
    head = f'[base]\ntemplate = "{QUICKSTART}"\n'
    return write(path, head + textwrap.dedent(body).lstrip("\n"))
