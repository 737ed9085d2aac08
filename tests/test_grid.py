"""Grid expansion: [grid] Cartesian products, [grid.zip], point names and folders, --points."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import quickstart_child, run_cli_here
from hypothesis import given
from hypothesis import strategies as st

from gprpipe.config import load_points
from gprpipe.config.grid import expand, point_names
from gprpipe.errors import ConfigError


def test_expand_product_and_zip():
    grid = {
        "fit": {"blind_nsigma": [1.64, 1.96]},
        "zip": {"a.x": [1, 2, 3], "a.y": ["p", "q", "r"]},
    }
    points = expand(grid)
    assert len(points) == 6
    assert points[0] == {"fit.blind_nsigma": 1.64, "a.x": 1, "a.y": "p"}
    assert points[5] == {"fit.blind_nsigma": 1.96, "a.x": 3, "a.y": "r"}
    assert {(p["a.x"], p["a.y"]) for p in points} == {(1, "p"), (2, "q"), (3, "r")}


def test_no_grid_is_one_nominal_point():
    assert expand({}) == [{}]
    assert point_names([{}]) == ["nominal"]


def test_point_names_readable_and_unique():
    names = point_names(
        [
            {"fit.blind_nsigma": 1.64, "datasets.2015.range": [0.02, 0.13]},
            {"base.name": "a b/c"},
            {"x.k": 1},
            {"y.k": 1},
        ]
    )
    assert names[0] == "blind_nsigma-1.64_range-0.02-0.13"
    assert names[1] == "name-a_b_c"
    assert names[2:] == ["k-1_1", "k-1_2"]  # same short name: numbered


def test_numbered_names_never_take_another_points_name():
    """ "a b" and "a/b" share the short name label-a_b; numbered _1 and _2, the first took
    the name of the point "a_b_1", and the two wrote one folder."""
    labels = ["a b", "a/b", "a_b_1"]
    names = point_names([{"datasets.demo.label": x} for x in labels])
    assert names == ["label-a_b_2", "label-a_b_3", "label-a_b_1"]


def test_names_that_differ_only_in_case_are_numbered():
    """Labels "A" and "a" gave the folders label-A and label-a: one folder on a case-blind
    file system (macOS, Windows), as dataset keys would be, which are refused (a review)."""
    names = point_names([{"datasets.demo.label": x} for x in ["A", "a", "B"]])
    assert names == ["label-A_1", "label-a_2", "label-B"]


@given(st.lists(st.sampled_from(["a", "A", "a b", "a/b", "a_b", "A_B_1", "a_b_2", "a-1", 1, True])))
def test_point_names_are_always_unique_and_safe(values):
    names = point_names([{"x.k": v} for v in values])
    assert len({n.lower() for n in names}) == len(names)
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_a_number_and_its_string_are_one_grid_value():
    """[1.64, "1.64"] made two identical points (the schema reads both as 1.64)."""
    with pytest.raises(ConfigError, match=r"lists '1\.64' twice"):
        expand({"fit": {"blind_nsigma": [1.64, "1.64"]}})
    assert len(expand({"datasets": {"demo": {"label": ["a", "b"]}}})) == 2


def test_a_grid_value_may_not_be_a_table():
    """base = [{blind = false}, ...] unblinded a point of a blinded config without
    --unblind (base.blind itself is no grid axis); a table value is refused."""
    for grid, key in (
        ({"base": [{"blind": False}, {"blind": True}]}, "grid.base"),
        ({"zip": {"base": [{"blind": False}]}}, "grid.zip.base"),
    ):
        with pytest.raises(ConfigError, match=f"{key}: a grid value may not be a table"):
            expand(grid)


def test_zip_lengths_must_match():
    with pytest.raises(ConfigError, match=r"differ in length \(a: 3, b: 2\)"):
        expand({"zip": {"a": [1, 2, 3], "b": [1, 2]}})
    with pytest.raises(ConfigError, match="non-empty list"):
        expand({"fit": {"n_restarts": 3}})
    with pytest.raises(ConfigError, match="non-empty list"):
        expand({"zip": {"a": []}})


def test_a_grid_key_naming_the_grid_is_refused():
    """``"grid.x" = [1, 2]`` inside [grid] made two identical points named x-1 and x-2 (it
    sets nothing the schema reads, so the check for identical points missed it)."""
    zipped = {"zip": {"grid.x": [1, 2], "fit.blind_nsigma": [1.64, 2.0]}}
    for grid, want in (
        ({"grid.x": [1, 2]}, "grid.grid.x"),
        ({"grid": {"zip": [1, 2]}}, "grid.grid.zip"),
        ({"grid.zip.x": [1, 2]}, "grid.grid.zip.x"),
        (zipped, "grid.zip.grid.x"),
    ):
        with pytest.raises(ConfigError) as info:
            expand(grid)
        assert info.value.errors == [
            f"{want}: a grid key may not name the grid itself; vary the keys of the config "
            '(e.g. "fit.blind_nsigma" = [...]).'
        ]


def test_identical_points_and_a_varied_run_directory_are_refused():
    """A value listed twice (1.64 and 1.640 are one value) would make two identical
    points; base.output in the grid would split one run over several directories."""
    with pytest.raises(ConfigError) as info:
        expand({"fit": {"blind_nsigma": [1.64, 1.96, 1.640]}})
    assert info.value.errors == ["grid.fit.blind_nsigma: lists 1.64 twice (two identical points)."]
    with pytest.raises(ConfigError) as info:
        expand({"zip": {"a": [1, 1, 2], "b": ["x", "x", "x"]}})
    assert info.value.errors == ["grid.zip: lists (a=1, b='x') twice (two identical points)."]
    assert len(expand({"zip": {"a": [1, 1], "b": ["x", "y"]}})) == 2  # distinct rows
    with pytest.raises(ConfigError) as info:
        expand({"base": {"output": ["a", "b"]}})
    assert info.value.errors == [
        "grid.base.output: the points of one run share its run directory (base.output); "
        "the point folders are named after the other keys of the grid."
    ]
    # the run's engine, image and executor settings came from its first point alone (every
    # task ran in point 0's image, with its SLURM time), and each point's config named others
    for grid, key in (
        ({"base": {"image": ["a:1", "b:2"]}}, "grid.base.image"),
        ({"base": {"engine": ["podman", "local"]}}, "grid.base.engine"),
        ({"zip": {"slurm.time": ["5", "90"], "fit.n_restarts": [0, 1]}}, "grid.zip.slurm.time"),
        ({"base": {"step_images": {"fit": ["a:1", "b:2"]}}}, "grid.base.step_images.fit"),
    ):
        with pytest.raises(ConfigError) as info:
            expand(grid)
        assert info.value.errors == [
            f"{key}: a run has one value of it for all its points (how and where the tasks "
            "run, or the run's limits); make one run per value (--set, with another "
            "base.output)."
        ]
    for grid in ({"base": {"blind": [True, False]}}, {"zip": {"base.blind": [True, False]}}):
        with pytest.raises(ConfigError) as info:  # it unblinded one point without --unblind
            expand(grid)
        assert info.value.errors == [
            "grid.base.blind: blinding is no grid axis: it is lifted only by 'gprpipe run "
            "--unblind' (recorded in run.json)."
        ]
    with pytest.raises(ConfigError) as info:  # grid x zip of one key: 4 points, 2 pairs alike
        expand({"fit": {"blind_nsigma": [1.64, 1.96]}, "zip": {"fit.blind_nsigma": [1.64, 1.96]}})
    assert info.value.errors == [
        "grid.zip.fit.blind_nsigma: fit.blind_nsigma is varied in [grid] as well; vary each "
        "key in [grid] or in [grid.zip], not in both."
    ]


def test_points_that_render_alike_are_refused(tmp_path: Path):
    """Values that differ as written but render alike ("{{ 1+1 }}" and 2) made two points
    of one config, each run in full."""
    from gprpipe.config import load_points

    cfg = quickstart_child(tmp_path / "g.toml", '[grid]\n"base.seed" = ["{{ 1+1 }}", 2, 3]\n')
    with pytest.raises(ConfigError) as info:
        load_points(cfg)
    assert info.value.errors == [
        f"{cfg}:3: grid: grid points seed-_1+1_ and seed-2 give the same config (their values "
        "differ as written, not once rendered); drop one of them."
    ]
    cfg.write_text(cfg.read_text().replace('"{{ 1+1 }}", ', ""))
    assert [p.name for p in load_points(cfg)[1]] == ["seed-2", "seed-3"]


def test_points_whose_lists_differ_only_in_order_are_refused(tmp_path: Path):
    """``"scan.masses" = [[0.03, 0.06], [0.06, 0.03]]`` made two points of one analysis (the
    scan sorts its masses), each run in full; a list whose order matters is left alone."""
    from gprpipe.config import load_points

    cfg = quickstart_child(
        tmp_path / "g.toml", '[grid]\n"scan.masses" = [[0.03, 0.06], [0.06, 0.03]]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_points(cfg)
    assert info.value.errors == [
        f"{cfg}:3: grid: grid points masses-0.03-0.06 and masses-0.06-0.03 give the same "
        "config (their lists differ only in order, which changes no result); drop one of them."
    ]
    cfg = quickstart_child(
        tmp_path / "h.toml",
        '[grid]\n"datasets.demo.sigma_coeffs" = [[0.001, 0.02], [0.02, 0.001]]\n',
    )
    assert len(load_points(cfg)[1]) == 2


GRID_2X2 = """
    output = "{out}"
    [grid]
    "fit.blind_nsigma" = [1.64, 1.96]
    "datasets.demo.rebin" = [5, 10]
