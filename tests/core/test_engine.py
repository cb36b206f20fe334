"""Engine.run and the Python API end to end, on 48 px pictures and a handful of steps."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork
from brushwork import api, images
from brushwork.errors import BrushworkError
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.score import score
from conftest import SHARED_IMAGES, TINY


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


def mean_abs(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255)


def at_size(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` resized the way the engine resizes the content."""
    return images.to_pil(images.resize(images.to_tensor(image), size))


def chroma(image: Image.Image) -> torch.Tensor:
    return images.rgb_to_yiq(images.to_tensor(image))[:, 1:]


@pytest.fixture(scope="module")
def plain(engine, content, style):
    """The reference run everything else is compared with."""
    return engine.run(content, [style], TINY)


# --- the basic promise -----------------------------------------------------------------------


def test_output_moves_toward_style(engine, content, style, plain):
    assert plain.stop_reason == "done"
    assert plain.size == (48, 48) and plain.image.size == (48, 48) and plain.image.mode == "RGB"
    assert len(plain.records) == TINY.steps
    assert all(math.isfinite(r.total) for r in plain.records)
    assert plain.records[-1].style < 0.5 * plain.records[0].style
    start = at_size(content, plain.size)
    assert mean_abs(plain.image, start) > 0.01
    before, after = score(start, content, style, engine), score(plain.image, content, style, engine)
    assert after.style < 0.5 * before.style
    assert after.content < 1.0


def test_records(plain):
    steps = [r.step for r in plain.records]
    assert steps == list(range(1, TINY.steps + 1))
    for r in plain.records:
        assert r.total == pytest.approx(r.content + 5 * r.style, rel=1e-4)  # default weights, no TV
        assert (r.width, r.height, r.scale) == (48, 48, 0)
    seconds = [r.seconds for r in plain.records]
    assert seconds == sorted(seconds) and seconds[0] > 0


def test_aspect_ratio_is_kept(engine, style2, style):
    result = engine.run(style2, [style], TINY.replace(size=60, steps=1))  # chelsea: 96×64
    assert result.size == (60, 40) and result.image.size == (60, 40)


def test_seed_reproducibility(engine, content, style, plain):
    assert same_pixels(engine.run(content, [style], TINY).image, plain.image)
    noise = TINY.replace(init="noise", steps=2)
    first = engine.run(content, [style], noise.replace(seed=1)).image
    again = engine.run(content, [style], noise.replace(seed=1)).image
    other = engine.run(content, [style], noise.replace(seed=2)).image
    assert same_pixels(first, again)
    assert mean_abs(first, other) > 0.01


def test_fp32_reproducibility(engine, content, style):
    options = TINY.replace(precision="fp32", steps=2)
    assert same_pixels(engine.run(content, [style], options).image, engine.run(content, [style], options).image)


# --- colour ----------------------------------------------------------------------------------


def test_luminance_keeps_content_chroma(engine, content, style, plain):
    result = engine.run(content, [style], TINY.replace(preserve_color="luminance"))
    target = chroma(at_size(content, result.size))
    kept = float((chroma(result.image) - target).abs().mean())
    lost = float((chroma(plain.image) - target).abs().mean())
    assert kept < 0.005 < lost
    assert mean_abs(result.image, at_size(content, result.size)) > 0.01  # but it was stylized


def test_histogram_moves_colours_toward_content(engine, content, style, plain):
    result = engine.run(content, [style], TINY.replace(preserve_color="histogram"))
    target = images.to_tensor(at_size(content, result.size)).mean((2, 3))

    def colour_gap(image):
        return float((images.to_tensor(image).mean((2, 3)) - target).abs().sum())

    assert colour_gap(result.image) < 0.5 * colour_gap(plain.image)
    assert not same_pixels(result.image, plain.image)


# --- several styles, style size --------------------------------------------------------------


def test_style_blend(engine, content, style, style2, plain):
    only_first = engine.run(content, [style, style2], TINY.replace(style_weights=(2.0, 0.0)))
    assert same_pixels(only_first.image, plain.image)  # a zero-weight style has no say at all
    both = engine.run(content, [style, style2], TINY)  # default: equal weights
    assert mean_abs(both.image, plain.image) > 0.005


