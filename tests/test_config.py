"""Configuration: inheritance, deep merge, Jinja2 rendering, validation messages, --set."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import pytest
import uproot
from conftest import DEMO_ROOT, QUICKSTART, REPO, quickstart_child, run_cli_here, settings, write

from gprpipe import __version__
from gprpipe.config import load, load_points
from gprpipe.config.loader import (
    deep_merge,
    key_lines,
    parse_override,
    read_config_text,
    shipped_dir,
)
from gprpipe.config.render import render_config
from gprpipe.errors import ConfigError, GprpipeError
from gprpipe.io.root import read_hist, write_hist

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def errors_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    """Every error message that loading ``path`` raises (fails if it loads)."""
    with pytest.raises(GprpipeError) as info:
        load_points(path, overrides)
    exc = info.value
    return exc.errors if isinstance(exc, ConfigError) else [str(exc)]


def only_point(path: Path, overrides: tuple[str, ...] = ()):
    _, points = load_points(path, overrides)
    assert len(points) == 1
    return points[0]


# ---------------------------------------------------------------- inheritance


@pytest.fixture
def three_levels(tmp_path: Path) -> Path:
    """parent (shipped hps2015 template) <- sub/mid (../parent) <- sub/deeper/child."""
    write(
        tmp_path / "parent.toml",
        f"""
        [base]
        template = "hps2015"
        name = "parent"
        [datasets.2015]
        path = "{DEMO_ROOT}"
        [fit]
        blind_nsigma = 2.0
        n_restarts = 5
        [slurm]
        extra = ["--constraint=cpu"]
        [plot]
        formats = ["png"]
    """,
    )
    write(
        tmp_path / "sub" / "mid.toml",
        """
        [base]
        template = "../parent.toml"
        name = "mid"
        [fit]
        blind_nsigma = 2.5
        [datasets.2015]
        rebin = 5
    """,
    )
    # Jinja2 in base.template, rendered with the file's own values
    return write(
        tmp_path / "sub" / "deeper" / "child.toml",
        """
        [base]
        template = "{{ base.parent_dir }}/mid.toml"
        parent_dir = ".."
        [fit]
        ls_lo_factor = 0.7
    """,
    )


def test_three_levels_relative_paths_and_deep_merge(three_levels: Path, tmp_path: Path):
    # base.parent_dir is not a schema key: load the chain, then drop it before validation
    loaded = load(three_levels)
    chain = [p.name for p in loaded.chain]
    assert chain == ["child.toml", "mid.toml", "parent.toml", "hps2015.toml", "defaults.toml"]
    assert loaded.chain[1] == (tmp_path / "sub" / "mid.toml").resolve()
    assert loaded.chain[3] == (shipped_dir("templates") / "hps2015.toml").resolve()
    data = loaded.data
    assert "template" not in data["base"]
    # nested tables merge key by key: each level contributes
    assert data["fit"] == {
        "blind_nsigma": 2.5,
        "ls_lo_factor": 0.7,
        "n_restarts": 5,
        "ls_hi_factor": 8.0,
        "signal_leakage": "model",
        "gof_nsigma": 5.0,
        "gof_p_min": 1e-3,
        "require_two_sidebands": True,
        "min_sideband_bins": 3,
        "min_sideband_nsigma": 0.0,
        "sparse_s_max": 0.7,
    }
    assert data["datasets"]["2015"] == {"card": "hps2015", "path": str(DEMO_ROOT), "rebin": 5}
    assert data["slurm"]["extra"] == ["--constraint=cpu"]
    assert data["scan"]["chunk_size"] == 16  # from defaults.toml
    assert data["base"]["name"] == "mid"
    # each key knows its file and line
    assert loaded.origin("fit.ls_lo_factor").file == str(three_levels.resolve())
    assert loaded.origin("fit.ls_lo_factor").line == 5
    assert loaded.origin("fit.blind_nsigma").file.endswith("sub/mid.toml")
    assert loaded.origin("fit.n_restarts").file.endswith("parent.toml")


def test_three_levels_render_with_card(three_levels: Path, tmp_path: Path):
    text = three_levels.read_text().replace('parent_dir = ".."\n', "")
    child = write(three_levels, text.replace("{{ base.parent_dir }}", "{{ '..' }}"))
    point = only_point(child)
    cfg = point.config
    assert cfg.base.name == "mid"
    assert cfg.base.output == str(Path.cwd() / "runs" / "mid")
    assert cfg.fit.blind_nsigma == 2.5 and cfg.fit.n_restarts == 5 and cfg.fit.ls_lo_factor == 0.7
    ds = cfg.datasets["2015"]
    assert ds.rebin == 5  # mid.toml wins over the card
    assert ds.range == (0.020, 0.130)  # from cards/hps2015.toml
    assert ds.sigma_coeffs == pytest.approx([-9.22283032152e-05, 0.0532190838657])
    assert ds.path == str(DEMO_ROOT)


def test_shipped_template_name_and_relative_data_path(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.root").write_bytes(DEMO_ROOT.read_bytes())
    cfg = write(
        tmp_path / "cfg" / "a.toml",
        """
        [base]
        template = "hps2016"
        [datasets.2016]
        path = "../data/x.root"
    """,
    )
    point = only_point(cfg)
    assert point.config.base.name == "hps2016"
    ds = point.config.datasets["2016"]
    assert ds.path == str((tmp_path / "data" / "x.root").resolve())  # relative to a.toml
    assert ds.range == (0.035, 0.210) and ds.sigma_tail_m0 == 0.18  # cards/hps2016.toml


def test_template_false_ends_the_chain(tmp_path: Path):
    cfg = write(
        tmp_path / "alone.toml",
        """
        [base]
        template = false
        name = "alone"
        [fit]
        n_restarts = 7
    """,
    )
    loaded = load(cfg)
    assert [p.name for p in loaded.chain] == ["alone.toml"]
    assert "scan" not in loaded.data  # nothing from defaults.toml
    point = only_point(cfg)
    assert point.config.fit.n_restarts == 7
    assert point.config.scan.mass_step == 0.001  # schema default
    # the schema's templated default output is rendered too
    assert point.config.base.output == str(Path.cwd() / "runs" / "alone")


@pytest.mark.parametrize("ref", ["b.toml", "./b.toml"])
def test_inheritance_cycle_names_the_files(tmp_path: Path, ref: str):
    a = write(tmp_path / "a.toml", f'[base]\ntemplate = "{ref}"\n')
    write(tmp_path / "b.toml", '[base]\ntemplate = "sub/../a.toml"\n')
    (tmp_path / "sub").mkdir()
    (msg,) = errors_of(a)
    # the file and line whose base.template closes the cycle (it named neither)
    assert msg == (
        f"{tmp_path / 'b.toml'}:2: base.template: 'sub/../a.toml' makes an inheritance "
        f"cycle: {tmp_path / 'a.toml'} -> {tmp_path / 'b.toml'} -> {tmp_path / 'a.toml'}."
    )


def test_self_cycle(tmp_path: Path):
    a = write(tmp_path / "a.toml", '[base]\ntemplate = "a.toml"\n')
    (msg,) = errors_of(a)
    assert msg == f"{a}:2: base.template: 'a.toml' makes an inheritance cycle: {a} -> {a}."


def test_missing_parent_names_file_and_line(tmp_path: Path):
    a = write(tmp_path / "a.toml", '# comment\n[base]\nname = "x"\ntemplate = "nope.toml"\n')
    (msg,) = errors_of(a)
    assert msg.startswith(f"{a}:4: base.template: 'nope.toml' is neither a file")
    assert str(tmp_path / "nope.toml") in msg


def test_a_template_reference_that_fails_to_render_names_its_line(tmp_path: Path):
    """It named the file and key but no line, unlike every other base.template error (a
    review)."""
    a = write(tmp_path / "a.toml", '# a comment\n[base]\ntemplate = "{{ ENV.HOME }}/x.toml"\n')
    (msg,) = errors_of(a)
    assert msg.startswith(f"{a}:3: base.template: undefined name in '{{{{ ENV.HOME }}}}/x.toml'")


def test_misspelt_template_or_card_lists_the_shipped_ones(tmp_path: Path):
    """A shipped name with a typo: one sentence with the shipped names and the closest
    one; a missing card is the only error (not also the keys the card would have set)."""
    a = write(tmp_path / "a.toml", '[base]\ntemplate = "hps2061"\n')
    (msg,) = errors_of(a)
    assert msg == (
        f"{a}:2: base.template: 'hps2061' is neither a file ({tmp_path / 'hps2061'}) nor a "
        "shipped template (hps2015, hps2015_2016_2021_combined, "
        "hps2015_2016_combined, hps2016, hps2021); did you mean 'hps2016' or 'hps2021'?"
    )  # (not defaults, which every config inherits and init refuses: a review)
    b = write(tmp_path / "b.toml", '[datasets.x]\ncard = "hps2O16"\npath = "x.root"\n')
    (msg,) = errors_of(b)
    assert msg == (
        f"{b}:2: datasets.x.card: card 'hps2O16' is neither a file ({tmp_path / 'hps2O16'}) "
        "nor a shipped card (hps2015, hps2016, hps2021); did you mean 'hps2016'?"
    )
    c = write(tmp_path / "c.toml", '[base]\ntemplate = "sub/nope.toml"\n')
    (msg,) = errors_of(c)
    where = tmp_path / "sub" / "nope.toml"
    assert msg == f"{c}:2: base.template: 'sub/nope.toml': no such file ({where})."
    (tmp_path / "sub").mkdir()  # a folder is no file (it said "no such file")
    d = write(tmp_path / "d.toml", '[base]\ntemplate = "sub"\n')
    (msg,) = errors_of(d)
    assert (
        msg == f"{d}:2: base.template: 'sub': is a folder ({tmp_path / 'sub'}); name a TOML file."
    )
    # nor is a device (it said "no such file" of /dev/null, which exists; a review)
    e = write(tmp_path / "e.toml", '[base]\ntemplate = "/dev/null"\n')
    (msg,) = errors_of(e)
    assert msg == (
        f"{e}:2: base.template: '/dev/null': not a regular file (/dev/null); name a TOML file."
    )


def test_a_template_or_card_that_is_no_toml_names_the_key(tmp_path: Path):
    """A template or card that exists but is not TOML (``/etc/passwd``, a typo'd file)
    named the file alone; the sentence now also names the key that chose it."""
    bad = write(tmp_path / "notes.txt", "x = [\n")
    a = write(tmp_path / "a.toml", f'[base]\nname = "x"\ntemplate = "{bad}"\n')
    (msg,) = errors_of(a)
    assert msg == (
        f"{a}:3: base.template: {bad} is no config template: invalid TOML: Invalid value "
        "(at end of document)."
    )
    b = write(tmp_path / "b.toml", f'[datasets.x]\ncard = "{bad}"\npath = "x.root"\n')
    (msg,) = errors_of(b)
    assert msg == (
        f"{b}:2: datasets.x.card: card {bad} is no card: invalid TOML: Invalid value (at end "
        "of document)."
    )


def test_invalid_toml_names_file_and_line(tmp_path: Path):
    a = write(tmp_path / "a.toml", '[base]\nname = "x"\nseed = = 3\n')
    (msg,) = errors_of(a)
    assert msg.startswith(f"{a}: invalid TOML") and "line 3" in msg


def test_a_mass_written_with_its_unit_says_how_a_config_writes_it():
    """'80MeV' in a config got pydantic's "unable to parse string as a number" alone (a
    review); the command line reads units, a config's masses are numbers in GeV."""
    (msg,) = errors_of(QUICKSTART, ('scan.masses=["80MeV"]',))
    assert msg.endswith(
        "(got '80MeV'); a config's masses and widths are numbers in GeV: write 0.08."
    )
    (msg,) = errors_of(QUICKSTART, ('datasets.demo.range=["20 MeV", 0.1]',))
    assert msg.startswith("--set datasets.demo.range: ") and msg.endswith("write 0.02.")
    (msg,) = errors_of(QUICKSTART, ('scan.masses=["x"]',))
    assert "in GeV" not in msg


