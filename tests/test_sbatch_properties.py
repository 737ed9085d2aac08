"""Property-based tests (hypothesis) of the values that reach sbatch scripts and file names.

For any string (newlines, quotes, ``$()``, backticks, backslashes, ``#``, ``%``...):
either gprpipe refuses it (control characters) with one clear error, or the rendered
script parses with ``bash -n``, its directive block holds exactly the intended ``#SBATCH``
arguments (parsed as sbatch parses them), and bash runs exactly the intended command with
exactly the intended arguments. Dataset keys and grid values either are refused or give
file names that are safe and lie inside the run directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gprpipe.errors import GprpipeError
from gprpipe.executors.slurm import SlurmOptions, render_scripts
from gprpipe.pipeline.task import Task

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NASTY = st.sampled_from(
    [
        "\n",
        "\r",
        "'",
        '"',
        "$(touch x)",
        "`id`",
        "\\",
        "#",
        "%",
        " ",
        "\t",
        "--x",
        ";",
        "&&",
        "\x00",
        "\u2028",
        "\x1b",
        "é",
        "${HOME}",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=6), NASTY), min_size=1, max_size=5).map("".join)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# ---------------------------------------------------------------- sbatch's own parser


def directive_block(script: str) -> list[str]:
    """The ``#SBATCH`` lines sbatch reads: those before the first command line."""
    out = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            if stripped.startswith("#SBATCH"):
                out.append(stripped)
            continue
        break
    return out


def directive_args(line: str) -> list[str]:
    """Arguments of one ``#SBATCH`` line as sbatch (22.05) splits them: blanks separate,
    ``'`` and ``"`` quote, a backslash escapes the next character (also inside quotes),
    and an unquoted ``#`` starts a comment."""
    text = line.removeprefix("#SBATCH")
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        cur, quote = [], ""
        while i < n and (quote or not text[i].isspace()):
            c = text[i]
            if c == "\\" and i + 1 < n:
                cur.append(text[i + 1])
                i += 2
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    cur.append(c)
            elif c in "'\"":
                quote = c
            elif c == "#":
                i = n
                break
            else:
                cur.append(c)
            i += 1
        assert not quote, f"unmatched quote in {line!r}"
        args.append("".join(cur))
    return args


def test_directive_parser_matches_sbatch_examples():
    """The parser agrees with what the real sbatch 22.05 reported for these lines
    (scontrol show job: JobName)."""
    assert directive_args("#SBATCH --job-name='a\\\\b'") == ["--job-name=a\\b"]
    assert directive_args("#SBATCH --job-name='a\\'b\"c #d'") == ["--job-name=a'b\"c #d"]
    assert directive_args("#SBATCH --job-name=a#b") == ["--job-name=a"]
    assert directive_args("#SBATCH --job-name='a'\\''b'") == ["--job-name=a'b"]
    assert directive_args("#SBATCH --job-name='a\\b#c$(x)`y`'") == ["--job-name=ab#c$(x)`y`"]


# ---------------------------------------------------------------- scripts


class Local:
    def command(self, task: Task, *, run_dir: Path, env, check_paths: bool = True):
        return [sys.executable, "-m", "gprpipe", *task.argv]

    def stop_command(self, argv):  # (no container to stop; the engines' interface has it)
        return None


def _task(point_dir: Path, extra: str) -> Task:
    argv = ("step", "load", "--point-dir", str(point_dir), "--part", extra, "--task", "p/load")
    return Task(id="p/load", point="p", step="load", point_dir=point_dir, argv=argv)


def _bash_args(script: str) -> list[str]:
    """Run the script's ``case`` block in bash with ``task`` replaced by a printer: the
    arguments bash really passes to ``task`` (log, marker, command...)."""
    case = script[script.index('case "$SLURM_ARRAY_TASK_ID" in') : script.index("esac") + 4]
    printer = "task() { printf '%s\\0' \"$@\"; }\nSLURM_ARRAY_TASK_ID=0\n"
    res = subprocess.run(["bash", "-c", printer + case], capture_output=True, timeout=20)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]


