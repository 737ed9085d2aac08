"""``python -m gprpipe`` and the ``gprpipe`` command (``[project.scripts]``)."""

import sys
from collections.abc import Sequence

from gprpipe.executors.forkserver import prestart

#: the options of a task command line as the plan writes it (``--force`` takes no value)
_TASK_OPTIONS = ("--point-dir", "--part", "--task")


def task_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is a task command line in the plan's own form, ``step NAME
    --point-dir DIR [--part P] [--task ID] [--force]`` (each option once, a value that is
    not empty and not an option): the one SLURM jobs and containers run, thousands of
    times. It then runs without the command-line layer (typer, click, rich: ~0.2 s of CPU
    per task). Anything else, help, a mistake or ``--masses``, goes to the command line."""
    if len(argv) < 4 or argv[0] != "step" or argv[1].startswith("-"):
        return False
    seen: set[str] = set()
    rest = list(argv[2:])
    while rest:
        word = rest.pop(0)
        if word in seen:
            return False
        seen.add(word)
        if word == "--force":
            continue
        if word not in _TASK_OPTIONS or not rest or not rest[0] or rest[0].startswith("-"):
            return False
        rest.pop(0)
    return "--point-dir" in seen


def _run_task_command(argv: Sequence[str]) -> int:
    from gprpipe.io.processes import end_with_run
    from gprpipe.steps.runner import run_argv

    end_with_run()  # a task process of a local run ends with that run
    return run_argv(argv)


def main() -> None:
    """Start the fork server of ``run``/``rerun`` before anything else is imported (its
    imports then overlap those of the command line and the reading of the config).
    Ctrl-C while they are imported says so and exits 130 (it printed a traceback)."""
    argv = sys.argv[1:]
    try:
        if task_command(argv):
            sys.exit(_run_task_command(argv))
        prestart(argv)
        from gprpipe.cli import main as cli_main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
