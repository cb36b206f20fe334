"""Masks and regions: black keeps the photo, each region takes its own style, masks tile
exactly, and bad masks fail in one line with nothing written."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork
from brushwork import cli, masks, regions
from brushwork.commands import flags
from brushwork.errors import BrushworkError, BrushworkWarning
from brushwork.losses import STYLE_LOSSES
from brushwork.options import PROTECT_FACES_BARE, Options
from brushwork.run_description import RunDescription
from conftest import TINY

SIZE = 64
HALF = np.zeros((SIZE, SIZE), np.float32)
HALF[:, SIZE // 2:] = 1  # right half white


@pytest.fixture(scope="module")
def photo(content) -> Image.Image:
    return content.resize((SIZE, SIZE))


@pytest.fixture(scope="module")
def warm() -> Image.Image:
    """A red-orange texture: stripes with noise."""
    rng = np.random.default_rng(1)
    stripes = np.where((np.arange(64) // 6 % 2)[None, :, None] == 0, [230, 80, 20], [250, 190, 40])
    return Image.fromarray(np.clip(stripes + rng.integers(-40, 40, (64, 64, 3)), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def cold() -> Image.Image:
    """A blue-green texture of blobs: other colours and another pattern."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:64, 0:64]
    blobs = (np.sin(x / 3.0) * np.cos(y / 4.0) > 0)[..., None]
    return Image.fromarray(np.clip(np.where(blobs, [20, 60, 200], [30, 170, 140]) + rng.integers(-30, 30, (64, 64, 3)),
                                   0, 255).astype(np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, np.float32) / 255


# --- black keeps the photo -----------------------------------------------------------------


@pytest.mark.parametrize("changes", [{}, {"scales": 2}, {"preserve_color": "luminance"}, {"init": "noise"}])
def test_black_keeps_the_content_as_a_content_only_run_does(engine, photo, style, changes):
    options = TINY.replace(size=SIZE, steps=8, **changes)
    masked = pixels(engine.run(photo, [style], options.replace(mask=HALF)).image)
    content_only = pixels(engine.run(photo, [style], options.replace(style_weight=0.0)).image)
    black, white = HALF == 0, HALF == 1
    kept = np.abs(masked - pixels(photo))[black].max()
    assert kept <= np.abs(content_only - pixels(photo))[black].max() + 2 / 255
    assert np.abs(masked - pixels(photo))[white].mean() > 0.02  # where it is white, the style did act


def test_an_all_black_mask_gives_the_content(engine, photo, style):
    result = engine.run(photo, [style], TINY.replace(size=SIZE, steps=5, mask=np.zeros((SIZE, SIZE))))
    assert np.abs(pixels(result.image) - pixels(photo)).max() <= 1 / 255
    assert result.records[-1].style == 0.0


# --- each region its own style -------------------------------------------------------------


def region_distances(engine, image, styles, loss_name: str) -> np.ndarray:
    """distance[r, s]: the output's statistics inside region r (left, right) against style s,
    measured with `loss_name`'s loss over relu1_1..relu3_1, in fp32."""
    layers = ("relu1_1", "relu2_1", "relu3_1")
    kind = STYLE_LOSSES[loss_name]
    feats = engine.features(brushwork.images.to_tensor(image), layers, torch.float32)
    distances = np.zeros((2, 2))
    for r, region in enumerate((1 - HALF, HALF)):
        weights = masks.layer_maps(torch.from_numpy(region)[None, None], layers)
        for s, style in enumerate(styles):
            with torch.no_grad():
                targets = {n: kind.statistics(f) for n, f in engine.features(brushwork.images.to_tensor(style), layers,
                                                                             torch.float32).items()}
                blended = kind.blend([targets], [1.0])
                loss = kind(blended, dict.fromkeys(layers, 1.0), **({"seed": 7} if loss_name == "sliced" else {}))
                distances[r, s] = float(loss(feats, weights))
    return distances


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["gram", "meancov", "sliced"])
def test_each_region_is_closer_to_its_own_style(engine, photo, warm, cold, loss):
    """Left region: the first style, right: the second; then the styles change places, so a
    photo whose halves lean to one style each by themselves cannot pass."""
    options = TINY.replace(size=SIZE, steps=20, style_loss=loss, style_weight=20.0, style_masks=(1 - HALF, HALF))
    for styles in ([warm, cold], [cold, warm]):
        image = engine.run(photo, styles, options).image
        for measure in {loss, "gram"}:
            d = region_distances(engine, image, styles, measure)
            assert d[0, 0] < d[0, 1] and d[1, 1] < d[1, 0], (measure, d)


