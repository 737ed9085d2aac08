"""The eps^2 limits of every grid point on one figure (the run's ``index.html``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from gprpipe.plotting.style import LABELS, label, legend, marker
from gprpipe.plotting.suite import curve

Curve = tuple[str, Mapping[str, Any], bool]  # point name, scan arrays, blinded


def grid_limits_figure(curves: Mapping[str, Sequence[Curve]], labels: Mapping[str, str]) -> Figure:
    """One panel per dataset: each point's expected median (dashed) and, unless the point
    is blinded, observed (solid) eps^2 upper limit over its ``status == "ok"`` masses,
    with a gap at every other mass (they were joined across a failed one: a review)."""
    fig, axes = plt.subplots(len(curves), 1, figsize=(8, 4.5 * len(curves)), squeeze=False)
    for ax, (ds, items) in zip(axes[:, 0], curves.items()):
        for i, (pname, a, blind) in enumerate(items):
            ok = a["status"] == "ok"
            m = a["mass_GeV"] * 1e3
            lines = [("eps2_exp_med", "--", "expected" + (" (blinded)" if blind else ""))]
            if not blind and "eps2_up" in a:
                lines.append(("eps2_up", "-", "observed"))
            for col, style, what in lines:
                curve(
                    ax,
                    m,
                    np.where(ok, np.asarray(a[col], dtype=float), np.nan),
                    style,
                    color=f"C{i % 10}",
                    marker=marker(len(m)),
                    ms=3,
                    label=f"{pname} {what}",
                )
        ax.set_yscale("log")
        ax.set_ylabel(r"upper limit on $\epsilon^2$")
        ax.set_xlabel(r"$m_{A'}$ [MeV]")
        legend(ax)
        blinded, LABELS.blinded = LABELS.blinded, False  # points are marked one by one
        label(ax, labels.get(ds, ds))
        LABELS.blinded = blinded
    return fig
