"""What a style term is: the interface that the engine, the objectives and the regions share.

A style loss (--style-loss, losses.STYLE_LOSSES) comes in two parts, because what it keeps
of a style image is computed once and cached (Engine.style_grams), long before it is
compared with anything:

* a `StyleLossKind` (the class itself: gram, meancov, sliced) says what is kept of a style
  image's features (`statistics`), how several styles' statistics mix (`blend`), and builds
  the term against them (`build`, its factory: each kind takes what it needs, the sliced
  loss a seed for its random directions), so callers never ask which kind they hold;
* a `StyleTerm` (an instance) scores an image's features against those targets; those that
  STYLE_LOSSES build are `GuidedStyleTerm`s, which also score a region of the image alone.

A tileable term's statistics are averages over positions, so objective.TiledObjective can add
them up tile by tile (`tile_statistics`) and score their sum (`compare`); the sliced loss's
statistics, every position's projections, are keyed by tile, so the sum lines them up side
by side instead (sliced.py). regions.RegionStyle,
the style term of masked runs, is a StyleTerm made of one term per region.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .tiles import Tile

Features = dict[str, torch.Tensor]  # per layer, an N×C×H×W feature map

# Style losses cost a uniform error of scale, features ε too large, the same: 4ε² (to first
# order), what it costs the Gram loss (a Gram matrix is quadratic in the features, so its
# relative error is (2ε)²). Relative errors of first-order statistics (a mean, the sorted
# values of the sliced loss) are ε², so they are multiplied by this; second-order ones (a
# covariance) are not. So one --style-weight strikes about the same balance with every loss.
SCALE_ERROR = 4.0


def normalized(weights: dict[str, float]) -> dict[str, float]:
    """Layer weights scaled to sum to 1: a style term is a weighted mean over its layers."""
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


class StyleTerm(Protocol):
    """A style loss against fixed targets: `term(features)` is its value, differentiable."""

    name: str  # the --style-loss it came from
    tileable: bool  # whether it is also a TileableStyleTerm
    layer_weights: dict[str, float]  # the style layers it reads, weights summing to 1

    def __call__(self, features: Features) -> torch.Tensor: ...


class GuidedStyleTerm(StyleTerm, Protocol):
    """What STYLE_LOSSES build: a style term that can also be restricted to a region."""

    def __call__(self, features: Features, weights: Features | None = None) -> torch.Tensor:
        """With `weights` (per layer, a region's mask: masks.layer_maps), the region's guided loss."""
        ...


class TileableStyleTerm(StyleTerm, Protocol):
    """A style term whose statistics add up over tiles: term(f) == compare(Σ tile_statistics)."""

    def statistics(self, features: torch.Tensor, positions: Any = None, weights: torch.Tensor | None = None) -> Any:
        """As StyleLossKind.statistics: one layer's (or one tile's) share, divided by `positions`."""
        ...

    def tile_statistics(self, tile: Tile, feats: Features, positions: dict[str, Any],
                        weights: Features | None = None) -> dict[Any, torch.Tensor]:
        """One tile's share of the statistics, `positions` being each layer's whole-image count
        (with `weights`, a region's mask cut to the tile: each layer's whole-image Σ w)."""
        ...

    def compare(self, statistics: dict[Any, torch.Tensor]) -> torch.Tensor:
        """The loss of statistics added up over every tile of an image."""
        ...


class StyleLossKind(Protocol):
    """One --style-loss: what it keeps of a style image, how styles blend, and its factory."""

    name: str
    summary: str  # one line for --help and the web form
    tileable: bool

    def statistics(self, features: torch.Tensor, positions: Any = None, weights: torch.Tensor | None = None) -> Any:
        """What the loss keeps of one layer's features; `weights`: a region mask at that layer."""
        ...

    def gather(self, total: Any, share: Any) -> Any:
        """Two tiles' statistics of one layer together (a style image run in tiles)."""
        ...

    def blend(self, targets: list[dict[str, Any]], style_weights: list[float]) -> dict[str, Any]:
        """Several style images' statistics mixed in proportion to their style weights."""
        ...

    def build(self, targets: list[dict[str, Any]], style_weights: list[float], layer_weights: dict[str, float],
              seed: int) -> GuidedStyleTerm:
        """The term against `targets` (one set of statistics per style image), blended."""
        ...
