"""export-pyhf: the blind-window likelihood of one (dataset, mass) as a HistFactory workspace.

The POI ``A`` of the workspace is the signal yield in units of ``signal_scale`` (a round
number near sigma_A, so that pyhf's minimisers see an O(1) parameter); the scale is in
the measurement name and in the file name, and upper limits multiply by it. The signal
sample is the template the point's ``fit.signal_leakage`` selects (``w_eff`` by default,
``w`` with ``"ignore"``), so pyhf sees exactly the likelihood of the limit step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text
from gprpipe.pipeline.plan import Layout
from gprpipe.pipeline.store import load_run_info


def _point_dir(run_dir: Path, point: str | None) -> Path:
    run_dir = Path(run_dir)
    if Layout(run_dir).config.is_file() and point is None:
        return run_dir
    info = load_run_info(run_dir)
    points = info.data.get("grid", [])
    if point is None:
        if len(points) != 1:
            names = ", ".join(p["name"] for p in points)
            raise GprpipeError(
                f"{run_dir}: several grid points ({names}); choose one with --point."
            )
        return run_dir / points[0]["name"]
    for p in points:
        if p["name"] == point:
            return run_dir / p["name"]
    raise GprpipeError(f"{run_dir}: no grid point {point!r}.")


def round_scale(x: float) -> float:
    """A round number (1, 2 or 5 times a power of ten) near ``x``."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    e = math.floor(math.log10(x))
    return min((1, 2, 5, 10), key=lambda k: abs(math.log(k * 10**e / x))) * 10**e


def export_workspace(run_dir: Path, dataset: str, mass: float, *, point: str | None = None,
                     output: Path | None = None) -> tuple[Path, dict]:
    from gprpipe.stats.histfactory import workspace
    from gprpipe.stats.likelihood import cholesky_jitter, fit_signal
    from gprpipe.steps.fit import read_blind, read_fit

    pdir = _point_dir(run_dir, point)
    lay = Layout(pdir)
    if not lay.fit.exists():
        raise GprpipeError(f"{pdir}: no fit.h5 (run the fit step first).")
    try:
        fit = read_fit(lay.fit, dataset)
    except KeyError:
        raise GprpipeError(f"{lay.fit}: no dataset {dataset!r}.") from None
    masses = fit["mass"]
    i = int(np.argmin(np.abs(masses - mass)))
    if abs(masses[i] - mass) > 5e-7:
        raise GprpipeError(
            f"{lay.fit}: mass {mass:g} GeV is not a test mass of {dataset!r} "
            f"({masses.min():g}-{masses.max():g} GeV, nearest {masses[i]:g})."
        )
    from gprpipe.pipeline.plan import dataset_masses
    from gprpipe.steps.runner import resolve_task

    _, cfg = resolve_task(pdir, "fit", "merge", None)
    index = int(np.argmin(np.abs(dataset_masses(cfg, dataset) - masses[i])))
    try:
        blind, _ = read_blind(lay.fit, dataset, index)
    except KeyError:
        raise GprpipeError(f"{lay.fit}: the GP fit at {masses[i]:g} GeV failed "
                           f"({fit['status'][i]}).") from None
    if "n" not in blind:
        raise GprpipeError(f"{lay.fit}: the run is blinded (base.blind), so it holds no "
                           "observed counts to export; rerun with 'gprpipe run --unblind'.")
    from gprpipe.steps.fit import template_key

    w = blind[template_key(cfg)]
    L = cholesky_jitter(blind["C"])
    scale = round_scale(float(fit_signal(blind["n"], blind["b"], L, w).sigma_A))
    tag = f"{dataset}_{masses[i] * 1e3:g}MeV"
    ws = workspace(blind["n"], blind["b"], L, w, name=f"blind_{tag}",
                   signal_scale=scale)
    ws["measurements"][0]["name"] = f"A_in_units_of_{scale:g}"
    path = Path(output) if output else pdir / f"pyhf_{tag}.json"
    atomic_write_text(path, json.dumps(ws, indent=1) + "\n")
    return path, ws
