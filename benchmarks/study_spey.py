"""Why Spey's observed limit differs from gprpipe's at a deficit: the Asimov convention.

For each mass of a ``gprpipe export-spey`` file it prints, in units of gprpipe's
``eps2_up`` (so gprpipe's observed limit is 1):

- ``Z``: A_hat / sigma_A of the data (negative: a deficit);
- ``spey``: Spey's ``poi_upper_limit(expected=observed)`` of ``default.correlated_background``
  built from the export (only with ``--spey``; 1-45 s per mass);
- ``gprpipe@spey``: gprpipe's numerics under Spey's convention
  (:func:`gprpipe.steps.export.spey_convention_limit`: Asimov data ``b + L theta_hat0``
  fitted to the data at mu = 0, constraint on theta left at 0);
- ``spey@gprpipe``: Spey's own likelihood, q~ and CLs formula with gprpipe's Asimov (the
  pre-fit background, Spey's ``asimov_likelihood(expected=apriori)``) (with ``--spey``);
- ``postfit``: gprpipe with pyhf's post-fit Asimov (``b + L theta_hat0`` with the
  constraint recentred on theta_hat0, i.e. the model refitted around it);
- ``muhat_A``: the fitted signal on Spey's Asimov data, in units of sigma_A: not 0 when the
  data have a deficit or an excess, which is what moves Spey's limit.

Usage: python benchmarks/study_spey.py POINT_DIR_OR_SPEY_JSON [--dataset 2015] [--spey]
(POINT_DIR: the export is written first with ``gprpipe export-spey``.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np


def spey_matched(model, spey, alpha: float) -> float:
    """Spey's observed limit with the pre-fit (apriori) Asimov data, at CL ``1 - alpha``."""
    from spey.hypothesis_testing.upper_limits import find_poi_upper_limit

    obs, pre = spey.ExpectationType.observed, spey.ExpectationType.apriori
    return float(
        find_poi_upper_limit(
            model.maximize_likelihood(expected=obs, allow_negative_signal=False),
            lambda mu: -model.likelihood(float(mu), expected=obs),
            model.maximize_asimov_likelihood(expected=pre),
            lambda mu: -model.asimov_likelihood(float(mu), expected=pre),
            expected=obs,
            confidence_level=1.0 - alpha,
            allow_negative_signal=False,
            low_init=0.9,
            hig_init=1.1,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--dataset", default="2015")
    ap.add_argument("--spey", action="store_true", help="also run Spey itself (slow)")
    ap.add_argument(
        "--spey-masses",
        type=float,
        nargs="*",
        help="with --spey: run Spey only at these masses (GeV)",
    )
    ap.add_argument("--plot", type=Path, help="draw Z and the limit ratios vs mass here")
    a = ap.parse_args()
    path = a.source
    if path.is_dir():
        subprocess.run(
            [sys.executable, "-m", "gprpipe", "export-spey", str(path), "--dataset", a.dataset],
            check=True,
        )
        path = path / "exports" / f"spey_{a.dataset}.json"
    from gprpipe.stats.cls import AsymptoticCalculator
    from gprpipe.stats.likelihood import WindowModel, cholesky_jitter
    from gprpipe.steps.export import spey_convention_limit

    spey = None
    if a.spey:
        import spey
    doc = json.loads(path.read_text())
    alpha = float(doc.get("alpha", 0.05))  # every limit below at the export's CL
    print(
        f"{path}: limits in units of gprpipe's eps2_up (observed, asymptotic CLs, "
        f"{100 * (1 - alpha):g}% CL)"
    )
    head = f"{'m/MeV':>6} {'Z':>6} {'gprpipe@spey':>12} {'postfit':>8} {'muhat_A/sig':>11}"
    if spey:
        head += f" {'spey':>7} {'spey@gprpipe':>12} {'s (Spey)':>8}"
    print(head)
    rows = []
    for e in doc["masses"]:
        n, b, C = (np.asarray(e[k], dtype=float) for k in ("data", "background", "covariance"))
        s = np.asarray(e["signal_per_eps2"]) * e["eps2_up"]
        L = cholesky_jitter(C)
        wm = WindowModel(b, L, s)
        f = wm.fit(n)
        n_asimov = b + L @ wm.profile(0.0, n)[1]
        fa = wm.fit(n_asimov)
        postfit = float(AsymptoticCalculator(wm, b_asimov=n_asimov, alpha=alpha).upper_limit(n))
        limit = spey_convention_limit(n, b, C, s, alpha=alpha)
        line = (
            f"{e['mass_GeV'] * 1e3:6.0f} {f.A_hat / f.sigma_A:+6.2f} "
            f"{limit:12.4f} "
            f"{postfit:8.4f} "
            f"{fa.A_hat / f.sigma_A:+11.2f}"
        )
        rows.append([e["mass_GeV"], f.A_hat / f.sigma_A, limit, np.nan])
        run_spey = spey is not None and (
            not a.spey_masses or any(abs(e["mass_GeV"] - x) < 1e-9 for x in a.spey_masses)
        )
        if run_spey:
            model = spey.get_backend(doc["model"])(
                signal_yields=s, background_yields=b, data=n, covariance_matrix=C
            )
            t0 = time.process_time()
            native = model.poi_upper_limit(
                expected=spey.ExpectationType.observed, confidence_level=1.0 - alpha
            )
            matched = spey_matched(model, spey, alpha)
            line += f" {native:7.4f} {matched:12.4f} {time.process_time() - t0:8.1f}"
            rows[-1][3] = native
        print(line, flush=True)
    if a.plot:
        plot(np.array(rows), a.plot, a.dataset)


def plot(rows: np.ndarray, out: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = rows[:, 0] * 1e3
    fig, (ax1, ax2) = plt.subplots(
        2, 1, sharex=True, figsize=(7, 5.5), gridspec_kw={"height_ratios": [1, 1.4]}
    )
    ax1.axhline(0, color="0.6", lw=0.8)
    ax1.plot(m, rows[:, 1], "-", color="k", lw=1)
    ax1.set_ylabel("A_hat / sigma_A")
    ax1.set_title(f"{dataset}: Spey export, observed limits over gprpipe's eps2_up", fontsize=10)
    ax2.axhline(1, color="0.6", lw=0.8, label="gprpipe (= Spey with the pre-fit Asimov)")
    ax2.plot(
        m,
        rows[:, 2],
        "-",
        color="C0",
        lw=1.2,
        label="gprpipe's likelihood, Spey's Asimov convention",
    )
    ok = np.isfinite(rows[:, 3])
    if ok.any():
        ax2.plot(
            m[ok],
            rows[ok, 3],
            "o",
            mfc="none",
            color="C3",
            ms=7,
            label="Spey poi_upper_limit (observed)",
        )
    ax2.set_xlabel("m(A') [MeV]")
    ax2.set_ylabel("limit / eps2_up")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