def test_values_without_meaning_are_refused_before_the_run(cli):
    """A review: fit.gof_nsigma = 1e-9 passed validate, then every fit failed ("no training
    bin within fit.gof_nsigma"); limit.alpha = 0.9 gave 10% CL limits the summary called
    eps^2 limits; a quoted part of a --set key gave a garbled "unknown key" sentence."""
    code, out, err = cli("validate", QUICKSTART, "--set", "fit.gof_nsigma=1e-9")
    assert code == 1 and out == "" and err.startswith("error: --set fit.gof_nsigma: 1e-09 sigma(m)")
    assert "holds no training bin of dataset demo at any test mass" in err
    assert cli("validate", QUICKSTART, "--set", "fit.gof_nsigma=0.5")[0] == 0
    (msg,) = errors_of(QUICKSTART, ("limit.alpha=0.9",))
    assert msg == "--set limit.alpha: Input should be less than or equal to 0.5 (got 0.9)."
    (msg,) = errors_of(QUICKSTART, ('grid."fit.blind_nsigma"=[1.0, 2.0]',))
    assert msg.startswith('--set grid."fit.blind_nsigma": --set keys are plain dotted names')
    assert msg.endswith(
        """set its table instead: --set 'grid={"fit.blind_nsigma" = [1.0, 2.0]}'."""
    )
    _, points = load_points(QUICKSTART, ['grid={"fit.blind_nsigma" = [1.64, 1.96]}'])
    assert [p.config.fit.blind_nsigma for p in points] == [1.64, 1.96]
    # a quoted part before further parts, and a value that is no TOML: the suggestion
    # nests one table per part and quotes the value, and it works (a review: it joined
    # the parts into one key, "demo.label", and left x bare)
    (msg,) = errors_of(QUICKSTART, ('datasets."demo".label=x',))
    said = "set its table instead: --set 'datasets={demo = {label = \"x\"}}'."
    assert msg.endswith(said), msg
    point = only_point(QUICKSTART, ('datasets={demo = {label = "x"}}',))
    assert point.config.datasets["demo"].label == "x"


def test_a_key_set_twice_is_named(tmp_path: Path):
    """The parser says "Cannot overwrite a value (at line 5, column 17)" and names no key
    (a review); the sentence now names it, under its table, dotted or quoted."""
    for body, line, key in (
        ("[fit]\nblind_nsigma = 1.64\nblind_nsigma = 2\n", 3, "fit.blind_nsigma"),
        (
            '[grid]\n"fit.blind_nsigma" = [1]\n "fit.blind_nsigma" = [2]\n',
            3,
            'grid."fit.blind_nsigma"',
        ),
        ('[base]\nname = "a"\n[fit]\nfit . seed = 1\nfit.seed = 2\n', 5, "fit.fit.seed"),
        ('base.name = "a"\nbase . name = "b"\n', 2, "base.name"),
    ):
        a = write(tmp_path / "a.toml", body)
        (msg,) = errors_of(a)
        assert msg.startswith(f"{a}:{line}: {key}: set twice (invalid TOML: Cannot overwrite"), msg
    # what a line scan would misname is said without a key (a review: '0.02, 0.1.seed')
    for body in (
        '[grid]\n"datasets.demo.range" = [\n  [0.02, 0.1]\n]\nseed = 1\nseed = 2\n',
        '[base]\nnote = """\n[fake]\n"""\nname = "x"\nname = "y"\n',
        "a = 1\na.b = 2\n",
    ):
        a = write(tmp_path / "a.toml", body)
        (msg,) = errors_of(a)
        assert msg.startswith(f"{a}: invalid TOML: "), msg


def test_base_or_grid_that_is_not_a_table_is_one_sentence(tmp_path: Path):
    q = str(QUICKSTART)
    g = write(tmp_path / "g.toml", f"grid = 5\n[base]\ntemplate = {q!r}\n")
    assert errors_of(g) == [f"{g}:1: grid: must be a table ([grid] with keys), not 5."]
    b = write(tmp_path / "b.toml", "base = 5\n")
    assert errors_of(b) == [f"{b}:1: base: must be a table ([base] with keys), not 5."]
    with pytest.raises(ConfigError) as exc:
        load_points(QUICKSTART, ["grid='abc'"])
    assert str(exc.value) == "--set grid: must be a table ([grid] with keys), not 'abc'."


def test_deep_merge_is_recursive_and_does_not_mutate():
    parent = {"a": {"b": {"c": 1, "d": 2}, "e": [1, 2]}, "f": 1}
    child = {"a": {"b": {"c": 10}, "e": [3]}, "g": {"h": 1}}
    merged = deep_merge(parent, child)
    assert merged == {"a": {"b": {"c": 10, "d": 2}, "e": [3]}, "f": 1, "g": {"h": 1}}
    assert parent["a"]["b"]["c"] == 1  # inputs untouched


def test_key_lines_tables_dotted_quoted_and_multiline():
    text = (
        "[base]\n"  # 1
        'name = "x"  # [not a table]\n'  # 2
        "[datasets.2015]\n"  # 3
        "range = [\n"  # 4
        "  0.02,\n"  # 5
        "  0.13,\n"  # 6
        "]\n"  # 7
        "rebin = 10\n"  # 8
        "[grid]\n"  # 9
        '"fit.blind_nsigma" = [1, 2]\n'  # 10
        "fit.n_restarts = [1]\n"  # 11
    )
    lines = key_lines(text)
    assert lines["base.name"] == 2
    assert lines["datasets.2015"] == 3
    assert lines["datasets.2015.range"] == 4
    assert lines["datasets.2015.rebin"] == 8
    assert lines["grid.fit.blind_nsigma"] == 10
    assert lines["grid.fit.n_restarts"] == 11


# ---------------------------------------------------------------- rendering


def test_chained_references_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = quickstart_child(
        tmp_path / "c.toml",
        """
        name = "w{{ fit.blind_nsigma }}"
        output = "{{ ENV.GPRPIPE_TEST_ROOT }}/{{ base.name | upper }}"
        env = ["GPRPIPE_TEST_ROOT"]
        [plot]
        style = "{{ limit.mode[:0] }}plain"
        [fit]
        blind_nsigma = 1.96
        ls_lo_factor = "{{ 0.25 }}"
        ls_hi_factor = "{{ fit.ls_lo_factor * 4 }}"
        n_restarts = "{{ (fit.ls_hi_factor * 3) | int }}"
    """,
    )
    monkeypatch.setenv("GPRPIPE_TEST_ROOT", str(tmp_path))
    point = only_point(cfg)
    cfg_ = point.config
    assert cfg_.base.name == "w1.96"
    assert cfg_.base.output == str(tmp_path / "W1.96")  # a filter on a chained value
    # a -> b -> c: arithmetic sees the rendered number, not the string "{{ 0.25 }}"
    assert cfg_.fit.ls_lo_factor == 0.25
    assert cfg_.fit.ls_hi_factor == 1.0
    assert cfg_.fit.n_restarts == 3 and isinstance(cfg_.fit.n_restarts, int)
    assert cfg_.plot.style == "plain"


def test_render_config_chain_unit():
    data = {"a": "{{ b }}-a", "b": "{{ c }}-b", "c": "{{ d * 2 }}", "d": 21, "e": ["{{ a }}"]}
    out = render_config(data)
    assert out == {"a": "42-b-a", "b": "42-b", "c": "42", "d": 21, "e": ["42-b-a"]}


def test_tests_and_filters_see_a_templated_value_rendered():
    """Jinja2's type tests and ``tojson`` look at a value's type: on a value that is itself
    a template they answered for its placeholder (``is number`` false for a seed of
    ``{{ 1000 + 7 }}``, ``is callable`` true), and a run computed with the wrong branch
    (a review)."""
    data = {
        "seed": "{{ 1000 + 7 }}",
        "label": "{{ 'x' }}",
        "a": "{{ 'number' if seed is number else 'not a number' }}",
        "b": "{{ 4 if label is string else 1 }}",
        "c": "{{ 'callable' if label is callable else 'ok' }}",
        "d": "{{ label | tojson }}",
        "e": "{{ [seed, label] | tojson }}",
        "f": "{{ 'yes' if seed is sameas seed else 'no' }}",
    }
    out = render_config(data)
    assert out == {
        "seed": "1007",
        "label": "x",
        "a": "number",
        "b": "4",
        "c": "ok",
        "d": '"x"',
        "e": '[1007, "x"]',
        "f": "yes",
    }
    # a filter of the value's own table (its keys) renders; reading the value itself is a
    # cycle (the own-diff review: the first version called both a cycle)
    own = {"t": {"a": "{{ t | join('+') }} {{ t | length }}", "b": 1}}
    assert render_config(own) == {"t": {"a": "a+b 2", "b": 1}}
    # two of them (they waited for each other: the whole-diff review)
    two = {"t": {"a": "{{ t | join('+') }}", "b": "x{{ t | length }}"}}
    assert render_config(two) == {"t": {"a": "a+b", "b": "x2"}}
    for reads_itself in (
        "{{ t | tojson }}",
        "{{ 'self' if t.a is string else 'placeholder' }}",
        "{{ [t.a] | select('string') | list | length }}",
        "{{ t | dictsort | map('last') | select('string') | list | length }}",
    ):
        with pytest.raises(GprpipeError, match=r"a reference cycle among t\.a"):
            render_config({"t": {"a": reads_itself, "b": 1}})


def test_reference_cycle_is_an_error_naming_the_keys():
    with pytest.raises(GprpipeError) as info:
        render_config({"x": "{{ y }}", "y": "{{ x }}", "z": 1})
    assert "cycle" in str(info.value) and "x" in str(info.value) and "y" in str(info.value)


def test_self_reference_cycle_with_default_output(tmp_path: Path):
    cfg = quickstart_child(tmp_path / "c.toml", 'name = "x{{ base.output }}"\n')
    (msg,) = errors_of(cfg)
    assert msg.startswith(f"{cfg}:3: base.name:")
    assert "cycle" in msg and "base.output" in msg


def test_undefined_names_name_file_key_and_line(tmp_path: Path):
    cfg = quickstart_child(
        tmp_path / "u.toml",
        """
        name = "{{ fit.nothere }}"
        [plot]
        style = "{{ nope }}"
        [fit]
        blind_nsigmaa = 2
    """,
    )
    errors = errors_of(cfg)
    assert len(errors) == 3  # every error at once, typos included
    assert errors[0].startswith(f"{cfg}:3: base.name: undefined name")
    assert "nothere" in errors[0]
    assert errors[1].startswith(f"{cfg}:5: plot.style: undefined name")
    assert "'nope' is undefined" in errors[1]
    assert errors[2].startswith(f"{cfg}:7: fit.blind_nsigmaa: unknown key")


