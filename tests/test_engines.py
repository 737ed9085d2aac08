"""Exact command lines of the engines (local, docker, podman, apptainer).

Docker (no daemon here) and Apptainer (not installable on Debian 12) cannot run on these
machines, so their tests check the exact argument lists only; the engines are built with a
known digest so that no ``image inspect`` is attempted. ``test_podman_engine.py`` runs real
containers. The Apptainer ``check()`` tests use a stand-in ``apptainer`` script (the real
program cannot be installed here) that answers ``inspect --json --labels`` like Apptainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

from gprpipe.engines import (
    ApptainerEngine,
    DockerEngine,
    LocalEngine,
    PodmanEngine,
    get_engine,
)
from gprpipe.engines.apptainer import normalise_image
from gprpipe.engines.base import container_name, host_version, run_token
from gprpipe.errors import GprpipeError
from gprpipe.pipeline.task import Task

DIGEST = "sha256:" + "ab" * 32
IMAGE = "localhost/gprpipe:9.9.9"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A run directory with one point, and two data folders outside it."""
    run = tmp_path / "run"
    point = run / "p0"
    data = tmp_path / "data"
    extra = tmp_path / "extra"
    for folder in (point, data, extra):
        folder.mkdir(parents=True)
    return {"run": run, "point": point, "data": data, "extra": extra}


def make_task(layout: dict[str, Path], inputs: tuple[Path, ...] = (), **kw) -> Task:
    point = layout["point"]
    return Task(
        id="p0/fit/2015-003",
        point="p0",
        step="fit",
        point_dir=point,
        argv=("step", "fit", "--point-dir", str(point), "--part", "2015-003"),
        inputs=inputs,
        outputs=(point / "fit.h5",),
        **kw,
    )


def split_name(argv: list[str]) -> tuple[list[str], str]:
    """The argv with the container name replaced by NAME, and the name."""
    i = argv.index("--name") + 1
    return [*argv[:i], "NAME", *argv[i + 1 :]], argv[i]


def test_local_command(layout):
    task = make_task(layout)
    argv = LocalEngine().command(task, run_dir=layout["run"], env={"OMP_NUM_THREADS": "1"})
    assert argv == [sys.executable, "-m", "gprpipe", *task.argv]
    assert get_engine("local", image="ignored").provenance() == {"GPRPIPE_ENGINE": "local"}


@pytest.mark.parametrize("cls", [PodmanEngine, DockerEngine])
def test_oci_exact_argv(layout, cls):
    run, point, data = layout["run"], layout["point"], layout["data"]
    (data / "hps2015.root").write_bytes(b"")
    task = make_task(layout, inputs=(data / "hps2015.root", run / "p0" / "load.h5"))
    engine = cls(image=IMAGE, digest=DIGEST)
    argv, name = split_name(
        engine.command(task, run_dir=run, env={"SEED": "7", "OMP_NUM_THREADS": "1"})
    )
    uid, gid = os.getuid(), os.getgid()
    keep_id = ["--userns=keep-id"] if cls is PodmanEngine and uid != 0 else []
    token = run_token(run)
    replace = ["--replace"] if cls is PodmanEngine else []
    assert argv == [
        cls.exe, "run", "--rm", "--init", "--name", "NAME",
        "--label", f"org.gprpipe.run={token}", *replace, "--network=none",
        *keep_id,
        "--user", f"{uid}:{gid}", "--security-opt", "label=disable",
        "-v", f"{run}:{run}",
        "-v", f"{data / 'hps2015.root'}:{data / 'hps2015.root'}:ro",
        "-w", str(point),
        "-e", "OMP_NUM_THREADS=1",
        "-e", "SEED=7",
        "-e", f"GPRPIPE_ENGINE={cls.name}",
        "-e", f"GPRPIPE_IMAGE={IMAGE}",
        "-e", f"GPRPIPE_IMAGE_DIGEST={DIGEST}",
        IMAGE, "gprpipe", "step", "fit", "--point-dir", str(point), "--part", "2015-003",
    ]  # fmt: skip
    assert name == f"gprpipe-{token}-p0__fit__2015-003"
    assert re.fullmatch(r"[0-9a-f]{10}", token)