"""


def test_grid_2x2_points_and_rendered_values(tmp_path: Path):
    cfg = quickstart_child(tmp_path / "g.toml", GRID_2X2.format(out=tmp_path / "out"))
    _, points = load_points(cfg)
    assert [p.name for p in points] == [
        "blind_nsigma-1.64_rebin-5",
        "blind_nsigma-1.64_rebin-10",
        "blind_nsigma-1.96_rebin-5",
        "blind_nsigma-1.96_rebin-10",
    ]
    assert [(p.config.fit.blind_nsigma, p.config.datasets["demo"].rebin) for p in points] == [
        (1.64, 5),
        (1.64, 10),
        (1.96, 5),
        (1.96, 10),
    ]
    assert all(p.output == tmp_path / "out" / p.name for p in points)
    # the grid itself is not part of a point's config
    assert all(p.config.grid == {} for p in points)


def test_grid_command_prints_one_line_per_point(tmp_path: Path, cli):
    cfg = quickstart_child(tmp_path / "g.toml", GRID_2X2.format(out=tmp_path / "out"))
    code, out, err = cli("grid", cfg)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    index, name, values, folder = lines[3].split("\t")
    assert (index, name) == ("3", "blind_nsigma-1.96_rebin-10")
    assert values == "fit.blind_nsigma=1.96 datasets.demo.rebin=10"
    assert folder == str(tmp_path / "out" / name)


def test_grid_values_feed_templates(tmp_path: Path, cli):
    cfg = quickstart_child(
        tmp_path / "g.toml",
        f"""
        output = "{tmp_path}/out"
        name = "bn{{{{ fit.blind_nsigma }}}}"
        [grid.zip]
        "fit.blind_nsigma" = [1.64, 2.0]
        "fit.ls_hi_factor" = [8, 9]
    """,
    )
    _, points = load_points(cfg)
    assert [p.config.base.name for p in points] == ["bn1.64", "bn2.0"]
    assert [p.config.fit.ls_hi_factor for p in points] == [8.0, 9.0]
    code, out, _ = cli("render", cfg, "--point", "1")
    assert code == 0 and 'name = "bn2.0"' in out and "ls_hi_factor = 9.0" in out
    code, _, err = cli("render", cfg, "--point", "2")
    assert code == 1 and "--point 2: the config has points 0-1." in err


def test_grid_errors_name_file_and_line(tmp_path: Path, cli):
    cfg = quickstart_child(
        tmp_path / "g.toml",
        """
        [grid.zip]
        "fit.blind_nsigma" = [1.64, 1.96, 2.5]
        "fit.ls_hi_factor" = [8, 9]
    """,
    )
    code, _, err = cli("grid", cfg)
    assert code == 1
    assert f"{cfg}:3: grid.zip: its lists differ in length" in err
    assert "fit.blind_nsigma: 3, fit.ls_hi_factor: 2" in err
    assert "Traceback" not in err


def test_a_grid_key_that_splits_the_run_directory_is_located(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    """base.name in the grid renders base.output ("runs/{{ base.name }}") differently per
    point: the sentence names the grid line and the two folders (it named neither)."""
    from conftest import QUICKSTART, write

    monkeypatch.chdir(tmp_path)  # base.output is relative to the working folder
    cfg = write(
        tmp_path / "g.toml",
        f"""
        [base]
        template = "{QUICKSTART}"
        [grid]
        "base.name" = ["a", "b"]
        """,
    )
    for cmd in ("grid", "validate"):
        code, out, err = cli(cmd, cfg)
        assert code == 1 and out == "", cmd
        assert err.strip() == (
            f"error: {cfg}:4: base.name: base.output differs between grid points "
            f"({tmp_path / 'runs' / 'a'} at name-a, {tmp_path / 'runs' / 'b'} at name-b): the "
            "points of one run share one run directory (vary the point folder names through "
            "other keys instead)."
        )


def test_grid_unknown_key_reported_once(tmp_path: Path, cli):
    cfg = quickstart_child(
        tmp_path / "g.toml",
        """
        [grid]
        "fit.blind_nsigma" = [1.64, 1.96]
        "fit.blind_nsigmaa" = [1.0]
    """,
    )
    code, _, err = cli("validate", cfg)
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: {cfg}:5: fit.blind_nsigmaa: unknown key; did you mean 'blind_nsigma'?"
    ]


def test_points_selection_on_dry_run(tmp_path: Path, cli):
    out_dir = tmp_path / "out"
    cfg = quickstart_child(tmp_path / "g.toml", GRID_2X2.format(out=out_dir))
    code, out, err = cli("run", cfg, "--dry-run", "--steps", "load", "--points", "1,3")
    assert code == 0, err
    assert out.startswith(f"# 2 tasks, run directory {out_dir}\n")
    assert "blind_nsigma-1.64_rebin-10/load" in out and "blind_nsigma-1.96_rebin-10/load" in out
    assert "rebin-5" not in out
    code, out, _ = cli("run", cfg, "--dry-run", "--steps", "load,plot", "--points", "*1.96*,0")
    assert code == 0
    assert out.startswith("# 6 tasks")
    code, out, _ = cli("run", cfg, "--dry-run", "--steps", "load", "--points", "1-2")
    assert code == 0 and out.startswith("# 2 tasks")
    assert "blind_nsigma-1.64_rebin-10/load" in out and "blind_nsigma-1.96_rebin-5/load" in out
    code, _, err = cli("run", cfg, "--dry-run", "--points", "7")
    assert code == 1
    assert "--points '7' matches no grid point (have 0:blind_nsigma-1.64_rebin-5" in err
    for empty in ("", " , "):  # selected every point before
        code, _, err = cli("run", cfg, "--dry-run", "--points", empty)
        assert code == 1 and err.strip() == (
            f"error: --points {empty!r}: name at least one grid point (an index, a range "
            "0-3, a name or a glob; leave the option out for all)."
        )
    assert not out_dir.exists()  # dry runs write nothing


def test_set_of_a_grid_key_is_refused(tmp_path: Path, cli):
    """A --set of a key the grid varies would be silently overwritten per point: refused."""
    cfg = quickstart_child(tmp_path / "g.toml", GRID_2X2.format(out=tmp_path / "out"))
    code, _, err = cli("run", cfg, "--dry-run", "--set", "fit.blind_nsigma=2.0")
    assert code == 1
    assert err.strip() == (
        f"error: --set fit.blind_nsigma: this key is varied by the grid "
        f"({cfg}:5); choose grid points with --points, or change the "
        f"[grid] table."
    )
    # a table holding it likewise (it was taken, then overwritten at every point)
    code, _, err2 = cli("run", cfg, "--dry-run", "--set", "fit={blind_nsigma=2.0}")
    assert code == 1 and err2 == err
    code, out, err = cli("run", cfg, "--dry-run", "--steps", "load", "--set", "fit.n_restarts=3")
    assert code == 0, err
    assert out.startswith("# 4 tasks")
    code, out, err = cli("run", cfg, "--dry-run", "--steps", "load", "--set", "fit={n_restarts=3}")
    assert code == 0, err


def test_booleans_in_point_names():
    assert point_names([{"inject.refit_gp": False}, {"inject.refit_gp": True}]) == [
        "refit_gp-false",
        "refit_gp-true",
    ]


def test_points_run_one_by_one_stay_one_run(tmp_path: Path, cli):
    """A grid run point by point (--points) keeps the points an earlier selection made for
    status, summary, compare and the exports, as long as their config is unchanged; a point
    whose config changed since (or was edited by hand) is left out of the run."""
    import json

    out_dir = tmp_path / "out"
    cfg = quickstart_child(tmp_path / "g.toml", GRID_2X2.format(out=out_dir))

    def recorded() -> tuple[list[str], list[str]]:
        data = json.loads((out_dir / "run.json").read_text())
        return [g["name"] for g in data["grid"]], [t["id"] for t in data["plan"]]

    for sel in ("2", "0"):
        code, _, err = cli("run", cfg, "--steps", "load", "--points", sel)
        assert code == 0, err
    names = ["blind_nsigma-1.64_rebin-5", "blind_nsigma-1.96_rebin-5"]  # in grid order
    assert recorded() == (names, [f"{n}/load" for n in reversed(names)])
    code, out, _ = cli("status", out_dir)
    assert code == 0 and out.endswith("\ndone=2\n") and all(f"│ {n} │ load" in out for n in names)

    # point 0 again with another --steps: point 2's config (and plan) is unchanged, kept
    code, _, err = cli("run", cfg, "--steps", "load", "--points", "0", "--force")
    assert code == 0, err
    assert recorded()[0] == names
    # ... and with other steps or workers: how a point runs, not what it computes (a run
    # with --steps of other steps dropped point 2 from run.json, and so from the index
    # and the summary: a review)
    code, _, err = cli("run", cfg, "--steps", "load,fit", "--points", "0", "--jobs", "1")
    assert code == 0, err
    assert recorded()[0] == names

    # a point config edited by hand is no longer vouched for: left out
    edited = out_dir / names[1] / "config.toml"
    edited.write_text(edited.read_text() + "\n")
    code, _, err = cli("run", cfg, "--steps", "load", "--points", "0")
    assert code == 0, err
    assert recorded() == (names[:1], [f"{names[0]}/load"])

    # another config: the earlier selection's point belongs to the old one
    code, _, err = cli("run", cfg, "--steps", "load", "--points", "2")
    assert code == 0, err
    assert recorded()[0] == names
    code, _, err = cli("run", cfg, "--steps", "load", "--points", "0", "--set", "fit.n_restarts=3")
    assert code == 0, err
    assert recorded()[0] == names[:1]
    (out_dir / names[1] / "scan.csv").write_text("")  # as if its limit step had run
    code, _, err = cli("compare", out_dir)
    assert code == 1 and err.strip().endswith(
        f"or a run folder with a grid ({names[1]} in {out_dir} belongs to an earlier config "
        "of the run: give the point folders to compare them anyway)."
    )


def test_a_grid_key_inside_a_value_that_is_not_a_table_is_refused(tmp_path: Path, cli):
    """``--set fit=3`` (for ``fit.n_restarts=3``) with a grid over ``fit.blind_nsigma``: the
    grid's table replaced the value and with it the config's whole [fit] section, and
    validate said valid (a review); without a grid the value is refused."""
    cfg = quickstart_child(
        tmp_path / "g.toml",
        '[fit]\nn_restarts = 7\n[grid]\n"fit.blind_nsigma" = [1.64, 1.96]\n',
    )
    code, out, err = cli("validate", cfg, "--set", "fit=3")
    assert (code, out) == (1, "")
    assert err.strip() == (
        "error: --set fit: 3 is not a table, yet the grid sets fit.blind_nsigma in it; set a "
        "key inside it (fit.KEY = VALUE)."
    )
    code, out, err = cli("render", cfg, "--set", "fit.n_restarts=3")
    assert code == 0 and "n_restarts = 3" in out, err


def test_a_run_setting_that_renders_differently_at_grid_points_is_refused(tmp_path: Path):
    """An image or SLURM time whose Jinja2 reads a grid key rendered per point, but the run
    took the first point's for every task (each point's config.toml named its own)."""
    cfg = quickstart_child(
        tmp_path / "g.toml",
        """
        image = "img:{{ fit.n_restarts }}"
        [slurm]
        time = "{{ 10 * (fit.n_restarts + 1) }}"
        [grid]
        "fit.n_restarts" = [0, 1]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_points(cfg)
    same = (
        "a run has one value of it for all its points (how and where the tasks run, or the "
        "run's limits); make one run per value (--set, with another base.output)."
    )
    assert info.value.errors == [
        f'{cfg}:3: base.image: renders "img:0" at grid point n_restarts-0 and "img:1" at '
        f"n_restarts-1: {same}",
        f'{cfg}:5: slurm.time: renders "10" at grid point n_restarts-0 and "20" at '
        f"n_restarts-1: {same}",
    ]


