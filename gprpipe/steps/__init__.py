"""gprpipe.steps."""
