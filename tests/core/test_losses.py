"""Losses: each one goes down when optimized, Grams and the other style statistics are
size-invariant, styles blend (for the sliced loss: as a mixture of their samples)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brushwork import images
from brushwork.losses import (
    ContentLoss,
    MeanCovLoss,
    SlicedWassersteinLoss,
    StyleLoss,
    TVLoss,
    gram_matrix,
    relative_error,
)
from brushwork.sliced import sorting_order

FP32 = torch.float32


def optimize(loss_of, start: torch.Tensor, steps: int = 10) -> list[float]:
    """Run L-BFGS on the image and return the loss before each step."""
    x = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x], max_iter=1, history_size=20)
    history = []

    def closure():
        optimizer.zero_grad()
        loss = loss_of(x)
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return history


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_content_loss_decreases(engine, content, noise):
    layers = ("relu2_2",)
    target = images.resize(images.to_tensor(content), (32, 32))
    loss = ContentLoss(engine.features(target, layers, FP32), {"relu2_2": 1.0})
    history = optimize(lambda x: loss(engine.features(x, layers, FP32)), noise)
    assert history[-1] < 0.5 * history[0]
    assert float(loss(engine.features(target, layers, FP32))) == 0.0


def test_style_loss_decreases(engine, style, noise):
    layers = ("relu1_1", "relu2_1")
    target = images.resize(images.to_tensor(style), (32, 32))
    grams = {name: gram_matrix(f) for name, f in engine.features(target, layers, FP32).items()}
    loss = StyleLoss(grams, {"relu1_1": 1.0, "relu2_1": 1.0})
    history = optimize(lambda x: loss(engine.features(x, layers, FP32)), noise)
    assert history[-1] < 0.5 * history[0]


def test_tv_loss_decreases(noise):
    history = optimize(TVLoss(), noise)
    assert history[-1] < 0.1 * history[0]
    assert float(TVLoss()(torch.full((1, 3, 8, 8), 0.3))) == 0.0


def test_tv_loss_is_a_mean():
    """Same texture, twice the size: same TV (no dependence on the pixel count)."""
    stripes = (torch.arange(16) % 2).float().expand(1, 3, 16, 16)
    bigger = stripes.repeat(1, 1, 2, 2)
    assert float(TVLoss()(stripes)) == pytest.approx(float(TVLoss()(bigger)), rel=0.05)


@pytest.mark.parametrize("wrap", [False, True])
def test_tv_value_and_gradient_are_those_of_its_formula(wrap):
    """TotalVariation computes one channel at a time by hand; autograd through the plain
    formula (mean squared neighbour differences, cyclic with wrap) must agree."""
    x = torch.rand(2, 3, 21, 34, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    TVLoss(wrap)(x).backward()
    ours, x.grad = x.grad, None
    if wrap:
        formula = (x.roll(-1, -1) - x).pow(2).mean() + (x.roll(-1, -2) - x).pow(2).mean()
    else:
        formula = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean() + (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    formula.backward()
    assert float(TVLoss(wrap)(x)) == pytest.approx(float(formula), rel=1e-6)
    torch.testing.assert_close(ours, x.grad, rtol=1e-5, atol=1e-9)


TV_MEMORY = """
import re, sys, torch
from pathlib import Path
from brushwork.losses import TVLoss
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
x = torch.rand(1, 3, 2048, 4096).requires_grad_(True)
x.grad = torch.zeros_like(x)
Path("/proc/self/clear_refs").write_text("5")  # the high-water mark from here on
before = status("VmRSS")
TVLoss(sys.argv[1] == "wrap")(x).backward()
print((status("VmHWM") - before) / (x.numel() * 4))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
@pytest.mark.parametrize("wrap", ["plain", "wrap"])
def test_tv_holds_about_two_image_sized_vectors(wrap):
    """The tiled objective evaluates TV over the whole image after its tiles: at 7680×7680 an
    image-sized vector is 0.66 GiB, and autograd's TV held six (measured), which the memory
    plan did not count. Ours holds its gradient and one channel's differences."""
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}  # freed vectors leave RSS
    out = subprocess.run([sys.executable, "-c", TV_MEMORY, wrap], capture_output=True, text=True, check=True,
                         env=environment)
    assert float(out.stdout.split()[-1]) <= 2.5


