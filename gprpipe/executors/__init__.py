"""gprpipe.executors."""
