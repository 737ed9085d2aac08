"""gprpipe.stats."""
