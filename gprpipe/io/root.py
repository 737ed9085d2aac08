"""Reading 1-D histograms from ROOT files with uproot; one clear sentence per failure."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import uproot

from gprpipe.errors import GprpipeError


class HistogramError(GprpipeError):
    """The file reads, but the histogram named (or matched) is missing or unusable: the
    histogram's name or pattern is at fault, not the file's path."""


#: the largest count a float64 holds exactly with every whole number below it
MAX_COUNT = float(2**53)


def _refuse_missing(path: Path) -> None:
    """A sentence for a data path that is no regular file (missing, a device, a pipe) or
    does not start with ROOT's signature."""
    if path.exists() and not path.is_file():
        raise GprpipeError(f"{path}: not a regular file (a ROOT file is needed).")
    if not path.is_file():
        raise GprpipeError(f"{path}: data file not found.")
    try:
        with path.open("rb") as f:
            head = f.read(20)
            size = f.seek(0, 2)
    except OSError:
        return  # unreadable: uproot's open says why
    if head[:4] != b"root":  # a short text file would otherwise read as a truncated ROOT file
        raise GprpipeError(
            f"{path}: {CANNOT_OPEN} (not a ROOT file: first four bytes are {head[:4]!r})."
        )
    # the header records where the file ends (fEND, after "root", fVersion and fBEGIN; 8
    # bytes from fVersion 1000000 on): a cut that keeps the histograms' keys but not all
    # of the file read without a word (a review: the first 10,000 of 19,129 bytes ran)
    end = None
    if len(head) >= 16:
        version = int.from_bytes(head[4:8], "big")
        wide = version >= 1000000
        if len(head) >= (20 if wide else 16):
            end = int.from_bytes(head[12:20] if wide else head[12:16], "big")
    if end is None or size < end:
        known = f"; {size} of {end} bytes" if end is not None else ""
        raise GprpipeError(f"{path}: {CANNOT_OPEN} ({TRUNCATED}{known}).")


def _keys(f) -> dict[str, str]:
    """Every key of the file (no cycles) -> its ROOT class name, in file order."""
    try:
        return dict(f.classnames(recursive=True, cycle=False))
    except Exception:  # unreadable directory: no suggestions
        return {}


def rank_names(name: str, keys: dict[str, str], n: int = 5) -> list[str]:
    """The ``n`` 1-D histograms closest to ``name``, closest first.

    Similarity is the best of the full path's and the last path component's
    (case-insensitive) difflib ratio; ties go to shallower keys, then file order, so a
    top-level ``input_hist`` is never buried under hundreds of toys in folders.
    """
    hists = [k for k, c in keys.items() if c.startswith("TH1")] or list(keys)
    want = name.split(";")[0].lower()
    base = want.rsplit("/", 1)[-1]

    def score(item: tuple[int, str]) -> tuple[float, int, int]:
        i, k = item
        kl = k.lower()
        r = max(
            difflib.SequenceMatcher(None, want, kl).ratio(),
            difflib.SequenceMatcher(None, base, kl.rsplit("/", 1)[-1]).ratio(),
        )
        return (-r, k.count("/"), i)

    return [k for _, k in sorted(enumerate(hists), key=score)[:n]]


CANNOT_OPEN = "cannot open as a ROOT file"
TRUNCATED = "it is truncated: it ends before the data its header points to"


def _why(exc: Exception) -> str:
    """First line of an exception message, shortened (uproot's run over many lines)."""
    if "expected Chunk of length" in str(exc):  # uproot read past the end of the file
        return TRUNCATED
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip().rstrip(".")
    return text if len(text) <= 160 else text[:157] + "..."


def _shown(name: str, most: int = 80) -> str:
    """A histogram name as a message quotes it, cut at ``most`` characters (a name of
    100,000 characters from a --set was echoed whole; a review)."""
    return repr(name if len(name) <= most else name[: most - 3] + "...")


