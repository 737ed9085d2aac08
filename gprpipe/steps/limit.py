"""limit: per test mass, A_hat and sigma_A, the CLs upper limit and expected bands,
local significance, eps^2; the merge adds the global p-value and writes ``limit.h5`` and
``scan.csv`` (one row per dataset or ``combined`` and mass, docs/design.md columns).

Blinded (``base.blind``): only the expected limits are computed (from ``b`` and ``C``, never
from the observed window counts); the observed columns (:data:`OBSERVED`) are absent from
``limit.h5`` and ``scan.csv``, and a ``blinded`` column (``true``) marks every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text
from gprpipe.io.hdf5 import write_group, write_h5
from gprpipe.pipeline.plan import MERGE, mass_parts
from gprpipe.results.schema import (  # noqa: F401  (re-exported for callers)
    BAND_COLS,
    BLIND_SCAN,
    COMBINED,
    OBSERVED,
    SCAN,
    collect,
    csv_text,
    read_scan,
)
from gprpipe.stats import significance
from gprpipe.stats.cls import Calculator, UnresolvedToyLimit, band_relative_error
from gprpipe.stats.conversion import eps2_from_A
from gprpipe.stats.quality import (
    LIMIT_FAILED,
    counts_for_discovery,
    flag_over_unresolved,
    flags_of,
    has_result,
    is_flagged,
    unresolved_status,
)
from gprpipe.stats.resolution import f_rad
from gprpipe.stats.toys import NegativeSignalTemplate
from gprpipe.steps.fit import read_blind, read_fit, resolution, template_key
from gprpipe.steps.runner import seed_for

if TYPE_CHECKING:
    from gprpipe.stats.likelihood import FitResult, WindowModel

COLUMNS = SCAN.names
BLIND_COLUMNS = BLIND_SCAN.names


def columns(cfg: Config) -> tuple[str, ...]:
    """The limit.h5 / scan.csv columns of a (blinded or unblinded) run."""
    return BLIND_COLUMNS if cfg.base.blind else COLUMNS


class _ToyOptions(TypedDict):
    """The toy settings :func:`window_limits` passes to every calculator."""

    alpha: float
    n_toys: int
    band_toys: int
    rng: np.random.Generator


#: a toy limit's status where the leakage-aware template dips below 0
NEGATIVE_TEMPLATE = (
    f"{LIMIT_FAILED}: the signal template has negative bins that toys cannot draw (with "
    "fit.train_exclude_nsigma below fit.blind_nsigma the signal leaks into the training "
    "bins): use limit.mode = asymptotic or fit.signal_leakage = ignore"
)


def converged_fit(model: WindowModel, n: np.ndarray) -> FitResult:
    """The signal fit of one window's counts ``n``; ValueError (a failed row) where it did
    not converge or has no finite sigma_A, e.g. every signal bin empty: A_hat runs to the
    lam >= 0 boundary and sigma_A is infinite."""
    fit = model.fit(n)
    if not (bool(fit.converged) and np.isfinite(fit.sigma_A)):
        empty = ": the window holds no events" if not np.any(n) else ""
        raise ValueError(
            "the signal fit in the window (or its profile at A = 0) did not converge "
            f"(A_hat {float(fit.A_hat):.4g}, "
            f"sigma_A {float(fit.sigma_A):.4g}){empty}"
        )
    return fit


def window_limits(cfg: Config, n, b, C, w, rng: np.random.Generator) -> dict[str, Any]:
    """A_hat, sigma_A, observed and expected limits, q0 of one blind window (``n`` None:
    blinded, expected limits only). The expected band draws its toys from ``rng`` before
    the observed toy limit does: it depends on the background model and the seed alone,
    blinded or not (drawn after it, a toy band moved with the observed counts).

    A toy limit that too few toys cannot resolve (:class:`UnresolvedToyLimit`) leaves
    ``A_up`` and ``A_up_err`` NaN and sets ``status``
    (:func:`~gprpipe.stats.quality.unresolved_status`): the
    fit, p0, Z_local and the expected band do not depend on it and are kept."""
    from gprpipe.stats.cls import calculator
    from gprpipe.stats.likelihood import WindowModel

    lim = cfg.limit
    model = WindowModel.from_covariance(b, C, w)
    toys: _ToyOptions = {
        "alpha": lim.alpha,
        "n_toys": lim.n_toys,
        "band_toys": lim.band_toys,
        "rng": rng,
    }
    bands = calculator(lim.bands, model, **toys)
    if n is None:
        return _band_row(bands)
    fit = converged_fit(model, n)
    band_row = _band_row(bands)
    z = float(significance.z_local(model.q0(n, fit)))  # draws no random numbers
    row: dict[str, Any] = {
        "A_hat": float(fit.A_hat),
        "sigma_A": float(fit.sigma_A),
        "p0_local": float(significance.p_local(z)),
        "Z_local": z,
    }
    try:
        a_up, a_up_err = calculator(lim.mode, model, **toys).upper_limit_with_error(n)
        row |= {"A_up": float(a_up), "A_up_err": float(a_up_err)}
    except UnresolvedToyLimit as exc:  # the config's to fix: say which key
        row |= {"A_up": np.nan, "A_up_err": np.nan, "status": unresolved_status(exc)}
    row.update(band_row)
    return row


def _band_row(bands: Calculator) -> dict[str, float]:
    """The expected band's columns: its five limits on A and their Monte Carlo error."""
    band, err = bands.expected_band_with_error()
    row = {f"A_exp_{k}": float(v) for k, v in zip(BAND_COLS, band)}
    return row | {"exp_band_rel_err": band_relative_error(band, err)}


