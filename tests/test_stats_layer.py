"""``gprpipe.stats`` is pure numerics: it imports nothing from the package outside ``stats/``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gprpipe.stats

STATS = Path(gprpipe.stats.__file__).parent
MODULES = sorted(p.stem for p in STATS.glob("*.py") if p.stem != "__init__")


def _gprpipe_imports(path: Path) -> list[str]:
    """Absolute names of the gprpipe modules a stats module imports (relative ones resolved)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "gprpipe"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . / .. inside gprpipe/stats
                base = ["gprpipe", "stats"][: 3 - node.level]
                out.append(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module and node.module.split(".")[0] == "gprpipe":
                out.append(node.module)
    return out


def test_stats_modules_import_only_stats() -> None:
    assert len(MODULES) >= 15  # every module is checked, not an empty glob
    bad = {}
    for name in MODULES:
        outside = [m for m in _gprpipe_imports(STATS / f"{name}.py")
                   if m != "gprpipe.stats" and not m.startswith("gprpipe.stats.")]
        if outside:
            bad[name] = outside
    assert bad == {}


def test_importing_stats_loads_no_other_package_module() -> None:
    """At run time too (lazy imports included by importing every module)."""
    code = (
        "import sys\n"
        f"for m in {MODULES!r}:\n"
        "    __import__('gprpipe.stats.' + m)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('gprpipe'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert f"gprpipe.stats.{MODULES[0]}" in out
    assert [m for m in out if m not in ("gprpipe", "gprpipe._version", "gprpipe.stats")
            and not m.startswith("gprpipe.stats.")] == []
