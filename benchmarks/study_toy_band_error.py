"""How precise are toy expected bands (``limit.bands = "toys"``)? The Monte Carlo error of
each band quantile, between independent seeds and from order statistics.

For each test mass of a run's ``fit.h5``, the toy band (the 2.5/16/50/84/97.5% quantiles of
the asymptotic limits of ``--band-toys`` background-only toys) is computed ``--seeds`` times
with independent seeds. Per band position the script prints the spread between seeds
relative to the band's mean value (with its statistical error, ``/ sqrt(2 (K - 1))``), and
the median error order statistics give from one seed's toys alone: half the distance
between the order statistics ``N p -+ sqrt(N p (1 - p))`` (a binomial standard deviation of
the count below the quantile), with the ratio spread / that error.

    gprpipe run user_configs/hps2015.toml --set base.output='"/tmp/st15"' \\
        --set datasets.2015.path='"DATA.root"' --set 'scan.masses=[0.06, 0.11]' --steps load,fit
    python benchmarks/study_toy_band_error.py /tmp/st15/nominal/fit.h5 --dataset 2015 \\
        --masses 0.06,0.11 --band-toys 10000 --seeds 40
"""

from __future__ import annotations

import argparse

import numpy as np

# first: it pins BLAS to one thread before numpy is imported
from study_toy_limit_error import window_models

from gprpipe.stats.cls import ToyCalculator, quantile_mc_error

BANDS = ("lo2", "lo1", "med", "hi1", "hi2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit_h5")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--masses", required=True, help="GeV, comma-separated")
    ap.add_argument("--band-toys", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=40)
    args = ap.parse_args()
    print(
        f"# {args.dataset}, {args.band_toys} band toys, {args.seeds} seeds; per band: spread "
        "between seeds / mean (%), order-statistics error / mean (%), their ratio"
    )
    for mass, model, _ in window_models(args.fit_h5, args.dataset, args.masses):
        bands, errs = [], []
        for seed in range(args.seeds):
            calc = ToyCalculator(model, band_toys=args.band_toys, rng=np.random.default_rng(seed))
            band, limits = calc.toy_limits()
            bands.append(band)
            errs.append(quantile_mc_error(limits, np.asarray(calc.quantiles, dtype=float)))
        b, e = np.array(bands), np.array(errs)
        k = b.shape[0]
        mean = b.mean(axis=0)
        std = b.std(axis=0, ddof=1)
        med_err = np.median(e, axis=0)
        cells = []
        for j, name in enumerate(BANDS):
            ratio = std[j] / med_err[j]
            cells.append(
                f"{name} {100 * std[j] / mean[j]:.2f}% (os {100 * med_err[j] / mean[j]:.2f}%, "
                f"{ratio:.2f} +- {ratio / np.sqrt(2 * (k - 1)):.2f})"
            )
        print(f"{mass:7.4f}  " + "; ".join(cells))


if __name__ == "__main__":
    main()
