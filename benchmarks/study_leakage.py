"""Signal-leakage studies: refit closure tables ("model" beside "ignore"), functional-form
closure, the sensitivity cost (sigma_A ratio) and the second-order effects.

Usage:
  # refit closure (>= 1000 toys per point) through the CLI, then the table:
  python benchmarks/study_leakage.py closure --year 2015 --run --output runs/closure2015
  python benchmarks/study_leakage.py closure --year 2015 --output runs/closure2015  # table only
  # (--output may hold several chunk runs, e.g. runs/closure2015/seed-<k>/ made with
  #  --set base.seed=<k> --set inject.n_toys=250: their toys are independent and pooled)
  # functional-form closure (3 families, data_range = each function's fit range):
  python benchmarks/study_leakage.py funcform --run --output runs/ff2015
  # sigma_A ratio and second-order effects (noise-free toys, no CLI run needed):
  python benchmarks/study_leakage.py second-order --year 2015 --masses 0.03 0.06 0.1
  # why A_hat is offset at zero signal (refit / weighting / log transform / smoother):
  python benchmarks/study_leakage.py zero-bias --year 2016 --masses 0.05 --toys 200

``--run`` drives ``python -m gprpipe run`` on the shipped configs
(user_configs/hps<year>_leakage_closure.toml at point signal_leakage-model, and
user_configs/hps2015_funcform_injection.toml with data_range read from the file's
fit_metadata). The inject step keeps, per toy, the extraction with the leakage-aware template
(``A_hat_w_eff``) and with ``w`` (``A_hat_w``) from the same refitted toys, so one run gives
both columns ("model" and "ignore", at the same injected yields). Errors are statistical:
mean +- std/sqrt(n); width +- width/sqrt(2(n-1)); coverage binomial.
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
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps"


def _data(year: str) -> Path:
    return DATA / f"funcform_{year}_toys.root"


def run_cli(config: Path, sets: list[str], extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "gprpipe", "run", str(config), *extra]
    for s in sets:
        cmd += ["--set", s]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def stats(A_inj: float, a: np.ndarray, s: np.ndarray) -> dict[str, tuple[float, float]]:
    """Closure figures with statistical errors over the toys with finite results."""
    ok = np.isfinite(a) & np.isfinite(s) & (s > 0)
    a, s = a[ok], s[ok]
    n = len(a)
    pull = (a - A_inj) / s
    w = float(pull.std(ddof=1))
    cov = float(np.mean(np.abs(pull) < 1))
    out = {
        "n": (n, 0.0),
        "pull_mean": (float(pull.mean()), w / np.sqrt(n)),
        "pull_width": (w, w / np.sqrt(2 * (n - 1))),
        "cov1": (cov, float(np.sqrt(cov * (1 - cov) / n))),
    }
    if A_inj > 0:
        out["ratio"] = (float(a.mean() / A_inj), float(a.std(ddof=1) / np.sqrt(n) / A_inj))
    return out


def _fmt(v: tuple[float, float], digits: int = 3) -> str:
    return f"{v[0]:.{digits}f}+-{v[1]:.{digits}f}"


def _sources(run: Path) -> list[Path]:
    """The ``inject.h5`` files of a run: a point directory, a run directory holding chunk
    runs (``seed-*/signal_leakage-model``), one ``.h5`` file, or, for an interrupted run,
    the per-mass part files (``parts/inject/*.h5``) that were committed."""
    if run.suffix == ".h5":
        return [run]
    points = sorted(
        {p.parent for p in run.glob("**/inject.h5")}
        | {p.parent.parent for p in run.glob("**/parts/inject")}
    )
    out = []
    for pt in points:
        if (pt / "inject.h5").exists():
            out.append(pt / "inject.h5")
        else:
            out += sorted((pt / "parts" / "inject").glob("*.h5"))
    return out


def pooled_toys(files: list[Path]) -> dict[tuple[str, float, float], list]:
    """(dataset, mass, z) -> [(per-toy arrays, attrs)] over ``files`` (independent chunks)."""
    import h5py

    from gprpipe.steps.inject import read_toys

    out: dict[tuple[str, float, float], list] = {}
    for h5 in files:
        with h5py.File(h5, "r") as f:
            names = list(f)
        for name in names:
            for arr, attrs in read_toys(h5, name).values():
                key = (name, round(float(attrs["mass_GeV"]), 9), float(attrs["z_inj"]))
                out.setdefault(key, []).append((arr, attrs))
    return out


