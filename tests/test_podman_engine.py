"""Real containers with the Podman engine.

Needs podman (scripts/setup-podman.sh) and the test image
(scripts/build-image.sh --engine podman --tag localhost/gprpipe:test, or the tag in
GPRPIPE_TEST_IMAGE). Skips without them, except in CI (CI=true), where it fails instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import h5py
import pytest
from conftest import require_podman

from gprpipe.engines import PodmanEngine
from gprpipe.engines.base import host_version
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.task import Task

pytestmark = pytest.mark.podman

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image() -> str:
    return require_podman()


def _task(run: Path, inputs: tuple[Path, ...]) -> Task:
    point = run / "p0"
    point.mkdir(parents=True, exist_ok=True)
    return Task(
        id="p0/load",
        point="p0",
        step="load",
        point_dir=point,
        argv=("step", "load", "--point-dir", str(point)),
        inputs=inputs,
    )


def _with_command(argv: list[str], image: str, *cmd: str) -> list[str]:
    """The engine's argv with ``gprpipe <task argv>`` replaced by ``cmd`` (same mounts, env)."""
    return [*argv[: argv.index(image) + 1], *cmd]


WRITE_HDF5 = """
import os, pathlib, h5py
src = pathlib.Path(os.environ["INPUT"])
with h5py.File("out.h5", "w") as f:  # relative: the working directory is the point dir
    f["x"] = [1.0, 2.0, 3.0]
    f.attrs["input"] = src.read_text()
    for key in ("GPRPIPE_ENGINE", "GPRPIPE_IMAGE", "GPRPIPE_IMAGE_DIGEST", "OMP_NUM_THREADS"):
        f.attrs[key] = os.environ.get(key, "")
try:
    src.write_text("no")
    print("input writable")
except OSError:
    print("input read-only")
print("beside it:", sorted(p.name for p in src.parent.iterdir()))
"""


def test_podman_runs_task_and_writes_hdf5(image, tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    data.mkdir()
    (data / "counts.txt").write_text("1 2 3")
    (data / "id_ed25519").write_text("a key beside the input")  # never shown to the task
    task = _task(run, inputs=(data / "counts.txt",))
    engine = PodmanEngine(image=image, check_version=False)
    env = {"OMP_NUM_THREADS": "1", "INPUT": str(data / "counts.txt")}
    argv = engine.command(task, run_dir=run, env=env)
    proc = subprocess.run(
        _with_command(argv, image, "python", "-c", WRITE_HDF5),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["input read-only", "beside it: ['counts.txt']"]
    out = task.point_dir / "out.h5"
    assert out.is_file()
    assert out.stat().st_uid == os.getuid()  # --user: the outputs belong to the caller
    with h5py.File(out, "r") as f:
        assert list(f["x"][:]) == [1.0, 2.0, 3.0]
        assert f.attrs["input"] == "1 2 3"
        assert f.attrs["GPRPIPE_ENGINE"] == "podman"
        assert f.attrs["GPRPIPE_IMAGE"] == image
        assert f.attrs["GPRPIPE_IMAGE_DIGEST"] == engine.image_digest
        assert f.attrs["OMP_NUM_THREADS"] == "1"
    assert engine.image_digest is not None and engine.image_digest.startswith("sha256:")
    assert not (data / "written.txt").exists()


def test_podman_failure_exit_code_and_cleanup(image, tmp_path):
    task = _task(tmp_path / "run", inputs=())
    engine = PodmanEngine(image=image, check_version=False)
    argv = engine.command(task, run_dir=tmp_path / "run", env={})
    name = argv[argv.index("--name") + 1]
    code = "import sys; sys.stderr.write('histogram not found\\n'); sys.exit(3)"
    proc = subprocess.run(
        _with_command(argv, image, "python", "-c", code),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3
    assert "histogram not found" in proc.stderr
    left = subprocess.run(
        ["podman", "ps", "-a", "-q", "--filter", f"name={name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""  # --rm removed the container


def test_image_has_gprpipe_command_and_version(image):
    version = host_version()  # scripts/build-image.sh builds with the host's version
    label = subprocess.run(
        ["podman", "image", "inspect", "--format",
         '{{ index .Config.Labels "org.gprpipe.version" }}', image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert label == version
    proc = subprocess.run(
        ["podman", "run", "--rm", "--network=none", image, "sh", "-c",
         'command -v gprpipe && echo "$GPRPIPE_VERSION $OMP_NUM_THREADS"'],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert proc.stdout.split() == ["/opt/venv/bin/gprpipe", version, "1"]
    if host_version() == version:
        PodmanEngine(image=image).check()
    else:
        with pytest.raises(GprpipeError, match="but this host has"):
            PodmanEngine(image=image).check()


def test_check_missing_image(image):
    missing = f"localhost/gprpipe-missing:{uuid.uuid4().hex[:8]}"
    with pytest.raises(GprpipeError) as err:
        PodmanEngine(image=missing).check()
    assert str(err.value) == (
        f"image {missing} not found for podman: build it with "
        f"scripts/build-image.sh --engine podman --tag {missing}"
    )


def test_check_version_mismatch(image, tmp_path):
    """An image recording another gprpipe version is refused unless the check is off."""
    tag = f"localhost/gprpipe-oldversion:{uuid.uuid4().hex[:8]}"
    (tmp_path / "Containerfile").write_text(
        f"FROM {image}\nLABEL org.gprpipe.version=0.0.1\nENV GPRPIPE_VERSION=0.0.1\n"
    )
    subprocess.run(
        ["podman", "build", "-q", "-t", tag, str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    try:
        with pytest.raises(GprpipeError) as err:
            PodmanEngine(image=tag).check()
        assert str(err.value) == (
            f"image {tag} has gprpipe 0.0.1 but this host has {host_version()}: rebuild it "
            f"with scripts/build-image.sh --engine podman --tag {tag} or skip the check with "
            "--set base.check_image_version=false"
        )
        engine = PodmanEngine(image=tag, check_version=False)
        engine.check()
        assert engine.image_digest is not None and engine.image_digest.startswith("sha256:")
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)


def test_a_run_folder_a_container_cannot_mount_is_refused_before_it_is_written(image, tmp_path):
    """A base.output holding ':' was refused only when the first task started: run.json,
    the lock and the point's config.toml were written, and status said 6 pending."""
    from conftest import QUICKSTART, run_cli_here, settings

    out = tmp_path / "co:lon"
    code, _, err = run_cli_here(
        "run",
        QUICKSTART,
        "--engine",
        "podman",
        *settings(f"base.image={image}", f"base.output={out}"),
    )
    assert code == 1 and err == (  # now said by the config's checks, naming the key
        f"error: --set base.output: {out}: a podman container cannot mount a path that "
        "holds ':' or ',' (a bind spec cannot write them); move it, or run with "
        'base.engine = "local".\n'
    )
    assert not out.exists()
