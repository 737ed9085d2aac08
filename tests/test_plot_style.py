"""Figure conventions: labels and legends outside the axes and never overlapping, markers
on short scans, labelled 1-5 sigma lines, a missing mplhep style is a warning."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from gprpipe.plotting import style
from gprpipe.plotting.suite import brazil_figure, significance_figure


def _extents(fig, ax):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return r, ax.get_window_extent(r)


@pytest.mark.parametrize(
    "text", ["HPS 2015", "HPS 2015 + HPS 2016 (10%) + HPS 2021: combined, m = 60 MeV"]
)
def test_labels_above_axes_and_apart(text):
    style.apply_style("hep")
    style.set_labels("HPS", "Preliminary", blinded=True)
    try:
        m = np.linspace(0.02, 0.13, 111)
        bands = [np.exp(-10 * m) * f for f in (0.5, 0.7, 1.0, 1.4, 2.0)]
        fig = brazil_figure(m, bands[2] * 1.1, bands, ylabel="limit", title=text)
        ax = fig.axes[0]
        style._separate_labels(fig)  # what save() does before writing
        r, box = _extents(fig, ax)
        left, right = (b.get_window_extent(r) for b in ax._gprpipe_labels)
        assert left.y0 >= box.y1 - 1 and right.y0 >= box.y1 - 1  # above the axes
        assert not left.overlaps(right)
        leg = ax.get_legend().get_window_extent(r)
        assert leg.x0 >= box.x1  # legend right of the axes: never over the curves
        plt.close(fig)
    finally:
        style.set_labels("HPS", "Preliminary", blinded=False)


def test_markers_only_on_short_scans():
    assert style.marker(5) == "o" and style.marker(111) == ""
    m = np.array([0.03, 0.06, 0.1])
    bands = [np.ones(3) * f for f in (1, 2, 3, 4, 5)]
    fig = brazil_figure(m, np.ones(3) * 2.5, bands, ylabel="y", title="t")
    assert all(line.get_marker() == "o" for line in fig.axes[0].get_lines())
    plt.close(fig)


def test_significance_has_labelled_sigma_levels_and_visible_global_curve():
    m = np.linspace(0.02, 0.13, 50)
    p_local = np.full(50, 0.3)
    p_global = np.ones(50)  # a flat global p0 = 1 must stay inside the frame
    fig = significance_figure(m, p_local, p_global, "HPS 2015")
    a1 = fig.axes[0]
    twin = next(
        a
        for a in fig.axes
        if a is not a1 and a.get_shared_x_axes().joined(a, a1) and a.get_yscale() == "log"
    )
    labels = [t.get_text() for t in twin.get_yticklabels()]
    assert labels == [f"{z}$\\sigma$" for z in (1, 2, 3, 4, 5)]
    lo, hi = a1.get_ylim()
    assert hi > 1.0 and lo < 3e-7  # p0 = 1 and the 5 sigma level both inside
    plt.close(fig)


def test_a_p0_that_underflows_to_0_is_drawn(tmp_path):
    """Z_local above 38.5: p0_local = ndtr(-Z) is 0 in the files and Z_global inf; the
    figure raised "Axis limits cannot be NaN or Inf" and the report's cell formatting an
    OverflowError (a review). The p0 is drawn at the smallest double, Z at 37.5; the
    report shows 'inf'."""
    from gprpipe.steps.report import _fmt

    m = np.array([0.03, 0.06, 0.1])
    fig = significance_figure(m, np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 1.0]), "t")
    fig.savefig(tmp_path / "z.png")
    z_axis = fig.axes[1]
    assert z_axis.get_lines()[0].get_ydata()[1] == pytest.approx(37.5, abs=0.1)
    assert z_axis.get_ylim()[1] == pytest.approx(38.0, abs=0.1)
    assert (_fmt("inf"), _fmt("-inf"), _fmt("nan"), _fmt("2.0")) == ("inf", "-inf", "nan", "2")
    plt.close(fig)


def test_toy_values_that_are_bounds_are_drawn_as_bounds():
    """A toy global p0 that no toy reached (1 / (N + 1)) was drawn as a value on the
    toys' curve; it is drawn as a triangle pointing down (p0 below it), and its Z up."""
    from gprpipe.results.summary import toys_bound
    from gprpipe.stats.lee import p_global_toys_err

    m = np.array([0.03, 0.06, 0.09])
    n_toys = 300
    p_toys = np.array([0.2, 1 / (n_toys + 1), 0.5])
    bound = toys_bound(p_toys, p_global_toys_err(p_toys, n_toys))
    assert bound.tolist() == [False, True, False]
    fig = significance_figure(
        m, np.array([0.1, 1e-4, 0.3]), np.ones(3), "", p_global_toys=p_toys, toys_bound=bound
    )
    clipped = significance_figure(
        m, np.array([0.1, 0.01, 0.3]), np.ones(3), "", p_global_toys=p_toys, toys_bound=bound
    )
    (tri,) = [ln for ln in clipped.axes[1].get_lines() if ln.get_marker() == "^"]
    assert tri.get_ydata()[0] == pytest.approx(2.3263, abs=1e-3)  # Z_local, as in scan.csv
    plt.close(clipped)
    a1, a2 = fig.axes[0], fig.axes[1]
    (down,) = [ln for ln in a1.get_lines() if ln.get_marker() == "v"]
    (up,) = [ln for ln in a2.get_lines() if ln.get_marker() == "^"]
    assert down.get_xdata().tolist() == [60.0] and down.get_ydata().tolist() == [1 / 301]
    assert up.get_ydata()[0] == pytest.approx(2.714, abs=1e-3)
    assert "toys: bound (no toy reached it)" in [t.get_text() for t in a1.get_legend().texts]
    plt.close(fig)
    # the toys' local p0 at each mass, with its error, beside the asymptotic curve
    fig = significance_figure(
        m,
        np.array([0.1, 1e-4, 0.3]),
        np.ones(3),
        "",
        p_global_toys=p_toys,
        p_local_toys=np.array([0.12, 0.004, 0.31]),
        p_local_toys_err=np.array([0.02, 0.003, 0.03]),
    )
    (points,) = fig.axes[0].containers
    assert points.get_label() == "local $p_0$ (toys at each mass)"
    assert points.lines[0].get_ydata().tolist() == [0.12, 0.004, 0.31]
    plt.close(fig)
    # no toys, or none a bound: no triangle
    fig = significance_figure(m, np.full(3, 0.1), np.ones(3), "", p_global_toys=np.full(3, 0.2))
    assert not [ln for a in fig.axes for ln in a.get_lines() if ln.get_marker() in ("v", "^")]
    plt.close(fig)


