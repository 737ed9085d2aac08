"""Runs in the background: the service's own entry point for front ends that must not
hold a run (the TUI: quitting it leaves the run going).

:func:`launch_run` / :func:`launch_rerun` write a launch spec (JSON: what to run and the
:class:`~gprpipe.pipeline.service.RunOptions`) to ``RUN_DIR/tui-launch.json`` and start
``python -m gprpipe.pipeline.launch SPEC`` in its own session (an argv list, no shell),
its output in ``RUN_DIR/tui-launch.log``. That process calls the same
:func:`~gprpipe.pipeline.service.run` / :func:`~gprpipe.pipeline.service.rerun` as the
CLI, prints one line per task, the outcome and the summary, and exits with the CLI's
codes (0 done, 1 failed, 130 cancelled), or :data:`REFUSED` when the run refused before
any task ran (its sentence printed). A refused launch into a run directory it made
removes it again (:meth:`Launch.discard`), as the CLI leaves nothing then.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from gprpipe.errors import ConfigError, GprpipeError, PartlySubmitted
from gprpipe.executors.base import Outcome
from gprpipe.io.atomic import atomic_write_text, open_fresh, read_json
from gprpipe.pipeline import service
from gprpipe.pipeline.lock import LOCK_NAME, describe, holder, is_locked
from gprpipe.pipeline.store import LAUNCH_LOG, LAUNCH_PREVIOUS, LAUNCH_SPEC
from gprpipe.pipeline.task import Task

#: The exit code of a launch the run refused before any task ran (a missing engine, a
#: data file gone): one ``error:`` sentence, nothing of the run written.
REFUSED = 2


class Launch:
    """A background run process (own session and process group), its output in ``log``.

    ``made``: the folder this launch created for its spec and log (the run directory or
    its first missing parent), which :meth:`discard` removes when the run is refused;
    ``kept``: the launch files of the launch before it that it set aside
    (:func:`_keep_previous`), which :meth:`discard` puts back."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        cwd: Path | None = None,
        made: Path | None = None,
        kept: Sequence[str] = (),
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd or Path.cwd()
        self.made = made
        self.kept = list(kept)
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.output: str | None = None  # the log's text once :meth:`discard` removed it

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open_fresh(self.log) as fh:  # a link there is replaced, never written through
            self.proc = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def returncode(self) -> int | None:
        """None while running."""
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def refused(self) -> bool:
        """The run refused before any task ran (:data:`REFUSED`)."""
        return self.returncode() == REFUSED

    def read_output(self) -> str:
        """The launch's output (its log, or what :meth:`discard` kept of it)."""
        if self.output is not None:
            return self.output
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def discard(self) -> bool:
        """After a refused run: remove the spec, the log (its text is kept in ``output``)
        and the folders this launch made, when they hold nothing else (no run began
        there), or put back the files of the launch before it (a refused launch replaced
        them: a review). True when the folders were removed."""
        run_dir = self.log.parent
        if not self.refused or is_locked(run_dir):
            return False
        if self.kept:
            output = self.read_output()
            with contextlib.suppress(OSError):
                for name in (LAUNCH_SPEC, LAUNCH_LOG):
                    if name in self.kept:
                        os.replace(run_dir / LAUNCH_PREVIOUS[name], run_dir / name)
                    else:
                        (run_dir / name).unlink(missing_ok=True)
                self.output = output
            return False
        if self.made is None:
            return False
        try:
            names = os.listdir(run_dir)
        except OSError:
            return False
        if not set(names) <= {LAUNCH_SPEC, LAUNCH_LOG, LOCK_NAME}:
            return False
        output = self.read_output()
        try:
            for name in names:
                (run_dir / name).unlink(missing_ok=True)
        except OSError:
            return False
        self.output = output
        folder = run_dir
        with contextlib.suppress(OSError):  # (a folder that holds something now stays)
            while True:
                folder.rmdir()
                if folder == self.made:
                    break
                folder = folder.parent
        return True


