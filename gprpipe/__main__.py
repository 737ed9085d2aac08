"""``python -m gprpipe`` and the ``gprpipe`` command (``[project.scripts]``)."""

import sys

from gprpipe.executors.forkserver import prestart


def main() -> None:
    """Start the fork server of ``run``/``rerun`` before anything else is imported (its
    imports then overlap those of the command line and the reading of the config).
    Ctrl-C while they are imported says so and exits 130 (it printed a traceback)."""
    try:
        prestart(sys.argv[1:])
        from gprpipe.cli import main as cli_main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
