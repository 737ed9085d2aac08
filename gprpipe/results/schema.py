"""The results schema: every table and HDF5 group the steps write, defined once (columns,
units, meaning), with the readers and the CSV writer that steps, plots, the TUI and the
exports share.

Files (one HDF5 group per dataset, ``combined`` for a combination):

* ``load.h5``   :data:`LOAD`    binned spectrum
* ``fit.h5``    :data:`FIT`     GP fit per test mass, ``blind/<index>`` window arrays
* ``limit.h5`` / ``scan.csv``  :data:`SCAN` (blinded runs: :data:`BLIND_SCAN`; the HDF5
  file: :data:`SCAN_H5`), ``global_toys`` (:data:`GLOBAL_TOYS`, :data:`GLOBAL_TOYS_REFIT`)
* ``inject.h5`` / ``inject.csv``  :data:`INJECT` (the HDF5 file: :data:`INJECT_H5`),
  ``toys/<m>MeV_z<z>`` (:data:`INJECT_TOYS`)
* ``toyscan.h5`` / CSVs  :data:`TOYSCAN`, :data:`TOYSCAN_SUMMARY`
* ``compare/compare_<dataset>.csv``  :data:`COMPARE` (``gprpipe compare``)
* ``combination.csv``, ``allocation.csv``  :data:`COMBINATION`; ``reach/reach.csv``
  :func:`reach_table`

Masses and widths are in GeV in every file. Column names are part of the file contract
(``scan.csv`` and ``inject.csv`` are compared byte for byte across versions).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gprpipe.errors import GprpipeError
from gprpipe.io.atomic import open_regular, read_json
from gprpipe.io.hdf5 import open_h5, read_group, write_group

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Column:
    """One column: its name in every file, unit ("" dimensionless) and meaning."""

    name: str
    unit: str = ""
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """A table: where it is stored and its columns, in file order."""

    name: str
    where: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def unit(self, name: str) -> str:
        return {c.name: c.unit for c in self.columns}[name]

    def without(self, names: Sequence[str], extra: Sequence[Column] = ()) -> Table:
        """This table without ``names`` (plus ``extra`` columns at the end)."""
        return Table(
            self.name, self.where, (*(c for c in self.columns if c.name not in names), *extra)
        )


BAND_COLS = ("lo2", "lo1", "med", "hi1", "hi2")  # expected-limit bands N = -2, -1, 0, +1, +2
_BAND_DOC = dict(zip(BAND_COLS, ("-2 sigma", "-1 sigma", "median", "+1 sigma", "+2 sigma")))

COMBINED = "combined"  # the dataset name of a combination's rows
DATASET = Column("dataset", doc=f"dataset key, or {COMBINED!r}")
MASS = Column("mass_GeV", "GeV", "test mass m_A'")

LOAD = Table(
    "load",
    "load.h5 /<dataset>",
    (
        Column("edges", "GeV", "bin edges of m(e+e-)"),
        Column("counts", "events", "events per bin"),
    ),
)

FIT = Table(
    "fit",
    "fit.h5 /<dataset>",
    (
        MASS,
        Column("sigma_m_GeV", "GeV", "mass resolution at the test mass"),
        Column("gp_length_scale", "", "RBF length scale in ln-mass units (dimensionless)"),
        Column("gp_amplitude", "", "RBF amplitude (log-count units)"),
        Column("gp_lml", "", "log marginal likelihood"),
        Column("gp_converged", "", "optimiser converged"),
        Column("gp_reason", "", "optimiser message when not converged"),
        Column("gof_chi2_ndf", "", "sideband goodness of fit chi2/ndf near the window"),
        Column("gof_p", "", "goodness-of-fit p-value"),
        Column("gof_ndf", "", "goodness-of-fit degrees of freedom"),
        Column("n_train_lo", "", "training bins below the window"),
        Column("n_train_hi", "", "training bins above the window"),
        Column("status", "", "ok, a quality flag, or why the mass failed"),
    ),
)

SCAN = Table(
    "scan",
    "limit.h5 /<dataset>, scan.csv",
    (
        DATASET,
        MASS,
        Column("sigma_m_GeV", "GeV", "mass resolution"),
        Column("A_hat", "events", "fitted signal yield"),
        Column("sigma_A", "events", "its uncertainty"),
        Column("A_up", "events", "observed upper limit on the yield"),
        Column(
            "A_up_err",
            "events",
            "its Monte Carlo standard error (limit.mode = toys; NaN for asymptotic limits, "
            "a toy limit of 0, or no negative slope of ln CLs)",
        ),
        *(
            Column(f"A_exp_{b}", "events", f"expected yield limit, {_BAND_DOC[b]}")
            for b in BAND_COLS
        ),
        Column("eps2_up", "", "observed upper limit on eps^2"),
        Column("eps2_up_err", "", "its Monte Carlo standard error (as A_up_err)"),
        *(Column(f"eps2_exp_{b}", "", f"expected eps^2 limit, {_BAND_DOC[b]}") for b in BAND_COLS),
        Column(
            "exp_band_rel_err",
            "",
            "Monte Carlo standard error of the expected band (limit.bands = toys): the "
            "largest of its five positions', relative to that position's limit (the same "
            "in A and eps^2); NaN for asymptotic bands",
        ),
        Column("p0_local", "", "local p-value"),
        Column("Z_local", "sigma", "local significance"),
        Column("p0_global", "", "global p-value (Sidak, N_eff)"),
        Column("Z_global", "sigma", "global significance (Sidak)"),
        Column("p0_global_toys", "", "global p-value from whole-scan toys"),
        Column("p0_global_toys_err", "", "its binomial standard error, sqrt(p (1 - p) / N)"),
        Column("Z_global_toys", "sigma", "global significance from whole-scan toys"),
        Column(
            "p0_local_toys",
            "",
            "local p-value from the same toys at this mass, (1 + #{Z_toy >= Z_local}) / (1 + N'), "
            "N' the toys with a Z there",
        ),
        Column("p0_local_toys_err", "", "its binomial standard error"),
        Column(
            "frac_Z0_toys",
            "",
            "fraction of the same toys with Z_local = 0 at this mass: 0.5 for toys whose "
            "background each window's fit predicts without bias",
        ),
        Column(
            "frac_Z0_toys_err",
            "",
            "its binomial standard error for unbiased toys, 0.5 / sqrt(N'); more than 3 of "
            "them from 0.5: the toys' local p0 there is no clean check of the asymptotic one",
        ),
        Column("gp_length_scale", "", "RBF length scale in ln-mass units (dimensionless)"),
        Column("gp_amplitude", "", "RBF amplitude"),
        Column("gp_lml", "", "log marginal likelihood"),
        Column("gp_converged", "", "optimiser converged"),
        Column("gof_chi2_ndf", "", "goodness of fit chi2/ndf"),
        Column("gof_p", "", "goodness-of-fit p-value"),
        Column("status", "", "ok, a quality flag, or why the mass failed"),
    ),
)
# Columns that depend on the observed counts in the blind window (absent when blinded).
OBSERVED = (
    "A_hat",
    "sigma_A",
    "A_up",
    "A_up_err",
    "eps2_up",
    "eps2_up_err",
    "p0_local",
    "Z_local",
    "p0_global",
    "Z_global",
    "p0_global_toys",
    "p0_global_toys_err",
    "Z_global_toys",
    "p0_local_toys",
    "p0_local_toys_err",
    "frac_Z0_toys",
    "frac_Z0_toys_err",
)
BLIND_SCAN = SCAN.without(OBSERVED, (Column("blinded", "", "true: a blinded run"),))


def has_observed(columns: Iterable[str]) -> bool:
    """Whether a table with these columns holds observed quantities (a blinded one has
    none of :data:`OBSERVED`)."""
    return not set(OBSERVED).isdisjoint(columns)


#: ``limit.h5 /<dataset>``: the scan's columns and what only the HDF5 file holds
SCAN_H5 = SCAN.without(
    (), (Column("n_eff", "", "Sidak effective number of independent test masses"),)
)

GLOBAL_TOYS = Table(
    "global_toys",
    "limit.h5 /<dataset>/global_toys",
    (
        Column("max_Z_local", "sigma", "largest local Z of each whole-scan toy (NaN: none)"),
        Column("toy_seconds", "s", "wall time per toy chunk"),
        Column("toy_cpu_seconds", "s", "CPU time per toy chunk"),
    ),
)
#: with ``limit.global_toys_refit``: toys whose GP was refitted, beside the fixed-GP ones
GLOBAL_TOYS_REFIT = GLOBAL_TOYS.without(
    (),
    (
        Column("max_Z_local_refit", "sigma", "largest local Z of each refitted toy"),
        Column("max_Z_local_fixed_same_toys", "sigma", "the same toys with the GP fixed"),
        Column("Z_local_refit", "sigma", "local Z per refitted toy and mass"),
        Column("Z_local_fixed_same_toys", "sigma", "the same with the GP fixed"),
    ),
)

INJECT = Table(
    "inject",
    "inject.h5 /<dataset>, inject.csv",
    (
        DATASET,
        MASS,
        Column("z_inj", "", "injected strength (config unit)"),
        Column("A_inj", "events", "injected yield"),
        Column("n_kept", "", "toys kept (converged) in the summary"),
        Column("n_generated", "", "toys generated (drawn and fitted)"),
        Column("A_hat_mean", "events", "mean fitted yield"),
        Column("A_hat_std", "events", "its spread"),
        Column("pull_mean", "", "mean of (A_hat - A_inj) / sigma_A"),
        Column("pull_mean_err", "", "its standard error, pull_width / sqrt(n_kept)"),
        Column("pull_width", "", "standard deviation of the pull"),
        Column("cov_1sigma", "", "coverage of A_hat +/- sigma_A"),
        Column("cov_1sigma_err", "", "its binomial standard error for Gaussian pulls"),
        Column("cov_2sigma", "", "coverage of A_hat +/- 2 sigma_A"),
        Column("cov_2sigma_err", "", "its binomial standard error for Gaussian pulls"),
        Column("Zhat_mean", "", "mean A_hat / sigma_A"),
        Column("refit_gp", "", "the GP was refitted on each toy"),
    ),
)
BLIND_INJECT = INJECT.without((), (Column("blinded", "", "true: a blinded run"),))
#: ``inject.h5 /<dataset>``: inject.csv's columns and what only the HDF5 file holds
INJECT_H5 = INJECT.without(
    (),
    (
        Column("sigma_ref", "events", "sigma_A,ref: the strength unit (Asimov sigma_A)"),
        Column("eps2_inj", "", "injected eps^2"),
        Column("gp_conv_frac", "", "fraction of toys whose GP refit converged"),
        Column("seconds", "s", "wall time of the (mass, strength)"),
        Column("sideband_leak", "", "refit mode: signal fraction on the training bins"),
        Column("A_hat_asimov", "events", "refit mode: yield from the noise-free toy"),
        Column(
            "A_hat_asimov0", "events", "refit mode: that without signal (the background offset)"
        ),
    ),
)

INJECT_TOYS = Table(
    "inject_toys",
    "inject.h5 /<dataset>/toys/<m>MeV_z<z>",
    (
        Column("A_hat", "events"),
        Column("sigma_A", "events"),
        Column("pull", "", "(A_hat - A_inj) / sigma_A"),
        Column("converged"),
    ),
)

TOYSCAN = Table(
    "toyscan",
    "toyscan.h5 /toys, toyscan.csv",
    (
        Column("toy"),
        Column("hist", doc="histogram of the toy"),
        MASS,
        Column("A_hat", "events"),
        Column("sigma_A", "events"),
        Column("Z_local", "sigma"),
        Column("gp_length_scale", ""),
        Column("gp_amplitude"),
        Column("gp_converged"),
        Column("status"),
    ),
)
TOYSCAN_SUMMARY = Table(
    "toyscan_summary",
    "toyscan.h5 /summary, toyscan_summary.csv",
    (
        MASS,
        Column("n_kept", "", "toys with status ok at this mass (the rows summarised)"),
        Column("n_flagged", "", "rows with a quality flag (numbers, left out)"),
        Column("n_failed", "", "rows whose fit failed (no numbers)"),
        Column("A_hat_mean", "events"),
        Column("A_hat_mean_err", "events"),
        Column("sigma_A_mean", "events"),
        Column("spurious_ratio", "", "A_hat_mean / sigma_A_mean"),
        Column("pull_mean", "", "mean of A_hat / sigma_A"),
        Column("pull_mean_err", "", "its standard error, pull_width / sqrt(n_kept)"),
        Column("pull_width"),
        Column("frac_Z_gt2"),
        Column("frac_Z_gt3"),
    ),
)

COMPARE = Table(
    "compare",
    "compare/compare_<dataset>.csv (gprpipe compare)",
    (
        DATASET,
        Column("point", doc="the point compared with the reference (the first given)"),
        MASS,
        Column("ratio_observed", "", "its observed eps^2 limit / the reference's (NaN: blinded)"),
        Column("ratio_expected", "", "its expected median eps^2 limit / the reference's"),
    ),
)

COMBINATION = Table(
    "combination",
    "combination.csv, allocation.csv (plot step of a combination)",
    (
        DATASET,
        MASS,
        Column("sigma_eps2", "", "the fit's uncertainty on eps^2 (sigma_A / signal per eps^2)"),
        Column("info_fraction", "", "the dataset's share of 1/sigma_eps2^2 (combined: 1)"),
        Column("eps2_5sigma", "", "5 times the joint fit's sigma_eps2"),
        Column("A_5sigma", "events", "that eps^2 in the dataset's signal events"),
        Column("Z_needed_5sigma", "sigma", "the Z the dataset alone sees at eps2_5sigma"),
        Column("eps2_exp_med", "", "expected median eps^2 limit"),
        Column(
            "ratio_to_best_single",
            "",
            "combined rows: their expected limit / the best single dataset's (else NaN)",
        ),
    ),
)


def reach_table(datasets: Sequence[str]) -> Table:
    """``reach/reach.csv`` of ``gprpipe project-reach`` for these datasets."""
    return Table(
        "reach",
        "reach/reach.csv (gprpipe project-reach)",
        (
            MASS,
            *(Column(f"eps2_exp_med_{n}", "", f"expected median limit of {n}") for n in datasets),
            *(Column(f"eps2_proj_{n}", "", f"{n} projected to its scale") for n in datasets),
            Column("eps2_exp_med_combined_ivw", "", "inverse-variance combination of today's"),
            Column("eps2_proj_combined", "", "inverse-variance combination of the projected"),
            Column("eps2_exp_med_combined_fit", "", "the joint fit's (NaN: no combined rows)"),
        ),
    )


# --------------------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------------------
def collect(paths: Sequence[Path]) -> dict[str, Arrays]:
    """Arrays of every dataset group across (chunk) files, sorted by the mass column
    (``mass_GeV``) when there is one."""
    per: dict[str, list[Arrays]] = {}
    for p in paths:
        with open_h5(p) as f:
            for name in f:
                per.setdefault(name, []).append(read_group(f[name]))
    out = {}
    for name, arrays in per.items():
        merged = {k: np.concatenate([np.atleast_1d(a[k]) for a in arrays]) for k in arrays[0]}
        if "mass_GeV" in merged:
            order = np.argsort(merged["mass_GeV"], kind="stable")
            merged = {k: v[order] for k, v in merged.items()}
        out[name] = merged
    return out


def write_merged(out: h5py.File, paths: Sequence[Path], arrays: dict[str, Arrays]) -> None:
    """Write merged arrays and copy every sub-group (e.g. ``blind/<index>``) of the parts."""
    for name, merged in arrays.items():
        write_group(out.require_group(name), merged)
    for p in paths:
        with open_h5(p) as f:
            for name in f:
                for sub, obj in f[name].items():
                    if isinstance(obj, h5py.Group):
                        dst = out[name].require_group(sub)
                        for item in obj:
                            f.copy(obj[item], dst, name=item)


def _damaged(path, where: str, what: str) -> GprpipeError:
    return GprpipeError(
        f"{path}: {where} {what} (a damaged or foreign file); run the point again to recompute it."
    )


def read_load(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of one dataset from ``load.h5`` (:data:`LOAD`), one bin per pair
    of edges."""
    with open_h5(path) as f:
        if name not in f:
            raise GprpipeError(f"{path}: no dataset {name!r} (was it loaded?).")
        g = read_group(f[name]) if isinstance(f[name], h5py.Group) else {}
    missing = [k for k in ("counts", "edges") if k not in g]
    if missing:
        raise _damaged(path, f"/{name}", f"has no {' or '.join(missing)}")
    counts, edges = g["counts"], g["edges"]
    if counts.ndim != 1 or edges.shape != (len(counts) + 1,):
        raise _damaged(path, f"/{name}", f"has {counts.size} counts for {edges.size} edges")
    return counts, edges


