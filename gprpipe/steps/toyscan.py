"""toyscan: the whole scan on background-only toy histograms, as a validation step.

``[toyscan]`` names a ROOT file and a histogram pattern (``fShiftSigPowTail/*_toy_*``);
the matching histograms (natural name order, at most ``max_toys``) are split into tasks of
``chunk`` toys. Each toy is rebinned and scanned exactly like the data of
``toyscan.dataset`` (same card, range, ``data_range``, ``[fit]``): GP fit per mass
(warm-started along the scan), then A_hat, sigma_A and Z_local from the window likelihood.
The merge writes ``toyscan.csv`` (per toy and mass), ``toyscan_summary.csv`` (per mass:
spurious signal, pulls, tail fractions) and ``toyscan.h5``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import ndtr

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text
from gprpipe.io.hdf5 import open_h5, read_group, write_group, write_h5
from gprpipe.pipeline.plan import MERGE, toyscan_parts
from gprpipe.results.schema import (  # noqa: F401  (reader re-exported for callers)
    TOYSCAN,
    TOYSCAN_SUMMARY,
    csv_text,
    read_toyscan,
)
from gprpipe.results.summary import pull_closure_text, toyscan_tail_text
from gprpipe.stats.quality import counts_for_discovery, has_result, is_flagged
from gprpipe.units import same_mass

COLUMNS = TOYSCAN.names
SUMMARY = TOYSCAN_SUMMARY.names
TAILS = {2.0: float(ndtr(-2.0)), 3.0: float(ndtr(-3.0)), 5.0: float(ndtr(-5.0))}
"""Background-only expectation of P(Z_local > z) (asymptotic: half chi-square, one dof)."""


def toy_names(path: str | Path, pattern: str) -> list[str]:
    """Names of the 1-D histograms in ``path`` matching ``pattern``, in natural order."""
    from gprpipe.io.root import match_hists

    if not Path(path).is_file():
        raise GprpipeError(f"{path}: toyscan.file not found.")
    return match_hists(path, pattern, "toyscan.pattern")


def scan_toy(cfg: Config, counts: np.ndarray, edges: np.ndarray) -> list[dict]:
    """One toy spectrum through the scan of ``toyscan.dataset``: a row per mass."""
    from gprpipe.stats import significance
    from gprpipe.stats.likelihood import WindowModel
    from gprpipe.stats.quality import has_result
    from gprpipe.steps.fit import fit_masses, template_key
    from gprpipe.steps.limit import converged_fit

    name = cfg.toyscan_dataset()
    rows = []
    for mf in fit_masses(cfg, name, counts, edges, cfg.test_masses(name), observed=False):
        h = mf.hyper
        row = {
            "mass_GeV": mf.mass,
            "gp_converged": bool(h and h.converged),
            "gp_length_scale": h.length_scale if h else np.nan,
            "gp_amplitude": h.amplitude if h else np.nan,
            "A_hat": np.nan,
            "sigma_A": np.nan,
            "Z_local": np.nan,
            "status": mf.status,
        }
        if has_result(mf.status) and mf.blind is not None:  # ok or flagged: numbers kept
            bl = mf.blind
            w = bl[template_key(cfg)]
            try:
                model = WindowModel.from_covariance(bl["b"], bl["C"], w)
                f = converged_fit(model, bl["n"])
                z = significance.z_local(model.q0(bl["n"], f))
                row.update(A_hat=float(f.A_hat), sigma_A=float(f.sigma_A), Z_local=float(z))
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
                row["status"] = f"limit failed: {exc}"
        rows.append(row)
    return rows


def run(ctx) -> None:
    from gprpipe.config.checks import binning_mismatch, toy_errors
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.load import observed_counts_guard

    cfg, part = ctx.config, ctx.task.part
    if part == MERGE:
        merge(ctx)
        return
    ts = cfg.toyscan
    ds = cfg.datasets[cfg.toyscan_dataset()]
    start, stop = toyscan_parts(cfg)[part]
    names = toy_names(ts.file, ts.pattern)[: ts.max_toys]
    not_observed = observed_counts_guard(cfg, cfg.toyscan_dataset())
    rows: list[dict] = []
    first = read_hist(ts.file, names[0])[1]  # validate compared it with the data's
    for i in range(start, min(stop, len(names))):
        counts, edges = read_hist(ts.file, names[i])
        errors = toy_errors(cfg, counts, edges, names[i])
        if errors:
            raise GprpipeError(f"toyscan.file: {errors[0]}")
        # every toy like the first (one of another binning was scanned and pooled)
        if why := binning_mismatch(ts.file, names[i], edges, names[0], first, "toyscan.pattern"):
            raise GprpipeError(why)
        counts, edges = rebin(counts, edges, ds.rebin)
        not_observed(counts, f"toyscan.pattern: {ts.file}: histogram {names[i]!r}")
        rows += [{"toy": i, "hist": names[i], **r} for r in scan_toy(cfg, counts, edges)]
    arrays = {c: np.array([r[c] for r in rows]) if rows else np.array([]) for c in COLUMNS}
    arrays["hist"] = arrays["hist"].astype(str)
    arrays["status"] = arrays["status"].astype(str)
    with write_h5(ctx.layout.part("toyscan", part), ctx.attrs()) as f:
        write_group(f.create_group("toys"), arrays)


def _kinds(status: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: flagged (numbers, a quality flag), and with a result (ok or flagged; the
    rest failed)."""
    flagged = np.array([is_flagged(str(x)) for x in status], dtype=bool)
    with_result = np.array([has_result(str(x)) for x in status], dtype=bool)
    return flagged, with_result


