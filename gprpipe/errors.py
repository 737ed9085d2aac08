"""User-facing errors: one clear sentence, exit code 1, no traceback unless --debug."""

import ast
import errno
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path


def cli_command(*args: object) -> str:
    """A ``gprpipe`` command line for a message to suggest, each argument shell-quoted: a
    run folder comes from ``base.output`` and may hold spaces, quotes or ``$(...)``, which
    a pasted command must not run."""
    return shlex.join(["gprpipe", *map(str, args)])


#: control characters (not the newline) a message may carry from a value or file name
_UNPRINTABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters (not newlines) written as escapes: a value or
    a file name quoted in a message must not move the terminal's cursor or change its
    colours (an ESC from a template's name did; a review)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class GprpipeError(Exception):
    """A mistake in the user's input (config, file, histogram, mass...).

    The message is a single sentence that names the file and key (or histogram, or mass).
    """


_LOOP = re.compile(r"Symlink loop from ('.*'|\".*\")")


def os_error_sentence(exc: BaseException) -> str:
    """``PATH: what the file system said.`` for an OSError that says it ('' otherwise): a
    disk that is full or a folder made read-only is the user's to fix, not a bug. So is a
    symbolic link that leads back to itself (pathlib's ``resolve`` raises a RuntimeError)."""
    if isinstance(exc, RuntimeError) and (loop := _LOOP.fullmatch(str(exc))):
        return f"{ast.literal_eval(loop.group(1))}: {CANNOT_RESOLVE} ({exc})."
    if not isinstance(exc, OSError) or not exc.strerror:
        return ""
    where = exc.filename2 or exc.filename
    what = exc.strerror[:1].lower() + exc.strerror[1:]
    return f"{where}: {what}." if where else f"{what}."


CANNOT_RESOLVE = "cannot resolve this path"


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute, its symbolic links resolved; a path that cannot be (a link
    that leads back to itself) is a GprpipeError naming it, not a RuntimeError."""
    try:
        out = Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.10-3.12: "Symlink loop from '...'"
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GprpipeError(f"{path}: {CANNOT_RESOLVE} ({why.rstrip('.')}).") from None
    try:
        out.stat()  # Python 3.13 resolves a loop without a word; the system says ELOOP
    except OSError as exc:  # missing (a file to write) or not ours to read: as resolved
        if exc.errno == errno.ELOOP:
            loop = f"Symlink loop from {str(out)!r}"
            raise GprpipeError(f"{path}: {CANNOT_RESOLVE} ({loop}).") from None
    return out


#: the errors of a config a command prints; one more line counts the rest (a config of
#: 200,000 unknown keys printed every one)
SHOWN_ERRORS = 20


class PartlySubmitted(GprpipeError):
    """A submission that failed after some of its jobs were queued: those run on (the
    sentence names them and how to cancel them); the run began, it was not refused."""


class ConfigError(GprpipeError):
    """One or more configuration errors; ``errors`` lists every message, ``issues`` the
    same errors as given (structured ``gprpipe.config.issues.Issue`` objects or sentences)."""

    def __init__(self, errors: Sequence[object]):
        self.issues = list(errors)
        self.errors = [str(e) for e in self.issues]
        super().__init__(self.errors[0] if len(self.errors) == 1 else "\n".join(self.errors))

    def shown(self, limit: int = SHOWN_ERRORS) -> list[str]:
        """The first ``limit`` messages and, when there are more, a sentence counting them
        (what a command prints, each after ``error: ``)."""
        more = len(self.errors) - limit
        if more <= 0:
            return list(self.errors)
        return [
            *self.errors[:limit],
            f"{more} more error{'s' * (more != 1)} not shown (the first {limit} are above).",
        ]
