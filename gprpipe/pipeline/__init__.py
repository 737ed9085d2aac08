"""gprpipe.pipeline."""