def closure_table(run: Path, label: str) -> None:
    """Per (dataset, mass, Z): model and ignore columns from the per-toy arrays of the
    ``inject.h5`` files of a run (chunks with different ``base.seed`` are pooled: each
    toy's pull uses its own chunk's injected yield). ``noise-free`` is the extraction of
    the noise-free refit toy (A_hat_asimov / A_inj), at Z = 0 its A_hat in sigma_A,ref."""
    files = _sources(run)
    if not files:
        print(f"\n{label}: no inject results under {run}")
        return
    toys = pooled_toys(files)
    print(f"\n{label}: {run} ({len(files)} files)")
    md = [
        "| dataset | MeV | Z | toys | A_hat/A_inj model | pull mean model | pull width model "
        "| 1-sigma coverage model | A_hat/A_inj ignore | pull mean ignore | pull width ignore "
        "| coverage ignore | noise-free |",
        "|---" * 13 + "|",
    ]
    print(
        f"{'dataset':8s} {'MeV':>5s} {'Z':>3s} {'n':>5s} | {'template':8s} "
        f"{'A_hat/A_inj':>14s} {'pull mean':>14s} {'pull width':>14s} {'cov 1sig':>14s}"
        f" | noise-free"
    )
    for key in sorted(toys):
        chunks = toys[key]
        a0 = chunks[0][1]
        refs = np.array([c[1]["sigma_ref"] for c in chunks])
        conv = np.concatenate(
            [c[0]["gp_converged"] if "gp_converged" in c[0] else c[0]["converged"] for c in chunks]
        ).astype(bool)
        A = np.concatenate(
            [np.full(len(c[0]["A_hat_w_eff"]), float(c[1]["A_inj"])) for c in chunks]
        )
        cells: list[str] = []
        for tmpl, lab in (("w_eff", "model"), ("w", "ignore")):
            a = np.concatenate([c[0][f"A_hat_{tmpl}"] for c in chunks])
            s = np.concatenate([c[0][f"sigma_A_{tmpl}"] for c in chunks])
            # pooled over chunks: pulls per toy, ratio from the mean of A_hat / A_inj
            st = stats(0.0, np.where(conv, a - A, np.nan), s)
            if key[2] > 0:
                r = np.where(conv, a / A, np.nan)
                r = r[np.isfinite(r) & np.isfinite(s) & (s > 0)]
                st["ratio"] = (float(r.mean()), float(r.std(ddof=1) / np.sqrt(len(r))))
            ratio = _fmt(st["ratio"]) if "ratio" in st else "-"
            nf = float(a0.get("A_hat_asimov", np.nan))
            nf = nf / float(a0["A_inj"]) if key[2] > 0 else nf / float(a0["sigma_ref"])
            print(
                f"{key[0]:8s} {key[1] * 1e3:5g} {key[2]:3g} {st['n'][0]:5d} | "
                f"{lab:8s} {ratio:>14s} {_fmt(st['pull_mean']):>14s} "
                f"{_fmt(st['pull_width']):>14s} {_fmt(st['cov1']):>14s}"
                + (f" | {nf:+.3f}" if tmpl == "w_eff" and np.isfinite(nf) else "")
            )
            cells += [
                _fmt(st["ratio"], 3).replace("+-", " +- ") if "ratio" in st else "-",
                *(
                    _fmt(st[k], d).replace("+-", " +- ")
                    for k, d in (("pull_mean", 2), ("pull_width", 2), ("cov1", 3))
                ),
            ]
        md.append(
            f"| {key[0]} | {key[1] * 1e3:g} | {key[2]:g} | {int(conv.sum())} | "
            + " | ".join(cells)
            + f" | {nf:+.3f} |"
        )
        print(
            f"{'':8s} {'':5s} {'':3s} {'':5s} | GP refits converged {conv.mean():.4f} "
            f"of {len(conv)} in {len(chunks)} chunk(s); strength unit sigma_A,ref(w_eff) = "
            f"{refs.mean():.1f} events (spread over chunks {np.ptp(refs):.2g})"
        )
    print("\n" + "\n".join(md))


