"""Runs seen from the TUI: the log tail, and a finished point's ``scan.csv`` (read through
:mod:`gprpipe.results.schema`). Launching, watching and cancelling go through the run
service (:mod:`gprpipe.pipeline.service`, :mod:`gprpipe.pipeline.launch`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gprpipe.errors import GprpipeError
from gprpipe.pipeline.commit import vouched
from gprpipe.pipeline.plan import Layout
from gprpipe.pipeline.store import load_run_info
from gprpipe.results.schema import plot_manifest_files, read_csv_table
from gprpipe.results.summary import most_significant, summarize_scan


def tail(path: Path | None, n: int = 12) -> str:
    """Last ``n`` lines of a text file ('' if missing)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


# ------------------------------------------------------------------ results


def result_points(run_dir: Path) -> list[tuple[str, Path]]:
    """(point name, point folder) of the run's points that have a ``scan.csv``; a
    GprpipeError (one sentence) when its ``run.json`` is damaged, as for every reader of
    a run. A folder without run.json (results copied by hand) lists its point folders."""
    run_dir = Path(run_dir)
    names: list[tuple[str, Path]] = []
    info = load_run_info(run_dir, missing_ok=True)
    if info is not None:
        names = [(p["name"], run_dir / p["name"]) for p in info.data.get("grid", [])]
    else:
        try:
            names = [(d.name, d) for d in sorted(run_dir.iterdir()) if d.is_dir()]
        except OSError:
            names = []
    return [(n, d) for n, d in names if Layout(d).scan_csv.is_file()]


@dataclass
class Scan:
    """A ``scan.csv``: its columns and rows (numbers as floats where they parse)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, object]]

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(str(r["dataset"]) for r in self.rows))

    def of(self, dataset: str) -> list[dict[str, object]]:
        rows = [r for r in self.rows if r["dataset"] == dataset]
        return sorted(rows, key=lambda r: number(r.get("mass_GeV")))


def number(v: object) -> float:
    """``v`` as a float (NaN when it is not a number)."""
    if not isinstance(v, (int, float, str)):
        return math.nan
    try:
        return float(v)
    except ValueError:
        return math.nan


def _value(column: str, text: str) -> object:
    """A cell of the table: a number where the text is one (the dataset stays text)."""
    if column == "dataset":
        return text
    try:
        return float(text)
    except ValueError:
        return text


def read_scan(path: Path) -> Scan:
    """A point's ``scan.csv`` (:func:`gprpipe.results.schema.read_csv_table`), once its
    task's commit record vouches for it (a ``GprpipeError`` otherwise)."""
    columns, rows = read_csv_table(vouched(path))
    return Scan(Path(path), columns, [{k: _value(k, v) for k, v in r.items()} for r in rows])


@dataclass
class KeyNumbers:
    best_z: float = math.nan
    best_dataset: str = ""
    best_mass: float = math.nan  # GeV
    global_z: float = math.nan  # Sidak
    global_p: float = math.nan
    global_z_toys: str = ""  # whole-scan toys (limit.global_toys) as shown: "> 2.71" where
    # no toy reached the observed Z (a bound); '' without toys
    local_p: float = math.nan  # asymptotic p0 at the best row
    local_p_toys: str = ""  # the toys' local p0 there as shown ("0.01 +- 0.0022"), '' without
    limits: list[tuple[str, float, float, float, str]] = field(default_factory=list)
    # (dataset, mass GeV, observed eps2, expected median eps2, the row's status)
    outside: list[float] = field(default_factory=list)  # masses asked outside every scan (GeV)


