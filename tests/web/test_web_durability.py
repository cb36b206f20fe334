"""Crashes and full disks: a server killed with SIGKILL mid-job comes back with every job and
file intact, a data folder that runs out of space fails the job it stops (and no more), and
a long line of waiting jobs survives a restart in its order.

The full disk is a real one where this test may mount a tiny tmpfs (as root), else the
pictures' writer is given a disk with room for a job record but not for a picture.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # servers in subprocesses, killed and restarted

pytest.importorskip("fastapi", reason="the web extra is not installed")
from conftest import local, png  # noqa: E402

from brushwork import images  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402

TINY = {"size": "32", "steps": "2"}
LONG = {"size": "48", "steps": "5000"}



def job_files(content: bytes, style: bytes) -> list:
    return [("content", ("photo.png", content, "image/png")), ("styles", ("style.png", style, "image/png"))]



def wait_for(get, job_id: str, condition, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = get(f"/api/jobs/{job_id}")
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"timed out waiting; last state: {state}"
        time.sleep(0.05)


def files_of(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


# --- SIGKILL ---------------------------------------------------------------------------------


class Served:
    """`brushwork serve --token` as a real process on a free loopback port, spoken to with the
    token it prints."""

    def __init__(self, data: Path, port: int):
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "brushwork.cli", "serve", "--port", str(port), "--data", str(data), "--token",
             "--device", "cpu"], stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self.process.stderr.readline()
        assert "?token=" in line, line
        self.token = line.split("?token=")[1].split()[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/config")
                return
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, "the server did not come up"
                time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def submit(self, content: bytes, style: bytes, settings: dict) -> str:
        boundary = "brushwork-test-boundary"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in settings.items()]
        for field, data in (("content", content), ("styles", style)):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{field}.png"\r\n'
                         f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", "/api/jobs", body, f"multipart/form-data; boundary={boundary}")["id"]


def test_sigkill_mid_job_loses_nothing(tmp_path, content, style):
    from test_web_api import free_port

    data = tmp_path / "data"
    content_png, style_png = png(content), png(style)
    server = Served(data, free_port())
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is needed, even on loopback
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/jobs", timeout=30)
        assert refused.value.code == 401
        done = server.submit(content_png, style_png, TINY)
        wait_for(server.get, done, lambda s: s["status"] == "done")
        cut = server.submit(content_png, style_png, LONG)
        waiting = [server.submit(content_png, style_png, TINY) for _ in range(2)]
        wait_for(server.get, cut, lambda s: s["step"] >= 2)
        before = files_of(data)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(30)
    finally:
        server.process.kill()
        server.process.wait()
    assert not [name for name in before if name.endswith(".tmp")]
    assert json.loads((data / "jobs" / cut / "job.json").read_text())["status"] == "running"  # as the kill left it

    server = Served(data, free_port())
    try:
        assert server.get(f"/api/jobs/{done}")["status"] == "done"
        for name, digest in before.items():  # every file the first server wrote is still there, unchanged
            if not name.endswith("job.json"):
                assert files_of(data)[name] == digest, name
        state = server.get(f"/api/jobs/{cut}")
        assert state["status"] == "interrupted" and "server stopped" in state["error"]
        line = [server.get(f"/api/jobs/{job_id}") for job_id in waiting]  # the line resumes, in its order
        assert [(s["status"], s["position"]) for s in line] in ([("queued", 1), ("queued", 2)],
                                                                [("running", None), ("queued", 1)])
        retried = server.request("POST", f"/api/jobs/{cut}/retry")
        assert retried["status"] == "queued" and retried["position"] >= 2 and retried["error"] is None
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(60) == 0
    finally:
        server.process.kill()
        server.process.wait()


# --- full disks ------------------------------------------------------------------------------


class TinyDisk:
    """A 512 KiB tmpfs at `folder`, filled on demand to leave a few pages free."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
                                capture_output=True)
        self.mounted = result.returncode == 0
        self.filler = folder / "filler"

    def fill(self) -> None:
        """Every byte but two pages: room for a job record, not for a picture."""
        with open(self.filler, "wb", buffering=0) as f:
            try:
                while f.write(b"\0" * 4096):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC
            f.truncate(max(0, f.tell() - 8192))

    def free(self) -> None:
        self.filler.unlink()

    def close(self) -> None:
        subprocess.run(["umount", str(self.folder)], check=True)


