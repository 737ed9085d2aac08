"""Shared fixtures: the repository, the real data folder, run folders and CLI runners.

``run_cli`` runs ``python -m gprpipe ...`` in a subprocess, exactly as a user would;
``cli`` calls the same entry point (``gprpipe.cli.main``) in this process, which is much
faster for commands that do not start tasks (validate, render, grid, schema...);
``run_cli_here`` does the same with the subprocess's output (plus any ``env``), for the runs
of tests that need nothing of a process of their own (signals, pid, working folder): their
tasks still run in worker processes, forked by the fork server that this process keeps
from its previous run, so the interpreter and the numerics are not started and imported
again for each run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "hps"
#: CI=true (.ci/run sets up Podman, SLURM and Chromium): a missing service fails its tests
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_IMAGE = os.environ.get("GPRPIPE_TEST_IMAGE", "localhost/gprpipe:test")
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

# the test processes themselves (pytest-xdist workers) also run numerics in-process: one BLAS
# thread each, or two workers on two cores oversubscribe them (measured: the background-toy
# scan took 108 s next to another worker instead of 17 s alone)
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")
threadpool_limits(1)  # numpy may already be loaded with its default thread count

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
    to the temporary folder instead of ./snapshot_report.html (unless given explicitly).
    In-process runs share a fork server across tests (:class:`_WithoutCurrentTestVariable`)."""
    import tempfile

    config.pluginmanager.register(_WithoutCurrentTestVariable(), "gprpipe-no-current-test")
    if getattr(config.option, "maxschedchunk", 0) is None:  # pytest-xdist, not given
        config.option.maxschedchunk = 1  # see pytest_collection_modifyitems

    if getattr(config.option, "snapshot_report", None) == "snapshot_report.html":
        config.option.snapshot_report = str(
            Path(tempfile.gettempdir()) / "gprpipe_snapshot_report.html"
        )


