"""The web app's JSON API through FastAPI's test client: jobs, events, queue, limits, safety.

Jobs are tiny (48 px, a few steps). A client used without `with` runs no lifespan, so its
worker never starts and its jobs stay queued: the tests that need no painting use that.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
from conftest import local  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from brushwork import options  # noqa: E402
from brushwork.cli import main  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402

TINY = {"size": "48", "steps": "3"}
LONG = {"size": "48", "steps": "5000"}  # runs until cancelled



def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploads(content, style) -> dict[str, bytes]:
    return {"content": encode(content), "style": encode(style, "JPEG")}


def files(uploads: dict[str, bytes], content_name: str = "photo.png", n_styles: int = 1) -> list:
    return [("content", (content_name, uploads["content"], "image/png"))] + [
        ("styles", (f"style{i}.jpg", uploads["style"], "image/jpeg")) for i in range(n_styles)
    ]


def submit(client: TestClient, uploads: dict[str, bytes], settings: dict, **kw) -> dict:
    response = client.post("/api/jobs", files=files(uploads, **kw), data=settings)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(client: TestClient, job_id: str, condition, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/api/jobs/{job_id}").json()
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"timed out waiting; last state: {state}"
        time.sleep(0.05)


def read_events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    """The whole event stream of a job (it ends when the job finishes)."""
    events, kind = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return events


def free_port() -> int:
    """A loopback port nobody listens on (closed again, for the server to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_page_docs_and_config(tmp_path):
    client = local(create_app(tmp_path))
    page = client.get("/")
    assert page.status_code == 200 and "<title>brushwork</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and "cdn" not in docs.text  # served locally
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/cancel",
                 "/api/jobs/{job_id}/preview", "/api/jobs/{job_id}/result.{fmt}"):
        assert path in paths
    config = client.get("/api/config").json()
    settings = {s["field"]: s for s in config["settings"]}
    assert set(settings["preset"]["choices"]) >= {"gatys", "tutorial"} and settings["preset"]["choice_help"]["gatys"]
    assert settings["preserve_color"]["choices"] == ["none", "luminance", "histogram"]
    assert (settings["size"]["default"], settings["steps"]["default"]) == (256, 100)  # the page's CPU-sized start
    form = client.get("/openapi.json").json()["paths"]["/api/jobs"]["post"]["requestBody"]
    fields = form["content"]["multipart/form-data"]["schema"]["properties"]
    assert fields["size"]["maximum"] == 2048 and fields["preserve_color"]["enum"] == settings["preserve_color"]["choices"]
    sample = config["samples"][0]
    assert decoded(client.get(sample["url"]).content).size[0] > 100


