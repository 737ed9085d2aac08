"""The package's import graph (every import, also those inside functions): no cycle,
figure functions independent of the steps, pure numerics in ``stats``."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

import gprpipe

ROOT = Path(gprpipe.__file__).parent


def _module(path: Path) -> str:
    parts = ["gprpipe", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path, own: str = "") -> set[str]:
    """Package modules imported anywhere in ``path`` (the module ``own``, by default the
    one at that path; ``from a import b``: ``a.b`` when it is a module, else ``a``;
    relative imports resolved; ``importlib.import_module`` of a constant name)."""
    own = own or _module(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the module's package upwards
                base = own if path.name == "__init__.py" else own.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{module}" if module else base
            subs = {f"{module}.{a.name}" for a in node.names}
            out |= (subs & MODULES.keys()) or {module}
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(str(node.args[0].value))
    return out & MODULES.keys()


def test_the_import_parser_sees_relative_and_importlib_imports(tmp_path: Path) -> None:
    """A relative import or an import_module call in stats would have passed unseen."""
    text = "from ..io import root\nimport importlib\nimportlib.import_module('gprpipe.cli')\n"
    probe = tmp_path / "probe.py"
    probe.write_text(text)
    assert _imports(probe, "gprpipe.stats.probe") == {"gprpipe.io.root", "gprpipe.cli"}


@functools.cache
def graph() -> dict[str, set[str]]:
    """The import graph (parsed once, by the first test that needs it: not at collection)."""
    return {m: _imports(p) - {m} for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(n: str) -> None:
        index[n] = low[n] = len(index)
        stack.append(n)
        for w in graph[n]:
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in stack:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for n in sorted(graph):
        if n not in index:
            visit(n)
    return found


def test_graph_sees_lazy_imports():
    # the plot step imports its figure functions inside functions: they must be edges
    assert "gprpipe.plotting.inject" in graph()["gprpipe.steps.plot"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(graph()) == []


def _private_imports(text: str, own: str, package: bool = False) -> list[str]:
    """``module.name`` of every private name (one leading underscore) that the module
    ``own`` (source ``text``; ``package``: an ``__init__``) takes from another module of
    the package: imported by name (absolute or relative), or read off an imported module."""
    tree = ast.parse(text)
    out: list[str] = []
    modules: dict[str, str] = {}  # local name -> package module it stands for

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the module's package upwards
                base = own if package else own.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{module}" if module else base
            if module not in MODULES:
                continue
            for a in node.names:
                if (
                    f"{module}.{a.name}" in MODULES
                ):  # a module, e.g. ``from gprpipe.stats import inject``
                    modules[a.asname or a.name] = f"{module}.{a.name}"
                elif private(a.name) and module != own:
                    out.append(f"{module}.{a.name}")
        elif isinstance(node, ast.Import):  # ``import a.b as m``, or ``import a.b`` (a.b.x)
            modules |= {a.asname or a.name: a.name for a in node.names if a.name in MODULES}

    def dotted(node: ast.expr) -> str:
        """``a.b.c`` of a chain of attributes on a name ('' for anything else)."""
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and (head := dotted(node.value)):
            return f"{head}.{node.attr}"
        return ""

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            module = modules.get(dotted(node.value), own)
            if module != own:
                out.append(f"{module}.{node.attr}")
    return out


def test_no_private_name_is_imported_across_modules():
    """What one module uses of another is public (``inject._window``, ``export._point_dir``,
    ``config._apply_cards`` and ``stats.inject._child`` were used from other modules)."""
    bad = {
        m: found
        for m, p in MODULES.items()
        if (found := _private_imports(p.read_text(), m, p.name == "__init__.py"))
    }
    assert bad == {}
    # the check sees such a use: imported (also inside a function, or relative), or read
    # off an imported module
    probe = "def f():\n    from gprpipe.steps.inject import data_window, _ctx\n"
    assert _private_imports(probe, "gprpipe.steps.displays") == ["gprpipe.steps.inject._ctx"]
    assert _private_imports(probe, "gprpipe.steps.inject") == []
    relative = "from .inject import _child\nfrom . import _nope\n"
    assert _private_imports(relative, "gprpipe.stats.cls") == [
        "gprpipe.stats.inject._child",
        "gprpipe.stats._nope",
    ]
    assert _private_imports(relative, "gprpipe.stats", package=True) == [
        "gprpipe.stats.inject._child"
    ]
    alias = "from gprpipe.stats import inject as inj\nimport gprpipe.io.root as r\n"
    alias += "inj._child(1, 2)\nr.read_hist\nr._open()\n"
    assert _private_imports(alias, "gprpipe.steps.displays") == [
        "gprpipe.stats.inject._child",
        "gprpipe.io.root._open",
    ]
    # the module's full name (``import gprpipe.stats.inject``; the check missed it)
    full = "import gprpipe.stats.inject\nimport gprpipe.io\ngprpipe.stats.inject._child(1)\n"
    full += "gprpipe.stats.inject.child_seed(1)\ngprpipe.io._x\n"
    assert sorted(_private_imports(full, "gprpipe.steps.displays")) == [
        "gprpipe.io._x",
        "gprpipe.stats.inject._child",
    ]
    assert _private_imports(full, "gprpipe.stats.inject") == ["gprpipe.io._x"]


def _outside(prefix: str, allowed: tuple[str, ...]) -> dict[str, set[str]]:
    return {
        m: bad
        for m, deps in graph().items()
        if m.startswith(prefix)
        if (bad := {d for d in deps if not d.startswith(allowed)})
    }


def test_plotting_imports_no_steps():
    """Figure functions take arrays: plotting reads no files through the steps (nor the
    pipeline, config or front ends)."""
    assert (
        _outside(
            "gprpipe.plotting",
            (
                "gprpipe.plotting",
                "gprpipe.stats",
                "gprpipe.io",
                "gprpipe.results.schema",
                "gprpipe.units",
            ),
        )
        == {}
    )


def test_results_is_data_only():
    """results defines and reads the tables; it draws nothing and runs nothing (the report,
    which draws, is part of the plot step). Its summariser reads the status vocabulary, its
    comparison matches masses as everything else does (units, a leaf)."""
    allowed = (
        "gprpipe.results",
        "gprpipe.io",
        "gprpipe.errors",
        "gprpipe.units",
        "gprpipe.stats.quality",
    )
    assert _outside("gprpipe.results", allowed) == {}


def test_config_and_io_import_only_below_them():
    """The README's diagram: config reads histograms through io and the resolution and
    window sizes from stats; io imports nothing of the package but its errors."""
    leaves = ("gprpipe.errors", "gprpipe.units")
    config = ("gprpipe.config", "gprpipe.io", "gprpipe.stats", *leaves)

    # (the package's root module holds only its version: rendering shows it, HDF5 files
    # record it)
    def below(prefix: str, allowed: tuple[str, ...]) -> dict[str, set[str]]:
        return {m: bad for m, d in _outside(prefix, allowed).items() if (bad := d - {"gprpipe"})}

    assert below("gprpipe.config", config) == {}
    assert below("gprpipe.io", ("gprpipe.io", *leaves)) == {}


def test_stats_imports_nothing_outside_stats():
    assert _outside("gprpipe.stats", ("gprpipe.stats",)) == {}


def test_front_ends_are_imported_by_no_lower_layer():
    """cli and tui are the top: only they (and ``python -m gprpipe``) import them; config
    imports neither pipeline nor executors (the test masses are a Config method)."""
    front = ("gprpipe.cli", "gprpipe.tui")
    users = {m for m, deps in graph().items() if any(d.startswith(front) for d in deps)}
    assert {m for m in users if not m.startswith(front)} == {"gprpipe.__main__"}
    below = ("gprpipe.config", "gprpipe.errors", "gprpipe.io", "gprpipe.stats", "gprpipe.units")
    bad = {
        m: d - {"gprpipe", "gprpipe._version"} for m, d in _outside("gprpipe.config", below).items()
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_front_ends_run_through_the_service():
    """The CLI and the TUI both reach runs through the run service; neither talks to an
    executor itself (states come through the service's watcher); the pipeline imports
    neither front end."""
    assert "gprpipe.pipeline.service" in graph()["gprpipe.cli"]
    # (the CLI took SIGTERM handling and a type from the executors directly: a review)
    assert {d for d in graph()["gprpipe.cli"] if d.startswith("gprpipe.executors")} == set()
    tui = set().union(*(deps for m, deps in graph().items() if m.startswith("gprpipe.tui")))
    assert {"gprpipe.pipeline.service", "gprpipe.pipeline.launch"} <= tui
    assert {d for d in tui if d.startswith("gprpipe.executors")} == set()
    front = ("gprpipe.cli", "gprpipe.tui")
    upward = {
        m: {d for d in deps if d.startswith(front)}
        for m, deps in graph().items()
        if m.startswith("gprpipe.pipeline")
    }
    assert {m: d for m, d in upward.items() if d} == {}
    # the orchestration lives in the service, not in the CLI
    cli = (ROOT / "cli.py").read_text()
    for name in ("get_executor", "run_lock", "Hooks", "new_run_info", "tasks_of_run"):
        assert name not in cli, name
    # the TUI's background run is the service's entry point, not a gprpipe command line
    launch = (ROOT / "pipeline" / "launch.py").read_text()
    assert '"-m", "gprpipe.pipeline.launch"' in launch and '"-m", "gprpipe",' not in launch


def test_checking_a_config_imports_no_fit_numerics():
    """``gprpipe run`` checks the config and its histograms before any task starts, while
    the fork server imports the numerics: that check must not import scipy itself (it
    cost each run about a second of CPU on its critical path)."""
    from conftest import QUICKSTART, python_output

    code = (
        "import sys\n"
        "from gprpipe.config import check_inputs, load_points\n"
        f"loaded, points = load_points({str(QUICKSTART)!r})\n"
        "check_inputs(loaded, points)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'sklearn'}))\n"
    )
    assert python_output(code).strip() == "[]"


def test_task_processes_that_read_no_root_file_import_no_uproot():
    """A ``gprpipe step`` process (a SLURM array task, a container task) of a step that
    reads no ROOT file does not import uproot (about 0.3 s of CPU per task)."""
    from conftest import python_output

    code = (
        "import sys\n"
        "import gprpipe.cli, gprpipe.steps.runner\n"
        "for s in ('fit', 'limit', 'merge', 'lee', 'inject', 'toyscan', 'combine', 'plot',\n"
        "          'reach', 'export', 'load'):\n"
        "    __import__('gprpipe.steps.' + s)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'uproot', 'awkward'}))\n"
    )
    assert python_output(code).strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "fast"),
    [
        (
            [
                "step",
                "fit",
                "--point-dir",
                "/r/p",
                "--part",
                "2015-000",
                "--task",
                "p/fit/2015-000",
            ],
            True,
        ),
        (["step", "load", "--point-dir", "/r/p", "--force"], True),
        (["step", "load", "--point-dir", "/r/p", "--part", "a", "--part", "b"], False),
        (["step", "load", "--point-dir", "/r/p", "--force", "--force"], False),
        (["step", "fit", "--point-dir", "/r/p", "--masses", "60MeV"], False),
        (["step", "load", "--point-dir", "/r/p", "--help"], False),
        (["step", "load", "--point-dir", "/r/p", "--debug"], False),
        (["step", "load", "--point-dir", ""], False),
        (["step", "load", "--point-dir", "--force"], False),
        (["step", "load", "--point-dir=/r/p"], False),
        (["step", "load", "--part", "a"], False),
        (["step", "--help"], False),
        (["run", "x.toml"], False),
    ],
)
def test_only_the_plans_task_command_lines_skip_the_command_line_layer(argv, fast):
    from gprpipe.__main__ import task_command
    from gprpipe.pipeline.task import TaskLine

    assert task_command(argv) is fast
    line = TaskLine.parse(argv)
    # one owner of the form: what it reads, it writes back word for word
    assert (line.argv() if line else None) == (tuple(argv) if fast else None)


def test_a_task_process_imports_no_command_line_layer(tmp_path: Path):
    """A SLURM or container task (``gprpipe step NAME --point-dir DIR ...``, thousands per
    scan) runs without importing typer, click or rich (~0.2 s of CPU each), and still says
    a mistake in one sentence with exit code 1."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules\n"
        "                                     if m in {'typer', 'click', 'rich'})))\n"
        f"sys.argv = ['gprpipe', 'step', 'load', '--point-dir', {str(tmp_path)!r}]\n"
        "from gprpipe.__main__ import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout.strip() == "[]"
    assert proc.stderr == (
        f"error: {tmp_path}: not a point folder of a gprpipe run (no config.toml).\n"
    )


def test_a_worker_given_another_form_of_task_line_refuses_it(capsys):
    """The warm workers run exactly what the plan wrote; any other form is a bug, said in
    one line with exit code 2 (not run with a guessed meaning)."""
    from gprpipe.steps.runner import run_argv

    assert run_argv(["step", "load", "--point-dir=/r/p"]) == 2
    assert capsys.readouterr().err == "error: not a task command line: step load --point-dir=/r/p\n"


def test_one_table_names_the_files_a_run_keeps(shared_quickstart: Path):
    """``Layout.files()`` (with ``RUN_JSON`` and ``INDEX``) is the one list of the files a
    run keeps in a point folder and its run folder, which ``export -o`` refuses to
    overwrite and the report reads; every file a real run wrote there is on it."""
    from gprpipe.pipeline.lock import INDEX_LOCK_NAME, LOCK_NAME
    from gprpipe.pipeline.plan import INDEX, RUN_JSON, Layout

    point = shared_quickstart / "nominal"
    names = {p.name for p in Layout(point).files()}
    written = {p.name for p in point.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert written and written <= names, written - names
    assert {"report.html", "scan.csv", "hepdata.tar.gz"} <= written
    top = {p.name for p in shared_quickstart.iterdir() if p.is_file()}
    assert top - {LOCK_NAME, INDEX_LOCK_NAME} == {RUN_JSON, INDEX}  # a grid adds GRID_FIGURES


def test_export_refuses_the_grid_figures_of_its_run_folder(
    shared_quickstart: Path, tmp_path: Path, cli
):
    """A grid run writes grid_limits.png and grid_compare_<dataset>.png beside its index;
    ``export -o RUN/grid_limits.png`` was written, then drawn over by the next report
    refresh, the export lost without a word (a review). Refused like the run's other
    files, whether or not the figure is there yet; run_files counts those that are."""
    import shutil

    from gprpipe.pipeline.commit import run_files

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    (run / "grid_compare_demo.png").write_bytes(b"png")
    assert (run / "grid_compare_demo.png").resolve() in run_files(run)
    for name in ("grid_limits.png", "grid_compare_demo.png", "grid_compare_2016.png"):
        target = run / name
        args = ("export-pyhf", run, "--dataset", "demo", "--mass", "60MeV", "-o", target)
        code, _, err = cli(*args)
        assert code == 1 and f"{target}: is a file of the run" in " ".join(err.split()), err
    assert not (run / "grid_limits.png").exists()
    assert (run / "grid_compare_demo.png").read_bytes() == b"png"
    # the same name in the point's exports is fine; beside the figures (the run's top, in
    # no run's records) no export is
    target = run / "nominal" / "exports" / "grid_limits.png"
    args = ("export-pyhf", run, "--dataset", "demo", "--mass", "60MeV", "-o", target)
    assert cli(*args)[0] == 0 and target.is_file()
    target = run / "grid_limits.json"
    code, _, err = cli("export-pyhf", run, "--dataset", "demo", "--mass", "60MeV", "-o", target)
    assert code == 1 and "outside the exported point folder" in err and not target.exists()
