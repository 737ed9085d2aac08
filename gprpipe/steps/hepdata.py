"""HEPData submission of every limit curve and significance scan (written by the plot step).

Built with ``hepdata_lib`` and validated by ``hepdata-validator`` (the tests run the
validator on the folder and on the archive). ``<point>/hepdata/`` receives, for each
dataset group of ``limit.h5`` (including ``combined``):

* ``limits_<quantity>_<dataset>.yaml`` (quantity ``eps2`` or ``a``; names lower-case):
  independent variable m(A') in GeV; dependent variables the observed upper limit and
  the expected median with its ``1 sigma`` and ``2 sigma`` bands as asymmetric errors
  (signed offsets from the median), and for toy limits their Monte Carlo standard error
  (``Monte Carlo (toys)``, a symmetric error of the observed limit); qualifiers CL,
  dataset, method;
* ``significance_<dataset>.yaml``: local and global p0 and Z vs mass;
* ``limits_<quantity>_<dataset>.csv``: ``mass_GeV, observed, expected_median,
  expected_minus1sigma, expected_plus1sigma, expected_minus2sigma, expected_plus2sigma``
  (band edges as absolute values; toy limits add ``observed_mc_error`` after
  ``observed``; listed in ``submission.yaml`` as additional resources);

plus ``submission.yaml``; their archive, which HEPData accepts, is ``<point>/hepdata.tar.gz``
(beside the folder, so that the folder validates as it is). Only rows
with ``status == "ok"`` are exported, and in the limit tables the masses whose observed
toy limit alone is unresolved (too few toys): expected limits, observed ``-``. Blinded
runs (``base.blind``) export the expected limits only (no observed variable or column,
no significance table) and say so in every table, qualifier and comment. The folder is
replaced as a whole (built next to it, then renamed), so it is never half-written.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from gprpipe.config.grid import DEFAULT_POINT
from gprpipe.config.schema import Config
from gprpipe.io.atomic import atomic_path, atomic_write_text, end_unless_held, inside
from gprpipe.results.schema import SCAN
from gprpipe.stats.quality import unresolved_rows

CSV_HEADER = (
    "mass_GeV",
    "observed",
    "expected_median",
    "expected_minus1sigma",
    "expected_plus1sigma",
    "expected_minus2sigma",
    "expected_plus2sigma",
)
MC_ERROR = "Monte Carlo (toys)"  # the toy limits' error label, and its CSV column:
MC_ERROR_COLUMN = "observed_mc_error"
QUANTITIES = {
    "eps2": ("upper limit on epsilon^2", "", "EPSILON**2"),
    "A": ("upper limit on the signal yield A", "events", "A"),
}


def _num(v: float) -> str:
    return f"{float(v):.6g}"


def _mass_variable(mass):
    from hepdata_lib import Variable

    v = Variable("m(A')", is_independent=True, is_binned=False, units="GeV")
    v.values = [float(m) for m in mass]
    v.digits = 6
    return v


def _qualify(var, quals: list[tuple[str, str]]) -> None:
    for k, val in quals:
        var.add_qualifier(k, val)


def limit_table(
    mass,
    obs,
    bands: list[np.ndarray],
    *,
    quantity: str,
    cl: float,
    dataset: str,
    stem: str,
    method: str,
    obs_err=None,
):
    """A ``hepdata_lib.Table``: observed limit and expected median with 1/2 sigma bands;
    ``obs_err``: the toy limits' Monte Carlo standard errors (NaN: none at that mass), a
    symmetric error labelled ``Monte Carlo (toys)`` on the observed limit."""
    from hepdata_lib import Table, Uncertainty, Variable

    what, units, obs_kw = QUANTITIES[quantity]
    lo2, lo1, med, hi1, hi2 = (np.asarray(b, dtype=float) for b in bands)
    t = Table(stem)
    shown = "BLINDED: expected" if obs is None else "observed, expected"
    t.description = (
        f"{cl:g}% CL {what} for {dataset} vs the A' mass: {shown} "
        f"median and its 1 and 2 sigma bands ({method})."
    )
    t.keywords["observables"] = [obs_kw]
    t.keywords["reactions"] = ["E- N --> E- N A' (A' --> E+ E-)"]
    t.keywords["phrases"] = ["Dark photon", "Bump hunt", "Upper limit"]
    t.add_variable(_mass_variable(mass))
    quals = [("CL", f"{cl:g}%"), ("Dataset", dataset), ("Method", method)]
    if obs is None:
        quals.append(("Blinded", "expected limits only"))
    else:
        o = Variable(
            f"Observed {cl:g}% CL {what}", is_independent=False, is_binned=False, units=units
        )
        o.values = [float(x) if np.isfinite(x) else "-" for x in obs]  # "-": none
        o.digits = 6
        if obs_err is not None and np.isfinite(obs_err).any():
            u = Uncertainty(MC_ERROR, is_symmetric=True)
            u.values = [float(x) if np.isfinite(x) else None for x in obs_err]
            o.add_uncertainty(u)
            o.zero_uncertainties_warning = False  # a mass without an estimate has none
        _qualify(o, quals)
        t.add_variable(o)
    e = Variable(f"Expected {cl:g}% CL {what}", is_independent=False, is_binned=False, units=units)
    e.values = [float(x) for x in med]
    e.digits = 6
    _qualify(e, quals)
    for lab, lo, hi in (("1 sigma", lo1, hi1), ("2 sigma", lo2, hi2)):
        u = Uncertainty(lab, is_symmetric=False)
        u.values = [(float(a - m), float(b - m)) for a, m, b in zip(lo, med, hi)]
        e.add_uncertainty(u)
    t.add_variable(e)
    return t


def significance_table(
    mass,
    cols: dict[str, np.ndarray],
    *,
    dataset: str,
    stem: str,
    n_eff: float,
    global_toys: int = 0,
):
    """A ``hepdata_lib.Table``: local and global p0 and Z vs mass; with ``global_toys``
    (whole-scan background-only toys, columns ``p0_global_toys``/``Z_global_toys`` in
    ``cols``) the toys' global p0 (with its binomial error) and Z as well, the number to
    quote."""
    from hepdata_lib import Table, Uncertainty, Variable

    t = Table(stem)
    # (a combined curve of a run whose datasets have no toys: its columns are NaN)
    toys = (
        global_toys > 0
        and "Z_global_toys" in cols
        and bool(np.isfinite(np.asarray(cols["Z_global_toys"], float)).any())
    )
    t.description = (
        f"Local and global background-only p-values p0 and significances Z of "
        f"{dataset} vs the A' mass (global: Sidak correction with "
        f"N_eff = {n_eff:.1f}"
        + (
            f"; and from {global_toys} whole-scan background-only toys (toys): quote the "
            "toys' number, Sidak's assumes N_eff independent windows"
            if toys
            else "; Sidak's correction assumes N_eff independent windows and can "
            "understate the global p0 of a scan of overlapping windows, which whole-scan "
            "background-only toys measure ("
            + ("they give no number for this curve" if global_toys > 0 else "none were run here")
            + ")"
        )
        + ")."
        + (
            " Where no toy reached the observed Z (the toys' p0 error equals p0), the toys' "
            "p0 is an upper bound and their Z a lower bound. Local p0 (toys): the fraction "
            "of the same toys at least as significant at that mass, a check of the "
            "asymptotic local p0 (1 where the observed Z is 0, a deficit, whose asymptotic "
            "p0 is 0.5 by convention; above 0.5 at a positive Z where the toys put more "
            "weight on upward fluctuations than the asymptotic formula). P(Z=0) (toys): the "
            "fraction of those toys with Z = 0 at that mass, with its binomial error for "
            "unbiased toys; 0.5 where each window's fit predicts the toys' background without "
            "bias. Where it lies more than 3 of those errors from 0.5 the window's fit misses "
            "the toys' background there, and the toys' local p0 is no clean check of the "
            "asymptotic one (their mean, a fit of the whole spectrum, keeps part of the "
            "data's excesses)."
            if toys
            else ""
        )
    )
    t.keywords["observables"] = ["SIG"]
    t.keywords["phrases"] = ["Dark photon", "Bump hunt", "Local significance"]
    t.add_variable(_mass_variable(mass))
    columns = [
        ("p0_local", "Local p0"),
        ("Z_local", "Local Z"),
        ("p0_global", "Global p0"),
        ("Z_global", "Global Z"),
    ]
    if toys:
        columns += [("p0_global_toys", "Global p0 (toys)"), ("Z_global_toys", "Global Z (toys)")]
        if "p0_local_toys" in cols:
            columns.append(("p0_local_toys", "Local p0 (toys)"))
        if "frac_Z0_toys" in cols:
            columns.append(("frac_Z0_toys", "P(Z=0) (toys)"))
    for key, name in columns:
        v = Variable(
            name,
            is_independent=False,
            is_binned=False,
            units=SCAN.unit(key),  # (P(Z=0) had "sigma", as every non-p0 column had)
        )
        v.values = [float(x) for x in cols[key]]
        v.digits = 6
        if key in ("p0_global_toys", "p0_local_toys", "frac_Z0_toys") and f"{key}_err" in cols:
            kind = "binomial, unbiased toys" if key == "frac_Z0_toys" else "binomial (toys)"
            u = Uncertainty(kind, is_symmetric=True)
            u.values = [float(x) for x in cols[f"{key}_err"]]
            v.add_uncertainty(u)
        _qualify(v, [("Dataset", dataset)])
        t.add_variable(v)
    return t


def table_csv(
    mass, obs, bands, *, quantity: str, cl: float, dataset: str, obs_err=None, left: str = ""
) -> str:
    """The table as CSV; with toy limits' errors (``obs_err``, not all NaN) a column
    ``observed_mc_error`` after ``observed`` (NaN where a mass has none); ``left``: the
    note on the masses left out (:func:`left_out_note`), in the comment line as in the
    table's description."""
    lo2, lo1, med, hi1, hi2 = bands
    out = io.StringIO()
    blind = "; BLINDED: expected limits only" if obs is None else ""
    header = [h for h in CSV_HEADER if not (obs is None and h == "observed")]
    cols = (mass, med, lo1, hi1, lo2, hi2) if obs is None else (mass, obs, med, lo1, hi1, lo2, hi2)
    mc = ""
    if obs is not None and obs_err is not None and np.isfinite(obs_err).any():
        header.insert(2, MC_ERROR_COLUMN)
        cols = (*cols[:2], obs_err, *cols[2:])
        mc = f"; {MC_ERROR_COLUMN}: the toy limit's Monte Carlo standard error (nan: none)"
    note = "; " + " ".join(left.split()) if left else ""  # (one comment line)
    out.write(
        f"# {dataset}: {cl:g}% CL {QUANTITIES[quantity][0]} vs mass (GeV); "
        f"expected band columns are band edges{mc}{blind}{note}\n"
    )
    out.write(",".join(header) + "\n")
    for row in zip(*cols):
        out.write(",".join(_num(v) for v in row) + "\n")
    return out.getvalue()