def test_number_in_numeric_field_is_a_number(tmp_path: Path, cli):
    cfg = quickstart_child(
        tmp_path / "n.toml",
        """
        name = "{{ 2015 }}"
        [fit]
        n_restarts = "{{ 1 + 2 }}"
        blind_nsigma = "{{ 1.96 }}"
    """,
    )
    code, out, err = cli("render", cfg, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fit"]["n_restarts"] == 3 and isinstance(data["fit"]["n_restarts"], int)
    assert data["fit"]["blind_nsigma"] == 1.96
    assert data["base"]["name"] == "2015"  # a string field stays a string
    # the TOML rendering round-trips to the same values
    code, out, _ = cli("render", cfg)
    assert code == 0
    fit = {k: v for k, v in data["fit"].items() if v is not None}  # TOML has no null
    assert tomllib.loads(out)["fit"] == fit


def test_context_pwd_env_user_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPRPIPE_TEST_TAG", "tag42")
    cfg = quickstart_child(
        tmp_path / "ctx.toml",
        """
        name = "{{ ENV.GPRPIPE_TEST_TAG }}-{{ gprpipe.version }}"
        env = ["GPRPIPE_TEST_TAG"]
        output = "{{ PWD }}/out-{{ USER | length > 0 }}"
    """,
    )
    point = only_point(cfg)
    assert point.config.base.name == f"tag42-{__version__}"
    assert point.config.base.output == str(tmp_path / "out-True")


@pytest.mark.parametrize(
    "expr",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ENV.__class__.__init__ }}",
        # templates change no list or dict (this one doubled a list to 2 GB)
        "{% set l = [1] %}{% for i in range(40) %}{% set _ = l.extend(l) %}{% endfor %}x",
        "{% set d = {} %}{% set _ = d.update(a=1) %}x",
    ],
)
def test_sandbox_refuses_internals(tmp_path: Path, expr: str):
    cfg = quickstart_child(tmp_path / "s.toml", f'name = "{expr}"\n')
    (msg,) = errors_of(cfg)
    assert msg.startswith(f"{cfg}:3: base.name:")
    assert "unsafe" in msg or "undefined" in msg


@pytest.mark.parametrize("name", ["cycler", "joiner", "dict", "lipsum"])
def test_templates_see_none_of_jinja2s_globals(tmp_path: Path, name: str):
    """Templates see what the config names, range() and namespace(), not Jinja2's other
    globals (they rendered: '<class 'jinja2.utils.Cycler'>')."""
    cfg = quickstart_child(tmp_path / "s.toml", f'name = "{{{{ {name} }}}}"\n')
    assert errors_of(cfg) == [
        f"{cfg}:3: base.name: undefined name in '{{{{ {name} }}}}' ('{name}' is undefined)."
    ]


@pytest.mark.parametrize(
    "expr, what",
    [("{{ self }}", "'self'"), ("{% block a %}{{ self.a() }}{% endblock %}", "blocks")],
)
def test_templates_see_no_template_reference(tmp_path: Path, expr: str, what: str):
    """``{{ self }}`` rendered '<TemplateReference None>' and a block could call itself:
    Jinja2's own names, not the config's."""
    cfg = quickstart_child(tmp_path / "s.toml", f'name = "{expr}"\n')
    assert errors_of(cfg) == [
        f"{cfg}:3: base.name: cannot render {expr!r} ({what}: templates see the config's "
        "names, range() and namespace())."
    ]


# ---------------------------------------------------------------- validation


def test_quickstart_is_valid(cli):
    code, out, err = cli("validate", QUICKSTART)
    assert code == 0, err
    assert "valid (1 point" in out


def test_typo_names_file_key_line_and_suggests(tmp_path: Path, cli):
    """As a user would: a config inheriting quickstart with fit.blind_nsigmaa."""
    cfg = quickstart_child(
        tmp_path / "typo.toml",
        """
        [fit]
        blind_nsigmaa = 2.0
    """,
    )
    code, out, err = cli("validate", cfg)
    assert code == 1
    assert f"{cfg}:4: fit.blind_nsigmaa: unknown key; did you mean 'blind_nsigma'?" in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_no_dataset_to_scan_blames_what_left_them_out(cli):
    """Every dataset disabled by a --set: the sentence names that --set, not the shipped
    defaults file where [datasets] begins."""
    code, _, err = cli("validate", QUICKSTART, "--set", "datasets.demo.enabled=false")
    assert code == 1
    assert err.strip() == (
        "error: --set datasets.demo.enabled: no dataset to scan: demo is disabled or not in "
        "scan.datasets."
    )
    # scan.datasets lists none: enabling demo would not help, so scan.datasets is named
    sets = ("--set", "scan.datasets=[]", "--set", "datasets.demo.enabled=false")
    code, _, err = cli("validate", QUICKSTART, *sets)
    assert code == 1 and err.startswith("error: --set scan.datasets: no dataset to scan")


def test_empty_key_is_named_as_toml_spells_it(tmp_path: Path, cli):
    """``"" = 1`` (a quoted empty key) is refused with the key written as in TOML, not as a
    dangling dot and an "unknown key" without a name."""
    cfg = quickstart_child(tmp_path / "empty.toml", '[fit]\n"" = 1\n')
    code, out, err = cli("validate", cfg)
    assert code == 1
    assert err.strip() == (
        f'error: {cfg}:4: fit."": an empty key name is not a setting; remove it.'
    )
    assert "Traceback" not in out
    # at the top level, and as a grid key, the sentence had no file:line (a review)
    top = write(tmp_path / "top.toml", f'"" = 1\n[base]\ntemplate = "{QUICKSTART}"\n')
    code, _, err = cli("validate", top)
    assert code == 1
    assert err.strip() == f'error: {top}:1: "": an empty key name is not a setting; remove it.'
    grid = quickstart_child(tmp_path / "grid.toml", '[grid]\n"" = [1]\n')
    code, _, err = cli("validate", grid)
    assert code == 1
    assert err.strip() == f'error: {grid}:4: "": an empty key name is not a setting; remove it.'


def test_chunk_size_under_slurm_points_to_scan(tmp_path: Path, cli):
    """chunk_size plans the tasks of every executor, so it lives in [scan]; the old place
    [slurm] is refused with the new key named."""
    cfg = quickstart_child(
        tmp_path / "old.toml",
        """
        [slurm]
        chunk_size = 4
    """,
    )
    code, _out, err = cli("validate", cfg)
    assert code == 1
    assert f"{cfg}:4: slurm.chunk_size: unknown key; did you mean 'scan.chunk_size'?" in err
    assert len(err.strip().splitlines()) == 1
    good = quickstart_child(tmp_path / "new.toml", "[scan]\nchunk_size = 4\n")
    assert cli("validate", good)[0] == 0


def test_all_errors_reported_at_once(tmp_path: Path, cli):
    cfg = quickstart_child(
        tmp_path / "bad.toml",
        """
        engine = "dockr"
        jobs = 0
        [datasets.demo]
        rebin = 2.5
        range = [0.1, 0.05]
        hsit = "x"
        [fit]
        blind_nsigma = -1
        n_restarts = "many"
        [limit]
        alpha = 1.5
        mode = "toy"
        [plot]
        formats = ["png", "jpg"]
        [steps]
        run = ["load", "fitt"]
        [bogus]
        x = 1
    """,
    )
    code, _out, err = cli("validate", cfg)
    assert code == 1
    lines = [ln.removeprefix("error: ") for ln in err.strip().splitlines()]
    by_key = {ln.split(": ")[1]: ln for ln in lines}
    expected = {
        "base.engine": 3,
        "base.jobs": 4,
        "datasets.demo.rebin": 6,
        "datasets.demo.range": 7,
        "datasets.demo.hsit": 8,
        "fit.blind_nsigma": 10,
        "fit.n_restarts": 11,
        "limit.alpha": 13,
        "limit.mode": 14,
        "plot.formats": 16,
        "steps.run": 18,
        "bogus": 19,
    }
    assert set(by_key) == set(expected), lines
    for key, line in expected.items():
        assert by_key[key].startswith(f"{cfg}:{line}: {key}: "), by_key[key]
    assert "did you mean 'hist'?" in by_key["datasets.demo.hsit"]
    assert "greater than 0" in by_key["fit.blind_nsigma"]
    assert "less than or equal to 0.5" in by_key["limit.alpha"]
    assert "0 <= lo < hi" in by_key["datasets.demo.range"]
    assert "(got 'many')" in by_key["fit.n_restarts"]
    assert "'fitt'" in by_key["steps.run"]
    assert "'jpg'" in by_key["plot.formats"]
    assert "Traceback" not in err


def test_card_values_are_validated_with_card_location(tmp_path: Path):
    card = write(
        tmp_path / "mycard.toml",
        """
        [dataset]
        hist = "input_hist"
        range = [0.02, 0.13]
        sigma_coeffs = [0.001]
        rebin = 0
    """,
    )
    cfg = quickstart_child(
        tmp_path / "c.toml",
        f"""
        [datasets.demo]
        card = "{card.name}"
    """,
    )
    (msg,) = errors_of(cfg)
    assert msg.startswith(f"{card}:5: datasets.demo.rebin: ")


def test_missing_required_dataset_key(tmp_path: Path):
    cfg = write(
        tmp_path / "c.toml",
        """
        [datasets.x]
        hist = "h"
    """,
    )
    errors = errors_of(cfg)
    assert {e.split(": ")[1] for e in errors} == {
        "datasets.x.path",
        "datasets.x.range",
        "datasets.x.sigma_coeffs",
    }
    assert all(e.startswith(f"{cfg}:1: ") and "required but not set" in e for e in errors)


def test_a_missing_path_says_to_set_it_in_ones_own_config(tmp_path: Path):
    """A config inheriting hps2015 without its data file was told "templates/hps2015.toml:6:
    datasets.2015.path: required but not set", which sent a newcomer to the shipped
    template (a review); the sentence now says where to set it."""
    cfg = write(tmp_path / "mine.toml", '[base]\ntemplate = "hps2015"\n')
    assert errors_of(cfg) == [
        f"{REPO / 'templates' / 'hps2015.toml'}:6: datasets.2015.path: required but not set; "
        "set it in your config's [datasets.2015] table."
    ]
    # a name that is no bare TOML key is quoted, as the table must be written
    plus = write(tmp_path / "plus.toml", '[datasets."v2+run"]\nhist = "h"\n')
    assert any(
        "datasets.v2+run.path: required but not set; set it in your config's "
        '[datasets."v2+run"] table.' in e
        for e in errors_of(plus)
    ), errors_of(plus)


@pytest.mark.parametrize(
    ("key", "value"),
    [("range", "[0.02]"), ("range", "[]"), ("data_range", "[0.05]")],
)
def test_a_pair_given_too_few_values_says_so(tmp_path: Path, key: str, value: str):
    """A [low, high] pair with one value or none is set, not missing: one sentence with
    the count it needs and what was given."""
    cfg = quickstart_child(tmp_path / "c.toml", f"[datasets.demo]\n{key} = {value}\n")
    (msg,) = errors_of(cfg)
    assert msg == f"{cfg}:4: datasets.demo.{key}: needs 2 values, got {value}."


@pytest.mark.parametrize(
    ("given", "missing"),
    [("sigma_tail_m0 = 0.05", "sigma_tail_slope"), ("sigma_tail_slope = 0.02", "sigma_tail_m0")],
)
def test_a_resolution_tail_needs_both_keys(tmp_path: Path, given: str, missing: str):
    """One of the two tail keys alone was accepted and had no effect (a review)."""
    cfg = quickstart_child(tmp_path / "c.toml", f"[datasets.demo]\n{given}\n")
    (msg,) = errors_of(cfg)
    key = given.split(" = ")[0]
    assert msg == (
        f"{cfg}:4: datasets.demo.{key}: the resolution tail needs datasets.demo.{missing} "
        "too (give both, or neither)."
    )