def fit_ranges(year: str) -> dict[str, tuple[float, float]]:
    from gprpipe.io.root import read_text

    summary = json.loads(read_text(_data(year), "fit_metadata/fit_summary_json"))
    return {f["tag"]: (float(f["fit_min_GeV"]), float(f["fit_max_GeV"])) for f in summary["fits"]}


def _noise_free(a: float, b_full, w_full, x, setup, hyper, w_e0):
    """A_hat of the noise-free toy ``b_full + a w_full``: (refit with w, fixed data
    hyperparameters with w_eff, refit with the refit's w_eff); and the refit."""
    from gprpipe.stats.gp import predict_counts
    from gprpipe.stats.likelihood import WindowModel, cholesky_jitter

    tr, blm = setup.train, setup.blind
    toy = b_full + a * w_full
    b_a, C_a = predict_counts(x[tr], toy[tr], x[blm], hyper)
    r_fixed = WindowModel(b_a, cholesky_jitter(C_a), w_e0).fit(toy[blm]).A_hat
    wf = setup.fit(toy, 0, restart_policy="always")
    L = cholesky_jitter(wf.C)
    r_w = WindowModel(wf.b, L, w_full[blm]).fit(toy[blm]).A_hat
    r_refit = WindowModel(wf.b, L, setup.w_eff(toy, w_full, wf)).fit(toy[blm]).A_hat
    return np.array([r_w, r_fixed, r_refit], dtype=float), wf


def second_order(year: str, masses: list[float], z: float) -> None:
    """Noise-free toys (GP mean of the data + signal): extraction with w_eff when
    (a) the GP keeps the data's hyperparameters (only the log transform and the 1/y noise
    are non-linear), (b) the hyperparameters are refitted (the full method); with w for
    reference; and the sigma_A ratio (sensitivity cost)."""
    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.stats import inject as inj
    from gprpipe.stats.gp import predict_counts
    from gprpipe.stats.leakage import leakage_template
    from gprpipe.stats.likelihood import cholesky_jitter
    from gprpipe.stats.template import signal_template
    from gprpipe.steps.fit import fit_masses
    from gprpipe.steps.inject import Window, refit_setup

    _, points = load_points(
        REPO / f"user_configs/hps{year}.toml", [f"datasets.{year}.path={_data(year)}"]
    )
    cfg = points[0].config
    ds = cfg.datasets[year]
    counts, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    x = 0.5 * (edges[1:] + edges[:-1])
    print(
        f"\n{year}: noise-free toys b_GP + A w (A = {z:g} sigma_A,ref), window "
        f"+-{cfg.fit.blind_nsigma:g} sigma"
    )
    print(
        f"{'MeV':>5s} {'sum w':>6s} {'sum w_eff':>9s} {'sigA ratio':>10s} | extraction: "
        f"{'w, refit':>9s} {'w_eff, fixed hyper':>18s} {'w_eff, refit':>12s}  "
        f"(hyper shift l, a)"
    )
    for m in masses:
        mf = fit_masses(cfg, year, counts, edges, np.array([m]))[0]
        bl = mf.blind
        L = cholesky_jitter(bl["C"])
        s_w, s_e = inj.sigma_ref(bl["b"], L, bl["w"]), inj.sigma_ref(bl["b"], L, bl["w_eff"])
        setup = refit_setup(cfg, year, Window(mf, counts, edges))
        b_full = inj.full_range_mean(counts, setup)
        w_full = signal_template(edges, m, mf.sigma)
        A = z * s_e
        tr, blm = setup.train, setup.blind
        w_e0 = leakage_template(
            x[tr],
            b_full[tr],
            w_full[tr],
            x[blm],
            w_full[blm],
            predict_counts(x[tr], b_full[tr], x[blm], mf.hyper)[0],
            mf.hyper,
        )

        at_a, wf = _noise_free(A, b_full, w_full, x, setup, mf.hyper, w_e0)
        at_0, _ = _noise_free(0.0, b_full, w_full, x, setup, mf.hyper, w_e0)
        r_w, r_fixed, r_refit = at_a / A
        d_w, d_fixed, d_refit = (at_a - at_0) / A
        off = at_0 / s_e
        dl = wf.hyper.length_scale / mf.hyper.length_scale - 1
        da = wf.hyper.amplitude / mf.hyper.amplitude - 1
        print(
            f"{m * 1e3:5g} {bl['w'].sum():6.3f} {bl['w_eff'].sum():9.3f} {s_e / s_w:10.3f} |"
            f"             {r_w:9.3f} {r_fixed:18.3f} {r_refit:12.3f}  "
            f"({dl:+.3f}, {da:+.3f})"
        )
        print(
            f"{'':5s} {'':6s} {'':9s} {'':10s} | A=0 subtracted: {d_w:9.3f} {d_fixed:18.3f} "
            f"{d_refit:12.3f}  (A_hat at A=0 in sigma_A,ref: w {off[0]:+.3f}, fixed "
            f"{off[1]:+.3f}, refit {off[2]:+.3f})"
        )


