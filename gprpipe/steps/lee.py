"""Toy-based look-elsewhere correction (``limit.global_toys``), run as parts of ``limit``.

Tasks ``<dataset>-toys-<k>`` scan ``limit.global_toys_chunk`` background-only
whole-spectrum toys each over every mass with that mass's GP as a fixed linear map
(:mod:`gprpipe.stats.lee`); tasks ``<dataset>-refit-<k>`` refit the GP at every mass on a
few of the same toys (``limit.global_toys_refit``), to show the size of the fixed-map
approximation. The limit merge takes the maximum ``Z_local`` per toy over the masses
searched on the data (rows ``ok``, or whose observed toy limit alone was unresolved:
:func:`~gprpipe.stats.quality.searched_rows`) and writes ``p0_global_toys`` (with its binomial error
``p0_global_toys_err``), ``Z_global_toys`` and the
distributions (``/<dataset>/global_toys/`` in ``limit.h5``).

Toy ``t`` of a dataset is drawn from ``seed_for(base.seed, "global_toys", dataset, t)``, so
it does not depend on the chunking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import h5py
import numpy as np

from gprpipe.config.schema import Config
from gprpipe.io.hdf5 import open_h5, read_group, write_group, write_h5
from gprpipe.pipeline.plan import toy_parts
from gprpipe.results.schema import (
    COMBINED,
    read_global,  # noqa: F401  (re-exported for callers)
    read_load,
)
from gprpipe.steps.fit import read_blind, read_fit, resolution
from gprpipe.steps.runner import seed_for
from gprpipe.units import same_mass


def leakage_modelled(cfg: Config) -> bool:
    """Whether the likelihood uses the leakage-aware template (``fit.signal_leakage``)."""
    from gprpipe.steps.fit import template_key

    return template_key(cfg) == "w_eff"


@dataclass
class ScanSetup:
    """Per dataset: the data, every mass's refit setup and fixed map (None if not ok)."""

    masses: np.ndarray
    counts: np.ndarray
    edges: np.ndarray
    setups: list
    maps: list


def scan_setup(
    cfg: Config, layout, name: str, *, maps: bool = True, only: np.ndarray | None = None
) -> ScanSetup:
    """Fixed maps (and refit setups) of every mass of ``name`` whose fit is ``ok`` (of
    those among ``only``, if given; None elsewhere)."""
    from gprpipe.stats.gp import GPHyper
    from gprpipe.stats.lee import fixed_map
    from gprpipe.stats.template import signal_template
    from gprpipe.steps.fit import MassFit
    from gprpipe.steps.inject import Window, refit_setup

    counts, edges = read_load(layout.load, name)
    centres = 0.5 * (edges[1:] + edges[:-1])
    fa = read_fit(layout.fit, name)
    all_m = cfg.test_masses(name)
    setups: list = []
    fmaps: list = []
    ds = cfg.datasets[name]
    for i, m in enumerate(fa["mass_GeV"]):
        m = float(m)
        if fa["status"][i] != "ok" or (only is not None and not same_mass(only, m).any()):
            setups.append(None)
            fmaps.append(None)
            continue
        hyper = GPHyper.from_arrays(fa, i)
        index = int(np.argmin(np.abs(all_m - m)))
        blind, attrs = read_blind(layout.fit, name, index)
        mf = MassFit(index, m, float(resolution(ds, m)), hyper, "ok", blind, float(attrs["rho"]))
        st = refit_setup(cfg, name, Window(mf, counts, edges))
        setups.append(st)
        if maps:
            w = signal_template(edges, m, st.masks.sigma)
            w_tr = w[st.train] if leakage_modelled(cfg) else None
            fmaps.append(fixed_map(centres, counts, st.train, st.blind, hyper, w[st.blind], w_tr))
        else:
            fmaps.append(None)
    return ScanSetup(np.asarray(fa["mass_GeV"], dtype=float), counts, edges, setups, fmaps)


