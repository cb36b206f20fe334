"""The sliced loss's binned moments (sliced_tiles): groups and offsets, the ranks and targets
they give, the gradient they hand back, and the bins following the values."""

from __future__ import annotations

import torch

from brushwork.sliced import Quantiles, SlicedWassersteinLoss
from brushwork.sliced_tiles import BinnedError, BinnedMoments, Grid, residual_terms
from brushwork.tiles import margin_for, tiles


def test_values_fall_in_their_bins_or_the_groups_below_and_above():
    grid = Grid(torch.zeros(1, 1), torch.ones(1, 1), positions=10)
    values = torch.tensor([[-0.5, 0.0, 0.5, 0.9999, 1.5]])
    index, offset = grid.place(values)
    assert index[0, 0] == 0 and index[0, -1] == grid.bins + 1
    assert 1 <= index[0, 1:4].min() and index[0, 1:4].max() <= grid.bins
    # every value is its group's lower edge plus its offset, in bin widths
    base = (index - 1).clamp(0, grid.bins)
    assert torch.allclose(grid.low + (base + offset) / grid.scale, values, atol=1e-5)


def loss_from_moments(projected: torch.Tensor, quantiles: Quantiles, grid: Grid) -> torch.Tensor:
    """Σ residual² of 1×M×P projections, through the moments (directions: the identity)."""
    features = projected.reshape(1, projected.shape[1], -1, 1)
    moments = BinnedMoments.apply(features, torch.eye(projected.shape[1]), grid)
    a, c = residual_terms(moments[0].detach(), grid, quantiles.read)
    return BinnedError.apply(moments, a, c)


def test_values_alone_in_their_bins_get_a_sorts_targets():
    """Few values over many bins: each alone in its bin, ranked exactly, and given the style's
    quantile at its mid-rank, as the sort gives it."""
    g = torch.Generator().manual_seed(1)
    spread = torch.linspace(-2, 2, 200) + torch.rand(3, 200, generator=g) * 0.01  # 200 values, 4096 bins
    projected = spread.gather(-1, torch.rand(3, 200, generator=g).argsort(-1)).unsqueeze(0)
    quantiles = Quantiles(torch.randn(1, 3, 1000, generator=g))
    grid = Grid(projected[0].amin(-1, keepdim=True), projected[0].amax(-1, keepdim=True), positions=200)
    targets, _ = quantiles.at(200)
    order = projected.argsort(-1)
    exact = (projected - torch.empty_like(projected).scatter_(-1, order, targets)).square().sum()
    assert abs(float(loss_from_moments(projected, quantiles, grid)) / float(exact) - 1) < 1e-4


def test_the_gradient_is_each_values_residual_with_the_targets_held():
    g = torch.Generator().manual_seed(2)
    projected = (torch.randn(1, 2, 5000, generator=g) * 3).requires_grad_(True)
    quantiles = Quantiles(torch.randn(1, 2, 800, generator=g))
    grid = Grid(projected[0].detach().amin(-1, keepdim=True), projected[0].detach().amax(-1, keepdim=True), 5000)
    loss_from_moments(projected, quantiles, grid).backward()
    index, offset = grid.place(projected[0].detach())
    features = projected.detach().reshape(1, 2, -1, 1)
    moments = BinnedMoments.apply(features, torch.eye(2), grid)
    a, c = residual_terms(moments[0], grid, quantiles.read)
    residual = a.gather(-1, index) + c.gather(-1, index) * offset
    assert torch.allclose(projected.grad[0], 2 * residual, rtol=1e-4, atol=1e-4)


def test_the_bins_follow_the_values_from_one_evaluation_to_the_next(engine):
    """The first evaluation bins over the style's range, where an output's values need not lie
    (some fall in the groups below and above); the next one over the range they took."""
    g = torch.Generator().manual_seed(3)
    style = {"relu1_1": SlicedWassersteinLoss.statistics(torch.rand(1, 64, 20, 24, generator=g) * 0.1)}
    loss = SlicedWassersteinLoss(style, {"relu1_1": 1.0}, seed=0)
    image = torch.rand(1, 3, 64, 64, generator=g)
    positions = {"relu1_1": 64 * 64}
    grid = tiles(64, 64, 32, margin_for(("relu1_1",)))
    outside = []
    for _ in range(2):
        with torch.no_grad():
            moments = sum(loss.tile_statistics(t, engine.features(t.take(image), ("relu1_1",), torch.float32),
                                               positions)["relu1_1"] for t in grid)
        outside.append(float(moments[0][:, [0, -1]].sum()))
        loss.compare({"relu1_1": moments})
    assert outside[0] > 0 and outside[1] == 0
