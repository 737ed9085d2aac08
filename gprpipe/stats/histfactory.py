"""The blind-window likelihood as a pyhf HistFactory JSON workspace (docs/method.md section 6).

``lam = b + L theta + A w`` is exactly a HistFactory model: a signal sample ``w`` with a
free normfactor ``A`` (the POI) and a background sample ``b`` with one ``histosys`` per
column of ``L`` (``hi = b + L[:, j]``, ``lo = b - L[:, j]``): pyhf's default histosys
interpolation is piecewise linear with a unit-Gaussian constraint, i.e. ``L[:, j] theta_j``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["digest", "patchset", "workspace"]


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


def digest(obj: Any) -> str:
    """sha256 of the JSON-serialised object, as pyhf computes a workspace digest."""
    import hashlib
    import json

    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf8")
    ).hexdigest()


def patchset(
    windows: list[dict[str, Any]],
    *,
    name: str = "gprpipe",
    description: str = "",
    inspire: str = "ins0000000",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A background-only workspace with one channel per test mass and a pyhf PatchSet.

    ``windows``: per mass ``{"tag", "mass", "n", "b", "L", "w", "scale"}`` (``tag`` names
    the channel, ``scale`` the POI unit). The blind windows of neighbouring masses overlap,
    so they are not independent channels: the patch of a mass adds its signal sample (POI
    ``A`` in units of ``scale``, also in the measurement name ``A_in_units_of_<scale>``),
    sets the measurement's parameters and removes every other channel, leaving exactly the
    single-window model of :func:`workspace`. ``inspire`` is the INSPIRE id of the
    publication (pyhf's PatchSet schema requires one; ``ins0000000`` marks "none yet").
    """
    channels, observations, params, signals = [], [], [], []
    for win in windows:
        ws = workspace(
            win["n"], win["b"], win["L"], win["w"], name=win["tag"], signal_scale=win["scale"]
        )
        ch = ws["channels"][0]
        bkg = ch["samples"][1]
        for mod in bkg["modifiers"]:
            mod["name"] = f"{win['tag']}_{mod['name']}"
        pars = ws["measurements"][0]["config"]["parameters"]
        for p in pars[1:]:
            p["name"] = f"{win['tag']}_{p['name']}"
        channels.append({"name": win["tag"], "samples": [bkg]})
        observations.append(ws["observations"][0])
        params.append(pars)
        signals.append(ch["samples"][0])
    bkg_only = {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "background_only", "config": {"poi": "A", "parameters": []}}],
    }
    patches = []
    for i, win in enumerate(windows):
        ops: list[dict[str, Any]] = [
            {"op": "add", "path": f"/channels/{i}/samples/0", "value": signals[i]},
            {"op": "replace", "path": "/measurements/0/config/parameters", "value": params[i]},
            {
                "op": "replace",
                "path": "/measurements/0/name",
                "value": f"A_in_units_of_{win['scale']:g}",
            },
        ]
        others = [j for j in range(len(windows)) if j != i]
        for j in sorted(others, reverse=True):
            ops.append({"op": "remove", "path": f"/channels/{j}"})
            ops.append({"op": "remove", "path": f"/observations/{j}"})
        patches.append(
            {"metadata": {"name": win["tag"], "values": [float(win["mass"])]}, "patch": ops}
        )
    ps = {
        "metadata": {
            "name": name,
            "description": description or "one patch per test mass (GeV)",
            "digests": {"sha256": digest(bkg_only)},
            "labels": ["mass_GeV"],
            "references": {"hepdata": inspire},
        },
        "patches": patches,
        "version": "1.0.0",
    }
    return bkg_only, ps