def test_missing_mplhep_is_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "mplhep", None)  # import raises ImportError
    with pytest.warns(UserWarning, match="mplhep is not installed"):
        style.apply_style("hep")
    style.apply_style("plain")


def _brazil_long_title():
    m = np.linspace(0.02, 0.13, 111)
    bands = [np.exp(-10 * m) * f for f in (0.5, 0.7, 1.0, 1.4, 2.0)]
    title = "HPS 2015 + HPS 2016 (10%) + HPS 2021: combined, m = 60 MeV"
    return brazil_figure(m, bands[2] * 1.1, bands, ylabel=r"limit on $\epsilon^2$", title=title)


def _significance_twin_axes():
    m = np.linspace(0.02, 0.13, 50)
    return significance_figure(m, np.exp(-((m - 0.06) ** 2) / 1e-4) * 0.3 + 1e-3, np.ones(50), "")


@pytest.mark.parametrize("build", [_brazil_long_title, _significance_twin_axes])
def test_one_pass_crop_is_matplotlibs_tight_crop(tmp_path, build):
    """save() measures the tight box without a layout pass; the PNG is byte for byte what
    matplotlib's own ``bbox_inches="tight"`` (layout pass, then measure) writes: lifted
    dataset labels, a legend outside the axes, a twin log axis on the right."""
    style.apply_style("hep")
    style.set_labels("HPS", "Preliminary", blinded=True)
    try:
        (ours,) = style.save(build(), tmp_path, "ours", ["png"])
        fig = build()
        style._separate_labels(fig)
        fig.savefig(tmp_path / "tight.png", bbox_inches="tight")
        plt.close(fig)
    finally:
        style.set_labels("HPS", "Preliminary", blinded=False)
    assert ours.read_bytes() == (tmp_path / "tight.png").read_bytes()


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_vector_crop_holds_what_the_vector_renderer_measures(tmp_path, fmt):
    """save() crops every format to the box measured once at the figure's dpi, padded by
    savefig.pad_inches; the box the vector renderer measures itself (text at 72 dpi) must
    differ by less than half the pad, so it lies well inside the crop (a long title and
    legend on a log axis: the widest texts of the figures)."""
    from matplotlib.backend_bases import _get_renderer
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    style.apply_style("hep")
    m = np.linspace(0.02, 0.13, 111)
    bands = [np.exp(-10 * m) * f for f in (0.5, 0.7, 1.0, 1.4, 2.0)]
    fig = brazil_figure(m, bands[2], bands, ylabel=r"limit on $\epsilon^2$", title="HPS 2015 " * 4)
    renderer = style._layout(fig)
    style._separate_labels(fig, renderer)
    measured = fig.get_tightbbox(renderer)  # inches
    canvas = {"pdf": FigureCanvasPdf, "svg": FigureCanvasSVG}[fmt](fig)
    vector = fig.get_tightbbox(_get_renderer(fig, print_method=getattr(canvas, f"print_{fmt}")))
    FigureCanvasAgg(fig)
    pad = plt.rcParams["savefig.pad_inches"]
    diff = np.abs(np.asarray(measured.extents) - np.asarray(vector.extents))
    assert diff.max() < pad / 2, diff * 72  # points
    assert measured.width > 10  # the long title widens the figure: a real test of text
    (path,) = style.save(fig, tmp_path, "crop", [fmt])
    assert path.read_bytes()[:5] in (b"%PDF-", b"<?xml")