@pytest.mark.parametrize("style_loss", ["meancov", "sliced"])
def test_other_style_losses_with_blends_colours_crops_and_scales(engine, content, style, style2, style_loss):
    options = TINY.replace(style_loss=style_loss)
    alone = engine.run(content, [style], options)
    assert alone.stop_reason == "done" and alone.records[-1].style < 0.7 * alone.records[0].style
    assert same_pixels(engine.run(content, [style, style2], options.replace(style_weights=(1.0, 0.0))).image, alone.image)
    mixed = engine.run(content, [style, style2], options.replace(
        size=64, scales=2, style_weights=(2.0, 1.0), preserve_color="luminance", style_crop=(0, 0, 0.8, 0.8)))
    assert mixed.stop_reason == "done" and len({r.scale for r in mixed.records}) == 2
    assert mixed.records[-1].style < mixed.records[0].style


def test_style_scale(engine, content, style, plain):
    bigger = engine.run(content, [style], TINY.replace(style_scale=2.0))
    assert mean_abs(bigger.image, plain.image) > 0.005
    with pytest.raises(BrushworkError, match="style image at 24x24 is too small.*--style-scale"):
        engine.run(content, [style], TINY.replace(style_scale=0.5))


def test_style_crop(engine, content, style, plain):
    cropped = engine.run(content, [style], TINY.replace(style_crop=(0, 0, 0.5, 0.5)))
    assert mean_abs(cropped.image, plain.image) > 0.002
    with pytest.raises(BrushworkError, match="does not fit"):
        engine.run(content, [style], TINY.replace(style_crop=(0.9, 0, 0.5, 0.5)))


# --- init, optimizers, schedules --------------------------------------------------------------


def test_init_from_path(engine, content, style, image_files):
    """One tiny Adam step barely moves a pixel, so the output is the init image."""
    options = TINY.replace(init=str(image_files["style2"]), optimizer="adam", lr=1e-4, steps=1)
    result = engine.run(content, [style], options)
    assert mean_abs(result.image, at_size(images.load_image(image_files["style2"]), result.size)) < 0.005
    assert mean_abs(result.image, at_size(content, result.size)) > 0.05


def test_adam(engine, content, style):
    result = engine.run(content, [style], TINY.replace(optimizer="adam", lr=0.05, steps=6))
    assert result.stop_reason == "done"
    assert result.records[-1].total < 0.8 * result.records[0].total


def test_multiscale(engine, content, style):
    options = TINY.replace(size=64, scales=2)
    result = engine.run(content, [style], options)
    assert [(r.width, r.scale) for r in result.records] == [(32, 0)] * 4 + [(64, 1)] * 1  # 70% / 30%
    assert result.image.size == (64, 64)
    exact = engine.run(content, [style], options.replace(steps_per_scale=(1, 2)))
    assert [r.width for r in exact.records] == [32, 64, 64]
    with pytest.raises(BrushworkError, match="--steps-per-scale has 3 values for 2 scales"):
        engine.run(content, [style], options.replace(steps_per_scale=(1, 1, 1)))
    # 48 px cannot be halved for relu5_1 (24 < 32): one scale, whatever was asked
    assert {r.width for r in engine.run(content, [style], TINY.replace(scales=3, steps=1)).records} == {48}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tv_weight_smooths(engine, content, style, precision):
    """At 5 steps the style gradient still dominates and bf16 rounding decides which run ends
    smoother; by 10 the TV term has halved the roughness on either precision (the term itself
    is computed in fp32)."""
    options = TINY.replace(steps=10, precision=precision)
    rough = engine.run(content, [style], options).records[-1].tv
    smooth = engine.run(content, [style], options.replace(tv_weight=50.0)).records[-1].tv
    assert smooth < 0.7 * rough


def test_tutorial_preset_runs_small(engine, content, style):
    """conv3_1 sits after two pools, so 16 px is enough for the tutorial preset."""
    result = engine.run(content, [style], TINY.replace(preset="tutorial", size=16, steps=2))
    assert result.size == (16, 16) and result.stop_reason == "done"


# --- progress callback and interruption --------------------------------------------------------


