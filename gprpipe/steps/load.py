"""load: read each scanned dataset's histogram, rebin it, write ``load.h5``."""

from __future__ import annotations

from gprpipe.config.checks import histogram_errors
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
