"""The studio's API beyond a single job: compare grids, fast mode, and the history's
retry, re-run and delete, through FastAPI's test client. Grids and re-runs that need no
painting run on an app without a worker (its jobs stay queued)."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
from conftest import local, png  # noqa: E402

from brushwork.fast.apply import shipped_models  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402




@pytest.fixture(scope="module")
def upload(content, style) -> list:
    return [("content", ("photo.png", png(content), "image/png")), ("styles", ("style.png", png(style), "image/png"))]


def test_a_compare_grid_is_planned_when_queued_and_refused_when_wrong(tmp_path, upload):
    client = local(create_app(tmp_path))
    grid = client.post("/api/compare", files=upload, data={"size": "32", "vary": ["style_weight=1,10", "steps=1,2,3"]})
    assert grid.status_code == 201, grid.text
    state = grid.json()
    assert (state["kind"], state["status"], state["vary"]) == ("compare", "queued", ["style_weight=1,10", "steps=1,2,3"])
    assert [axis["labels"] for axis in state["grid"]["axes"]] == [["1", "10"], ["1", "2", "3"]]
    assert [cell["label"] for cell in state["grid"]["cells"]][:2] == ["style-weight=1 steps=1", "style-weight=1 steps=2"]
    cases = [
        ({}, 400, "vary: give one or two settings to vary, got 0"),
        ({"vary": "colour=1,2"}, 400, "not a stylize option"),
        ({"vary": "weights=/etc/passwd,b"}, 400, "not one of this form's settings"),
        ({"vary": "init=noise,content"}, 400, "not one of this form's settings"),
        ({"vary": "size=32,99999"}, 400, "99999 is not from 32 to 2048"),
        ({"vary": ["steps=1,2", "size=32,48", "preset=gatys"]}, 400, "one or two settings"),
        ({"vary": ["steps=1,2", "steps=3"]}, 400, "given twice"),
        ({"vary": "style_weight=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, 400, "more than --max-cells 16"),
        ({"vary": "preset=gatys,monet"}, 400, "expected one of"),
    ]
    for data, status, message in cases:
        response = client.post("/api/compare", files=upload, data=data)
        assert response.status_code == status and message in response.json()["error"], (data, response.text)
    assert len(client.get("/api/jobs").json()["jobs"]) == 1  # only the good grid was queued
    assert client.get(f"/api/jobs/{state['id']}/cells/0.png").status_code == 404  # not done yet
    missing = client.get(f"/api/jobs/{state['id']}/reports/index.html")
    assert missing.status_code == 404 and "none yet" in missing.json()["error"]


def test_a_grid_runs_cell_by_cell_with_its_reports(tmp_path, upload):
    with local(create_app(tmp_path, preview_interval=0)) as client:
        job = client.post("/api/compare", files=upload, data={"size": "32", "vary": "steps=1,2"}).json()
        events = []
        with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
        cells = [data for kind, data in events if kind == "cell"]
        assert [cell["index"] for cell in cells] == [0, 1] and all(cell["seconds"] > 0 for cell in cells)
        assert all(cell["content_distance"] >= 0 and cell["style_distance"] > 0 for cell in cells)
        final = events[-1][1]
        # steps=1,2: one run, two snapshots; the first state holds the groups begun before the stream opened
        groups = events[0][1]["groups"] + [data for kind, data in events if kind == "group"]
        assert groups == [{"cells": [0, 1], "first": 0}] and final["groups"] == groups
        assert final["status"] == "done" and final["reports"] == ["sheet.png", "index.html", "results.csv",
                                                                  "results.json"]
        for index in (0, 1):
            picture = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/cells/{index}.png").content))
            assert picture.size == (32, 32)
        csv = client.get(f"/api/jobs/{job['id']}/reports/results.csv")
        assert csv.headers["content-disposition"].startswith("attachment") and len(csv.text.splitlines()) == 3
        assert client.get(f"/api/jobs/{job['id']}/reports/..%2Fjob.json").status_code == 404


def test_history_retry_rerun_and_delete(tmp_path, upload):
    client = local(create_app(tmp_path))  # no worker: jobs stay queued
    job = client.post("/api/jobs", files=upload, data={"size": "48", "steps": "7"}).json()
    assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 409  # it is waiting
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"

    rerun = client.post(f"/api/jobs/{job['id']}/rerun", data={"steps": "3", "preserve_color": "luminance"})
    assert rerun.status_code == 201, rerun.text
    fresh = rerun.json()
    assert fresh["rerun_of"] == job["id"] and fresh["status"] == "queued" and fresh["position"] == 1
    assert fresh["settings"] == {**job["settings"], "steps": 3, "preserve_color": "luminance"}
    assert (tmp_path / "jobs" / fresh["id"] / "content.png").read_bytes() == \
        (tmp_path / "jobs" / job["id"] / "content.png").read_bytes()
    for data, message in (({"steps": "0"}, "steps:"), ({"colour": "x"}, "not a field"),):
        response = client.post(f"/api/jobs/{job['id']}/rerun", data=data)
        assert response.status_code == 422 and message in response.json()["error"]
    refused = client.post(f"/api/jobs/{job['id']}/rerun", files=upload)
    assert refused.status_code in (400, 422)

    retried = client.post(f"/api/jobs/{job['id']}/retry").json()
    assert (retried["status"], retried["position"]) == ("queued", 2)  # at the end of the line
    assert client.delete(f"/api/jobs/{fresh['id']}").json() == {"deleted": fresh["id"]}
    assert client.get(f"/api/jobs/{job['id']}").json()["position"] == 1  # the line moved up
    assert client.get(f"/api/jobs/{fresh['id']}").status_code == 404
    assert not (tmp_path / "jobs" / fresh["id"]).exists()
    assert client.delete(f"/api/jobs/{fresh['id']}").status_code == 404
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == [job["id"]]
    assert local(create_app(tmp_path)).get("/api/jobs").json()["jobs"][0]["id"] == job["id"]  # and after a restart


def test_fast_mode_paints_with_apply_options_and_lists_the_models_folder(tmp_path, content):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(shipped_models()["starry-night"], models / "mine.safetensors")
    (models / "broken.safetensors").write_bytes(b"not a model")
    client = local(create_app(tmp_path / "data", models_dir=models))
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert listed["starry-night"]["source"] == "shipped" and listed["mine"]["source"] == "models"
    assert listed["mine"]["style"] == listed["starry-night"]["style"] and "error" in listed["broken"]

    photo = [("photo", ("photo.png", png(content), "image/png"))]
    full = client.post("/api/fast", files=photo, data={"model": "mine", "size": "64"})
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    painted = Image.open(io.BytesIO(full.content)).convert("RGB")
    assert painted.size == (64, 64)
    none = client.post("/api/fast", files=photo, data={"model": "mine", "size": "64", "strength": "0"})
    original = content.resize((64, 64), Image.Resampling.BICUBIC)
    unpainted = Image.open(io.BytesIO(none.content)).convert("RGB")
    difference = lambda a, b: sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes())) / len(a.tobytes())  # noqa: E731
    assert difference(unpainted, original) < 6 < difference(painted, original)  # strength 0 is the photo
    cases = [({"model": "nope"}, 400, "no model 'nope'"), ({"model": "broken"}, 400, "broken"),
             ({"model": "mine", "strength": "2"}, 422, "strength"), ({"model": "mine", "size": "5"}, 422, "size"),
             ({}, 422, "model")]
    for data, status, message in cases:
        response = client.post("/api/fast", files=photo, data=data)
        assert response.status_code == status and message in response.json()["error"], (data, response.text)
    assert not any((tmp_path / "data" / "jobs").iterdir())  # fast mode stores nothing