def smooth_mean(cfg: Config, name: str, counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The toys' mean: a GP fit of the whole training range (every bin, no blind window),
    length scale bounded as at the median test mass; its posterior mean on every bin."""
    from gprpipe.stats.gp import GPOptions, fit_gp, length_scale_bounds, predict_counts, sigma_x

    ds = cfg.datasets[name]
    x = 0.5 * (edges[1:] + edges[:-1])
    tr = x > 0
    if ds.data_range is not None:
        tr &= (x >= ds.data_range[0]) & (x <= ds.data_range[1])
    all_m = cfg.test_masses(name)
    med = float(np.median(sigma_x(all_m, resolution(ds, all_m))))
    hi = ds.ls_hi_factor if ds.ls_hi_factor is not None else cfg.fit.ls_hi_factor
    bounds = length_scale_bounds(med, med, cfg.fit.ls_lo_factor, hi, ds.ls_floor_factor)
    seed = int(seed_for(cfg.base.seed, "global_toys_fit", name).generate_state(1)[0])
    hyper = fit_gp(
        x[tr], counts[tr], GPOptions(bounds, n_restarts=max(cfg.fit.n_restarts, 2)), seed=seed
    )
    mean = np.zeros(x.size)
    pos = x > 0
    mean[pos], _ = predict_counts(x[tr], counts[tr], x[pos], hyper)
    return mean


def toy_seeds(cfg: Config, name: str, start: int, stop: int) -> list[np.random.SeedSequence]:
    return [seed_for(cfg.base.seed, "global_toys", name, t) for t in range(start, stop)]


def dataset_toys(cfg: Config, name: str, ss: ScanSetup, start: int, stop: int) -> np.ndarray:
    """Whole-scan toys ``start..stop`` of dataset ``name`` (its own and the combination's)."""
    from gprpipe.stats.lee import poisson_toys

    mean = smooth_mean(cfg, name, ss.counts, ss.edges)
    return poisson_toys(mean, toy_seeds(cfg, name, start, stop))


def run_part(ctx, part: str) -> None:
    """One chunk of whole-scan toys (fixed maps) or of GP-refit toys."""
    from gprpipe.stats.lee import scan_fixed

    cfg = ctx.config
    kind, name, start, stop = toy_parts(cfg)[part]
    t0, c0 = time.perf_counter(), time.process_time()
    if name == COMBINED:
        masses, Z, conv = combined_scan(cfg, ctx.layout, start, stop)
    else:
        ss = scan_setup(cfg, ctx.layout, name, maps=kind == "toys")
        toys = dataset_toys(cfg, name, ss, start, stop)
        if kind == "toys":
            Z, conv = scan_fixed(ss.maps, toys)
        else:
            Z, conv = refit_scan(ss, toys, cfg, name, start)
        masses = ss.masses
    out = {"toy": np.arange(start, stop), "masses_GeV": masses, "Z_local": Z, "converged": conv}
    with write_h5(ctx.layout.part("limit", part), ctx.attrs()) as f:
        g = f.create_group(name)
        write_group(g, out)
        g.attrs.update(
            kind=kind, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0
        )


def combined_scan(
    cfg: Config, layout, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(masses, Z_local, converged)`` of the combination's toys ``start..stop`` at every
    combined mass: toy ``t`` of each dataset (the same toys as its own whole-scan toys)
    fitted jointly with one eps^2, each dataset's window through its fixed map. The
    datasets are those of the observed combination (:func:`load_blocks`, with their yields
    per unit eps^2); NaN at a mass where one of them has no fixed map (its fit is flagged:
    so is the combined row) or fewer than two remain."""
    from gprpipe.stats.lee import joint_map, log_counts, z_local_joint
    from gprpipe.steps.combine import load_blocks

    masses = cfg.combined_masses()
    setups, toys, logc = {}, {}, {}
    for name in cfg.scanned():
        ss = scan_setup(cfg, layout, name, only=masses)
        setups[name] = ss
        toys[name] = dataset_toys(cfg, name, ss, start, stop).astype(float)
        logc[name] = log_counts(toys[name])
    Z = np.full((stop - start, len(masses)), np.nan)
    conv = np.zeros(Z.shape, dtype=bool)
    fits: dict = {}
    for j, m in enumerate(masses):
        blocks, _, _ = load_blocks(cfg, layout.fit, float(m), fits)
        names = [b.name for b in blocks]
        maps = [setups[n].maps[int(np.argmax(same_mass(setups[n].masses, m)))] for n in names]
        if len(maps) < 2 or any(fm is None for fm in maps):
            continue
        try:  # as the observed combined row: a window that cannot be fitted stays NaN
            jm = joint_map(maps, [b.k_unit for b in blocks])
            Z[:, j], conv[:, j] = z_local_joint(
                jm, [toys[n] for n in names], [logc[n] for n in names]
            )
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
    return masses, Z, conv


def refit_scan(
    ss: ScanSetup, toys: np.ndarray, cfg: Config, name: str, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """``Z_local`` of each toy at every mass with the GP refitted on the toy's sidebands
    (warm-started from the data fit); ``converged`` is the GP refit's flag."""
    from gprpipe.stats import significance
    from gprpipe.stats.leakage import leakage_template
    from gprpipe.stats.likelihood import WindowModel
    from gprpipe.stats.quality import window_determined
    from gprpipe.stats.template import signal_template

    leak = leakage_modelled(cfg)
    x = 0.5 * (ss.edges[1:] + ss.edges[:-1])
    T = toys.shape[0]
    Z = np.full((T, len(ss.setups)), np.nan)
    conv = np.zeros((T, len(ss.setups)), dtype=bool)
    for j, st in enumerate(ss.setups):
        if st is None:
            continue
        w_full = signal_template(ss.edges, st.masks.mass, st.masks.sigma)
        tr, bl = st.train, st.blind
        for t in range(T):
            seed = int(
                seed_for(
                    cfg.base.seed, "global_toys_refit", name, start + t, float(ss.masses[j])
                ).generate_state(1)[0]
            )
            try:
                wf = st.fit(toys[t].astype(float), seed)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if not window_determined(wf.b, wf.C):  # as the fit step fails such a mass
                continue
            w = w_full[bl]
            if leak:  # w_eff with the toy's own refitted map and counts
                w = leakage_template(
                    x[tr], toys[t][tr].astype(float), w_full[tr], x[bl], w, wf.b, wf.hyper
                )
            model = WindowModel.from_covariance(wf.b, wf.C, w)
            n = toys[t][st.blind].astype(float)
            f = model.fit(n)
            Z[t, j] = significance.z_local(model.q0(n, f))
            conv[t, j] = wf.hyper.converged and bool(f.converged)
    return Z, conv


def read_part(path) -> tuple[str, str, dict[str, np.ndarray], dict]:
    with open_h5(path) as f:
        name = next(iter(f))
        g = f[name]
        return name, str(g.attrs["kind"]), read_group(g), dict(g.attrs)


def merge_global(cfg: Config, per_ds: dict[str, dict[str, np.ndarray]], paths) -> dict:
    """Fill ``p0_global_toys`` / ``Z_global_toys`` of ``per_ds`` from the toy part files;
    returns the per-dataset distributions to store under ``global_toys``."""
    from gprpipe.stats import significance
    from gprpipe.stats.lee import max_z, p_global_toys, p_global_toys_err
    from gprpipe.stats.quality import counts_for_discovery, searched_rows

    out: dict = {}
    if cfg.base.blind:  # no observed column, these included (as in scan.csv)
        return out
    parts: dict[str, dict[str, list]] = {}
    for p in paths:
        name, kind, a, attrs = read_part(p)
        d = parts.setdefault(name, {"toys": [], "refit": []})
        d[kind].append((a, attrs))
    for name, arrays in per_ds.items():
        nan = np.full(len(arrays["mass_GeV"]), np.nan)
        arrays["p0_global_toys"], arrays["Z_global_toys"] = nan.copy(), nan.copy()
        arrays["p0_global_toys_err"] = nan.copy()
        arrays["p0_local_toys"], arrays["p0_local_toys_err"] = nan.copy(), nan.copy()
        arrays["frac_Z0_toys"], arrays["frac_Z0_toys_err"] = nan.copy(), nan.copy()
        if name not in parts or not parts[name]["toys"]:
            continue
        chunks = sorted(parts[name]["toys"], key=lambda x: int(x[0]["toy"][0]))
        masses = chunks[0][0]["masses_GeV"]
        Z = np.concatenate([c[0]["Z_local"] for c in chunks]).astype(float)
        conv = np.concatenate([c[0]["converged"] for c in chunks])
        # The masses searched on the data enter the maximum (not the flagged ones: no
        # discovery there), whatever the observed limit's method made of them.
        row = {round(float(m), 9): i for i, m in enumerate(arrays["mass_GeV"])}
        searched = searched_rows(arrays["status"])
        use = np.array(
            [
                row.get(round(float(m), 9)) is not None and bool(searched[row[round(float(m), 9)]])
                for m in masses
            ]
        )
        mz = max_z(Z, use)
        ok = counts_for_discovery(arrays["status"])
        p = np.where(ok, p_global_toys(arrays["Z_local"], mz), np.nan)
        arrays["p0_global_toys"] = p
        n_used = int(np.isfinite(mz).sum())  # toys with a maximum
        arrays["p0_global_toys_err"] = p_global_toys_err(p, n_used)
        arrays["Z_global_toys"] = np.where(
            ok, np.minimum(significance.z_from_p(np.where(ok, p, 1.0)), arrays["Z_local"]), np.nan
        )
        arrays["p0_local_toys"], arrays["p0_local_toys_err"] = p_local_toys(
            arrays["mass_GeV"], arrays["Z_local"], masses, Z
        )
        arrays["frac_Z0_toys"], arrays["frac_Z0_toys_err"] = zero_fraction_of_rows(
            arrays["mass_GeV"], masses, Z
        )
        dist = {
            "max_Z_local": mz,
            "toy_seconds": np.array([c[1]["seconds"] for c in chunks]),
            "toy_cpu_seconds": np.array([c[1]["cpu_seconds"] for c in chunks]),
        }
        attrs = {
            "n_toys": len(mz),
            "n_toys_with_max": n_used,
            "n_masses_used": int(use.sum()),
            "fit_not_converged": int(np.sum(~conv[:, use])),
            "n_eff": float(arrays["n_eff"][0]) if "n_eff" in arrays else np.nan,
        }
        refit = sorted(parts[name]["refit"], key=lambda x: int(x[0]["toy"][0]))
        if refit:
            Zr = np.concatenate([c[0]["Z_local"] for c in refit]).astype(float)
            idx = np.concatenate([c[0]["toy"] for c in refit])
            dist["max_Z_local_refit"] = max_z(Zr, use)
            dist["max_Z_local_fixed_same_toys"] = mz[idx]
            dist["Z_local_refit"] = Zr
            dist["Z_local_fixed_same_toys"] = Z[idx]
            attrs["refit_not_converged"] = int(
                np.sum(~np.concatenate([c[0]["converged"] for c in refit])[:, use])
            )
        out[name] = (dist, attrs)
    return out


def columns_of(mass: np.ndarray, toy_masses: np.ndarray) -> np.ndarray:
    """Per row mass, the index of the same mass among the toys' (-1: none)."""
    col = {round(float(m), 9): j for j, m in enumerate(toy_masses)}
    return np.array([col.get(round(float(m), 9), -1) for m in mass], dtype=int)


def p_local_toys(
    mass: np.ndarray, z_obs: np.ndarray, toy_masses: np.ndarray, z_toys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per observed row, the local p-value from the whole-scan toys at its mass and its
    binomial error: the asymptotic ``p0_local`` checked by the toys themselves (at the
    ends of a scan the two differ). NaN where the toys have no column for the mass or
    the row no Z; toys whose fit at the mass did not give a Z do not count."""
    from gprpipe.stats.lee import p_global_toys, p_global_toys_err

    p, err = np.full(len(mass), np.nan), np.full(len(mass), np.nan)
    for i, (j, z) in enumerate(zip(columns_of(mass, toy_masses), z_obs)):
        if j < 0 or not np.isfinite(z):
            continue
        zt = z_toys[:, j][np.isfinite(z_toys[:, j])]
        if zt.size:
            p[i] = p_global_toys(z, zt)  # one mass: the toys' local p-value
            err[i] = p_global_toys_err(p[i], zt.size)
    return p, err


def zero_fraction_of_rows(
    mass: np.ndarray, toy_masses: np.ndarray, z_toys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the whole-scan toys' ``Z_local = 0`` fraction at its mass and that
    fraction's error for unbiased toys (:func:`gprpipe.stats.lee.zero_fraction`); NaN
    where the toys have no column for the mass."""
    from gprpipe.stats.lee import zero_fraction

    frac, err = zero_fraction(z_toys)
    at = columns_of(mass, toy_masses)
    have = at >= 0
    out_f, out_e = np.full(len(mass), np.nan), np.full(len(mass), np.nan)
    out_f[have], out_e[have] = frac[at[have]], err[at[have]]
    return out_f, out_e


def write_global(group: h5py.Group, dist: dict[str, np.ndarray], attrs: dict) -> None:
    g = group.create_group("global_toys")
    write_group(g, dist)
    g.attrs.update(attrs)
