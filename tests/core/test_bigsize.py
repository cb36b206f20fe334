"""Print-size output: the tiled evaluation is the whole-image one, plans fit the memory,
seamless output wraps, and bad requests are refused before any work."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest
import torch

from PIL import Image

from brushwork import images, tiles
from brushwork.engine import Engine
from brushwork.errors import BrushworkError
from brushwork.options import Options
from brushwork.presets import PRESETS

GATYS, TUTORIAL = PRESETS["gatys"], PRESETS["tutorial"]


def pixels(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32))


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "within"), [("gram", 0.01), ("sliced", 0.05)])
def test_a_tiled_run_matches_an_untiled_one_without_seams(engine, content, style, loss, within):
    """Same J (gram's tiles are exact: within 1%; sliced's bin the first evaluation over the
    style's range, 4% off here, so the runs part: within 5%), and the tiled picture is no less
    smooth across its tile borders."""
    options = Options(size=160, steps=20, scales=1, precision="fp32", device="cpu", preset="tutorial", style_loss=loss)
    whole = engine.run(content, [style], options)
    tiled = engine.run(content, [style], options.replace(tile=64))
    assert abs(tiled.records[-1].total - whole.records[-1].total) <= within * whole.records[-1].total
    column_steps = (pixels(tiled.image)[:, 1:] - pixels(tiled.image)[:, :-1]).abs().mean(dim=(0, 2))
    borders = {t.cols.core_stop - 1 for t in tiles.tiles(*tiled.size, 64, 16)} - {tiled.size[0] - 1}
    assert borders and column_steps[sorted(borders)].mean() <= 1.3 * column_steps.mean()


def wrap_ratio(image) -> float:
    """Mean neighbour difference across the wrap line over that of interior neighbours."""
    p = pixels(image)
    across = ((p[:, 0] - p[:, -1]).abs().mean() + (p[0] - p[-1]).abs().mean()) / 2
    inside = ((p[:, 1:] - p[:, :-1]).abs().mean() + (p[1:] - p[:-1]).abs().mean()) / 2
    return float(across / inside)


def test_a_seamless_texture_has_no_join(engine, content, style):
    options = Options(size=96, steps=30, scales=1, device="cpu", init="noise", content_weight=0.0)
    plain = engine.run(content, [style], options)
    seamless = engine.run(content, [style], options.replace(seamless=True))
    assert seamless.image.width % 16 == 0 and seamless.image.height % 16 == 0
    assert wrap_ratio(seamless.image) <= 1.1 < wrap_ratio(plain.image)


def test_a_seamless_photo_hides_its_join(engine, content, style):
    """A photo's edges do not match, so seamless mode blends them into the wrap (images.make_periodic)."""
    options = Options(size=96, steps=30, scales=1, device="cpu")
    plain = engine.run(content, [style], options)
    seamless = engine.run(content, [style], options.replace(seamless=True))
    assert wrap_ratio(seamless.image) < 0.4 * wrap_ratio(plain.image)


def test_texture_command_paints_a_seamless_texture(tmp_path, image_files, capsys):
    from brushwork.cli import main

    out = tmp_path / "texture.tif"
    code = main(["texture", str(image_files["style"]), "-o", str(out), "--size", "64", "--steps", "20",
                 "--seamless", "--device", "cpu"])
    assert code == 0
    image = Image.open(out)
    assert image.format == "TIFF" and image.size == (64, 64)
    assert wrap_ratio(image.convert("RGB")) <= 1.2
    assert "estimated time: about" in capsys.readouterr().err


def test_a_disk_too_small_is_refused_before_the_run(tmp_path, image_files, monkeypatch, runs):
    from brushwork.cli import main

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "big.png"
    assert main(["stylize", str(image_files["content"]), "-s", str(image_files["style"]), "-o", str(out),
                 "--size", "64", "--device", "cpu", "-q"]) == 2
    assert runs == [] and not out.exists()


def test_a_disk_that_fills_up_leaves_no_partial_file(tmp_path, monkeypatch):
    def full(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(BrushworkError, match="the disk is full"):
        images.save_image(Image.new("RGB", (8, 8)), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_steps_auto_stops_each_scale_when_it_settles(engine, content, style):
    from brushwork.options import AUTO_TOLERANCE, AUTO_WINDOW, DEFAULT_STEPS

    options = Options(size=48, steps="auto", device="cpu", precision="fp32", style_loss="gram")  # gram settles at 48 px
    result = engine.run(content, [style], options)
    assert result.stop_reason == "done" and len(result.records) < DEFAULT_STEPS
    totals = [r.total for r in result.records]
    assert totals[-1 - AUTO_WINDOW] - totals[-1] < AUTO_TOLERANCE * totals[-1]  # it stopped for a reason
    assert all(a - b >= AUTO_TOLERANCE * b for a, b in zip(totals[:-AUTO_WINDOW - 1], totals[AUTO_WINDOW:-1]))


def test_steps_auto_hands_a_settled_scales_steps_to_the_next(engine, content, style):
    """Three scales: what a settled scale leaves goes on to finer ones, a quarter of the steps
    for each doubling of the side, so an auto run never costs more than the default's."""
    options = Options(size=128, scales=3, steps="auto", device="cpu", precision="fp32",
                      style_loss="gram", style_weight=0.5)  # its 32 px scale settles after about 80 steps
    planned = engine.plan(content.size, options, [style.size]).scales
    result = engine.run(content, [style], options)
    done = [sum(1 for r in result.records if r.scale == k) for k in range(3)]
    pixels = [s.size[0] * s.size[1] for s in planned]
    assert done[0] < planned[0].steps  # the coarse scale settled early here
    assert done[1] > planned[1].steps or done[2] > planned[2].steps  # and its steps went on
    assert sum(d * p for d, p in zip(done, pixels)) <= sum(s.steps * p for s, p in zip(planned, pixels))


def test_style_targets_never_enlarge_the_painting_unless_asked(engine, content, monkeypatch):
    small_style = Image.new("RGB", (64, 48), (200, 30, 30))
    small_style.putpixel((5, 5), (0, 0, 255))
    shapes = []
    original = Engine.style_grams

    def recording(self, key, image, *args, **kwargs):
        shapes.append(tuple(image.shape[-2:]))
        return original(self, key, image, *args, **kwargs)

    monkeypatch.setattr(Engine, "style_grams", recording)
    engine.run(content, [small_style], Options(size=96, steps=1, scales=1, device="cpu"))
    engine.run(content, [small_style], Options(size=96, steps=1, scales=1, device="cpu", style_scale=1.0))
    assert shapes == [(48, 64), (72, 96)]
