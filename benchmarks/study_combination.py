"""How often can a correct combination be "no weaker than the best single dataset"?

At each mass of the 2015+2016 overlap, the combined observed eps^2 limit is compared with
the smaller of the two single-dataset observed limits (the criterion
``eps2_up(combined) <= 1.05 * min_d eps2_up(d)``), on the real data and on background-only
toys of the same windows (each dataset's fitted ``(b, C)``: ``n ~ Poisson(b_t)``,
``b_t ~ N(b, C)``, independent between datasets). The toy pass rate is what a correct
combination achieves when only statistical fluctuations are present: the combined estimate
is the inverse-variance average of the two datasets, so an excess in one dataset weakens
the combined limit relative to the other dataset's, whenever the two are of comparable
sensitivity. The same is shown for the expected (median) limits, which must pass always,
and for the Asimov data ``n = b`` (no fluctuation), where the combined limit must be the
strongest.

Usage: python benchmarks/study_combination.py [--run POINT_DIR] [--toys 2000] [--seed 1]
                                             [--funcform N] [--table-only]
``--run POINT --table-only`` only compares, from scan.csv, the combined expected and
observed limits with the best single dataset's at every combined mass (any number of
datasets, e.g. the three-way run), grouped by the datasets that cover the mass.
Without ``--run`` it first runs ``user_configs/hps2015_2016_combined.toml`` on the files
in ../shared/data/hps into a temporary folder (about a minute). ``--funcform N`` then runs
the whole combined scan on N pairs of the functional-form background toys in those files
(about 40 s each): real, independent pseudo-data, scanned end to end.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"
FAMILIES = ("fShiftSigPowTail", "fShiftSigPow")  # the fits both years' files have


def run_combined(out: Path, hists: tuple[str, str] | None = None, quiet: bool = False) -> Path:
    """The shipped combined config on the HPS files (``hists``: other histograms of them,
    e.g. functional-form toys; then load, fit and limit only)."""
    config = REPO / "user_configs" / "hps2015_2016_combined.toml"
    cmd = [
        sys.executable,
        "-m",
        "gprpipe",
        "run",
        str(config),
        "--set",
        f"datasets.2015.path={DATA / 'funcform_2015_toys.root'}",
        "--set",
        f"datasets.2016.path={DATA / 'funcform_2016_toys.root'}",
        "--set",
        f"base.output={out}",
        "-j",
        "2",
    ]
    if hists is not None:
        cmd += [
            "--set",
            f"datasets.2015.hist={hists[0]}",
            "--set",
            f"datasets.2016.hist={hists[1]}",
            "--steps",
            "load,fit,limit",
        ]
    t0 = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if quiet else None
    )
    if not quiet:
        print(f"combined scan of the real 2015 + 2016 data: {time.perf_counter() - t0:.1f} s")
    return out / "nominal"


def passing(rows: dict[str, dict[float, dict[str, str]]], col: str, tol: float) -> tuple[int, int]:
    """Masses where the combined ``col`` is within ``tol`` of the best single dataset's."""
    ok = 0
    masses = sorted(rows.get("combined", {}))
    for m in masses:
        single = [float(rows[d][m][col]) for d in rows if d != "combined" and m in rows[d]]
        ok += float(rows["combined"][m][col]) <= tol * min(single)
    return ok, len(masses)


