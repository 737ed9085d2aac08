"""The load step (ROOT -> load.h5), its error sentences, and the demo data."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from conftest import DEMO_ROOT, QUICKSTART, REPO, run_cli_here, settings

from gprpipe.config import load_points
from gprpipe.demo import demo_spectrum
from gprpipe.errors import GprpipeError
from gprpipe.io.hdf5 import read_attr, sha256_file
from gprpipe.io.root import read_hist, rebin, write_hist
from gprpipe.pipeline.state import read_state
from gprpipe.pipeline.store import write_point_configs
from gprpipe.steps.load import read_load
from gprpipe.steps.runner import run_task

EDGES = np.linspace(0.0, 0.15, 151)  # 1 MeV bins
COUNTS = np.arange(150, dtype=float) + 1.0


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ROOT file with folders, cycles, a TH2, a TTree, an empty and a negative histogram,
    a scaled (non-integer) one and one with unequal bins."""
    path = tmp_path_factory.mktemp("root") / "zoo.root"
    with uproot.recreate(path) as f:
        f["input_hist"] = (COUNTS, EDGES)
        f["preselection/h_invM_8000"] = (COUNTS * 3, EDGES)
        f["h"] = (COUNTS, EDGES)  # cycle 1
        f["h"] = (COUNTS * 2, EDGES)  # cycle 2
        f["h2d"] = (np.ones((4, 5)), np.linspace(0, 1, 5), np.linspace(0, 1, 6))
        f.mktree("events", {"mass": np.float64})
        f["events"].extend({"mass": np.linspace(0.01, 0.1, 20)})
        f["empty"] = (np.zeros(150), EDGES)
        f["negative"] = (COUNTS - 10, EDGES)
        f["scaled"] = (COUNTS * 0.5, EDGES)  # 0.5, 1, 1.5, ...: 75 non-integer contents
        f["unequal"] = (COUNTS[:-1], np.concatenate([EDGES[:100], EDGES[101:]]))
    return path


# ---------------------------------------------------------------- read_hist


def test_read_plain_folder_and_cycles(zoo: Path):
    counts, edges = read_hist(zoo, "input_hist")
    np.testing.assert_array_equal(counts, COUNTS)
    np.testing.assert_allclose(edges, EDGES)
    assert read_hist(zoo, "preselection/h_invM_8000")[0].sum() == 3 * COUNTS.sum()
    assert read_hist(zoo, "h;1")[0].sum() == COUNTS.sum()
    assert read_hist(zoo, "h;2")[0].sum() == 2 * COUNTS.sum()
    assert read_hist(zoo, "h")[0].sum() == 2 * COUNTS.sum()  # highest cycle


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("h2d", "'h2d' is a TH2D, not a 1-D histogram (TH1)."),
        ("events", "'events' is a TTree, not a 1-D histogram (TH1)."),
        ("preselection", "'preselection' is a ReadOnlyDirectory, not a 1-D histogram (TH1)."),
        ("empty", "histogram 'empty' is empty."),
        ("negative", "histogram 'negative' has negative or non-finite bin contents."),
        (
            "scaled",
            "histogram 'scaled' holds 0.5 in bin 1 (0-0.001) and 74 more non-integer "
            "contents; the Poisson likelihood needs event counts, not a weighted or scaled "
            "histogram.",
        ),
        (
            "unequal",
            "histogram 'unequal' has bins of unequal width (0.001 to 0.002); the background "
            "fit needs equal-width bins.",
        ),
        (
            "input_hisst",
            "histogram 'input_hisst' not found; closest of its 7 1-D histograms: input_hist,",
        ),
        (
            "preselection/h_invM_800",
            "histogram 'preselection/h_invM_800' not found; closest of its "
            "7 1-D histograms: preselection/h_invM_8000,",
        ),
        ("zzz", "histogram 'zzz' not found; closest of its 7 1-D histograms: "),
    ],
)
def test_read_errors_are_one_sentence(zoo: Path, name: str, message: str):
    with pytest.raises(GprpipeError) as info:
        read_hist(zoo, name)
    msg = str(info.value)
    assert msg.startswith(f"{zoo}: {message}"), msg
    assert "\n" not in msg and msg.endswith(".")


