"""Does the Monte Carlo error a toy CLs limit reports (``A_up_err``) match the spread of the
limit between seeds?

For each test mass of a run's ``fit.h5`` (``gprpipe run ... --steps load,fit``), the toy
limit of the observed window is computed ``--seeds`` times with ``--n-toys`` toys and
independent seeds; the script prints the mean limit, its standard deviation between seeds,
the median reported error and their ratio with the ratio's statistical error
(``std / sqrt(2 (K - 1))`` of a Gaussian spread), beside the asymptotic limit, and how much
the reported error itself scatters between seeds (its 16-84% range over its median): the
figure a single row's error carries. ``--excess Z`` adds signal counts to the observed window
(``round(A w)``, the template ``w`` times the yield ``A`` that moves ``A_hat / sigma_A`` to
about ``Z``): the error at an excess the data do not have.

    gprpipe run user_configs/hps2015.toml --set base.output='"/tmp/st15"' \\
        --set datasets.2015.path='"DATA.root"' --set 'scan.masses=[0.06, 0.11]' --steps load,fit
    python benchmarks/study_toy_limit_error.py /tmp/st15/nominal/fit.h5 --dataset 2015 \\
        --masses 0.06,0.11 --n-toys 2000 --seeds 40
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402

from gprpipe.results.schema import read_blind, read_fit  # noqa: E402
from gprpipe.stats.cls import AsymptoticCalculator, ToyCalculator, UnresolvedToyLimit  # noqa: E402
from gprpipe.stats.likelihood import WindowModel  # noqa: E402


def window_models(
    fit_h5: str, dataset: str, masses: str, template: str = "w_eff"
) -> Iterator[tuple[float, WindowModel, dict]]:
    """(mass, window model, blind window) of ``fit_h5`` at each of ``masses`` (GeV,
    comma-separated; the nearest test mass)."""
    fitted = np.asarray(read_fit(fit_h5, dataset)["mass_GeV"], dtype=float)
    for m in (float(x) for x in masses.split(",")):
        i = int(np.argmin(np.abs(fitted - m)))
        blind, _ = read_blind(fit_h5, dataset, i)
        yield (
            float(fitted[i]),
            WindowModel.from_covariance(blind["b"], blind["C"], blind[template]),
            blind,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit_h5")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--masses", required=True, help="GeV, comma-separated")
    ap.add_argument("--n-toys", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--template", default="w_eff", help="w_eff (default config) or w")
    ap.add_argument("--excess", type=float, help="add signal to reach about this A_hat / sigma_A")
    args = ap.parse_args()
    print(
        f"# {args.dataset}, {args.n_toys} toys, {args.seeds} seeds; A in events; "
        + (f"signal added to A_hat/sigma_A ~ {args.excess}; " if args.excess is not None else "")
        + "ratio = std between seeds / median reported error"
    )
    print(
        "mass_GeV  A_hat/sigma_A  asymptotic  toys_mean  std_seeds  median_err  ratio"
        "           err_16-84%/median"
    )
    for mass, model, blind in window_models(args.fit_h5, args.dataset, args.masses, args.template):
        n = blind["n"]
        f = model.fit(n)
        if args.excess is not None:  # the data plus signal at the tested mass
            a = (args.excess - float(f.A_hat / f.sigma_A)) * float(f.sigma_A)
            n = n + np.round(a * np.asarray(blind[args.template], dtype=float))
            f = model.fit(n)
        asym = float(AsymptoticCalculator(model).upper_limit(n))
        ups, errs, unresolved = [], [], 0
        for seed in range(args.seeds):
            calc = ToyCalculator(model, n_toys=args.n_toys, rng=np.random.default_rng(seed))
            try:
                up, err = calc.upper_limit_with_error(n)
            except UnresolvedToyLimit:
                unresolved += 1
                continue
            ups.append(float(up))
            errs.append(float(err))
        a, e = np.array(ups), np.array(errs)
        k = a.size
        if k < 2:
            print(f"{mass:8.4f}  {unresolved} of {args.seeds} seeds unresolved: more toys")
            continue
        std = float(np.std(a, ddof=1))
        med = float(np.nanmedian(e))
        ratio = std / med
        d_ratio = ratio / np.sqrt(2 * (k - 1))
        e16, e84 = np.nanquantile(e, [0.16, 0.84]) / med
        print(
            f"{mass:8.4f}  {float(f.A_hat / f.sigma_A):13.2f}  {asym:10.1f}  "
            f"{np.mean(a):9.1f}  {std:9.1f}  {med:10.1f}  {ratio:.2f} +- {d_ratio:.2f}"
            f"     {e16:.2f}-{e84:.2f}"
            + (f"  ({unresolved} seeds unresolved)" if unresolved else "")
            + (f"  ({int(np.isnan(e).sum())} errors NaN)" if np.isnan(e).any() else "")
        )


if __name__ == "__main__":
    main()