def build_submission(cfg: Config, limit_path: Path):
    """The ``hepdata_lib.Submission`` and the CSV texts ``{file name: text}``."""
    import hepdata_lib

    from gprpipe.io.source import source_version
    from gprpipe.steps.limit import BAND_COLS, read_scan

    cl = 100.0 * (1.0 - cfg.limit.alpha)
    version = source_version()  # (an editable install's moved-on source named, as in the report)
    point = Path(limit_path).parent.name  # a grid point's folder names its values
    nominal = point == DEFAULT_POINT
    run = cfg.base.name if nominal else f"{cfg.base.name}, grid point {point}"
    sub = hepdata_lib.Submission()
    sub.comment = (
        f"{run}: limits and significances of the GPR bump hunt "
        f"(gprpipe {version}), {cl:g}% CL CLs; observed limits: "
        f"{cfg.limit.mode}, expected bands: {cfg.limit.bands}."
    )
    if cfg.base.blind:
        sub.comment = (
            f"{run}: BLINDED expected limits of the GPR bump hunt "
            f"(gprpipe {version}), {cl:g}% CL CLs; no observed result."
        )
    method = f"CLs, q~ test statistic, {cfg.limit.mode} (bands: {cfg.limit.bands})"
    csvs: dict[str, str] = {}
    where = f"gprpipe run {cfg.base.name}: {'' if nominal else point + '/'}scan.csv"
    fit_h5 = Path(limit_path).parent / "fit.h5"  # (the combination's members are its fits)
    for name, a in read_scan(limit_path).items():
        ok = a["status"] == "ok"
        # the limit tables also hold the masses whose observed toy limit alone is
        # unresolved: their expected limits stand, the observed value is "-" (nan in CSV)
        unresolved = unresolved_rows(a["status"])
        shown = ok | unresolved
        if not shown.any():
            continue
        label = "Combined" if name == "combined" else (cfg.datasets[name].label or name)
        m = a["mass_GeV"][shown]
        members = combined_members(cfg, fit_h5, m) if name == "combined" else ""
        left = left_out_note(a, shown) + no_observed_note(a, unresolved)
        # the limit tables' notes on the Monte Carlo errors of toy limits and toy bands
        # (the same in both units)
        mc_notes = (
            ""
            if cfg.base.blind
            else _unchecked_errors(a, ok, a.get("eps2_up_err"), cfg.limit.n_toys)
        ) + _band_error_note(a.get("exp_band_rel_err"), shown)
        for q in QUANTITIES:
            obs = None if cfg.base.blind else np.where(ok, a[f"{q}_up"], np.nan)[shown]
            err = None if obs is None or f"{q}_up_err" not in a else a[f"{q}_up_err"][shown]
            bands = [a[f"{q}_exp_{b}"][shown] for b in BAND_COLS]
            stem = f"limits_{q}_{name}".lower()
            t = limit_table(
                m,
                obs,
                bands,
                quantity=q,
                cl=cl,
                dataset=label,
                stem=stem,
                method=method,
                obs_err=err,
            )
            if name == "combined":  # one eps^2 for all: what "the yield" of a combination is
                t.description += (
                    f" Each mass combines the datasets whose range holds it ({members})"
                    + (
                        "; A is their summed signal yield, eps^2 times the sum of their"
                        " yields per unit eps^2."
                        if q == "A"
                        else "."
                    )
                )
            t.description += left + mc_notes
            t.location = where
            sub.add_table(t)
            csvs[f"{stem}.csv"] = table_csv(
                m, obs, bands, quantity=q, cl=cl, dataset=label, obs_err=err, left=left
            )
        if cfg.base.blind or not ok.any():  # p0 and Z depend on the observed counts
            continue
        m, left = a["mass_GeV"][ok], left_out_note(a, ok)
        n_eff = float(a["n_eff"][0]) if "n_eff" in a else float("nan")
        keys = ["p0_local", "Z_local", "p0_global", "Z_global", "p0_global_toys"]
        keys += ["p0_global_toys_err", "Z_global_toys", "p0_local_toys", "p0_local_toys_err"]
        keys += ["frac_Z0_toys", "frac_Z0_toys_err"]
        t = significance_table(
            m,
            {k: a[k][ok] for k in keys if k in a},
            dataset=label,
            stem=f"significance_{name}".lower(),
            n_eff=n_eff,
            global_toys=_toys_with_max(limit_path, name, cfg.limit.global_toys),
        )
        t.description += left
        t.location = where
        sub.add_table(t)
    return sub, csvs