def test_apptainer_exact_argv(layout, tmp_path):
    run, point, data = layout["run"], layout["point"], layout["data"]
    sif = tmp_path / "gprpipe_9.9.9.sif"
    (data / "hps2015.root").write_bytes(b"")
    task = make_task(layout, inputs=(data / "hps2015.root",))
    engine = ApptainerEngine(image=str(sif), digest=DIGEST)
    argv = engine.command(task, run_dir=run, env={"SEED": "7", "OMP_NUM_THREADS": "1"})
    assert argv == [
        "apptainer", "exec", "--contain", "--cleanenv", "--no-home",
        "--bind", str(run),
        "--bind", f"{data / 'hps2015.root'}:{data / 'hps2015.root'}:ro",
        "--pwd", str(point),
        "--env",
        f"OMP_NUM_THREADS=1,SEED=7,GPRPIPE_ENGINE=apptainer,GPRPIPE_IMAGE={sif},"
        f"GPRPIPE_IMAGE_DIGEST={DIGEST}",
        str(sif), "gprpipe", *task.argv,
    ]  # fmt: skip


def test_apptainer_binds_a_parent_first_and_refuses_what_its_shell_would_evaluate(layout, tmp_path):
    """Two reviews of the Apptainer line (checked by its text: Apptainer cannot run here).
    Apptainer writes --env values into the container's shell as ``export K="V"``: an image
    path or working folder with ``$(...)`` ran it there. Before 1.2 it mounts binds in the
    order given: an input folder holding the run directory, bound read-only after it, hid
    the run's writable mount (inputs are mounted as files now: the binds stay sorted by
    depth). And without --contain a task shared
    the node's /tmp."""
    data = tmp_path / "all"
    run = data / "runs" / "x"
    point = run / "p0"
    point.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    task = Task(
        id="q/fit", point="q", step="fit", point_dir=outside / "q", argv=("step",),
        inputs=(data / "a.root",),
    )  # fmt: skip
    argv = ApptainerEngine(image="docker://x/y:1", digest="").command(
        task, run_dir=run, env={}, check_paths=False
    )
    assert argv[:11] == [
        "apptainer", "exec", "--contain", "--cleanenv", "--no-home",
        "--bind", str(outside / "q"),
        "--bind", f"{data / 'a.root'}:{data / 'a.root'}:ro", "--bind", str(run),
    ]  # fmt: skip
    image = str(tmp_path / "img$(touch${IFS}pwned).sif")
    with pytest.raises(GprpipeError) as info:
        ApptainerEngine(image=image, digest="").command(
            task, run_dir=run, env={}, check_paths=False
        )
    assert str(info.value) == (
        f"environment variable GPRPIPE_IMAGE of task {task.id} contains a '$', which "
        f"apptainer --env would evaluate in the container's shell: {image!r}"
    )
    for value, said in (("`id`", "a backquote"), ("a\\b$", "a '$' and a backslash")):
        with pytest.raises(GprpipeError, match=re.escape(f"contains {said}, which apptainer")):
            ApptainerEngine(image="docker://x/y:1", digest="").command(
                task, run_dir=run, env={"X": value}, check_paths=False
            )


def test_apptainer_docker_uri_and_gpu(layout):
    task = make_task(layout)
    engine = ApptainerEngine(image="ghcr.io/hps/gprpipe:0.1.0", gpu=True)
    argv = engine.command(task, run_dir=layout["run"], env={})
    assert argv[-len(task.argv) - 3 :] == [
        "--nv", "docker://ghcr.io/hps/gprpipe:0.1.0", "gprpipe", *task.argv
    ]  # fmt: skip
    # no digest is known for a remote image without pulling it
    assert argv[argv.index("--env") + 1] == (
        "GPRPIPE_ENGINE=apptainer,GPRPIPE_IMAGE=docker://ghcr.io/hps/gprpipe:0.1.0"
    )