def read_fit(path, name: str) -> Arrays:
    """Per-mass arrays of one dataset from ``fit.h5`` (:data:`FIT`). A group without this
    version's columns (a fit.h5 of an older gprpipe) is said in one sentence."""
    with open_h5(path) as f:
        arrays = read_group(f[name])
        missing = [c for c in FIT.names if c not in arrays]
        if missing:
            raise GprpipeError(
                f"{path}: /{name} has no {', '.join(missing)} (a fit.h5 of another format "
                "than this gprpipe reads); run the point again to recompute it."
            )
        return arrays


#: the arrays of a blind window in ``fit.h5`` (and ``n``, the observed counts, unless the
#: fit was blinded)
BLIND_WINDOW = ("edges", "b", "C", "w", "w_eff")


def read_blind(path, name: str, index: int) -> tuple[Arrays, dict]:
    """The blind-window arrays (edges, n, b, C, w, w_eff) and attrs of one mass; a
    missing or inconsistent window is one sentence naming the file, dataset and index."""
    where = f"/{name}/blind/{index}"
    with open_h5(path) as f:
        g = f.get(f"{name}/blind/{index}")
        if not isinstance(g, h5py.Group):
            raise _damaged(path, "has no blind window", where)
        arrays, attrs = read_group(g), dict(g.attrs)
    missing = [k for k in BLIND_WINDOW if k not in arrays]
    missing += [] if "rho" in attrs else ["attribute rho"]
    if missing:
        raise _damaged(path, where, f"has no {', '.join(missing)}")
    k = len(arrays["edges"]) - 1
    shapes = {"b": (k,), "C": (k, k), "w": (k,), "w_eff": (k,), "n": (k,)}
    wrong = [c for c, shape in shapes.items() if c in arrays and arrays[c].shape != shape]
    if wrong:
        raise _damaged(path, where, f"has {', '.join(wrong)} not of its {k} bins")
    return arrays, attrs


