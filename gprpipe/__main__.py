"""``python -m gprpipe`` (what the local engine runs)."""

import sys

from gprpipe.executors.forkserver import prestart

prestart(sys.argv[1:])  # ``run``: the warm workers' imports overlap reading the config

from gprpipe.cli import main  # noqa: E402

main()
