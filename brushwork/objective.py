"""The objective of one scale: given the image, the loss terms, with the gradient left in the image.

The engine's optimizer loop sees only this interface, `objective(x) -> [content, style, tv,
total]` with `x.grad` filled, so how the terms are computed (the whole image at once, or tile
by tile for outputs too large for memory) and which style term is used can change here
without touching the loop that steps the optimizer.
"""

from __future__ import annotations

from typing import Callable

import torch

from .devices import return_free_heap
from .errors import BrushworkError
from .losses import STYLE_LOSSES, ContentLoss, TVLoss, gram_matrix
from .run_description import RunDescription
from .style_terms import GuidedStyleTerm, StyleTerm, TileableStyleTerm
from .tiles import Tile, downsampling

Features = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def content_loss_for(run: RunDescription, targets: dict[str, torch.Tensor]) -> ContentLoss:
    """The content term of a run: its content layers, equally weighted."""
    return ContentLoss(targets, dict.fromkeys(run.content_layers, 1.0))


def style_loss_for(run: RunDescription, targets: list[dict[str, torch.Tensor]], draw: int = 0) -> GuidedStyleTerm:
    """The style term of a run (--style-loss): one set of targets per style image (the loss's
    `statistics`, from Engine.style_grams), blended with --style-weights, its layers weighted
    with --style-layer-weights. `draw` numbers the objectives of one run (its scales), so
    that the sliced loss draws other directions for each, from --seed."""
    style_weights = list(run.style_weights)
    layer_weights = dict(zip(run.style_layers, run.style_layer_weights))
    return STYLE_LOSSES[run.style_loss].build(targets, style_weights, layer_weights, hash((run.seed, draw)))