def test_refit_toys_are_among_the_whole_scan_toys(tmp_path: Path):
    """``global_toys_refit`` above ``global_toys`` was cut to it without a word (a review)."""
    cfg = quickstart_child(
        tmp_path / "c.toml", "[limit]\nglobal_toys = 8\nglobal_toys_refit = 20\n"
    )
    (msg,) = errors_of(cfg)
    assert msg == (
        f"{cfg}:5: limit.global_toys_refit: 20 is more than limit.global_toys = 8; the refit "
        "rescans the first global_toys_refit of those toys."
    )


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path):
    """Some editors start a UTF-8 file with a byte-order mark, which TOML does not allow
    (it was "invalid TOML ... at line 1, column 1"): it is dropped; lines stay as they are."""
    cfg = quickstart_child(tmp_path / "c.toml", "[scan]\nmasses = [60]\n")
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    (msg,) = errors_of(cfg)
    assert msg == f"{cfg}:4: scan.masses: 60 is not a mass in GeV; did you mean 0.060 GeV?"
    cfg.write_bytes(b"\xef\xbb\xbf[base]\xff\n")  # the byte counted in the file, mark included
    with pytest.raises(GprpipeError) as info:
        read_config_text(cfg)
    assert str(info.value) == (
        f"{cfg}: not a config file (byte 9 is not UTF-8 text; a config is TOML)."
    )


def test_scan_datasets_must_exist(tmp_path: Path):
    cfg = quickstart_child(tmp_path / "c.toml", '[scan]\ndatasets = ["demo", "2016"]\n')
    (msg,) = errors_of(cfg)
    # a check across sections names the file, line and key like a field's own check
    assert msg == f"{cfg}:4: scan.datasets: '2016' is not a dataset (have: demo)."


def test_schema_is_json_with_every_section(cli):
    code, out, _ = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert set(schema["properties"]) >= {
        "base",
        "datasets",
        "scan",
        "fit",
        "limit",
        "inject",
        "plot",
        "steps",
        "slurm",
        "grid",
    }
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert set(defs["Fit"]["properties"]) >= {
        "blind_nsigma",
        "train_exclude_nsigma",
        "ls_lo_factor",
        "ls_hi_factor",
        "n_restarts",
    }
    assert set(defs["Dataset"]["required"]) >= {"path", "range", "sigma_coeffs"}


# ---------------------------------------------------------------- --set


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("inject.masses=[0.03, 0.06]", "inject.masses", [0.03, 0.06]),
        ("base.name=foo", "base.name", "foo"),
        ("base.name = foo bar", "base.name", "foo bar"),
        ('base.name="quoted"', "base.name", "quoted"),
        ("fit.n_restarts=4", "fit.n_restarts", 4),
        ("fit.blind_nsigma=1.96", "fit.blind_nsigma", 1.96),
        ("inject.refit_gp=true", "inject.refit_gp", True),
        ("datasets.demo.path=/x/y.root", "datasets.demo.path", "/x/y.root"),
        ("base.output=", "base.output", ""),
    ],
)
def test_parse_override(item: str, key: str, value):
    assert parse_override(item) == (key, value)


def test_parse_override_needs_equals():
    with pytest.raises(GprpipeError, match=r"key\.path=VALUE"):
        parse_override("base.name")


