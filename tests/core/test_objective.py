"""objective.py: the style term a run builds, and the tiled evaluation, which is the whole-image
one (value and gradient) as long as the tiles' margins cover the receptive field."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from brushwork import tiles
from brushwork.engine import Engine
from brushwork.losses import STYLE_LOSSES, ContentLoss, MeanCovLoss, StyleLoss, gram_matrix
from brushwork.objective import (
    Objective,
    TiledObjective,
    cuda_graphed,
    style_loss_for,
    tiled_features,
    tiled_grams,
)
from brushwork.options import Options
from brushwork.presets import PRESETS
from brushwork.run_description import RunDescription
from brushwork.sliced import SlicedWassersteinLoss

GATYS, TUTORIAL = PRESETS["gatys"], PRESETS["tutorial"]
GATYS_LAYERS = GATYS.style_layers + GATYS.content_layers
LAYERS = ("relu1_1", "relu2_1")


def random_targets(kind, seed: int) -> dict:
    """A style's statistics for `kind`, from random features (no network needed)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: kind.statistics(torch.rand(1, 4, 6, 5, generator=generator)) for name in LAYERS}


@pytest.mark.parametrize("name", list(STYLE_LOSSES))
def test_each_style_loss_is_built_by_its_own_factory(name):
    """style_loss_for asks the --style-loss's kind to build the term: blended with the style
    weights, layers weighted as asked."""
    kind = STYLE_LOSSES[name]
    options = RunDescription.from_options(Options(style_loss=name, style_layers=LAYERS, style_weights=(1.0, 3.0),
                                                  style_layer_weights=(1.0, 3.0)), 2)
    term = style_loss_for(options, [random_targets(kind, 0), random_targets(kind, 1)])
    assert type(term) is kind and term.name == name and term.tileable == kind.tileable
    assert term.layer_weights == {"relu1_1": 0.25, "relu2_1": 0.75}
    features = {n: torch.rand(1, 4, 6, 5, generator=torch.Generator().manual_seed(2)) for n in LAYERS}
    assert float(term(features)) > 0
    only_second = style_loss_for(options.replace(style_weights=(0.0, 1.0)), [random_targets(kind, 0), random_targets(kind, 1)])
    alone = style_loss_for(options.replace(style_weights=(1.0,)), [random_targets(kind, 1)])
    assert float(only_second(features)) == pytest.approx(float(alone(features)), rel=1e-5)


def test_only_the_sliced_loss_draws_directions_per_scale_and_seed():
    features = {n: torch.rand(1, 4, 6, 5, generator=torch.Generator().manual_seed(2)) for n in LAYERS}
    for name, kind in STYLE_LOSSES.items():
        options = RunDescription.from_options(Options(style_loss=name, style_layers=LAYERS), 1)
        values = {float(style_loss_for(options.replace(seed=seed), [random_targets(kind, 0)], draw)(features))
                  for seed, draw in ((0, 0), (0, 1), (1, 0))}
        assert len(values) == (3 if name == "sliced" else 1), name


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


def test_tiled_sliced_loss_matches_the_whole_image(engine):
    """In tiles the sliced loss ranks from binned moments over the range the values took at the
    last evaluation (sliced_tiles): from the second evaluation on, value and gradient are the
    whole image's within the approximation (benchmarks/sliced.py measures it at 768×512); the
    first, binned over the style's range, is already close."""
    width, height = 200, 150
    features, content, _, layers = losses_for(engine, GATYS, width, height)
    with torch.no_grad():
        style = features(torch.rand(1, 3, 96, 112, generator=torch.Generator().manual_seed(3)))
    sliced = SlicedWassersteinLoss({n: SlicedWassersteinLoss.statistics(style[n]) for n in GATYS.style_layers},
                                   dict.fromkeys(GATYS.style_layers, 1.0), seed=4)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    grid = tiles.tiles(width, height, 48, tiles.margin_for(layers))
    assert len(grid) > 4
    whole_terms, whole_grad = evaluate(Objective(features, content, sliced, (1.0, 5.0, 0.1)), x)
    tiled = TiledObjective(features, content, sliced, (1.0, 5.0, 0.1), tiles=grid)
    for tolerance in (1e-2, 2e-3):
        tiled_terms, tiled_grad = evaluate(tiled, x)
        assert abs(tiled_terms[1] / whole_terms[1] - 1) <= tolerance
        assert abs(tiled_terms[3] / whole_terms[3] - 1) <= tolerance / 2
        cosine = torch.nn.functional.cosine_similarity(tiled_grad.double().flatten(), whole_grad.double().flatten(), 0)
        assert cosine.item() >= 0.9999
    assert ((tiled_grad - whole_grad).norm() / whole_grad.norm()).item() <= 5e-3


