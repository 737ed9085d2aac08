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
            key, why = errors[0]
            raise GprpipeError(f"{key}: {why}")
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
    or equal to them in more than half of the bins of the test masses' blind windows that
    hold events (a copy of the data with an event added anywhere passed, and its toy scan
    gave the observed A_hat, a review; of the real 2015, 2016 and 2021 toys at most 2.1%
    of those bins equal the data's); for an unblinded run it checks nothing."""

    def nothing(counts: np.ndarray, what: str) -> None:
        return None

    if not cfg.base.blind:
        return nothing
    from gprpipe.io.root import read_hist, rebin
    from gprpipe.steps.fit import blinded_bins

    ds = cfg.datasets[name]
    try:
        observed, edges = rebin(*read_hist(ds.path, ds.hist), ds.rebin)
    except GprpipeError:  # no data file here (a toys-only study): no observed count to enter
        return nothing
    # the windows' bins with data: an empty bin equals an empty toy's (200 of the 300 real
    # 2015 toys were refused at 12 MeV so; the own-diff review)
    windows = blinded_bins(cfg, name, edges) & (observed > 0)

    def check(counts: np.ndarray, what: str) -> None:
        if len(counts) != len(observed):
            return
        where = ""
        if not (counts == observed).all():
            same = int((counts[windows] == observed[windows]).sum())
            if not windows.any() or 2 * same <= int(windows.sum()):
                return
            where = (
                f" in {same} of the {int(windows.sum())} bins of the blind windows that hold events"
            )
        raise GprpipeError(
            f"{what}: holds the observed counts of dataset {name} ({ds.path}, histogram "
            f"{ds.hist!r}){where}; {OBSERVED_AS_TOY}"
        )

    return check
