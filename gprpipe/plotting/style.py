"""Figure style and saving: the HEP style of mplhep, experiment and dataset labels above
the axes, legends outside the axes (never over data), atomic PNG/PDF writes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.offsetbox import AnchoredOffsetbox, HPacker, TextArea

from gprpipe.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType


def _share_mathtext_cache(size: int = 2048) -> None:
    """Parse each math string once per process, not once per figure and format.

    matplotlib caches parsed math text per parser object (50 entries), and every renderer
    owns a parser: each figure re-parses its labels and log-axis tick labels, the PDF again
    at 72 dpi. A parse depends only on the string, dpi,
    font, antialiasing and hinting, and on the output type, so one cache keyed on those
    gives the same glyph layout. Left as is if matplotlib's internals differ.

    A forked process starts with an empty cache: a parse holds the fonts it was laid out
    with, open files whose read offset every fork shares, so figure workers drawing their
    parent's parses read each other's glyph data (glyphs go missing, or FreeType fails with
    "broken file"). matplotlib clears its own font cache at a fork for the same reason.
    """
    from matplotlib import mathtext

    cached = getattr(mathtext.MathTextParser, "_parse_cached", None)
    raw = getattr(cached, "__wrapped__", None)
    if raw is None or getattr(mathtext.MathTextParser, "_gprpipe_shared", False):
        return
    cache: dict = {}
    os.register_at_fork(after_in_child=cache.clear)

    def _parse_cached(self, s, dpi, prop, antialiased, load_glyph_flags):
        key = (self._output_type, s, dpi, prop, antialiased, load_glyph_flags)
        if key not in cache:
            if len(cache) >= size:
                cache.clear()
            cache[key] = raw(self, s, dpi, prop, antialiased, load_glyph_flags)
        return cache[key]

    # replaces a private method of matplotlib's (checked above), hence the ignores
    mathtext.MathTextParser._parse_cached = _parse_cached  # type: ignore[attr-defined]
    mathtext.MathTextParser._gprpipe_shared = True  # type: ignore[attr-defined]


_share_mathtext_cache()

BAND_1 = "#00cc00"  # expected +/-1 sigma (green)
BAND_2 = "#ffcc00"  # expected +/-2 sigma (yellow)
BLIND_COLOUR = "#b00000"
FEW_MASSES = 25  # scans with at most this many masses get markers on their curves


@dataclass
class Labels:
    """What every figure is marked with (set once per plot task by :func:`set_labels`)."""

    experiment: str = "HPS"
    status: str = "Preliminary"
    blinded: bool = False


LABELS = Labels()


def set_labels(experiment: str, status: str, blinded: bool) -> None:
    LABELS.experiment, LABELS.status, LABELS.blinded = experiment, status, blinded


# compact fonts for dense multi-panel figures (displays, reach), over any style
COMPACT_RC: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.labelsize": 10,
    "axes.titlesize": 11,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8,
}


def compact(figure_function):
    """Build the figure under :data:`COMPACT_RC` (fonts sized for dense figures)."""
    import functools

    @functools.wraps(figure_function)
    def wrapper(*args, **kwargs):
        with plt.rc_context(COMPACT_RC):
            return figure_function(*args, **kwargs)

    return wrapper


def apply_style(style: str) -> None:
    """``hep``: mplhep's ROOT style (a warning, not silence, if it cannot be loaded)."""
    plt.rcdefaults()
    if style == "hep":
        try:
            import mplhep

            plt.style.use(mplhep.style.ROOT)
            plt.rcParams.update({"savefig.bbox": "tight", "legend.fontsize": 12})
            return
        except ImportError:
            warnings.warn(
                "plot.style = 'hep' but mplhep is not installed; using the plain "
                "matplotlib style (pip install mplhep)",
                stacklevel=2,
            )
    plt.rcParams.update(
        {
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "font.size": 11,
        }
    )


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw: ``fn(*args, **kwargs)`` saved as ``<folder>/<stem>.<format>``
    (``fn`` is a module-level function, so that a worker process can run it)."""

    stem: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def draw(figure: FigureJob, folder: Path, formats: Sequence[str]) -> list[Path]:
    """Draw one figure and save it in every format."""
    return save(figure.fn(*figure.args, **figure.kwargs), folder, figure.stem, formats)


def save(fig, folder: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format; returns the paths.

    Every format is cropped to one box: the figure's tight bounding box at its dpi, in
    inches, padded by ``savefig.pad_inches``, measured once without drawing; each format is
    then drawn once. ``bbox_inches="tight"`` would lay the figure out, measure and draw it
    again per format, for the same box (the PNGs are byte-identical; tested). Vector formats
    measure text at 72 dpi: their own boxes differ by a few points, less than half the pad
    (tested). A figure with a layout engine keeps matplotlib's ``"tight"``, which lets the
    engine run first.
    """
    _plain_if_unparsable(fig)
    _clear_bottom_rows(fig)
    bbox = "tight"
    if fig.get_layout_engine() is None:
        renderer = fig.canvas.get_renderer()
        _separate_labels(fig, renderer)
        bbox = fig.get_tightbbox(renderer).padded(plt.rcParams["savefig.pad_inches"])
    else:
        _separate_labels(fig)
    out = []
    for fmt in formats:
        target = folder / f"{stem}.{fmt}"
        with atomic_path(target, suffix="." + fmt) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches=bbox)
        out.append(target)
    plt.close(fig)
    return out