def read_scan(path) -> dict[str, Arrays]:
    """Per-dataset arrays from ``limit.h5`` (:data:`SCAN`)."""
    return collect([path])


def read_global(path, name: str) -> tuple[Arrays, dict] | None:
    """The stored toy max-Z distributions of one dataset (:data:`GLOBAL_TOYS`), or None."""
    with open_h5(path) as f:
        if name not in f or "global_toys" not in f[name]:
            return None
        g = f[name]["global_toys"]
        return read_group(g), dict(g.attrs)


def read_inject(path) -> dict[str, Arrays]:
    """Per-dataset summary arrays from ``inject.h5`` (:data:`INJECT` and more)."""
    return collect([path])


def read_toys(path, name: str) -> dict[str, tuple[Arrays, dict]]:
    """Per-toy arrays (:data:`INJECT_TOYS`) and attrs of every (mass, strength) of one
    dataset in ``inject.h5``."""
    with open_h5(path) as f:
        g = f[name].get("toys", {})
        return {k: (read_group(v), dict(v.attrs)) for k, v in g.items()}


def read_toyscan(path) -> tuple[Arrays, Arrays, dict, np.ndarray]:
    """(per-toy rows :data:`TOYSCAN`, per-mass summary :data:`TOYSCAN_SUMMARY`, overview
    attrs, max Z_local per toy) of ``toyscan.h5``."""
    with open_h5(path) as f:
        return (
            read_group(f["toys"]),
            read_group(f["summary"]),
            dict(f["summary"].attrs),
            f["max_Z_local"]["max_Z_local"][()],
        )