def _toys_with_max(limit_path: Path, name: str, generated: int) -> int:
    """The whole-scan toys behind ``p0_global_toys`` of ``name``: those with a maximum Z
    (a toy whose fits all failed is left out), else the ``generated`` toys."""
    from gprpipe.results.schema import read_global

    got = read_global(limit_path, name) if generated else None
    return int(got[1].get("n_toys_with_max", generated)) if got else generated


def _band_error_note(rel, ok: np.ndarray) -> str:
    """What a limit table says of its toy bands' Monte Carlo error (``rel``: every row's
    ``exp_band_rel_err``; NaN for asymptotic bands: nothing said)."""
    if rel is None or not np.isfinite(rel[ok]).any():
        return ""
    worst = float(np.nanmax(rel[ok]))
    return (
        f" The expected bands come from toys: their Monte Carlo standard error is at most "
        f"{worst:.2%} of the limit (scan.csv column exp_band_rel_err)."
    )


def _unchecked_errors(a: dict[str, np.ndarray], ok: np.ndarray, err, n_toys: int) -> str:
    """What the table says of toy limits' errors (``err``, every row's) from fewer toys
    (``n_toys`` each) or at deficits deeper than the error study checked, as the run
    summary says it (:func:`~gprpipe.results.summary.toy_error_unchecked`; a row not ok
    ends a run)."""
    from gprpipe.results.summary import (
        TOY_ERROR_CAVEAT,
        TOY_ERROR_CHECKED_TO,
        TOY_ERROR_CHECKED_TOYS,
        TOY_ERROR_FEW_TOYS_CAVEAT,
        few_toys,
        mass_runs,
        masses_text,
        toy_error_unchecked,
    )

    if err is None or not (ok & np.isfinite(np.asarray(err, dtype=float))).any():
        return ""
    if few_toys(n_toys):
        return (
            f" The Monte Carlo errors of the observed limits come from {n_toys} toys per mass,"
            f" fewer than the {TOY_ERROR_CHECKED_TOYS} they were checked with against the"
            f" spread between seeds: {TOY_ERROR_FEW_TOYS_CAVEAT}."
        )
    deep = ok & toy_error_unchecked(a["A_hat"], a["sigma_A"], err)
    if not deep.any():
        return ""
    runs = mass_runs(list(deep), [float(m) for m in a["mass_GeV"]])
    return (
        " Monte Carlo errors of the observed limits at deficits deeper than A_hat/sigma_A = "
        f"{TOY_ERROR_CHECKED_TO:g} (the fitted signal over its uncertainty; "
        f"{masses_text(runs)}): {TOY_ERROR_CAVEAT}."
    )