def test_normalise_apptainer_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_image("docker://python:3.11-slim") == "docker://python:3.11-slim"
    assert normalise_image("library://org/x:1") == "library://org/x:1"
    assert normalise_image("oci-archive:img.tar") == "oci-archive:img.tar"
    assert normalise_image("python:3.11-slim") == "docker://python:3.11-slim"
    assert normalise_image("images/g.sif") == str(tmp_path / "images" / "g.sif")
    assert normalise_image("../g.sif") == str(tmp_path.parent / "g.sif")
    (tmp_path / "sandbox").mkdir()
    assert normalise_image("sandbox") == str(tmp_path / "sandbox")
    assert ApptainerEngine().image == str(tmp_path / f"gprpipe_{host_version()}.sif")


@pytest.mark.parametrize("name", ["podman", "docker", "apptainer"])
def test_gpu_flag_only_when_asked(layout, name):
    task = make_task(layout)
    gpu_flags = {"--nv", "--gpus", "--device"}
    plain = get_engine(name, image="x.sif" if name == "apptainer" else IMAGE)
    assert not gpu_flags & set(plain.command(task, run_dir=layout["run"], env={}))
    gpu = get_engine(name, image="x.sif" if name == "apptainer" else IMAGE, gpu=True)
    argv = gpu.command(task, run_dir=layout["run"], env={})
    expected = {"podman": ["--device", "nvidia.com/gpu=all"], "docker": ["--gpus", "all"]}
    flags = expected.get(name, ["--nv"])
    i = argv.index(flags[0])
    assert argv[i : i + len(flags)] == flags
    assert argv.index(gpu.image) == i + len(flags)  # right before the image


def test_inputs_are_mounted_as_files_not_their_folders(layout):
    """A review: each input's folder was mounted, so a data file in a home folder showed
    the task the whole home folder (its keys). Each input file is mounted alone; a link
    inside the run directory as the file it leads to, at that file's path."""
    run, data, extra = layout["run"], layout["data"], layout["extra"]
    (data / "sub").mkdir()
    for name in ("a.root", "b.root", "sub/c.root", "d.root"):
        (data / name).write_bytes(b"")
    target = extra / "real.root"
    target.write_bytes(b"")
    (data / "link.root").symlink_to(target)
    (run / "p0").mkdir(parents=True, exist_ok=True)
    (run / "p0" / "in-run.root").symlink_to(extra / "other.root")
    (extra / "other.root").write_bytes(b"")
    inputs = (
        data / "b.root",
        data / "a.root",
        data / "a.root",  # twice: one mount
        data / "sub" / "c.root",
        run / "p0" / "load.h5",  # inside the run directory: no mount of its own
        run / "p0" / "in-run.root",  # a link inside it: the file it leads to is mounted
        data / "link.root",  # a link: mounted as the file it leads to (its path alone)
        Path(str(data) + "/../data/d.root"),  # unnormalised
    )
    task = make_task(layout, inputs=inputs)
    for engine in (PodmanEngine(image=IMAGE, digest=DIGEST), ApptainerEngine(digest="")):
        argv = engine.command(task, run_dir=run, env={})
        flag = "-v" if engine.name == "podman" else "--bind"
        mounts = [argv[i + 1] for i, a in enumerate(argv) if a == flag]
        files = [
            data / "a.root", data / "b.root", data / "d.root", data / "link.root",
            data / "sub" / "c.root", extra / "other.root",
        ]  # fmt: skip
        ro = [f"{f}:{f}:ro" for f in files]
        if engine.name == "podman":
            assert mounts == [f"{run}:{run}", *sorted(ro)]
        else:  # by depth, a parent first (stable)
            assert sorted(mounts) == sorted([str(run), *ro]) and mounts[-1] == ro[4]


