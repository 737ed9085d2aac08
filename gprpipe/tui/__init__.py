"""gprpipe.tui."""