#: the ``gid`` of a row of markers along the bottom of an axes (masses without a result
#: or without an observed limit; y in axes fraction)
BOTTOM_ROW = "gprpipe-bottom-row"


def _clear_bottom_rows(fig) -> None:
    """Lower the y range of each axes with rows of markers along its bottom until its
    curves and bands lie above them: a mark fell on a band or a curve that reached the
    bottom (a review). An axes whose curves reach below its range keeps them cut where
    its bottom was."""
    for ax in fig.axes:
        rows = [ln for ln in ax.get_lines() if ln.get_gid() == BOTTOM_ROW]
        lo, hi = ax.get_ylim()
        low = ax.dataLim.y0  # (the rows, in axes fraction, are not in the data limits)
        log = ax.get_yscale() == "log"
        if not rows or not np.isfinite(low) or hi <= lo or (log and min(lo, low) <= 0):
            continue
        top = max(float(np.max(ln.get_ydata())) for ln in rows) + 0.035  # (a marker's half)
        top = min(top, 0.5)  # (rows of many curves: the curves keep half the axes)
        scale = np.log10 if log else (lambda v: v)
        y_lo, y_hi, y_low = (float(scale(v)) for v in (lo, hi, max(low, lo)))
        if (y_low - y_lo) / (y_hi - y_lo) < top:
            new = (y_low - top * y_hi) / (1.0 - top)
            ax.set_ylim(10.0**new if log else new, hi)


def _plain_if_unparsable(fig) -> None:
    """Draw as written each text whose math (``$...$``) matplotlib cannot lay out: a run's
    name, a folder's name, a toy pattern or two labels joined into one title (each valid
    alone) made the plot step, compare or project-reach fail with "internal error" (an
    input audit). A label's math that parses is drawn as math."""
    from matplotlib import cbook
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser
    from matplotlib.text import Text

    parser = None
    for t in fig.findobj(Text):
        text = t.get_text()
        if t.get_parse_math() and cbook.is_math_text(text):
            parser = parser or MathTextParser("agg")
            try:
                parser.parse(text, 72, FontProperties())
            except ValueError:
                t.set_parse_math(False)


def _layout(fig):
    """Lay ``fig`` out without rasterising (what ``savefig`` does before drawing)."""
    renderer = fig.canvas.get_renderer()
    with renderer._draw_disabled():
        fig.draw(renderer)
    return renderer


def label(ax, text: str) -> None:
    """Experiment label ("HPS Preliminary") above the top-left corner of ``ax`` and the
    dataset label ``text`` (plus "blinded" when the run is blinded) above its top-right
    corner: outside the axes, so never over data."""
    size = plt.rcParams["font.size"]
    parts: list[Artist] = [
        TextArea(LABELS.experiment, textprops={"fontweight": "bold", "fontsize": size * 1.15})
    ]
    if LABELS.status:
        parts.append(
            TextArea(LABELS.status, textprops={"fontstyle": "italic", "fontsize": size * 1.05})
        )
    box = AnchoredOffsetbox(
        loc="lower left",
        child=HPacker(children=parts, pad=0, sep=6),
        bbox_to_anchor=(0.0, 1.005),
        bbox_transform=ax.transAxes,
        frameon=False,
        pad=0.0,
        borderpad=0.0,
    )
    ax.add_artist(box)
    ax._gprpipe_labels = [box]
    right: list[Artist] = [TextArea(text, textprops={"fontsize": size * 0.9})] if text else []
    if LABELS.blinded:
        right.append(
            TextArea(
                "BLINDED",
                textprops={"fontsize": size * 0.9, "fontweight": "bold", "color": BLIND_COLOUR},
            )
        )
    if right:
        box = AnchoredOffsetbox(
            loc="lower right",
            child=HPacker(children=right, pad=0, sep=8),
            bbox_to_anchor=(1.0, 1.005),
            bbox_transform=ax.transAxes,
            frameon=False,
            pad=0.0,
            borderpad=0.0,
        )
        ax.add_artist(box)
        ax._gprpipe_labels.append(box)


def _separate_labels(fig, renderer=None) -> None:
    """Measure the labels: when the dataset label would overlap the experiment label (a
    long dataset label on a narrow figure), lift it onto its own line above. ``renderer``:
    the figure's (its axes stay where they are: no layout engine); without it, a layout
    pass places the axes first."""
    if renderer is None:
        renderer = _layout(fig)
    for ax in fig.axes:
        boxes = getattr(ax, "_gprpipe_labels", [])
        if len(boxes) != 2:
            continue
        left, right = (b.get_window_extent(renderer) for b in boxes)
        if left.x1 + 6 <= right.x0:
            continue
        top = ax.transAxes.inverted().transform((0, left.y1 + 3))[1]
        if right.width > ax.get_window_extent(renderer).width:  # wider than the axes
            boxes[1].loc = 3  # lower left: start above the experiment label
            boxes[1].set_bbox_to_anchor((0.0, top), transform=ax.transAxes)
        else:
            boxes[1].set_bbox_to_anchor((1.0, top), transform=ax.transAxes)


def legend(ax, *, offset: float = 0.02, **kw):
    """A legend outside the axes, to the right of their top (never over data or curves)."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    kw.setdefault("fontsize", plt.rcParams["font.size"] * 0.8)
    return ax.legend(
        loc="upper left", bbox_to_anchor=(1.0 + offset, 1.0), borderaxespad=0.0, frameon=False, **kw
    )


def marker(n: int) -> str:
    """Marker for a curve of ``n`` points: visible dots for short scans, none otherwise."""
    return "o" if n <= FEW_MASSES else ""
