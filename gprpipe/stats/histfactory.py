"""The blind-window likelihood as a pyhf HistFactory JSON workspace (METHOD.md section 6).

``lam = b + L theta + A w`` is exactly a HistFactory model: a signal sample ``w`` with a
free normfactor ``A`` (the POI) and a background sample ``b`` with one ``histosys`` per
column of ``L`` (``hi = b + L[:, j]``, ``lo = b - L[:, j]``): pyhf's default histosys
interpolation is piecewise linear with a unit-Gaussian constraint, i.e. ``L[:, j] theta_j``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["workspace"]


def workspace(
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    *,
    name: str = "blind",
    poi_bounds: tuple[float, float] | None = None,
    poi_init: float = 1.0,
    signal_scale: float = 1.0,
    nuisance_bound: float = 50.0,
    drop_zero_columns: bool = True,
) -> dict[str, Any]:
    """pyhf workspace (a JSON-serialisable dict) of one blind window.

    The signal sample is ``signal_scale * w``, so the POI ``A`` is the yield in units of
    ``signal_scale`` (default 1: the POI is the yield itself). A scale near ``sigma_A``
    keeps the POI O(1), which pyhf's minimisers need when yields are large.
    ``poi_bounds`` defaults to ``[0, 100 * (sqrt(sum b + tr C) + 10) / sum w]`` in units
    of the POI (q~ in pyhf needs a lower bound of 0). Columns of ``L`` that are exactly
    zero are dropped (``drop_zero_columns``): they do not change the model. The nuisance
    parameters get bounds ``[-nuisance_bound, nuisance_bound]`` (pyhf's default of +-5
    would truncate a linear model whose profiled pulls can be large).
    """
    n = np.asarray(n, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    w = np.asarray(w, dtype=float).reshape(-1)
    L = np.asarray(L, dtype=float).reshape(b.size, -1)
    if not (n.size == b.size == w.size):
        raise ValueError("n, b and w must have the same length")
    if poi_bounds is None:
        scale = np.sqrt(np.sum(b) + np.sum(L * L)) + 10.0
        poi_bounds = (0.0, float(100.0 * scale / max(np.sum(w), 1e-12) / signal_scale))
    modifiers: list[dict[str, Any]] = []
    parameters: list[dict[str, Any]] = []
    for j in range(L.shape[1]):
        col = L[:, j]
        if drop_zero_columns and not np.any(col):
            continue
        modifiers.append(
            {
                "name": f"gp_{j}",
                "type": "histosys",
                "data": {"hi_data": (b + col).tolist(), "lo_data": (b - col).tolist()},
            }
        )
        parameters.append(
            {"name": f"gp_{j}", "bounds": [[-float(nuisance_bound), float(nuisance_bound)]]}
        )
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": name,
                "samples": [
                    {
                        "name": "signal",
                        "data": (signal_scale * w).tolist(),
                        "modifiers": [{"name": "A", "type": "normfactor", "data": None}],
                    },
                    {"name": "background", "data": b.tolist(), "modifiers": modifiers},
                ],
            }
        ],
        "observations": [{"name": name, "data": n.tolist()}],
        "measurements": [
            {
                "name": "measurement",
                "config": {
                    "poi": "A",
                    "parameters": [
                        {"name": "A", "bounds": [list(poi_bounds)], "inits": [float(poi_init)]},
                        *parameters,
                    ],
                },
            }
        ],
    }