ENERGY_MEMORY = """
import re, torch
from pathlib import Path
from brushwork.losses import ContentLoss
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
target = torch.rand(1, 512, 480, 480).to(torch.bfloat16)
loss = ContentLoss({"relu4_2": target}, {"relu4_2": 1.0})
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
energy = float(loss.energy("relu4_2"))
held = (status("VmHWM") - before) / (target.numel() * 2)
print(abs(energy / float(target.double().pow(2).sum()) - 1), held)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_the_content_targets_energy_is_summed_without_widening_the_whole_map():
    """A tiled run divides each tile's content error by the whole target's energy, computed
    once. Widened and squared at once, a bf16 target took two fp32 copies of itself: 3.5 GiB
    at 7680×7680, the peak of that run (measured), counted nowhere in the memory plan."""
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    out = subprocess.run([sys.executable, "-c", ENERGY_MEMORY], capture_output=True, text=True, check=True,
                         env=environment)
    error, held = map(float, out.stdout.split())
    assert error < 1e-5
    assert held < 0.5  # in bf16 targets' bytes; widening it whole held 4


def test_gram_is_size_invariant(engine, style):
    """The same texture tiled 2×2 and 4×4: Gram matrices agree (they would differ 4× unnormalized)."""
    tile = images.resize(images.to_tensor(style), (32, 32))
    layers = ("relu1_1", "relu2_1", "relu3_1")
    small = engine.features(tile.repeat(1, 1, 2, 2), layers, FP32)
    large = engine.features(tile.repeat(1, 1, 4, 4), layers, FP32)
    for name in layers:
        g_small, g_large = gram_matrix(small[name]), gram_matrix(large[name])
        assert float(relative_error(g_large, g_small)) < 0.1, name  # borders differ a little
        positions_small = small[name].shape[-1] * small[name].shape[-2]
        positions_large = large[name].shape[-1] * large[name].shape[-2]
        assert float(relative_error(g_large * positions_large, g_small * positions_small)) > 1


def test_gram_matrix_shape_and_value():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H·W=2
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / 2
    torch.testing.assert_close(gram_matrix(features)[0], expected)
    assert gram_matrix(features.bfloat16()).dtype == torch.float32


def test_relative_error_is_scale_free():
    target = torch.rand(4, 4, generator=torch.Generator().manual_seed(3))
    value = target * 1.1
    assert float(relative_error(value, target)) == pytest.approx(0.01, rel=1e-4)
    assert float(relative_error(1000 * value, 1000 * target)) == pytest.approx(0.01, rel=1e-4)


def test_style_blend():
    a = {"relu1_1": torch.ones(1, 2, 2)}
    b = {"relu1_1": torch.full((1, 2, 2), 5.0)}
    blended = StyleLoss.blend([a, b], [1.0, 3.0])  # weights need not sum to 1
    torch.testing.assert_close(blended["relu1_1"], torch.full((1, 2, 2), 4.0))
    assert torch.equal(StyleLoss.blend([a, b], [1.0, 0.0])["relu1_1"], a["relu1_1"])


def test_layer_weights_are_normalized():
    targets = {"a": torch.ones(1, 2, 2), "b": torch.full((1, 2, 2), 2.0)}
    features = {"a": torch.ones(1, 2, 1, 1), "b": torch.ones(1, 2, 1, 1)}
    equal = StyleLoss(targets, {"a": 1.0, "b": 1.0})(features)
    assert float(StyleLoss(targets, {"a": 7.0, "b": 7.0})(features)) == pytest.approx(float(equal))
    only_b = StyleLoss(targets, {"a": 0.0, "b": 2.0})(features)
    assert float(only_b) == pytest.approx(float(relative_error(gram_matrix(features["b"]), targets["b"])))
    assert float(only_b) != pytest.approx(float(equal))


# --- the style losses: gram, meancov, sliced ------------------------------------------------

KINDS = [StyleLoss, MeanCovLoss, SlicedWassersteinLoss]
LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def style_loss(kind, targets: dict[str, torch.Tensor], layers=LAYERS):
    return kind(kind.blend([targets], [1.0]), dict.fromkeys(layers, 1.0))


def statistics(kind, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: kind.statistics(f) for name, f in features.items()}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_style_loss_is_zero_on_the_style_itself(engine, style, kind):
    target = images.resize(images.to_tensor(style), (40, 32))
    features = engine.features(target, LAYERS, FP32)
    loss = style_loss(kind, statistics(kind, features))
    assert float(loss(features)) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(engine.features(target * 0.5, LAYERS, FP32))) > 0.5  # the style, darker


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_style_loss_falls_under_lbfgs(engine, style, noise, kind):
    layers = ("relu1_1", "relu2_1")
    target = images.resize(images.to_tensor(style), (32, 32))
    loss = style_loss(kind, statistics(kind, engine.features(target, layers, FP32)), layers)
    history = optimize(lambda x: loss(engine.features(x, layers, FP32)), noise)
    assert history[-1] < 0.5 * history[0]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_style_loss_is_size_invariant(engine, style, content, kind):
    """An output four times the style's area, of the same texture, is as close to it as the
    style itself is (borders aside); a different picture at that size is far."""
    tile = images.resize(images.to_tensor(style), (32, 32))
    loss = style_loss(kind, statistics(kind, engine.features(tile.repeat(1, 1, 2, 2), LAYERS, FP32)))
    same_texture = float(loss(engine.features(tile.repeat(1, 1, 4, 4), LAYERS, FP32)))
    other = float(loss(engine.features(images.resize(images.to_tensor(content), (128, 128)), LAYERS, FP32)))
    assert same_texture < 0.05 and other > 20 * same_texture


def test_meancov_blend_is_the_mixtures_mean_and_covariance():
    generator = torch.Generator().manual_seed(4)
    a, b = torch.rand(1, 3, 4, 5, generator=generator), torch.rand(1, 3, 4, 5, generator=generator) + 1
    blended = MeanCovLoss.blend([{"x": MeanCovLoss.statistics(a)}, {"x": MeanCovLoss.statistics(b)}], [1.0, 3.0])
    mixture = torch.cat([a, b, b, b], -1)  # one part a, three parts b
    torch.testing.assert_close(blended["x"], MeanCovLoss.statistics(mixture))
    loss = MeanCovLoss(blended, {"x": 1.0})
    assert float(loss({"x": mixture})) == pytest.approx(0.0, abs=1e-5)
    assert float(loss({"x": a})) > 0.1


def test_sliced_blend_is_the_mixture_of_the_styles_samples():
    """Weights 1 and 3: the samples of a once and of b three times; a style's weight, not its
    number of positions, decides its share; a weight of 0 leaves it out."""
    generator = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 4, 8, 8, generator=generator), torch.rand(1, 4, 8, 8, generator=generator) + 1
    stats = [{"x": SlicedWassersteinLoss.statistics(f)} for f in (a, b)]
    loss = SlicedWassersteinLoss(SlicedWassersteinLoss.blend(stats, [1.0, 3.0]), {"x": 1.0})
    assert float(loss({"x": torch.cat([a, b, b, b], -1)})) < 1e-3
    assert float(loss({"x": torch.cat([a, b], -1)})) > 0.01
    bigger_b = {"x": SlicedWassersteinLoss.statistics(b.repeat(1, 1, 2, 2))}
    same = SlicedWassersteinLoss(SlicedWassersteinLoss.blend([stats[0], bigger_b], [1.0, 3.0]), {"x": 1.0})
    assert float(same({"x": torch.cat([a, b, b, b], -1)})) < 1e-3
    only_a = SlicedWassersteinLoss(SlicedWassersteinLoss.blend(stats, [1.0, 0.0]), {"x": 1.0})
    assert float(only_a({"x": a})) == pytest.approx(0.0, abs=1e-6)


def test_sliced_directions_follow_the_seed():
    generator = torch.Generator().manual_seed(6)
    target = {"x": torch.rand(1, 6, 50, generator=generator)}
    output = {"x": torch.rand(2, 6, 7, 9, generator=generator)}  # a batch of two, another size
    first, again = (SlicedWassersteinLoss(target, {"x": 1.0}, seed=1) for _ in range(2))
    other = SlicedWassersteinLoss(target, {"x": 1.0}, seed=2)
    assert torch.equal(first.directions["x"], again.directions["x"])
    assert not torch.equal(first.directions["x"], other.directions["x"])
    assert float(first(output)) == float(again(output))
    assert float(first(output)) == pytest.approx(float(other(output)), rel=0.5)  # other directions, a similar distance


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sorting_order(threads):
    """Whatever the rows' split among threads, every row is sorted (N×M×P, as the loss calls it)."""
    values = torch.rand(2, 5, 1000, generator=torch.Generator().manual_seed(7))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert torch.equal(values.gather(-1, sorting_order(values)), values.sort(-1).values)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_style_loss_measures_bf16_features_in_fp32(engine, style, content, kind):
    target = images.resize(images.to_tensor(style), (40, 32))
    loss = style_loss(kind, statistics(kind, engine.features(target, LAYERS, torch.bfloat16)))
    picture = images.resize(images.to_tensor(content), (40, 32))
    low, full = loss(engine.features(picture, LAYERS, torch.bfloat16)), loss(engine.features(picture, LAYERS, FP32))
    assert low.dtype == torch.float32 and float(low) == pytest.approx(float(full), rel=0.05)


