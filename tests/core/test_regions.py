"""regions.py: the style term of a masked run (one guided loss per region, shares summing to
1), its tiled evaluation, and the picture composed through the mask."""

from __future__ import annotations

import functools

import pytest
import torch

import brushwork
from brushwork import masks, regions, tiles
from brushwork.losses import STYLE_LOSSES, gram_matrix
from brushwork.objective import Objective, TiledObjective, content_loss_for, tiled_grams
from brushwork.options import Options
from brushwork.run_description import RunDescription


def test_a_full_region_is_the_unmasked_loss(engine, style):
    """One region over everything is exactly the loss without masks, value and gradient."""
    layers = ("relu1_1", "relu2_1", "relu3_1")
    x = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    for name, kind in STYLE_LOSSES.items():
        with torch.no_grad():
            stats = {n: kind.statistics(f) for n, f in engine.features(brushwork.images.to_tensor(style), layers,
                                                                       torch.float32).items()}
        options = RunDescription.from_options(Options(style_layers=layers, style_loss=name), 1)
        run_masks = regions.RunMasks(torch.ones(1, 1, 48, 40), None, [None])
        term = run_masks.style_term(options, [stats], 0, (40, 48), torch.device("cpu"))
        plain = kind.build([stats], [1.0], dict.fromkeys(layers, 1.0), hash((0, 0)))  # seed 0, the first scale
        values, grads = [], []
        for loss in (term, plain):
            y = x.clone().requires_grad_(True)
            value = loss(engine.features(y, layers, torch.float32))
            value.backward()
            values.append(float(value.detach()))
            grads.append(y.grad)
        assert values[0] == pytest.approx(values[1], rel=1e-5), name
        assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 1e-4, name


@pytest.mark.parametrize("loss", ["gram", "meancov", "sliced"])
def test_tiled_equals_whole_with_masks(engine, style, style2, loss):
    """Gram and meancov exactly; sliced within its bins' interpolation (sliced_tiles), from
    its second evaluation on (the first bins over the style's range)."""
    width, height = 208, 160
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2")
    options = RunDescription.from_options(Options(style_layers=layers[:4], content_layers=layers[4:], style_loss=loss), 2)
    features = functools.partial(engine.features, layers=layers, dtype=torch.float32)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        content = torch.rand(1, 3, height, width, generator=generator)
        statistics = STYLE_LOSSES[loss].statistics
        targets = [{n: statistics(f) for n, f in engine.features(
            brushwork.images.to_tensor(s.resize((96, 80))), layers[:4], torch.float32).items()}
            for s in (style, style2)]
        content_targets = engine.features(content, layers[4:], torch.float32)
    ramp = torch.linspace(0, 1, width).expand(1, 1, height, width)  # soft, overlapping regions
    run_masks = regions.RunMasks(torch.rand(1, 1, height, width, generator=generator), [1 - ramp, ramp], [None, None])
    x = torch.rand(1, 3, height, width, generator=generator)
    results = []
    for grid in (None, tiles.tiles(width, height, 64, tiles.margin_for(layers))):
        term = run_masks.style_term(options, targets, 0, (width, height), torch.device("cpu"))
        inner = (Objective(features, content_loss_for(options, content_targets), term, (1.0, 5.0, 0.1)) if grid is None
                 else TiledObjective(features, content_loss_for(options, content_targets), term, (1.0, 5.0, 0.1),
                                     tiles=grid))
        objective = regions.KeepContent(inner, run_masks.picture_mask((width, height)), content)
        for _ in range(1 if grid is None else 2):
            y = x.clone().requires_grad_(True)
            terms = objective(y)
        results.append((terms, y.grad.clone()))
    (whole, whole_grad), (tiled, tiled_grad) = results
    exact = loss != "sliced"
    assert torch.allclose(tiled, whole, rtol=1e-4 if exact else 2e-3)
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() <= (1e-3 if exact else 1e-2)


