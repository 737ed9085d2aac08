"""A small braille line plot for the terminal (no dependency beyond rich).

Each character cell holds a 2x4 braille dot matrix, so a plot of W x H cells has
2W x 4H dots. Bands are filled, lines drawn between consecutive points; each cell takes
the colour of the last thing drawn in it (lines over bands).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from rich.text import Text

# dot (x, y) within a cell -> braille bit (x: 0-1, y: 0-3 top to bottom)
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


@dataclass
class Line:
    x: Sequence[float]
    y: Sequence[float]
    style: str
    label: str = ""


@dataclass
class Band:
    x: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    style: str
    label: str = ""


def _ok(v: float, log: bool) -> bool:
    return v is not None and math.isfinite(v) and (v > 0 or not log)


class Canvas:
    """Braille dots (foreground, per dot) over cell backgrounds (bands, per cell)."""

    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.styles: list[list[str | None]] = [[None] * width for _ in range(height)]
        self.bg: list[list[str | None]] = [[None] * width for _ in range(height)]

    def dot(self, px: int, py: int, style: str) -> None:
        if 0 <= px < 2 * self.w and 0 <= py < 4 * self.h:
            cy, cx = py // 4, px // 2
            self.bits[cy][cx] |= _BITS[py % 4][px % 2]
            self.styles[cy][cx] = style

    def fill(self, cx: int, cy: int, color: str) -> None:
        if 0 <= cx < self.w and 0 <= cy < self.h:
            self.bg[cy][cx] = color

    def line(self, x0: int, y0: int, x1: int, y1: int, style: str) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0, y0, style)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def rows(self) -> list[Text]:
        out = []
        for bits, styles, bgs in zip(self.bits, self.styles, self.bg):
            t = Text()
            for b, s, bg in zip(bits, styles, bgs):
                style = " ".join(x for x in (s if b else None, f"on {bg}" if bg else None) if x)
                t.append(chr(0x2800 + b) if b else " ", style=style)
            out.append(t)
        return out


def braille_plot(
    lines: Sequence[Line],
    bands: Sequence[Band] = (),
    *,
    width: int = 60,
    height: int = 12,
    logy: bool = True,
    xlabel: str = "",
    ylabel: str = "",
) -> Text:
    """A plot of ``bands`` (filled) and ``lines``, with y ticks on the left and x ticks
    below; ``width`` x ``height`` characters in all (labels included)."""
    ylab_w = 7
    pw = max(10, width - ylab_w - 1)
    ph = max(3, height - 2 - bool(ylabel) - bool(xlabel))
    series: list[Line | Band] = [*lines, *bands]
    xs = [x for s in series for x in s.x if _ok(x, False)]
    ys = [y for s in lines for y in s.y if _ok(y, logy)]
    ys += [y for b in bands for y in (*b.lo, *b.hi) if _ok(y, logy)]
    if not xs or not ys:
        return Text("(nothing to plot)", style="dim")
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    f = (lambda v: math.log10(v)) if logy else (lambda v: v)
    y0, y1 = f(min(ys)), f(max(ys))
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.04 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float) -> int:
        return round((x - x0) / (x1 - x0) * (2 * pw - 1))

    def py(y: float) -> int:
        return round((y1 - f(y)) / (y1 - y0) * (4 * ph - 1))

    c = Canvas(pw, ph)
    for b in bands:  # cell backgrounds: a cell is in the band if its centre is
        pts = sorted(
            (x, lo, hi)
            for x, lo, hi in zip(b.x, b.lo, b.hi)
            if _ok(x, False) and _ok(lo, logy) and _ok(hi, logy)
        )
        if not pts:
            continue
        for cx in range(pw):
            xv = x0 + (2 * cx + 0.5) / (2 * pw - 1) * (x1 - x0)
            seg = [(a, z) for a, z in pairwise(pts) if a[0] <= xv <= z[0]]
            if seg:
                (xa, la, ha), (xb, lb, hb) = seg[0]
                t = 0.0 if xb == xa else (xv - xa) / (xb - xa)
                lo = f(la) + t * (f(lb) - f(la))
                hi = f(ha) + t * (f(hb) - f(ha))
            elif len(pts) == 1 and cx == px(pts[0][0]) // 2:
                lo, hi = f(pts[0][1]), f(pts[0][2])
            else:
                continue
            for cy in range(ph):
                yv = y1 - (4 * cy + 1.5) / (4 * ph - 1) * (y1 - y0)
                if lo <= yv <= hi:
                    c.fill(cx, cy, b.style)
    for line in lines:
        xy = sorted((x, y) for x, y in zip(line.x, line.y) if _ok(x, False) and _ok(y, logy))
        for (xa, ya), (xb, yb) in pairwise(xy):
            c.line(px(xa), py(ya), px(xb), py(yb), line.style)
        for x, y in xy:
            c.dot(px(x), py(y), line.style)
    # y ticks: top, middle, bottom rows
    labels: dict[int, str] = {}
    for row in (0, ph // 2, ph - 1):
        frac = (row * 4 + 1.5) / (4 * ph - 1)
        v = y1 - frac * (y1 - y0)
        labels[row] = f"{10**v:.1e}" if logy else f"{v:.3g}"
    out = Text(no_wrap=True, overflow="crop")
    if ylabel:
        out.append(ylabel[:width] + "\n", style="bold")
    for i, cells in enumerate(c.rows()):
        out.append(
            f"{labels.get(i, ''):>{ylab_w}}┤" if i in labels else " " * ylab_w + "│", style="dim"
        )
        out.append_text(cells)
        out.append("\n")
    out.append(" " * ylab_w + "└" + "─" * pw + "\n", style="dim")
    left, right = f"{x0:.4g}", f"{x1:.4g}"
    mid = f"{(x0 + x1) / 2:.4g}"
    axis = [" "] * pw
    for pos, tick in ((0, left), (pw // 2 - len(mid) // 2, mid), (pw - len(right), right)):
        for k, ch in enumerate(tick):
            if 0 <= pos + k < pw:
                axis[pos + k] = ch
    out.append(" " * (ylab_w + 1) + "".join(axis), style="dim")
    if xlabel:
        out.append("\n" + " " * (ylab_w + 1) + f"{xlabel:^{pw}}", style="dim")
    return out


def legend(items: Sequence[Line | Band]) -> Text:
    t = Text()
    for k, it in enumerate(items):
        if k:
            t.append("  ")
        t.append(
            "█" if isinstance(it, Band) else "━",
            style=it.style if isinstance(it, Line) else it.style.split()[-1],
        )
        t.append(f" {it.label}")
    return t
