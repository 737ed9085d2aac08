"""User-facing errors: one clear sentence, exit code 1, no traceback unless --debug."""

import shlex
from collections.abc import Sequence


def cli_command(*args: object) -> str:
    """A ``gprpipe`` command line for a message to suggest, each argument shell-quoted: a
    run folder comes from ``base.output`` and may hold spaces, quotes or ``$(...)``, which
    a pasted command must not run."""
    return shlex.join(["gprpipe", *map(str, args)])


class GprpipeError(Exception):
    """A mistake in the user's input (config, file, histogram, mass...).

    The message is a single sentence that names the file and key (or histogram, or mass).
    """


def os_error_sentence(exc: BaseException) -> str:
    """``PATH: what the file system said.`` for an OSError that says it ('' otherwise): a
    disk that is full or a folder made read-only is the user's to fix, not a bug."""
    if not isinstance(exc, OSError) or not exc.strerror:
        return ""
    where = exc.filename2 or exc.filename
    what = exc.strerror[:1].lower() + exc.strerror[1:]
    return f"{where}: {what}." if where else f"{what}."


#: the errors of a config a command prints; one more line counts the rest (a config of
#: 200,000 unknown keys printed every one)
SHOWN_ERRORS = 20


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