def test_a_dataset_has_one_colour_in_every_overlay_and_flags_are_red():
    """2015 was blue in eps2_overlay and orange in brazil_eps2_combined_overlay (each
    figure took colours in its own order), and in the hep style the flag circles took the
    2021 curve's purple although every caption says red."""
    from matplotlib.colors import to_rgba

    from gprpipe.plotting.overlay import combined_brazil_figure, eps2_overlay_figure

    style.apply_style("hep")
    m = np.array([0.03, 0.06, 0.1])
    scan = {}
    for k, name in enumerate(("2015", "2016", "2021", "combined")):
        a = {"mass_GeV": m, "status": np.array(["ok", "flag_gof", "ok"])}
        for q in ("eps2_up", *(f"eps2_exp_{b}" for b in ("lo2", "lo1", "med", "hi1", "hi2"))):
            a[q] = np.exp(-10 * m) * (1 + 0.1 * k)
        scan[name] = a
    labels = {"2015": "HPS 2015", "2016": "HPS 2016", "2021": "HPS 2021"}

    def colours(fig) -> dict[str, tuple[float, ...]]:
        lines = fig.axes[0].get_lines()
        return {str(ln.get_label()): to_rgba(ln.get_color()) for ln in lines}

    overlay = colours(eps2_overlay_figure(scan, labels, "t", 95))
    combined = colours(combined_brazil_figure(scan, labels, "t", 95))
    for name in labels.values():
        assert overlay[f"{name} observed"] == combined[f"{name} observed"], name
    flags = [
        ln
        for ln in eps2_overlay_figure(scan, labels, "t", 95).axes[0].get_lines()
        if "flagged" in str(ln.get_label())
    ]
    assert flags and {to_rgba(ln.get_markeredgecolor()) for ln in flags} == {to_rgba("tab:red")}
    plt.close("all")


