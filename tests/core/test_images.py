"""Decoding every kind of picture to upright RGB, clear errors, colour helpers, atomic saving."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import images
from brushwork.errors import BrushworkError

WHITE, RED, BLUE = (255, 255, 255), (255, 0, 0), (0, 0, 255)


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


# --- modes ---------------------------------------------------------------------------------


def test_rgba_is_composited_onto_white(tmp_path):
    array = np.zeros((4, 6, 4), np.uint8)
    array[:, :2] = (255, 0, 0, 0)  # fully transparent red -> white
    array[:, 2:4] = (0, 0, 255, 255)  # opaque blue stays blue
    array[:, 4:] = (0, 0, 0, 128)  # half-transparent black -> mid gray
    path = tmp_path / "rgba.png"
    Image.fromarray(array, "RGBA").save(path)
    loaded = pixels(images.load_image(path))
    assert tuple(loaded[0, 0]) == WHITE
    assert tuple(loaded[0, 2]) == BLUE
    assert np.all(np.abs(loaded[0, 5].astype(int) - 127) <= 1)


def test_grayscale(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 100], [200, 255]], np.uint8), "L").save(path)
    loaded = pixels(images.load_image(path))
    assert loaded.shape == (2, 2, 3)
    assert loaded[1, 0].tolist() == [200, 200, 200]


def test_gray_with_alpha():
    image = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    assert pixels(images.load_image(image)).tolist() == [[list(WHITE), [0, 0, 0]]]


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 2))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 0, 1, 1, 1, 1, 0, 0])
    image.info["transparency"] = 0  # index 0 (red) is see-through
    for name in ("palette.png", "palette.gif"):
        image.save(tmp_path / name, transparency=0)
        loaded = pixels(images.load_image(tmp_path / name))
        assert tuple(loaded[0, 0]) == WHITE, name
        assert tuple(loaded[0, 2]) == BLUE, name
    opaque = tmp_path / "opaque.png"
    image.info.pop("transparency")
    image.save(opaque)
    assert tuple(pixels(images.load_image(opaque))[0, 0]) == RED


def test_16_bit_png(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 65535], [32768, 1000]], np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = pixels(images.load_image(path))[..., 0]
    assert loaded.tolist() == [[0, 255], [128, 4]]  # scaled, not clipped at 255


def test_32_bit_and_float_modes():
    as_int = Image.fromarray(np.array([[0, 255]], np.int32), "I")
    assert pixels(images.load_image(as_int))[0, :, 0].tolist() == [0, 255]
    as_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert pixels(images.load_image(as_float))[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    r, g, b = pixels(images.load_image(path))[8, 8].tolist()
    assert r > 240 and g < 15 and b < 15


def red_left_blue_right() -> Image.Image:
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 20, 20))
    return image


def test_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the stored left edge is the top
    path = tmp_path / "sideways.jpg"
    red_left_blue_right().save(path, exif=exif, quality=95)
    loaded = images.load_image(path)
    assert loaded.size == (20, 40)
    top, bottom = pixels(loaded)[5, 10], pixels(loaded)[35, 10]
    assert top[0] > 200 and top[2] < 50  # red
    assert bottom[2] > 200 and bottom[0] < 50  # blue
    with Image.open(path) as image:  # a PIL image is turned too
        assert images.load_image(image).size == (20, 40)


def test_corrupt_exif_still_loads(tmp_path):
    """Orientation 6 plus a tag Pillow cannot re-encode (SamplesPerPixel as text)."""
    exif = bytes.fromhex("4578696600004d4d002a000000080002011500020000000443616d3c01120003000000010006000000000000")
    path = tmp_path / "bad_exif.jpg"
    red_left_blue_right().save(path, exif=exif)
    assert images.load_image(path).size in ((40, 20), (20, 40))


# --- files that are not pictures -----------------------------------------------------------


def write_truncated(path, fmt):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    image.save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name, fmt", [("cut.png", "PNG"), ("cut.jpg", "JPEG")])
def test_truncated(tmp_path, name, fmt):
    path = tmp_path / name
    write_truncated(path, fmt)
    with pytest.raises(BrushworkError, match="truncated or corrupt"):
        images.load_image(path)


@pytest.mark.parametrize("data", [b"hello, I am a text file\n", b""])
def test_not_an_image(tmp_path, data):
    path = tmp_path / "notes.png"
    path.write_bytes(data)
    with pytest.raises(BrushworkError, match="not an image file"):
        images.load_image(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(BrushworkError, match="image not found"):
        images.load_image(tmp_path / "nope.jpg")
    with pytest.raises(BrushworkError, match="not a file"):
        images.load_image(tmp_path)


def test_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)  # chmod 000 does not stop root
    with pytest.raises(BrushworkError, match="permission denied"):
        images.load_image(path)


def test_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px is over twice the limit
    with pytest.raises(BrushworkError, match="too large"):
        images.load_image(path)


# --- tensors, sizes, crops -----------------------------------------------------------------


def test_tensor_round_trip(content):
    tensor = images.to_tensor(content)
    assert tensor.shape == (1, 3, content.height, content.width) and tensor.dtype == torch.float32
    assert 0 <= float(tensor.min()) and float(tensor.max()) <= 1
    assert images.to_pil(tensor).tobytes() == content.tobytes()


def test_fit_size_and_resize():
    assert images.fit_size(200, 100, 64) == (64, 32)
    assert images.fit_size(100, 300, 60) == (20, 60)
    assert images.fit_size(1000, 1, 64) == (64, 1)
    tensor = torch.rand(1, 3, 20, 40)
    assert images.resize(tensor, (40, 20)) is tensor
    smaller = images.resize(tensor, (10, 5))
    assert smaller.shape == (1, 3, 5, 10) and 0 <= float(smaller.min()) and float(smaller.max()) <= 1


def test_crop():
    assert images.parse_crop("0.25,0,0.5,1") == (0.25, 0.0, 0.5, 1.0)
    image = Image.new("RGB", (100, 50))
    assert images.crop(image, (0.25, 0, 0.5, 1)).size == (50, 50)  # fractions
    assert images.crop(image, (10, 5, 30, 20)).size == (30, 20)  # pixels
    with pytest.raises(BrushworkError, match="does not fit"):
        images.crop(image, (90, 0, 30, 20))
    with pytest.raises(BrushworkError, match="does not fit"):
        images.crop(image, (0, 0, 0, 0))


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "0,0,nan,1", "0,-1,1,1", "", "0,0,inf,1"])
def test_bad_crop(text):
    with pytest.raises(BrushworkError, match="bad crop"):
        images.parse_crop(text)


# --- colour --------------------------------------------------------------------------------


def test_yiq_round_trip_and_luminance(content):
    rgb = images.to_tensor(content)
    torch.testing.assert_close(images.yiq_to_rgb(images.rgb_to_yiq(rgb)), rgb, atol=1e-5, rtol=0)
    gray = images.luminance(rgb)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    yiq_gray = images.rgb_to_yiq(gray)
    assert float(yiq_gray[:, 1:].abs().max()) < 1e-5  # no chroma left


def test_with_chroma_of(content, style):
    a = images.to_tensor(content)
    b = images.resize(images.to_tensor(style), (a.shape[-1], a.shape[-2]))
    mixed = images.rgb_to_yiq(images.with_chroma_of(a, b))
    target_y, target_iq = images.rgb_to_yiq(a)[:, :1], images.rgb_to_yiq(b)[:, 1:]
    # equal except where the combination falls outside the RGB cube and is clipped
    assert float((mixed[:, :1] - target_y).abs().mean()) < 0.01
    assert float((mixed[:, 1:] - target_iq).abs().mean()) < 0.01


def test_match_histogram(content, style):
    source, target = images.to_tensor(style), images.to_tensor(content)
    matched = images.match_histogram(source, target)
    assert matched.shape == source.shape
    mean_before = (source.mean((2, 3)) - target.mean((2, 3))).abs().max()
    mean_after = (matched.mean((2, 3)) - target.mean((2, 3))).abs().max()
    assert float(mean_after) < 0.03 < float(mean_before)

    def covariance(x):
        flat = x.reshape(3, -1)
        return torch.cov(flat)

    assert float((covariance(matched) - covariance(target)).abs().max()) < 0.01


def test_match_luminance(content, style):
    matched = images.match_luminance(images.to_tensor(style), images.to_tensor(content))
    target_y = images.luminance(images.to_tensor(content))
    assert abs(float(matched.mean() - target_y.mean())) < 0.02
    assert abs(float(matched[:, 0].std() - target_y[:, 0].std())) < 0.02


# --- saving --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG"), (".webp", "WEBP")])
def test_save_format_by_extension(tmp_path, content, suffix, fmt):
    path = images.save_image(content, tmp_path / f"out{suffix}")
    with Image.open(path) as saved:
        assert saved.format == fmt and saved.size == content.size
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_no_overwrite(tmp_path, content):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(BrushworkError, match="exists; pass --overwrite"):
        images.save_image(content, path, overwrite=False)
    assert path.read_bytes() == b"precious"
    images.save_image(content, path, overwrite=True)
    assert Image.open(path).size == content.size


def test_failed_write_leaves_nothing(tmp_path, content, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")

    def crash(src, dst):
        raise KeyboardInterrupt  # e.g. Ctrl-C right before the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        images.save_image(content, path, overwrite=True)
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_check_output_path(tmp_path):
    with pytest.raises(BrushworkError, match="unsupported output type '.gif'"):
        images.check_output_path(tmp_path / "out.gif", False)
    with pytest.raises(BrushworkError, match="unsupported output type '\\(none\\)'"):
        images.check_output_path(tmp_path / "out", False)
    with pytest.raises(BrushworkError, match="output folder does not exist"):
        images.check_output_path(tmp_path / "missing" / "out.png", False)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(BrushworkError, match="is a directory"):
        images.check_output_path(folder, True)
    with pytest.raises(BrushworkError, match="is a directory"):
        images.check_output_path(folder, False)
    assert images.check_output_path(tmp_path / "fine.webp", False) == tmp_path / "fine.webp"


def test_write_atomic(tmp_path):
    path = tmp_path / "trace.json"
    images.write_atomic(path, b"{}")
    images.write_atomic(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]
