"""Losses: each one goes down when optimized, Grams are size-invariant, styles blend."""

from __future__ import annotations

import pytest
import torch

from brushwork import images
from brushwork.losses import ContentLoss, StyleLoss, TVLoss, gram_matrix, relative_error

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