def read_hist(path: Path | str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of the TH1 ``name`` (folders like ``dir/h`` and cycles ``h;2`` work)."""
    path = Path(path)
    if path.is_dir():
        raise GprpipeError(f"{path}: is a folder, not a ROOT file.")
    _refuse_missing(path)
    try:
        f = uproot.open(path)
    except Exception as exc:
        raise GprpipeError(f"{path}: {CANNOT_OPEN} ({_why(exc)}).") from None
    with f:
        try:
            obj = f[name]
        except (KeyError, uproot.KeyInFileError):
            keys = _keys(f)
            n_h = sum(c.startswith("TH1") for c in keys.values())
            close = rank_names(name, keys)
            hint = (
                f"; closest of its {n_h} 1-D histogram{'s' * (n_h != 1)}: "
                + ", ".join(c if c.isprintable() else repr(c) for c in close)
                if close
                else "; the file holds no 1-D histogram"
            )
            raise HistogramError(f"{path}: histogram {_shown(name)} not found{hint}.") from None
        except Exception as exc:  # damaged payload: decompression or deserialisation
            raise GprpipeError(
                f"{path}: histogram {_shown(name)} cannot be read, the file is damaged "
                f"({_why(exc)})."
            ) from None
        cls = getattr(obj, "classname", type(obj).__name__)
        if not (cls.startswith("TH1") and hasattr(obj, "to_numpy")):
            raise HistogramError(f"{path}: {_shown(name)} is a {cls}, not a 1-D histogram (TH1).")
        try:
            counts, edges = obj.to_numpy(flow=False)
        except Exception as exc:
            raise GprpipeError(
                f"{path}: histogram {_shown(name)} cannot be read, the file is damaged "
                f"({_why(exc)})."
            ) from None
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if counts.ndim != 1 or edges.ndim != 1 or len(counts) != len(edges) - 1:
        # its contents and its axis disagree (uproot does not check): a crash further on
        # ("internal error"), or contents dropped without a word
        raise HistogramError(
            f"{path}: histogram {_shown(name)} is damaged: {counts.size} bin contents for "
            f"{max(edges.size - 1, 0)} bins of its axis."
        )
    bad_edges = np.flatnonzero(~np.isfinite(edges))
    if len(bad_edges):  # NaN widths pass no comparison: the increase check would find none
        i = int(bad_edges[0])
        raise HistogramError(
            f"{path}: histogram {_shown(name)} has bin edges that are not finite (edge {i + 1} of "
            f"{len(edges)} is {edges[i]:g})."
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise HistogramError(
            f"{path}: histogram {_shown(name)} has negative or non-finite bin contents."
        )
    if counts.sum() <= 0:
        raise HistogramError(f"{path}: histogram {_shown(name)} is empty.")
    big = np.flatnonzero(counts > MAX_COUNT)
    if len(big):
        i = int(big[0])
        raise HistogramError(
            f"{path}: histogram {_shown(name)} holds {counts[i]:g} in bin {i + 1} "
            f"({edges[i]:g}-{edges[i + 1]:g}), above 2^53 = {MAX_COUNT:.3g} where numbers "
            "are no longer exact whole numbers; the Poisson likelihood needs event counts."
        )
    odd = np.flatnonzero(np.abs(counts - np.round(counts)) > 1e-9 * np.maximum(counts, 1.0))
    if len(odd):
        i = int(odd[0])
        raise HistogramError(
            f"{path}: histogram {_shown(name)} holds {counts[i]:g} in bin {i + 1} "
            f"({edges[i]:g}-{edges[i + 1]:g}) and {len(odd) - 1} more non-integer contents; "
            "the Poisson likelihood needs event counts, not a weighted or scaled histogram."
        )
    width = np.diff(edges)
    if not (width > 0).all():
        i = int(np.flatnonzero(width <= 0)[0])
        raise HistogramError(
            f"{path}: histogram {_shown(name)} has bin edges that do not increase ({edges[i]:g} "
            f"then {edges[i + 1]:g} at bin {i + 1})."
        )
    if not np.allclose(width, width[0], rtol=1e-6, atol=0.0):
        raise HistogramError(
            f"{path}: histogram {_shown(name)} has bins of unequal width ({width.min():g} to "
            f"{width.max():g}); the background fit needs equal-width bins."
        )
    return counts, edges


def read_text(path: Path | str, name: str) -> str:
    """The title of a ``TNamed`` (how ROOT files carry JSON metadata, e.g.
    ``fit_metadata/<tag>_metadata`` of the functional-form toy files)."""
    path = Path(path)
    try:
        with uproot.open(path) as f:
            return str(f[name].member("fTitle"))
    except (OSError, KeyError, uproot.KeyInFileError, ValueError) as exc:
        raise GprpipeError(f"{path}: cannot read the text object {_shown(name)} ({exc}).") from None


def match_hists(path: Path | str, pattern: str, key: str = "the pattern") -> list[str]:
    """Names of the TH1s in ``path`` matching the glob ``pattern`` (``dir/*_toy_*``), in
    natural order (``toy_2`` before ``toy_10``); ``key`` names the pattern's config key
    in the error when none matches."""
    import fnmatch
    import re

    path = Path(path)
    _refuse_missing(path)
    try:
        f = uproot.open(path)
    except Exception as exc:
        raise GprpipeError(f"{path}: {CANNOT_OPEN} ({_why(exc)}).") from None
    with f:
        # the class names of the listing: a folder (TDirectory) has none of its own to ask
        try:  # (not _keys: a listing it cannot read is a damaged file, not "no match")
            keys = dict(f.classnames(recursive=True, cycle=False))
        except Exception as exc:
            raise GprpipeError(
                f"{path}: its histograms cannot be listed, the file is damaged ({_why(exc)})."
            ) from None
        matched = {k: cls for k, cls in keys.items() if fnmatch.fnmatchcase(k, pattern)}
    # other objects (folders, functions, metadata) are no toys; a histogram of another
    # dimension matched by the pattern would silently shrink the toys
    other = {k: c for k, c in matched.items() if c.startswith(("TH2", "TH3", "TProfile"))}
    if other:
        k, cls = next(iter(other.items()))
        raise HistogramError(
            f"{path}: {key} {pattern!r} matches {k!r}, a {cls}, not a 1-D histogram (TH1)."
        )
    names = [k for k, cls in matched.items() if cls.startswith("TH1")]
    if not names:
        raise HistogramError(f"{path}: no histogram matches {key} {pattern!r}.")

    def natural(s: str) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

    return sorted(names, key=natural)


def rebin(counts: np.ndarray, edges: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge groups of ``factor`` bins; trailing bins that do not fill a group are dropped."""
    if factor == 1:
        return counts, edges
    n = (len(counts) // factor) * factor
    return counts[:n].reshape(-1, factor).sum(axis=1), edges[: n + 1 : factor]


def write_hist(
    path: Path | str, counts: np.ndarray, edges: np.ndarray, name: str = "input_hist"
) -> None:
    """Write a TH1D (used by demo-data and tests)."""
    from gprpipe.io.atomic import atomic_path

    with atomic_path(path, suffix=".root") as tmp, uproot.recreate(tmp) as f:
        f[name] = (np.asarray(counts, dtype=float), np.asarray(edges, dtype=float))
