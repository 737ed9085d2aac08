"""The typed schema of a (rendered) gprpipe config.

Every config section of docs/design.md is a pydantic model that forbids unknown keys. Masses and
ranges are in GeV. Defaults here mirror ``templates/defaults.toml`` (which documents them).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gprpipe.config.issues import Issue, Loc, Where, at, did_you_mean, key_only, unique
from gprpipe.errors import SHOWN_ERRORS
from gprpipe.io.toml_write import toml_key
from gprpipe.stats.quality import SPARSE_S_MAX
from gprpipe.stats.window import scan_masses
from gprpipe.units import MASS_TOL_GEV

STEPS = ("load", "fit", "limit", "inject", "toyscan", "plot")
Step = Literal["load", "fit", "limit", "inject", "toyscan", "plot"]
DEFAULT_STEPS: tuple[Step, ...] = ("load", "fit", "limit", "plot")
VARIANTS: tuple[Literal["conditional", "refit"], ...] = ("conditional", "refit")
Format = Literal["png", "pdf", "svg"]
FIGURE_FORMATS: tuple[Format, ...] = get_args(Format)  # every figure format offered
FORMATS: tuple[Format, ...] = ("png", "pdf")  # the default
MAX_JOBS = 1024  # local worker processes (base.jobs, --jobs, the TUI's Workers)


class Section(BaseModel):
    # coerce_numbers_to_str: ``--set base.name=2015`` (parsed as TOML: an int) is a name;
    # allow_inf_nan=False: inf and nan are never a valid setting
    model_config = ConfigDict(
        extra="forbid", validate_default=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: Any, info: ValidationInfo) -> Any:
        """true/false where a number belongs (pydantic would read it as 1/0)."""
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.annotation in (bool, bool | None):
            return _strict_bool(v)
        if field is None or _has_bool(field.annotation) or not _has_number(field.annotation):
            return v  # (a table or a text: pydantic names what it takes)
        if isinstance(v, bool) or (
            isinstance(v, list | tuple) and any(isinstance(x, bool) for x in v)
        ):
            raise ValueError("takes a number, not true/false")
        return v


def _strict_bool(v: Any) -> Any:
    """true/false, or the text of one (a Jinja expression renders to ``True``): pydantic
    would also read 0, 1, "yes" and "off" as a switch, so a typo turns a check off."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(f"takes true or false, not {v!r}")


def _has_bool(annotation: Any) -> bool:
    """Whether a type annotation admits a bool (``bool``, ``bool | None``, ``list[bool]``)."""
    return annotation is bool or any(_has_bool(a) for a in get_args(annotation))


def _has_number(annotation: Any) -> bool:
    """Whether a type annotation admits a number (``int``, ``float | None``, ...)."""
    return annotation in (int, float) or any(_has_number(a) for a in get_args(annotation))


def _check_image(image: str) -> None:
    """An image reference, never an option of the engine (``--privileged``) nor more than
    one word: the engine's command line reads it where it reads its options. Nor ``$``,
    a backquote or a backslash: apptainer evaluates the task's ``GPRPIPE_IMAGE`` in a
    shell (validate said valid, and the run refused it naming no key; a review)."""
    if not image or image.startswith("-") or any(c.isspace() or c in ',"$`\\' for c in image):
        raise ValueError(
            f"{image!r} is not a container image name (e.g. ghcr.io/org/gprpipe:1.0 or "
            "docker://org/gprpipe:1.0); it may not be empty, begin with '-' or hold spaces, "
            "commas, double quotes, '$', backquotes or backslashes"
        )


#: bytes kept below a run directory's path for its own files
#: (``<point>/parts/<step>/<dataset>-NNN.h5`` and temporary names: a grid point's folder
#: name has at most 120 characters, a dataset key 64)
RUN_PATH_ROOM = 512


def _path_fits(path: str | None, room: int = 0) -> str | None:
    """A path the system can open: at most 4095 bytes (less ``room``: a run directory's
    own files lie below it), no name in it above 255 bytes (a longer one raised 'File
    name too long' wherever it was first used)."""
    if path is None:
        return None
    raw = os.fsencode(path)
    longest = max(raw.split(b"/"), key=len)
    most = 4095 - room
    if len(raw) > most or len(longest) > 255:
        what = (
            f"a path of {len(raw)} bytes (at most {most}"
            + (", leaving room for the run's own files)" if room else ")")
            if len(raw) > most
            else f"a file or folder name of {len(longest)} bytes (at most 255)"
        )
        shown = path if len(path) <= 60 else f"{path[:57]}..."
        raise ValueError(f"{shown!r} holds {what}: too long for the file system")
    return path


#: the longest label a figure shows (a label of 20,000 characters took 5 GB in the plot
#: step: the figure is sized to its text; 1,000 keep runs made before the cap readable)
LABEL_MAX = 1000