def combined_members(cfg: Config, fit_path: Path, masses: np.ndarray) -> str:
    """Which datasets each combined mass combines, as mass ranges ("2015 + 2016 at
    0.04-0.1 GeV"): those covering it with a usable fit, as the combination takes them
    (combination.csv lists them too, but a blinded run does not write it)."""
    from gprpipe.steps.combine import fitted_rows

    fits: dict = {}
    groups: list[tuple[tuple[str, ...], float, float]] = []
    for m in masses:
        rows = fitted_rows(cfg, fit_path, float(m), fits)
        who = tuple(d for d, i in rows.items() if i is not None)
        if groups and groups[-1][0] == who:
            groups[-1] = (who, groups[-1][1], float(m))
        else:
            groups.append((who, float(m), float(m)))
    return "; ".join(
        f"{' + '.join(who) or 'no dataset'} at {lo:g}" + (f"-{hi:g}" if hi != lo else "") + " GeV"
        for who, lo, hi in groups
    )


def left_out_note(a: dict[str, np.ndarray], ok: np.ndarray) -> str:
    """The description's note on the test masses the table leaves out (a quality flag, a
    failed fit or a failed limit), '' when none is: a reader must not take a gap for a mass
    that was never tested."""
    if ok.all():
        return ""
    why = "a quality flag, or a failed fit or limit, in brackets"
    return f" Test masses left out ({why}): {_with_status(a, ~ok)}."


