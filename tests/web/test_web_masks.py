"""Masks through the web API: a `mask` and one `style_masks` per style are checked like every
upload, stored with the job, handed to the engine's Options as files, kept by a retry and a
re-run, and refused with a clear 4xx when they are no pictures or their count is wrong.

Jobs are tiny (48 px, a few steps); an app used without `with` runs no worker, so its jobs stay
queued: the tests that need no painting use that.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
from conftest import local, png  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from brushwork.web.app import create_app  # noqa: E402




def half(size: tuple[int, int], left: int) -> Image.Image:
    """A mask with the left half at `left` and the right half at 255 - `left`."""
    mask = Image.new("L", size, 255 - left)
    mask.paste(left, (0, 0, size[0] // 2, size[1]))
    return mask


@pytest.fixture(scope="module")
def pictures(content, style, style2) -> dict[str, bytes]:
    return {"content": png(content), "style": png(style), "style2": png(style2),
            "left": png(half(content.size, 255)), "right": png(half(content.size, 0))}


def job_files(pictures: dict[str, bytes], styles=("style",), mask=None, style_masks=(), style_regions=()) -> list:
    parts = [("content", ("photo.png", pictures["content"], "image/png"))]
    parts += [("styles", (f"{name}.png", pictures[name], "image/png")) for name in styles]
    parts += [("mask", ("mask.png", pictures[mask], "image/png"))] if mask else []
    parts += [("style_regions", (f"{name}.png", pictures[name], "image/png")) for name in style_regions]
    return parts + [("style_masks", (f"{name}.png", pictures[name], "image/png")) for name in style_masks]


def wait_for(client: TestClient, job_id: str, status: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (state := client.get(f"/api/jobs/{job_id}").json())["status"] != status:
        assert state["status"] in ("queued", "running") and time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def stored(client: TestClient, path: str) -> Image.Image:
    response = client.get(path)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_a_mask_is_stored_and_reaches_the_runs_options(tmp_path, pictures, runs):
    with local(create_app(tmp_path, preview_interval=0)) as client:
        response = client.post("/api/jobs", files=job_files(pictures, mask="left"), data={"size": "48", "steps": "2"})
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["inputs"]["mask"] is True and job["inputs"]["style_masks"] is False
        wait_for(client, job["id"], "done")
        folder = tmp_path / "jobs" / job["id"]
        assert runs[-1].mask == str(folder / "mask.png") and runs[-1].style_masks is None
        mask = stored(client, f"/api/jobs/{job['id']}/mask.png")
        assert mask.mode == "L" and mask.tobytes() == Image.open(io.BytesIO(pictures["left"])).tobytes()

        rerun = client.post(f"/api/jobs/{job['id']}/rerun", data={"steps": "1"})
        assert rerun.status_code == 201, rerun.text
        wait_for(client, rerun.json()["id"], "done")
        again = tmp_path / "jobs" / rerun.json()["id"]
        assert runs[-1].mask == str(again / "mask.png")  # the re-run paints through its own copy
        assert (again / "mask.png").read_bytes() == (folder / "mask.png").read_bytes()

        plain = client.post("/api/jobs", files=job_files(pictures), data={"size": "48", "steps": "1"}).json()
        wait_for(client, plain["id"], "done")
        assert runs[-1].mask is None and runs[-1].style_masks is None
        assert client.get(f"/api/jobs/{plain['id']}/mask.png").status_code == 404


def test_style_masks_are_kept_by_retry_and_rerun(tmp_path, pictures):
    client = local(create_app(tmp_path))  # no worker: jobs stay queued
    files = job_files(pictures, styles=("style", "style2"), mask="left", style_masks=("left", "right"))
    job = client.post("/api/jobs", files=files, data={"size": "48"}).json()
    assert (job["inputs"]["mask"], job["inputs"]["style_masks"]) == (True, True)
    for index, name in enumerate(("left", "right")):
        region = stored(client, f"/api/jobs/{job['id']}/style/{index}/mask.png")
        assert region.tobytes() == Image.open(io.BytesIO(pictures[name])).tobytes()
    assert client.get(f"/api/jobs/{job['id']}/style/2/mask.png").status_code == 404
    queue = client.app.state.queue
    options = queue.run_options(queue.get(job["id"]))
    folder = tmp_path / "jobs" / job["id"]
    assert options.style_masks == (str(folder / "style-0-mask.png"), str(folder / "style-1-mask.png"))

    client.post(f"/api/jobs/{job['id']}/cancel")
    retried = client.post(f"/api/jobs/{job['id']}/retry").json()
    assert retried["status"] == "queued" and retried["inputs"] == job["inputs"]
    fresh = client.post(f"/api/jobs/{job['id']}/rerun", data={"steps": "3"}).json()
    assert fresh["inputs"] == job["inputs"]
    assert sorted(p.name for p in (tmp_path / "jobs" / fresh["id"]).iterdir()) == [
        "content.png", "job.json", "mask.png", "style-0-mask.png", "style-0.png", "style-1-mask.png", "style-1.png"]
    assert local(create_app(tmp_path)).get(f"/api/jobs/{fresh['id']}").json()["inputs"] == job["inputs"]  # restart


def test_bad_masks_and_wrong_counts_are_refused(tmp_path, pictures):
    client = local(create_app(tmp_path, max_input_pixels=150 * 150))
    pictures = {**pictures, "notes": b"not a picture", "wide": png(Image.new("L", (300, 100)))}
    two = ("style", "style2")
    cases = [
        (job_files(pictures, mask="notes"), 400, "the mask file 'mask.png' is not an image"),
        (job_files(pictures, styles=two, style_masks=("left", "notes")), 400,
         "the style mask file 'notes.png' is not an image"),
        (job_files(pictures, mask="wide"), 413, "300x100 = 30,000 pixels, over the limit of 22,500"),
        (job_files(pictures, styles=two, style_masks=("left",)), 400, "--style-masks has 1 masks for 2 style images"),
        (job_files(pictures, style_masks=("left", "right")), 400, "--style-masks has 2 masks for 1 style images"),
        (job_files(pictures, mask="left") + job_files(pictures, mask="right")[-1:], 422,
         "mask: expected one file, got 2"),
        (job_files(pictures) + [("mask", (None, "white"))], 422, "mask: expected a file, got text"),
    ]
    for files, status, message in cases:
        response = client.post("/api/jobs", files=files, data={"size": "48"})
        assert response.status_code == status and message in response.json()["error"], response.text
    assert client.get("/api/jobs").json() == {"jobs": []}
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing was written

    job = client.post("/api/jobs", files=job_files(pictures), data={"size": "48"}).json()
    refused = client.post(f"/api/jobs/{job['id']}/rerun", data={"mask": "x"})
    assert refused.status_code == 422 and "send only settings" in refused.json()["error"]


def test_a_mask_reads_as_the_engine_reads_it(tmp_path, pictures):
    """Transparent parts are black (a brush on a transparent layer marks only what it painted)
    and colours count by their luminance: the stored mask is what the run will see."""
    layer = Image.new("RGBA", (40, 20), (255, 255, 255, 255))
    layer.paste((255, 255, 255, 0), (0, 0, 20, 20))
    client = local(create_app(tmp_path))
    for picture, left, right in ((layer, 0, 255), (Image.new("RGB", (40, 20), (255, 0, 0)), 76, 76)):
        job = client.post("/api/jobs", files=job_files({**pictures, "m": png(picture)}, mask="m")).json()
        mask = stored(client, f"/api/jobs/{job['id']}/mask.png")
        assert (mask.getpixel((5, 10)), mask.getpixel((35, 10))) == (left, right)


def test_style_regions_are_a_form_field_from_the_table_and_reach_the_runs_options(tmp_path, pictures):
    """--style-regions is a web row of the settings table: the page is told about it as
    pictures, one per style; they are stored, handed to the engine as files and kept by a re-run."""
    client = local(create_app(tmp_path))  # no worker: jobs stay queued
    shown = {s["field"]: s for s in client.get("/api/config").json()["settings"]}
    assert shown["style_regions"]["kind"] == "files" and shown["protect_faces"]["bounds"] == [0, 1]
    files = job_files(pictures, styles=("style", "style2"), style_regions=("left", "right"))
    job = client.post("/api/jobs", files=files, data={"size": "48", "protect_faces": "0.5"}).json()
    assert job["inputs"]["style_regions"] is True and job["settings"]["protect_faces"] == 0.5
    region = stored(client, f"/api/jobs/{job['id']}/style/1/region.png")
    assert region.mode == "L" and region.tobytes() == Image.open(io.BytesIO(pictures["right"])).tobytes()
    queue = client.app.state.queue
    folder = tmp_path / "jobs" / job["id"]
    options = queue.run_options(queue.get(job["id"]))
    assert options.style_regions == (str(folder / "style-0-region.png"), str(folder / "style-1-region.png"))
    assert options.protect_faces == 0.5
    fresh = client.post(f"/api/jobs/{job['id']}/rerun").json()
    assert (tmp_path / "jobs" / fresh["id"] / "style-1-region.png").read_bytes() == (
        folder / "style-1-region.png").read_bytes()
    one = client.post("/api/jobs", files=job_files(pictures, styles=("style", "style2"), style_regions=("left",)))
    assert one.status_code == 400 and "--style-regions has 1 masks for 2 style images" in one.json()["error"]
    typed = client.post("/api/jobs", files=job_files(pictures), data={"style_regions": "/etc/passwd"})
    assert typed.status_code == 422 and typed.json()["error"].startswith("style_regions: expected a file")
    axis = client.post("/api/compare", files=job_files(pictures), data={"vary": "style_regions=a,b"})
    assert axis.status_code == 400 and "not one of this form's settings" in axis.json()["error"]