def test_set_overrides_win_and_are_validated(tmp_path: Path, cli):
    code, out, err = cli(
        "render",
        QUICKSTART,
        "--format",
        "json",
        *settings(
            "inject.masses=[0.03, 0.06]",
            "base.name=foo",
            "base.output=" + str(tmp_path / "o"),
            "datasets.demo.rebin=20",
        ),
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["inject"]["masses"] == [0.03, 0.06]
    assert data["base"]["name"] == "foo" and data["base"]["output"] == str(tmp_path / "o")
    assert data["datasets"]["demo"]["rebin"] == 20
    code, _, err = cli(
        "validate", QUICKSTART, "--set", "fit.blind_nsigmaa=2", "--set", "fit.n_restarts=-1"
    )
    assert code == 1
    # the key is named once (the --set names it)
    assert "error: --set fit.blind_nsigmaa: unknown key; did you mean 'blind_nsigma'?" in err
    assert "error: --set fit.n_restarts: Input should be greater than or equal to 0" in err


def test_an_unknown_key_like_no_other_lists_what_its_table_takes(cli):
    """A newcomer's guess is often close to no key: the sentence then names the keys its
    table takes (it said "unknown key." alone)."""
    from gprpipe.config.schema import Displays, Fit

    code, _, err = cli(
        "validate", QUICKSTART, "--set", "fit.nope=1", "--set", "plot.displays.nope=1"
    )
    assert code == 1
    assert f"error: --set fit.nope: unknown key; [fit] takes {', '.join(Fit.model_fields)}." in err
    assert f"[plot.displays] takes {', '.join(Displays.model_fields)}." in err
    code, _, err = cli("validate", QUICKSTART, "--set", "nope=1")
    assert err.startswith("error: --set nope: unknown key; the config's sections are base, ")
    code, _, err = cli("validate", QUICKSTART, "--set", "datasets.demo.nope=1")
    assert "unknown key; a dataset takes card, label, path, hist, range," in err


def test_set_relative_data_path_is_relative_to_cwd(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.root").write_bytes(b"")
    point = only_point(QUICKSTART, ("datasets.demo.path=d.root",))
    assert point.config.datasets["demo"].path == str(tmp_path / "d.root")


def refused_before_start(cli, cfg: Path, run_dir: Path, sentence: str) -> None:
    """``validate`` and ``run`` both refuse ``cfg`` with ``sentence``; the run writes nothing."""
    for command in ("validate", "run"):
        code, _, err = cli(command, cfg, "--set", f"base.output={run_dir}")
        assert code == 1 and err.strip() == sentence
    assert not run_dir.exists()


def test_validate_reads_the_patterns_and_files_that_injection_and_toyscan_need(tmp_path: Path, cli):
    """Each passed validate and then failed in its task: an injection mass beyond the
    test masses (nothing to inject into), a histogram pattern that matches nothing, a
    missing toy file. ``run`` refuses the first two before it starts."""
    cfg = quickstart_child(
        tmp_path / "a.toml",
        """
        [scan]
        masses = [0.06, 0.08]
        [inject]
        masses = [0.09]
        [steps]
        run = ["load", "fit", "inject"]
        """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1 and err.strip() == (
        f"error: {cfg}:6: inject.masses: 0.09 GeV lies outside the test masses of every "
        "scanned dataset (demo: 0.06-0.08 GeV); an injection uses the fits around it."
    )
    cfg = quickstart_child(
        tmp_path / "b.toml",
        """
        [inject]
        masses = [0.06]
        refit_gp = true
        background = "histograms"
        histograms = "nomatch/*"
        [steps]
        run = ["load", "fit", "inject"]
        """,
    )
    refused_before_start(
        cli,
        cfg,
        tmp_path / "run",
        f"error: {cfg}:7: inject.histograms: {DEMO_ROOT}: no histogram matches "
        "inject.histograms 'nomatch/*'.",
    )
    # histograms of another binning than the data: the inject task refused them
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    data = tmp_path / "data.root"
    write_hist(data, counts, edges)
    with uproot.update(data) as f:
        f["f/f_toy_0"] = (counts[:1500], edges[:1501])
        f["f/f_toy_1"] = (counts[:1500], edges[:1501])
    code, _, err = cli(
        "validate", cfg, "--set", f"datasets.demo.path={data}", "--set", "inject.histograms=f/*"
    )
    assert code == 1 and err.strip() == (
        f"error: --set inject.histograms: {data}: histogram 'f/f_toy_0' (inject.histograms) "
        "does not have the binning of 'input_hist'."
    )
    cfg = quickstart_child(
        tmp_path / "c.toml",
        """
        [toyscan]
        file = "toys.root"
        [steps]
        run = ["load", "toyscan"]
        """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1 and err.strip() == (
        f"error: {cfg}:4: toyscan.file: {tmp_path / 'toys.root'}: toy file not found (point "
        "it at your file: --set toyscan.file=FILE, or edit the config)."
    )
    # not a ROOT file: the file is at fault (it was blamed on toyscan.pattern, over 2 lines)
    (tmp_path / "toys.root").write_text("# Quickstart\n" * 100)
    code, _, err = cli("validate", cfg)
    assert code == 1 and err.strip() == (
        f"error: {cfg}:4: toyscan.file: {tmp_path / 'toys.root'}: cannot open as a ROOT file "
        "(not a ROOT file: first four bytes are b'# Qu')."
    )
    # toys that do not cover the scan range: every toy mass failed in the toyscan task
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    write_hist(tmp_path / "toys.root", counts[:800], edges[:801], "t/t_toy_0")
    refused_before_start(
        cli,
        cfg,
        tmp_path / "run",
        f"error: {cfg}:4: toyscan.file: toy 't/t_toy_0', scanned with datasets.demo.range: "
        f"[0.02, 0.13] GeV extends past histogram 't/t_toy_0' in {tmp_path / 'toys.root'} "
        "(0-0.04 GeV).",
    )


def test_validate_refuses_studies_that_would_run_without_toys(tmp_path: Path, cli, shared_data):
    """Each ran its tasks before: background histograms of which one matches (no pull
    width from one toy); a blinded run given the data histogram as a toy (refused by every
    task after the fits); background histograms for a combined injection (refused by the
    combined task after the datasets' had run)."""
    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    data = tmp_path / "data.root"
    write_hist(data, counts, edges)
    with uproot.update(data) as f:
        f["one/f_toy_0"] = (counts + 1, edges)
        f["copy/c_0"] = (counts, edges)
        f["copy/c_1"] = (counts + 1, edges)
    cfg = quickstart_child(
        tmp_path / "a.toml",
        f"""
        [datasets.demo]
        path = "{data}"
        [inject]
        masses = [0.06]
        refit_gp = true
        background = "histograms"
        histograms = "one/*"
        [steps]
        run = ["load", "fit", "inject"]
        """,
    )
    refused_before_start(
        cli,
        cfg,
        tmp_path / "run",
        f"error: {cfg}:9: inject.histograms: {data}: 'one/*' matches 1 histogram "
        "('one/f_toy_0'); its background histograms are the study's toys, and a pull width "
        "needs at least 2.",
    )
    code, _, err = cli("validate", cfg, *settings("inject.histograms=copy/*", "base.blind=true"))
    assert code == 1 and err.strip() == (
        f"error: --set inject.histograms: {data}: histogram 'copy/c_0' holds the observed "
        "counts of dataset demo (histogram 'input_hist'); a blinded run uses no observed "
        "count in a blind window: choose toy histograms, or unblind (gprpipe run --unblind)."
    )
    assert cli("validate", cfg, *settings("inject.histograms=copy/*"))[0] == 0
    both = [
        f"datasets.2015.path={shared_data}/funcform_2015_toys.root",
        f"datasets.2016.path={shared_data}/funcform_2016_toys.root",
        "inject.masses=[0.06]",
        "inject.refit_gp=true",
        "inject.background=histograms",
        "inject.histograms=fShiftSigPow/*_toy_*",
        'steps.run=["load", "fit", "limit", "inject"]',
    ]
    combined = REPO / "user_configs" / "hps2015_2016_combined.toml"
    code, _, err = cli("validate", combined, *settings(*both))
    assert code == 1 and err.strip() == (
        "error: --set inject.background: 'histograms' is not available for the combination "
        "(0.06 GeV lies in the scans of several datasets): set scan.combined = false or "
        "inject.background = 'gp'."
    )
    assert cli("validate", combined, *settings(*both, "scan.combined=false"))[0] == 0


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("slurm.time=abc", "'abc' is not a SLURM time limit (minutes, HH:MM:SS, D-HH:MM:SS or "),
        ("slurm.time=1:2:3:4", "'1:2:3:4' is not a SLURM time limit"),
        ("slurm.memory=lots", "'lots' is not a SLURM memory size (e.g. 4G, 500M, 4000;"),
        ("slurm.memory=4 GB", "'4 GB' is not a SLURM memory size"),
        # a bare 4 is 4 MB to sbatch: every task killed where memory is enforced (a review)
        ("slurm.memory=4", "'4' is 4 MB to SLURM (a size without unit is in megabytes), too "),
        ("slurm.memory=4000", None),
        ("slurm.time=90", None),
        ("slurm.time=1-12:00:00", None),
        ("slurm.time=UNLIMITED", None),
        ("slurm.memory=500m", None),
        ("slurm.memory=0", None),
    ],
)
def test_slurm_time_and_memory_are_checked_before_sbatch(cli, setting: str, error: str | None):
    """sbatch refused these only at submission, naming neither file nor key."""
    code, _, err = cli("validate", QUICKSTART, "--set", setting)
    if error is None:
        assert code == 0, err
    else:
        key = setting.split("=")[0]
        assert code == 1 and err.startswith(f"error: --set {key}: {error}")


def test_slurm_time_written_unquoted_is_a_time_limit(tmp_path: Path):
    """``slurm.time=00:30:00`` (the README's command) is a TOML time, refused as "not a
    valid string"; it is the time limit it reads as (and ``time = 30`` minutes)."""
    _, points = load_points(QUICKSTART, ["slurm.time=00:30:00"])
    assert points[0].config.slurm.time == "00:30:00"
    cfg = quickstart_child(tmp_path / "c.toml", "[slurm]\ntime = 30\n")
    assert load_points(cfg)[1][0].config.slurm.time == "30"


def test_set_with_an_inline_table_merges_into_the_section(tmp_path: Path):
    """--set 'scan={combined=false}' replaced the whole section: scan.masses vanished and
    the run became the full scan; the table merges, as a child config's does."""
    cfg = quickstart_child(tmp_path / "c.toml", "[scan]\nmasses = [0.03, 0.06]\n")
    _, points = load_points(cfg, ["scan={combined=false}", "plot={formats=['png']}"])
    c = points[0].config
    assert c.scan.masses == [0.03, 0.06] and c.scan.combined is False
    assert c.plot.formats == ["png"] and c.plot.style == "hep"


def test_blinding_that_varies_over_the_grid_is_refused(tmp_path: Path):
    """``base.blind`` rendered from a key the grid varies would unblind some points
    without ``--unblind``: refused, naming the points; ``--unblind`` runs them all."""
    c = quickstart_child(
        tmp_path / "c.toml",
        'blind = "{{ fit.blind_nsigma > 1 }}"\n[grid]\n"fit.blind_nsigma" = [0.5, 1.64]\n',
    )
    (msg,) = errors_of(c)
    assert msg == (
        f"{c}:3: base.blind: renders true at grid points blind_nsigma-1.64 and false at "
        "blind_nsigma-0.5: blinding is one setting of the whole config, lifted only by "
        "'gprpipe run --unblind' (recorded in run.json)."
    )
    _, points = load_points(c, ["base.blind=false"])
    assert [p.config.base.blind for p in points] == [False, False]
    # what `run --unblind` does: it was refused by the same check when it read the config
    # as written (to record that it was blind)
    code, out, err = run_cli_here("run", c, "--unblind", "--dry-run")
    assert code == 0 and out.startswith("# 12 tasks"), err


def test_figure_labels_with_bad_math_text_are_refused_before_the_run(tmp_path: Path):
    """A label the plot step could not lay out (it failed after every other step ran) is
    refused by validate and run, naming the key; valid math text and a lone dollar pass."""
    assert errors_of(QUICKSTART, ('plot.status="Prelim $\\\\foo$"',)) == [
        "--set plot.status: 'Prelim $\\foo$' is no valid math text (\\foo ^ "
        "ParseFatalException: Unknown symbol: \\foo, found '\\' (at char 0), (line:1, col:1))."
    ]
    (msg,) = errors_of(QUICKSTART, ('datasets.demo.label="$^{$"',))
    assert msg.startswith("--set datasets.demo.label: '$^{$' is no valid math text (")
    for ok in ('datasets.demo.label="Demo $\\\\epsilon^2$"', 'plot.status="costs $5"'):
        load_points(QUICKSTART, [ok])
    # braces nested deeper than a figure can draw: 22 levels of \sqrt{ gave "internal
    # error: RecursionError", 21 passed and failed the plot step (a review); 10 draw
    for depth in (11, 22):
        label = "$" + "\\\\sqrt{" * depth + "x" + "}" * depth + "$"
        (msg,) = errors_of(QUICKSTART, (f'plot.experiment="{label}"',))
        assert msg.endswith(
            f"is no valid math text (braces nested {depth} deep, more than the 10 a figure "
            "can draw)."
        ), msg
    load_points(QUICKSTART, ['plot.experiment="$' + "\\\\sqrt{" * 10 + "x" + "}" * 10 + '$"'])
    # braces outside the math are text (refused at first: the diff review)
    text = "".join("{" + c for c in "abcdefghijk") + "}" * 11
    load_points(QUICKSTART, [f'plot.experiment="$e^+e^-$ {text}"'])


@pytest.mark.parametrize(
    ("override", "sentence"),
    [
        (
            "limit.band_toys=1000000000000",
            "--set limit.band_toys: Input should be less than or equal to 100000 "
            "(got 1000000000000).",
        ),
        (
            "inject.n_toys=100001",
            "--set inject.n_toys: Input should be less than or equal to 100000 (got 100001).",
        ),
        (
            "limit.global_toys=2000000",
            "--set limit.global_toys: Input should be less than or equal to 1000000 (got 2000000).",
        ),
        (
            "fit.n_restarts=101",
            "--set fit.n_restarts: Input should be less than or equal to 100 (got 101).",
        ),
    ],
)
def test_toy_counts_that_no_worker_could_hold_are_refused(override: str, sentence: str):
    """They passed validation and failed the limit task with an out-of-memory internal
    error (or a fit that never ended) after the earlier steps ran."""
    assert errors_of(QUICKSTART, (override,)) == [sentence]


def test_a_switch_takes_true_or_false_only(tmp_path: Path):
    """0, 1, "yes" and "off" were read as switches (pydantic's lax booleans): a typo such
    as ``require_two_sidebands = 0`` turned a quality check off without a word. The text
    of a Jinja expression ("True") still counts."""
    c = quickstart_child(
        tmp_path / "c.toml", '[fit]\nrequire_two_sidebands = "yes"\n[scan]\ncombined = 0\n'
    )
    assert sorted(errors_of(c)) == [
        f"{c}:4: fit.require_two_sidebands: takes true or false, not 'yes'.",
        f"{c}:6: scan.combined: takes true or false, not 0.",
    ]
    assert errors_of(QUICKSTART, ('inject.refit_gp="off"',)) == [
        "--set inject.refit_gp: takes true or false, not 'off'."
    ]
    j = quickstart_child(tmp_path / "j.toml", '[fit]\nrequire_two_sidebands = "{{ 1 > 2 }}"\n')
    assert only_point(j).config.fit.require_two_sidebands is False


def test_true_is_neither_a_repeated_number_nor_called_one(tmp_path: Path):
    """Python's True == 1: a grid of [1.0, true] said "lists True twice", and a table
    given as true said it "takes a number"."""
    g = quickstart_child(tmp_path / "g.toml", '[grid]\n"fit.blind_nsigma" = [1.0, true]\n')
    assert errors_of(g) == [f"{g}:4: fit.blind_nsigma: takes a number, not true/false."]
    g1 = quickstart_child(tmp_path / "g1.toml", '[grid]\n"fit.blind_nsigma" = [1.0, 1]\n')
    assert errors_of(g1) == [
        f"{g1}:4: grid.fit.blind_nsigma: lists 1 twice (two identical points)."
    ]
    s = write(tmp_path / "s.toml", f'slurm = true\n[base]\ntemplate = "{QUICKSTART}"\n')
    assert errors_of(s) == [
        f"{s}:1: slurm: Input should be a valid dictionary or instance of Slurm (got True)."
    ]


def test_overrides_with_empty_key_parts_or_that_make_a_value_a_table_are_named():
    for item in (".=1", "a..b=1", "fit.=2"):
        assert errors_of(QUICKSTART, (item,)) == [f"--set {item!r}: expected key.path=VALUE."]
    # base.name turned into a table by the override: blamed on it, not on the config file
    assert errors_of(QUICKSTART, ("base.name.x=1",)) == [
        "--set base.name.x: base.name: Input should be a valid string."
    ]


def test_slurm_extra_may_not_choose_the_jobs_environment():
    """``slurm.extra = ['--export=ALL,BASH_ENV=/tmp/x/evil.sh']`` was valid, and every job's
    bash ran that file (a review: a config value choosing code that runs, as would
    LD_PRELOAD or PYTHONPATH). --export, --export-file and --get-user-env (and sbatch's
    abbreviations of them) are refused; other options of the same letters are not."""
    why = (
        "sets the jobs' environment (e.g. BASH_ENV, LD_PRELOAD or PYTHONPATH: code that "
        "every job would run, which no config value may choose); the jobs take the "
        "environment of the command that submits them."
    )
    assert errors_of(QUICKSTART, ("slurm.extra=['--export=ALL,BASH_ENV=/tmp/x/evil.sh']",)) == [
        f"--set slurm.extra: '--export=ALL,BASH_ENV=/tmp/x/evil.sh': --export {why}"
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--export-file=/tmp/env']",)) == [
        f"--set slurm.extra: '--export-file=/tmp/env': --export-file {why}"
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--get-user-env']",)) == [
        f"--set slurm.extra: '--get-user-env': --get-user-env {why}"
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--exp=NONE']",)) == [
        "--set slurm.extra: '--exp=NONE': sbatch may read --exp as --export (it takes "
        f"abbreviations), and --export {why}"
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--container=/tmp/x/bundle']",)) == [
        "--set slurm.extra: '--container=/tmp/x/bundle': --container runs every job in an OCI "
        "bundle the config names, not what gprpipe runs; choose an image with base.engine "
        "and base.image."
    ]
    point = only_point(QUICKSTART, ("slurm.extra=['--exclusive', '--exclude=n1']",))
    assert point.config.slurm.extra == ["--exclusive", "--exclude=n1"]


def test_slurm_extra_may_not_set_what_the_job_scripts_set():
    """``slurm.extra = ['--array=0-3']`` wrote a second --array line that won: indices
    1-3 of every array failed ("no task for array index 1") and the run said "6 done"."""
    assert errors_of(QUICKSTART, ("slurm.extra=['--array=0-3']",)) == [
        "--set slurm.extra: '--array=0-3': gprpipe sets --array itself (it runs each task once)."
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['#SBATCH -t 10']",)) == [
        "--set slurm.extra: '#SBATCH -t 10': gprpipe sets --time itself; set slurm.time instead."
    ]
    # sbatch takes abbreviations: '--outp=/tmp/x' sent the logs outside the run folder
    # (the run then pointed at logs that did not exist), '--chd' moved the job's folder
    assert errors_of(QUICKSTART, ("slurm.extra=['--outp=/tmp/x_%A.out']",)) == [
        "--set slurm.extra: '--outp=/tmp/x_%A.out': sbatch may read --outp as --output (it "
        "takes abbreviations), and gprpipe sets --output itself (it runs each task once)."
    ]
    # --test-only submitted nothing ("sbatch gave no job id"), --wrap was silently ignored
    assert errors_of(QUICKSTART, ("slurm.extra=['--test']",)) == [
        "--set slurm.extra: '--test': sbatch may read --test as --test-only (it takes "
        "abbreviations), and --test-only submits nothing (gprpipe checks the settings with "
        "it itself)."
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--wrap=hostname']",)) == [
        "--set slurm.extra: '--wrap=hostname': --wrap would replace the task's job script."
    ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--chd=/tmp']",)) == [
        "--set slurm.extra: '--chd=/tmp': sbatch may read --chd as --chdir (it takes "
        "abbreviations), and gprpipe sets --chdir itself (it runs each task once)."
    ]
    # the scripts set --mem, and sbatch refuses --mem-per-cpu beside it
    assert errors_of(QUICKSTART, ("slurm.extra=['--mem-per-cpu=1G']",)) == [
        "--set slurm.extra: '--mem-per-cpu=1G': sbatch refuses --mem-per-cpu beside the --mem "
        "that gprpipe sets; set slurm.memory instead."
    ]
    # a bundle of short options is read letter by letter up to the one taking an
    # argument ('-vJmine' renamed the jobs, and gprpipe lost track of them); so is each
    # option of an entry holding several, as sbatch reads an #SBATCH line
    for entry, option in (
        ("-vJmine", "--job-name"),
        ("-Ho/tmp/x", "--output"),
        ("-uJx", "--job-name"),
    ):
        assert errors_of(QUICKSTART, (f"slurm.extra=['{entry}']",)) == [
            f"--set slurm.extra: '{entry}': gprpipe sets {option} itself (it runs each task once)."
        ]
    assert errors_of(QUICKSTART, ("slurm.extra=['--exclusive -p gpu']",)) == [
        "--set slurm.extra: '--exclusive -p gpu': gprpipe sets --partition itself; set "
        "slurm.partition instead."
    ]
    # an entry is one sbatch argument: '--nodes 1' was rendered as the unknown option
    # '--nodes 1' (sbatch refused the run) although the config had taken it
    for entry, written in (
        ("--nodes 1", "--nodes=1"),
        ("-vC cpu", "-vCcpu"),
        ("--comment '-o x'", "--comment=-o x"),
        ("--nodes =1", "--nodes=1"),
    ):
        assert errors_of(QUICKSTART, (f"slurm.extra=[{entry!r}]",)) == [
            f"--set slurm.extra: {entry!r}: one sbatch option per entry, its value after '=' "
            f"(write {written!r})."
        ]
    # several options in one entry: no one spelling to offer (sbatch refused the
    # '--nodes=1 --ntasks 2' the first hint offered)
    assert errors_of(QUICKSTART, ("slurm.extra=['--nodes 1 --ntasks 2']",)) == [
        "--set slurm.extra: '--nodes 1 --ntasks 2': one sbatch option per entry, its value "
        "after '=' (e.g. '--nodes=1'); give each option an entry of its own."
    ]
    extra = ["--constraint=cpu", "--exclusive", "--time-min=10", "--gres=gpu:1", "-vCcpu"]
    extra += ["--comment=-o x", "-C-pfoo"]  # values, not options
    _, (point,) = load_points(QUICKSTART, [f"slurm.extra={extra!r}"])
    assert point.config.slurm.extra == extra


def test_values_that_validate_passed_and_the_run_refused_are_refused_by_validate(
    tmp_path: Path, cli
):
    """A review: validate passed these and the run refused them (an image with a comma or a
    double quote, which apptainer's environment cannot carry; a container's run directory
    or data folder whose path holds ':' or ','; a SLURM time with spaces around it), or
    sbatch would have read them otherwise (an option swallowed by another's value, a bare
    '--'); a GP refit per display toy and the CPUs of a job had no bound."""
    for value, said in (
        ('base.image="docker://x/y:1,PYTHONPATH=/tmp/evil"', "commas, double quotes"),
        # apptainer evaluates GPRPIPE_IMAGE in a shell: the run refused it naming no key
        ('base.image="/tmp/my$(id);img.sif"', "'$', backquotes or backslashes"),
        ("slurm.extra=['--constraint=cpu --exclusive']", "give '--exclusive' an entry of its own"),
        ("slurm.extra=['--']", "is not an sbatch option"),
        ("slurm.extra=['--=x']", "is not an sbatch option"),
        ("slurm.cpus_per_task=100000000000000000000", "less than or equal to 4096"),
        ("plot.displays.refit_toys=100000", "less than or equal to 1000"),
        ('base.name="a\u061cb"', "invisible formatting characters"),
        ('datasets.demo.label="x\U000e0041"', "invisible formatting characters"),
    ):
        (error,) = errors_of(QUICKSTART, (value,))
        assert error.startswith(f"--set {value.split('=')[0]}") and said in error, error
    # a quoted value is read whole by sbatch: its dashes are no options
    _, (p0,) = load_points(QUICKSTART, ["""slurm.extra=['--comment="GP fit -x"']"""])
    assert p0.config.slurm.extra == ['--comment="GP fit -x"']
    point = only_point(QUICKSTART, ('slurm.time=" 01:30:00 "', 'slurm.memory=" 2G"'))
    assert (point.config.slurm.time, point.config.slurm.memory) == ("01:30:00", "2G")
    # a container's folders
    odd = tmp_path / "dat:a"
    odd.mkdir()
    (odd / "f.root").write_bytes(Path(point.config.datasets["demo"].path).read_bytes())
    link = tmp_path / "linked.root"
    link.symlink_to(odd / "f.root")
    for value, key in (
        (f"base.output={tmp_path / 'runs' / 'a,b'}", "base.output"),
        (f"datasets.demo.path={link}", "datasets.demo.path"),
    ):
        code, out, err = cli("validate", QUICKSTART, "--set", "base.engine=podman", "--set", value)
        assert code == 1 and out == "", err
        assert err.startswith(f"error: --set {key}: ") and "cannot mount a path that holds" in err
        code, _, err = cli("validate", QUICKSTART, "--set", value)  # local: nothing to mount
        assert code == 0, err
    # a file named with a time or a comma in a plain folder: mounted by its folder (a review:
    # refused once each file was mounted alone, though it ran before), which is said (the
    # README promised each file alone: a review)
    (tmp_path / "plain").mkdir()
    for name in ("demo_2015-12-05T10:00:00.root", "demo_a,b.root"):
        (tmp_path / "plain" / name).write_bytes((odd / "f.root").read_bytes())
        value = f'datasets.demo.path="{tmp_path / "plain" / name}"'
        code, _, err = cli("validate", QUICKSTART, "--set", "base.engine=podman", "--set", value)
        assert code == 0, err
        assert err == (
            f"notice: --set datasets.demo.path: the name of {tmp_path / 'plain' / name} holds "
            "':' or ',', which a bind spec cannot write: a podman container mounts "
            f"{tmp_path / 'plain'} (read-only) and shows the task every file there; under a "
            "plain name it is mounted alone.\n"
        )


def test_the_mount_check_names_the_toy_file(tmp_path: Path, cli):
    """A review: validate checked only the datasets' folders for ':' or ',', so a toy file
    (toyscan.file) in such a folder passed and the run refused it at its first toyscan
    task, naming the task, not the key. The check now applies the engines' own rule
    (``gprpipe.io.paths.mount_files``) to every data file of the run."""
    demo = Path(only_point(QUICKSTART, ()).config.datasets["demo"].path)
    odd = tmp_path / "to:ys"
    odd.mkdir()
    (odd / "toys.root").write_bytes(demo.read_bytes())
    toyscan = (
        "base.engine=podman",
        'steps.run=["load", "fit", "limit", "toyscan"]',
        f"toyscan.file={odd / 'toys.root'}",
        "toyscan.pattern=input_hist",
    )
    code, out, err = cli("validate", QUICKSTART, *settings(*toyscan))
    assert code == 1 and out == "", err
    assert err == (
        f"error: --set toyscan.file: {odd / 'toys.root'}: a podman container cannot mount a "
        "path that holds ':' or ',' (a bind spec cannot write them); move it, or run with "
        'base.engine = "local".\n'
    )
    # without the toyscan step the toy file is no input of any task
    code, _, err = cli("validate", QUICKSTART, *settings(*toyscan[:1], toyscan[2]))
    assert code == 0, err


def test_a_shell_variable_in_a_path_is_refused_with_the_way_to_say_it(tmp_path: Path, cli):
    """A review: base.output = "$HOME/runs" passed validate and the run made a folder
    literally named "$HOME" in the working folder (no shell reads the config). A path
    part that is a shell variable is refused, with the config's way to read one; a file
    of that very name, if one is there, is taken as written."""
    for key, value in (("base.output", "$HOME/runs"), ("datasets.demo.path", "${DATA}/x.root")):
        code, out, err = cli("validate", QUICKSTART, "--set", f"{key}={value}")
        name = value.split("/")[0].strip("${}")
        assert (code, out) == (1, "") and err.strip() == (
            f"error: --set {key}: {value}: {value.split('/')[0]} is not expanded (no shell "
            f"reads the config): write the path, or list {name} in base.env and write "
            f"{{{{ ENV.{name} }}}}."
        ), err
    assert not (REPO / "$HOME").exists()
    odd = tmp_path / "$DATA"
    odd.mkdir()
    (odd / "demo.root").write_bytes(DEMO_ROOT.read_bytes())
    code, _, err = cli("validate", QUICKSTART, "--set", f"datasets.demo.path={odd / 'demo.root'}")
    assert code == 0, err
    code, _, err = cli("validate", QUICKSTART, "--set", f"base.output={tmp_path}/runs/a$b")
    assert code == 0, err  # (not a variable of its own part)


def test_a_path_too_long_for_the_file_system_names_its_key(tmp_path: Path, cli):
    """A 300-character name, data path, card, toy file or template raised 'File name too
    long' where it was first used: the TUI's check died with a traceback, and validate
    said so without the file, line or key (a review)."""
    from gprpipe.tui.model import check_text

    long = "a" * 300
    for key, said in (
        ("base.output", "holds a file or folder name of 300 bytes (at most 255)"),
        ("datasets.demo.path", "holds a file or folder name of 300 bytes (at most 255)"),
        ("toyscan.file", "holds a file or folder name of 300 bytes (at most 255)"),
        ("datasets.demo.card", "cannot resolve this path (File name too long)"),
    ):
        code, out, err = cli("validate", QUICKSTART, "--set", f"{key}={long}")
        assert code == 1 and out == "" and err.startswith(f"error: --set {key}: "), err
        assert said in err and len(err) < 300, err
    # a run directory leaves room for its own files below it (a review: 4,093 bytes
    # passed, then the run failed on its first file with no key named)
    deep = "a/" * 2040
    code, out, err = cli("validate", QUICKSTART, "--set", f"base.output={deep}")
    assert code == 1 and err.startswith("error: --set base.output: "), err
    assert "bytes (at most 3583, leaving room for the run's own files)" in err
    cfg = tmp_path / "c.toml"
    text = f'[base]\ntemplate = "{QUICKSTART}"\nname = "{long}"\n'
    (issue,) = check_text(text, cfg).errors  # the default output runs/{{ base.name }}:
    # the name, where it was set (it named the shipped defaults' base.output; a review)
    assert str(issue).startswith(f"{cfg}:3: base.name: ") and "is 300 bytes" in str(issue)
    cfg.write_text(f'[base]\ntemplate = "{long}"\n')
    code, _, err = cli("validate", cfg)
    assert code == 1 and err.startswith(f"error: {cfg}:2: base.template: "), err
    assert "File name too long" in err


def test_a_list_names_each_dataset_format_and_mass_once():
    """A repeated dataset in scan.datasets was combined with itself (the demo spectrum
    twice: Z_local 2.63 instead of 1.86 at 100 MeV, no word said); repeated formats,
    plot masses and displayed datasets are refused alike."""
    for value, said in (
        ('scan.datasets=["demo","demo"]', "scan.datasets: 'demo' is listed twice."),
        ('plot.formats=["png","pdf","png"]', "plot.formats: 'png' is listed twice."),
        ("plot.masses=[0.06,0.03,0.06]", "plot.masses: 0.06 is listed twice."),
        ("plot.allocation_masses=[0.05,0.05]", "plot.allocation_masses: 0.05 is listed twice."),
        (
            'plot.displays.datasets=["demo","demo"]',
            "plot.displays.datasets: 'demo' is listed twice.",
        ),
        ("plot.displays.observed=[0.06,0.06]", "plot.displays.observed: 0.06 is listed twice."),
    ):
        assert errors_of(QUICKSTART, (value,)) == [f"--set {said}"]
    _, (point,) = load_points(QUICKSTART, ['scan.datasets=["demo"]', 'plot.formats=["png"]'])
    assert point.config.scan.datasets == ["demo"] and point.config.plot.formats == ["png"]


def test_bytes_that_are_not_utf8_and_folderless_outputs_are_refused(tmp_path, monkeypatch, cli):
    """A value with a byte that is not UTF-8 (from argv or a folder name) was accepted by
    validate, then crashed the run ('internal error: UnicodeEncodeError') after it had
    written the lock and a point folder; base.output "" or "." made the config's folder
    the run directory; a refused run left the parent folders it had made."""
    code, _, err = cli("validate", QUICKSTART, "--set", "plot.experiment=lab\udce9")
    assert code == 1 and err.strip() == (
        "error: --set plot.experiment: the value holds a byte that is not UTF-8 (U+DCE9), and "
        "no key or value may hold control characters or invisible formatting characters, "
        "because values reach job scripts, command lines, file names and printed paths."
    )
    here = tmp_path / os.fsdecode(b"d\xe9")
    here.mkdir()
    monkeypatch.chdir(here)
    code, _, err = cli("run", QUICKSTART, "--steps", "load")
    assert code == 1 and "holds bytes that are not UTF-8" in err and "Traceback" not in err
    code, _, err2 = cli("validate", QUICKSTART)  # validate says what run refuses
    assert code == 1 and err2 == err
    assert list(here.iterdir()) == []
    code, _, err = cli("init", "mine", "--data", os.fsdecode(b"d\xe9.root"))
    assert code == 1 and err.startswith("error: --data") and list(here.iterdir()) == []
    for output in ('""', ".", "./.", "x/.."):
        code, _, err = cli("validate", QUICKSTART, "--set", f"base.output={output}")
        assert code == 1 and "is the current folder, not a run directory of its own" in err
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    long_name = ("base.name=" + "a" * 300, "base.output=runs/x/{{ base.name }}")
    code, _, err = cli("run", QUICKSTART, "--steps", "load", *settings(*long_name))
    assert code == 1 and err.startswith("error: --set base.name: '")  # the config check
    assert "is 300 bytes, too long for the folder of the run directory it names" in err
    assert list(plain.iterdir()) == []  # no runs/x left behind


def test_a_number_that_is_no_mass_in_mev_either_gets_no_mev_hint(tmp_path: Path):
    """``scan.masses = [1e300]`` was answered "did you mean 1000000000000000017652...000
    GeV?" (and a range up to 1e9 with "... to 1000000.000 GeV?")."""
    cfg = quickstart_child(tmp_path / "c.toml", "[scan]\nmasses = [1e300, 60]\n")
    assert errors_of(cfg) == [
        f"{cfg}:4: scan.masses: 1e+300 is not a mass in GeV; masses are in GeV, below 1 "
        "(0.060 is 60 MeV).",
        f"{cfg}:4: scan.masses: 60 is not a mass in GeV; did you mean 0.060 GeV?",
    ]
    cfg = quickstart_child(tmp_path / "d.toml", "[datasets.demo]\nrange = [20, 1e9]\n")
    assert errors_of(cfg) == [
        f"{cfg}:4: datasets.demo.range: [20, 1e+09] is not in GeV; masses are in GeV, "
        "below 1 (0.060 is 60 MeV)."
    ]


@pytest.mark.parametrize("item", ["base.template=hps2016", 'base={template="hps2016"}'])
def test_set_base_template_is_refused_with_where_to_set_it(tmp_path: Path, item: str):
    """``--set base.template=...`` said "unknown key; [base] takes name, output, ..." of a
    key the config's own file has: inheritance is resolved before --set applies."""
    cfg = quickstart_child(tmp_path / "c.toml")
    assert errors_of(cfg, (item,)) == [
        "--set base.template: the template a config inherits is set in its file ([base] "
        "template = ...), not with --set; edit the file or write a child config that "
        "names another template."
    ]


@pytest.mark.parametrize(
    ("coeffs", "shown"),
    [
        ("[1e308, 1e308]", "1.03e+308"),
        ("[1.797e308, 1e308]", "inf"),  # overflows inside the scan range
        ("[1.5, 0.02]", "1.5006"),
        ("[-1.5, 0.02]", "-1.4994"),
    ],
)
def test_a_resolution_wider_than_the_mass_is_refused_by_its_key(
    tmp_path: Path, coeffs: str, shown: str
):
    """``sigma_coeffs = [1e308, 1e308]`` printed two overflow RuntimeWarnings and blamed
    ``fit.blind_nsigma`` of defaults.toml ("+/-1.67e+308 GeV leaves 0 bins")."""
    cfg = quickstart_child(tmp_path / "c.toml", f"[datasets.demo]\nsigma_coeffs = {coeffs}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert errors_of(cfg) == [
            f"{cfg}:4: datasets.demo.sigma_coeffs: the resolution sigma(m) is not positive and "
            f"below the mass over the scan of dataset demo ({shown} at m = 0.03 GeV)."
        ]


def test_a_fit_level_setting_that_every_card_overrides_is_noticed(cli, tmp_path):
    """fit.ls_hi_factor is overridden by each card's datasets.<d>.ls_hi_factor: a grid or
    --set varying it gave identical points and "valid" without a word."""
    card = REPO / "cards" / "hps2015.toml"
    line = next(
        i for i, t in enumerate(card.read_text().splitlines(), 1) if t.startswith("ls_hi_factor")
    )
    notice = (
        "notice: fit.ls_hi_factor = 12 (--set fit.ls_hi_factor) is not used for dataset demo, "
        f"which sets its own ({card}:{line}: datasets.demo.ls_hi_factor); set "
        "datasets.<name>.ls_hi_factor instead."
    )
    code, out, err = cli("validate", QUICKSTART, "--set", "fit.ls_hi_factor=12")
    assert code == 0 and out.startswith(f"{QUICKSTART}: valid") and err.strip() == notice
    code, out, err = cli("run", QUICKSTART, "--dry-run", "--set", "fit.ls_hi_factor=12")
    assert code == 0 and err.strip() == notice
    # a grid varying it: every value is quoted (it quoted the first point's)
    grid = quickstart_child(tmp_path / "g.toml", '[grid]\n"fit.ls_hi_factor" = [3.0, 2.0]\n')
    code, _, err = cli("validate", grid)
    assert code == 0 and err.strip().startswith(
        f"notice: fit.ls_hi_factor = 2, 3 ({grid}:4) is not used for dataset demo, "
    ), err
    # the defaults' own value, or the dataset's key itself, or a rendered point config
    # (it holds every key; it said "fit.ls_hi_factor = 8 (.../config.toml:47) is not used")
    run = tmp_path / "run"
    code, _, err = cli("run", QUICKSTART, "--steps", "load", "--set", f"base.output={run}")
    assert code == 0, err
    code, _, err = cli("validate", run / "nominal" / "config.toml")
    assert code == 0 and err == "", err
    for extra in ((), ("--set", "datasets.demo.ls_hi_factor=12")):
        code, _, err = cli("validate", QUICKSTART, *extra)
        assert code == 0 and err == "", err


def test_local_workers_are_bounded(cli) -> None:
    """``base.jobs = 1e9`` (or ``-j``) validated, and a long scan would have forked a worker
    per task (a review): at most 1024."""
    code, _, err = cli("validate", QUICKSTART, "--set", "base.jobs=1000000000")
    assert code == 1 and err.strip() == (
        "error: --set base.jobs: Input should be less than or equal to 1024 (got 1000000000)."
    )
    code, _, err = cli("run", QUICKSTART, "-j", "5000")
    assert code == 1 and "Input should be less than or equal to 1024" in err


def test_a_path_that_cannot_be_resolved_names_its_key(tmp_path: Path):
    """A symlink loop or an unknown user's home in a path was 'internal error:
    RuntimeError: Symlink loop from ...' (validate and run)."""
    (tmp_path / "a.root").symlink_to(tmp_path / "b.root")
    (tmp_path / "b.root").symlink_to(tmp_path / "a.root")
    loop = tmp_path / "a.root"
    assert errors_of(
        QUICKSTART,
        (f"datasets.demo.path={loop}", "toyscan.file=~no_such_user_here/t.root"),
    ) == [
        f"--set datasets.demo.path: {loop}: cannot resolve this path (Symlink loop from '{loop}').",
        "--set toyscan.file: ~no_such_user_here/t.root: cannot resolve this path (Could not "
        "determine home directory).",
    ]
    child = tmp_path / "child.toml"
    child.write_text('[base]\ntemplate = "~no_such_user_here/t.toml"\n')
    assert errors_of(child) == [
        f"{child}:2: base.template: '~no_such_user_here/t.toml': cannot resolve this path "
        "(Could not determine home directory)."
    ]


def test_a_histogram_too_fine_for_the_gp_or_too_full_after_rebinning_is_refused(tmp_path: Path):
    """200,000 bins passed validate; the fit then asked for tens of GB ('internal error:
    MemoryError'). Counts below 2^53 per bin but above it after the rebin failed each
    mass with 'leading minor of the array is not positive definite'."""
    import numpy as np

    from gprpipe.io.root import write_hist

    fine = tmp_path / "fine.root"
    edges = np.linspace(0.0, 0.15, 200_001)
    write_hist(fine, np.full(200_000, 3.0), edges)
    code, _, err = run_cli_here("validate", QUICKSTART, *settings(f"datasets.demo.path={fine}"))
    assert code == 1 and err.splitlines()[-1].endswith(
        f"datasets.demo.rebin: histogram 'input_hist' in {fine} has 20000 bins after a rebin "
        "of 10, more than the 10000 the GP fit takes (its covariance holds every pair of "
        "bins: 3.2 GB); rebin by 20 or more, or narrow data_range."
    ), err
    full = tmp_path / "full.root"
    edges = np.linspace(0.0, 0.15, 3001)
    write_hist(full, np.full(3000, 2.0**52), edges)
    code, _, err = run_cli_here("validate", QUICKSTART, *settings(f"datasets.demo.path={full}"))
    assert code == 1 and err.splitlines()[-1].endswith(
        f"datasets.demo.rebin: a rebin of 10 puts 4.5036e+16 events in bin 1 (0-0.0005 GeV) of "
        f"histogram 'input_hist' in {full}, above 2^53 = 9.01e+15 where numbers are no "
        "longer exact whole numbers."
    ), err


def test_a_spectrum_too_sparse_for_the_gp_is_refused(tmp_path: Path):
    """A spectrum empty but for one bin passed validate and its scan said Z_local 81.08,
    status ok, no flag: the GP had fitted the ln y = 0 placeholders of the empty bins."""
    import numpy as np

    from gprpipe.io.root import read_hist, write_hist

    counts, edges = read_hist(DEMO_ROOT, "input_hist")
    one = np.zeros_like(counts)
    one[1200] = 1000
    sparse = tmp_path / "sparse.root"
    write_hist(sparse, one, edges)
    code, _, err = run_cli_here("validate", QUICKSTART, *settings(f"datasets.demo.path={sparse}"))
    assert code == 1 and err.splitlines()[-1].endswith(
        f"datasets.demo.range: 219 of the 220 bins of histogram 'input_hist' in {sparse} in "
        "the scan range are empty (after a rebin of 10): the GP fits the log of the counts "
        "and cannot model so sparse a spectrum; rebin (datasets.demo.rebin) or narrow the "
        "range."
    ), err


def test_text_keys_keep_the_text_that_spells_a_number(tmp_path: Path):
    """A name rendered to "007" was read back as the number 7 by the templates that use it
    (the run folder runs/7 beside base.name "007"); ``--set base.name=1e3`` gave
    "1000.0", ``0x10`` a histogram "16", a date an error (a review). Keys the schema types
    as text keep the text; numeric keys still compute."""
    cfg = quickstart_child(
        tmp_path / "c.toml",
        """
        name = "{{ '%03d' % 7 }}"
        [fit]
        blind_nsigma = "{{ 1.5 + 0.46 }}"
        [plot]
        experiment = "run {{ base.name }}, {{ fit.blind_nsigma * 2 }} sigma"
        """,
    )
    (pt,) = load_points(cfg)[1]
    assert pt.config.base.name == "007" and Path(pt.config.base.output).name == "007"
    assert pt.config.plot.experiment == "run 007, 3.92 sigma"
    for given, text in (("1e3", "1e3"), ("0x10", "0x10"), ("2024-01-01", "2024-01-01")):
        (pt,) = load_points(cfg, (f"base.name={given}", f"datasets.demo.hist={given}"))[1]
        assert (pt.config.base.name, pt.config.datasets["demo"].hist) == (text, text)
    (pt,) = load_points(cfg, ("limit.n_toys=1e3", "fit.blind_nsigma=0x2"))[1]
    assert (pt.config.limit.n_toys, pt.config.fit.blind_nsigma) == (1000, 2.0)


def test_data_files_are_the_scanned_datasets_and_the_toy_file_of_a_toy_scan(
    tmp_path: Path, shared_data: Path
):
    """One list of the files a run reads (validate's missing-file check, the currency
    check, summary's missing-data line): the scanned datasets' (not one the scan leaves
    out) and the toy file only when the toyscan step runs."""
    from conftest import combined_2015_2016

    toys = shared_data / "funcform_2015_toys.root"
    cfg = combined_2015_2016(
        tmp_path / "c.toml", shared_data, [0.06], body=f'[toyscan]\nfile = "{toys}"\n'
    )
    config = only_point(cfg).config
    both = [
        (config.datasets["2015"].path, "datasets.2015.path"),
        (config.datasets["2016"].path, "datasets.2016.path"),
    ]
    assert config.data_files() == both
    alone = only_point(cfg, ('scan.datasets=["2016"]',)).config
    assert alone.data_files() == both[1:]
    scans_toys = only_point(cfg, ('steps.run=["toyscan"]',)).config
    assert scans_toys.data_files() == [*both, (scans_toys.toyscan.file, "toyscan.file")]


def test_datasets_are_told_apart_on_every_product(tmp_path: Path):
    """A review: dataset keys ``demo`` and ``Demo`` (or a key ``Combined``) gave HEPData
    tables of one name, one overwriting the other, in a submission hepdata-validator
    rejects; two datasets of one label ("HPS 2015", from one card) showed two curves under
    one name; ``plot.displays.datasets = ["combined"]`` passed without a combination and
    drew nothing. Each is refused in one sentence."""
    other = tmp_path / "other.root"
    assert run_cli_here("demo-data", other, "--seed", "5")[0] == 0
    cfg = tmp_path / "c.toml"

    def validate(body: str, *sets: str) -> str:
        write(cfg, f'[base]\ntemplate = "{QUICKSTART}"\n{body}')
        code, _, err = run_cli_here("validate", cfg, *settings(*sets))
        assert code == 1, err
        return err.strip()

    second = f'card = "hps2015"\npath = "{other}"\n'
    assert validate(f'[datasets.Demo]\nlabel = "two"\n{second}') == (
        f"error: {cfg}:3: datasets.Demo: the dataset keys 'demo' and 'Demo' differ only in "
        "case: the HEPData tables (lower case) and the files of a case-blind file system "
        "would be one; rename one of them."
    )
    third = tmp_path / "third.root"
    assert run_cli_here("demo-data", third, "--seed", "6")[0] == 0
    both = f'[datasets.two]\n{second}[datasets.three]\ncard = "hps2015"\npath = "{third}"\n'
    assert validate(both) == (  # each takes the card's label
        f"error: {REPO / 'cards' / 'hps2015.toml'}:6: datasets.three.label: 'HPS 2015' is "
        "also the label of datasets.two: figures, tables and HEPData would show two results under "
        "one name; give each dataset a label of its own."
    )
    assert validate(f'[datasets.two]\nlabel = "demo  (SYNTHETIC 2015-like)"\n{second}') == (
        f"error: {cfg}:4: datasets.two.label: 'demo  (SYNTHETIC 2015-like)' is also the label "
        "of datasets.demo: figures, tables and HEPData would show two results under one "
        "name; give each dataset a label of its own."
    )
    combined = f'[datasets.two]\nlabel = "COMBINED"\n{second}[scan]\ncombined = true\n'
    assert validate(combined) == (
        f"error: {cfg}:4: datasets.two.label: 'COMBINED' names the joint fit (scan.combined) "
        "on figures and tables; give the dataset a label of its own."
    )
    hyphen = f'[datasets.Run-2]\nlabel = "Demo (synthetic 2015-like)"\n{second}'
    assert validate(hyphen) == (  # (a key with capitals and '-' lost the file and line)
        f"error: {cfg}:4: datasets.Run-2.label: 'Demo (synthetic 2015-like)' is also the "
        "label of datasets.demo: figures, tables and HEPData would show two results under "
        "one name; give each dataset a label of its own."
    )
    assert validate("", 'plot.displays.datasets=["combined"]') == (
        "error: --set plot.displays.datasets: 'combined': no combination is made "
        "(scan.combined, two scanned datasets sharing masses); the displays are of demo."
    )
    # labels of their own (the joint fit's displays with a combination): valid
    write(cfg, f'[base]\ntemplate = "{QUICKSTART}"\n[datasets.two]\nlabel = "two"\n{second}')
    sets = settings("scan.combined=true", 'plot.displays.datasets=["combined"]')
    code, out, err = run_cli_here("validate", cfg, *sets)
    assert code == 0 and "valid" in out, err
    # "Combined" names the joint fit only where a combination is made (one dataset: none)
    sets = settings("scan.combined=true", "datasets.demo.label=Combined")
    assert run_cli_here("validate", QUICKSTART, *sets)[0] == 0


def test_config_mistakes_a_review_found_are_said_where_they_are(tmp_path: Path, monkeypatch):
    """A review: an unknown key of a megabyte took minutes (edit distances to every known
    key) and was printed whole; a base.name too long for a folder was blamed on the
    shipped defaults' base.output; ENV.X listed in base.env but unset was said not listed;
    a card named with Jinja was not rendered, although every string is."""
    import time

    head = f'[base]\ntemplate = "{QUICKSTART}"\n'
    big = write(tmp_path / "big.toml", head + "[fit]\n" + "x" * 1_000_000 + " = 1\n")
    t0 = time.process_time()
    code, _, err = run_cli_here("validate", big)
    assert time.process_time() - t0 < 20  # (minutes before: 30 s for a key of 100 kB)
    assert (code, err.strip()) == (
        1,
        f'error: {big}:4: fit."{"x" * 40}..." (1000000 characters): unknown key (no setting '
        "has a name this long).",
    )
    mine = write(tmp_path / "mine.toml", head + f'name = "{"a" * 300}"\n')
    code, _, err = run_cli_here("validate", mine)
    assert (code, err.strip()) == (
        1,
        f"error: {mine}:3: base.name: '{'a' * 57}...' is 300 bytes, too long for the folder "
        "of the run directory it names (at most 255); give a shorter name.",
    )
    monkeypatch.delenv("GPRPIPE_NOT_SET", raising=False)
    sets = settings('base.env=["GPRPIPE_NOT_SET"]', "datasets.demo.label={{ ENV.GPRPIPE_NOT_SET }}")
    code, _, err = run_cli_here("render", QUICKSTART, *sets)
    assert (code, err.strip()) == (
        1,
        "error: --set datasets.demo.label: undefined name in '{{ ENV.GPRPIPE_NOT_SET }}' "
        "('dict object' has no attribute 'GPRPIPE_NOT_SET'; GPRPIPE_NOT_SET is listed in "
        "base.env but not set in the environment).",
    )
    card = write(tmp_path / "card.toml", head + '[datasets.demo]\ncard = "{{ base.kind }}"\n')
    code, _, err = run_cli_here("validate", card, "--set", "base.kind=hps2015")
    assert code == 1 and "base.kind: unknown key" in err  # rendered: no "neither a file"
    code, out, err = run_cli_here("render", card, "--set", "datasets.demo.label=x")
    assert code == 1 and "undefined name in '{{ base.kind }}'" in err, out + err
    named = write(
        tmp_path / "named.toml",
        head + 'name = "hps2015"\n[datasets.demo]\ncard = "{{ base.name }}"\n',
    )
    assert run_cli_here("validate", named)[0] == 0
    # a text where a list is needed (--set takes TOML): how to write one
    for given, hint in (
        ("plot.formats=png", 'write a list in brackets, e.g. ["png"].'),
        ("plot.formats=png,pdf", 'write a list in brackets, e.g. ["png", "pdf"].'),
        ("plot.masses=0.03, 0.06", "write a list in brackets, e.g. [0.03, 0.06]."),
        (
            "scan.masses=[30MeV]",
            "it is no TOML list: numbers bare (GeV for masses), texts in quotes, inside "
            'brackets, e.g. [0.03, 0.06] or ["png", "pdf"].',
        ),
    ):
        code, _, err = run_cli_here("validate", QUICKSTART, "--set", given)
        key, value = given.split("=")
        assert (code, err.strip()) == (
            1,
            f"error: --set {key}: Input should be a valid list (got {value!r}); {hint}",
        )


def test_error_lines_after_quotes_in_comments_and_strings(tmp_path: Path):
    """A review: three double quotes in a comment (or a one-line string) were taken for a
    multi-line string, so later keys lost their line; a line inside a multi-line string
    that looked like ``rebin = 3`` was taken for the key."""
    from gprpipe.config.loader import key_positions

    head = f'[base]\ntemplate = "{QUICKSTART}"\n[datasets.demo]\n'
    commented = write(
        tmp_path / "q.toml",
        head + 'label = \'HPS 2015\'   # not """ here\n[fit]\nblind_nsigma = "abc"\n',
    )
    code, _, err = run_cli_here("validate", commented)
    assert code == 1 and err.startswith(f"error: {commented}:6: fit.blind_nsigma: "), err
    spanning = head + 'note = """\nrebin = 3 \\\nstill the note\n"""\nrebin = "abc"\n'
    assert key_positions(spanning)["datasets.demo.rebin"] == (8, 1)
    assert key_positions(spanning)["datasets.demo.note"] == (4, 1)
    literal = "[a]\nx = '''\n[b]\ny = 1\n'''\nz = 2\n"
    assert key_positions(literal) == {"a": (1, 2), "a.x": (2, 1), "a.z": (6, 1)}