@SETTINGS
@given(partition=TEXT, account=TEXT, qos=TEXT, extra=TEXT, time=TEXT, folder=TEXT, part=TEXT)
def test_any_value_gives_exactly_the_intended_script(
    tmp_path_factory, partition, account, qos, extra, time, folder, part
):
    assume("/" not in folder and folder not in (".", "..") and "\x00" not in folder)
    assume("\x00" not in part)
    extra = "--comment=" + extra
    assume(extra == extra.strip())
    run = tmp_path_factory.mktemp("p") / folder
    point = run / "p"
    values = [partition, account, qos, extra, time, str(run), part]
    try:
        options = SlurmOptions(
            partition=partition, account=account, qos=qos, time=time, extra=(extra,)
        )
        (script,) = render_scripts(
            [_task(point, part)],
            run_dir=run,
            engine=Local(),
            options=options,
            env={},
            check_paths=False,
        )
    except GprpipeError as exc:
        refused = (
            any(CONTROL.search(v) for v in values)
            or not time
            or any(c.isspace() for c in time)
            or "\\" in folder  # SLURM drops backslashes from log paths: refused by design
        )
        assert refused, exc
        assert "\n" not in str(exc)
        return
    assert not any(CONTROL.search(v) for v in values[:6])
    text = script.text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    args = [directive_args(line) for line in directive_block(text)]
    logs = str(run / "slurm" / "logs").replace("%", "%%")
    named = [
        [f"--{k}={v}"]
        for k, v in (("partition", partition), ("account", account), ("qos", qos))
        if v
    ]
    assert args == [
        ["--job-name=gprpipe-load"],
        ["--array=0-0"],
        [f"--output={logs}/01_load_%A_%a.out"],
        [f"--time={time}"],
        ["--mem=4G"],
        ["--cpus-per-task=1"],
        *named,
        [extra],
    ]
    task = _task(point, part)
    expected = [
        str(point / "logs" / "load.log"),
        str(point / ".state" / "load"),
        sys.executable,
        "-m",
        "gprpipe",
        *task.argv,
    ]
    assert _bash_args(text) == expected


# ---------------------------------------------------------------- file names


def _toml_str(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif unicodedata.category(c) == "Cc" or c in "\u2028\u2029":
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


QUICKSTART = Path(__file__).resolve().parents[1] / "user_configs" / "quickstart.toml"
DEMO = Path(__file__).resolve().parents[1] / "gprpipe" / "data" / "demo_2015.root"
SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")


@SETTINGS
@given(key=TEXT, labels=st.lists(TEXT, min_size=1, max_size=3, unique=True))
def test_names_are_safe_or_refused(tmp_path_factory, key, labels):
    """Dataset keys and grid values: refused with one error naming the key, or every
    output of the plan lies in a safe-named folder inside the run directory."""
    from gprpipe.config import load_points
    from gprpipe.errors import ConfigError
    from gprpipe.pipeline.store import plan_points

    tmp = tmp_path_factory.mktemp("n")
    run = tmp / "run"
    cfg = tmp / "c.toml"
    cfg.write_text(
        f'[base]\ntemplate = "{QUICKSTART}"\noutput = "{run}"\n'
        f'[datasets.{_toml_str(key)}]\ncard = "hps2015"\npath = "{DEMO}"\n'
        f"[scan]\ndatasets = [{_toml_str(key)}]\n"
        f'[grid]\n"datasets.demo.label" = [{", ".join(_toml_str(x) for x in labels)}]\n'
    )
    try:
        _, points = load_points(cfg)
    except ConfigError as exc:
        assert exc.errors
        assert all("\n" not in e for e in exc.errors)
        assert (
            not SAFE.match(key)
            or len(key) > 64
            or key == "combined"
            or any(CONTROL.search(x) for x in labels)
        )
        return
    assert SAFE.match(key) and len(key) <= 64 and key != "combined"
    tasks = plan_points(run, points)
    assert len({p.name for p in points}) == len(labels)
    for t in tasks:
        for path in (t.log, *t.outputs):
            rel = path.relative_to(run)  # raises when outside
            assert ".." not in rel.parts
            assert all(SAFE.match(part) for part in rel.parts if part != ".state"), rel


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\u2028b", "a\x1bb"])
def test_sbatch_quote_refuses_control_characters(value: str):
    from gprpipe.executors.slurm import sbatch_quote

    with pytest.raises(GprpipeError):
        sbatch_quote(value)