class Objective:
    """content_weight·content + style_weight·style + tv_weight·TV over the whole image at once."""

    graphable = True  # one evaluation can be recorded as a CUDA graph (cuda_graphed)

    def __init__(
        self,
        features: Features,
        content: ContentLoss,
        style: StyleTerm,
        weights: tuple[float, float, float],
        wrap: bool = False,
    ):
        """`features(x)` runs the network up to every layer the losses read; `weights` are the
        content, style and TV weights; `wrap`: the image is seamless (a torus)."""
        self.features, self.content, self.style, self.tv = features, content, style, TVLoss(wrap)
        self.weights = weights

    @classmethod
    def for_run(
        cls, run: RunDescription, features: Features, content: ContentLoss, style: StyleTerm, **more
    ) -> "Objective":
        """The objective of a run: its content, style and TV weights, wrapping if seamless."""
        weights = (run.content_weight, run.style_weight, run.tv_weight)
        return cls(features, content, style, weights, run.seamless, **more)

    def terms(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """[content, style, tv, total] of an image (or batch) and its features, differentiable."""
        c, s, t = self.content(feats), self.style(feats), self.tv(image)
        wc, ws, wt = self.weights
        return torch.stack([c, s, t, wc * c + ws * s + wt * t])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[content, style, tv, total] at x (detached), and the total's gradient in x.grad."""
        x.grad = None
        terms = self.terms(self.features(x), x)
        terms[3].backward()
        return terms.detach()


class TiledObjective(Objective):
    """The same objective and gradient as Objective, computed tile by tile, so that only one
    tile's activations are ever held: for outputs too large to evaluate at once.

    The style loss depends on the whole image only through its statistics (Gram matrices, or
    mean and covariance), which are sums over positions. Pass 1 (no gradient) runs each tile
    and adds up its share of every layer's statistics G; then dL/dG is known. Pass 2 runs each
    tile again with a gradient and back-propagates ⟨dL/dG, G_tile⟩ plus the tile's share of the
    content loss, which together have exactly the gradient that tile's pixels get in the
    whole-image objective. The sliced loss's statistics, each position's projections, line up
    over the tiles instead of adding up (sliced.py): the same two passes, keyed by tile.
    The margins of the tiles (tiles.py) make their features exact, so the sum over tiles is
    the whole, not a patchwork. Masked runs' style terms (regions.RegionStyle) cut their
    masks with the same tiles, so they tile exactly too.
    """

    graphable = False  # many passes per evaluation; the graph would not pay

    def __init__(self, features: Features, content: ContentLoss, style: TileableStyleTerm,
                 weights: tuple[float, float, float], wrap: bool = False, tiles: list[Tile] = ()):
        if not style.tileable:
            raise BrushworkError(f"the {style.name} style loss cannot be evaluated in tiles with masks or faces")
        super().__init__(features, content, style, weights, wrap)
        self.tiles = tiles

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x.grad = None
        wc, ws, wt = self.weights
        positions = self._positions(x)
        with torch.no_grad():
            grams, content = self._pass_one(x, positions)
        grams = {name: g.requires_grad_(True) for name, g in grams.items()}
        with torch.enable_grad():
            style = self.style.compare(grams)
            (ws * style).backward()
        gradient = torch.zeros_like(x)
        for tile in self.tiles:  # pass 2: gradients
            pixels = tile.take(x.detach()).requires_grad_(True)
            feats = self.features(pixels)
            shares = self.style.tile_statistics(tile, feats, positions)
            share = sum((grams[key].grad * shares[key]).sum() for key in shares)
            (share + wc * self.content.part(*self._content_cores(tile, feats))).backward()
            tile.put_back(pixels.grad, gradient)
            # Else the heap creeps tile by tile: 7680x7680 in 64 tiles (bf16, gram) peaked at 7.01 GiB, now 6.42.
            return_free_heap(x.device)
        x.grad = gradient
        tv = self.tv(x)
        (wt * tv).backward()
        return torch.stack([content, style.detach(), tv.detach(), wc * content + ws * style.detach() + wt * tv.detach()])

    def _pass_one(self, x: torch.Tensor, positions: dict[str, int]) -> tuple[dict, torch.Tensor]:
        """Every style layer's Gram matrix (or a style term's other statistics, by its keys) and
        the content loss, tile by tile."""
        grams: dict = {}
        content = torch.zeros((), device=x.device)
        for tile in self.tiles:
            feats = self.features(tile.take(x))
            for key, share in self.style.tile_statistics(tile, feats, positions).items():
                grams[key] = grams[key] + share if key in grams else share
            content = content + self.content.part(*self._content_cores(tile, feats))
        return grams, content

    def _positions(self, x: torch.Tensor) -> dict[str, int]:
        h, w = x.shape[-2:]
        return {name: (h // downsampling(name)) * (w // downsampling(name)) for name in self.style.layer_weights}

    def _content_cores(self, tile: Tile, feats: dict[str, torch.Tensor]):
        names = self.content.layer_weights
        return {n: tile.core(feats[n], n) for n in names}, {n: tile.region(self.content.targets[n], n) for n in names}


def tiled_features(features: Features, image: torch.Tensor, layers: tuple[str, ...], tiles: list[Tile]):
    """Whole-image feature maps at `layers` (no gradient), computed tile by tile: for content
    targets of an image whose activations do not fit at once. Only `layers` are assembled:
    `features` may return more (every layer of the run), and at 7680×4320 relu1_1 alone would
    be an 8.5 GB map."""
    whole: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for tile in tiles:
            feats = features(tile.take(image))
            for name in layers:
                f = feats[name]
                if name not in whole:
                    factor = downsampling(name)
                    shape = (*f.shape[:2], image.shape[-2] // factor, image.shape[-1] // factor)
                    whole[name] = f.new_zeros(shape)
                tile.region(whole[name], name).copy_(tile.core(f, name))
    return_free_heap(image.device)  # the tiles' maps, which the scale's first evaluation would start on
    return whole


def tiled_grams(features: Features, image: torch.Tensor, layers: tuple[str, ...], tiles: list[Tile],
                statistics: Callable[..., torch.Tensor] = gram_matrix, weights: dict[str, torch.Tensor] | None = None,
                gather: Callable = torch.add):
    """Gram matrices (or another loss's statistics) at `layers` of an image too large to run
    at once, tile by tile, each tile's share put together with `gather` (the loss kind's:
    added up, or the sliced loss's samples side by side); `weights`: a --style-regions mask."""
    h, w = image.shape[-2:]
    grams: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for tile in tiles:
            for name, f in features(tile.take(image)).items():
                factor = downsampling(name)
                if weights is None:
                    share = statistics(tile.core(f, name), (h // factor) * (w // factor))
                else:
                    total = weights[name].float().sum().clamp_min(1e-12)
                    share = statistics(tile.core(f, name), total, tile.region(weights[name], name))
                grams[name] = gather(grams[name], share) if name in grams else share
    return_free_heap(image.device)
    return grams


def cuda_graphed(evaluate: Callable[[], torch.Tensor], x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """`evaluate` (forward, losses, backward into x.grad) recorded once as a CUDA graph and then
    replayed: one launch per evaluation instead of hundreds of small kernels, whose launch cost,
    not the arithmetic, bounds a step on a fast GPU. Each replay reads x where it lies and
    rewrites the same output and gradient tensors, so x must only ever change in place."""
    with torch.cuda.device(x.device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # the allocator settles and lazy initialisation happens before recording
                evaluate()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = evaluate()
        except RuntimeError as e:
            # Out of memory or Ctrl-C while recording makes ending the capture fail as well;
            # raise the cause, which the engine knows how to report.
            if isinstance(e.__context__, (KeyboardInterrupt, torch.OutOfMemoryError)):
                raise e.__context__ from None
            raise
    grad = x.grad

    def replay() -> torch.Tensor:
        with torch.cuda.device(x.device):
            graph.replay()
        x.grad = grad
        return out

    return replay