def test_gram_backward_is_exact():
    from brushwork.losses import gram_matrix

    features = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: gram_matrix(f.float()).double(), (features,), eps=1e-3, atol=1e-3)
    # and against plain autograd, in fp32
    f = torch.randn(1, 8, 6, 7, requires_grad=True)
    weights = torch.randn(1, 8, 8)
    (gram_matrix(f) * weights).sum().backward()
    ours = f.grad.clone()
    f.grad = None
    flat = f.reshape(1, 8, 42)
    ((flat @ flat.transpose(1, 2) / 42) * weights).sum().backward()
    torch.testing.assert_close(ours, f.grad)


def test_the_weighted_gram_gradient():
    features = torch.rand(1, 4, 5, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64,
                          requires_grad=True)
    weights = torch.rand(1, 1, 5, 6, generator=torch.Generator().manual_seed(9))
    assert torch.autograd.gradcheck(lambda f: gram_matrix(f, None, weights).double(), (features,), eps=1e-3, atol=1e-3)
    assert torch.allclose(gram_matrix(features, None, torch.ones(1, 1, 5, 6)), gram_matrix(features), rtol=1e-6)
    assert torch.allclose(gram_matrix(features, None, weights), gram_matrix(features * weights.sqrt(), weights.sum()),
                          rtol=1e-5)