def test_read_missing_and_non_root_files(tmp_path: Path):
    with pytest.raises(GprpipeError, match=r"nope\.root: data file not found\.$"):
        read_hist(tmp_path / "nope.root", "h")
    bad = tmp_path / "bad.root"
    bad.write_text("not a ROOT file")
    with pytest.raises(GprpipeError) as info:
        read_hist(bad, "h")
    assert str(info.value) == (  # short: not "truncated", as uproot alone says
        f"{bad}: cannot open as a ROOT file (not a ROOT file: first four bytes are b'not ')."
    )
    cut = tmp_path / "cut.root"  # a real ROOT file, cut short (a copy that did not finish)
    whole = DEMO_ROOT.read_bytes()
    # 10,000 of 19,129 bytes keep the histogram's key and data: it read without a word
    for n in (1000, 10000):
        cut.write_bytes(whole[:n])
        with pytest.raises(GprpipeError) as info:
            read_hist(cut, "input_hist")
        assert str(info.value) == (
            f"{cut}: cannot open as a ROOT file (it is truncated: it ends before the data its "
            f"header points to; {n} of {len(whole)} bytes)."
        )
    cut.write_bytes(whole[:10])  # too short for the header's record of the end
    with pytest.raises(GprpipeError) as info:
        read_hist(cut, "input_hist")
    assert str(info.value) == (
        f"{cut}: cannot open as a ROOT file (it is truncated: it ends before the data its "
        "header points to)."
    )
    with pytest.raises(GprpipeError) as info:
        read_hist("/dev/null", "input_hist")
    assert str(info.value) == "/dev/null: not a regular file (a ROOT file is needed)."


def test_a_pattern_that_matches_folders_lists_only_their_histograms(tmp_path: Path):
    """A glob for toys or background histograms (toyscan.pattern, inject.histograms) may
    match folders as well (``toy*`` matches ``toyd`` and ``toyd/sub``): they are skipped,
    not asked for a class of their own (a nested folder has none: "internal error")."""
    from gprpipe.io.root import match_hists

    path = tmp_path / "nested.root"
    with uproot.recreate(path) as f:
        f["toy_10"] = (COUNTS, EDGES)
        f["toy_2"] = (COUNTS, EDGES)
        f["toyd/sub/h"] = (COUNTS, EDGES)
        f.mktree("toytree", {"mass": np.float64})
    assert match_hists(path, "toy*") == ["toy_2", "toy_10", "toyd/sub/h"]
    assert match_hists(path, "toyd/*") == ["toyd/sub/h"]
    with pytest.raises(GprpipeError, match=r"no histogram matches toyscan\.pattern 'toyd'"):
        match_hists(path, "toyd", "toyscan.pattern")


def test_a_folder_whose_key_list_is_damaged_is_not_said_to_match_nothing(tmp_path: Path):
    """A toy file whose folder's key list is damaged (its top-level data histogram reads
    fine) was reported as "no histogram matches toyscan.pattern" (a review): the pattern
    was blamed for a damaged file. Said damaged now."""
    from gprpipe.io.root import match_hists

    path = tmp_path / "toys.root"
    with uproot.recreate(path) as f:
        f["input_hist"] = (COUNTS, EDGES)
        f["toys/h0"] = (COUNTS, EDGES)
    with uproot.open(path) as f:
        seek = f["toys"].fSeekKeys
    raw = bytearray(path.read_bytes())
    keylen = int.from_bytes(raw[seek + 14 : seek + 16], "big")  # the list's own key header
    raw[seek + keylen : seek + keylen + 4] = (10**6).to_bytes(4, "big")  # its number of keys
    path.write_bytes(bytes(raw))
    assert read_hist(path, "input_hist")[0].sum() == COUNTS.sum()
    with pytest.raises(GprpipeError) as info:
        match_hists(path, "toys/*", "toyscan.pattern")
    assert str(info.value).startswith(
        f"{path}: its histograms cannot be listed, the file is damaged (attempting to get bytes"
    )


