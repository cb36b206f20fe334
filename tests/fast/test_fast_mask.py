"""`brushwork apply --mask` and `--protect-faces`: the stylized and the input picture blended
through a mask, per pixel, for images and video frames alike."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from brushwork import cli, faces
from brushwork.errors import BrushworkWarning
from brushwork.fast import apply
from brushwork.fast.net import load_model
from brushwork.options import PROTECT_FACES_BARE

from conftest import sample
from test_fast import make_video, one_thread, tiny_model  # noqa: F401 (fixtures)

W = 64  # px: the pictures' width; coffee.png is then 64x43, the test video 64x48


def bands_mask(width: int, height: int) -> Image.Image:
    """Black on the left third, mid-gray in the middle, white on the right."""
    pixels = np.zeros((height, width), np.uint8)
    pixels[:, width // 3 : 2 * width // 3] = 128
    pixels[:, 2 * width // 3 :] = 255
    return Image.fromarray(pixels, "L")


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float64)


def apply_cli(model: Path, source: Path, target: Path, *flags: str) -> None:
    assert cli.main(["apply", "-m", str(model), str(source), "-o", str(target), "-q", *flags]) == 0


def test_black_keeps_the_input_white_the_stylized_and_gray_mixes_them(tiny_model, tmp_path):
    source, mask = tmp_path / "in.png", tmp_path / "mask.png"
    sample("coffee.png", W).save(source)
    bands_mask(*Image.open(source).size).save(mask)
    apply_cli(tiny_model, source, tmp_path / "plain.png")
    apply_cli(tiny_model, source, tmp_path / "masked.png", "--mask", str(mask))
    original, plain, masked = pixels(source), pixels(tmp_path / "plain.png"), pixels(tmp_path / "masked.png")
    third = W // 3
    assert np.abs(plain - original).mean() > 20  # the network does change the picture
    assert np.array_equal(masked[:, :third], original[:, :third])
    assert np.array_equal(masked[:, 2 * third :], plain[:, 2 * third :])
    middle = slice(third, 2 * third)
    expected = (128 / 255) * plain[:, middle] + (1 - 128 / 255) * original[:, middle]
    assert np.abs(masked[:, middle] - expected).max() <= 1.5  # two roundings to 8 bits


def test_a_mask_of_another_size_is_stretched_with_a_notice(tiny_model, tmp_path, capsys):
    source, mask = tmp_path / "in.png", tmp_path / "mask.png"
    sample("coffee.png", W).save(source)
    bands_mask(32, 20).save(mask)
    assert cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(tmp_path / "out.png"), "--mask", str(mask)]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("brushwork: notice:")]
    assert notices == ["brushwork: notice: --mask is 32x20 but the picture is 64x43: resized to fit"]
    kept = slice(0, W // 3 - 2)  # the black third, clear of the stretched edge
    assert np.array_equal(pixels(tmp_path / "out.png")[:, kept], pixels(source)[:, kept])
    with pytest.warns(BrushworkWarning, match="resized to fit"):  # the Python API: a warning
        apply.stylize_images(load_model(tiny_model), [Image.open(source)], apply.Settings(device="cpu", mask=mask))


def test_video_frames_share_one_mask(tiny_model, tmp_path):
    source, mask = tmp_path / "in.mp4", tmp_path / "mask.png"
    make_video(source, size=(W, 48), audio=None)
    bands_mask(W, 48).save(mask)
    apply_cli(tiny_model, source, tmp_path / "plain.mp4", "--deflicker", "0")
    apply_cli(tiny_model, source, tmp_path / "masked.mp4", "--deflicker", "0", "--mask", str(mask))
    frames = {}
    for name in ("in", "plain", "masked"):
        with av.open(str(tmp_path / f"{name}.mp4")) as container:
            frames[name] = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float64)
    assert len(frames["masked"]) == len(frames["in"]) == 10
    left, right = slice(0, W // 3 - 4), slice(2 * W // 3 + 4, W)  # clear of H.264's chroma blocks at the bands' edges
    error = lambda a, b, part: np.abs(frames[a][..., part, :] - frames[b][..., part, :]).mean()  # noqa: E731
    # The noise background loses some detail each time it is encoded (measured: about 5 in 8
    # bits where the output is the input, against about 50 between stylized and input).
    assert error("masked", "in", left) < 0.2 * error("plain", "in", left)
    assert error("masked", "plain", right) < 0.2 * error("masked", "in", right)


def test_a_mask_that_is_not_an_image_fails_in_one_line_and_writes_nothing(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sample("coffee.png", W).save(folder / "p.png")
    fake = tmp_path / "mask.png"
    fake.write_text("not a picture")
    for mask in (fake, tmp_path / "missing.png"):
        code = cli.main(["apply", "-m", str(tiny_model), str(folder), "-o", str(tmp_path / "out"), "--mask", str(mask)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("brushwork: error: --mask:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "mask.png"]


def test_protect_faces_keeps_the_face_and_paints_the_rest(tiny_model, tmp_path):
    source = tmp_path / "astronaut.png"
    sample("astronaut.png", 128).save(source)
    apply_cli(tiny_model, source, tmp_path / "plain.png")
    apply_cli(tiny_model, source, tmp_path / "bare.png", "--protect-faces")
    apply_cli(tiny_model, source, tmp_path / "half.png", "--protect-faces", "0.5")
    original, plain = pixels(source), pixels(tmp_path / "plain.png")
    face = faces.face_mask(Image.open(source)) > 0.99
    outside = faces.face_mask(Image.open(source)) == 0
    assert face.sum() > 200 and outside.sum() > 0.5 * face.size
    for name, kept in (("bare", PROTECT_FACES_BARE), ("half", 0.5)):
        out = pixels(tmp_path / f"{name}.png")
        expected = kept * original[face] + (1 - kept) * plain[face]
        assert np.abs(out[face] - expected).max() <= 1.5
        assert np.array_equal(out[outside], plain[outside])