def test_job_streams_progress_and_keeps_its_result(tmp_path, uploads):
    with local(create_app(tmp_path, preview_interval=0)) as client:
        job = submit(client, uploads, TINY, content_name="../../../etc/photo.png")
        assert len(job["id"]) >= 22 and job["status"] in ("queued", "running")
        assert job["inputs"] == {"content": "photo.png", "styles": ["style0.jpg"], "mask": False, "style_masks": False,
                                 "style_regions": False}
        events = read_events(client, job["id"])

        assert events[0][0] == "state" and events[-1][0] == "state"
        progress = [data for kind, data in events if kind == "progress"]
        assert [p["step"] for p in progress][-3:] == [1, 2, 3]
        assert all(p["total_steps"] == 3 and p["eta_seconds"] >= 0 for p in progress)
        assert progress[-1]["preview_version"] > progress[0]["preview_version"] >= 1  # the preview changed
        final = events[-1][1]
        assert final["status"] == "done" and (final["width"], final["height"]) == (48, 48)
        assert [row[0] for row in final["losses"]] == [1, 2, 3]

        png = client.get(f"/api/jobs/{job['id']}/result.png")
        assert png.headers["content-disposition"].startswith("attachment")
        assert decoded(png.content).format == "PNG" and decoded(png.content).size == (48, 48)
        assert decoded(client.get(f"/api/jobs/{job['id']}/result.jpg").content).format == "JPEG"
        assert decoded(client.get(f"/api/jobs/{job['id']}/preview").content).size == (48, 48)
        assert decoded(client.get(f"/api/jobs/{job['id']}/content.png").content).size == (96, 96)  # as uploaded
        assert decoded(client.get(f"/api/jobs/{job['id']}/style/0.png").content).format == "PNG"
        assert read_events(client, job["id"]) == [("state", final)]  # a finished job: one event, then the end
        listed = client.get("/api/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]] and "losses" not in listed[0]

    # Everything on disk is named by the server, and complete.
    folder = tmp_path / "jobs" / job["id"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["content.png", "style-0.png", "result.png", "result.jpg", "job.json"])
    assert json.loads((folder / "job.json").read_text())["status"] == "done"

    # The history survives a restart.
    client = local(create_app(tmp_path))
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "done"
    assert decoded(client.get(f"/api/jobs/{job['id']}/result.png").content).size == (48, 48)


def test_queue_positions_and_cancel(tmp_path, uploads):
    with local(create_app(tmp_path)) as client:
        running = submit(client, uploads, LONG)
        second = submit(client, uploads, TINY)
        third = submit(client, uploads, TINY)
        wait_for(client, running["id"], lambda s: s["status"] == "running")
        assert client.get(f"/api/jobs/{second['id']}").json()["position"] == 1
        assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 2

        cancelled = client.post(f"/api/jobs/{second['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"  # a queued job leaves the line at once
        assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1
        assert client.post(f"/api/jobs/{third['id']}/cancel").json()["status"] == "cancelled"

        wait_for(client, running["id"], lambda s: s["step"] >= 1)
        assert client.post(f"/api/jobs/{running['id']}/cancel").status_code == 200
        state = wait_for(client, running["id"], lambda s: s["status"] != "running", timeout=120)
        assert state["status"] == "cancelled" and state["step"] < 5000

        again = client.post(f"/api/jobs/{running['id']}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["error"]
        result = client.get(f"/api/jobs/{running['id']}/result.png")
        assert result.status_code == 409 and "cancelled" in result.json()["error"]


def test_bad_uploads_and_limits_get_clear_json_errors(tmp_path, uploads):
    client = local(create_app(tmp_path, max_upload_mb=0.05, max_input_pixels=100 * 100, max_styles=2, max_video_mb=0.5))
    style = ("styles", ("s.jpg", uploads["style"], "image/jpeg"))
    small = encode(Image.new("RGB", (64, 64), "red"))
    noise = encode(Image.effect_noise((150, 150), 80).convert("RGB"))  # ~60 KB of incompressible pixels
    cases = [
        ([("content", ("notes.png", b"just some text", "image/png")), style], {}, 400, "not an image"),
        ([("content", ("empty.png", b"", "image/png")), style], {}, 400, "empty"),
        ([("content", ("cut.png", small[: len(small) // 2], "image/png")), style], {}, 400, "cannot decode"),
        ([("content", ("p.ppm", encode(Image.new("RGB", (8, 8)), "PPM"), "image/png")), style], {}, 400,
         "not an image"),
        ([("content", ("big.png", noise, "image/png")), style], {}, 413, "upload limit of 0.05 MB"),
        ([("content", ("wide.png", encode(Image.new("RGB", (200, 100))), "image/png")), style], {}, 413,
         "200x100 = 20,000 pixels, over the limit of 10,000"),
        ([("content", ("a.png", small, "image/png"))] + [style] * 3, {}, 400, "3 style images is over the limit of 2"),
        ([("content", ("a.png", small, "image/png"))], {}, 422, "styles: Field required"),
        ([("content", ("a.png", small, "image/png")), style], {"preset": "monet"}, 422, "preset: expected one of"),
        ([("content", ("a.png", small, "image/png")), style], {"steps": "0"}, 422, "steps:"),
        ([("content", ("a.png", small, "image/png")), style], {"size": "100000"}, 422, "size:"),
        ([("content", ("a.png", small, "image/png")), style], {"preserve_color": "sepia"}, 422, "preserve_color:"),
        ([("content", ("a.png", small, "image/png")), style], {"style_weight": "-1"}, 422, "style_weight:"),
    ]
    for upload, data, status, message in cases:
        response = client.post("/api/jobs", files=upload, data=data)
        assert response.status_code == status, (upload[0][1][0], data, response.text)
        assert message in response.json()["error"], response.json()
    junk = b"x" * 2 * 1024 * 1024  # declared in Content-Length, refused before any parsing
    oversized = client.post("/api/jobs", content=junk, headers={"content-type": "multipart/form-data"})
    assert oversized.status_code == 413 and "over the upload limit" in oversized.json()["error"]
    assert client.get("/api/jobs").json() == {"jobs": []}  # nothing was queued
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # and nothing was written


def test_the_form_is_the_settings_tables_web_rows(tmp_path, uploads, monkeypatch):
    """The page's fields, their limits and starting values are read from options.SETTINGS, so a
    change there is a change of the form: here the steps row gets a narrower range."""
    web_rows = [s for s in options.SETTINGS if s.web]
    narrow = tuple(dataclasses.replace(s, bounds=(1, 10)) if s.field == "steps" else s for s in options.SETTINGS)
    monkeypatch.setattr(options, "SETTINGS", narrow)
    client = local(create_app(tmp_path))  # no worker: jobs stay queued
    shown = client.get("/api/config").json()["settings"]
    assert [s["field"] for s in shown] == [s.field for s in web_rows]
    for row, entry in zip(web_rows, shown):
        assert entry["flag"] == row.flag and entry["help"] == row.help and entry["choices"] == list(row.choices)
        assert entry["default"] == (row.default if row.web_default is None else row.web_default)
    assert next(s for s in shown if s["field"] == "steps")["bounds"] == [1, 10]

    refused = client.post("/api/jobs", files=files(uploads), data={"steps": "11"})
    assert refused.status_code == 422 and refused.json()["error"] == "steps: must be from 1 to 10, got 11"
    job = submit(client, uploads, {"steps": "10", "preserve_color": "luminance"})
    assert job["settings"] == {"preset": "gatys", "style_weight": 5.0, "style_loss": options.DEFAULT_STYLE_LOSS, "steps": 10, "size": 256,
                               "preserve_color": "luminance", "protect_faces": 0.0}  # fields left out: the table's defaults


def test_unknown_fields_and_bad_values_are_refused_by_name(tmp_path, uploads):
    client = local(create_app(tmp_path))
    text_content = [("content", (None, "photo.png")), ("styles", ("s.jpg", uploads["style"], "image/jpeg"))]
    cases = [
        (files(uploads), {"colour": "blue"}, "colour: not a field of this form; fields: content, styles, preset"),
        (files(uploads), {"size": "big"}, "size: expected a whole number, got 'big'"),
        (files(uploads), {"size": ""}, "size: expected a whole number, got ''"),
        (files(uploads), {"style_weight": "nan"}, "style_weight: must be from 0 to 1e+06, got nan"),
        (files(uploads), {"preserve_color": "sepia"}, "preserve_color: expected one of none, luminance, histogram"),
        (files(uploads) + [("size", (None, "64")), ("size", (None, "96"))], {}, "size: expected one text value"),
        (files(uploads) + [files(uploads)[0]], {}, "content: expected one file, got 2"),
        (text_content, {}, "content: expected a file, got text"),
    ]
    for upload, data, message in cases:
        response = client.post("/api/jobs", files=upload, data=data)
        assert response.status_code == 422, (data, response.text)
        assert message in response.json()["error"], response.json()
    assert client.get("/api/jobs").json() == {"jobs": []}


def test_ids_are_unguessable_and_paths_never_reach_the_disk(tmp_path, uploads):
    client = local(create_app(tmp_path))  # no worker: jobs stay queued
    ids = {submit(client, uploads, TINY)["id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) >= 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)
    job_id = next(iter(ids))
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    probes = [
        "/api/jobs/..%2Fsecret.txt", "/api/jobs/%2e%2e/content.png", "/api/jobs/..%2F..%2Fetc%2Fpasswd",
        f"/api/jobs/{job_id}%2F..%2F..%2Fsecret.txt/content.png", "/api/jobs/%00/result.png",
        "/api/samples/..%2F..%2F__init__.py", "/api/samples/%2e%2e%2fdata%2fastronaut.png",
        "/static/..%2Fapp.py", "/static/%2e%2e%2f%2e%2e%2fsecret.txt", "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA",
        f"/api/jobs/{job_id}/style/1.png", f"/api/jobs/{job_id}/style/-1.png", f"/api/jobs/{job_id}/result.png",
        f"/api/jobs/{job_id}/result.gif", f"/api/jobs/{job_id}/style/..%2F..%2Fjob.png",
        f"/api/jobs/{job_id}/preview",
    ]
    for path in probes:
        response = client.get(path)
        assert response.status_code in (404, 409, 422), (path, response.status_code)
        assert "error" in response.json(), path
        assert "do not serve me" not in response.text and "root:" not in response.text
    assert client.post("/api/jobs/..%2F..%2Fsecret.txt/cancel").status_code == 404


@pytest.mark.slow
def test_restart_keeps_the_line_and_interrupts_the_running_job(tmp_path, uploads):
    # A server that dies with a job in line (no worker ran: as after a crash).
    waiting = submit(local(create_app(tmp_path)), uploads, TINY)
    # A server shut down while a job runs, with another one behind it.
    with local(create_app(tmp_path)) as client:
        client.app.state.queue.cancel(client.app.state.queue.get(waiting["id"]))  # out of the way of this run
        running = submit(client, uploads, LONG)
        behind = submit(client, uploads, TINY)
        wait_for(client, running["id"], lambda s: s["step"] >= 1)
    assert json.loads((tmp_path / "jobs" / running["id"] / "job.json").read_text())["status"] == "interrupted"
    assert json.loads((tmp_path / "jobs" / behind["id"] / "job.json").read_text())["status"] == "queued"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    client = local(create_app(tmp_path))
    state = client.get(f"/api/jobs/{running['id']}").json()
    assert state["status"] == "interrupted" and "server stopped" in state["error"]
    assert client.post(f"/api/jobs/{running['id']}/cancel").status_code == 409
    assert client.get(f"/api/jobs/{behind['id']}").json()["position"] == 1  # still in line
    retried = client.post(f"/api/jobs/{running['id']}/retry").json()
    assert (retried["status"], retried["position"], retried["step"], retried["error"]) == ("queued", 2, 0, None)


def test_serve_without_the_web_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["serve"]) == 2
    assert "pip install 'brushwork[web]'" in capsys.readouterr().err


def test_serve_checks_ipv6_hosts_as_ipv6(tmp_path, capsys):
    """`--host ::1` must be tried as an IPv6 address: a port already taken there is the error,
    not an address family that does not fit."""
    try:
        taken = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--host", "::1", "--port", str(port), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on ::1 port {port}" in err and "family" not in err.lower()


@pytest.mark.slow
def test_serve_command(tmp_path):
    assert main(["serve", "--port", "70000", "--data", str(tmp_path)]) == 2
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "brushwork.cli", "serve", "--port", str(port), "--data", str(tmp_path / "data")],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = server.stderr.readline()
        assert f"serving on http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=5) as response:
                    assert "settings" in json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not come up"
                time.sleep(0.2)
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
        assert "server stopped" in server.stderr.read()
    finally:
        server.kill()
        server.wait()
    assert (tmp_path / "data" / "jobs").is_dir()



def test_a_rerun_without_settings_repeats_the_job_byte_for_byte(tmp_path, uploads):
    """Re-run with nothing changed is the same job again: the record's settings, the stored
    pictures, and on a CPU in fp32 the same bytes; a setting it is given changes the picture."""
    with local(create_app(tmp_path, device="cpu", precision="fp32")) as client:
        first = submit(client, uploads, {"size": "40", "steps": "3", "style_weight": "20"})
        wait_for(client, first["id"], lambda s: s["status"] == "done")
        again = client.post(f"/api/jobs/{first['id']}/rerun")
        assert again.status_code == 201, again.text
        assert again.json()["settings"] == first["settings"] and again.json()["rerun_of"] == first["id"]
        wait_for(client, again.json()["id"], lambda s: s["status"] == "done")
        edited = client.post(f"/api/jobs/{first['id']}/rerun", data={"style_weight": "200"}).json()
        wait_for(client, edited["id"], lambda s: s["status"] == "done")
        result = [client.get(f"/api/jobs/{job['id']}/result.png").content for job in (first, again.json(), edited)]
    assert result[0] == result[1] and result[2] != result[0]


def test_the_instant_preview_is_offered_only_where_its_route_is_mounted(tmp_path, monkeypatch):
    """The page shows its instant-preview button by /api/config's features, which look at the
    app's routes: the arbitrary-style network's route is mounted only where its extra is installed."""
    from fastapi import APIRouter

    from brushwork.web import app as web_app

    monkeypatch.setattr(web_app, "has_instant_preview", lambda: False)
    app = create_app(tmp_path)
    assert local(app).get("/api/config").json()["features"] == {"instant_preview": False, "any_style": False}
    router = APIRouter()
    router.add_api_route("/api/fast/style", lambda: {}, methods=["POST"])
    app.include_router(router)
    config = local(app).get("/api/config").json()
    assert config["features"] == {"instant_preview": True, "any_style": True} and config["unavailable"] == {}