def test_a_style_image_run_in_tiles_gives_the_sliced_loss_all_its_samples(engine):
    """A style image larger than a tile: its tiles' samples are put side by side, not added."""
    kind = STYLE_LOSSES["sliced"]
    image = torch.rand(1, 3, 200, 150, generator=torch.Generator().manual_seed(5))
    whole = engine.style_grams(("sliced-whole",), image, LAYERS, torch.float32, None, kind.statistics, None, kind.gather)
    tiled = engine.style_grams(("sliced-tiled",), image, LAYERS, torch.float32, 48, kind.statistics, None, kind.gather)
    for name in LAYERS:
        assert tiled[name].shape == whole[name].shape
        assert torch.allclose(tiled[name].sort(-1).values, whole[name].sort(-1).values, atol=1e-4)


def test_too_small_a_margin_is_not_exact(engine):
    """The margin is what makes tiles exact: without it, the tiles' features are wrong."""
    features, content, style, _ = losses_for(engine, GATYS, 256, 208)
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


@pytest.mark.gpu
def test_cuda_graph_replay_recomputes_at_the_changed_image():
    engine = Engine(device="cuda")
    torch.manual_seed(0)
    content, style = torch.rand(2, 1, 3, 64, 64, device="cuda")
    with torch.no_grad():
        style_loss = StyleLoss({n: gram_matrix(f) for n, f in engine.features(style, GATYS_LAYERS[:5], torch.float32).items()},
                               dict.fromkeys(GATYS_LAYERS[:5], 1.0))  # fmt: skip
        content_loss = ContentLoss(engine.features(content, ("relu4_2",), torch.float32), {"relu4_2": 1.0})
    x = torch.rand(1, 3, 64, 64, device="cuda", requires_grad=True)

    def evaluate() -> torch.Tensor:
        x.grad = None
        feats = engine.features(x, GATYS_LAYERS, torch.bfloat16)
        loss = content_loss(feats) + 5 * style_loss(feats)
        loss.backward()
        return loss.detach()

    replay = cuda_graphed(evaluate, x)
    first = replay().clone()
    with torch.no_grad():
        x.mul_(0.5).add_(0.25)  # in place, as the optimizers change it
    replayed, replayed_grad = replay().clone(), x.grad.clone()
    eager, eager_grad = evaluate(), x.grad
    assert not torch.allclose(first, replayed)  # the graph really ran again, on the new pixels
    torch.testing.assert_close(replayed, eager, rtol=1e-3, atol=0)
    torch.testing.assert_close(replayed_grad, eager_grad, rtol=1e-3, atol=1e-7)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the process's RSS from Linux's /proc")
def test_a_tiled_evaluation_hands_back_the_heap_its_tiles_used(engine):
    """The tiles' smaller tensors come and go on malloc's heap, which would keep their pages
    through TV and the optimizer's update, which the plan counts as vectors alone. After the
    evaluations RSS must not have grown beyond the gradient: without the trim it grew by 60-90
    vectors here (266 MiB)."""
    width = height = 512
    features, content, style, layers = losses_for(engine, GATYS, width, height)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    tiled = TiledObjective(features, content, style, (1.0, 5.0, 0.1), tiles=tiles.tiles(width, height, 128,
                                                                                          tiles.margin_for(layers)))
    before = resident_bytes()
    for _ in range(2):
        evaluate(tiled, x)
    assert resident_bytes() - before <= 4 * x.numel() * 4  # the gradient, and a little slack


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096
