"""Background-only validation of the 2015 scan on the functional-form toys of the HPS file.

The same per-toy function as the ``toyscan`` step (:func:`gprpipe.steps.toyscan.scan_toy`),
driven in chunks of 10 toys interleaved over the three families, so that a study cut
short still has every family; each chunk is saved as it finishes (resumable).

    python benchmarks/study_toyscan.py run fitrange --toys 100 --out study/  # fit range
    python benchmarks/study_toyscan.py run full --toys 100 --out study/      # whole hist.
    python benchmarks/study_toyscan.py summary --out study/ [--table docs/toyscan_2015.md]

``summary`` also reads ``gprpipe run`` outputs of user_configs/hps2015_toyscan.toml placed
as ``<out>/fitrange/...`` and ``<out>/full/...`` (one point ``pattern-<family>__toy__``
each; an unfinished run's committed toyscan part files are read).

``fitrange`` trains the GP within 15-135 MeV, inside every generating function's fit range
(``fit_metadata`` in the file: 15-135 MeV, 14-135 MeV for fGenGammaShift); ``full`` trains
on the whole histogram (0-150 MeV), beyond the range the functions were fitted on. The
summary prints, per family and variant, the tail fractions of Z_local with their errors
(from the spread over toys) against the background-only expectation, the largest
unflagged Z_local, the number of unflagged Z_local > 5, and the spurious signal per mass.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np

from gprpipe.config import load_points
from gprpipe.io.hdf5 import read_group, write_group, write_h5
from gprpipe.io.root import read_hist, rebin
from gprpipe.steps.toyscan import (
    COLUMNS,
    TAILS,
    max_z_per_toy,
    overview,
    scan_toy,
    summarize,
    tail_fraction,
    toy_names,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hps" / "funcform_2015_toys.root"
FAMILIES = ("fShiftSigPowTail", "fShiftSigPow", "fGenGammaShift")
VARIANTS = {"fitrange": ["datasets.2015.data_range=[0.015, 0.135]"], "full": []}
CHUNK = 10


def configs(variant: str, data: Path) -> dict[str, object]:
    sets = [f"datasets.2015.path={data}", f"toyscan.file={data}", *VARIANTS[variant]]
    _, points = load_points(REPO / "user_configs" / "hps2015_toyscan.toml", sets)
    out = {}
    for fam in FAMILIES:
        out[fam] = next(p.config for p in points if p.config.toyscan.pattern.startswith(fam + "/"))
    return out


def run(variant: str, toys: int, out: Path, data: Path) -> None:
    folder = out / variant
    folder.mkdir(parents=True, exist_ok=True)
    cfgs = configs(variant, data)
    for k in range(-(-toys // CHUNK)):
        for fam, cfg in cfgs.items():
            path = folder / f"{fam}-{k:03d}.h5"
            if path.exists():
                continue
            names = toy_names(data, cfg.toyscan.pattern)[:toys]
            rows: list[dict] = []
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(k * CHUNK, min((k + 1) * CHUNK, len(names))):
                counts, edges = rebin(*read_hist(data, names[i]), cfg.datasets["2015"].rebin)
                rows += [{"toy": i, "hist": names[i], **r} for r in scan_toy(cfg, counts, edges)]
            arrays = {c: np.array([r[c] for r in rows]) for c in COLUMNS}
            arrays["hist"] = arrays["hist"].astype(str)
            arrays["status"] = arrays["status"].astype(str)
            cpu = time.process_time() - c0
            attrs = {"cpu_seconds": cpu, "wall_seconds": time.perf_counter() - t0}
            with write_h5(path, attrs) as f:
                write_group(f.create_group("toys"), arrays)
            print(f"{variant} {fam} chunk {k}: {cpu:.1f} s CPU", flush=True)


def load(folder: Path, fam: str) -> tuple[dict[str, np.ndarray], float] | None:
    """Rows of one family under ``folder``: this script's chunk files (``<fam>-<k>.h5``), or
    a ``gprpipe run`` of user_configs/hps2015_toyscan.toml (point ``pattern-<fam>__toy__``:
    its merged ``toyscan.h5``, else the toyscan part files committed so far). CPU seconds
    are known for the chunk files only (NaN otherwise: see the run's own timing)."""
    parts = sorted(folder.glob(f"{fam}-*.h5"))
    cpu = 0.0
    if not parts:
        points = sorted(folder.glob(f"**/pattern-{fam}__toy__/"))
        points = [
            p for p in points if (p / "toyscan.h5").exists() or (p / "parts" / "toyscan").exists()
        ]
        if not points:
            return None
        pt = points[0]
        parts = (
            [pt / "toyscan.h5"]
            if (pt / "toyscan.h5").exists()
            else sorted((pt / "parts" / "toyscan").glob("*.h5"))
        )
        cpu = np.nan
    arrays = []
    for p in parts:
        with h5py.File(p, "r") as f:
            arrays.append(read_group(f["toys"]))
            cpu += float(f.attrs.get("cpu_seconds", f.attrs.get("cpu", np.nan)))
    arrays = [a for a in arrays if a["toy"].size]
    if not arrays:
        return None
    return {c: np.concatenate([a[c] for a in arrays]) for c in COLUMNS}, cpu


def per_mass_tail(toys: dict[str, np.ndarray], t: float = 3.0) -> list[tuple[float, int, int]]:
    """(mass, unflagged rows with Z_local > t, unflagged rows) per mass, largest count first."""
    ok = toys["status"].astype(str) == "ok"
    out = []
    for m in np.unique(toys["mass_GeV"]):
        sel = ok & (toys["mass_GeV"] == m)
        out.append((float(m), int(np.sum(toys["Z_local"][sel] > t)), int(sel.sum())))
    return sorted(out, key=lambda r: -r[1])


def summary(out: Path, table: Path | None, note: str | None = None) -> None:
    lines = [
        "# Spurious signal of the 2015 scan on functional-form background toys",
        "",
        "Generated by `benchmarks/study_toyscan.py summary`. Per training range: the",
        "whole-scan tail fractions of Z_local over the unflagged rows (errors from the",
        "spread over toys, as the rows of one toy are correlated), the largest unflagged",
        "Z_local, and per mass the mean A_hat over the toys divided by the mean sigma_A",
        "(the spurious signal in units of the statistical error) with the standard error",
        "of that mean.",
        "",
        *([note, ""] if note else []),
    ]
    for variant in VARIANTS:
        per_fam, every, ovl = {}, [], []
        for fam in FAMILIES:
            got = load(out / variant, fam)
            if got is None:
                continue
            toys, cpu = got
            ov, s, mz = overview(toys), summarize(toys), max_z_per_toy(toys)
            per_fam[fam] = s
            st = toys["status"].astype(str)
            ovl.append(
                f"| {fam} | {ov['n_toys']} | {ov['n_ok']} | {ov['n_flagged']} | "
                f"{ov['frac_Z_gt2']:.4f} +- {ov['frac_Z_gt2_err']:.4f} | "
                f"{ov['frac_Z_gt3']:.4f} +- {ov['frac_Z_gt3_err']:.4f} | "
                f"{ov['max_Z_local_ok']:.2f} | {ov['n_ok_Z_gt5']} | "
                f"{int(np.sum((st != 'ok') & (toys['Z_local'] > 5)))} | "
                f"{np.mean(mz >= 3):.2f} |"
            )
            every.append({**toys, "toy": toys["toy"] + 1000 * len(every)})
            print(
                f"{variant} {fam}: {ov['n_toys']} toys, {ov['n_ok']} unflagged rows, "
                f"{ov['n_flagged']} flagged or failed; {cpu / ov['n_toys']:.1f} s CPU per toy "
                f"(nan: a gprpipe run, see its timing)"
            )
            for t in (2.0, 3.0):
                print(
                    f"  Z_local > {t:g}: {ov[f'frac_Z_gt{t:g}']:.5f} +- "
                    f"{ov[f'frac_Z_gt{t:g}_err']:.5f} (background-only {TAILS[t]:.5f})"
                )
            j = int(np.nanargmax(np.abs(s["pull_mean"])))
            print(
                f"  max unflagged Z_local {ov['max_Z_local_ok']:.2f} (flagged: "
                f"{ov['max_Z_local_flagged']:.2f}); unflagged Z_local > 5: {ov['n_ok_Z_gt5']}; "
                f"max Z per toy >= 3 in {np.mean(mz >= 3):.2f} of the toys"
            )
            st = toys["status"].astype(str)
            kinds, cnt = np.unique(st[st != "ok"], return_counts=True)
            fl_m = np.unique(toys["mass_GeV"][st != "ok"])
            print(
                "  flagged rows by status: "
                + ", ".join(f"{k} {c}" for k, c in zip(kinds, cnt))
                + (
                    f"; at {len(fl_m)} masses, {1e3 * fl_m.min():g}-{1e3 * fl_m.max():g} MeV: "
                    + " ".join(f"{1e3 * m:g}" for m in fl_m)
                    if fl_m.size
                    else ""
                )
            )
            top = [r for r in per_mass_tail(toys) if r[1] > 0]
            print(
                "  Z_local > 3 by mass (MeV: count/rows): "
                + ", ".join(f"{1e3 * m:g}: {k}/{n}" for m, k, n in top[:12])
            )
            lo = toys["mass_GeV"] < 0.0305
            ok = toys["status"].astype(str) == "ok"
            for name, sel in (("20-30 MeV", lo), ("31-130 MeV", ~lo)):
                zz = toys["Z_local"][ok & sel]
                pull = toys["A_hat"][ok & sel] / toys["sigma_A"][ok & sel]
                print(
                    f"  {name}: Z_local > 3 in {np.mean(zz > 3):.5f} of {zz.size} rows; "
                    f"pull (A_hat/sigma_A) mean {pull.mean():+.3f}, width {pull.std():.3f}"
                )
            print(
                f"  pull mean {np.nanmean(s['pull_mean']):+.3f} over masses, largest "
                f"{s['pull_mean'][j]:+.2f} at {1e3 * s['mass_GeV'][j]:g} MeV; pull width median "
                f"{np.nanmedian(s['pull_width']):.2f}"
            )
        if every:
            allt = {
                c: np.concatenate([a[c] for a in every])
                for c in ("toy", "Z_local", "status", "mass_GeV")
            }
            fr = {}
            for t in (2.0, 3.0):
                fr[t] = tail_fraction(allt, t)
                print(
                    f"{variant}, all families: Z_local > {t:g}: {fr[t][0]:.5f} +- "
                    f"{fr[t][1]:.5f} (background-only {TAILS[t]:.5f})"
                )
            inner = {c: v[allt["mass_GeV"] > 0.0305] for c, v in allt.items()}
            fi = tail_fraction(inner, 3.0)
            print(
                f"{variant}, all families, 31-130 MeV only: Z_local > 3: {fi[0]:.5f} +- {fi[1]:.5f}"
            )
            ntot = len(np.unique(allt["toy"]))
            ovl.append(
                f"| all | {ntot} | | | {fr[2.0][0]:.4f} +- {fr[2.0][1]:.4f} | "
                f"**{fr[3.0][0]:.4f} +- {fr[3.0][1]:.4f}** | | | | |"
            )
            ovl.append(f"| all, 31-130 MeV | {ntot} | | | | {fi[0]:.4f} +- {fi[1]:.4f} | | | | |")
            ovl.append(f"| background only | | | | {TAILS[2.0]:.4f} | {TAILS[3.0]:.5f} | | 0 | | |")
        if per_fam:
            fams = list(per_fam)
            n = {f: int(np.median(per_fam[f]["n_toys"])) for f in fams}
            where = (
                "15-135 MeV (the fit range)"
                if variant == "fitrange"
                else "the whole histogram (0-150 MeV)"
            )
            lines += [
                f"## GP trained on {where}",
                "",
                "| family | toys | unflagged rows | flagged rows | Z_local > 2 "
                "| Z_local > 3 | max unflagged Z_local | unflagged Z_local > 5 "
                "| flagged Z_local > 5 | toys with max Z >= 3 |",
                "|---" * 10 + "|",
                *ovl,
                "",
                "Spurious signal per mass (mean A_hat / mean sigma_A, unflagged rows):",
                "",
                "| mass [MeV] | " + " | ".join(f"{f} ({n[f]} toys)" for f in fams) + " |",
                "|---|" + "---|" * len(fams),
            ]
            s0 = per_fam[fams[0]]
            for i, m in enumerate(s0["mass_GeV"]):
                cells = []
                for f in fams:
                    s = per_fam[f]
                    cells.append(
                        f"{s['spurious_ratio'][i]:+.2f} +- "
                        f"{s['A_hat_mean_err'][i] / s['sigma_A_mean'][i]:.2f}"
                    )
                lines.append(f"| {1e3 * m:g} | " + " | ".join(cells) + " |")
            lines.append("")
    if table is not None:
        table.write_text("\n".join(lines) + "\n")
        print(f"table: {table}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=("run", "summary"))
    ap.add_argument("variant", nargs="?", choices=tuple(VARIANTS), default="fitrange")
    ap.add_argument("--toys", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("study_toyscan"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--note", default=None, help="a paragraph for the table file (run conditions)")
    args = ap.parse_args()
    if args.what == "run":
        run(args.variant, args.toys, args.out, args.data)
    else:
        summary(args.out, args.table, args.note)


if __name__ == "__main__":
    main()
