"""Tile geometry for evaluating VGG on an image too large to hold its activations at once.

A tile is a *core* (the pixels it is responsible for) plus a *margin* of real neighbouring
pixels on every side. VGG's features at a position depend only on the pixels within its
receptive field, so when the margin is at least the receptive-field radius of the deepest
layer, the tile's features over its core are exactly the whole image's. Core borders and
margins are multiples of 16 (VGG19's four pools), so every layer's pooling grid in a tile
lines up with the whole image's, and the cores of all tiles partition every layer's
feature map. With `wrap` (seamless output) the image is a torus: margins at the image's
edges come from the opposite edge, which is what circular padding in a whole-image pass sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .vgg import LAYER_INDEX, LAYER_NAMES

ALIGN = 16  # 2**4: VGG19's pools before conv5_1; tile borders on this grid keep pooling aligned


def downsampling(layer: str) -> int:
    """How many input pixels one position of `layer` steps over: 2**(pools before it)."""
    return 2 ** sum(1 for name in LAYER_NAMES[: LAYER_INDEX[layer]] if name.startswith("pool"))


def receptive_radius(layers: tuple[str, ...]) -> int:
    """Pixels beyond a position that can reach the deepest of `layers` (3×3 convs, 2×2 pools)."""
    size, jump = 1, 1
    for name in LAYER_NAMES[: max(LAYER_INDEX[n] for n in layers) + 1]:
        if name.startswith("conv"):
            size += 2 * jump
        elif name.startswith("pool"):
            size, jump = size + jump, jump * 2
    return size // 2


def margin_for(layers: tuple[str, ...]) -> int:
    """The margin that makes tiled features exact: the receptive radius, rounded up to ALIGN."""
    return ALIGN * math.ceil(receptive_radius(layers) / ALIGN)


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the input it reads, [start, stop) (may leave the image when
    wrapping), and the core it answers for, [core_start, core_stop), in image pixels."""

    start: int
    stop: int
    core_start: int
    core_stop: int
    length: int  # the image's length along this axis

    def indices(self) -> torch.Tensor | slice:
        if 0 <= self.start and self.stop <= self.length:
            return slice(self.start, self.stop)
        return torch.arange(self.start, self.stop) % self.length

    def core(self, factor: int) -> tuple[slice, slice]:
        """The core at a layer that steps `factor` pixels: (in the tile's map, in the image's map)."""
        first = self.core_start // factor
        last = self.length // factor if self.core_stop == self.length else self.core_stop // factor
        local = (self.core_start - self.start) // factor
        return slice(local, local + last - first), slice(first, last)


def spans(length: int, core: int, margin: int, wrap: bool) -> list[Span]:
    """Split one axis into cores of about `core` pixels on the ALIGN grid, each with `margin`."""
    n = max(1, math.ceil(length / core))
    cuts = sorted({0, length, *(ALIGN * round(i * length / n / ALIGN) for i in range(1, n))})
    result = []
    for a, b in zip(cuts, cuts[1:]):
        start, stop = (a - margin, b + margin) if wrap else (max(0, a - margin), min(length, b + margin))
        result.append(Span(start, stop, a, b, length))
    return result


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    def take(self, image: torch.Tensor) -> torch.Tensor:
        """This tile's input pixels (differentiable: a gradient flows back into `image`)."""
        rows, cols = self.rows.indices(), self.cols.indices()
        image = image[..., rows, :] if isinstance(rows, slice) else image.index_select(-2, rows.to(image.device))
        return image[..., cols] if isinstance(cols, slice) else image.index_select(-1, cols.to(image.device))

    def put_back(self, gradient: torch.Tensor, whole: torch.Tensor) -> None:
        """Adds the gradient of take()'s pixels into `whole` (the image's gradient), in place,
        where take() read them (wrapped pixels add up). Autograd through take() fills an
        image-sized tensor of zeros for every tile's backward and adds it: at 7680×7680, 64 of
        0.66 GiB an evaluation (one step a scale took 706–755 s with put_back, 1310 without)."""
        rows, cols = self.rows.indices(), self.cols.indices()
        if not isinstance(cols, slice):
            strip = gradient.new_zeros(*gradient.shape[:-1], whole.shape[-1])
            gradient, cols = strip.index_add_(-1, cols.to(whole.device), gradient), slice(None)
        if isinstance(rows, slice):
            whole[..., rows, cols] += gradient
        else:
            whole[..., cols].index_add_(-2, rows.to(whole.device), gradient)

    def core(self, features: torch.Tensor, layer: str) -> torch.Tensor:
        """The part of this tile's features at `layer` that is exactly the whole image's."""
        factor = downsampling(layer)
        (rows, _), (cols, _) = self.rows.core(factor), self.cols.core(factor)
        return features[..., rows, cols]

    def region(self, whole: torch.Tensor, layer: str) -> torch.Tensor:
        """The same positions cut from a whole-image feature map (e.g. a content target)."""
        factor = downsampling(layer)
        (_, rows), (_, cols) = self.rows.core(factor), self.cols.core(factor)
        return whole[..., rows, cols]


def tiles(width: int, height: int, core: int, margin: int, wrap: bool = False) -> list[Tile]:
    """Tiles whose cores partition a width×height image (and each layer's feature map)."""
    return [Tile(r, c) for r in spans(height, core, margin, wrap) for c in spans(width, core, margin, wrap)]


def tile_input_side(core: int, margin: int) -> int:
    """The longest side a tile's input can have: its core (which the ALIGN grid may lengthen
    by up to ALIGN) plus a margin on both sides."""
    return core + ALIGN + 2 * margin