def test_weighted_tiled_style_targets_match_the_whole_image(engine, style):
    layers = ("relu1_1", "relu3_1")
    features = functools.partial(engine.features, layers=layers, dtype=torch.float32)
    image = torch.rand(1, 3, 160, 208, generator=torch.Generator().manual_seed(5))
    weights = masks.layer_maps(torch.rand(1, 1, 160, 208, generator=torch.Generator().manual_seed(6)), layers)
    grid = tiles.tiles(208, 160, 64, tiles.margin_for(layers))
    with torch.no_grad():
        whole = features(image)
    for name, g in tiled_grams(features, image, layers, grid, gram_matrix, weights).items():
        assert torch.allclose(g, gram_matrix(whole[name], None, weights[name]), rtol=1e-4, atol=1e-6), name


def test_styles_given_the_same_mask_share_a_region():
    left, right = torch.zeros(1, 1, 4, 6), torch.zeros(1, 1, 4, 6)
    left[..., :3], right[..., 3:] = 1, 1
    run_masks = regions.RunMasks(torch.ones(1, 1, 4, 6), [left, right, left.clone()], [None] * 3)
    groups = run_masks.groups()
    assert [members for members, _ in groups] == [[0, 2], [1]]
    assert torch.equal(groups[0][1], left) and torch.equal(groups[1][1], right)
    assert [members for members, _ in regions.RunMasks(torch.ones(1, 1, 4, 6), None, [None] * 2).groups()] == [[0, 1]]


def test_the_picture_mask_is_the_mask_times_the_covered_regions():
    where = torch.full((1, 1, 4, 6), 0.5)
    left = torch.zeros(1, 1, 4, 6)
    left[..., :2] = 1
    both = regions.RunMasks(where, [left, left], [None, None]).picture_mask((6, 4))
    assert torch.equal(both, where * left)  # two styles on one place do not paint it twice
    assert torch.equal(regions.RunMasks(where, None, [None]).picture_mask((6, 4)), where)


def test_region_shares_follow_the_style_weights_and_empty_regions_count_nothing():
    stats = {"relu1_1": torch.eye(3)[None]}
    left, right = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    left[..., :4], right[..., 4:] = 1, 1
    options = RunDescription.from_options(Options(style_layers=("relu1_1",), style_weights=(1.0, 3.0, 2.0)), 3)
    nowhere = torch.zeros(1, 1, 8, 8)
    run_masks = regions.RunMasks(torch.ones(1, 1, 8, 8), [left, right, nowhere], [None] * 3)
    term = run_masks.style_term(options, [stats] * 3, 0, (8, 8), torch.device("cpu"))
    assert [r.share for r in term.regions] == [0.25, 0.75]
    empty = regions.RunMasks(torch.zeros(1, 1, 8, 8), None, [None])
    alone = RunDescription.from_options(Options(style_layers=("relu1_1",)), 1)
    zero = empty.style_term(alone, [stats], 0, (8, 8), torch.device("cpu"))
    features = {"relu1_1": torch.rand(1, 3, 8, 8, requires_grad=True)}
    value = zero(features)
    value.backward()
    assert float(value) == 0.0 and torch.equal(features["relu1_1"].grad, torch.zeros(1, 3, 8, 8))


def test_black_pixels_are_the_contents_and_gray_ones_partway():
    content, x = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[0.0, 1.0], [0.5, 0.25]])[None, None]
    assert torch.equal(regions.compose(x, content, mask), mask.expand(1, 3, 2, 2))

    def inner(picture: torch.Tensor) -> torch.Tensor:
        (picture * torch.arange(12.0).reshape(1, 3, 2, 2)).sum().backward()
        return torch.zeros(4)

    inner.graphable = False
    y = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)
    regions.KeepContent(inner, mask, content)(y)
    assert torch.equal(y.grad, torch.arange(12.0).reshape(1, 3, 2, 2) * mask)  # the chain rule through the mask
