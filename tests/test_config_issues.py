"""Config errors as structured issues (file, line, column, key, message) and the loader
reading a text that stands for a file (an editor's unsaved buffer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DEMO_ROOT, REPO, write

from gprpipe.config import load_points
from gprpipe.config.issues import Issue, Loc
from gprpipe.errors import ConfigError


def issues_of(path: Path, text: str | None = None, overrides: tuple[str, ...] = ()):
    with pytest.raises(ConfigError) as info:
        load_points(path, overrides, text=text)
    return info.value.issues, info.value.errors


def test_issue_sentence_is_the_cli_sentence():
    issue = Issue("unknown key.", "/a/c.toml", 3, 1, "fit.x")
    assert str(issue) == "/a/c.toml:3: fit.x: unknown key."
    assert str(Issue("m.", "/a/c.toml", key="fit.x")) == "/a/c.toml: fit.x: m."
    assert str(Loc("--set fit.x", key="fit.x").issue("m.")) == "--set fit.x: m."
    assert str(Loc("--set datasets.d", key="datasets.d.path").issue("m.")) == (
        "--set datasets.d: datasets.d.path: m."
    )
    assert str(Loc(key="scan.masses").issue("m.")) == "scan.masses: m."
    assert str(Issue("bad.", "/a/c.toml", 4, 2, prefix="/a/c.toml")) == "/a/c.toml: bad."


def test_unknown_key_issue_has_file_line_column_and_key(tmp_path: Path):
    cfg = write(
        tmp_path / "c.toml",
        f"""
        [base]
        name = "x"
        [datasets.d]
        card = "hps2015"
        path = "{DEMO_ROOT}"
        [fit]
           blind_nsgima = 2.0
    """,
    )
    issues, sentences = issues_of(cfg)
    [i] = issues
    assert (i.file, i.line, i.column, i.key) == (str(cfg), 7, 4, "fit.blind_nsgima")
    assert i.message == "unknown key; did you mean 'blind_nsigma'?"
    assert i.severity == "error"
    assert sentences == [f"{cfg}:7: fit.blind_nsgima: unknown key; did you mean 'blind_nsigma'?"]


def test_a_bracket_in_a_comment_or_string_keeps_the_lines_of_later_keys(tmp_path: Path):
    """The key scanner counted brackets in comments and strings: after ``# the [ low
    one`` in a multi-line array every later key lost its line (a review)."""
    cfg = write(
        tmp_path / "c.toml",
        f"""
        [base]
        name = "x"
        [datasets.d]
        card = "hps2015"
        path = "{DEMO_ROOT}"
        [scan]
        masses = [
          0.03,  # the [ low one
          0.06,
        ]
        [plot]
        status = "a [b"  # "x" [y
        [fit]
        blind_nsgima = 2.0
    """,
    )
    [i] = issues_of(cfg)[0]
    assert (i.line, i.column, i.key) == (14, 1, "fit.blind_nsgima")


def test_text_stands_for_a_file_that_need_not_exist(tmp_path: Path):
    """Relative data paths and template references resolve from the file's folder."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo.root").write_bytes(DEMO_ROOT.read_bytes())
    write(tmp_path / "parent.toml", '[base]\ntemplate = "hps2015"\nname = "p"\n')
    path = tmp_path / "unsaved.toml"
    text = (
        '[base]\ntemplate = "parent.toml"\nname = "u"\n[datasets.2015]\npath = "data/demo.root"\n'
    )
    loaded, points = load_points(path, text=text)
    assert not path.exists()
    assert loaded.chain[:2] == [path.resolve(), (tmp_path / "parent.toml").resolve()]
    assert points[0].config.datasets["2015"].path == str(tmp_path / "data" / "demo.root")
    assert loaded.origins["datasets.2015.path"].file == str(path.resolve())
    # an error in the text names the path it stands for, with line and key
    issues, _ = issues_of(path, text.replace('name = "u"', 'name = "u"\nseed = -1'))
    assert [(i.file, i.line, i.key) for i in issues] == [(str(path.resolve()), 4, "base.seed")]
    assert issues[0].message.startswith("Input should be greater than or equal to 0")


def test_template_and_render_errors_are_structured(tmp_path: Path):
    path = tmp_path / "c.toml"
    [i], [s] = issues_of(path, '# c\n[base]\ntemplate = "nope.toml"\n')
    assert (i.file, i.line, i.column, i.key) == (str(path), 3, 1, "base.template")
    assert s.startswith(f"{path}:3: base.template: 'nope.toml' is neither a file")
    [r], _ = issues_of(path, '[base]\nname = "{{ nothing }}"\n')
    assert (r.file, r.line, r.key) == (str(path), 2, "base.name")
    assert r.message.startswith("undefined name in '{{ nothing }}'")


def test_set_override_issue_names_the_override(tmp_path: Path):
    cfg = write(
        tmp_path / "c.toml",
        f"""
        [base]
        template = "hps2015"
        [datasets.2015]
        path = "{DEMO_ROOT}"
    """,
    )
    [i], [s] = issues_of(cfg, overrides=("fit.blind_nsigma=-1",))
    assert (i.file, i.line, i.key) == ("--set fit.blind_nsigma", None, "fit.blind_nsigma")
    assert s == "--set fit.blind_nsigma: Input should be greater than 0 (got -1)."


