"""``python -m gprpipe`` and the ``gprpipe`` command (``[project.scripts]``)."""

import sys
from collections.abc import Sequence


def task_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is a task command line in the plan's own form
    (:class:`~gprpipe.pipeline.task.TaskLine`): the one SLURM jobs and containers run,
    thousands of times. It then runs without the command-line layer (typer, click, rich:
    ~0.2 s of CPU per task). Anything else, help, a mistake or ``--masses``, goes to the
    command line."""
    from gprpipe.pipeline.task import TaskLine

    return TaskLine.parse(argv) is not None


def _run_task_command(argv: Sequence[str]) -> int:
    from gprpipe.errors import GprpipeError, printable
    from gprpipe.io.processes import end_with_run
    from gprpipe.pipeline.lock import refuse_beside_a_run
    from gprpipe.pipeline.task import TaskLine
    from gprpipe.steps.runner import run_argv

    end_with_run()  # a task process of a local run ends with that run
    line = TaskLine.parse(argv)
    try:
        if line is not None:
            refuse_beside_a_run(line.point_dir)
    except GprpipeError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 1
    return run_argv(argv)


def main() -> None:
    """Start the fork server of ``run``/``rerun`` before anything else is imported (its
    imports then overlap those of the command line and the reading of the config).
    Ctrl-C while they are imported says so and exits 130 (it printed a traceback)."""
    argv = sys.argv[1:]
    try:
        if task_command(argv):
            sys.exit(_run_task_command(argv))
        from gprpipe.executors.forkserver import prestart

        prestart(argv)
        from gprpipe.cli import main as cli_main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