def test_a_grid_axis_no_step_computes_with_is_said(tmp_path: Path):
    """A grid over ``limit.n_toys`` with asymptotic limits, or over ``inject.n_toys``
    without the inject step, gave identical points without a word (a review); validate
    and run say so. An axis a step reads is not named."""
    cfg = quickstart_child(
        tmp_path / "g.toml",
        """
        [limit]
        mode = "asymptotic"
        [steps]
        run = ["load", "fit", "limit", "plot"]
        [grid]
        "limit.n_toys" = [100, 5000]
        "inject.n_toys" = [10, 20]
        "fit.blind_nsigma" = [1.64, 1.96]
        """,
    )
    code, out, err = run_cli_here("validate", cfg)
    assert code == 0, out + err
    steps = "steps.run = ['load', 'fit', 'limit', 'plot']"
    said = " ".join((out + err).split())
    for line, key, why in (
        (9, "inject.n_toys", ""),
        (8, "limit.n_toys", "; limit.mode is asymptotic"),
    ):
        assert (
            f"notice: {cfg}:{line}: {key}: a [grid] axis that no step this config runs "
            f"computes with ({steps}{why}): its points give identical results." in said
        ), said
    assert said.count("a [grid] axis") == 2
    code, out, err = run_cli_here("validate", cfg, "--set", "limit.mode=toys")
    assert code == 0 and " ".join((out + err).split()).count("a [grid] axis") == 1
    # a grid of steps.run changes what runs (it was said to give identical points)
    steps = quickstart_child(
        tmp_path / "s.toml",
        """
        [grid]
        "steps.run" = [["load", "fit", "limit"], ["load", "fit", "limit", "plot"]]
        "inject.n_toys" = [10, 20]
        """,
    )
    code, out, err = run_cli_here("validate", steps)
    said = " ".join((out + err).split())
    assert code == 0 and "steps.run: a [grid] axis" not in said, said
    # an axis a template of a read key reads changes results (it was said to give
    # identical points, a review); beside an idle one in a product grid
    fed = quickstart_child(
        tmp_path / "t.toml",
        """
        [fit]
        n_restarts = "{{ 8 if inject.refit_gp else 2 }}"
        [grid]
        "inject.refit_gp" = [true, false]
        "inject.n_toys" = [10, 20]
        """,
    )
    code, out, err = run_cli_here("validate", fed)
    said = " ".join((out + err).split())
    assert code == 0 and "inject.refit_gp: a [grid] axis" not in said, said
    assert said.count("a [grid] axis") == 1 and "inject.n_toys: a [grid] axis" in said, said
    # zipped with a read axis, an idle one is still said (the whole-diff review)
    zipped = quickstart_child(
        tmp_path / "z.toml",
        '[grid.zip]\n"inject.refit_gp" = [true, false]\n"fit.n_restarts" = [2, 3]\n',
    )
    code, out, err = run_cli_here("validate", zipped)
    said = " ".join((out + err).split())
    assert code == 0 and said.count("a [grid] axis") == 1, said
    assert "inject.refit_gp: a [grid] axis" in said, said