def dataset_rows(
    cfg: Config, ctx, name: str, masses: Sequence[float] | np.ndarray, fit_path: Path
) -> list[dict]:
    """The scan rows of ``masses`` of dataset ``name`` from the fits in ``fit_path``."""
    ds = cfg.datasets[name]
    fit = read_fit(fit_path, name)
    by_mass = {round(float(m), 9): i for i, m in enumerate(fit["mass_GeV"])}
    all_masses = cfg.test_masses(name)
    rows: list[dict] = []
    for m in masses:
        ctx.progress(len(rows), len(masses), "masses")
        m = float(m)
        i = by_mass.get(round(m, 9))
        row: dict = {"dataset": name, "mass_GeV": m, "sigma_m_GeV": float(resolution(ds, m))}
        if i is None:
            rows.append({**row, "status": "no GP fit for this mass"})
            continue
        row.update({k: fit[k][i] for k in ("gp_length_scale", "gp_amplitude", "gp_lml")})
        row.update({k: fit[k][i] if k in fit else np.nan for k in ("gof_chi2_ndf", "gof_p")})
        row["gp_converged"] = bool(fit["gp_converged"][i])
        status = str(fit["status"][i])
        if not has_result(status):
            rows.append({**row, "status": status})
            continue
        index = int(np.argmin(np.abs(all_masses - m)))
        blind, attrs = read_blind(fit_path, name, index)
        rng = np.random.default_rng(seed_for(cfg.base.seed, "limit", name, m))
        w = blind[template_key(cfg)]
        try:
            n = None if cfg.base.blind else blind["n"]
            row.update(window_limits(cfg, n, blind["b"], blind["C"], w, rng))
        except NegativeSignalTemplate:  # likewise (a leakage-aware template below 0)
            rows.append({**row, "status": NEGATIVE_TEMPLATE})
            continue
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            rows.append({**row, "status": f"{LIMIT_FAILED}: {exc}"})
            continue
        k = float(
            eps2_from_A(
                1.0, m, float(f_rad(m, ds.frad_coeffs, ds.frad_penalty)), float(attrs["rho"])
            )
        )
        if "A_up" in row:
            row["eps2_up"] = row["A_up"] * k
            row["eps2_up_err"] = row["A_up_err"] * k
        row.update({f"eps2_exp_{b}": row[f"A_exp_{b}"] * k for b in BAND_COLS})
        shown = ("A_up", "eps2_up") if "A_up" in row else ("A_exp_med", "eps2_exp_med")
        finite = np.isfinite([row[c] for c in shown])  # blinded: the expected limit
        if "status" in row:  # the observed toy limit alone is unresolved (window_limits)
            status = flag_over_unresolved(status, row["status"])
        elif not finite[0]:
            status = f"{LIMIT_FAILED}: the upper limit is not finite"
        elif not finite[1]:  # eps^2 per signal event scales with 1 / rho
            status = (
                f"{LIMIT_FAILED}: no eps^2 limit (the window's background density rho is 0: "
                "no events near this mass to convert A into eps^2)"
            )
        row["status"] = status
        rows.append(row)
    return rows


def _to_arrays(rows: list[dict], names: Sequence[str]) -> dict[str, np.ndarray]:
    cols = {}
    for c in names:
        if c == "dataset":
            continue
        if c == "blinded":
            cols[c] = np.ones(len(rows), dtype=bool)
            continue
        vals = [r.get(c, float("nan")) for r in rows]
        if c == "status":
            cols[c] = np.array([str(v) for v in vals])
        elif c == "gp_converged":
            cols[c] = np.array([bool(v) if v == v else False for v in vals])
        else:
            cols[c] = np.array(vals, dtype=float)
    return cols