@pytest.mark.slow
def test_style_regions_choose_the_part_of_the_painting(engine, photo, warm, cold):
    """A painting whose left half is warm and right half cold: --style-regions picks the half."""
    both = Image.fromarray(np.concatenate([np.asarray(warm), np.asarray(cold)], axis=1))
    left = np.zeros((64, 128), np.float32)
    left[:, :64] = 1
    options = TINY.replace(size=SIZE, steps=15, style_weight=20.0)
    warm_side = pixels(engine.run(photo, [both], options.replace(style_regions=(left,))).image)
    cold_side = pixels(engine.run(photo, [both], options.replace(style_regions=(1 - left,))).image)
    assert warm_side[..., 0].mean() > cold_side[..., 0].mean() + 0.05  # redder
    assert warm_side[..., 2].mean() < cold_side[..., 2].mean() - 0.05  # less blue


# --- reading masks, errors -----------------------------------------------------------------


def test_masks_read_from_files_pil_and_arrays_alike(tmp_path):
    gray = (HALF * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "m.png")
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = gray  # white, transparent on the left: transparency counts as black
    sources = [tmp_path / "m.png", str(tmp_path / "m.png"), Image.fromarray(gray), HALF, HALF.astype(bool),
               gray, np.stack([gray] * 3, -1), rgba, Image.fromarray(rgba)]
    for source in sources:
        assert np.array_equal(masks.to_array(source, "--mask"), HALF), type(source)