def test_a_pattern_that_matches_a_histogram_of_two_dimensions_is_refused(tmp_path: Path):
    """A TH2 matched by toyscan.pattern was skipped without a word (a review: a run of two
    toys reported one, exit 0): one sentence naming it."""
    from gprpipe.io.root import match_hists

    path = tmp_path / "toys.root"
    with uproot.recreate(path) as f:
        f["toys/t_toy_0"] = (COUNTS, EDGES)
        f["toys/t_toy_5"] = (np.ones((len(COUNTS), 2)), EDGES, np.array([0.0, 1.0, 2.0]))
        f["toys/meta"] = "not a histogram"  # other objects stay outside the toys
    assert match_hists(path, "toys/t_toy_0*") == ["toys/t_toy_0"]
    with pytest.raises(GprpipeError) as info:
        match_hists(path, "toys/*", "toyscan.pattern")
    assert str(info.value) == (
        f"{path}: toyscan.pattern 'toys/*' matches 'toys/t_toy_5', a TH2D, not a 1-D "
        "histogram (TH1)."
    )


def test_bin_edges_that_run_downwards_are_said(tmp_path: Path):
    """Decreasing bin edges passed the equal-width check (all widths -w) and were refused
    later as a range "outside" the histogram (0.15-0 GeV), blaming the card's range key."""
    path = tmp_path / "down.root"
    with uproot.recreate(path) as f:
        f["input_hist"] = (COUNTS[::-1].copy(), EDGES[::-1].copy())
    with pytest.raises(GprpipeError) as info:
        read_hist(path, "input_hist")
    assert str(info.value) == (
        f"{path}: histogram 'input_hist' has bin edges that do not increase "
        f"({EDGES[-1]:g} then {EDGES[-2]:g} at bin 1)."
    )


def test_bin_edges_that_are_not_finite_are_said(tmp_path: Path, cli):
    """A NaN bin edge passed the increase check (NaN compares false both ways) and
    validate said "internal error: IndexError" (a review): one sentence naming the edge."""
    path = tmp_path / "nanedge.root"
    edges = EDGES.copy()
    edges[5] = np.nan
    with uproot.recreate(path) as f:
        f["input_hist"] = (COUNTS, edges)
    with pytest.raises(GprpipeError) as info:
        read_hist(path, "input_hist")
    assert str(info.value) == (
        f"{path}: histogram 'input_hist' has bin edges that are not finite "
        f"(edge 6 of {len(EDGES)} is nan)."
    )
    code, _, err = cli("validate", QUICKSTART, *settings(f"datasets.demo.path={path}"))
    assert code == 1 and err.endswith(
        f"datasets.demo.hist: {path}: histogram 'input_hist' has bin edges that are not "
        f"finite (edge 6 of {len(EDGES)} is nan).\n"
    ), err