def test_an_axis_varied_in_two_spellings_is_refused(tmp_path: Path):
    """``"fit.blind_nsigma" = [...]`` beside ``[grid.fit] blind_nsigma = [...]``: two TOML
    keys, one grid key; the second list replaced the first without a word (2 points where
    4 values were given; a review)."""
    cfg = quickstart_child(
        tmp_path / "g.toml",
        """
        [grid]
        "fit.blind_nsigma" = [1.64, 1.96]
        [grid.fit]
        blind_nsigma = [2.5, 3.0]
        [grid.zip]
        "limit.alpha" = [0.05, 0.1]
        limit = {alpha = [0.1, 0.32]}
        """,
    )
    code, out, err = run_cli_here("grid", cfg)
    assert (code, out) == (1, "")
    said = err.strip().splitlines()
    assert said == [
        f"error: {cfg}:4: grid.fit.blind_nsigma: fit.blind_nsigma is varied twice, as a "
        'dotted key ("fit.blind_nsigma" = [...]) and in a table ([grid.<section>] ...): one '
        "list would replace the other; give its values once.",
        f"error: {cfg}:8: grid.zip.limit.alpha: limit.alpha is varied twice, as a dotted key "
        '("limit.alpha" = [...]) and in a table ([grid.<section>] ...): one list would '
        "replace the other; give its values once.",
    ], err
    with pytest.raises(ConfigError):
        expand({"fit.x": [1, 2], "fit": {"x": [3, 4]}})