def test_key_kind_reads_the_schema():
    """The TUI form and the Run tab's choices come from these (no list of their own)."""
    from gprpipe.config.schema import choices, key_kind

    assert key_kind("base.engine") == ("choice", ("local", "docker", "podman", "apptainer"), False)
    assert choices("base.executor") == ("local", "slurm")
    assert key_kind("scan.masses") == ("floats", (), True)
    assert key_kind("base.image") == ("str", (), True)
    assert key_kind("datasets.any.range") == ("floats", (), False)
    assert key_kind("datasets.any.enabled") == ("bool", ("true", "false"), False)
    assert key_kind("limit.n_toys") == ("int", (), False)
    with pytest.raises(KeyError):
        key_kind("fit.no_such_key")


def test_did_you_mean_names_every_closest_known_name_and_never_guesses():
    from gprpipe.config.issues import did_you_mean

    names = ["hps2015", "hps2016", "hps2021", "n_restarts", "blind_nsigma"]
    assert did_you_mean("blind_nsgima", names) == "; did you mean 'blind_nsigma'?"  # a swap
    assert did_you_mean("n_restart", names) == "; did you mean 'n_restarts'?"
    assert did_you_mean("hps2061", names) == "; did you mean 'hps2016' or 'hps2021'?"
    assert did_you_mean("quickstart", names) == ""  # nothing close: no guess
    assert did_you_mean("ab", ["xy", "ac"]) == ""  # one edit in two letters is no typo
    assert did_you_mean("x", []) == ""


def test_toml_nested_too_deeply_is_one_sentence(tmp_path: Path):
    """A config (or a --set value) of arrays nested 600 deep: tomllib recursed until
    Python's limit and the CLI said "internal error: RecursionError" (a review)."""
    deep = "[" * 600 + "]" * 600
    cfg = write(tmp_path / "deep.toml", f"b = {deep}\n")
    assert issues_of(cfg)[1] == [f"{cfg}: invalid TOML: arrays or tables nested too deeply."]
    ok = write(tmp_path / "ok.toml", f'[datasets.d]\ncard = "hps2015"\npath = "{DEMO_ROOT}"\n')
    (sentence,) = issues_of(ok, overrides=(f"plot.formats={deep}",))[1]
    assert sentence.endswith(": nested too deeply.") and sentence.startswith("--set 'plot.")


def test_an_integer_longer_than_python_converts_is_one_sentence(tmp_path: Path):
    """``seed = 999...9`` (5000 digits) in a config or a --set value: Python refuses to
    convert more than 4300 digits and the CLI said "internal error: ValueError" (a review)."""
    digits = "9" * 5000
    cfg = write(tmp_path / "big.toml", f"[base]\nname = 'x'\nseed = {digits}\n")
    assert issues_of(cfg)[1] == [f"{cfg}:3: invalid TOML: an integer of more than 4300 digits."]
    ok = write(tmp_path / "ok.toml", f'[datasets.d]\ncard = "hps2015"\npath = "{DEMO_ROOT}"\n')
    (sentence,) = issues_of(ok, overrides=(f"base.seed={digits}",))[1]
    assert sentence == "--set base.seed: invalid TOML: an integer of more than 4300 digits."


def test_a_histogram_name_of_a_megabyte_is_not_echoed_whole():
    """``--set datasets.demo.hist=<100,000 characters>`` printed a 100 kB sentence (a
    review): the name is cut at 80 characters."""
    from conftest import QUICKSTART, run_cli_here

    code, _, err = run_cli_here(
        "validate", QUICKSTART, "--set", "datasets.demo.hist=" + "a" * 100_000
    )
    assert code == 1 and len(err) < 400, len(err)
    assert f"histogram '{'a' * 77}...' not found" in err, err


def test_a_quoted_dotted_key_is_said_to_be_one_name(tmp_path: Path):
    """``"fit.blind_nsigma" = 2`` (a [grid] line copied out) said "unknown key; did you mean
    'fit.blind_nsigma'?", the key as written (a review): TOML reads a quoted key as one
    name; the hint says so and where the setting goes."""
    qs = REPO / "user_configs" / "quickstart.toml"
    for text, line, key, table, leaf in (
        (f'"fit.blind_nsigma" = 2\n[base]\ntemplate = "{qs}"\n', 1, "fit.blind_nsigma", "fit",
         "blind_nsigma"),
        (f'[base]\ntemplate = "{qs}"\n[fit]\n"limit.alpha" = 0.1\n', 4, "fit.limit.alpha",
         "limit", "alpha"),
    ):  # fmt: skip
        cfg = write(tmp_path / "q.toml", text)
        quoted = key.split(".", 1)[1] if key.startswith("fit.limit") else key
        assert issues_of(cfg)[1] == [
            f"{cfg}:{line}: {key}: unknown key; quoted, {quoted!r} is one name, not {leaf} of "
            f"[{table}]: write {leaf} = ... in [{table}]."
        ]


def test_many_unknown_keys_are_hinted_and_shown_twenty_at_a_time(tmp_path: Path, cli):
    """200,000 unknown keys under [fit] took 4 minutes to validate (a did-you-mean hint of
    ~1 ms each) and printed every one (a review): the first 20 get their hint and are
    printed, one line counts the rest; every issue is still returned."""
    from conftest import quickstart_child

    cfg = quickstart_child(
        tmp_path / "many.toml", "[fit]\n" + "".join(f"blind_nsigm{i} = 1\n" for i in range(25))
    )
    issues, _ = issues_of(cfg)
    assert len(issues) == 25
    assert issues[19].message == "unknown key; did you mean 'blind_nsigma'?"
    assert issues[20].message == "unknown key."
    code, out, err = cli("validate", cfg)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 21
    assert (
        lines[19]
        == f"error: {cfg}:23: fit.blind_nsigm19: unknown key; did you mean 'blind_nsigma'?"
    )
    assert lines[20] == "error: 5 more errors not shown (the first 20 are above)."