def run(ctx) -> None:
    cfg, part = ctx.config, ctx.task.part
    if part == MERGE:
        merge(ctx)
        return
    from gprpipe.steps import lee

    if part in lee.toy_parts(cfg):
        lee.run_part(ctx, part)
        return
    name, masses = mass_parts(cfg)[part]
    if name == COMBINED:
        from gprpipe.steps.combine import combined_rows

        rows = combined_rows(cfg, ctx, masses)
    else:
        # the fit chunk of the same masses (see pipeline.plan), not the merged fit.h5
        rows = dataset_rows(cfg, ctx, name, masses, ctx.layout.part("fit", part))
    with write_h5(ctx.layout.part("limit", part), ctx.attrs()) as f:
        write_group(f.create_group(name), _to_arrays(rows, columns(cfg)))


def global_significance(cfg: Config, name: str, arrays: dict[str, np.ndarray]) -> None:
    """p0_global and Z_global from the Sidak correction with N_eff of the scan (blinded:
    N_eff alone).

    Only ``ok`` rows get a global significance; flagged rows (background model failed a
    quality check) keep their local numbers but get NaN here: they are no discovery.
    """
    if name == COMBINED:  # smallest resolution among the datasets covering each mass
        masses = arrays["mass_GeV"]
        sigmas = arrays["sigma_m_GeV"]
    else:
        masses = cfg.test_masses(name)
        sigmas = resolution(cfg.datasets[name], masses)
    neff = significance.n_eff(masses, sigmas, cfg.fit.blind_nsigma)
    arrays["n_eff"] = np.full(len(arrays["mass_GeV"]), neff)  # (blinded too: no data in it)
    if cfg.base.blind:
        return
    p = significance.p_global_sidak(arrays["p0_local"], neff)
    use = counts_for_discovery(arrays["status"])
    arrays["p0_global"] = np.where(use, p, np.nan)
    arrays["Z_global"] = np.where(
        use, np.minimum(significance.z_from_p(p), arrays["Z_local"]), np.nan
    )


def scan_summary(name: str, arrays: dict[str, np.ndarray]) -> str:
    """One line per dataset: rows ok / flagged (by flag) / failed, and the largest local
    significance among the ``ok`` rows with its global significance (not when blinded)."""
    status = arrays["status"].astype(str)
    ok = counts_for_discovery(status)
    flagged = np.array([is_flagged(s) for s in status], dtype=bool)
    by_flag: dict[str, int] = {}
    for s in status[flagged]:
        for f in flags_of(s):
            by_flag[f] = by_flag.get(f, 0) + 1
    detail = f" ({', '.join(f'{k} {v}' for k, v in by_flag.items())})" if by_flag else ""
    line = (
        f"{name}: {len(status)} mass{'es' * (len(status) != 1)}, {int(ok.sum())} ok, "
        f"{int(flagged.sum())} flagged"
        f"{detail}, {int((~ok & ~flagged).sum())} failed"
    )
    if "Z_local" not in arrays:
        return line + "; blinded"
    z = np.where(ok, arrays["Z_local"], np.nan)
    if np.isfinite(z).any():
        j = int(np.nanargmax(z))
        line += (
            f"; max Z_local {z[j]:.2f} at {arrays['mass_GeV'][j] * 1e3:g} MeV "
            f"(Z_global {arrays['Z_global'][j]:.2f}, ok rows only)"
        )
    return line


def scan_csv(per_ds: dict[str, dict[str, np.ndarray]], names: Sequence[str] = COLUMNS) -> str:
    return csv_text(per_ds, names)


def merge(ctx) -> None:
    from gprpipe.steps import lee

    cfg = ctx.config
    toys = set(lee.toy_parts(cfg))
    toy_paths = [p for p in ctx.task.inputs if p.stem in toys]
    per_ds = collect([p for p in ctx.task.inputs if p.stem not in toys])
    if not per_ds:
        raise GprpipeError(f"{ctx.layout.point_dir}: no limit results to merge.")
    order = [*cfg.scanned(), COMBINED]
    per_ds = {k: per_ds[k] for k in order if k in per_ds}
    for name, arrays in per_ds.items():
        global_significance(cfg, name, arrays)
        print(scan_summary(name, arrays), flush=True)
    dists = lee.merge_global(cfg, per_ds, toy_paths)
    with write_h5(ctx.layout.limit, ctx.attrs()) as f:
        for name, arrays in per_ds.items():
            g = f.create_group(name)
            write_group(g, arrays)
            if name in dists:
                lee.write_global(g, *dists[name])
    atomic_write_text(ctx.layout.scan_csv, scan_csv(per_ds, columns(cfg)))