@pytest.mark.parametrize(("source", "message"), [
    (np.full((4, 4), 2.0), "[0, 1]"),
    (np.zeros((4, 4, 2), np.float32), "array"),
    (42, "expected an image file"),
])
def test_bad_mask_sources(source, message):
    with pytest.raises(BrushworkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        masks.to_array(source, "--mask")


def test_a_mask_of_another_size_is_resized_with_a_notice(engine, photo, style):
    small = HALF[::4, ::4]  # 16×16 for a 64×64 photo
    with pytest.warns(BrushworkWarning, match=r"--mask is 16x16 but the photo is 64x64: resized"):
        result = engine.run(photo, [style], TINY.replace(size=SIZE, steps=3, mask=small))
    assert np.abs(pixels(result.image) - pixels(photo))[:, :24].max() <= 1 / 255


def test_cli_notice_and_one_line_errors(photo, style, style2, tmp_path, capsys):
    paths = {}
    for name, image in (("photo", photo), ("style", style), ("style2", style2),
                        ("small", Image.fromarray((HALF[::2, ::2] * 255).astype(np.uint8)))):
        paths[name] = tmp_path / f"{name}.png"
        image.save(paths[name])
    (tmp_path / "notes.png").write_text("not a picture")
    base = ["stylize", paths["photo"], "--size", "48", "--steps", "2", "--device", "cpu", "-q"]
    run = functools.partial(lambda *a: cli.main([str(v) for v in a]))
    assert run(*base, "--style", paths["style"], "-o", tmp_path / "ok.png", "--mask", paths["small"]) == 0
    assert "brushwork: notice: --mask is 32x32 but the photo is 64x64: resized to fit" in capsys.readouterr().err
    for extra, needle in (
        (["--style", paths["style"], "--mask", tmp_path / "notes.png"], "--mask: not an image file"),
        (["--style", paths["style"], "--mask", tmp_path / "missing.png"], "--mask: image not found"),
        (["--style", paths["style"], paths["style2"], "--style-masks", paths["small"]],
         "--style-masks has 1 masks for 2 style images"),
        (["--style", paths["style"], "--style-regions", f"{paths['small']},{paths['small']}"],
         "--style-regions has 2 masks for 1 style images"),
        (["--style", paths["style"], "--protect-faces", "1.5"], "--protect-faces must be a strength from 0 to 1"),
    ):
        assert run(*base, *extra, "-o", tmp_path / "bad.png") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("brushwork: error: ") and needle in err[0], err
        assert not (tmp_path / "bad.png").exists()


def test_mask_flags_and_how_protect_faces_combines(monkeypatch, photo):
    parser = cli.build_parser()
    bare = parser.parse_args(["stylize", "p.png", "-s", "s.png", "-o", "o.png", "--protect-faces"])
    given = parser.parse_args(["stylize", "p.png", "-s", "s.png", "t.png", "-o", "o.png", "--protect-faces", "0.3",
                               "--style-masks", "a.png,b.png", "--style-regions", "c.png,none"])
    assert flags.options_from_args(bare).protect_faces == PROTECT_FACES_BARE
    options = flags.options_from_args(given)
    assert (options.protect_faces, options.style_masks) == (0.3, ("a.png", "b.png"))
    assert options.style_regions == ("c.png", None)
    face = np.zeros((SIZE, SIZE), np.float32)
    face[8:24, 8:56] = 1
    monkeypatch.setattr("brushwork.faces.face_mask", lambda image: face)
    run_masks = regions.prepare(RunDescription.from_options(Options(mask=HALF, protect_faces=0.75), 1), photo, [photo])
    assert np.allclose(run_masks.where[0, 0].numpy(), HALF * (1 - 0.75 * face))


# --- everywhere: the API and compare -------------------------------------------------------


def test_api_takes_masks_as_files_pil_images_and_arrays(photo, style, tmp_path, engine):
    Image.fromarray((HALF * 255).astype(np.uint8)).save(tmp_path / "m.png")
    kwargs = dict(size=SIZE, steps=4, device="cpu")
    outputs = [pixels(brushwork.stylize(photo, style, mask=m, **kwargs))
               for m in (tmp_path / "m.png", Image.open(tmp_path / "m.png"), HALF)]
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
    unmasked = pixels(brushwork.stylize(photo, style, **kwargs))
    assert np.abs(outputs[0] - unmasked)[:, :SIZE // 2].mean() > 0.02


def test_compare_varies_the_mask(photo, style, tmp_path, runs):
    photo.save(tmp_path / "photo.png")
    style.save(tmp_path / "style.png")
    for name, mask in (("left", 1 - HALF), ("right", HALF)):
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "grid"
    argv = ["compare", tmp_path / "photo.png", "--style", tmp_path / "style.png", "-o", out, "--size", str(SIZE),
            "--steps", "4", "--device", "cpu", "-q", "--vary", f"mask={tmp_path / 'left.png'},{tmp_path / 'right.png'}"]
    assert cli.main([str(a) for a in argv]) == 0
    assert [str(o.mask) for o in runs] == [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    cells = json.loads((out / "results.json").read_text())["cells"]
    left, right = (pixels(Image.open(out / c["image"])) for c in cells)
    kept = pixels(photo)
    assert np.abs(left - kept)[:, SIZE // 2:].max() <= 1 / 255 and np.abs(left - kept)[:, :SIZE // 2].mean() > 0.02
    assert np.abs(right - kept)[:, :SIZE // 2].max() <= 1 / 255 and np.abs(right - kept)[:, SIZE // 2:].mean() > 0.02