def test_blinded_scan_figures_circle_flagged_masses_on_the_expected_median():
    """Blinded Brazil bands and eps^2 overlays circled no flagged mass (the circles sat on
    the observed curve only), although the captions say every scan figure circles them."""
    from gprpipe.plotting.overlay import combined_brazil_figure, eps2_overlay_figure

    m = np.array([0.03, 0.06, 0.1])
    bands = [np.exp(-10 * m) * f for f in (0.5, 0.7, 1.0, 1.4, 1.9)]
    flagged = np.array([False, True, False])

    def circles(fig) -> list[tuple[float, float]]:
        lines = [ln for ln in fig.axes[0].get_lines() if "flagged" in str(ln.get_label())]
        return [(float(x), float(y)) for ln in lines for x, y in zip(*ln.get_data())]

    fig = brazil_figure(m, None, bands, ylabel="y", title="t", flagged=flagged)
    assert circles(fig) == [(60.0, pytest.approx(bands[2][1]))]
    status = np.array(["ok", "flag_gof", "ok"])
    scan = {
        name: {"mass_GeV": m, "status": status}
        | {f"eps2_exp_{b}": v for b, v in zip(("lo2", "lo1", "med", "hi1", "hi2"), bands)}
        for name in ("2015", "combined")
    }
    for figure in (eps2_overlay_figure, combined_brazil_figure):
        drawn = circles(figure(scan, {"2015": "HPS 2015"}, "t", 95, blinded=True))
        assert drawn and all(xy == (60.0, pytest.approx(bands[2][1])) for xy in drawn), figure
    plt.close("all")


def test_the_yield_and_observed_limit_figures_circle_flagged_masses():
    """A review: Ahat_* and observed_eps2 / observed_A drew flagged masses as good points,
    where the Brazil, significance and overlay figures circle them."""
    from gprpipe.plotting.overlay import observed_figure
    from gprpipe.plotting.suite import ahat_figure

    m = np.array([0.03, 0.06, 0.1])
    flagged = np.array([False, True, False])

    def circles(ax) -> list[tuple[float, float]]:
        lines = [ln for ln in ax.get_lines() if "flagged" in str(ln.get_label())]
        return [(float(x), float(y)) for ln in lines for x, y in zip(*ln.get_data())]

    fig = ahat_figure(
        m, np.array([10.0, -4.0, 2.0]), np.array([5.0, 4.0, 2.0]), "t", flagged=flagged
    )
    assert circles(fig.axes[0]) == [(60.0, -4.0)] and circles(fig.axes[1]) == [(60.0, -1.0)]
    scan = {
        "2015": {
            "mass_GeV": m,
            "status": np.array(["ok", "flag_gof", "ok"]),
            "eps2_up": np.array([1e-6, 2e-6, 3e-6]),
            "A_up": np.array([10.0, 20.0, 30.0]),
        }
    }
    for q, y in (("eps2", 2e-6), ("A", 20.0)):
        fig = observed_figure(scan, {"2015": "HPS 2015"}, "t", 95, q)
        assert circles(fig.axes[0]) == [(60.0, pytest.approx(y))], q
    plt.close("all")


def test_figures_draw_the_statistical_errors_their_tables_carry():
    """A review: the coverage figure drew cov_1sigma and cov_2sigma without the binomial
    errors inject.csv carries (0.65 against 0.683 looked like undercoverage within one
    error), and the Brazil figure of toy limits drew the observed limit without its Monte
    Carlo error (eps2_up_err, up to 11%), which the CSV and HEPData tables carry."""
    from matplotlib.container import ErrorbarContainer

    from gprpipe.plotting.inject import coverage_figure

    def bars(ax) -> list[np.ndarray]:
        """The half-lengths of every error-bar set of ``ax``."""
        out = []
        for c in ax.containers:
            if isinstance(c, ErrorbarContainer) and c.lines[2]:
                seg = c.lines[2][0].get_segments()
                out.append(np.array([abs(s[1][1] - s[0][1]) / 2 for s in seg if len(s) == 2]))
        return out

    a = {
        "mass_GeV": np.array([0.06, 0.06]),
        "z_inj": np.array([0.0, 3.0]),
        "cov_1sigma": np.array([0.65, 0.70]),
        "cov_2sigma": np.array([0.94, 0.96]),
        "cov_1sigma_err": np.array([0.047, 0.047]),
        "cov_2sigma_err": np.array([0.021, 0.021]),
    }
    fig = coverage_figure(a, "t")
    got = bars(fig.axes[0])
    assert len(got) == 2
    np.testing.assert_allclose(got[0], [0.047, 0.047], rtol=1e-9)
    np.testing.assert_allclose(got[1], [0.021, 0.021], rtol=1e-9)
    plt.close(fig)
    m = np.array([0.03, 0.06, 0.1])
    bands = [np.ones(3) * f for f in (1, 2, 3, 4, 5)]
    err = np.array([0.1, np.nan, 0.3])  # (a NaN: no error drawn there)
    fig = brazil_figure(m, np.ones(3) * 2.5, bands, ylabel="y", title="t", obs_err=err)
    (drawn,) = bars(fig.axes[0])
    np.testing.assert_allclose(drawn, [0.1, 0.3], rtol=1e-9)
    plt.close(fig)
    fig = brazil_figure(m, np.ones(3) * 2.5, bands, ylabel="y", title="t", obs_err=err * np.nan)
    assert bars(fig.axes[0]) == []  # asymptotic limits: no Monte Carlo error
    plt.close(fig)


