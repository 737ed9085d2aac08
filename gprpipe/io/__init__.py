"""gprpipe.io."""
