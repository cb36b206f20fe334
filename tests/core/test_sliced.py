"""The sliced loss's ranks: histograms for long directions agree with a full sort within the
bound the docs give (J to 1e-3 of itself, gradient cosine 0.999), on random data and on a
picture's features, with and without a region's weights; equal values stay finite."""

from __future__ import annotations

import pytest
import torch

from brushwork import images, sliced
from brushwork.sliced import Quantiles, SlicedWassersteinLoss, ranked_residuals, sorting_order
from brushwork.style_terms import SCALE_ERROR

LONG = 3 * sliced.SORTED_UP_TO  # positions per direction: ranked by a histogram


def sorted_targets(projected: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """The definition: the k-th smallest value's target is the k-th quantile."""
    return torch.empty_like(projected).scatter_(-1, sorting_order(projected), quantiles.expand_as(projected))


def agreement(approximate: torch.Tensor, exact: torch.Tensor, weights: torch.Tensor | None = None):
    """Σ w r²'s relative difference and the cosine of the two residual vectors."""
    w = torch.ones(()) if weights is None else weights
    a, e = (w * approximate.double() ** 2).sum(), (w * exact.double() ** 2).sum()
    cosine = torch.nn.functional.cosine_similarity((w * approximate).double().flatten(),
                                                   (w * exact).double().flatten(), 0)
    return float((a - e).abs() / e), float(cosine)


DRAWS = {
    "normal": lambda g, shape: torch.randn(shape, generator=g),
    "skewed": lambda g, shape: torch.randn(shape, generator=g).mul(0.5).exp(),
    "long tails": lambda g, shape: (torch.empty(shape).exponential_(generator=g)
                                    * torch.randn(shape, generator=g).sign()),  # Laplace
    "two peaks": lambda g, shape: torch.randn(shape, generator=g) * 0.2 + 3 * (torch.rand(shape, generator=g) > 0.7),
}


@pytest.mark.parametrize("draw", DRAWS.values(), ids=DRAWS.keys())
def test_histogram_ranks_agree_with_a_sort(draw):
    g = torch.Generator().manual_seed(11)
    style = Quantiles(torch.randn(1, 4, 5000, generator=g) * 2 + 1)
    quantiles, _ = style.at(LONG)
    projected = draw(g, (2, 4, LONG))
    exact = projected - sorted_targets(projected, quantiles)
    relative, cosine = agreement(ranked_residuals(projected, quantiles), exact)
    assert relative <= 1e-3 and cosine >= 0.999


def test_weighted_histogram_ranks_agree_with_the_weighted_sort():
    """A soft region (weights in [0, 1], a third of them 0): the same weighted mid-ranks."""
    g = torch.Generator().manual_seed(12)
    quantiles, _ = Quantiles(torch.randn(1, 3, 4000, generator=g)).at(LONG)
    projected = torch.randn(1, 3, LONG, generator=g) * 3
    weights = (torch.rand(LONG, generator=g) * 1.5 - 0.5).clamp(0, 1)
    exact = sliced.sorted_residuals(projected[0], quantiles[0], weights)
    relative, cosine = agreement(ranked_residuals(projected, quantiles, weights)[0], exact, weights)
    assert relative <= 1e-3 and cosine >= 0.999
    unweighted = ranked_residuals(projected, quantiles)
    assert torch.allclose(ranked_residuals(projected, quantiles, torch.ones(LONG)), unweighted, atol=1e-5)


def test_equal_values_share_one_target_within_the_styles_range():
    quantiles, _ = Quantiles(torch.linspace(-2, 5, 1000).reshape(1, 1, -1)).at(LONG)
    projected = torch.full((1, 1, LONG), 0.25)
    targets = projected - ranked_residuals(projected, quantiles)
    assert torch.isfinite(targets).all() and targets.min() == targets.max()
    assert -2 <= float(targets[0, 0, 0]) <= 5


def test_the_loss_and_its_gradient_agree_with_a_sort_on_a_picture(engine, content, style, monkeypatch):
    """relu1_1 of a 192×160 picture has 30720 positions: ranked by a histogram (the other
    layers are sorted), its loss and gradient in the image against sorting everything."""
    layers = ("relu1_1", "relu2_1", "relu3_1")
    with torch.no_grad():
        targets = engine.features(images.resize(images.to_tensor(style), (160, 128)), layers, torch.float32)
    loss = SlicedWassersteinLoss({n: SlicedWassersteinLoss.statistics(f) for n, f in targets.items()},
                                 dict.fromkeys(layers, 1.0), seed=3)
    picture = images.resize(images.to_tensor(content), (192, 160))

    def value_and_gradient() -> tuple[float, torch.Tensor]:
        x = picture.clone().requires_grad_(True)
        value = loss(engine.features(x, layers, torch.float32))
        value.backward()
        return float(value.detach()), x.grad.double().flatten()

    histogram, histogram_gradient = value_and_gradient()
    monkeypatch.setattr(sliced, "SORTED_UP_TO", LONG * 100)
    exact, exact_gradient = value_and_gradient()
    assert abs(histogram - exact) <= 1e-3 * exact
    assert torch.nn.functional.cosine_similarity(histogram_gradient, exact_gradient, 0) >= 0.999


def test_the_loss_of_features_is_the_squared_error_of_their_projections():
    """The loss's one function takes features (channels-last, like the network's) and hands them
    their gradient itself: the same value and gradient as autograd's product and squared
    error of their projections against the ranks' targets."""
    g = torch.Generator().manual_seed(13)
    target = {"x": SlicedWassersteinLoss.statistics(torch.rand(1, 5, 200, 180, generator=g))}
    loss = SlicedWassersteinLoss(target, {"x": 1.0}, seed=2)
    features = torch.rand(1, 5, 180, 200, generator=g).contiguous(memory_format=torch.channels_last)
    direct = features.clone().requires_grad_(True)
    value = loss({"x": direct})
    value.backward()
    via = features.clone().requires_grad_(True)
    projected = loss.directions["x"] @ via.flatten(2)
    quantiles, energy = loss.targets["x"].at(180 * 200)
    assert sliced.SORTED_UP_TO < 180 * 200  # the histogram's path
    targets = projected.detach() - ranked_residuals(projected.detach(), quantiles)
    reference = SCALE_ERROR * (projected - targets).square().sum() / energy
    reference.backward()
    assert float(value) == pytest.approx(float(reference), rel=1e-5)
    assert torch.allclose(direct.grad, via.grad, rtol=1e-4, atol=1e-7)

def test_a_large_style_is_thinned_to_a_stride_that_keeps_its_quantiles(monkeypatch):
    monkeypatch.setattr(sliced, "STYLE_VALUES", 1 << 14)
    g = torch.Generator().manual_seed(3)
    features = torch.randn(1, 8, 100, 100, generator=g).cumsum(-1) / 10  # smooth along rows, as features are
    weights = torch.rand(100, 100, generator=g)
    kept = SlicedWassersteinLoss.statistics(features)
    kept_samples, kept_weights = SlicedWassersteinLoss.statistics(features, None, weights)
    assert kept.shape[-1] * 8 <= 1 << 14 < features.numel() and kept_samples.shape == kept.shape
    assert kept_weights.shape[-1] == kept.shape[-1]
    directions = torch.nn.functional.normalize(torch.randn(8, 8, generator=g), dim=1)
    whole, thin = (Quantiles(directions @ s) for s in (features.flatten(2), kept))
    spread = (whole.at(500)[0].amax() - whole.at(500)[0].amin()).item()
    assert (whole.at(500)[0] - thin.at(500)[0]).abs().max().item() < 0.05 * spread