class Base(Section):
    name: str = Field(
        "gprpipe", max_length=LABEL_MAX, description="Analysis name (used in paths and titles)."
    )
    output: str = Field("runs/{{ base.name }}", description="Run directory (relative to the CWD).")
    engine: Literal["local", "docker", "podman", "apptainer"] = "local"
    image: str | None = Field(None, description="Container image for container engines.")
    step_images: dict[Step, str] = Field(
        default_factory=dict, description="Per-step image for container engines."
    )
    env: list[str] = Field(
        default_factory=list,
        description="Environment variables that templates may read as ENV.<name> (an allow-list).",
    )
    check_image_version: bool = True
    gpu: bool = False
    executor: Literal["local", "slurm"] = "local"
    jobs: int = Field(
        2, ge=1, le=MAX_JOBS, description="Local worker processes (one per task at most)."
    )
    seed: int = Field(20260101, ge=0, description="Master seed; per-task seeds derive from it.")
    blind: bool = Field(
        False,
        description="Blinded: nothing that depends on the observed "
        "counts in a blind window is computed; lifted only by run --unblind.",
    )
    max_points: int = Field(1000, ge=1, description="Most grid points a config may have.")
    max_masses: int = Field(100_000, ge=1, description="Most test masses per dataset.")
    max_tasks: int = Field(100_000, ge=1, description="Most tasks a run may plan.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if v.strip() in ("", "."):
            raise ValueError(
                f"{v!r} names no folder: the run directory runs/<name> would be the folder "
                "runs/ itself, which holds other runs; give the analysis a name"
            )
        if ".." in re.split(r"[/\\]", v):
            raise ValueError(
                f"{v!r} climbs out of the folder it names (a '..'); it names the run "
                "directory runs/<name>: set base.output to run elsewhere"
            )
        return v

    @field_validator("output")
    @classmethod
    def _a_folder_of_its_own(cls, v: str) -> str:
        if os.path.normpath(v.strip() or ".") == ".":  # "", ".", "./.", "x/.."
            raise ValueError(
                f"{v!r} is the current folder, not a run directory of its own (a run writes "
                "run.json, a lock and one folder per point there); name one, e.g. "
                "runs/{{ base.name }}"
            )
        return v

    @model_validator(mode="after")
    def _output_fits(self) -> Base:
        """(After the fields: a name refused on its own is not said again as a path.)"""
        try:
            _path_fits(str(Path(self.output).absolute()), room=RUN_PATH_ROOM)
        except ValueError as exc:
            size = len(os.fsencode(self.name))
            if size > 255 and self.name in Path(self.output).parts:  # runs/{{ base.name }}
                shown = self.name if len(self.name) <= 60 else f"{self.name[:57]}..."
                raise ValueError(
                    f"base.name: {shown!r} is {size} bytes, too long for the folder of the "
                    "run directory it names (at most 255); give a shorter name"
                ) from None
            raise ValueError(f"base.output: {exc}") from None
        return self

    @field_validator("image")
    @classmethod
    def _image_name(cls, v: str | None) -> str | None:
        if v is not None:
            _check_image(v)
        return v

    @field_validator("step_images")
    @classmethod
    def _step_image_names(cls, v: dict[str, str]) -> dict[str, str]:
        for image in v.values():
            _check_image(image)
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an environment variable name")
        return v


class Dataset(Section):
    card: str | None = Field(None, description="Dataset card (physics defaults).")
    label: str = Field("", max_length=LABEL_MAX, description="Name on figures and tables.")
    path: str = Field(..., description="ROOT file with the invariant-mass histogram.")
    hist: str = Field("input_hist", description="Histogram name (may include folders).")
    _paths_fit = field_validator("path", "card")(_path_fits)
    range: tuple[float, float] = Field(..., description="Scan range [lo, hi] in GeV.")
    rebin: int = Field(
        1,
        ge=1,
        description="Merge groups of this many bins; trailing bins that fill no group are "
        "dropped (a range or data_range reaching into them is refused).",
    )
    enabled: bool = True
    data_range: tuple[float, float] | None = Field(None, description="GP training range (GeV).")
    sigma_coeffs: list[float] = Field(..., min_length=1, description="sigma(m)=sum c_k m^k.")
    sigma_tail_m0: float | None = None
    sigma_tail_slope: float | None = None
    frad_coeffs: list[float] = Field(default_factory=lambda: [0.05], min_length=1)
    frad_penalty: float = Field(0.0, ge=0.0, lt=1.0)
    ls_hi_factor: float | None = Field(None, gt=0)
    ls_floor_factor: float = Field(1.0, gt=0)

    @field_validator("range", "data_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (0 <= v[0] < v[1]):
            raise ValueError(f"must be [lo, hi] with 0 <= lo < hi, got {list(v)}")
        return v


def listed_once(v: list[Any] | None) -> list[Any] | None:
    """A list whose entries count once each (a repeated dataset was combined with itself)."""
    for i, x in enumerate(v or ()):
        if x in v[:i]:  # type: ignore[index]
            raise ValueError(f"{x!r} is listed twice")
    return v


class Scan(Section):
    mass_step: float = Field(0.001, gt=0)
    masses: list[float] | None = Field(None, description="Explicit masses (GeV), else range/step.")
    datasets: list[str] | None = Field(None, description="Datasets to scan (default: enabled).")
    combined: bool = False
    chunk_size: int = Field(
        16, ge=1, description="Masses per fit/limit task (the same plan on every executor)."
    )

    _once = field_validator("datasets")(listed_once)


class Fit(Section):
    blind_nsigma: float = Field(1.64, gt=0)
    train_exclude_nsigma: float | None = Field(None, gt=0)
    # (a floor far below any length scale the data resolve: ~1e-160 underflowed the
    # kernel's exponent to a division by zero in the fit, a review)
    ls_lo_factor: float = Field(0.5, ge=1e-6, description="Length-scale floor / sigma_x.")
    ls_hi_factor: float = Field(8.0, gt=0)
    n_restarts: int = Field(2, ge=0, le=100)
    signal_leakage: Literal["model", "ignore"] = Field(
        "model", description="model: leakage-aware template w_eff; ignore: w as it is."
    )
    gof_nsigma: float = Field(5.0, gt=0, description="GoF region beyond the window, in sigma_m.")
    gof_p_min: float = Field(1e-3, ge=0, lt=1, description="Flag a mass when gof_p is below.")
    require_two_sidebands: bool = True
    min_sideband_bins: int = Field(3, ge=1, description="Training bins per side in the region.")
    min_sideband_nsigma: float = Field(
        0.0,
        ge=0,
        description="Training bins per side in the region must also span this many sigma_m "
        "(0: off); a window next to the end of the training range is an extrapolation.",
    )
    sparse_s_max: float = Field(
        SPARSE_S_MAX,
        gt=0,
        allow_inf_nan=True,
        description="Flag a mass (flag_sparse) when sqrt(window bins / mean events per bin "
        "next to it) is above (inf: off); the GP's background there is biased high.",
    )


#: toys of one task (limit toys and bands per mass, injection toys per mass and strength,
#: whole-scan toys per task): a worker holds them at once, about 4 kB each (a million
#: band toys took 4 GB), so more would fail with "out of memory" after the earlier steps
MAX_TOYS = 100_000
MAX_GLOBAL_TOYS = 1_000_000  # whole-scan toys in all (tasks of global_toys_chunk)


class Limit(Section):
    alpha: float = Field(0.05, gt=0, le=0.5, description="CLs test size: 0.05 gives 95% CL limits.")
    mode: Literal["asymptotic", "toys"] = "asymptotic"
    n_toys: int = Field(2000, ge=10, le=MAX_TOYS)
    bands: Literal["asymptotic", "toys"] = "asymptotic"
    band_toys: int = Field(10000, ge=10, le=MAX_TOYS)
    global_toys: int = Field(
        0,
        ge=0,
        le=MAX_GLOBAL_TOYS,
        description="Whole-scan background-only toys for the "
        "toy look-elsewhere correction (0: Sidak only).",
    )
    global_toys_chunk: int = Field(2500, ge=1, le=MAX_TOYS, description="Whole-scan toys per task.")
    global_toys_refit: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Toys also scanned with a GP refit "
        "at every mass (effect of the fixed-map approximation).",
    )

    @model_validator(mode="after")
    def _refit_among_toys(self) -> Limit:
        """The refit toys are the first of the whole-scan toys (more were cut silently)."""
        if self.global_toys_refit > self.global_toys:
            raise ValueError(
                f"limit.global_toys_refit: {self.global_toys_refit} is more than "
                f"limit.global_toys = {self.global_toys}; the refit rescans the first "
                "global_toys_refit of those toys"
            )
        return self


MAX_STRENGTH = 1e9  # in sigma_A,ref units or events: far beyond any study, and Poisson-safe


class Inject(Section):
    masses: list[float] = Field(default_factory=list)
    strengths: list[float] = Field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0, 5.0])
    n_toys: int = Field(1000, ge=2, le=MAX_TOYS)
    refit_gp: bool = False
    mode: Literal["poisson", "multinomial"] = "poisson"
    strength_unit: Literal["sigma_A", "yield"] = Field(
        "sigma_A", description="strengths in sigma_A,ref units or as signal yields."
    )
    background: Literal["gp", "histograms"] = Field(
        "gp", description="gp: toys from the GP; histograms: the histograms matched below."
    )
    histograms: str | None = Field(
        None, description="Histogram pattern in the dataset's ROOT file, e.g. 'f/f_toy_*'."
    )

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("list at least one strength (0 is the background-only toy)")
        return strengths(v)

    @model_validator(mode="after")
    def _histograms(self) -> Inject:
        if self.background == "histograms":
            if not self.histograms:
                raise ValueError(
                    "inject.background: 'histograms' needs inject.histograms "
                    "(a histogram pattern such as 'fShiftSigPow/*_toy_*')"
                )
            if not self.refit_gp:
                raise ValueError(
                    "inject.background: 'histograms' needs inject.refit_gp = "
                    "true (the GP is refitted on every histogram)"
                )
        return self


