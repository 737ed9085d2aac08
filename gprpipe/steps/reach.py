"""Combination bookkeeping (plot step) and ``gprpipe project-reach`` (see
:mod:`gprpipe.stats.reach` for the relations used).

Per dataset, ``sigma_eps2 = sigma_A / K`` with ``K = A_up / eps2_up`` (the signal yield per
unit eps^2 of that row of ``scan.csv``).

* ``combination.csv`` (plot step, when ``scan.csv`` has ``combined`` rows): per combined
  mass and dataset, ``sigma_eps2``, ``info_fraction`` (1/sigma^2 weights), ``eps2_5sigma``
  (5 times the joint fit's sigma_eps2: the eps^2 the combination sees at 5 sigma on
  average), ``A_5sigma`` (that eps^2 in signal events of the dataset), ``Z_needed_5sigma``
  (the Z that dataset alone sees then, ``eps2_5sigma / sigma_eps2``), ``eps2_exp_med``;
  rows ``combined`` give the joint fit's numbers and ``ratio_to_best_single`` (combined
  expected limit / best single dataset's). ``allocation.csv`` holds the rows at
  ``plot.allocation_masses``; plots ``information_fraction`` and ``signal_allocation``.
* ``project-reach``: ``<point>/reach/reach.csv`` and ``reach.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gprpipe.config.schema import FIGURE_FORMATS, Config
from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import atomic_write_text, inside
from gprpipe.pipeline.cache import vouched_for
from gprpipe.plotting.style import save
from gprpipe.results.schema import COMBINATION, COMBINED, reach_table, rows_csv
from gprpipe.stats.quality import unresolved_rows
from gprpipe.stats.reach import combine_inverse_variance, information_fractions, project
from gprpipe.steps.report import refresh_reports
from gprpipe.units import same_mass

Z_DISCOVERY = 5.0


def _usable(status: np.ndarray) -> np.ndarray:
    """Rows with a fit and an expected limit: ``ok``, or only the observed toy limit was
    unresolved (none of the columns used here depends on the observed limit)."""
    return (status == "ok") | unresolved_rows(status)


def _matrix(scan: dict, names: list[str], masses: np.ndarray, key: str) -> np.ndarray:
    """``(D, M)`` array of column ``key`` (``sigma_eps2``: derived) on the mass grid. The
    yield per unit eps^2, K, is A_up / eps2_up, or A_exp_med / eps2_exp_med (the same
    conversion) where the observed limit is unresolved."""
    out = np.full((len(names), len(masses)), np.nan)
    for i, n in enumerate(names):
        a = scan[n]
        ok = _usable(a["status"])
        # (a blinded limit.h5 has no observed columns: K from the expected limits)
        observed = np.isfinite(a.get("A_up", np.nan)) & np.isfinite(a.get("eps2_up", np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            if key == "sigma_eps2":
                v = np.where(
                    observed,
                    a["sigma_A"] * a.get("eps2_up", np.nan) / a.get("A_up", np.nan),
                    a["sigma_A"] * a["eps2_exp_med"] / a["A_exp_med"],
                )
            elif key == "k_unit":
                v = np.where(
                    observed,
                    a.get("A_up", np.nan) / a.get("eps2_up", np.nan),
                    a["A_exp_med"] / a["eps2_exp_med"],
                )
            else:
                v = a[key]
        idx = np.searchsorted(masses, np.round(a["mass_GeV"], 9))
        out[i, idx[ok]] = v[ok]
    return out


def _grid(scan: dict, names: list[str]) -> np.ndarray:
    return np.unique(np.round(np.concatenate([scan[n]["mass_GeV"] for n in names]), 9))


def combination_table(scan: dict, names: list[str]) -> list[list]:
    """``combination.csv`` rows (:data:`~gprpipe.results.schema.COMBINATION`) at the
    masses with an ``ok`` combined row."""
    c = scan[COMBINED]
    masses = _grid(scan, [*names, COMBINED])
    sig = _matrix(scan, names, masses, "sigma_eps2")
    k = _matrix(scan, names, masses, "k_unit")
    exp = _matrix(scan, names, masses, "eps2_exp_med")
    frac = information_fractions(sig)
    csig = _matrix(scan, [COMBINED], masses, "sigma_eps2")[0]
    cexp = _matrix(scan, [COMBINED], masses, "eps2_exp_med")[0]
    rows: list[list] = []
    ok_c = np.round(c["mass_GeV"][_usable(c["status"])], 9)
    for j, m in enumerate(masses):
        if m not in ok_c:
            continue
        e5 = Z_DISCOVERY * csig[j]
        best = np.nanmin(exp[:, j])
        for i, n in enumerate(names):
            if not np.isfinite(sig[i, j]):
                continue
            rows.append(
                [n, m, sig[i, j], frac[i, j], e5, e5 * k[i, j], e5 / sig[i, j], exp[i, j], np.nan]
            )
        ktot = np.nansum(np.where(np.isfinite(sig[:, j]), k[:, j], np.nan))
        rows.append(
            [COMBINED, m, csig[j], 1.0, e5, e5 * ktot, Z_DISCOVERY, cexp[j], cexp[j] / best]
        )
    return rows


def _allocation_masses(cfg: Config, combined_masses: np.ndarray) -> list[float]:
    if cfg.plot.allocation_masses:
        want = cfg.plot.allocation_masses
    else:
        n = len(combined_masses)
        want = [combined_masses[round(q * (n - 1))] for q in (0.1, 0.5, 0.9)] if n else []
    out: list[float] = []
    for w in want:
        i = int(np.argmin(np.abs(combined_masses - w)))
        if same_mass(combined_masses[i], w) and float(combined_masses[i]) not in out:
            out.append(float(combined_masses[i]))
    return out


def combination_products(cfg: Config, lay, formats) -> list[Path]:
    """``combination.csv``, ``allocation.csv`` and their plots (needs combined rows)."""
    from gprpipe.plotting.reach import allocation_figure, information_figure
    from gprpipe.steps.limit import read_scan

    scan = read_scan(lay.limit)
    if COMBINED not in scan or not _usable(scan[COMBINED]["status"]).any():
        return []
    names = [n for n in scan if n != COMBINED]
    labels = [cfg.datasets[n].label or n for n in names]
    rows = combination_table(scan, names)
    written = []
    target = lay.combination_csv
    atomic_write_text(target, rows_csv(COMBINATION, rows))
    written.append(target)
    cm = np.array(sorted({r[1] for r in rows}))
    frac = np.full((len(names), len(cm)), np.nan)
    zn = np.full_like(frac, np.nan)
    yields = np.full_like(frac, np.nan)
    e5 = np.full(len(cm), np.nan)
    for r in rows:
        j = int(np.searchsorted(cm, r[1]))
        e5[j] = r[4]
        if r[0] != COMBINED:
            i = names.index(r[0])
            frac[i, j], yields[i, j], zn[i, j] = r[3], r[5], r[6]
    title = f"{cfg.base.name}: combination"
    written += save(
        information_figure(cm, labels, frac, zn, title), lay.plots, "information_fraction", formats
    )
    chosen = _allocation_masses(cfg, cm)
    if chosen:
        sel = [r for r in rows if r[1] in chosen]
        target = lay.allocation_csv
        atomic_write_text(target, rows_csv(COMBINATION, sel))
        written.append(target)
        idx = [int(np.searchsorted(cm, m)) for m in chosen]
        written += save(
            allocation_figure(chosen, labels, yields[:, idx], zn[:, idx], e5[idx], title),
            lay.plots,
            "signal_allocation",
            formats,
        )
    return written


# --------------------------------------------------------------------------------------
# project-reach
# --------------------------------------------------------------------------------------
MAX_SCALE = 1e6  # a million times the data: beyond any projection, and no overflow
MIN_SCALE = 1e-6  # a millionth: beyond any projection (a subnormal factor gave NaN columns)


def parse_scale(text: str, names: Sequence[str], where: str) -> dict[str, float]:
    """``"2015=1,2016=10"`` -> factors; one-sentence errors naming the dataset or factor."""
    out: dict[str, float] = {}
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep:
            raise GprpipeError(f"--scale {item!r}: expected DATASET=FACTOR, e.g. 2016=10.")
        if key == "combined":  # its rows are the joint fit, not a dataset to scale
            raise GprpipeError(
                f"--scale {item!r}: 'combined' is the joint fit of the datasets, not one "
                f"to scale; scale the datasets (have: {', '.join(names)})."
            )
        if key not in names:
            raise GprpipeError(
                f"{where}: --scale names dataset {key!r}, which is not in "
                f"scan.csv (have: {', '.join(names)})."
            )
        try:
            f = float(val)
        except ValueError:
            f = float("nan")
        if not (np.isfinite(f) and MIN_SCALE <= f <= MAX_SCALE):
            raise GprpipeError(
                f"--scale {item!r}: the luminosity factor of {key!r} must be a number from "
                f"{MIN_SCALE:g} to {MAX_SCALE:g}."
            )
        if key in out:
            raise GprpipeError(f"--scale names dataset {key!r} twice; give its factor once.")
        out[key] = f
    if not out:
        raise GprpipeError("--scale: give at least one DATASET=FACTOR, e.g. 2016=10.")
    return out


def project_reach(
    run_dir: Path, scale: str, *, point: str | None = None, formats: Sequence[str] | None = None
) -> tuple[list[Path], dict]:
    """Write ``reach/reach.csv`` and ``reach/reach.<fmt>`` of a run's point (``formats``:
    the point's ``plot.formats`` unless given)."""
    from gprpipe.pipeline.commit import record_export
    from gprpipe.pipeline.plan import Layout
    from gprpipe.plotting.reach import reach_figure
    from gprpipe.plotting.style import apply_style, set_labels
    from gprpipe.steps.export import (
        checked_point_dir,
        point_config_of,
        source_digests,
        unchanged_sources,
    )
    from gprpipe.steps.limit import read_scan

    pdir = checked_point_dir(Path(run_dir), point)
    lay = Layout(pdir)
    read = source_digests(pdir)
    if not lay.limit.exists():
        raise GprpipeError(f"{pdir}: no limit.h5 (run the limit step first).")
    cfg = point_config_of(pdir)
    formats = list(cfg.plot.formats if formats is None else formats)
    scan = read_scan(vouched_for(lay.limit, cfg))
    names = [n for n in scan if n != COMBINED]
    factors = {n: 1.0 for n in names} | parse_scale(scale, names, str(lay.scan_csv))
    masses = _grid(scan, names)
    now = _matrix(scan, names, masses, "eps2_exp_med")
    fac = np.array([factors[n] for n in names])
    proj, comb_proj = project(now, fac)
    comb_now = combine_inverse_variance(now)
    comb_fit = (
        _matrix(scan, [COMBINED], masses, "eps2_exp_med")[0]
        if COMBINED in scan
        else np.full(len(masses), np.nan)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        projected = np.isfinite(comb_now / comb_proj)
    if not projected.any():  # nothing to project: no table of NaN, no empty figure
        raise GprpipeError(
            f"{lay.scan_csv}: no mass with an expected limit to project (each of its "
            f"{len(masses)} mass{'es' * (len(masses) != 1)} failed or is flagged)."
        )
    rows = [
        [m, *now[:, j], *proj[:, j], comb_now[j], comb_proj[j], comb_fit[j]]
        for j, m in enumerate(masses)
    ]
    out = inside(pdir / "reach", pdir, "the reach folder")
    target = out / "reach.csv"
    # all of them or none (an interrupted write must not leave one beside an earlier other);
    # recorded like an export: a later config's results must not show them as theirs
    products = [target, *(out / f"reach.{fmt}" for fmt in formats)]
    try:
        atomic_write_text(target, rows_csv(reach_table(names), rows))
        apply_style(cfg.plot.style)
        set_labels(cfg.plot.experiment, cfg.plot.status, cfg.base.blind)
        labels = [cfg.datasets[n].label or n if n in cfg.datasets else n for n in names]
        scale_txt = ", ".join(f"{n} x{factors[n]:g}" for n in names)
        fig = reach_figure(
            masses,
            labels,
            now,
            proj,
            comb_now,
            comb_proj,
            fac,
            f"{cfg.base.name}: projected reach ({scale_txt})",
            comb_fit if np.isfinite(comb_fit).any() else None,
        )
        written = [target, *save(fig, out, "reach", formats)]
        unchanged_sources(pdir, read)
        # an earlier projection's figure in a format not drawn this time
        gone = [out / f"reach.{f}" for f in FIGURE_FORMATS if f not in formats]
        gone = [p for p in gone if p.is_file() and not p.is_symlink()]
        for old in gone:
            old.unlink()
        # (a blinded limit.h5 holds expected limits alone: the reach of it is no
        # export of observed counts)
        record_export(
            pdir, written, lay.limit, read[lay.limit], observed=not cfg.base.blind, forget=gone
        )
    except BaseException:
        for path in products:
            path.unlink(missing_ok=True)
        raise
    refresh_reports(pdir, written)
    both = np.isfinite(comb_fit) & np.isfinite(comb_now)
    summary = {
        "factors": factors,
        "n_masses": int(projected.sum()),  # with a projection (a failed mass has none)
        "n_left_out": int((~projected).sum()),
        "ivw_over_fit_median": float(np.median(comb_now[both] / comb_fit[both]))
        if both.any()
        else float("nan"),
        "gain_median": float(np.median(comb_now[projected] / comb_proj[projected])),
    }
    return written, summary