def funcform_scans(n: int, tol: float) -> None:
    """The combined scan on ``n`` pairs of functional-form background toys (independent
    pseudo-data for both years): how many masses meet the criterion per toy scan."""
    counts = []
    for i in range(n):
        fam = FAMILIES[i % len(FAMILIES)]
        toy = f"{fam}/{fam}_toy_{i // len(FAMILIES)}"
        with tempfile.TemporaryDirectory(prefix="gprpipe-comb-toy-") as tmp:
            t0 = time.perf_counter()
            rows = scan_rows(run_combined(Path(tmp), (toy, toy), quiet=True))
            ok, total = passing(rows, "eps2_up", tol)
            exp_ok, _ = passing(rows, "eps2_exp_med", tol)
        counts.append(ok)
        print(
            f"  toy scan {toy}: observed {ok}/{total}, expected {exp_ok}/{total} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    c = np.array(counts)
    print(
        f"functional-form toy scans: observed criterion met at {c.mean():.1f} masses on "
        f"average (min {c.min()}, max {c.max()}; {np.mean(c / total):.0%})"
    )


def scan_rows(point: Path) -> dict[str, dict[float, dict[str, str]]]:
    by: dict[str, dict[float, dict[str, str]]] = {}
    with open(point / "scan.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["dataset"], {})[round(float(r["mass_GeV"]), 6)] = r
    return by


def ratio_table(rows: dict[str, dict[float, dict[str, str]]], tol: float) -> None:
    """From scan.csv alone: per combined mass the combined expected (and observed) eps^2
    limit over the best single dataset's, grouped by the datasets that cover the mass."""
    groups: dict[str, list[tuple[float, float, float]]] = {}
    for m, c in sorted(rows.get("combined", {}).items()):
        single = {
            d: rows[d][m]
            for d in rows
            if d != "combined" and m in rows[d] and rows[d][m]["status"] == "ok"
        }
        if c["status"] != "ok" or len(single) < 2:
            continue
        r_exp = float(c["eps2_exp_med"]) / min(float(r["eps2_exp_med"]) for r in single.values())
        r_obs = float(c["eps2_up"]) / min(float(r["eps2_up"]) for r in single.values())
        groups.setdefault(" + ".join(sorted(single)), []).append((m, r_exp, r_obs))
    every = [x for g in groups.values() for x in g]
    if not every:
        print("no combined masses with two or more datasets")
        return
    for name, g in [*groups.items(), ("all", every)]:
        m, e, o = (np.array(v) for v in zip(*g))
        w = int(np.argmax(e))
        print(
            f"{name:>16}: {len(g):3d} masses ({m.min() * 1e3:g}-{m.max() * 1e3:g} MeV); "
            f"expected combined/best single: <= 1 at {int(np.sum(e <= 1.0))}, median "
            f"{np.median(e):.3f}, best {e.min():.3f}, worst {e[w]:.3f} at {m[w] * 1e3:g} "
            f"MeV; observed within {tol - 1:.0%}: {int(np.sum(o <= tol))} (median "
            f"{np.median(o):.3f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="point folder of a finished combined run")
    ap.add_argument("--toys", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="only the scan.csv comparison of combined and single limits "
        "(any number of datasets, no toys)",
    )
    ap.add_argument(
        "--funcform",
        type=int,
        default=0,
        help="also run the combined scan on N functional-form toy pairs",
    )
    a = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.plan import Layout
    from gprpipe.stats import cls
    from gprpipe.stats import combine as comb
    from gprpipe.stats.likelihood import WindowModel, cholesky_jitter
    from gprpipe.stats.toys import background_toys
    from gprpipe.steps.combine import load_blocks

    tmp = None
    if a.run is None:
        tmp = tempfile.TemporaryDirectory(prefix="gprpipe-comb-")
        a.run = run_combined(Path(tmp.name))
    point = a.run
    cfg = point_config_from_file(Layout(point).config)
    rows = scan_rows(point)
    if a.table_only:
        ratio_table(rows, 1.0 + a.tolerance)
        return
    masses = sorted(rows.get("combined", {}))
    tol = 1.0 + a.tolerance
    rng = np.random.default_rng(a.seed)
    data_pass = exp_pass = asimov_pass = 0
    toy_rates, ratios, t0 = [], [], time.perf_counter()
    fits: dict = {}
    misses = []
    with threadpool_limits(1):
        for m in masses:
            blocks, problems, _ = load_blocks(cfg, Layout(point).fit, m, fits)
            if problems or len(blocks) < 2:
                continue
            cw = comb.combine(blocks)
            single = {bl.name: rows[bl.name][m] for bl in blocks}
            obs = {d: float(r["eps2_up"]) for d, r in single.items()}
            exp = {d: float(r["eps2_exp_med"]) for d, r in single.items()}
            c = rows["combined"][m]
            ok = float(c["eps2_up"]) <= tol * min(obs.values())
            data_pass += ok
            exp_pass += float(c["eps2_exp_med"]) <= tol * min(exp.values())
            ratios.append(float(c["eps2_up"]) / min(obs.values()))
            if not ok:
                misses.append(
                    (
                        m,
                        {d: float(r["A_hat"]) / float(r["sigma_A"]) for d, r in single.items()},
                        ratios[-1],
                    )
                )
            # Asimov (n = b) and background-only toys of the same windows
            n = background_toys(cw.b, cw.C, a.toys, rng, cw.L).astype(float)
            n = np.vstack([cw.b, n])
            lim_single = []
            for bl, sl in zip(blocks, cw.slices):
                Lb = cholesky_jitter(bl.C)
                A_up = cls.AsymptoticCalculator(WindowModel(bl.b, Lb, bl.w)).upper_limit(n[:, sl])
                lim_single.append(np.asarray(A_up) / bl.k_unit)
            best = np.min(lim_single, axis=0)
            lim_c = np.asarray(comb.upper_limit(cw, n=n))
            passed = lim_c <= tol * best
            asimov_pass += bool(passed[0])
            toy_rates.append(float(np.mean(passed[1:])))
    n_m = len(toy_rates)
    rates = np.array(toy_rates)
    print(
        f"{n_m} overlap masses, {a.toys} background-only toys each "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    print(f"criterion: combined eps2_up <= {tol:.2f} x min(single eps2_up)")
    print(
        f"  real data, observed limits : {data_pass}/{n_m} masses "
        f"({data_pass / n_m:.0%}); combined/best ratio median "
        f"{np.median(ratios):.3f}, max {np.max(ratios):.2f}"
    )
    print(f"  real data, expected medians: {exp_pass}/{n_m} masses")
    print(f"  Asimov data (n = b)        : {asimov_pass}/{n_m} masses")
    print(
        f"  background-only toys       : pass rate per mass mean {rates.mean():.3f} "
        f"(min {rates.min():.3f}, max {rates.max():.3f}); expected masses passing "
        f"{rates.sum():.1f}/{n_m}"
    )
    if misses:
        print("  real-data misses (mass MeV: A_hat/sigma_A per dataset -> combined/best):")
        for m, z, r in misses:
            zs = ", ".join(f"{d} {v:+.2f}" for d, v in z.items())
            print(f"    {m * 1e3:6.1f}: {zs} -> {r:.3f}")
    if tmp is not None:
        tmp.cleanup()
    if a.funcform:
        funcform_scans(a.funcform, tol)


if __name__ == "__main__":
    main()
