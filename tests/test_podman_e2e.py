"""End to end in real containers: the quickstart under Podman equals the local engine.

Needs podman and the test image (scripts/setup-podman.sh, scripts/build-image.sh
--engine podman --tag localhost/gprpipe:test, or GPRPIPE_TEST_IMAGE). Skips without them,
except in CI (CI=true), where a missing prerequisite fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from conftest import TEST_IMAGE, require_podman, settings

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def gprpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gprpipe", *args], capture_output=True, text=True, cwd=REPO
    )


def test_quickstart_in_podman_matches_local(shared_quickstart: Path, tmp_path: Path) -> None:
    require_podman()
    qs = "user_configs/quickstart.toml"
    pod = gprpipe(
        "run",
        qs,
        "--engine",
        "podman",
        *settings(
            f"base.image={TEST_IMAGE}",
            f"base.output={tmp_path / 'podman'}",
            'plot.formats=["png"]',  # as the local run it is compared with
        ),
    )
    assert pod.returncode == 0, pod.stderr + pod.stdout
    a = (shared_quickstart / "nominal" / "scan.csv").read_bytes()  # the local run
    b = (tmp_path / "podman" / "nominal" / "scan.csv").read_bytes()
    assert a == b
    for name in ("load.h5", "fit.h5", "limit.h5"):
        with h5py.File(tmp_path / "podman" / "nominal" / name) as f:
            assert f.attrs["engine"] == "podman"
            assert f.attrs["image"] == TEST_IMAGE
            assert str(f.attrs["image_digest"]).startswith("sha256:")
    for part in (tmp_path / "podman" / "nominal" / "parts").rglob("*.h5"):
        with h5py.File(part) as f:
            assert f.attrs["engine"] == "podman"
    with h5py.File(shared_quickstart / "nominal" / "fit.h5") as f:
        assert f.attrs["engine"] == "local"


def test_missing_input_is_refused_before_a_container_starts(tmp_path: Path) -> None:
    require_podman()
    res = gprpipe(
        "run",
        "user_configs/quickstart.toml",
        "--engine",
        "podman",
        *settings(
            f"base.image={TEST_IMAGE}",
            f"base.output={tmp_path}",
            "datasets.demo.path=/nonexistent/demo.root",
        ),
        "--steps",
        "load",
    )
    # inputs are checked before any container starts: one sentence naming the key
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "error: --set datasets.demo.path: /nonexistent/demo.root: data file not found."
    )


def test_injection_on_background_histograms_in_podman(shared_data: Path, tmp_path: Path) -> None:
    """``inject.background = "histograms"`` reads the toy histograms from the dataset's
    file, which the inject tasks did not list as an input: a container had no mount of its
    folder and every inject task failed with "data file not found" (a review). The shipped
    functional-form injection config, one family, two toys, in Podman."""
    require_podman()
    res = gprpipe(
        "run",
        "user_configs/hps2015_funcform_injection.toml",
        "--engine",
        "podman",
        "--points",
        "1",
        "--steps",
        "load,fit,inject",
        *settings(
            f"base.image={TEST_IMAGE}",
            f"base.output={tmp_path / 'run'}",
            f"datasets.2015.path={shared_data / 'funcform_2015_toys.root'}",
            "inject.n_toys=2",
            "inject.strengths=[0.0]",
        ),
    )
    assert res.returncode == 0, res.stderr + res.stdout
    (point,) = [p for p in (tmp_path / "run").iterdir() if (p / "inject.h5").is_file()]
    with h5py.File(point / "inject.h5") as f:
        assert f.attrs["engine"] == "podman"
    rows = (point / "inject.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[0] == "2015", rows