def strengths(v: list[float]) -> list[float]:
    """Injected signal strengths: each at least 0, at most :data:`MAX_STRENGTH`, once."""
    for i, z in enumerate(v):
        if z < 0:
            raise ValueError(f"{z:g} is negative; a strength is a signal size, at least 0")
        if z > MAX_STRENGTH:
            raise ValueError(f"{z:g} is above {MAX_STRENGTH:g}; no toy can be drawn for it")
        if z in v[:i]:
            raise ValueError(f"{z:g} is listed twice")
        alike = [y for y in v[:i] if f"{y:g}" == f"{z:g}"]
        if alike:  # outputs name a strength by its 6 significant digits (60MeV_z3)
            raise ValueError(f"{alike[0]!r} and {z!r} print alike ({z:g}); give distinct strengths")
    return v


class Displays(Section):
    masses: list[float] | None = Field(
        None, description="Extraction displays at these masses (GeV; default inject.masses)."
    )
    z: list[float] = Field(
        default_factory=lambda: [0.0, 3.0, 5.0],
        description="Injected strengths (units of sigma_A,ref).",
    )
    variants: list[Literal["conditional", "refit"]] = Field(default_factory=lambda: list(VARIANTS))
    refit_toys: int = Field(
        5,
        ge=1,
        le=1000,  # a GP refit each, in the plot step
        description="Refit toys to pick the median one from "
        "when inject.h5 has no refit toys of that mass.",
    )
    observed: list[float] | None = Field(
        None,
        description="Observed displays at these masses (GeV; default: each dataset's and "
        "the combination's most significant mass, and every dataset at the combination's).",
    )
    datasets: list[str] | None = Field(
        None,
        description="Datasets (and 'combined') to display (default: all scanned, and combined).",
    )

    _z = field_validator("z")(strengths)
    _once = field_validator("datasets", "observed")(listed_once)


