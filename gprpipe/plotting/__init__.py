"""gprpipe.plotting."""
