"""``gprpipe init NAME --template T``: a ready, commented user config in the current folder.

The written file inherits the shipped template by name (so it works from any folder),
names every dataset of the template with its data file and histogram, and explains the
few keys a user changes first. Without ``--data`` a template whose datasets fit in the
shipped demo spectrum (0-150 MeV) points at that spectrum, so the first run works at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gprpipe.config.checks import CONTROL, SAFE_NAME
from gprpipe.config.issues import name_hint
from gprpipe.config.loader import get_dotted, load_chain, shipped_dir, starting_templates
from gprpipe.errors import GprpipeError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEMO = "{{ gprpipe.data }}/demo_2015.root"
#: the label a config written by ``init`` gives the demo spectrum
DEMO_LABEL = "Demo (synthetic)"
PLACEHOLDER = "# set this: your ROOT file"  # a path init could not fill in


def _example_masses(merged: dict[str, Any]) -> list[float]:
    """Three round masses inside every dataset's scan range (else the first's): the
    example the written config offers must validate once uncommented (a fixed 30 MeV lay
    outside the 2016 range)."""
    ranges = [ds["range"] for ds in merged["datasets"].values() if ds.get("range")]
    if not ranges:
        return [0.03, 0.06, 0.1]
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if lo >= hi:
        lo, hi = ranges[0]
    out: list[float] = []
    for f in (0.15, 0.45, 0.75):
        m = round(lo + f * (hi - lo), 2)
        m = m if lo < m < hi else round(lo + f * (hi - lo), 3)
        if m not in out:
            out.append(m)
    return out


def _template(name: str) -> Path:
    names = starting_templates()
    if name.removesuffix(".toml") not in names:
        hint = name_hint(name.removesuffix(".toml"), names)  # as base.template's
        raise GprpipeError(
            f"--template {name!r}: not a shipped template ({', '.join(names)})" + (hint or ".")
        )
    return shipped_dir("templates") / f"{name.removesuffix('.toml')}.toml"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def data_files(data: Sequence[str], datasets: Sequence[str], template: str) -> dict[str, str]:
    """Dataset -> ROOT file from ``--data`` values: ``FILE`` for a template of one dataset,
    ``DATASET=FILE`` for any. One file for every dataset of a combination would combine a
    spectrum with itself, so a bare file is refused there."""
    out: dict[str, str] = {}
    for item in data:
        key, sep, file = item.partition("=")
        other = sep and key not in datasets and not Path(item).expanduser().exists()
        # DATASET=FILE with a FILE that is there: a key no dataset may have is said so
        # (the whole value read as a file name: "no such file", for a file that is there)
        keyed = other and bool(file.strip()) and Path(file).expanduser().exists()
        if keyed and not SAFE_NAME.match(key):
            raise GprpipeError(
                f"--data {item}: {key!r} is not a valid dataset key (letters, digits, '_', "
                "'+' or '-', starting with a letter or digit); the template "
                f"{template!r} has the dataset{'s' * (len(datasets) != 1)} "
                f"{', '.join(datasets)}."
            )
        named = sep and key not in datasets and re.fullmatch(r"\w+", key) is not None
        if (named or keyed) and (len(datasets) > 1 or not Path(item).expanduser().exists()):
            raise GprpipeError(
                f"--data {item}: the template {template!r} has no dataset {key!r} (it has "
                f"{', '.join(datasets)})."
            )
        if not (sep and key in datasets):
            key, file = (datasets[0] if len(datasets) == 1 else ""), item
        if not file.strip():
            raise GprpipeError(f"--data {item}: no file given after '='.")
        if not key:
            each = " ".join(f"--data {d}=FILE" for d in datasets)
            raise GprpipeError(
                f"--data {item}: the template {template!r} has {len(datasets)} datasets "
                f"({', '.join(datasets)}), each with its own data file; give one per "
                f"dataset: {each}."
            )
        if key in out:
            raise GprpipeError(f"--data {item}: dataset {key!r} is given a file twice.")
        if file in out.values():
            raise GprpipeError(
                f"--data {item}: the same file as another dataset; a combination of a "
                "spectrum with itself counts its events twice (give each its own data)."
            )
        out[key] = file
    return out


def init_text(
    name: str, template: str, data: Sequence[str] = (), folder: Path | None = None
) -> str:
    """The text of the new config (see the module docstring); ``data``: the ``--data``
    values, their files checked in ``folder`` when it is given."""
    if not _NAME.match(name):
        raise GprpipeError(
            f"init {name!r}: a name is letters, digits, '_', '.' or '-' "
            "(it names the file and the run folder)."
        )
    chain = load_chain(_template(template))
    datasets = dict(chain.data.get("datasets") or {})
    files = data_files(data, list(datasets), template.removesuffix(".toml"))
    if folder is not None:
        for item, file in zip(data, files.values(), strict=True):
            _check_data(item, file, folder)
    from gprpipe.config import apply_cards  # the cards give each dataset's range and hist

    merged = {"datasets": {k: dict(v) for k, v in datasets.items()}}
    apply_cards(merged, chain)
    fits_demo = all(
        get_dotted(ds, "range", [0, 1])[1] <= 0.15 for ds in merged["datasets"].values()
    )
    tname = template.removesuffix(".toml")
    lines = [
        f"# {name}: a gprpipe config (written by: gprpipe init {name} --template {tname}"
        + "".join(f" --data {d}" for d in data)
        + ").",
        f"# It inherits the shipped template {tname!r} and overrides only what is set here;",
        f"# `gprpipe render {name}.toml` prints the full config, `gprpipe validate {name}.toml`",
        "# checks it (data file and histogram included), `gprpipe schema` lists every key",
        "# of the rendered config.",
        "# Masses, ranges and widths are in GeV. Strings may use Jinja2: {{ base.name }}.",
        "[base]",
        f"template = {_toml_str(tname)}   # a shipped template name: works from any folder",
        f"name = {_toml_str(name)}",
        'output = "runs/{{ base.name }}"   # run directory, relative to where you run gprpipe',
        '# executor = "slurm"            # run the tasks as SLURM job arrays',
        "# blind = true                  # expected limits only, no observed result, until"
        " 'gprpipe run --unblind' (default false: a run on real data shows them)",
        "",
    ]
    for key, ds in merged["datasets"].items():
        rng = ds.get("range")
        lines.append(
            f"[datasets.{key}]"
            + (f"   # card {ds['card']!r}: scan range {rng[0]:g}-{rng[1]:g} GeV" if rng else "")
        )
        if key in files:
            lines.append(f"path = {_toml_str(files[key])}   # ROOT file (relative to this file)")
        elif fits_demo and not files:
            lines.append(
                f"path = {_toml_str(DEMO)}   # the shipped synthetic demo "
                "spectrum: replace by your ROOT file"
            )
            lines.append(  # its figures must not say they show the experiment's data
                f"label = {_toml_str(DEMO_LABEL)}   # the label on figures: drop it with your data"
            )
        else:
            lines.append(f'path = "{key}.root"   {PLACEHOLDER} (relative to this file)')
        lines.append(
            f"hist = {_toml_str(str(ds.get('hist', 'input_hist')))}   # histogram "
            'name in that file (folders allowed: "dir/h")'
        )
        lines.append("")
    lines += [
        "[scan]",
        f"# masses = [{', '.join(f'{m:.3f}' for m in _example_masses(merged))}]   # a few "
        "test masses (GeV) instead of the full 1 MeV scan",
        "",
        "[fit]",
        "# blind_nsigma = 1.64              # blind window half-width in units of sigma(m)",
        "",
        "[steps]",
        'run = ["load", "fit", "limit", "plot"]   # add "inject" for injection studies',
        "",
    ]
    return "\n".join(lines)


def write_init(
    name: str, template: str, folder: Path, data: Sequence[str] = (), force: bool = False
) -> Path:
    """Write ``folder/NAME.toml``; refuses to overwrite an existing file unless ``force``.
    ``data``: the ``--data`` values (``FILE`` or ``DATASET=FILE``)."""
    path = folder / f"{name.removesuffix('.toml')}.toml"
    text = init_text(name.removesuffix(".toml"), template, data, folder)
    if (path.exists() or path.is_symlink()) and not force:  # (a link to nothing too)
        raise GprpipeError(f"{path}: already exists; choose another name or use --force.")
    from gprpipe.io.atomic import atomic_write_text

    atomic_write_text(path, text)
    return path


def _check_data(data: str, file: str, folder: Path) -> None:
    """Refuse the file of the ``--data`` value ``data`` when it is not there or the config
    could not hold its name."""
    if CONTROL.search(file):
        raise GprpipeError(
            f"--data {data!r}: a file name with control or invisible format characters; "
            "rename the file."
        )
    if any(d in file for d in ("{{", "{%", "{#")):
        raise GprpipeError(
            f"--data {data!r}: a file name with Jinja2 delimiters ({{{{, {{%, {{#) would be "
            "rendered as a template in the config; rename the file."
        )
    if not (folder / Path(file).expanduser()).is_file():
        roots = sorted(p.name for p in (folder / Path(file).expanduser()).glob("*.root"))
        what = (
            f"a folder; give one ROOT file in it ({', '.join(roots[:4])}"
            f"{', ...' if len(roots) > 4 else ''})"
            if roots
            else "a folder without ROOT files; give your ROOT file"
            if (folder / Path(file).expanduser()).is_dir()
            else "no such file; give your ROOT file"
        )
        raise GprpipeError(
            f"--data {data}: {what}, or leave --data out to start from the shipped demo spectrum."
        )
