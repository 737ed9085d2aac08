"""The combined (shared eps^2) rows of the limit step, and loading of combined windows.

At each mass covered by two or more scanned datasets, the blind windows stored in
``fit.h5`` are concatenated (:mod:`gprpipe.stats.combine`) and fitted with one eps^2.

Units of a ``dataset = "combined"`` row of ``scan.csv``: the ``eps2_*`` columns are the
combined eps^2 results; the ``A_*`` columns (``A_hat``, ``sigma_A``, ``A_up``, ``A_exp_*``)
hold the same results as a *total signal yield summed over the combined datasets*,
``A = eps2 * sum_d K_d`` with ``K_d = A_d(eps^2 = 1)`` (so ``A_hat / sigma_A`` and every
ratio are unit-free and directly comparable with single datasets). ``sigma_m_GeV`` is the
smallest resolution among the combined datasets (the one used for the global p-value; of
a row with fewer than two, among the datasets covering its mass);
GP hyperparameter columns are NaN and ``gp_converged`` is true only if every dataset's
fit at that mass converged. A combined row carries the union of the quality flags of its
datasets' fits (``gof_chi2_ndf``, ``gof_p``: those of the worst-fitting dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gprpipe.config.schema import Config
from gprpipe.stats.cls import UnresolvedToyLimit
from gprpipe.stats.combine import Block, combine, combined_limits, unit_yield
from gprpipe.stats.quality import (
    FLAG_DATASET_LEFT_OUT,
    flag_over_unresolved,
    flag_status,
    flags_of,
    has_result,
    unresolved_status,
)
from gprpipe.stats.resolution import f_rad
from gprpipe.steps.fit import read_blind, read_fit, resolution, template_key
from gprpipe.steps.runner import seed_for
from gprpipe.units import same_mass

BAND_COLS = ("lo2", "lo1", "med", "hi1", "hi2")


def covering(cfg: Config, mass: float) -> list[str]:
    """Scanned datasets whose test masses include ``mass``."""
    return [d for d in cfg.scanned() if same_mass(cfg.test_masses(d), mass).any()]


def fitted_rows(cfg: Config, fit_path: Path, mass: float, fits: dict) -> dict[str, int | None]:
    """Each dataset covering ``mass`` -> the row of its usable GP fit there in ``fit.h5``
    (None: no usable fit; the combination leaves it out). ``fits`` caches
    :func:`read_fit` arrays per dataset."""
    out: dict[str, int | None] = {}
    for d in covering(cfg, mass):
        if d not in fits:
            try:
                fits[d] = read_fit(fit_path, d)
            except KeyError:
                fits[d] = None
        fa = fits[d]
        i = None if fa is None else np.flatnonzero(same_mass(fa["mass_GeV"], mass))
        usable = i is not None and len(i) and has_result(fa["status"][i[0]])
        out[d] = int(i[0]) if usable and i is not None else None
    return out


def load_blocks(
    cfg: Config, fit_path, mass: float, fits: dict | None = None, quality: dict | None = None
) -> tuple[list[Block], list[str], bool]:
    """The blind windows of every dataset covering ``mass`` whose GP fit is usable.

    Returns ``(blocks, problems, all_converged)``; ``problems`` names the datasets left out.
    ``fits`` caches :func:`read_fit` arrays per dataset across calls; ``quality`` (if given)
    receives the ``status``, ``gof_p`` and ``gof_chi2_ndf`` of the used fits as lists.
    The template is the one ``fit.signal_leakage`` selects (``w_eff`` or ``w``).
    """
    fits = {} if fits is None else fits
    quality = {} if quality is None else quality
    blocks, problems, conv = [], [], True
    for d, i in fitted_rows(cfg, fit_path, mass, fits).items():
        fa = fits[d]
        if i is None:
            problems.append(d)
            continue
        conv &= bool(fa["gp_converged"][i])
        for key in ("status", "gof_p", "gof_chi2_ndf"):
            quality.setdefault(key, []).append(fa[key][i] if key in fa else np.nan)
        index = int(np.argmin(np.abs(cfg.test_masses(d) - mass)))
        blind, attrs = read_blind(fit_path, d, index)
        ds = cfg.datasets[d]
        k = unit_yield(
            mass, float(f_rad(mass, ds.frad_coeffs, ds.frad_penalty)), float(attrs["rho"])
        )
        # blinded: no observed counts; the Asimov n = b stands in (only expected limits run)
        blocks.append(
            Block(
                blind.get("n", blind["b"]), blind["b"], blind["C"], blind[template_key(cfg)], k, d
            )
        )
    return blocks, problems, conv


def combined_rows(cfg: Config, ctx, masses: Sequence[float] | np.ndarray) -> list[dict]:
    """One ``combined`` row per mass (limit-step COLUMNS; units in the module docstring)."""
    lim = cfg.limit
    fits: dict = {}
    rows: list[dict] = []
    for m in masses:
        ctx.progress(len(rows), len(masses), "masses")
        m = float(m)
        quality: dict = {}
        blocks, problems, conv = load_blocks(cfg, ctx.layout.fit, m, fits, quality)
        # among the combined datasets, not those left out (a review); of a row that
        # combines none, among those covering the mass
        names = [b.name for b in blocks] if len(blocks) >= 2 else covering(cfg, m)
        sig = min(float(resolution(cfg.datasets[d], m)) for d in names) if names else np.nan
        row: dict = {
            "dataset": "combined",
            "mass_GeV": m,
            "sigma_m_GeV": sig,
            "gp_length_scale": np.nan,
            "gp_amplitude": np.nan,
            "gp_lml": np.nan,
        }
        row["gp_converged"] = conv  # of the fits it combines (problems: the flag says)
        if blocks:
            j = int(np.nanargmin(quality["gof_p"])) if np.isfinite(quality["gof_p"]).any() else 0
            row["gof_p"], row["gof_chi2_ndf"] = quality["gof_p"][j], quality["gof_chi2_ndf"][j]
        if len(blocks) < 2:
            why = f" (no usable fit: {', '.join(problems)})" if problems else ""
            rows.append({**row, "status": f"fewer than two datasets to combine{why}"})
            continue
        rng = np.random.default_rng(seed_for(cfg.base.seed, "limit", "combined", m))
        unresolved: UnresolvedToyLimit | None = None
        try:
            cw = combine(blocks)
            r = combined_limits(
                cw,
                alpha=lim.alpha,
                mode=lim.mode,
                bands=lim.bands,
                n_toys=lim.n_toys,
                band_toys=lim.band_toys,
                rng=rng,
                observed=not cfg.base.blind,
            )
        except UnresolvedToyLimit as exc:  # the config's to fix: say which key
            if not exc.partial:
                rows.append({**row, "status": unresolved_status(exc, combined=True)})
                continue
            # the observed limit alone: the fit, Z and expected band stand (window_limits)
            r, unresolved = exc.partial, exc
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            rows.append({**row, "status": f"combined limit failed: {exc}"})
            continue
        k = cw.k_total
        if not cfg.base.blind:
            up, up_err = (
                (np.nan, np.nan) if unresolved is not None else (r["eps2_up"], r["eps2_up_err"])
            )
            row.update(
                {
                    "A_hat": r["eps2_hat"] * k,
                    "sigma_A": r["sigma_eps2"] * k,
                    "A_up": up * k,
                    "A_up_err": up_err * k,
                    "eps2_up": up,
                    "eps2_up_err": up_err,
                    "p0_local": r["p0_local"],
                    "Z_local": r["Z_local"],
                }
            )
        for b, v in zip(BAND_COLS, np.asarray(r["eps2_exp"])):
            row[f"eps2_exp_{b}"] = float(v)
            row[f"A_exp_{b}"] = float(v) * k
        row["exp_band_rel_err"] = r["exp_band_rel_err"]
        flags = [f for s in quality["status"] for f in flags_of(s)]
        row["status"] = flag_status(flags + ([FLAG_DATASET_LEFT_OUT] if problems else []))
        if unresolved is not None:
            failed = unresolved_status(unresolved, combined=True)
            row["status"] = flag_over_unresolved(row["status"], failed)
        elif not np.isfinite(row["eps2_exp_med" if cfg.base.blind else "eps2_up"]):
            row["status"] = "combined limit failed: the upper limit is not finite"
        rows.append(row)
    return rows