def summarize(toys: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-mass summary of the unflagged rows (``status == ok``)."""
    masses = np.unique(toys["mass_GeV"])
    out: dict[str, list] = {c: [] for c in SUMMARY}
    flagged, with_result = _kinds(toys["status"])
    for m in masses:
        sel = same_mass(toys["mass_GeV"], m)
        ok = sel & counts_for_discovery(toys["status"])
        a, s, z = toys["A_hat"][ok], toys["sigma_A"][ok], toys["Z_local"][ok]
        n = int(ok.sum())
        pull = a / s
        out["mass_GeV"].append(float(m))
        out["n_kept"].append(n)
        out["n_flagged"].append(int((sel & flagged).sum()))
        out["n_failed"].append(int((sel & ~with_result).sum()))
        out["A_hat_mean"].append(a.mean() if n else np.nan)
        out["A_hat_mean_err"].append(a.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan)
        out["sigma_A_mean"].append(s.mean() if n else np.nan)
        out["spurious_ratio"].append(a.mean() / s.mean() if n else np.nan)
        out["pull_mean"].append(pull.mean() if n else np.nan)
        width = pull.std(ddof=1) if n > 1 else np.nan
        out["pull_mean_err"].append(width / np.sqrt(n) if n > 1 else np.nan)
        out["pull_width"].append(width)
        out["frac_Z_gt2"].append(np.mean(z > 2) if n else np.nan)
        out["frac_Z_gt3"].append(np.mean(z > 3) if n else np.nan)
    return {k: np.asarray(v) for k, v in out.items()}


def max_z_per_toy(toys: dict[str, np.ndarray]) -> np.ndarray:
    """Maximum unflagged Z_local of each toy (NaN if a toy has no unflagged mass with a Z:
    it says nothing of the maximum)."""
    ids, inv = np.unique(toys["toy"], return_inverse=True)
    ok = counts_for_discovery(toys["status"]) & np.isfinite(toys["Z_local"])
    top = np.full(ids.size, -np.inf)
    np.maximum.at(top, inv, np.where(ok, toys["Z_local"], -np.inf))
    return np.where(np.isfinite(top), top, np.nan)


def tail_fraction(toys: dict[str, np.ndarray], t: float) -> tuple[float, float]:
    """Fraction of unflagged rows with Z_local > t and its statistical error.

    Rows of one toy are correlated (neighbouring masses share sidebands), so the error comes
    from the spread of the per-toy counts (ratio estimator over toys), floored at the
    binomial error of the background-only expectation for independent rows.
    """
    ok = counts_for_discovery(toys["status"])
    ids, inv = np.unique(toys["toy"], return_inverse=True)
    n_t = np.bincount(inv, weights=ok.astype(float), minlength=ids.size)
    c_t = np.bincount(inv, weights=(ok & (toys["Z_local"] > t)).astype(float), minlength=ids.size)
    n = n_t.sum()
    if n == 0:
        return float("nan"), float("nan")
    f = c_t.sum() / n
    err = (np.std(c_t - f * n_t, ddof=1) * np.sqrt(ids.size) / n) if ids.size > 1 else 0.0
    p = TAILS.get(t, f)
    return float(f), float(max(err, np.sqrt(p * (1 - p) / n)))


def overview(toys: dict[str, np.ndarray]) -> dict[str, float]:
    """Whole-scan numbers: tail fractions with their errors and expectations."""
    ok = counts_for_discovery(toys["status"])
    flagged, with_result = _kinds(toys["status"])
    z = toys["Z_local"][ok]
    out = {
        "n_toys": len(np.unique(toys["toy"])),
        "n_rows": int(toys["toy"].size),
        "n_ok": int(ok.sum()),
        "n_flagged": int(flagged.sum()),
        "n_failed": int((~with_result).sum()),
        "max_Z_local_ok": float(z.max()) if z.size else float("nan"),
        "max_Z_local_flagged": float(np.nanmax(toys["Z_local"][~ok]))
        if (~ok).any() and np.isfinite(toys["Z_local"][~ok]).any()
        else float("nan"),
        "n_ok_Z_gt5": int(np.sum(z > 5)),
    }
    for t, p in TAILS.items():
        out[f"frac_Z_gt{t:g}"], out[f"frac_Z_gt{t:g}_err"] = tail_fraction(toys, t)
        out[f"frac_Z_gt{t:g}_expected"] = p
    return out


def merge(ctx) -> None:
    lay = ctx.layout
    parts = []
    for p in ctx.task.inputs:
        with open_h5(p) as f:
            parts.append(read_group(f["toys"]))
    parts = [a for a in parts if a["toy"].size]
    if not parts:
        raise GprpipeError(
            f"{ctx.config.toyscan.file}: no toy was scanned "
            f"(toyscan.pattern {ctx.config.toyscan.pattern!r})."
        )
    toys = {c: np.concatenate([a[c] for a in parts]) for c in COLUMNS}
    summ = summarize(toys)
    ov = overview(toys)
    with write_h5(lay.toyscan, ctx.attrs()) as f:
        write_group(f.create_group("toys"), toys)
        g = f.create_group("summary")
        write_group(g, {**summ})
        g.attrs.update(ov)
        write_group(
            f.create_group("max_Z_local"),
            {"toy": np.unique(toys["toy"]), "max_Z_local": max_z_per_toy(toys)},
        )
    atomic_write_text(lay.toyscan_csv, csv_text({"": toys}, COLUMNS))
    atomic_write_text(lay.toyscan_summary_csv, csv_text({"": summ}, SUMMARY))
    print(f"toyscan: {toyscan_tail_text(ov)}")
    if pulls := pull_closure_text(
        summ["mass_GeV"], summ["pull_mean"], summ["pull_mean_err"], summ["n_kept"]
    ):
        print(f"toyscan: {pulls}")
