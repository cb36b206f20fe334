"""The objective of one scale: given the image, the loss terms, with the gradient left in the image.

The engine's optimizer loop sees only this interface, `objective(x) -> [content, style, tv,
total]` with `x.grad` filled, so how the terms are computed (the whole image at once, or tile
by tile for outputs too large for memory) and which style term is used can change here
without touching the loop that steps the optimizer.
"""

from __future__ import annotations

from typing import Callable

import torch

from .losses import ContentLoss, StyleLoss, TVLoss
from .options import Options

Features = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def content_loss_for(options: Options, targets: dict[str, torch.Tensor]) -> ContentLoss:
    """The content term of a run: its content layers, equally weighted."""
    _, content_layers = options.layers
    return ContentLoss(targets, dict.fromkeys(content_layers, 1.0))


def style_loss_for(options: Options, targets: list[dict[str, torch.Tensor]]) -> StyleLoss:
    """The style term of a run: one set of targets per style image, blended with
    --style-weights, its layers weighted with --style-layer-weights."""
    style_layers, _ = options.layers
    style_weights = list(options.style_weights or [1.0] * len(targets))
    layer_weights = dict(zip(style_layers, options.style_layer_weights or [1.0] * len(style_layers)))
    return StyleLoss(StyleLoss.blend(targets, style_weights), layer_weights)


class Objective:
    """content_weight·content + style_weight·style + tv_weight·TV over the whole image at once."""

    def __init__(
        self,
        features: Features,
        content: ContentLoss,
        style: StyleLoss,
        weights: tuple[float, float, float],
    ):
        """`features(x)` runs the network up to every layer the losses read; `weights` are the
        content, style and TV weights."""
        self.features, self.content, self.style, self.tv = features, content, style, TVLoss()
        self.weights = weights

    @classmethod
    def for_options(
        cls, options: Options, features: Features, content: ContentLoss, style: StyleLoss
    ) -> "Objective":
        return cls(features, content, style, (options.content_weight, options.style_weight, options.tv_weight))

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