def test_an_input_whose_name_a_bind_spec_cannot_write_is_mounted_by_its_folder(layout):
    """A review of the file mounts: a data file named with a time (``T10:00:00``) or a
    comma ran before (its folder was mounted) and was refused once each file was mounted
    alone. Such a file is mounted by its folder (with a link's target folder)."""
    run, data, extra = layout["run"], layout["data"], layout["extra"]
    stamped = data / "demo_2015-12-05T10:00:00.root"
    stamped.write_bytes(b"")
    (extra / "a,b.root").write_bytes(b"")
    (data / "current.root").symlink_to(extra / "a,b.root")  # a plain name: the file alone
    task = make_task(layout, inputs=(stamped, data / "current.root"))
    for engine in (PodmanEngine(image=IMAGE, digest=DIGEST), ApptainerEngine(digest="")):
        argv = engine.command(task, run_dir=run, env={})
        flag = "-v" if engine.name == "podman" else "--bind"
        mounts = sorted(argv[i + 1] for i, a in enumerate(argv) if a == flag)
        link = data / "current.root"
        assert mounts == sorted([f"{run}:{run}" if flag == "-v" else str(run),
                                 f"{data}:{data}:ro", f"{link}:{link}:ro"])  # fmt: skip


def test_point_dir_outside_run_dir_is_mounted(layout, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    task = Task(id="x/load", point="x", step="load", point_dir=elsewhere, argv=("step",))
    argv = PodmanEngine(image=IMAGE, digest="").command(task, run_dir=layout["run"], env={})
    assert f"{elsewhere}:{elsewhere}" in argv
    assert argv[argv.index("-w") + 1] == str(elsewhere)


def test_missing_bind_path(layout, tmp_path):
    missing = tmp_path / "nowhere"
    task = make_task(layout, inputs=(missing / "hps2015.root",))
    for engine in (
        PodmanEngine(image=IMAGE, digest=""),
        DockerEngine(image=IMAGE, digest=""),
        ApptainerEngine(digest=""),
    ):
        with pytest.raises(GprpipeError, match=f"bind path {re.escape(str(missing))}/hps2015"):
            engine.command(task, run_dir=layout["run"], env={})
        # a dry run only prints the command: no existence check
        argv = engine.command(task, run_dir=layout["run"], env={}, check_paths=False)
        assert any(str(missing) in a for a in argv)
    with pytest.raises(GprpipeError, match="run directory"):
        PodmanEngine(image=IMAGE, digest="").command(
            make_task(layout), run_dir=tmp_path / "no-run", env={}
        )


def test_unmountable_paths(layout, tmp_path):
    odd = tmp_path / "a,b"
    odd.mkdir()
    task = make_task(layout, inputs=(odd / "x.root",))
    with pytest.raises(GprpipeError, match="contains"):
        PodmanEngine(image=IMAGE, digest="").command(task, run_dir=layout["run"], env={})
    with pytest.raises(GprpipeError, match="contains ':' or ','"):
        ApptainerEngine(digest="").command(task, run_dir=layout["run"], env={}, check_paths=False)
    # apptainer reads --env as a line of CSV: a double quote broke the command line
    plain = make_task(layout)
    for value in ("a,b", 'say "hi"'):
        with pytest.raises(GprpipeError, match="contains a comma or a double quote"):
            ApptainerEngine(digest="").command(
                plain, run_dir=layout["run"], env={"X": value}, check_paths=False
            )
    # also without the existence checks (a dry run, the check before a run's folder is made)
    with pytest.raises(GprpipeError, match="contains ':' or ','"):
        PodmanEngine(image=IMAGE, digest="").command(
            task, run_dir=layout["run"], env={}, check_paths=False
        )


def test_container_names_per_run_and_task_and_valid(layout, tmp_path):
    """One name per (run directory, task): a leftover is found and replaced by name; a
    copy of the run directory has other names."""
    engine = PodmanEngine(image=IMAGE, digest="")
    weird = Task(id="m=37 GeV/fit:part 1", point="m=37 GeV", step="fit",
                 point_dir=layout["point"], argv=("step",))  # fmt: skip
    other = Task(id="m=37 GeV/fit:part 2", point="m=37 GeV", step="fit",
                 point_dir=layout["point"], argv=("step",))  # fmt: skip
    names = set()
    for _ in range(3):
        _, name = split_name(engine.command(weird, run_dir=layout["run"], env={}))
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name)
        digest = hashlib.sha256(weird.id.encode()).hexdigest()[:10]
        assert name == f"gprpipe-{run_token(layout['run'])}-m-37-GeV__fit-part-1-{digest}"
        names.add(name)
    assert len(names) == 1
    _, name2 = split_name(engine.command(other, run_dir=layout["run"], env={}))
    copy = tmp_path / "copy"
    copy.mkdir()
    _, name3 = split_name(engine.command(weird, run_dir=copy, env={}, check_paths=False))
    assert len({name, name2, name3}) == 3
    argv = engine.command(weird, run_dir=layout["run"], env={})
    assert engine.stop_command(argv) == ["podman", "rm", "-f", "-t", "0", split_name(argv)[1]]
    assert ApptainerEngine().stop_command(argv) is None