def key_numbers(scan: Scan, masses_gev: Sequence[float], dataset: str | None = None) -> KeyNumbers:
    """Best local Z (over the ``ok`` rows: flagged rows are no discovery; the reports'
    rule, :func:`gprpipe.results.summary.most_significant`), global Z of that row (Sidak,
    and the toys' when the scan has them), limits at the nearest masses (a mass outside a
    dataset's scanned range has none there: the nearest row would be another mass)."""
    out = KeyNumbers()
    best = most_significant(summarize_scan(scan.rows))
    if best is not None and best.most_significant is not None:
        out.best_z = best.most_significant.value
        out.best_dataset = best.dataset
        out.best_mass = best.most_significant.mass
        out.global_z = math.nan if best.Z_global is None else best.Z_global
        out.global_p = math.nan if best.p0_global is None else best.p0_global
        out.global_z_toys = best.Z_global_toys_text
        out.local_p = math.nan if best.p0_local is None else best.p0_local
        out.local_p_toys = best.p0_local_toys_text
        if out.local_p_toys and best.toys_bias_note:
            out.local_p_toys += f" ({best.toys_bias_note})"
    names = [dataset] if dataset else scan.datasets()
    inside: set[float] = set()
    for name in names:
        rows = scan.of(name)
        if not rows:
            continue
        grid = [number(r["mass_GeV"]) for r in rows]
        lo, hi = min(grid), max(grid)
        for m in masses_gev:
            if not lo * (1 - 1e-9) <= m <= hi * (1 + 1e-9):
                continue
            inside.add(m)
            r = min(rows, key=lambda r: abs(number(r["mass_GeV"]) - m))
            out.limits.append(
                (
                    name,
                    number(r["mass_GeV"]),
                    number(r.get("eps2_up")),
                    number(r.get("eps2_exp_med")),
                    str(r.get("status") or "ok"),
                )
            )
    out.outside = [m for m in masses_gev if m not in inside]
    return out


def limit_text(mass: float, obs: float | None, exp: float, status: str) -> str:
    """One limit of the key numbers (``obs`` None: blinded): a flagged row says its flags
    and a failed one its failure (they were shown as results, a flagged one quoted though
    summary leaves it out: a review)."""
    from gprpipe.stats.quality import has_expected, is_flagged

    head = f"{mass * 1e3:g} MeV "
    if not has_expected(status):
        return head + f"(no limit: {status.split(':')[0]})"
    if obs is None:
        shown = f"{exp:.2e}"
    elif math.isfinite(obs):
        shown = f"{obs:.2e}/{exp:.2e}"
    else:  # its observed toy limit alone unresolved
        shown = f"-/{exp:.2e} (no observed limit)"
    return head + shown + (f" (flagged: {status.split(':')[0]})" if is_flagged(status) else "")


def field_masses(text: str) -> tuple[list[float], list[str]]:
    """The Results tab's masses field (MeV, as its label says; ``60MeV`` or ``0.06GeV``
    with a unit): (masses in GeV, a sentence for each entry left out). A bare value below
    1 is no test mass in MeV: the GeV of a file typed here, left out with a hint."""
    from gprpipe.units import parse_mass

    out: list[float] = []
    problems: list[str] = []
    for item in (x.strip() for x in text.replace(";", ",").split(",")):
        if not item:
            continue
        try:
            if item[-1].isalpha():
                out.append(parse_mass(item, "masses"))
                continue
            value = float(item)
        except (ValueError, GprpipeError) as exc:
            problems.append(str(exc) if isinstance(exc, GprpipeError) else f"{item!r}: no mass")
            continue
        if not (math.isfinite(value) and value >= 1):
            problems.append(f"{item}: masses here are in MeV; {value * 1e3:g} for {item} GeV")
            continue
        out.append(value / 1e3)
    return out, problems


def default_masses(scan: Scan, dataset: str, wanted: Sequence[float] = ()) -> list[float]:
    """``wanted`` masses (GeV), else three across the dataset's scan."""
    if wanted:
        return list(wanted)
    ms = [number(r["mass_GeV"]) for r in scan.of(dataset)]
    if not ms:
        return []
    if len(ms) <= 3:
        return ms
    return [ms[0], ms[len(ms) // 2], ms[-1]]


def plot_files(point_dir: Path, dataset: str) -> list[Path]:
    """PNG/PDF files of the eps^2 limit plot of a dataset (manifest first, else glob)."""
    lay = Layout(Path(point_dir))
    files = plot_manifest_files(lay.point_dir)
    if files is None:
        files = sorted(lay.plots.glob("*")) if lay.plots.is_dir() else []
    stem = f"brazil_eps2_{dataset}"
    return [f for f in files if f.stem == stem and f.exists()]