def test_a_histogram_whose_contents_and_axis_disagree_is_said_damaged(tmp_path: Path, cli):
    """A TH1 with more (or fewer) bin contents than its axis has bins (uproot reads it as
    it is): validate and run said "internal error: IndexError", and one content more was
    dropped without a word (a review). One sentence naming the histogram now; also for a
    toy file's histogram, through the same reader."""
    from uproot.writing.identify import to_TAxis, to_TH1x

    n = len(EDGES) - 1
    for extra, said in ((n, 2 * n), (1, n + 1), (-n // 2, n - n // 2)):
        path = tmp_path / f"mismatch{extra}.root"
        data = np.zeros(n + extra + 2)  # (with the under- and overflow)
        axis = to_TAxis("xaxis", "", n, float(EDGES[0]), float(EDGES[-1]))
        hist = to_TH1x("input_hist", "", data, 0.0, 0.0, 0.0, 0.0, 0.0, data, axis)
        with uproot.recreate(path) as f:
            f["input_hist"] = hist
        with pytest.raises(GprpipeError) as info:
            read_hist(path, "input_hist")
        assert str(info.value) == (
            f"{path}: histogram 'input_hist' is damaged: {said} bin contents for {n} bins "
            "of its axis."
        )
    code, _, err = cli("validate", QUICKSTART, *settings(f"datasets.demo.path={path}"))
    assert code == 1 and err.endswith(f"datasets.demo.hist: {info.value}\n"), err


def test_read_real_2015_file(shared_data: Path):
    path = shared_data / "funcform_2015_toys.root"
    counts, edges = read_hist(path, "input_hist")
    assert len(counts) == 3000 and edges[0] == 0.0 and edges[-1] == pytest.approx(0.15)
    assert counts.sum() == pytest.approx(2.145e7, rel=1e-3)
    toy = read_hist(path, "fShiftSigPow/fShiftSigPow_toy_0")[0]
    assert len(toy) == 3000 and toy.sum() == pytest.approx(counts.sum(), rel=0.01)
    assert read_hist(path, "input_hist;1")[0].sum() == counts.sum()
    with pytest.raises(GprpipeError, match="is a TF1, not a 1-D histogram"):
        read_hist(path, "fit_functions/fShiftSigPow_fit")
    with pytest.raises(GprpipeError, match="histograms: fShiftSigPow/fShiftSigPow_toy_"):
        read_hist(path, "fShiftSigPow/fShiftSigPow_toy_O")
    # a name from another file's layout: the top-level input_hist comes first, not a toy
    with pytest.raises(GprpipeError, match=r"closest of its 301 1-D histograms: input_hist, "):
        read_hist(path, "preselection/h_invM")


def test_rebin_sums_and_drops_the_tail():
    counts, edges = rebin(COUNTS, EDGES, 7)
    assert len(counts) == 150 // 7 and len(edges) == len(counts) + 1
    assert counts[0] == COUNTS[:7].sum() and counts[-1] == COUNTS[140:147].sum()
    np.testing.assert_allclose(edges, EDGES[:148:7])
    same = rebin(COUNTS, EDGES, 1)
    assert same[0] is COUNTS


# ---------------------------------------------------------------- the load step


def load_task(tmp_path: Path, *overrides: str) -> tuple[int, Path]:
    """Run the load task of the quickstart (with overrides) in this process."""
    run_dir = tmp_path / "run"
    _, points = load_points(
        QUICKSTART, [f"base.output={run_dir}", 'steps.run=["load"]', *overrides]
    )
    write_point_configs(run_dir, points)
    point_dir = run_dir / points[0].name
    return run_task(point_dir, "load"), point_dir


def test_load_step_writes_load_h5(tmp_path: Path, capsys):
    code, point_dir = load_task(tmp_path)
    assert code == 0
    path = point_dir / "load.h5"
    with h5py.File(path, "r") as f:
        for key in ("gprpipe_version", "cache_key", "created", "config_sha256"):
            assert f.attrs[key]
        assert f.attrs["config_sha256"] == sha256_file(point_dir / "config.toml")
        g = f["demo"]
        assert g.attrs["source"] == str(DEMO_ROOT) and g.attrs["hist"] == "input_hist"
        assert g.attrs["sha256"] == sha256_file(DEMO_ROOT) and g.attrs["rebin"] == 10
        counts, edges = g["counts"][()], g["edges"][()]
    raw, raw_edges = read_hist(DEMO_ROOT, "input_hist")
    assert len(counts) == 300 and len(edges) == 301
    assert counts.sum() == raw.sum() and counts[0] == raw[:10].sum()
    np.testing.assert_allclose(edges, raw_edges[::10])
    np.testing.assert_array_equal(read_load(path, "demo")[0], counts)
    assert read_state(point_dir, "load") == ("done", read_state(point_dir, "load")[1])
    # a second call finds its output up to date
    capsys.readouterr()
    assert run_task(point_dir, "load") == 0
    assert "cached" in capsys.readouterr().out


def test_changed_data_file_reruns_load(tmp_path: Path, capsys):
    data = tmp_path / "data.root"
    write_hist(data, COUNTS, EDGES)
    args = (f"datasets.demo.path={data}", "datasets.demo.rebin=1")
    code, point_dir = load_task(tmp_path, *args)
    assert code == 0
    key = read_attr(point_dir / "load.h5", "cache_key")
    write_hist(data, COUNTS * 2, EDGES)  # same path, new content
    capsys.readouterr()
    code, point_dir = load_task(tmp_path, *args)
    assert code == 0 and "cached" not in capsys.readouterr().out
    assert read_attr(point_dir / "load.h5", "cache_key") != key
    assert read_load(point_dir / "load.h5", "demo")[0].sum() == 2 * COUNTS.sum()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("datasets.demo.hist=nope",),
            "histogram 'nope' not found; closest of its 1 1-D histogram: input_hist.",
        ),
        (
            ("datasets.demo.hist=input_hst",),
            "histogram 'input_hst' not found; closest of its 1 1-D histogram: input_hist.",
        ),
        (
            ("datasets.demo.range=[0.02, 0.2]",),
            "datasets.demo.range: [0.02, 0.2] GeV extends past histogram 'input_hist'",
        ),
        (
            ("datasets.demo.data_range=[0.0, 0.16]",),
            "datasets.demo.data_range: [0, 0.16] GeV extends past histogram",
        ),
        (  # 3000 bins to 0.15 GeV: a rebin of 7 keeps 2996 of them, to 0.1498 GeV
            ("datasets.demo.rebin=7", "datasets.demo.range=[0.02, 0.1499]"),
            "(0-0.1498 GeV, after a rebin of 7, which drops the last 4 of its bins (they fill "
            "no group of 7)).",
        ),
        (
            ("datasets.demo.rebin=5000",),
            "datasets.demo.rebin: a rebin of 5000 exceeds the 3000 bins of histogram 'input_hist'",
        ),
    ],
)
def test_load_step_errors(tmp_path: Path, capsys, overrides, message):
    code, point_dir = load_task(tmp_path, *overrides)
    assert code == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    state, msg = read_state(point_dir, "load")
    assert state == "failed" and message in msg
    assert not (point_dir / "load.h5").exists()