def _with_status(a: dict[str, np.ndarray], rows: np.ndarray) -> str:
    """ "0.124 GeV (flag_gof), ..." of the ``rows`` (masses in GeV, as in every file)."""
    return ", ".join(f"{m:g} GeV ({st})" for m, st in zip(a["mass_GeV"][rows], a["status"][rows]))


def no_observed_note(a: dict[str, np.ndarray], unresolved: np.ndarray) -> str:
    """The description's note on the masses whose observed toy limit alone is unresolved
    (too few toys): shown with their expected limits and no observed value."""
    if not unresolved.any():
        return ""
    return (
        ' No observed limit ("-"; nan in the CSV) where too few toys resolve it, the '
        f"expected limits stand: {_with_status(a, unresolved)}."
    )


def write_submission(sub, folder: Path, resources: dict[str, str], archive: Path) -> list[Path]:
    """``submission.yaml``, one YAML per table and the files of ``resources`` (name ->
    text, listed as additional resources) in ``folder``, and their archive ``archive``
    outside it (so that the folder validates as it is: every file referenced): what
    ``Submission.create_files`` writes, without its archive in the working directory."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    head: dict[str, object] = {"data_license": sub.get_license(), "comment": sub.comment}
    if resources:
        head["additional_resources"] = [
            {"location": name, "description": "the table as CSV (band edges as values)"}
            for name in sorted(resources)
        ]
    with open(folder / "submission.yaml", "w", encoding="utf-8") as fh:
        yaml.dump(head, fh, default_flow_style=False, explicit_start=True)
    for t in sub.tables:
        t.write_output(str(folder))
    for name, text in resources.items():
        atomic_write_text(folder / name, text)
    files = sorted([*folder.glob("*.yaml"), *(folder / n for n in resources)])
    # byte-reproducible archive: no timestamps or owners (same inputs, same bytes)
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for f in files:
            info = tar.gettarinfo(f, arcname=f.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o644
            with open(f, "rb") as fh:
                tar.addfile(info, fh)
    return [*files, archive]


def _remove(path: Path) -> None:
    """Remove what is at ``path``: a folder with its files, or a file or a link (only the
    link: ``shutil.rmtree`` leaves a link, and the next rename onto it then failed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def write_hepdata(cfg: Config, limit_path: Path, folder: Path) -> list[Path]:
    """Write the HEPData submission of ``limit.h5`` into ``folder`` (the CSV tables as its
    additional resources) and its archive beside it, ``<folder>.tar.gz``; returns the
    files."""
    sub, csvs = build_submission(cfg, limit_path)
    folder = Path(folder)
    # a link to a folder elsewhere would silently give way to the run's own: refused, as
    # for the exports and reach folders (a link inside the point folder is replaced)
    inside(folder, folder.parent, "the HEPData folder", replaced=True)
    archive = folder.with_name(folder.name + ".tar.gz")
    if not sub.tables:
        archive.unlink(missing_ok=True)
        return []
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with atomic_path(archive, suffix=".tar.gz") as staged:
            written = write_submission(sub, tmp, csvs, staged)
        names = [p.name for p in written[:-1]]
        os.chmod(tmp, 0o755)
        old = folder.with_name(f".{folder.name}.old")
        end_unless_held()  # (the archive's rename checked it: so does this swap)
        if folder.exists() or folder.is_symlink():
            _remove(old)
            folder.rename(old)
        tmp.rename(folder)
        _remove(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [*(folder / n for n in sorted(names)), archive]
