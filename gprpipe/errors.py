"""User-facing errors: one clear sentence, exit code 1, no traceback unless --debug."""

from collections.abc import Sequence


class GprpipeError(Exception):
    """A mistake in the user's input (config, file, histogram, mass...).

    The message is a single sentence that names the file and key (or histogram, or mass).
    """


class ConfigError(GprpipeError):
    """One or more configuration errors; ``errors`` lists every message, ``issues`` the
    same errors as given (structured ``gprpipe.config.issues.Issue`` objects or sentences)."""

    def __init__(self, errors: Sequence[object]):
        self.issues = list(errors)
        self.errors = [str(e) for e in self.issues]
        super().__init__(self.errors[0] if len(self.errors) == 1 else "\n".join(self.errors))
