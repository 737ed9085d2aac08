"""How often do the fits of toy ensembles stop short of their minimum? Measured on real
windows, thinned to fewer events.

For each chosen mass of a run's ``fit.h5`` the window's background ``b`` and covariance
``C`` are scaled by ``t`` and ``t**2`` (same relative uncertainty, ``t`` times the
events); ``--toys`` background-only toys are drawn as the toy calculator draws them, each
is fitted (joint fit, and the ``A = 0`` profile where ``A_hat < 0``) and profiled at the
window's expected median limit. Printed per thinning: the mean count per window bin, the
fraction of toys whose fit or profile stopped short (not converged), with its binomial
standard error. The toy calculator counts such toys as drawn (leaving them out would bias
CLs), so these fractions bound the toys whose q is not at its minimum.

    gprpipe run user_configs/hps2015.toml --set base.output='"/tmp/st15"' \\
        --set datasets.2015.path='"DATA.root"' --steps load,fit
    python benchmarks/study_toy_fit_stops.py /tmp/st15/nominal/fit.h5 --dataset 2015 \\
        --masses 0.04,0.08,0.12 --toys 5000
"""

from __future__ import annotations

import argparse

import numpy as np

# first: it pins BLAS to one thread before numpy is imported
from study_toy_limit_error import window_models

from gprpipe.stats.cls import AsymptoticCalculator, background_means
from gprpipe.stats.likelihood import WindowModel

THINNING = (1.0, 0.1, 0.03, 0.01, 0.003, 0.001)


def stopped_fraction(model: WindowModel, toys: int, rng: np.random.Generator) -> float:
    """Fraction of ``toys`` background-only toys whose fit or profile at the expected
    median limit stopped short."""
    bt = background_means(model.b, None, toys, rng, model.L, truncate="clip")
    n = rng.poisson(bt).astype(float)
    fit = model.fit(n, need0="negative")
    a_med = float(AsymptoticCalculator(model).expected_band()[2])
    A = np.full(toys, a_med)
    _, _, conv = model.profile_rows(n, A, fit.theta_c, fit.A)
    return float(np.mean(~(conv & fit.conv)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit_h5")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--masses", required=True, help="GeV, comma-separated")
    ap.add_argument("--toys", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"# {args.dataset}, {args.toys} toys per window and thinning")
    print("mass_GeV  thinning  mean_count_per_bin  stopped_frac  +-")
    for mass, model, blind in window_models(args.fit_h5, args.dataset, args.masses):
        for t in THINNING:
            thin = WindowModel.from_covariance(t * blind["b"], t * t * blind["C"], model.w)
            frac = stopped_fraction(thin, args.toys, rng)
            err = np.sqrt(max(frac * (1 - frac), 1.0 / args.toys) / args.toys)
            mean = float(np.mean(t * blind["b"]))
            print(f"{mass:8.4f}  {t:8.3f}  {mean:18.2f}  {frac:12.4f}  {err:.4f}")


if __name__ == "__main__":
    main()