def zero_bias(year: str, masses: list[float], n_toys: int, seed: int) -> None:
    """Decompose the strength-0 offset of the refit closure (A_hat at A = 0, in
    sigma_A,ref) on background-only Poisson toys of the GP mean (the refit closure's toys),
    all fitted with the data's w_eff:
    (a) the full method: GP refitted on each toy;
    (b) the data's hyperparameters kept, the toy's own ln-counts and noise 1/y;
    (c) the data's hyperparameters, ln-counts of the toy, noise 1/b of the true mean;
    (d) as (c) with the linearised target ln b + (y - b)/b (no log-transform bias).
    (a)-(b) is the hyperparameter refit, (b)-(c) the correlation of the weight 1/y with
    the fluctuation, (c)-(d) the log transform; (d) is the smoother's own offset (the
    noise-free value of ``second-order``)."""
    from gprpipe.config import load_points
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.stats import inject as inj
    from gprpipe.stats.gp import (
        latent_mean_map,
        lognormal_moments,
        predict_counts,
        predict_latent,
    )
    from gprpipe.stats.likelihood import cholesky_jitter, fit_signal
    from gprpipe.steps.fit import fit_masses
    from gprpipe.steps.inject import Window, refit_setup

    _, points = load_points(
        REPO / f"user_configs/hps{year}.toml", [f"datasets.{year}.path={_data(year)}"]
    )
    cfg = points[0].config
    ds = cfg.datasets[year]
    counts, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    x = 0.5 * (edges[1:] + edges[:-1])
    print(
        f"\n{year}: A_hat at A = 0 in sigma_A,ref(w_eff), {n_toys} Poisson toys of the GP "
        f"mean, window +-{cfg.fit.blind_nsigma:g} sigma (mean +- error; scatter)"
    )
    print(
        f"{'MeV':>5s} {'(a) refit':>16s} {'(b) fixed hyper':>16s} {'(c) + noise 1/b':>16s} "
        f"{'(d) + linear':>16s}   median training count"
    )
    for m in masses:
        mf = fit_masses(cfg, year, counts, edges, np.array([m]))[0]
        bl = mf.blind
        w_e = bl["w_eff"]
        setup = refit_setup(cfg, year, Window(mf, counts, edges))
        sref = inj.sigma_ref(bl["b"], cholesky_jitter(bl["C"]), w_e)
        b_full = inj.full_range_mean(counts, setup)
        tr, blm = setup.train, setup.blind
        M = latent_mean_map(x[tr], b_full[tr], x[blm], mf.hyper)
        _, S = predict_latent(x[tr], b_full[tr], x[blm], mf.hyper)
        rng = np.random.default_rng(seed)
        res = np.full((n_toys, 4), np.nan)
        for t in range(n_toys):
            toy = rng.poisson(b_full).astype(float)
            n = toy[blm]
            wf = setup.fit(toy, int(rng.integers(2**31)))
            fits = [(wf.b, wf.C)]
            fits.append(predict_counts(x[tr], toy[tr], x[blm], mf.hyper))
            yt, bt = toy[tr], b_full[tr]
            z_log = np.where(yt > 0, np.log(np.where(yt > 0, yt, 1.0)), 0.0)
            fits.append(lognormal_moments(M @ z_log, S))
            fits.append(lognormal_moments(M @ (np.log(bt) + (yt - bt) / bt), S))
            for k, (b, C) in enumerate(fits):
                res[t, k] = fit_signal(n, b, cholesky_jitter(C), w_e).A_hat / sref
        mu, err = res.mean(0), res.std(0, ddof=1) / np.sqrt(n_toys)
        cells = " ".join(f"{a:+9.3f}+-{e:.3f}" for a, e in zip(mu, err))
        d = res[:, :3] - res[:, 1:]  # paired: the same toys
        dm, de = d.mean(0), d.std(0, ddof=1) / np.sqrt(n_toys)
        print(f"{m * 1e3:5g} {cells}   {np.median(b_full[tr]):.0f}", flush=True)
        print(
            f"{'':5s} paired differences: refit (a-b) {dm[0]:+.3f}+-{de[0]:.3f}, weight 1/y "
            f"(b-c) {dm[1]:+.3f}+-{de[1]:.3f}, log transform (c-d) {dm[2]:+.3f}+-{de[2]:.3f}; "
            f"smoother (d) {mu[3]:+.3f}+-{err[3]:.3f}",
            flush=True,
        )