def test_load_step_missing_data_file(tmp_path: Path, capsys):
    code, _point_dir = load_task(tmp_path, f"datasets.demo.path={tmp_path / 'gone.root'}")
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'gone.root'}: data file not found."


def test_load_step_subfolder_histogram_with_cycle(tmp_path: Path, zoo: Path):
    code, point_dir = load_task(
        tmp_path,
        f"datasets.demo.path={zoo}",
        "datasets.demo.rebin=2",
        "datasets.demo.hist=h;1",
        "datasets.demo.range=[0.02, 0.1]",
    )
    assert code == 0
    counts, _edges = read_load(point_dir / "load.h5", "demo")
    np.testing.assert_array_equal(counts, COUNTS.reshape(-1, 2).sum(axis=1))
    code, point_dir = load_task(
        tmp_path,
        f"datasets.demo.path={zoo}",
        "datasets.demo.hist=preselection/h_invM_8000",
        "datasets.demo.range=[0.02, 0.1]",
        "datasets.demo.rebin=1",
    )
    assert code == 0
    assert read_load(point_dir / "load.h5", "demo")[0].sum() == 3 * COUNTS.sum()


def test_load_step_wrong_object_types(tmp_path: Path, zoo: Path, capsys):
    for hist, cls in (("h2d", "TH2D"), ("events", "TTree")):
        code, _ = load_task(tmp_path, f"datasets.demo.path={zoo}", f"datasets.demo.hist={hist}")
        assert code == 1
        assert f"'{hist}' is a {cls}, not a 1-D histogram (TH1)." in capsys.readouterr().err
    code, _ = load_task(tmp_path, f"datasets.demo.path={zoo}", "datasets.demo.hist=empty")
    assert code == 1 and "histogram 'empty' is empty." in capsys.readouterr().err


# ---------------------------------------------------------------- demo data