def test_a_grid_key_with_an_empty_name_names_its_file(tmp_path: Path):
    """``"." = [1, 2]`` in [grid] said ``error: "": an empty key name is not a setting``,
    naming no file (a review)."""
    cfg = quickstart_child(tmp_path / "g.toml", '[grid]\n"." = [1, 2]\n')
    code, out, err = run_cli_here("validate", cfg)
    assert (code, out, err.strip()) == (
        1,
        "",
        f"error: {cfg}:3: grid: '.': an empty key name is not a setting; remove it.",
    )


def test_a_point_config_is_the_same_but_for_how_it_ran():
    """What a run's options set (--steps, --engine, --executor, --jobs, --unblind) and
    where it writes are no other config: the TUI marked every --unblind result of a
    blinded config "NOT OF THIS CONFIG" (the own-diff review); a setting that computes
    is."""
    from conftest import QUICKSTART

    from gprpipe.config import load_points
    from gprpipe.pipeline.store import point_config_text, same_point_config

    _, (point,) = load_points(QUICKSTART, ["base.blind=true"])
    text = point_config_text(point)
    assert "blind = true" in text
    assert same_point_config(text, point)
    assert same_point_config(text.replace("blind = true", "blind = false"), point)
    _, (other,) = load_points(
        QUICKSTART, ["base.blind=true", "base.output=elsewhere", "base.jobs=7"]
    )
    assert same_point_config(text, other)
    _, (wider,) = load_points(QUICKSTART, ["base.blind=true", "fit.blind_nsigma=1.96"])
    assert not same_point_config(text, wider)
