"""``python -m gprpipe`` (what the local engine runs)."""

from gprpipe.cli import main

main()