class _WithoutCurrentTestVariable:
    """pytest names the running test in the environment (``PYTEST_CURRENT_TEST``), anew for
    each test and phase: a fork server is reused only for the environment it was started
    with, so with that variable set every test's first in-process run started one and
    imported the numerics again. Test functions and fixture set-ups (of every scope) run
    without it, like a notebook's runs. A plugin object, not hooks of this conftest: pytest
    calls a session fixture's set-up hook with the conftests of the root folder only."""

    @staticmethod
    @contextlib.contextmanager
    def _removed() -> Iterator[None]:
        name = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            yield
        finally:
            if name is not None:
                os.environ["PYTEST_CURRENT_TEST"] = name

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, object, object]:
        with self._removed():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: object, request: object
    ) -> Generator[None, object, object]:
        with self._removed():
            return (yield)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the tests that wait on SLURM or Podman start first, then the
    other long ones (``slow``), then the many short tests, each group in collection order;
    and xdist hands the tests out one at a time (``--maxschedchunk=1`` unless given: each
    worker holds the test it runs and the next). The waits
    and the long tests then overlap the rest, and the suite does not end with one worker
    alone on a long test while the others idle (measured: 48 s of it with the collection
    order and xdist's default chunks). A module fixture that slow and short tests share is
    then set up twice on a worker: costly ones are session fixtures. A serial session keeps
    the collection order (and so sets up each module's fixtures once)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def group(item: pytest.Item) -> int:
        if item.get_closest_marker("slurm") or item.get_closest_marker("podman"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=group)  # stable


def unavailable(reason: str) -> NoReturn:
    """A service a test needs is missing: skip the test, or fail it under CI=true."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


USABLE_NODE_STATES = ("idle", "mixed", "allocated", "completing", "planned")


def slurm_answer() -> str:
    """Why no SLURM cluster answers with a usable node, or "" when one does. A busy
    controller may miss one query (two workers' SLURM tests submit and cancel at once; a
    CI run once saw it), so in CI, where no answer fails the tests, a failed query is
    asked again for up to 30 s; elsewhere the tests skip at once."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "sinfo or sbatch not found"
    why = ""
    deadline = time.monotonic() + (30 if IN_CI else 0)
    while True:
        try:
            res = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = f"sinfo: {exc}"
        else:
            states = [s.strip("*~#!%$@^-+") for s in res.stdout.split()]
            if res.returncode == 0 and any(s in USABLE_NODE_STATES for s in states):
                return ""
            why = f"sinfo exit {res.returncode}: {(res.stdout + res.stderr).strip()[:200]!r}"
        if time.monotonic() > deadline:
            return why
        time.sleep(2)


def require_slurm() -> None:
    why = slurm_answer()
    if why:
        unavailable(f"no SLURM cluster answers ({why}; scripts/local-slurm.sh start)")


def require_podman(image: str = TEST_IMAGE) -> str:
    """Podman with ``image`` built, else :func:`unavailable`; returns the image."""
    if shutil.which("podman") is None:
        unavailable("podman not found (scripts/setup-podman.sh)")
    if subprocess.run(["podman", "image", "exists", image], capture_output=True).returncode:
        unavailable(
            f"image {image} not found (scripts/build-image.sh --engine podman --tag {image})"
        )
    return image


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real HPS histograms (``../shared/data/hps``); skips when they are absent."""
    if not (SHARED_DATA / "funcform_2015_toys.root").is_file():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


def shared_folder(factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test session that every pytest-xdist worker sees at the same path."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    folder = root / f"shared-{name}"
    folder.mkdir(exist_ok=True)
    return folder


def shared_run(factory: pytest.TempPathFactory, name: str, *args: str | Path) -> Path:
    """``gprpipe run ARGS --set base.output=<dir>`` done ONCE per test session, also under
    pytest-xdist: the first worker to ask runs it (holding a file lock in the session's
    shared temporary folder), the others wait and reuse it. Returns the run directory.
    Tests must only read it; a test that changes a run copies it first
    (``shutil.copytree(run, tmp_path / "run", symlinks=True)``)."""
    import fcntl
    import json

    folder = shared_folder(factory, name)
    out, done = folder / "run", folder / "result.json"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            code, so, se = run_cli_here("run", *args, "--set", f"base.output={out}")
            done.write_text(json.dumps({"code": code, "out": so, "err": se}))
        res = json.loads(done.read_text())
    assert res["code"] == 0, res["out"] + res["err"]
    return out


@pytest.fixture(scope="session")
def shared_quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped quickstart (load, fit, limit, plot; PNG plots only), run once per session
    (read-only: see :func:`shared_run`)."""
    return shared_run(tmp_path_factory, "quickstart", QUICKSTART, "--set", 'plot.formats=["png"]')


@pytest.fixture(scope="session")
def real_combined(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped 2015 + 2016 combination on the real histograms (load, fit, limit: both
    full scans and the combined rows), run once per session (read-only: see
    :func:`shared_run`)."""
    return shared_run(
        tmp_path_factory,
        "real-2015-2016",
        REPO / "user_configs" / "hps2015_2016_combined.toml",
        "--set",
        f"datasets.2015.path={shared_data}/funcform_2015_toys.root",
        "--set",
        f"datasets.2016.path={shared_data}/funcform_2016_toys.root",
        "--steps",
        "load,fit,limit",
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh (not yet existing) run directory inside the test's temporary folder."""
    return tmp_path / "run"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **SUBPROCESS_ENV, **(extra or {})}


def settings(*values: str) -> list[str]:
    """``--set`` arguments of a command line, one per ``key=value``."""
    return [arg for value in values for arg in ("--set", value)]


def run_cli_subprocess(
    *args: str | Path,
    cwd: Path | None = None,
    timeout: float = 180,
    env: dict[str, str] | None = None,
) -> CliResult:
    """``python -m gprpipe ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    proc = start_cli_subprocess(*args, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def call_main(*args: str | Path) -> int:
    """``gprpipe.cli.main(ARGS)`` in this process; its exit code."""
    from gprpipe.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run_cli_here(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
    """``gprpipe ARGS`` called in this process (``gprpipe.cli.main``), with ``env`` added to
    its environment for the call: (exit code, stdout, stderr). The same entry point and
    output as the command line (not a terminal: no colours; under ``pytest -s`` the
    output is the terminal and may have them); a run's tasks run in worker processes as
    they do there. None of :data:`SUBPROCESS_ENV` is set (the BLAS variables already are,
    at import): the runs of this process (here, the TUI's, the service's) then share one
    environment, and so the fork server kept from the previous run (a server serves only
    the environment it was started with: measured, 33 servers started in the test
    processes of a session when this set the terminal variables, about 1.5 CPU s each).
    No timeout: a test whose run may hang (a killed worker, a lock) uses
    :func:`run_cli_subprocess`."""
    import io

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (env or {}).items():
            mp.setenv(k, v)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = call_main(*args)
    return code, out.getvalue(), err.getvalue()


def start_cli_subprocess(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    session: bool = False,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``python -m gprpipe ARGS`` started in the background (a run to stop or to watch);
    ``session``: in a session of its own (``os.killpg`` stops it with its children).

    The process gets SIGINT's default disposition, as from a terminal: a test session
    started in the background of a script (``pytest &``) ignores SIGINT, and a child would
    inherit that (Python then installs no KeyboardInterrupt handler)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # SIG_DFL after exec
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "gprpipe", *map(str, args)],
            cwd=cwd or REPO,
            env=cli_env(env),
            start_new_session=session,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """Run the CLI in a subprocess; returns (code, stdout, stderr)."""
    return run_cli_subprocess


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run ``gprpipe.cli.main(args)`` in this process (:func:`run_cli_here`); returns
    (code, stdout, stderr)."""
    return run_cli_here


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (creating folders); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def python_output(code: str) -> str:
    """The standard output of ``python -c CODE`` in a fresh interpreter (what it imports
    is then its own doing)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def quickstart_child(path: Path, body: str = "") -> Path:
    """A config at ``path`` that inherits the shipped quickstart, plus ``body``."""
    head = f'[base]\ntemplate = "{QUICKSTART}"\n'
    return write(path, head + textwrap.dedent(body).lstrip("\n"))


def combined_2015_2016(
    path: Path, shared_data: Path, masses: list[float], base: str = "", body: str = ""
) -> Path:
    """A config at ``path``: the shipped 2015 + 2016 combination on the real histograms at
    ``masses`` (``base``: more ``[base]`` lines; ``body``: more tables)."""
    return write(
        path,
        f'[base]\ntemplate = "hps2015_2016_combined"\n{base}'
        f'[datasets.2015]\npath = "{shared_data / "funcform_2015_toys.root"}"\n'
        f'[datasets.2016]\npath = "{shared_data / "funcform_2016_toys.root"}"\n'
        f"[scan]\ncombined = true\nmasses = {masses}\n" + textwrap.dedent(body).lstrip("\n"),
    )


def assert_pyhf_limits_within(
    data: object, model: object, a_up: float, a_exp: float | list[float], rel: float = 0.01
) -> None:
    """pyhf's asymptotic CLs limits (``qtilde``, 95% CL) lie within ``rel`` of ``a_up``
    (observed) and ``a_exp`` (the expected median, or the five expected band edges -2..+2
    sigma), all in the model's POI units.

    CLs falls monotonically with the POI, so a limit (CLs = 0.05) is inside
    ``[(1 - rel) a, (1 + rel) a]`` exactly when CLs > 0.05 at the lower end and < 0.05 at
    the upper end: the same claim as ``upper_limit(...) == approx(a, rel)``, from two
    hypothesis tests per limit instead of a root search for all six limits.
    """
    import warnings

    import pyhf

    def cls(mu: float) -> tuple[float, list[float]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, exp = pyhf.infer.hypotest(
                mu, data, model, test_stat="qtilde", return_expected_set=True
            )
        return float(obs), [float(e) for e in exp]

    lo, hi = cls((1 - rel) * a_up)[0], cls((1 + rel) * a_up)[0]
    assert lo > 0.05 > hi, f"observed CLs {lo:.4f}, {hi:.4f} around A_up={a_up}"
    bands = [(2, float(a_exp))] if isinstance(a_exp, (int, float)) else enumerate(a_exp)
    for k, a in bands:
        lo, hi = cls((1 - rel) * a)[1][k], cls((1 + rel) * a)[1][k]
        assert lo > 0.05 > hi, f"expected band {k}: CLs {lo:.4f}, {hi:.4f} around {a}"