def test_demo_data_command_is_deterministic(tmp_path: Path, cli):
    a, b, c = tmp_path / "a.root", tmp_path / "b.root", tmp_path / "c.root"
    assert cli("demo-data", a)[0] == 0
    assert cli("demo-data", b)[0] == 0
    code, out, _ = cli("demo-data", c, "--seed", "7", "--hist", "dir/spec")
    assert code == 0 and "3000 bins over 0-0.15 GeV" in out
    ca, _ea = read_hist(a, "input_hist")
    cb, _ = read_hist(b, "input_hist")
    cc, _ = read_hist(c, "dir/spec")
    np.testing.assert_array_equal(ca, cb)
    assert not np.array_equal(ca, cc) and abs(cc.sum() / ca.sum() - 1) < 1e-3
    # the shipped quickstart file is exactly this command's output
    np.testing.assert_array_equal(read_hist(DEMO_ROOT, "input_hist")[0], ca)


def test_demo_shape_is_hps2015_like():
    counts, edges = demo_spectrum()
    x = 0.5 * (edges[1:] + edges[:-1])
    total = counts.sum()
    assert 1.8e7 < total < 2.5e7
    assert counts[x < 0.015].sum() < 1e-3 * total  # turn-on
    peak = x[np.argmax(np.convolve(counts, np.ones(21) / 21, mode="same"))]
    assert 0.020 < peak < 0.040
    top = counts[(x > peak - 0.002) & (x < peak + 0.002)].mean()
    tail = counts[x > 0.145].mean()
    assert np.log10(top / tail) > 3.0  # falls over more than three decades to 150 MeV
    assert (counts[(x > 0.02) & (x < 0.10)] > 0).all()


def test_demo_signal_adds_the_requested_yield():
    bkg, edges = demo_spectrum(seed=11)
    sig, _ = demo_spectrum(seed=11, signal_mass=0.06, signal_yield=5000)
    x = 0.5 * (edges[1:] + edges[:-1])
    extra = sig - bkg
    assert (extra >= 0).all()
    assert 5000 - 4 * 71 < extra.sum() < 5000 + 4 * 71  # Poisson yield
    near = extra[np.abs(x - 0.06) < 3 * 0.0031].sum()  # sigma(60 MeV) ~ 3.1 MeV
    assert near > 0.99 * extra.sum()
    assert demo_spectrum(seed=11, signal_mass=0.06, signal_yield=0)[0].sum() == bkg.sum()


def test_demo_matches_real_2015_spectrum(shared_data: Path):
    real, edges = read_hist(shared_data / "funcform_2015_toys.root", "input_hist")
    demo, demo_edges = demo_spectrum()
    np.testing.assert_allclose(demo_edges, edges)
    assert demo.sum() == pytest.approx(real.sum(), rel=0.01)
    r, _ = rebin(real, edges, 50)
    d, e = rebin(demo, edges, 50)
    x = e[:-1]
    core = (x >= 0.015) & (x < 0.110)
    np.testing.assert_allclose(d[core], r[core], rtol=0.10)


def test_write_hist_is_a_th1d(tmp_path: Path):
    path = tmp_path / "h.root"
    write_hist(path, COUNTS, EDGES, "folder/hist")
    with uproot.open(path) as f:
        assert f["folder/hist"].classname == "TH1D"
    assert not list(tmp_path.glob(".*tmp"))


def test_validate_blames_the_histogram_key_for_its_contents(tmp_path: Path, zoo: Path, cli):
    """A histogram that reads but cannot be fitted is the ``hist`` key's fault; a file that
    does not read is the ``path`` key's."""
    for hist in ("negative", "scaled", "unequal", "empty", "h2d", "zzz"):
        code, _, err = cli(
            "validate",
            QUICKSTART,
            *settings(f"datasets.demo.path={zoo}", f"datasets.demo.hist={hist}"),
        )
        assert code == 1 and err.startswith(f"error: --set datasets.demo.hist: {zoo}: "), err
    cut = tmp_path / "cut.root"
    cut.write_bytes(DEMO_ROOT.read_bytes()[:1000])
    code, _, err = cli("validate", QUICKSTART, *settings(f"datasets.demo.path={cut}"))
    assert code == 1 and err.startswith(f"error: --set datasets.demo.path: {cut}: "), err