def _start(spec: dict[str, Any], run_dir: Path) -> Launch:
    """Start the background process; refused (one sentence, nothing written) when a live
    process holds the run directory: its launch files are not this launch's to replace."""
    deadline = time.monotonic() + 1.0  # (`gprpipe status` holds the lock for moments)
    while is_locked(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_locked(run_dir):
        raise GprpipeError(
            f"{run_dir} is in use by {describe(holder(run_dir))}: wait for it to finish, "
            "or stop it first."
        )
    missing = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    kept = _keep_previous(run_dir)
    path = run_dir / LAUNCH_SPEC
    atomic_write_text(path, json.dumps(spec, indent=2) + "\n")
    started = Launch(
        [sys.executable, "-m", "gprpipe.pipeline.launch", str(path)],
        run_dir / LAUNCH_LOG,
        made=missing[-1] if missing else None,
        kept=kept,
    )
    started.start()
    return started


def _keep_previous(run_dir: Path) -> list[str]:
    """Set the launch files of an earlier launch aside as ``tui-launch.previous.*``: a
    second launch overwrote the first's log, the record of the jobs it submitted, also
    when the run refused it (a review). One generation: older ``previous`` files are
    replaced, and a refused launch puts back only the files it set aside. The names set
    aside (a link at a name is no launch's file: replaced as before)."""
    kept = []
    for name, previous in LAUNCH_PREVIOUS.items():
        here = run_dir / name
        if here.is_file() and not here.is_symlink():
            os.replace(here, run_dir / previous)
            kept.append(name)
    return kept


def launch_run(config: Path, options: service.RunOptions, run_dir: Path) -> Launch:
    """Start :func:`~gprpipe.pipeline.service.run` of ``config`` in the background
    (``run_dir``: where the config's run goes, for the spec and the log)."""
    opts = asdict(options)
    opts["overrides"] = list(options.overrides)
    opts["steps"] = list(options.steps) if options.steps else None
    if opts["record"] is None:  # run.json records the command that does the same
        opts["record"] = [
            "gprpipe",
            "run",
            str(config),
            *[x for o in options.overrides for x in ("--set", o)],
            *(["--engine", options.engine] if options.engine else []),
            *(["--executor", options.executor] if options.executor else []),
            *(["-j", str(options.jobs)] if options.jobs else []),
            *(["--points", options.points] if options.points else []),
        ]
    return _start({"kind": "run", "config": str(config), "options": opts}, run_dir)


def launch_rerun(run_dir: Path, *, failed: bool = True, jobs: int | None = None) -> Launch:
    """Start :func:`~gprpipe.pipeline.service.rerun` of ``run_dir`` in the background."""
    record = ["gprpipe", "rerun", str(run_dir), *(["--failed"] if failed else [])]
    record += ["-j", str(jobs)] if jobs else []
    spec = {"kind": "rerun", "run_dir": str(run_dir), "failed": failed, "jobs": jobs}
    return _start(spec | {"record": record}, run_dir)


class TextObserver(service.RunObserver):
    """Plain lines on a stream: notices, each task that ran, the jobs submitted."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.began = False  # a task ran or was submitted: a failure now is no refusal

    def _print(self, line: str) -> None:
        if line:
            print(line, file=self.out, flush=True)

    def notice(self, line: str) -> None:
        self._print(line)

    def rerunning(self, tasks: Sequence[Task]) -> None:
        self._print(f"Rerunning {len(tasks)} tasks: " + ", ".join(t.id for t in tasks))

    def submitted(
        self, executor: str, tasks: Sequence[Task], job_ids: dict[str, str], cached: int = 0
    ) -> None:
        self.began = True
        self._print(service.submitted_line(executor, tasks, job_ids, cached))

    def started(self, tasks: Sequence[Task], executor: str) -> None:
        self.began = True

    def task_ended(self, task: Task, outcome: Outcome) -> None:
        self.began = True
        self._print(service.task_line(task, outcome))


def _report(result: service.RunResult | None, out: TextIO) -> int:
    if result is None:
        print("Nothing to rerun: no task matches.", file=out)
        return 0
    if not result.queued:
        print(result.headline(), file=out)
        for task, message in result.failures():
            print(f"failed {task.id} (log: {task.log})", file=out)
            if message:
                print("  " + message.replace("\n", "\n  "), file=out)
    for rows in result.failed_rows:
        print(rows.sentence(), file=out)
    if not result.queued or result.waited:
        print("\n".join(service.summarise(result.run_dir)), file=out)
    return 0 if result.ok else 1


def _prestart_workers(spec: dict[str, Any]) -> None:
    """Start the warm workers' fork server before the config is read, as ``gprpipe run``
    does (its imports overlap the planning)."""
    from gprpipe.executors.forkserver import prestart

    opts = spec.get("options", {})
    argv = [str(spec.get("kind", "run"))]
    for opt in ("engine", "executor"):
        if opts.get(opt):
            argv += [f"--{opt}", str(opts[opt])]
    argv += [f"--set={o}" for o in opts.get("overrides", ())]
    if opts.get("dry_run"):
        argv.append("--dry-run")
    prestart(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gprpipe.pipeline.launch SPEC``: run a launch spec; the exit code."""
    from gprpipe.executors.local import sigterm_interrupts

    args = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout
    # from the start (SIGTERM while the config is read also stops the run), not only while
    # tasks run
    with sigterm_interrupts():
        return _main(args, out)


def _main(args: list[str], out: TextIO) -> int:
    observer = TextObserver(out)
    try:
        spec = read_json(args[0])
        _prestart_workers(spec)
        result: service.RunResult | None
        if spec["kind"] == "run":
            opts = service.RunOptions(**spec["options"])
            result = service.run(Path(spec["config"]), opts, observer)
        else:
            result = service.rerun(
                Path(spec["run_dir"]),
                failed=bool(spec.get("failed", True)),
                jobs=spec.get("jobs"),
                observer=observer,
                record=spec.get("record"),
            )
        return _report(result, out)
    except ConfigError as exc:
        for e in exc.shown():
            print(f"error: {e}", file=out)
        return 1 if observer.began else REFUSED
    except GprpipeError as exc:
        print(f"error: {exc}", file=out)
        return 1 if observer.began or isinstance(exc, PartlySubmitted) else REFUSED
    except (service.Interrupted, KeyboardInterrupt) as exc:
        print(str(exc) or "interrupted", file=out)
        return 130
    finally:
        with contextlib.suppress(OSError, ValueError):
            out.flush()


if __name__ == "__main__":
    sys.exit(main())