def test_callback(engine, content, style):
    seen = []

    def callback(progress):
        seen.append((progress.step, progress.total_steps, progress.scale, progress.n_scales))
        assert progress.record.step == progress.step
        preview = progress.preview()
        assert preview.size == (progress.record.width, progress.record.height) and preview.mode == "RGB"

    engine.run(content, [style], TINY.replace(steps=3), callback)
    assert seen == [(1, 3, 0, 1), (2, 3, 0, 1), (3, 3, 0, 1)]


def test_interrupt_keeps_the_current_image(engine, content, style):
    def callback(progress):
        if progress.step == 3:
            raise KeyboardInterrupt

    result = engine.run(content, [style], TINY.replace(size=64, scales=2, steps=8), callback)
    assert result.stop_reason == "interrupted"
    assert len(result.records) == 3
    assert result.image.size == (64, 64)  # the 32 px scale, brought up to the output size


# --- things that go wrong ---------------------------------------------------------------------


def test_divergence_at_first_step(engine, content, style):
    result = engine.run(content, [style], TINY.replace(style_weight=1e38))  # 1e38 · style overflows fp32
    assert result.stop_reason == "diverged" and result.records == []
    assert same_pixels(result.image, at_size(content, result.size))  # the start image, untouched
    assert result.image.size == (48, 48)


def test_huge_lr_is_contained_by_the_step_cap(engine, content, style):
    result = engine.run(content, [style], TINY.replace(lr=1e6))
    assert result.stop_reason == "done"
    assert all(math.isfinite(r.total) for r in result.records)


def test_pixel_limit(engine, content, style):
    with pytest.raises(BrushworkError, match="48x48 = 2,304 pixels is over the limit of 1,000.*--max-pixels"):
        engine.run(content, [style], TINY.replace(max_pixels=1000))
    assert engine.run(content, [style], TINY.replace(max_pixels=48 * 48, steps=1)).stop_reason == "done"


def test_too_small(engine, content, style):
    with pytest.raises(BrushworkError, match="16x16 is too small for layer relu5_1.*at least 32 px"):
        engine.run(content, [style], TINY.replace(size=16))
    sliver = Image.new("RGB", (400, 20), (128, 64, 32))
    with pytest.raises(BrushworkError, match="too small"):
        engine.run(sliver, [style], TINY)


@pytest.mark.parametrize(
    "error, message",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), r"out of memory on cpu at 48x48.*--size\D+36\b"),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory"),
         r"out of memory on cpu at 48x48; try --size 36 or smaller"),
    ],
)  # fmt: skip
def test_out_of_memory_names_a_size(engine, content, style, monkeypatch, error, message):
    def oom(*args, **kwargs):
        raise error

    monkeypatch.setattr(Engine, "features", oom)
    with pytest.raises(BrushworkError, match=message):
        engine.run(content, [style], TINY)


