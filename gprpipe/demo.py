"""A deterministic, realistic synthetic HPS-2015-like invariant-mass spectrum.

The shape is a smooth fit to the public 2015 spectrum (turn-on near 15-25 MeV, a fall of
four decades up to 150 MeV, about 2.1e7 events over 3000 bins of 0.05 MeV), Poisson
sampled with a fixed seed; an optional Gaussian signal (mass, yield, width from the 2015
resolution) can be added.

The shipped spectrum (``gprpipe/data/demo_2015.root``) is seed ``DEMO_SEED``, picked by a
rule written down before the seeds were compared (``benchmarks/pick_demo_seed.py``): among
seeds 1-4, the smallest whose quickstart masses all have |A_hat/sigma_A| < 2 and whose
full 2015-card scan has a largest |A_hat/sigma_A| no larger than the median over seeds 1-4
(a typical background-only realisation, not the quietest one).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from gprpipe.stats.resolution import sigma_m

# log-density polynomial in t = ln(m / 0.05 GeV) (highest power first) and turn-on erf
_POLY = [
    1.0396069715581124,
    0.6641368798700933,
    -4.776956923020643,
    -4.84482955014589,
    9.424985025444636,
]
_TURN_ON = (0.01803252812457989, 0.0029215734322352686)
SIGMA_2015 = [-9.22283032152e-05, 0.0532190838657]
#: the demo histogram's mass range (GeV)
DEMO_LO, DEMO_HI = 0.0, 0.15
#: seed of the shipped demo spectrum (see the module docstring for the rule)
DEMO_SEED = 2


def demo_expectation(edges: np.ndarray) -> np.ndarray:
    """Expected counts per bin (evaluated at the bin centre, times the bin width ratio)."""
    x = 0.5 * (edges[1:] + edges[:-1])
    width_ratio = np.diff(edges) / 5e-5
    mu = np.zeros_like(x)
    ok = x > 0.008
    t = np.log(x[ok] / 0.05)
    mu[ok] = np.exp(np.polyval(_POLY, t)) * 0.5 * (1 + erf((x[ok] - _TURN_ON[0]) / _TURN_ON[1]))
    return mu * width_ratio


def demo_spectrum(
    *,
    n_bins: int = 3000,
    hi: float = DEMO_HI,
    seed: int = DEMO_SEED,
    scale: float = 1.0,
    signal_mass: float | None = None,
    signal_yield: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of the demo spectrum; ``scale`` multiplies the event count."""
    edges = np.linspace(DEMO_LO, hi, n_bins + 1)
    mu = demo_expectation(edges) * scale
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mu).astype(float)
    if signal_mass is not None and signal_yield > 0:
        s = float(sigma_m(signal_mass, SIGMA_2015))
        n_sig = rng.poisson(signal_yield)
        counts += np.histogram(rng.normal(signal_mass, s, n_sig), bins=edges)[0]
    return counts, edges
