"""What the benchmarks measure around a piece of work: its wall time and the CPU time
(user + system) of the processes it ran, which ``getrusage`` counts once they are reaped."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def cpu_seconds(who: int = resource.RUSAGE_CHILDREN) -> float:
    """User + system CPU seconds of ``who``: this process's reaped children by default,
    or ``resource.RUSAGE_SELF``."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed(who: int = resource.RUSAGE_CHILDREN) -> Iterator[Timing]:
    """``with timed() as t: ...`` sets ``t.wall`` and ``t.cpu`` (of ``who``) when the block
    ends."""
    t = Timing()
    cpu0, wall0 = cpu_seconds(who), time.perf_counter()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - wall0
        t.cpu = cpu_seconds(who) - cpu0
