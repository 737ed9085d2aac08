"""load: read each scanned dataset's histogram, rebin it, write ``load.h5``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gprpipe.config.checks import OBSERVED_AS_TOY, histogram_errors
from gprpipe.config.schema import Config
from gprpipe.errors import GprpipeError
from gprpipe.io.hdf5 import sha256_file, write_group, write_h5
from gprpipe.results.schema import read_load

__all__ = ["observed_counts_guard", "read_load", "run"]


def run(ctx) -> None:
    from gprpipe.io.root import read_hist, rebin  # uproot: only the tasks that read ROOT

    cfg = ctx.config
    groups = {}
    for name in cfg.scanned():
        ds = cfg.datasets[name]
        counts, edges = read_hist(ds.path, ds.hist)
        errors = histogram_errors(name, cfg, counts, edges)
        if errors:
            raise GprpipeError(f"{errors[0].key}: {errors[0].why}")
        counts, edges = rebin(counts, edges, ds.rebin)
        groups[name] = (counts, edges, ds)
    with write_h5(ctx.layout.load, ctx.attrs()) as f:
        for name, (counts, edges, ds) in groups.items():
            g = f.create_group(name)
            write_group(g, {"edges": edges, "counts": counts})
            g.attrs.update(
                source=str(ds.path), hist=ds.hist, sha256=sha256_file(ds.path), rebin=ds.rebin
            )


def observed_counts_guard(cfg: Config, name: str) -> Callable[[np.ndarray, str], None]:
    """For a blinded run: a function ``check(counts, what)`` that refuses rebinned
    ``counts`` equal to dataset ``name``'s observed counts (the data histogram passed off as
    a toy or background histogram would bring the observed window counts into the results),
    or nearly (:func:`~gprpipe.config.checks.holds_observed`, validate's rule too); for an
    unblinded run it checks nothing."""

    def nothing(counts: np.ndarray, what: str) -> None:
        return None

    if not cfg.base.blind:
        return nothing
    from gprpipe.config.checks import holds_observed, observed_windows
    from gprpipe.io.root import read_hist, rebin

    ds = cfg.datasets[name]
    try:
        observed, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    except GprpipeError:  # no data file here (a toys-only study): no observed count to enter
        return nothing

    windows = observed_windows(cfg, name, observed, edges)  # once, not per toy

    def check(counts: np.ndarray, what: str) -> None:
        where = holds_observed(counts, observed, windows)
        if where is not None:
            raise GprpipeError(
                f"{what}: holds the observed counts of dataset {name} ({ds.path}, histogram "
                f"{ds.hist!r}){where}; {OBSERVED_AS_TOY}"
            )

    return check
