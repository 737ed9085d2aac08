"""``gprpipe.stats`` is pure numerics: importing it loads nothing from the package outside
``stats/`` (the static import graph is checked in test_layers.py)."""

from __future__ import annotations

from pathlib import Path

from conftest import python_output

import gprpipe.stats

STATS = Path(gprpipe.stats.__file__).parent
MODULES = sorted(p.stem for p in STATS.glob("*.py") if p.stem != "__init__")


def test_importing_stats_loads_no_other_package_module() -> None:
    """At run time too (lazy imports included by importing every module)."""
    code = (
        "import sys\n"
        f"for m in {MODULES!r}:\n"
        "    __import__('gprpipe.stats.' + m)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('gprpipe'))))\n"
    )
    out = python_output(code).split()
    assert f"gprpipe.stats.{MODULES[0]}" in out
    assert [
        m
        for m in out
        if m not in ("gprpipe", "gprpipe._version", "gprpipe.stats")
        and not m.startswith("gprpipe.stats.")
    ] == []