class ToyScan(Section):
    file: str | None = Field(None, description="ROOT file with background-only toy histograms.")
    _file_fits = field_validator("file")(_path_fits)
    pattern: str = Field(
        "*_toy_*",
        description="Histogram-name pattern (fnmatch, folders "
        "allowed), e.g. 'fShiftSigPowTail/*_toy_*'.",
    )
    max_toys: int = Field(
        100, ge=1, le=MAX_TOYS, description="Scan at most this many matching toys."
    )
    chunk: int = Field(10, ge=1, description="Toys per task.")
    dataset: str | None = Field(
        None,
        description="Dataset whose card, rebin, range and "
        "data_range apply (default: the first scanned).",
    )


class Plot(Section):
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS))
    style: Literal["hep", "plain"] = "hep"
    masses: list[float] = Field(default_factory=list, description="Masses for GP-fit plots.")
    experiment: str = Field(
        "HPS", max_length=LABEL_MAX, description="Experiment label on every figure."
    )
    status: str = Field(
        "Preliminary", max_length=LABEL_MAX, description="Status next to the experiment label."
    )
    displays: Displays = Field(default_factory=Displays)
    allocation_masses: list[float] = Field(
        default_factory=list,
        description="Masses (GeV) of the signal-allocation table and "
        "plot of a combination (default: three across the combined range).",
    )

    @field_validator("formats")
    @classmethod
    def _some_format(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("empty: the figures need a format (png, pdf or svg)")
        return listed_once(v) or v

    _once = field_validator("masses", "allocation_masses")(listed_once)


class Steps(Section):
    run: list[Step] = Field(default_factory=lambda: list(DEFAULT_STEPS))

    @field_validator("run")
    @classmethod
    def _known_order(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"empty: nothing would run; name one or more of {', '.join(STEPS)}")
        return [s for s in STEPS if s in v]


# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds, or no limit
_SLURM_TIME = re.compile(r"\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)


#: a SLURM memory size without unit is in MB: below this it is a unit forgotten (4: 4 MB)
MIN_BARE_MEMORY_MB = 100


class Slurm(Section):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "01:00:00"
    memory: str = "4G"
    cpus_per_task: int = Field(1, ge=1, le=4096)
    max_parallel: int | None = Field(None, ge=1)
    extra: list[str] = Field(
        default_factory=list,
        description="sbatch options, one per "
        "entry (e.g. '--constraint=cpu'), written as #SBATCH lines.",
    )

    @field_validator("time", mode="before")
    @classmethod
    def _toml_time(cls, v: Any) -> Any:
        """``time = 00:30:00`` (unquoted, a TOML time, as in ``--set slurm.time=00:30:00``)
        and ``time = 30`` (minutes) mean what they say in an sbatch script."""
        import datetime as dt

        if isinstance(v, dt.time) and not v.microsecond and v.tzinfo is None:
            return v.strftime("%H:%M:%S")
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _SLURM_TIME.fullmatch(v.strip()):
            raise ValueError(
                f"{v!r} is not a SLURM time limit (minutes, HH:MM:SS, D-HH:MM:SS or UNLIMITED)"
            )
        return v.strip()

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not re.fullmatch(r"\d+[KMGT]?", v.strip(), flags=re.IGNORECASE):
            raise ValueError(
                f"{v!r} is not a SLURM memory size (e.g. 4G, 500M, 4000; 0: all of the node)"
            )
        if v.strip().isdigit() and 0 < int(v) < MIN_BARE_MEMORY_MB:  # memory = 4: 4 MB
            raise ValueError(
                f"{v.strip()!r} is {int(v)} MB to SLURM (a size without unit is in megabytes), "
                f"too little for a task; write {v.strip()}G for gigabytes"
            )
        return v.strip()

    @field_validator("extra")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for item in v:
            option = item.strip().removeprefix("#SBATCH").strip()
            if not re.match(r"--?[A-Za-z]", option):
                raise ValueError(
                    f"{item!r} is not an sbatch option (one option per entry, "
                    "such as '--constraint=cpu')"
                )
            for word, name in _sbatch_names(option):
                # sbatch takes an unambiguous abbreviation of a long option (--outp: --output);
                # no sbatch option of its own is a prefix of these
                full = name if name in _SBATCH_MANAGED else None
                full = full or next((m for m in _SBATCH_MANAGED if m.startswith(name)), None)
                if full is None:
                    continue
                key = _SBATCH_MANAGED[full]
                said = (
                    ""
                    if full == name
                    else f"sbatch may read {word} as --{full} (it takes abbreviations), and "
                )
                sets = (
                    f"sbatch refuses --{full} beside the --{_SBATCH_BESIDE[full]} that gprpipe sets"
                    if full in _SBATCH_BESIDE
                    else _SBATCH_WHY.get(full, f"gprpipe sets --{full} itself")
                )
                why = f"; set slurm.{key} instead" if key else " (it runs each task once)"
                raise ValueError(f"{item!r}: {said}{sets}" + ("" if full in _SBATCH_WHY else why))
            if any(c.isspace() for c in option.split("=", 1)[0]):
                # an entry is one argument of its #SBATCH line: '--nodes 1' would be an
                # option of that name, which sbatch does not know
                word, rest = option.split(None, 1)
                try:
                    values = shlex.split(rest.lstrip("= "))
                except ValueError:
                    values = rest.lstrip("= ").split()
                quoted = rest.lstrip("= ").startswith(("'", '"'))
                if len(values) != 1 or (values[0].startswith("-") and not quoted):
                    raise ValueError(
                        f"{item!r}: one sbatch option per entry, its value after '=' (e.g. "
                        "'--nodes=1'); give each option an entry of its own"
                    )
                value = values[0]
                written = f"{word}={value}" if word.startswith("--") else f"{word}{value}"
                raise ValueError(
                    f"{item!r}: one sbatch option per entry, its value after '=' "
                    f"(write {written!r})"
                )
            value = option.split("=", 1)[1] if "=" in option else ""
            quoted = value.startswith(("'", '"'))  # a value sbatch reads whole
            if value and not quoted and (more := re.search(r"\s(--?[A-Za-z][^\s=]*)", value)):
                # one argument of its #SBATCH line: the value would swallow the option
                raise ValueError(
                    f"{item!r}: one sbatch option per entry; give {more.group(1)!r} an "
                    "entry of its own"
                )
        return v


#: sbatch options the job scripts set: the slurm key that sets them ('' when none does)
_SBATCH_MANAGED = {
    "array": "",
    "job-name": "",
    "output": "",
    "error": "",
    "dependency": "",
    "chdir": "",
    "wait": "",
    "parsable": "",
    "time": "time",
    "mem": "memory",
    "mem-per-cpu": "memory",
    "mem-per-gpu": "memory",
    "cpus-per-task": "cpus_per_task",
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "test-only": "",
    "wrap": "",
    "export": "",
    "export-file": "",
    "get-user-env": "",
    "container": "",
}
#: why the options no key sets are refused, where it is not that the job scripts set them
_ENVIRONMENT = (
    "sets the jobs' environment (e.g. BASH_ENV, LD_PRELOAD or PYTHONPATH: code that every "
    "job would run, which no config value may choose); the jobs take the environment of "
    "the command that submits them"
)
_SBATCH_WHY = {
    "test-only": "--test-only submits nothing (gprpipe checks the settings with it itself)",
    "wrap": "--wrap would replace the task's job script",
    "export": f"--export {_ENVIRONMENT}",
    "export-file": f"--export-file {_ENVIRONMENT}",
    "get-user-env": f"--get-user-env {_ENVIRONMENT}",
    "container": "--container runs every job in an OCI bundle the config names, not what "
    "gprpipe runs; choose an image with base.engine and base.image",
}
#: options sbatch refuses beside one the job scripts set
_SBATCH_BESIDE = {"mem-per-cpu": "mem", "mem-per-gpu": "mem"}
#: sbatch's short options that take no argument (a bundle such as -vJx goes on after them)
_SBATCH_FLAGS = frozenset("HOQsuvVhW")


def _sbatch_names(option: str) -> list[tuple[str, str]]:
    """(word, long option name) of every option in an ``extra`` entry, as sbatch reads an
    ``#SBATCH`` line: each word, and each letter of a bundle of short options up to the
    first that takes an argument (``-vJmine`` is ``-v -J mine``)."""
    try:
        words = shlex.split(option)
    except ValueError:
        words = option.split()
    out = []
    value_next = False  # the word after a short option that takes it as its argument
    for word in words:
        is_value, value_next = value_next, False
        if is_value or not word.startswith("-") or any(c.isspace() for c in word):
            continue  # a value (no option holds a space: "--comment '-o x'")
        if word.startswith("--"):
            if name := word[2:].split("=", 1)[0]:
                out.append((word.split("=", 1)[0], name))
            continue
        for k, letter in enumerate(word[1:], start=1):
            if letter in _SBATCH_SHORT:
                out.append((word, _SBATCH_SHORT[letter]))
            if letter not in _SBATCH_FLAGS:
                value_next = k == len(word) - 1  # '-C' 'cpu': its argument follows
                break
    return out


_SBATCH_SHORT = {
    "a": "array",
    "J": "job-name",
    "o": "output",
    "e": "error",
    "d": "dependency",
    "D": "chdir",
    "W": "wait",
    "t": "time",
    "c": "cpus-per-task",
    "p": "partition",
    "A": "account",
    "q": "qos",
}


class Config(Section):
    base: Base = Field(default_factory=Base)
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    scan: Scan = Field(default_factory=Scan)
    fit: Fit = Field(default_factory=Fit)
    limit: Limit = Field(default_factory=Limit)
    inject: Inject = Field(default_factory=Inject)
    toyscan: ToyScan = Field(default_factory=ToyScan)
    plot: Plot = Field(default_factory=Plot)
    steps: Steps = Field(default_factory=Steps)
    slurm: Slurm = Field(default_factory=Slurm)
    grid: dict[str, Any] = Field(default_factory=dict, description="Dotted key -> values.")

    @model_validator(mode="before")
    @classmethod
    def _unscanned_need_no_path(cls, data: Any) -> Any:
        """A dataset that is not scanned (``enabled = false``, or left out of
        ``scan.datasets``) needs no data file: its path is left empty, never read."""
        if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
            return data
        scan = data.get("scan")
        chosen = scan.get("datasets") if isinstance(scan, dict) else None
        datasets = dict(data["datasets"])
        for name, ds in datasets.items():
            if not isinstance(ds, dict) or "path" in ds:
                continue
            off = ds.get("enabled") is False or (isinstance(chosen, list) and name not in chosen)
            if off:
                datasets[name] = {**ds, "path": ""}
        return {**data, "datasets": datasets}

    @model_validator(mode="after")
    def _blind_training(self) -> Config:
        excl = self.fit.train_exclude_nsigma
        if self.base.blind and excl is not None and excl < self.fit.blind_nsigma:
            raise ValueError(
                f"fit.train_exclude_nsigma: {excl:g} is smaller than fit.blind_nsigma = "
                f"{self.fit.blind_nsigma:g}: the GP would be trained on blind-window counts, "
                "which base.blind forbids"
            )
        return self

    @model_validator(mode="after")
    def _tail_pairs(self) -> Config:
        """The linear resolution tail needs both keys (one alone was silently ignored)."""
        for name, ds in self.datasets.items():
            given = {"sigma_tail_m0": ds.sigma_tail_m0, "sigma_tail_slope": ds.sigma_tail_slope}
            missing = [k for k, v in given.items() if v is None]
            if len(missing) == 1:
                (other,) = set(given) - set(missing)
                raise ValueError(
                    f"datasets.{name}.{other}: the resolution tail needs "
                    f"datasets.{name}.{missing[0]} too (give both, or neither)"
                )
        return self

    @model_validator(mode="after")
    def _datasets_exist(self) -> Config:
        for name in self.scan.datasets or []:
            if name not in self.datasets:
                raise ValueError(
                    f"scan.datasets: {name!r} is not a dataset "
                    f"(have: {', '.join(self.datasets) or 'none'})"
                )
        if "toyscan" in self.steps.run:
            ts = self.toyscan
            if ts.file is None:
                raise ValueError("steps.run: includes 'toyscan', which needs toyscan.file")
            if ts.dataset is not None and ts.dataset not in self.scanned():
                raise ValueError(
                    f"toyscan.dataset: {ts.dataset!r} is not a scanned dataset "
                    f"(have: {', '.join(self.scanned()) or 'none'})"
                )
            if ts.dataset is None and not self.scanned():
                raise ValueError("toyscan.dataset: no scanned dataset to take the settings from")
        if "inject" in self.steps.run and not self.inject.masses:
            raise ValueError(
                "steps.run: includes 'inject', which needs inject.masses (it is empty: no "
                "injection study would run)"
            )
        return self

    @model_validator(mode="after")
    def _distinct_labels(self) -> Config:
        """Figures, tables and HEPData name each scanned dataset by its label (its key when
        unset): two alike would show two results under one name, and "Combined" names the
        joint fit."""
        seen: dict[str, str] = {}
        for name in self.scanned():  # (after _datasets_exist: every name is a dataset)
            label = self.datasets[name].label or name
            folded = " ".join(label.split()).casefold()
            if folded == "combined" and len(self.combined_masses()):  # (as the plan makes it)
                raise ValueError(
                    f"datasets.{name}.label: {label!r} names the joint fit (scan.combined) on "
                    "figures and tables; give the dataset a label of its own"
                )
            if folded in seen:
                raise ValueError(
                    f"datasets.{name}.label: {label!r} is also the label of datasets."
                    f"{seen[folded]}: figures, tables and HEPData would show two results "
                    "under one name; give each dataset a label of its own"
                )
            seen[folded] = name
        return self

    def toyscan_dataset(self) -> str:
        """The dataset whose settings the toy scans use."""
        return self.toyscan.dataset or self.scanned()[0]

    def scanned(self) -> list[str]:
        """Datasets the scan runs over, in config order."""
        names = self.scan.datasets if self.scan.datasets is not None else list(self.datasets)
        return [n for n in names if self.datasets[n].enabled]

    def data_files(self) -> list[tuple[str, str]]:
        """The files of the scanned datasets and, when the toyscan step runs, its toy file,
        each with the key that names it (``datasets.<key>.path``, ``toyscan.file``)."""
        files = [(self.datasets[n].path, f"datasets.{n}.path") for n in self.scanned()]
        if "toyscan" in self.steps.run and self.toyscan.file:
            files.append((self.toyscan.file, "toyscan.file"))
        return files

    def test_masses(self, name: str) -> np.ndarray:
        """Test masses of dataset ``name`` in GeV: ``scan.masses`` inside its range, else
        its range in steps of ``scan.mass_step``. With ``scan.combined`` the steps of every
        scanned dataset start from the lowest range start of them all: the grids then meet
        wherever the ranges overlap (from their own starts, a 2 MeV step put 2016 on odd
        and 2015 on even masses, and 2016 never entered the combination)."""
        lo, hi = self.datasets[name].range
        if self.scan.masses is not None:
            m = np.array(sorted(self.scan.masses), dtype=float)
            return np.round(m[(m >= lo - MASS_TOL_GEV) & (m <= hi + MASS_TOL_GEV)], 9)
        return scan_masses(lo, hi, self.scan.mass_step, self.grid_origin())

    def grid_origin(self) -> float | None:
        """Where the mass steps of a combined scan start (None: each range's own start)."""
        names = self.scanned()
        if not self.scan.combined or len(names) < 2:
            return None
        return min(self.datasets[n].range[0] for n in names)

    def combined_masses(self) -> np.ndarray:
        """Test masses of two or more scanned datasets, where the combination runs (none
        without ``scan.combined``)."""
        names = self.scanned()
        if not self.scan.combined or len(names) < 2:
            return np.array([])
        counts: dict[float, int] = {}
        for name in names:
            for m in self.test_masses(name):
                counts[float(m)] = counts.get(float(m), 0) + 1
        return np.array(sorted(m for m, c in counts.items() if c >= 2))


def known_keys(parts: tuple[str, ...]) -> list[str]:
    """Keys allowed in the table at ``parts`` (for did-you-mean hints); [] where any key
    goes (the dataset names under ``datasets``, ``[grid]``)."""
    if parts[:1] == ("datasets",):
        return list(Dataset.model_fields) if len(parts) == 2 else []
    model: type[BaseModel] = Config
    for part in parts:
        field = model.model_fields.get(part)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _dotted_keys() -> dict[str, str]:
    """Last key name -> its full dotted key, over every section (``blind_nsigma`` ->
    ``fit.blind_nsigma``; dataset keys as ``datasets.<key>.x``)."""
    out: dict[str, str] = {}
    for sec, field in Config.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for k in ann.model_fields:
                out.setdefault(k, f"{sec}.{k}")
    for k in Dataset.model_fields:
        out.setdefault(k, f"datasets.<key>.{k}")
    return out


def _unknown_hint(parts: list[str]) -> str:
    """Did-you-mean for an unknown key: a sibling, else the same name in another section,
    else the keys the table takes (a newcomer's guess is often nothing like any key)."""
    if "." in parts[-1]:  # a quoted dotted key ("fit.blind_nsigma" = 2): one name
        *inner, leaf = parts[-1].split(".")
        for where in ([*parts[:-1], *inner], inner):  # of this table, or of the config
            if where and leaf in known_keys(tuple(where)):
                return (
                    f"; quoted, {parts[-1]!r} is one name, not {leaf} of "
                    f"[{'.'.join(where)}]: write {leaf} = ... in [{'.'.join(where)}]"
                )
    keys = known_keys(tuple(parts[:-1]))
    hint = did_you_mean(parts[-1], keys)
    if hint:
        return hint
    full = _dotted_keys()
    close = difflib.get_close_matches(parts[-1], list(full), n=1, cutoff=0.8)
    if close:
        return f"; did you mean {full[close[0]]!r}?"
    if not keys:
        return ""
    table = "the config's sections are" if len(parts) == 1 else f"[{'.'.join(parts[:-1])}] takes"
    if parts[:1] == ["datasets"]:
        table = "a dataset takes"
    return f"; {table} {', '.join(keys)}"


def _new_dataset_errors(data: dict[str, Any], where: Where) -> dict[str, Issue]:
    """A dataset key with neither card nor range that is close to another dataset's key
    (``datasets.2105`` next to ``2015``) is a typo: one sentence instead of its missing keys."""
    datasets = data.get("datasets")
    if not isinstance(datasets, dict):
        datasets = {}
    out: dict[str, Issue] = {}
    for name, ds in datasets.items():
        if not isinstance(ds, dict) or ds.get("card") or "range" in ds:
            continue
        others = [n for n in datasets if n != name]
        close = difflib.get_close_matches(str(name), others, n=1, cutoff=0.5)
        if close:
            out[str(name)] = at(
                where(f"datasets.{name}"),
                f"a new dataset without card or range; did you mean datasets.{close[0]}?",
            )
    return out


#: unknown keys that get a did-you-mean hint (the rest: "unknown key." alone)
HINTED_KEYS = SHOWN_ERRORS
#: the longest unknown key name shown whole (no setting's name comes near it)
KEY_SHOWN = 80

_KEYED = re.compile(r"([a-z_]+(?:\.[A-Za-z0-9_+-]+)+): ")  # (dataset keys: SAFE_NAME)


def validate(data: dict[str, Any], where: Where = key_only) -> tuple[Config | None, list[Issue]]:
    """Validate ``data``; return the model (or None) and every error as an issue.

    ``where(dotted_key)`` says where a key was set (``file:line``).
    """
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        errors: list[Issue] = []
        hinted = 0
        typos = _new_dataset_errors(data, where)
        for err in exc.errors():
            parts = [str(p) for p in err["loc"] if not isinstance(p, int)]
            dotted = ".".join(parts)
            if parts[:1] == ["datasets"] and len(parts) > 1 and parts[1] in typos:
                errors.append(typos[parts[1]])
                continue
            if err["type"] == "extra_forbidden" and parts and not parts[-1].strip():
                loc = where(dotted)  # the key as TOML spells it: ``steps.""``
                shown = ".".join([*parts[:-1], json.dumps(parts[-1])])
                if isinstance(loc, Loc):
                    loc = dataclasses.replace(loc, key=shown)
                errors.append(at(loc, "an empty key name is not a setting; remove it."))
                continue
            elif err["type"] == "extra_forbidden" and len(parts[-1]) > KEY_SHOWN:
                loc = where(dotted)  # a key of a megabyte was printed whole
                start = json.dumps(parts[-1][: KEY_SHOWN // 2])[:-1]
                shown = ".".join([*parts[:-1], f'{start}..." ({len(parts[-1])} characters)'])
                if isinstance(loc, Loc):
                    loc = dataclasses.replace(loc, key=shown)
                errors.append(at(loc, "unknown key (no setting has a name this long)."))
                continue
            elif err["type"] == "extra_forbidden":
                # a hint costs ~1 ms (edit distances to every key): the first few only,
                # as many as a command shows (200,000 unknown keys took 4 minutes)
                hinted += 1
                msg = f"unknown key{_unknown_hint(parts) if hinted <= HINTED_KEYS else ''}"
            elif err["type"] == "missing" and err["loc"] and isinstance(err["loc"][-1], int):
                n = _tuple_length(dotted)  # a fixed-length list given too few values
                msg = f"needs {n or 'more'} values, got {err.get('input')!r}"
            elif err["type"] == "missing":
                # (where() names the file that made its table: often a shipped template)
                msg = "required but not set" + (
                    f"; set it in your config's [{toml_key(*parts[:-1])}] table"
                    if len(parts) > 1
                    else ""
                )
            elif err["type"] == "value_error":  # our validators' messages show the value
                msg = err["msg"].removeprefix("Value error, ")
                keyed = _KEYED.match(msg)
                # a check across keys names its key first ("key: ..."), one of this section
                if keyed and (not dotted or keyed.group(1).startswith(dotted + ".")):
                    dotted, msg = keyed.group(1), msg[keyed.end() :]
            else:
                value = err.get("input")
                text = repr(value)
                if len(text) > 80:  # a long value: its start and its length
                    n = len(value) if isinstance(value, str) else len(text)
                    text = f"{text[:60]}... ({n} characters)"
                shown = f" (got {text})" if not isinstance(value, dict) else ""
                msg = f"{err['msg']}{shown}{_unit_hint(value) or _list_hint(err, value)}"
            errors.append(at(where(dotted), msg + ("" if msg.endswith("?") else ".")))
        return None, unique(errors)


def _list_hint(err: Any, value: Any) -> str:
    """How to write a list, for a text or number given where one is needed (``--set`` takes
    TOML: ``plot.formats=png,pdf`` is the text "png,pdf"; ``[30MeV]`` is no TOML list)."""
    if err.get("type") != "list_type":
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"; write a list in brackets, e.g. [{value!r}]"
    if not isinstance(value, str):
        return ""
    if value.lstrip().startswith("["):
        return (
            "; it is no TOML list: numbers bare (GeV for masses), texts in quotes, inside "
            'brackets, e.g. [0.03, 0.06] or ["png", "pdf"]'
        )

    def item(text: str) -> str:
        try:
            float(text)
        except ValueError:
            return json.dumps(text)
        return text

    items = [t.strip() for t in value.split(",") if t.strip()]
    return (
        f"; write a list in brackets, e.g. [{', '.join(item(t) for t in items)}]" if items else ""
    )


def _unit_hint(value: Any) -> str:
    """``; a config's masses are numbers in GeV: write 0.08`` for a mass written with its
    unit (``"80MeV"``), which only the command line reads."""
    from gprpipe.units import with_unit

    gev = with_unit(value) if isinstance(value, str) else None
    return (
        "" if gev is None else f"; a config's masses and widths are numbers in GeV: write {gev:g}"
    )


def _tuple_length(dotted: str) -> int | None:
    """The number of values of a key that is a fixed-length list (``range``: 2)."""
    try:
        ann = _field_annotation(dotted)
    except KeyError:
        return None
    for a in (ann, *get_args(ann)):
        args = get_args(a)
        if get_origin(a) is tuple and args and Ellipsis not in args:
            return len(args)
    return None


def _field_annotation(key: str | Sequence[str]) -> Any:
    """The schema annotation of a key, dotted or as its parts (``datasets.<name>.x``: a
    dataset key; give the parts where the name may hold a '.')."""
    dotted = key if isinstance(key, str) else ".".join(key)
    parts = key.split(".") if isinstance(key, str) else list(key)
    model: type[BaseModel] = Config
    if parts[0] == "datasets" and len(parts) == 3:
        model, parts = Dataset, parts[2:]
    for k, part in enumerate(parts):
        if part not in model.model_fields:
            raise KeyError(dotted)
        ann = model.model_fields[part].annotation
        if k == len(parts) - 1:
            return ann
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            raise KeyError(dotted)
        model = ann
    raise KeyError(dotted)


def is_text_key(key: str | Sequence[str]) -> bool:
    """Whether the schema types ``key`` as text (a name, a path, a histogram): a value
    given there that spells a number (``007``, ``1e3``) stays the text it is. False for an
    unknown key."""
    try:
        ann = _field_annotation(key)
    except KeyError:
        return False
    args = get_args(ann) if get_origin(ann) in (Union, UnionType) else (ann,)
    kinds = [a for a in args if a is not type(None)]
    return bool(kinds) and all(a in (str, Path) for a in kinds)


def key_kind(key: str | Sequence[str]) -> tuple[str, tuple[str, ...], bool]:
    """How a user enters a key, from its schema type: (kind, choices, optional) with kind
    one of ``str``, ``int``, ``float``, ``floats``, ``choice``, ``bool``; ``optional``: the
    key may be unset (None)."""
    ann = _field_annotation(key)
    args = get_args(ann) if get_origin(ann) in (Union, UnionType) else (ann,)
    optional = type(None) in args
    (base,) = [a for a in args if a is not type(None)]
    origin = get_origin(base)
    if origin is Literal:
        return "choice", tuple(str(a) for a in get_args(base)), optional
    if base is bool:
        return "bool", ("true", "false"), optional
    if base in (int, float, str):
        return base.__name__, (), optional
    if origin in (list, tuple) and all(a in (float, int) for a in get_args(base)):
        return "floats", (), optional
    raise KeyError(f"{key}: no form kind for {ann!r}")


def choices(dotted: str) -> tuple[str, ...]:
    """The allowed values of a key with a fixed set (e.g. ``base.engine``)."""
    kind, values, _ = key_kind(dotted)
    if kind != "choice":
        raise KeyError(f"{dotted} is not a choice")
    return values


@dataclasses.dataclass
class Point:
    """One grid point: its name, the values it varies, and its rendered config."""

    index: int
    name: str
    values: dict[str, Any]
    config: Config
    data: dict[str, Any]  # rendered plain data (what config.toml of the point holds)

    @property
    def output(self) -> Path:
        return Path(self.config.base.output) / self.name