def test_container_names_of_long_or_rewritten_task_ids_stay_distinct(layout):
    """A review: the task part of a name was cut at 80 characters, so the chunks and the
    merge of a point with a long name (grid points of four keys) shared one container
    name, and podman's --replace removed a running sibling; and ids that differ only in a
    character a name cannot hold ('+' and '-' in dataset keys) met as well."""
    point = "blind_nsigma-1.64_ls_hi_factor-3_train_exclude_nsigma-2.5_global_toys-1000"
    ids = [f"{point}/fit/demo-000", f"{point}/fit/demo-001", f"{point}/fit/merge"]
    ids += ["nominal/fit/a+b-000", "nominal/fit/a-b-000", "nominal/fit/a-b-000-"]
    names = {
        container_name(
            Task(id=i, point=i.split("/")[0], step="fit", point_dir=layout["point"], argv=()),
            layout["run"],
        )
        for i in ids
    }
    assert len(names) == len(ids)
    for name in names:
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) and len(name) <= 99, name
    # an id a name holds as it is keeps its readable name
    plain = Task(id="nominal/fit/2015-003", point="nominal", step="fit",
                 point_dir=layout["point"], argv=())  # fmt: skip
    assert container_name(plain, layout["run"]).endswith("-nominal__fit__2015-003")


def test_env_passthrough_sorted(layout):
    task = make_task(layout, env={"ZETA": "task", "SEED": "from-task"})
    env = {"SEED": "42", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "GPRPIPE_ENGINE": "spoofed"}  # fmt: skip
    argv = DockerEngine(image=IMAGE, digest=DIGEST).command(task, run_dir=layout["run"], env=env)
    values = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
    assert values == [
        "MKL_NUM_THREADS=1", "OMP_NUM_THREADS=1", "SEED=42", "ZETA=task",
        "GPRPIPE_ENGINE=docker", f"GPRPIPE_IMAGE={IMAGE}", f"GPRPIPE_IMAGE_DIGEST={DIGEST}",
    ]  # fmt: skip
    app = ApptainerEngine(image="docker://x/y:1", digest="")
    argv = app.command(task, run_dir=layout["run"], env=env)
    assert argv[argv.index("--env") + 1] == (
        "MKL_NUM_THREADS=1,OMP_NUM_THREADS=1,SEED=42,ZETA=task,"
        "GPRPIPE_ENGINE=apptainer,GPRPIPE_IMAGE=docker://x/y:1"
    )
    with pytest.raises(GprpipeError, match="comma"):
        app.command(task, run_dir=layout["run"], env={"LIST": "a,b"})
    with pytest.raises(GprpipeError, match="invalid environment variable name"):
        app.command(task, run_dir=layout["run"], env={"A=B": "1"})