def read_toyscan_overview(path) -> dict:
    """The whole-scan numbers of ``toyscan.h5`` (its ``summary`` attrs) alone; a damaged
    file is a GprpipeError naming it."""
    try:
        with open_h5(path) as f:
            return dict(f["summary"].attrs)
    except (KeyError, OSError) as exc:
        raise GprpipeError(f"{path}: cannot read its toy-scan summary ({exc}).") from None


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{float(v):.8g}"
    return str(v)


def csv_text(per_ds: Mapping[str, Mapping[str, np.ndarray]], columns: Table | Sequence[str]) -> str:
    """CSV of merged arrays: one row per (dataset, mass); floats with 8 significant digits."""
    names = columns.names if isinstance(columns, Table) else tuple(columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for name, arrays in per_ds.items():
        for i in range(len(arrays["mass_GeV"])):
            w.writerow([name if c == "dataset" else _fmt(arrays[c][i]) for c in names])
    return buf.getvalue()


def rows_csv(columns: Table, rows: Iterable[Sequence[object]]) -> str:
    """CSV of rows given in the table's column order; floats as :func:`csv_text` writes
    them (8 significant digits, ``nan``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns.names)
    for row in rows:
        if len(row) != len(columns.names):
            raise ValueError(f"a row of {len(row)} values for table {columns.name!r}")
        w.writerow([_fmt(v) for v in row])
    return buf.getvalue()


def read_csv_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (column -> text) of a results CSV (``scan.csv``, ``inject.csv``);
    a GprpipeError naming the file when it is not text CSV (damaged)."""
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _not_csv(path, exc) from exc


def _open_text(path: Path) -> io.TextIOWrapper:
    """A results CSV opened as text, refused (OSError) unless it is a regular file: a
    FIFO at its name made summary, the exports and rerun wait for ever (a review)."""
    return io.TextIOWrapper(open_regular(path), encoding="utf-8", newline="")


def csv_header(path: Path) -> list[str]:
    """The column names of a results CSV, without reading its rows."""
    try:
        with _open_text(path) as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _not_csv(path, exc) from exc


def _not_csv(path: Path, exc: Exception) -> GprpipeError:
    return GprpipeError(f"{path}: cannot be read as a CSV table ({exc}); run its step again.")


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a results CSV as column -> text."""
    return read_csv_table(path)[1]


def _manifest_names(point_dir: Path, key: str) -> list[str] | None:
    """The list of names ``key`` of the point's ``plots/manifest.json``, or None when it is
    unreadable or does not hold one (damaged, or written before the key existed)."""
    try:
        names = read_json(Path(point_dir) / "plots" / "manifest.json")[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list) or not all(isinstance(f, str) for f in names):
        return None
    return names


def plot_manifest_drawn(point_dir: Path) -> set[str] | None:
    """The names of the step outputs the point's last plot task drew (its manifest's
    ``drawn``), or None when the manifest does not say (unreadable, or written before)."""
    drawn = _manifest_names(point_dir, "drawn")
    return None if drawn is None else set(drawn)


def plot_manifest_files(point_dir: Path) -> list[Path] | None:
    """The files the point's last plot task wrote (``plots/manifest.json``), or None when
    there is no readable manifest (damaged: as none; the next plot task writes a new one)."""
    files = _manifest_names(point_dir, "files")
    return None if files is None else [Path(point_dir) / f for f in files]