def test_counts_beyond_exact_whole_numbers_are_refused(tmp_path: Path):
    """A histogram of ~1e19 counts passed validation, then every mass failed with "32-th
    leading minor of the array is not positive definite", naming no histogram."""
    path = tmp_path / "huge.root"
    with uproot.recreate(path) as f:
        f["input_hist"] = (COUNTS * 1e15, EDGES)
    with pytest.raises(GprpipeError) as info:
        read_hist(path, "input_hist")
    first = int(np.flatnonzero(COUNTS * 1e15 > 2.0**53)[0])
    assert str(info.value) == (
        f"{path}: histogram 'input_hist' holds {COUNTS[first] * 1e15:g} in bin {first + 1} "
        f"({EDGES[first]:g}-{EDGES[first + 1]:g}), above 2^53 = 9.01e+15 where numbers are "
        "no longer exact whole numbers; the Poisson likelihood needs event counts."
    )


def test_a_gap_of_empty_bins_in_the_data_is_refused_before_the_run(tmp_path: Path, cli):
    """The real 2015 histogram with its 55-65 MeV bins emptied passed validate; the run then
    failed at 30 and 100 MeV, far from the gap, with "limit failed: Singular matrix" (the
    GP fits ln y, an empty bin enters as 0; a review). It is refused, naming the bins."""
    from conftest import SHARED_DATA

    src = SHARED_DATA / "funcform_2015_toys.root"
    if not src.exists():
        pytest.skip("real data not available")
    counts, edges = read_hist(src, "input_hist")
    x = 0.5 * (edges[1:] + edges[:-1])
    holed = np.where((x > 0.055) & (x < 0.065), 0.0, counts)
    path = tmp_path / "sparse.root"
    with uproot.recreate(path) as f:
        f["hole"] = (holed, edges)
    gap = np.flatnonzero((holed == 0) & (counts > 0))
    lo, hi = float(edges[gap[0]]), float(edges[gap[-1] + 1])
    args = settings(f"datasets.2015.path={path}", "datasets.2015.hist=hole")
    code, out, err = cli("validate", REPO / "user_configs" / "hps2015.toml", *args)
    assert (code, out) == (1, "")
    assert f"histogram 'hole' in {path} has " in err and f" from {lo:g} to {hi:g} GeV " in err
    assert "a gap in the data, which the GP cannot model" in err
    # the file is at fault (it came from --set), not data_range, which no one set
    assert err.startswith("error: --set datasets.2015.path: "), err
    code, _, err = cli(
        "validate",
        REPO / "user_configs" / "hps2015.toml",
        *args,
        *settings("datasets.2015.data_range=[0.066, 0.15]", "scan.masses=[0.08, 0.1]"),
    )
    assert code == 0, err  # trained on one side of it


def test_histogram_names_from_a_file_are_shown_escaped(tmp_path: Path):
    """A histogram name in the file holding terminal escapes and a newline reached the
    terminal raw in the "closest" hint: it cleared the screen and forged a second error
    line (a review). Such a name is shown as its repr; plain names as they are."""
    counts, edges = np.full(10, 5.0), np.linspace(0.01, 0.02, 11)
    path = tmp_path / "esc.root"
    with uproot.recreate(path) as f:
        f["input_hist"] = (counts, edges)
        f["input_hisT\x1b[2J\nerror: fake line"] = (counts, edges)
    with pytest.raises(GprpipeError) as info:
        read_hist(path, "input_hisx")
    msg = str(info.value)
    assert msg.isprintable(), msg
    assert msg.endswith(
        "closest of its 2 1-D histograms: input_hist, 'input_hisT\\x1b[2J\\nerror: fake line'."
    ), msg


def test_a_dry_run_refuses_a_histogram_the_file_lacks(tmp_path: Path):
    """``run --dry-run`` printed the plan and exited 0 for a histogram the data file lacks,
    while validate and run refused it (a review): it refuses it alike, writing nothing."""
    out = tmp_path / "run"
    code, so, se = run_cli_here(
        "run", QUICKSTART, "--dry-run", *settings(f"base.output={out}", "datasets.demo.hist=nope")
    )
    assert code == 1, so + se
    assert "histogram 'nope' not found; closest of its 1 1-D histogram: input_hist." in se
    assert "Traceback" not in se and not out.exists()
