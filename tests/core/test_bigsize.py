"""Print-size output: the tiled evaluation is the whole-image one, plans fit the memory,
seamless output wraps, and bad requests are refused before any work."""

from __future__ import annotations

import errno
import functools
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from PIL import Image

from brushwork import images, tiles
from brushwork.engine import Engine
from brushwork.errors import BrushworkError
from brushwork.losses import ContentLoss, MeanCovLoss, StyleLoss, gram_matrix
from brushwork.objective import Objective, TiledObjective, tiled_features, tiled_grams
from brushwork.options import Options
from brushwork.plan import fit_scale
from brushwork.presets import PRESETS

GATYS, TUTORIAL = PRESETS["gatys"], PRESETS["tutorial"]


def losses_for(engine: Engine, preset, width: int, height: int, wrap: bool = False):
    """Content and style losses against random targets, and the features function, in fp32."""
    layers = tuple(dict.fromkeys(preset.style_layers + preset.content_layers))
    features = functools.partial(engine.features, layers=layers, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    engine.vgg.set_wrap(wrap)
    with torch.no_grad():
        targets = engine.features(torch.rand(1, 3, height, width, generator=generator), preset.content_layers,
                                  torch.float32)
        engine.vgg.set_wrap(False)
        style = engine.features(torch.rand(1, 3, 96, 112, generator=generator), preset.style_layers, torch.float32)
    content = ContentLoss(targets, dict.fromkeys(preset.content_layers, 1.0))
    return features, content, StyleLoss({n: gram_matrix(f) for n, f in style.items()}, dict.fromkeys(style, 1.0)), layers


def evaluate(objective: Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    terms = objective(x)
    return terms, x.grad.clone()


@pytest.mark.parametrize(
    ("preset", "width", "height", "core"),
    [(TUTORIAL, 200, 150, 48), (GATYS, 256, 208, 64)],
)
def test_tiled_objective_and_gradient_match_the_whole_image(engine, preset, width, height, core):
    features, content, style, layers = losses_for(engine, preset, width, height)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    grid = tiles.tiles(width, height, core, tiles.margin_for(layers))
    assert len(grid) > 4
    whole_terms, whole_grad = evaluate(Objective(features, content, style, (1.0, 5.0, 0.1)), x)
    tiled_terms, tiled_grad = evaluate(TiledObjective(features, content, style, (1.0, 5.0, 0.1), tiles=grid), x)
    assert torch.allclose(tiled_terms, whole_terms, rtol=1e-4)
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() <= 1e-3


def test_too_small_a_margin_is_not_exact(engine):
    """The margin is what makes tiles exact: without it, the tiles' features are wrong."""
    features, content, style, layers = losses_for(engine, GATYS, 256, 208)
    x = torch.rand(1, 3, 208, 256, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    _, whole_grad = evaluate(Objective(features, content, style, (1.0, 5.0, 0.1)), x)
    grid = tiles.tiles(256, 208, 64, 16)
    _, tiled_grad = evaluate(TiledObjective(features, content, style, (1.0, 5.0, 0.1), tiles=grid), x)
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() > 1e-2


def test_seamless_tiles_wrap_like_circular_padding(engine):
    features, content, style, layers = losses_for(engine, GATYS, 224, 160, wrap=True)
    x = torch.rand(1, 3, 160, 224, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    engine.vgg.set_wrap(True)
    try:
        whole_terms, whole_grad = evaluate(Objective(features, content, style, (1.0, 5.0, 0.1), wrap=True), x)
    finally:
        engine.vgg.set_wrap(False)
    grid = tiles.tiles(224, 160, 64, tiles.margin_for(layers), wrap=True)
    tiled_terms, tiled_grad = evaluate(TiledObjective(features, content, style, (1.0, 5.0, 0.1), True, grid), x)
    assert torch.allclose(tiled_terms, whole_terms, rtol=1e-4)
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() <= 1e-3


def test_tiled_targets_match_the_whole_image(engine):
    layers = ("relu1_1", "relu3_1", "relu4_2")
    features = functools.partial(engine.features, layers=layers, dtype=torch.float32)
    image = torch.rand(1, 3, 176, 240, generator=torch.Generator().manual_seed(3))
    grid = tiles.tiles(240, 176, 64, tiles.margin_for(layers))
    with torch.no_grad():
        whole = features(image)
    for name, f in tiled_features(features, image, layers, grid).items():
        assert torch.allclose(f, whole[name], atol=1e-4, rtol=1e-4), name
    for name, g in tiled_grams(features, image, layers, grid).items():
        assert torch.allclose(g, gram_matrix(whole[name]), rtol=1e-4, atol=1e-6), name


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 900),
    core=st.integers(16, 300),
    layer=st.sampled_from(["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"]),
    wrap=st.booleans(),
)
def test_tile_cores_partition_every_feature_map(length, core, layer, wrap):
    if wrap:
        length = max(16, length // 16 * 16)  # seamless sizes are on the pooling grid
    factor = tiles.downsampling(layer)
    covered = []
    for span in tiles.spans(length, core, 80, wrap):
        local, whole = span.core(factor)
        tile_length = (span.stop - span.start) // factor if not wrap else (span.stop - span.start) // factor
        assert 0 <= local.start <= local.stop <= tile_length
        assert local.stop - local.start == whole.stop - whole.start
        assert span.start % 16 == 0 or span.start == 0
        covered += range(whole.start, whole.stop)
    assert covered == list(range(length // factor))


def test_plan_tiles_when_the_whole_image_does_not_fit(engine):
    roomy = engine.plan((1600, 1200), Options(size=1600, steps=10, max_memory=20))
    tight = engine.plan((1600, 1200), Options(size=1600, steps=10, max_memory=1.0))
    assert roomy.scales[-1].tile is None
    assert tight.scales[-1].tile is not None and tight.memory_needed <= 2**30
    assert tight.scales[0].tile is None  # coarse scales still fit whole
    assert "tiles of" in tight.describe(engine.device)


def test_history_shrinks_to_fit_before_anything_is_refused(engine):
    layers = GATYS.style_layers + GATYS.content_layers
    full = fit_scale((2000, 1500), 200, Options(), layers, torch.float32, 40 * 2**30)
    squeezed = fit_scale((2000, 1500), 200, Options(), layers, torch.float32, 3 * 2**30)
    assert full.history == 100 and full.tile is None
    assert squeezed.tile is not None and 2 <= squeezed.history < 100 and squeezed.memory <= 3 * 2**30


def test_a_run_that_cannot_fit_names_the_largest_size(engine):
    with pytest.raises(BrushworkError, match=r"largest --size that fits is about \d+") as error:
        engine.plan((8000, 6000), Options(size=8000, max_memory=0.5))
    largest = int(str(error.value).rsplit(" ", 1)[-1])
    engine.plan((8000, 6000), Options(size=largest, max_memory=0.5))  # and that size does fit


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tile": 32}, "--tile 32 must be from 64 px"),
        ({"tile": 5000}, "to the output's longest side"),
        ({"max_memory": -1.0}, "--max-memory must be a positive number"),
    ],
)
def test_bad_tiling_requests_are_refused(engine, changes, message):
    with pytest.raises(BrushworkError, match=message):
        Options(**changes).validate(1)
        engine.plan((640, 480), Options(size=640, **changes))


def pixels(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32))


def test_a_tiled_run_matches_an_untiled_one_without_seams(engine, content, style):
    """Same J within 1%, and the tiled picture is no less smooth across its tile borders."""
    options = Options(size=160, steps=20, scales=1, precision="fp32", device="cpu", preset="tutorial")
    whole = engine.run(content, [style], options)
    tiled = engine.run(content, [style], options.replace(tile=64))
    assert abs(tiled.records[-1].total - whole.records[-1].total) <= 0.01 * whole.records[-1].total
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


def test_steps_auto_stops_each_scale_when_it_converges(engine, content, style):
    from brushwork.options import AUTO_STEPS, AUTO_TOLERANCE, AUTO_WINDOW

    result = engine.run(content, [style], Options(size=48, steps="auto", device="cpu"))
    assert result.stop_reason == "done" and len(result.records) < AUTO_STEPS
    totals = [r.total for r in result.records]
    assert totals[-1 - AUTO_WINDOW] - totals[-1] < AUTO_TOLERANCE * totals[-1]  # it stopped for a reason
    assert all(a - b >= AUTO_TOLERANCE * b for a, b in zip(totals[:-AUTO_WINDOW - 1], totals[AUTO_WINDOW:-1]))


def test_steps_auto_on_the_command_line():
    from brushwork.options import parse_option

    assert parse_option("steps", "auto") == "auto" and parse_option("steps", "12") == 12
    with pytest.raises(BrushworkError, match="--steps must be a whole number or auto"):
        Options(steps="many").validate(1)


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


def test_tiled_meancov_matches_the_whole_image(engine):
    """The mean and covariance statistics are sums over positions like Grams: tiles are exact."""
    features, content, _, layers = losses_for(engine, TUTORIAL, 200, 150)
    with torch.no_grad():
        style = engine.features(torch.rand(1, 3, 96, 112, generator=torch.Generator().manual_seed(4)),
                                TUTORIAL.style_layers, torch.float32)
    meancov = MeanCovLoss({n: MeanCovLoss.statistics(f) for n, f in style.items()}, dict.fromkeys(style, 1.0))
    x = torch.rand(1, 3, 150, 200, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    grid = tiles.tiles(200, 150, 48, tiles.margin_for(layers))
    whole_terms, whole_grad = evaluate(Objective(features, content, meancov, (1.0, 5.0, 0.1)), x)
    tiled_terms, tiled_grad = evaluate(TiledObjective(features, content, meancov, (1.0, 5.0, 0.1), tiles=grid), x)
    assert torch.allclose(tiled_terms, whole_terms, rtol=1e-4)
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() <= 1e-3


def test_the_sliced_loss_is_refused_where_tiles_are_needed(engine):
    """Its sort needs every position at once: a run that only fits in tiles is refused at plan time."""
    engine.plan((1600, 1200), Options(size=1600, steps=10, max_memory=1.0, style_loss="meancov"))
    with pytest.raises(BrushworkError, match="--style-loss sliced sorts every position at once"):
        engine.plan((1600, 1200), Options(size=1600, steps=10, max_memory=1.0, style_loss="sliced"))
