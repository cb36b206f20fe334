"""--style-crop x,y,w,h for stylize and compare, in pixels or in fractions of the style image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from brushwork import api, cli, images
from brushwork.errors import BrushworkError
from brushwork.options import Options


@pytest.fixture(scope="module")
def halves() -> Image.Image:
    """96×64: a red, finely striped left half and a blue, coarsely striped right half."""
    array = np.zeros((64, 96, 3), np.uint8)
    x = np.arange(96)
    array[:, :48] = np.where((x[:48] // 2 % 2)[None, :, None] == 0, [230, 30, 30], [120, 0, 0])
    array[:, 48:] = np.where((x[48:] // 12 % 2)[None, :, None] == 0, [30, 30, 230], [0, 0, 90])
    return Image.fromarray(array)


@pytest.fixture(scope="module")
def gray() -> Image.Image:
    y, x = np.mgrid[0:40, 0:48]
    return Image.fromarray(np.stack([x * 5, x * 5, y * 6], axis=-1).astype(np.uint8))


def test_parse_crop_pixels_and_fractions(halves):
    assert images.parse_crop("10,5,20,30") == (10.0, 5.0, 20.0, 30.0)
    left_pixels = images.crop(halves, images.parse_crop("0,0,48,64"))
    left_fraction = images.crop(halves, images.parse_crop("0,0,0.5,1"))
    assert left_pixels.size == left_fraction.size == (48, 64)
    assert left_pixels.tobytes() == left_fraction.tobytes() == halves.crop((0, 0, 48, 64)).tobytes()
    right = images.crop(halves, images.parse_crop("0.5,0.25,0.5,0.5"))
    assert right.size == (48, 32) and right.tobytes() == halves.crop((48, 16, 96, 48)).tobytes()


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "0,0,-1,5", "0,0,nan,1"])
def test_parse_crop_rejects(text):
    with pytest.raises(BrushworkError, match="expected x,y,w,h"):
        images.parse_crop(text)


def test_crop_outside_the_image(halves):
    with pytest.raises(BrushworkError, match="does not fit inside the 96x64 style image"):
        images.crop(halves, (50, 0, 60, 64))


def test_stylize_uses_the_cropped_region(gray, halves):
    """The style target is the crop: equal for a pixel and a fraction box, different per half."""
    options = Options(size=48, steps=1, device="cpu")

    def first_style_loss(crop) -> float:
        return api.run(gray, halves, options.replace(style_crop=crop)).records[0].style

    left_pixels, left_fraction = first_style_loss((0, 0, 48, 64)), first_style_loss((0, 0, 0.5, 1))
    right, whole = first_style_loss((48, 0, 48, 64)), first_style_loss(None)
    assert left_pixels == pytest.approx(left_fraction, rel=1e-6)
    assert abs(left_pixels - right) > 0.01 * left_pixels
    assert abs(whole - left_pixels) > 0.01 * left_pixels


def test_stylize_command_with_a_crop(tmp_path, gray, halves, capsys):
    gray.save(tmp_path / "content.png")
    halves.save(tmp_path / "style.png")
    base = ["stylize", str(tmp_path / "content.png"), "--style", str(tmp_path / "style.png"), "--size", "48",
            "--steps", "2", "--device", "cpu", "-q"]
    assert cli.main([*base, "-o", str(tmp_path / "out.png"), "--style-crop", "0,0,0.5,1"]) == 0
    assert Image.open(tmp_path / "out.png").size == (48, 40)

    assert cli.main([*base, "-o", str(tmp_path / "bad.png"), "--style-crop", "0,0,200,64"]) == 2
    assert "does not fit inside the 96x64 style image" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
    assert cli.main([*base, "-o", str(tmp_path / "bad.png"), "--style-crop", "0,0,1"]) == 2
    assert "bad crop '0,0,1'" in capsys.readouterr().err


def test_compare_varies_the_crop(tmp_path, gray, halves):
    gray.save(tmp_path / "content.png")
    halves.save(tmp_path / "style.png")
    out = tmp_path / "grid"
    argv = ["compare", str(tmp_path / "content.png"), "--style", str(tmp_path / "style.png"), "-o", str(out),
            "--vary", "style-crop=none;0,0,0.5,1;48,0,48,64", "--size", "48", "--steps", "5", "--style-weight", "50", "--device", "cpu", "-q"]
    assert cli.main(argv) == 0
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [c["options"]["style_crop"] for c in cells] == [None, [0, 0, 0.5, 1], [48, 0, 48, 64]]
    assert [c["vary"]["style-crop"] for c in cells] == ["none", "0,0,0.5,1", "48,0,48,64"]
    pictures = [np.asarray(Image.open(out / c["image"]), dtype=int) for c in cells]
    assert np.abs(pictures[1] - pictures[2]).max() > 10  # the two halves give different pictures