def test_wrong_engine(engine, content, style):
    short = Engine(device="cpu", layers=("relu2_1",))
    with pytest.raises(BrushworkError, match="cut from this engine"):
        short.run(content, [style], TINY)
    result = short.run(content, [style], TINY.replace(style_layers=("relu1_1",), content_layers=("relu2_1",), steps=1))
    assert result.stop_reason == "done"
    with pytest.raises(BrushworkError, match="max pooling, not avg"):
        engine.run(content, [style], TINY.replace(pooling="avg"))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"style_weight": -1.0}, "--style-weight must be finite and non-negative, got -1.0"),
        ({"style_weight": math.nan}, "--style-weight must be finite and non-negative, got nan"),
        ({"content_weight": math.inf}, "--content-weight must be finite and non-negative, got inf"),
        ({"tv_weight": -0.5}, "--tv-weight must be finite"),
        ({"style_layer_weights": (1.0, 1.0)}, "--style-layer-weights has 2 values for 5 style layers"),
        ({"style_layer_weights": (1.0, 1.0, math.nan, 1.0, 1.0)}, "--style-layer-weights must be finite"),
        ({"style_layer_weights": (0.0,) * 5}, "must not all be zero"),
        ({"style_weights": (1.0, 2.0)}, "--style-weights has 2 values for 1 style images"),
        ({"style_weights": (-1.0,)}, "--style-weights must be finite"),
        ({"style_weights": (0.0,)}, "must not all be zero"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
        ({"lr": 0.0}, "--lr must be a positive number"),
        ({"lr": math.nan}, "--lr must be a positive number"),
        ({"steps": 0}, "--steps must be at least 1"),
        ({"scales": 0}, "--scales must be at least 1"),
        ({"size": 0}, "--size must be positive"),
        ({"style_scale": -1.0}, "--style-scale must be a positive number"),
        ({"style_scale": math.inf}, "--style-scale must be a positive number"),
        ({"preserve_color": "sepia"}, "unknown color mode 'sepia'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"init": "/no/such/picture.png"}, "--init must be content, noise, fast or an image file"),
        ({"preset": "picasso"}, "unknown preset 'picasso'"),
        ({"style_layers": ("relu1_1", "relu9_1")}, "unknown style layer relu9_1; valid names are: conv1_1"),
    ],
)
def test_bad_options(engine, content, style, changes, message):
    """Refused by validate() and therefore by api.run(), before any work."""
    with pytest.raises(BrushworkError, match=re.escape(message)):
        Options(**changes).validate(1)
    with pytest.raises(BrushworkError, match=re.escape(message)):
        api.run(content, [style], TINY.replace(**changes), engine=engine)


def test_bad_engine_settings():
    with pytest.raises(BrushworkError, match="unknown device 'tpu'"):
        Engine(device="tpu")
    with pytest.raises(BrushworkError, match="unknown weights format 'keras'"):
        Engine(device="cpu", weights_format="keras")


def test_huge_seed(engine, content, style):
    with pytest.raises(BrushworkError, match="--seed"):
        api.run(content, [style], TINY.replace(seed=2**64), engine=engine)


def test_no_device_asked_for():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BrushworkError, match="no CUDA GPU is available"):
        Engine(device="cuda")


# --- the Python API -----------------------------------------------------------------------------


def test_stylize_paths_and_images(image_files, content, style, plain):
    steps = []
    out = brushwork.stylize(image_files["content"], image_files["style"], callback=lambda p: steps.append(p.step),
                            size=48, steps=5, device="cpu")
    assert isinstance(out, Image.Image) and same_pixels(out, plain.image)  # same as the engine, from files
    assert steps == [1, 2, 3, 4, 5]
    out = brushwork.stylize(content, (style, style), size=48, steps=1, device="cpu")  # PIL images, a tuple
    assert out.size == (48, 48)


def test_stylize_errors(image_files, tmp_path):
    with pytest.raises(BrushworkError, match="unknown option\\(s\\): colour, stpes"):
        brushwork.stylize(image_files["content"], image_files["style"], stpes=3, colour="none")
    with pytest.raises(BrushworkError, match="image not found"):
        brushwork.stylize(tmp_path / "missing.png", image_files["style"], size=48, steps=1, device="cpu")
    with pytest.raises(BrushworkError, match="at least one style image"):
        brushwork.stylize(image_files["content"], [], size=48, steps=1, device="cpu")


def test_stylize_warns_on_divergence(image_files):
    with pytest.warns(UserWarning, match="diverged"):
        out = brushwork.stylize(image_files["content"], image_files["style"], size=48, steps=1, device="cpu",
                                style_weight=1e38)
    assert out.size == (48, 48)


def test_stylize_raises_on_interrupt(image_files):
    def stop(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        brushwork.stylize(image_files["content"], image_files["style"], callback=stop, size=48, steps=3, device="cpu")
    result = brushwork.run(image_files["content"], image_files["style"], TINY.replace(steps=3), callback=stop)
    assert result.stop_reason == "interrupted" and result.image.size == (48, 48)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_IMAGES / "styles").is_dir(), reason="../shared/images is not present")
def test_real_painting(engine, content):
    painting = images.load_image(sorted((SHARED_IMAGES / "styles").iterdir())[0])
    painting.thumbnail((96, 96))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = engine.run(content, [painting], TINY)
    before = score(at_size(content, result.size), content, painting, engine)
    assert score(result.image, content, painting, engine).style < 0.5 * before.style
