"""Videos in the studio: a tiny clip made here with PyAV goes through the Paint tab's frame
loop and the Fast tab's network as jobs, each finished frame announced as an event, and the
result is a playable video with the clip's frame count; a file that only claims to be a
video is refused with a message that says so."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
av = pytest.importorskip("av", reason="PyAV is not installed")
from conftest import local, png  # noqa: E402

from brushwork.web.app import create_app  # noqa: E402

FRAMES = 6


@pytest.fixture(scope="module")
def clip(content) -> bytes:
    """Six 64x48 frames of the photo panned 3 px a frame, H.264 in MP4."""
    photo = np.asarray(content.convert("RGB").resize((96, 72)))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as sink:
        stream = sink.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[10:58, 3 * t:3 * t + 64]), format="rgb24")
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode())
    return buffer.getvalue()


def frame_count(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def events(client, job_id: str) -> list[tuple[str, dict]]:
    found, kind = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                found.append((kind, json.loads(line[6:])))
    return found


def check_finished(client, job: dict, stream: list[tuple[str, dict]]) -> None:
    """Every frame announced in order, then a done job whose video plays with every frame."""
    frames = [data for kind, data in stream if kind == "frame"]
    assert [f["frame"] for f in frames] == list(range(1, FRAMES + 1))
    assert all(f["frames"] == FRAMES for f in frames) and frames[0]["eta_seconds"] > 0
    state = client.get(f"/api/jobs/{job['id']}").json()
    assert state["status"] == "done", state["error"]
    assert (state["frame"], state["frames"]) == (FRAMES, FRAMES)
    video = client.get(f"/api/jobs/{job['id']}/result.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert frame_count(video.content) == FRAMES
    poster = client.get(f"/api/jobs/{job['id']}/result.png")
    assert Image.open(io.BytesIO(poster.content)).size == (state["width"], state["height"])


def test_paint_tab_paints_a_video_frame_by_frame(tmp_path, clip, style):
    with local(create_app(tmp_path, device="cpu", precision="fp32", preview_interval=0)) as client:
        upload = [("content", ("clip.mp4", clip, "video/mp4")), ("styles", ("style.png", png(style), "image/png"))]
        response = client.post("/api/jobs", files=upload, data={"size": "48", "steps": "2"})
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["kind"], job["frames"], job["video"]) == ("video", FRAMES, "content.mp4")
        stream = events(client, job["id"])
        check_finished(client, job, stream)
        steps = [data for kind, data in stream if kind == "progress"]
        assert len(steps) >= FRAMES and all(s["total_steps"] <= 2 for s in steps)  # no frame over the job's steps
        assert not (tmp_path / "jobs" / job["id"] / "frames").exists()  # the work folder goes once the video is whole


def test_a_cancelled_video_stops_between_steps_and_keeps_no_result(tmp_path, clip, style):
    with local(create_app(tmp_path, device="cpu", precision="fp32")) as client:
        upload = [("content", ("clip.mp4", clip, "video/mp4")), ("styles", ("style.png", png(style), "image/png"))]
        job = client.post("/api/jobs", files=upload, data={"size": "48", "steps": "5000"}).json()
        folder = tmp_path / "jobs" / job["id"]
        deadline = time.monotonic() + 300
        while (state := client.get(f"/api/jobs/{job['id']}").json())["step"] < 1:  # in the first frame's steps
            assert time.monotonic() < deadline and state["status"] in ("queued", "running"), state["error"]
            time.sleep(0.05)
        client.post(f"/api/jobs/{job['id']}/cancel")
        while (state := client.get(f"/api/jobs/{job['id']}").json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state["status"] == "cancelled" and state["step"] < 5000
        assert not (folder / "result.mp4").exists() and not (folder / "result.png").exists()
        assert client.get(f"/api/jobs/{job['id']}/result.mp4").status_code == 409


def test_fast_tab_paints_a_video_frame_by_frame(tmp_path, clip):
    with local(create_app(tmp_path, device="cpu", precision="fp32")) as client:
        upload = [("video", ("clip.mp4", clip, "video/mp4"))]
        response = client.post("/api/fast/video", files=upload, data={"model": "starry-night", "size": "64"})
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["kind"], job["frames"]) == ("fast-video", FRAMES)
        check_finished(client, job, events(client, job["id"]))


def test_a_file_that_only_claims_to_be_a_video_is_refused(tmp_path, content, style):
    client = local(create_app(tmp_path, max_video_frames=4))
    fake = [("content", ("holiday.mp4", png(content), "video/mp4")), ("styles", ("s.png", png(style), "image/png"))]
    refused = client.post("/api/jobs", files=fake, data={"size": "48"})
    assert refused.status_code == 400 and "'holiday.mp4' is not a video" in refused.json()["error"]
    fast = client.post("/api/fast/video", files=[("video", ("holiday.webm", b"\x1aE\xdf\xa3junk", "video/webm"))],
                       data={"model": "starry-night"})
    assert fast.status_code == 400 and "not a video" in fast.json()["error"]
    assert not any((tmp_path / "jobs").iterdir())  # nothing stored


def test_a_video_over_the_frame_limit_is_refused(tmp_path, clip, style):
    client = local(create_app(tmp_path, max_video_frames=4))
    upload = [("content", ("clip.mp4", clip, "video/mp4")), ("styles", ("s.png", png(style), "image/png"))]
    refused = client.post("/api/jobs", files=upload, data={"size": "48"})
    assert refused.status_code == 413 and "over 4 frames" in refused.json()["error"]
    assert client.get("/api/config").json()["limits"]["max_video_frames"] == 4


@contextlib.contextmanager
def studio(tmp_path, errors: list[str], bypass_csp: bool = True) -> Iterator[tuple[object, object]]:
    """(Playwright's sync API, the studio's page in Debian's Chromium) for the browser tests."""
    from test_web_access import CHROMIUM, CHROMIUM_ARGS, open_page

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from conftest import serving

    with sync_api.sync_playwright() as playwright, serving(create_app(tmp_path / "data")) as url:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield sync_api, open_page(browser, url, errors, bypass_csp=bypass_csp)
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_fast_tab_plays_a_painted_video_in_the_page(tmp_path, clip):
    """Picked, painted with the Paint button, followed by frame, played by <video>, axe-clean."""
    from test_web_access import axe_script, run_axe

    video = tmp_path / "clip.mp4"
    video.write_bytes(clip)
    errors: list[str] = []
    with studio(tmp_path, errors) as (sync_api, page):
        page.click("#mode-fast")
        page.fill("#fast-size", "64")
        page.set_input_files("#content-input", video)
        sync_api.expect(page.locator("#content-thumbs video")).to_have_count(1)
        sync_api.expect(page.locator("#start")).to_be_enabled()
        page.click("#start")
        sync_api.expect(page.locator("#result-video")).to_be_visible(timeout=120_000)
        assert page.inner_text("#status").startswith(f"Done: {FRAMES} frames")
        assert page.get_attribute("#bar", "aria-label") == "Frames done"
        assert page.get_attribute("#download-mp4", "href").endswith("/result.mp4")
        page.wait_for_function("document.querySelector('#result-video').readyState >= 1", timeout=30_000)
        assert page.evaluate("document.querySelector('#result-video').duration") > 0  # the browser plays it
        assert page.locator("#history li.done").count() == 1
        axe = axe_script()
        if axe is not None:
            assert run_axe(page, axe) == []
    assert not errors


@pytest.mark.browser
def test_a_picked_video_s_thumbnail_loads_under_the_page_s_own_security_policy(tmp_path, clip):
    """The other browser tests lift the policy (for axe-core); this one keeps it, as users have it."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip)
    errors: list[str] = []
    with studio(tmp_path, errors, bypass_csp=False) as (_, page):
        page.set_input_files("#content-input", video)
        thumbnail = page.locator("#content-thumbs video")
        deadline = time.monotonic() + 30
        while thumbnail.evaluate("video => video.readyState") < 1:  # HAVE_METADATA: it loaded
            assert time.monotonic() < deadline, errors
            page.wait_for_timeout(100)
    assert not errors