class FakeFullDisk:
    """Where no tmpfs can be mounted: the writer of every server file (images.write_atomic,
    through `os`) finds no room for a file over 4 KB while the disk is `full`."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch):
        folder.mkdir()
        self.folder, self.full = folder, False
        disk = self

        class Quota(io.BufferedWriter):
            def write(self, data) -> int:
                if disk.full and self.tell() + len(data) > 4096:
                    super().write(bytes(data)[: max(0, 4096 - self.tell())])  # what fits goes in, as on a disk
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return super().write(data)

        class Os:
            def __getattr__(self, name: str):
                return getattr(os, name)

            def fdopen(self, fd: int, mode: str = "r", *args, **kwargs):
                return Quota(io.FileIO(fd, mode)) if mode == "wb" else os.fdopen(fd, mode, *args, **kwargs)

        monkeypatch.setattr(images, "os", Os())

    def fill(self) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False

    def close(self) -> None:
        """Nothing mounted."""


@pytest.fixture
def disk(tmp_path, monkeypatch):
    disk = TinyDisk(tmp_path / "disk") if os.geteuid() == 0 else None
    if disk is None or not disk.mounted:
        disk = FakeFullDisk(tmp_path / "fake-disk", monkeypatch)
    yield disk
    disk.close()


def test_a_full_data_folder_fails_the_job_cleanly_and_the_server_keeps_serving(disk, content, style):
    data = disk.folder / "data"
    upload = job_files(png(content), png(style))
    settings = {"size": "96", "steps": "2"}
    client = local(create_app(data, preview_interval=0))  # no worker yet: the job waits
    job = client.post("/api/jobs", files=upload, data=settings).json()
    disk.fill()

    refused = client.post("/api/jobs", files=upload, data=settings)
    assert refused.status_code == 507, refused.text
    assert "is full (No space left on device)" in refused.json()["error"]
    assert [p.name for p in (data / "jobs").iterdir()] == [job["id"]]  # the refused upload left nothing

    with client:  # the worker starts, and the result finds no room
        get = lambda path: client.get(path).json()  # noqa: E731
        state = wait_for(get, job["id"], lambda s: s["status"] not in ("queued", "running"))
        assert state["status"] == "failed" and "is full (No space left on device)" in state["error"]
        assert sorted(p.name for p in (data / "jobs" / job["id"]).iterdir()) == ["content.png", "job.json",
                                                                                 "style-0.png"]
        assert client.get(f"/api/jobs/{job['id']}/result.png").status_code == 409
        assert client.get("/api/jobs").status_code == 200 and client.get("/").status_code == 200  # still serving

        disk.free()
        assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 200
        assert wait_for(get, job["id"], lambda s: s["status"] not in ("queued", "running"))["status"] == "done"
        result = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result.png").content))
        assert result.size == (96, 96)
    assert not [p for p in data.rglob("*") if p.name.endswith(".tmp")]


# --- a long line -----------------------------------------------------------------------------


def test_two_hundred_waiting_jobs_survive_a_restart_in_their_order(tmp_path):
    upload = job_files(png(Image.new("RGB", (8, 8), "red")), png(Image.new("RGB", (8, 8), "blue")))
    client = local(create_app(tmp_path))  # no worker: they all wait
    ids = []
    for i in range(200):
        response = client.post("/api/jobs", files=upload, data={"size": "32", "steps": str(1 + i % 7)})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert client.post(f"/api/jobs/{ids[10]}/cancel").json()["status"] == "cancelled"
    client.app.state.queue.close()  # what Ctrl-C does

    for restart in range(2):  # a clean stop, then a crash (nothing closes the second app)
        client = local(create_app(tmp_path))
        jobs = client.get("/api/jobs").json()["jobs"]
        line = sorted((j for j in jobs if j["status"] == "queued"), key=lambda j: j["position"])
        assert [j["id"] for j in line] == ids[:10] + ids[11:], restart
        assert [j["position"] for j in line] == list(range(1, 200))
        assert [j["settings"]["steps"] for j in line] == [1 + i % 7 for i in range(200) if i != 10]
        assert client.get(f"/api/jobs/{ids[10]}").json()["status"] == "cancelled"