def test_get_engine(tmp_path, monkeypatch):
    assert isinstance(get_engine("local"), LocalEngine)
    podman = get_engine("Podman")
    assert isinstance(podman, PodmanEngine)
    assert podman.image == f"localhost/gprpipe:{host_version().replace('+', '-')}"  # a tag has no +
    assert get_engine("docker", image="me/img:1").image == "me/img:1"
    assert isinstance(get_engine("singularity"), ApptainerEngine)
    with pytest.raises(GprpipeError, match="unknown engine 'kubernetes'"):
        get_engine("kubernetes")


def test_check_engine_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no engine is installed
    get_engine("local").check()
    with pytest.raises(GprpipeError) as err:
        get_engine("podman").check()
    assert str(err.value) == (
        "podman not found: install it (scripts/setup-podman.sh) or use --engine local"
    )
    with pytest.raises(GprpipeError, match=r"^docker not found"):
        get_engine("docker").check()
    with pytest.raises(GprpipeError, match=r"^apptainer not found"):
        get_engine("apptainer").check()
    # without the program there is no digest, and no error either
    assert get_engine("podman").image_digest is None


def fake_apptainer(folder: Path, version: str) -> None:
    """Stand-in for ``apptainer inspect --json --labels IMAGE`` (Apptainer cannot run here)."""
    labels = {"data": {"attributes": {"labels": {"org.gprpipe.version": version}}}}
    script = folder / "apptainer"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{json.dumps(labels)}'\n")  # PATH has no cat
    script.chmod(0o755)


def test_apptainer_check(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    sif = tmp_path / "g.sif"
    fake_apptainer(bindir, host_version())
    with pytest.raises(GprpipeError) as err:
        ApptainerEngine(image=str(sif)).check()
    assert str(err.value) == (
        f"image {sif} not found for apptainer: build it with "
        f"scripts/build-image.sh --engine apptainer --tag {sif}"
    )
    sif.write_bytes(b"not really a sif")
    engine = ApptainerEngine(image=str(sif))
    engine.check()
    assert engine.image_digest == "sha256:" + hashlib.sha256(b"not really a sif").hexdigest()
    fake_apptainer(bindir, "0.0.1")
    want = re.escape(f"has gprpipe 0.0.1 but this host has {host_version()}")
    with pytest.raises(GprpipeError, match=want):
        ApptainerEngine(image=str(sif)).check()
    ApptainerEngine(image=str(sif), check_version=False).check()
    # a URI cannot be checked before the run (it ran unchecked, with no digest recorded,
    # though the README promised the check: a review): refused unless the check is off
    with pytest.raises(GprpipeError) as err:
        ApptainerEngine(image="docker://x/y:1").check()
    assert str(err.value) == (
        "image docker://x/y:1: a URI, whose gprpipe version cannot be checked before the run "
        "(nor its digest recorded): pull it into a file (apptainer pull gprpipe.sif "
        "docker://x/y:1) and give that file as base.image, or skip the check with --set "
        "base.check_image_version=false"
    )
    ApptainerEngine(image="docker://x/y:1", check_version=False).check()
    # an image path is free-form: the suggested command quotes it (pasted, it ran $(id))
    odd = tmp_path / "$(id)" / "g;id`id`.sif"
    with pytest.raises(GprpipeError) as err:
        ApptainerEngine(image=str(odd)).check()
    assert str(err.value) == (
        f"image {odd} not found for apptainer: build it with "
        f"scripts/build-image.sh --engine apptainer --tag '{odd}'"
    )
