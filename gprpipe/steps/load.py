"""load: read each scanned dataset's histogram, rebin it, write ``load.h5``."""

from __future__ import annotations

from gprpipe.config.checks import binning_error
from gprpipe.errors import GprpipeError
from gprpipe.io.hdf5 import sha256_file, write_group, write_h5
from gprpipe.io.root import read_hist, rebin
from gprpipe.results.schema import read_load

__all__ = ["read_load", "run"]


def run(ctx) -> None:
    cfg = ctx.config
    groups = {}
    for name in cfg.scanned():
        ds = cfg.datasets[name]
        counts, edges = read_hist(ds.path, ds.hist)
        if ds.rebin > len(counts):
            raise GprpipeError(
                f"datasets.{name}.rebin = {ds.rebin} exceeds the {len(counts)} bins of "
                f"histogram {ds.hist!r} in {ds.path}."
            )
        counts, edges = rebin(counts, edges, ds.rebin)
        why = binning_error(name, ds, cfg, edges)
        if why:
            raise GprpipeError(f"datasets.{name}.rebin: {why}")
        lo, hi = edges[0], edges[-1]
        for key, rng in (("range", ds.range), ("data_range", ds.data_range)):
            if rng is not None and (rng[0] < lo or rng[1] > hi):
                raise GprpipeError(
                    f"datasets.{name}.{key} = [{rng[0]:g}, {rng[1]:g}] GeV lies outside "
                    f"histogram {ds.hist!r} of {ds.path} ({lo:g}-{hi:g} GeV)."
                )
        groups[name] = (counts, edges, ds)
    with write_h5(ctx.layout.load, ctx.attrs()) as f:
        for name, (counts, edges, ds) in groups.items():
            g = f.create_group(name)
            write_group(g, {"edges": edges, "counts": counts})
            g.attrs.update(
                source=str(ds.path), hist=ds.hist, sha256=sha256_file(ds.path), rebin=ds.rebin
            )
