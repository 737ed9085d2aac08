"""gprpipe: a declarative Gaussian-process bump-hunt pipeline."""

try:
    from gprpipe._version import __version__ as _built  # setuptools-scm writes it at build

    __version__: str = _built  # (a str also where mypy runs on a tree never built)
except ImportError:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("gprpipe")
    except PackageNotFoundError:  # running from a source tree without installation
        __version__ = "0.0.0+unknown"

#: Version of the numerical results, part of every cache key (the package version is not:
#: it changes with every git commit, and would invalidate every run on each commit).
#: RULE: bump it in the same commit as any change that can change a number, a string or
#: the layout of an output file (steps/, stats/, plotting/, io/ writers, the plan's
#: chunking or seeds). Refactors, docs, the CLI, the TUI, engines and executors leave it.
#: Outputs computed with another value are recomputed by the next run. A change that can
#: change only what the plot task writes (figures, report.html, HEPData) bumps PLOT_VERSION
#: instead: then only the plot tasks run again, not the scans and toys before them.
NUMERICS_VERSION = 40  # 40: a combined row's sigma_m_GeV among the datasets it joins
# 39: a toy limit at the floor of CLs is unresolved
# 38: flag_sparse (fit.sparse_s_max)
# 37: a profile that stopped short of its minimum fails its row
# 36: an unresolved observed toy limit keeps a row's flag; its mass stays in the toy maximum
# 35: inject.h5 A_hat_asimov0 (the refit's background offset)
# 34: frac_Z0_toys(_err) in scan.csv; pull_mean_err, cov_*_err
# 33: a row whose observed toy limit is unresolved keeps the rest
# 32: a combined scan's mass grids start at one origin
# 31: toy bands drawn before the observed toy limit; n_kept
# 30: a toy window whose signal fit does not converge fails its toyscan row
# 29: a window whose signal fit does not converge fails its limit
# 28: signal template normalised to all signal events; fit and limit failures
# 26: A_up_err, eps2_up_err (a toy limit's Monte Carlo error)
# 25: a toy CLs limit the toys cannot resolve fails its row
# 24: fit.h5 mass_GeV, sigma_m_GeV; 23: toys of the combined rows; 22: p0_local_toys
# 21: a refit toy whose window prediction overflows is not converged
# 20: scan.csv p0_global_toys_err
# 19: inject.csv n_generated; one kept toy has no pull width (NaN)
# 18: a mass with no training bin near its window fails
# 17: GP restart runs by the low-rank LML (fits move <= 3.2e-8)
# 16: each N_eff term at most 1 (a sparse scan's masses count once)
# 15: a blinded limit.h5 has no (NaN) *_global_toys columns
# 14: report.html lists reruns, the toys' global Z; run's version
# 13: the GP-fit figure of the most significant mass skips flagged rows
# 12: N_eff one term per scan mass (was the trapezoid between masses)
# 11: the HEPData significance table has the global toys' p0 and Z; 10: observed displays carry the
# scan status (a flag in the title), the plot step removes its earlier products; 9: allocation
# masses by rounding (three of three); 8: a one-point run draws no grid_limits.png; 7: plot.masses
# that are no test mass draw no figure (they drew the nearest test mass); figures redrawn after the
# math-text fix of the figure workers; 6: a fit whose blind-window prediction overflows fails its
# mass; the plot step removes its earlier figures and draws no earlier config's outputs; 5: every
# figure format cropped to the box of one layout pass (PDF/SVG bytes change); 4: low-rank mean map;
# 3: GP optimum polished by Newton steps, low-rank LML; 2: leakage-aware template w_eff, GoF columns
# and flags

#: Version of the plot task's outputs alone (see NUMERICS_VERSION); part of its cache key.
PLOT_VERSION = 31  # 31: an injection's closure in report.html; points a run redoes in index.html
# 30: curves and bands kept above the bottom rows of marks
# 29: masses without an observed limit marked (triangles); 28: a dataset
# left out marked apart; failed masses crossed in overlays
# 27: a failed mass mid-scan a gap in every scan figure, crossed below
# 26: unresolved observed toy limits drawn as gaps, their p0 and A_hat
# 25: Ahat and observed-limit figures circle flagged masses
# 24: displays, combination figures labelled; coverage, toy-limit errors;
# HEPData units from the schema; a blinded report withholds observed scan.csv; NOT CURRENT
# 23: combination.csv takes rows whose observed toy limit is unresolved
# 22: report's chance below the band follows limit.bands (2.5% with toys)
# 21: expected limits of a mass whose observed toy limit is unresolved
# 20: combination.csv, allocation.csv through the results schema (8 digits)
# 19: blinded scan figures circle flagged masses on the median
# 18: a display's GP curve and band from the posterior's diagonal, in blocks
# 17: report timings from the markers; HEPData combined tables name their datasets
# 15: report.html lists the tables and each dataset's summary lines
# 14: HEPData says so of toy limits from fewer toys than checked
# 13: HEPData's toy-error caveat reworded ("may be too small"), CSV note
# 12: HEPData gives the toy limits' Monte Carlo error (YAML and CSV)
# 11: HEPData's note on left-out masses names failed limits as well as quality flags
# 10: HEPData says what Sidak's correction may miss without toys;
# 9: the toys' local p0 in the significance figure
# 8: toy global p0 and Z that are bounds drawn as such
# 7: one colour per dataset in every overlay, flags red; 6: HEPData archive
# beside its folder, CSVs referenced; 5: a toy global Z
# that no toy reached is a bound ("> 2.33"); 4: a blinded GP-fit figure hides every test
# window's data; 3: refit
# displays of histogram backgrounds draw inject.h5's toy; none of a toy that failed; 2: index
# names the dataset of its largest Z, has the toys' global Z; N_eff to one decimal in
# HEPData; 1: report and index count flagged, failed, non-converged rows alike

__all__ = ["NUMERICS_VERSION", "PLOT_VERSION", "__version__"]
