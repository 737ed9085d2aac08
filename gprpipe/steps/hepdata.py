"""HEPData-style tables of every limit curve (written by the plot step).

For each dataset group of ``limit.h5`` (including ``combined``) and each quantity (``eps2``,
``A``), ``<point>/hepdata/`` receives

* ``limits_<quantity>_<dataset>.yaml``: a HEPData table (``independent_variables``: the mass
  in GeV; ``dependent_variables``: the observed limit, and the expected median with its
  ``1 sigma`` and ``2 sigma`` bands as asymmetric errors, signed offsets from the median);
* ``limits_<quantity>_<dataset>.csv``: ``mass_GeV, observed, expected_median,
  expected_minus1sigma, expected_plus1sigma, expected_minus2sigma, expected_plus2sigma``
  (band edges as absolute values, not offsets);

and ``submission.yaml`` lists the tables (HEPData submission format). Only rows with
``status == "ok"`` are exported. Blinded runs export the expected limits only (no
``observed`` column or variable) and say so in every table and comment. The YAML is
written directly (no YAML library needed).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gprpipe.config.schema import Config
from gprpipe.io.atomic import atomic_write_text

CSV_HEADER = ("mass_GeV", "observed", "expected_median", "expected_minus1sigma",
              "expected_plus1sigma", "expected_minus2sigma", "expected_plus2sigma")
QUANTITIES = {
    "eps2": ("upper limit on epsilon^2", "$\\epsilon^2$", ""),
    "A": ("upper limit on the signal yield A", "$A$", "events"),
}


def _num(v: float) -> str:
    return f"{float(v):.6g}"


def _q(s: str) -> str:
    """A double-quoted YAML string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_yaml(mass: np.ndarray, obs: np.ndarray, bands: list[np.ndarray], *, quantity: str,
               cl: float, dataset: str) -> str:
    """One HEPData table: mass (GeV) -> observed and expected limits with their bands."""
    what, _, units = QUANTITIES[quantity]
    lo2, lo1, med, hi1, hi2 = bands
    quals = [("CL", f"{cl:g}%"), ("Dataset", dataset)]
    if obs is None:
        quals.append(("Blinded", "expected limits only"))
    out = io.StringIO()
    w = out.write
    w("independent_variables:\n")
    w("- header: {name: \"m(A')\", units: GEV}\n  values:\n")
    for m in mass:
        w(f"  - {{value: {_num(m)}}}\n")
    w("dependent_variables:\n")
    unit = f", units: {_q(units)}" if units else ""
    for name in ("Observed", "Expected") if obs is not None else ("Expected",):
        w(f"- header: {{name: {_q(f'{name} {cl:g}% CL {what}')}{unit}}}\n")
        w("  qualifiers:\n")
        for k, v in quals:
            w(f"  - {{name: {_q(k)}, value: {_q(v)}}}\n")
        w("  values:\n")
        if name == "Observed":
            for v in obs:
                w(f"  - {{value: {_num(v)}}}\n")
            continue
        for i in range(len(med)):
            w(f"  - value: {_num(med[i])}\n    errors:\n")
            w(f"    - {{asymerror: {{minus: {_num(lo1[i] - med[i])}, "
              f"plus: {_num(hi1[i] - med[i])}}}, label: \"1 sigma\"}}\n")
            w(f"    - {{asymerror: {{minus: {_num(lo2[i] - med[i])}, "
              f"plus: {_num(hi2[i] - med[i])}}}, label: \"2 sigma\"}}\n")
    return out.getvalue()


def table_csv(mass, obs, bands, *, quantity: str, cl: float, dataset: str) -> str:
    lo2, lo1, med, hi1, hi2 = bands
    out = io.StringIO()
    blind = "; BLINDED: expected limits only" if obs is None else ""
    out.write(f"# {dataset}: {cl:g}% CL {QUANTITIES[quantity][0]} vs mass (GeV); "
              f"expected band columns are band edges{blind}\n")
    header = [h for h in CSV_HEADER if not (obs is None and h == "observed")]
    out.write(",".join(header) + "\n")
    cols = (mass, med, lo1, hi1, lo2, hi2) if obs is None else (mass, obs, med, lo1, hi1,
                                                                  lo2, hi2)
    for row in zip(*cols):
        out.write(",".join(_num(v) for v in row) + "\n")
    return out.getvalue()


def write_hepdata(cfg: Config, limit_path: Path, folder: Path) -> list[Path]:
    """Write every table of ``limit.h5`` into ``folder``; returns the files written."""
    from gprpipe import __version__
    from gprpipe.steps.limit import BAND_COLS, read_scan

    cl = 100.0 * (1.0 - cfg.limit.alpha)
    written: list[Path] = []
    comment = (f"{cfg.base.name}: limits of the GPR bump hunt (gprpipe {__version__}), "
               f"{cl:g}% CL CLs, observed limits: {cfg.limit.mode}")
    if cfg.base.blind:
        comment = (f"{cfg.base.name}: BLINDED expected limits of the GPR bump hunt (gprpipe "
                   f"{__version__}), {cl:g}% CL CLs; no observed result")
    docs = [f"comment: {_q(comment)}\n"]
    for name, a in read_scan(limit_path).items():
        ok = a["status"] == "ok"
        if not ok.any():
            continue
        label = "Combined" if name == "combined" else (cfg.datasets[name].label or name)
        m = a["mass_GeV"][ok]
        for q in QUANTITIES:
            obs = None if cfg.base.blind else a[f"{q}_up"][ok]
            bands = [a[f"{q}_exp_{b}"][ok] for b in BAND_COLS]
            stem = f"limits_{q}_{name}"
            kw = {"quantity": q, "cl": cl, "dataset": label}
            for ext, text in (("yaml", table_yaml(m, obs, bands, **kw)),
                              ("csv", table_csv(m, obs, bands, **kw))):
                target = folder / f"{stem}.{ext}"
                atomic_write_text(target, text)
                written.append(target)
            what = "BLINDED: expected median" if obs is None else "observed, expected median"
            desc = (f"{cl:g}% CL {QUANTITIES[q][0]} for {label}: {what} "
                    f"and 1/2 sigma bands ({cfg.limit.bands} bands).")
            docs.append(f"name: {_q(f'{label} {q} limits')}\ndescription: {_q(desc)}\n"
                        f"keywords:\n- {{name: observables, values: [{_q(q.upper())}]}}\n"
                        f"data_file: {stem}.yaml\n")
    if len(docs) > 1:
        target = folder / "submission.yaml"
        atomic_write_text(target, "---\n".join(docs))
        written.append(target)
    return written