def test_the_combination_and_reach_figures_carry_the_experiment_label():
    """A review: the information-fraction, signal-allocation and reach figures had a plain
    title and no experiment label, which the README says every figure carries."""
    from gprpipe.plotting.reach import allocation_figure, information_figure, reach_figure

    m, names = np.array([0.03, 0.06]), ["2015", "2016"]
    two = np.array([[0.4, 0.6], [0.6, 0.4]])
    figures = [
        information_figure(m, names, two, two * 5, "HPS 2015 + 2016"),
        allocation_figure(m, names, two * 100, two * 5, [1e-6, 2e-6], "HPS 2015 + 2016"),
        reach_figure(m, names, two, two / 2, two[0], two[0] / 2, [1, 2], "HPS 2015 + 2016"),
    ]
    for fig in figures:
        boxes = [box for ax in fig.axes for box in getattr(ax, "_gprpipe_labels", [])]
        texts = [t.get_text() for b in boxes for t in b.findobj(lambda a: hasattr(a, "get_text"))]
        assert {"HPS", "Preliminary", "HPS 2015 + 2016"} <= set(texts), texts
        plt.close(fig)


def test_the_combination_figures_of_one_mass_are_drawn():
    """The information-fraction figure of a one-mass combination was empty (a stack over
    one x has no width) and its Z lines, like the reach figure's, were single points with
    no marker: a box either side of the mass, and points."""
    from gprpipe.plotting.reach import information_figure, reach_figure

    m, names = np.array([0.06]), ["2015", "2016"]
    f = np.array([[0.4], [0.6]])
    fig = information_figure(m, names, f, f * 5, "t")
    stacks = fig.axes[0].collections
    assert len(stacks) == 2
    for poly in stacks:
        x = poly.get_paths()[0].vertices[:, 0]
        assert x.max() - x.min() == pytest.approx(1.2)  # 1% of 60 MeV either side
    assert [ln.get_marker() for ln in fig.axes[1].get_lines()[:2]] == ["o", "o"]
    plt.close(fig)
    fig = reach_figure(m, names, f, f / 2, f[0], f[0] / 2, [1, 2], "t")
    assert all(ln.get_marker() == "o" for ln in fig.axes[0].get_lines())
    plt.close(fig)


def test_text_whose_math_cannot_be_laid_out_is_drawn_as_written(tmp_path):
    """A run's name, a folder's name, a toy pattern, or two labels joined into one title
    (each valid alone) holding math matplotlib cannot lay out made the plot step, compare
    and project-reach fail with "internal error: ValueError" (an input audit): drawn as
    written; math that parses stays math."""
    import matplotlib.pyplot as plt

    from gprpipe.plotting.style import label, save

    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2], label=r"Demo $\frac{ + Other $")
    ax.legend()
    label(ax, r"x $\frac{$ y")
    xl = ax.set_xlabel(r"$\epsilon^2$")
    assert [p.suffix for p in save(fig, tmp_path, "f", ["png", "pdf"])] == [".png", ".pdf"]
    assert xl.get_parse_math()  # (still math)
    bad = [t for t in fig.findobj(plt.Text) if "frac" in t.get_text()]
    assert len(bad) == 2 and not any(t.get_parse_math() for t in bad)
