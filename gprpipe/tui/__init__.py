"""gprpipe's textual TUI (``gprpipe tui [CONFIG|FOLDER]``).

``app`` (GprpipeApp, layout, bindings), one module per tab (``browse``, ``editor`` with the
text editor and the form, ``grid``, ``run``, ``results``), and widget-free helpers:
``model`` (validate a text as ``gprpipe validate`` does), ``tomledit`` (set/remove one key
of a TOML text), ``runs`` (log tail, scan.csv through the results schema), ``textplot`` (braille
plots).
"""
