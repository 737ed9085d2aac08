"""The results schema: every table the steps write (columns, units) defined once."""

from __future__ import annotations

BAND_COLS = ("lo2", "lo1", "med", "hi1", "hi2")  # expected-limit bands N = -2, -1, 0, +1, +2