def funcform(out: Path, args) -> None:
    """Check that the shipped config's data ranges are the file's fit ranges, run it
    (``--run``), print one closure table per family."""
    import tomllib

    ranges = fit_ranges("2015")
    print(
        "fit ranges from fit_metadata: "
        + ", ".join(f"{k} {v[0]:g}-{v[1]:g} GeV" for k, v in ranges.items())
    )
    cfg_path = REPO / "user_configs/hps2015_funcform_injection.toml"
    grid = tomllib.loads(cfg_path.read_text())["grid"]["zip"]
    shipped = {
        h.split("/")[0]: tuple(r)
        for h, r in zip(grid["inject.histograms"], grid["datasets.2015.data_range"])
    }
    if shipped != ranges:
        raise SystemExit(
            f"{cfg_path}: data_range values {shipped} differ from the file's fit_metadata {ranges}"
        )
    if args.run:
        sets = [f"datasets.2015.path={_data('2015')}", f"base.output={out}"]
        if args.toys:
            sets.append(f"inject.n_toys={args.toys}")
        run_cli(cfg_path, sets, ["--jobs", str(args.jobs)])
    for fam in ranges:
        for p in sorted(out.glob(f"histograms-{fam}__*")):
            if (p / "inject.h5").exists():
                closure_table(
                    p,
                    f"functional-form closure, {fam}, data_range "
                    f"{ranges[fam][0]:g}-{ranges[fam][1]:g} GeV",
                )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("study", choices=("closure", "funcform", "second-order", "zero-bias"))
    ap.add_argument("--year", default="2015")
    ap.add_argument("--output", type=Path, default=None, help="run directory")
    ap.add_argument("--run", action="store_true", help="run the CLI first")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--toys", type=int, default=None, help="override inject.n_toys")
    ap.add_argument("--masses", type=float, nargs="*", default=[0.03, 0.06, 0.1])
    ap.add_argument("--z", type=float, default=5.0)
    args = ap.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.study == "second-order":
        second_order(args.year, args.masses, args.z)
    elif args.study == "zero-bias":
        zero_bias(args.year, args.masses, args.toys or 200, 7)
    elif args.study == "closure":
        out = args.output or REPO / "runs" / f"hps{args.year}_leakage_closure"
        if args.run:
            sets = [f"datasets.{args.year}.path={_data(args.year)}", f"base.output={out}"]
            if args.toys:
                sets.append(f"inject.n_toys={args.toys}")
            run_cli(
                REPO / f"user_configs/hps{args.year}_leakage_closure.toml",
                sets,
                ["--points", "signal_leakage-model", "--jobs", str(args.jobs)],
            )
        closure_table(out, f"refit closure {args.year}")
    else:
        out = args.output or REPO / "runs" / "hps2015_funcform_injection"
        funcform(out, args)
    print(
        f"\n{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU "
        f"in this process (CLI runs: see their logs)"
    )


if __name__ == "__main__":
    main()
