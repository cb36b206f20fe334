"""The sliced loss in tiles: each direction's values counted into bins, tile by tile, so that
an output of any size is ranked against the style's quantiles without ever holding all of
its projections (at 7680×4320 they would be 24 GiB).

TiledObjective's pass 1 adds up every tile's `BinnedMoments`: per direction and bin, how many
values fell in it and the sum of their offsets v (in bin widths) and of v². The counts give
every bin edge its rank in the whole image, so its target (the style's quantile there);
within a bin a value's target is taken as linear in v, as in sliced.histogram_residuals, so
each bin's residuals are A + C·v and their squares add up from the three sums: J without a
second look at the values. Pass 2 hands each tile its positions' gradient 2(A + C·v), the
targets held constant as a sort's ranks would be. The bins span the range the values took at
the previous evaluation, widened by a margin (at the first one, the style's); values outside
it fall in one group below and one above, whose target is flat (the style's quantile at the
middle of the group's ranks).
"""

from __future__ import annotations

import torch

# Bins per direction: one per VALUES_PER_BIN values, at least FEWEST (so that short
# directions' values mostly sit alone in a bin, ranked exactly), at most MOST (at 7680×4320
# 127-2025 values a bin on the first three layers; all layers' moments then take 1.3 GiB).
VALUES_PER_BIN, FEWEST, MOST = 16, 4096, 1 << 14
WIDEN = 0.05  # of the last range, on each side: the next evaluation's values stay inside
CHUNK = 1 << 20  # values binned at a time (a band of rows: their projections, indices, offsets)


def bins_for(positions: int) -> int:
    return min(max(positions // VALUES_PER_BIN, FEWEST), MOST)


def tiled_bytes(layers: list[tuple[int, int]], tile_values: list[int]) -> int:
    """Memory the tiled sliced loss needs beyond the network at its peak (a tile's backward),
    for `layers` of (channels, positions) in the whole image: every layer's moments, held
    through an evaluation (the sums over the tiles, one tile's share, their gradients, A and C:
    11 float32 a bin), and for one tile (`tile_values`: its layers' feature values) a band's
    indices, offsets and projections (40 bytes a value). Compare's float64 work runs between
    the two passes, when no tile's activations are held, so it is not counted (measured at
    2048 and 4096 px, bf16 and fp32: benchmarks/memory.py)."""
    bins = [channels * (bins_for(positions) + 2) for channels, positions in layers]
    return 11 * 4 * sum(bins) + 40 * min(CHUNK, max(tile_values, default=0))


class Grid:
    """One layer's bins: per direction, from `low` over `bins` bins of 1/`scale` each. `seen`
    gathers the range the values take, for the next evaluation's grid (renew)."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor, positions: int):
        self.bins = bins_for(positions)
        span = (high - low).clamp_min(1e-12)
        self.low = low - WIDEN * span
        self.scale = self.bins / (span * (1 + 2 * WIDEN))
        self.seen: tuple[torch.Tensor, torch.Tensor] | None = None

    def see(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Widen the range seen so far to `low`..`high` (M×1)."""
        if self.seen is not None:
            low, high = torch.minimum(low, self.seen[0]), torch.maximum(high, self.seen[1])
        self.seen = low, high

    def renew(self, positions: int) -> "Grid":
        """The grid of the next evaluation: the range seen in this one (unchanged if none was)."""
        if self.seen is None:
            return self
        return Grid(*self.seen, positions)

    def place(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each value's group (0: below the bins, 1..bins, bins+1: above) and offset v in it, in
        bin widths (from the group's lower edge; below: from the first edge, negative)."""
        u = (projected - self.low) * self.scale
        floor = u.floor()
        index = (floor.clamp(-1, self.bins) + 1).long()
        return index, u - floor.clamp_(0, self.bins)


def project(features: torch.Tensor, directions: torch.Tensor, band: slice) -> torch.Tensor:
    """A band of rows of the features (1×C×h×w) along the directions: M × (rows·w), fp32."""
    with torch.autocast(features.device.type, enabled=False):
        return directions @ features[0, :, band].reshape(features.shape[1], -1).float()


def bands(features: torch.Tensor, directions: int) -> list[slice]:
    """Bands of rows with about CHUNK projected values each: what is binned at a time."""
    height, width = features.shape[-2:]
    step = max(1, CHUNK // (directions * width))
    return [slice(start, start + step) for start in range(0, height, step)]


class BinnedMoments(torch.autograd.Function):
    """One tile's features (its core, 1×C×h×w) projected on `directions` and counted into the
    grid: 3×M×(bins+2) float32, the count, Σv and Σv² of each group (with `weights`, h×w, a
    region's mask at the tile's positions: Σw, Σwv, Σwv²). Backward takes the gradients of
    those sums (compare's) to the features: g₁ + 2g₂v per value, back along the directions.
    A band of rows at a time, and only the features are kept, the projections recomputed: a
    tile's projections would be as large as its features are many times over."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, directions: torch.Tensor, grid: Grid,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        moments = torch.zeros(3, len(directions), grid.bins + 2, device=features.device)
        low = torch.full((len(directions), 1), torch.inf, device=features.device)
        high = torch.full((len(directions), 1), -torch.inf, device=features.device)
        for band in bands(features, len(directions)):
            projected = project(features, directions, band)
            torch.minimum(low, projected.amin(-1, keepdim=True), out=low)
            torch.maximum(high, projected.amax(-1, keepdim=True), out=high)
            index, offset = grid.place(projected)
            weight = torch.ones_like(offset) if weights is None else weights[band].flatten().expand_as(offset)
            moments[0].scatter_add_(-1, index, weight)
            moments[1].scatter_add_(-1, index, offset * weight)
            moments[2].scatter_add_(-1, index, offset.square_().mul_(weight))
        grid.see(low, high)
        ctx.save_for_backward(features, directions, weights)
        ctx.grid = grid
        return moments

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        features, directions, weights = ctx.saved_tensors
        gradient = torch.empty_like(features)  # in the features' own layout (channels-last)
        for band in bands(features, len(directions)):
            index, offset = ctx.grid.place(project(features, directions, band))
            slope = grad[1].gather(-1, index) + 2 * grad[2].gather(-1, index) * offset
            if weights is not None:
                slope *= weights[band].flatten()
            gradient[0, :, band] = (directions.T @ slope).reshape(gradient[0, :, band].shape)
        return gradient, None, None, None


class BinnedError(torch.autograd.Function):
    """Σ over groups of (A² n + 2AC Σv + C² Σv²), one layer's squared residuals from its
    moments; its "gradient" in the moments is (0, 2A, C), which BinnedMoments turns into the
    residual 2(A + C·v) of each value: the targets count as constants."""

    @staticmethod
    def forward(ctx, moments: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, c)
        n, s1, s2 = moments.double()
        a, c = a.double(), c.double()
        return (a.square() * n + 2 * a * c * s1 + c.square() * s2).sum().float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, c = ctx.saved_tensors
        return torch.stack([torch.zeros_like(a), 2 * a, c]) * grad, None, None


def residual_terms(counts: torch.Tensor, grid: Grid, quantile_at) -> tuple[torch.Tensor, torch.Tensor]:
    """Per direction and group, A and C of the residuals A + C·v of the values in it. The counts
    rank every group in the whole image; `quantile_at(fractions)` (M×K levels in 0..1 → the
    style's quantiles there) gives its targets: within a bin of n values they run linearly
    in v from the first value's mid-rank to the last one's (a value alone in its bin gets
    exactly the target a sort gives it); below and above the bins they are flat, at the
    middle of the group's ranks."""
    counts = counts.double()
    total = counts.sum(-1, keepdim=True).clamp_min(1)
    below = torch.nn.functional.pad(counts[:, :-1].cumsum(-1), (1, 0))  # values under each group
    half = (counts / 2).clamp(max=0.5)  # half a value's weight (a region's soft edge: less)
    first, last = below + half, below + counts - half
    first[:, [0, -1]] = last[:, [0, -1]] = below[:, [0, -1]] + counts[:, [0, -1]] / 2
    start, end = (torch.from_numpy(quantile_at((ranks / total).cpu().numpy())).to(counts) for ranks in (first, last))
    width = 1 / grid.scale.double()  # M×1: one bin width, in value units
    edges = torch.arange(grid.bins + 1, dtype=torch.float64, device=counts.device)
    lower = grid.low.double() + width * torch.cat([edges[:1], edges])  # each group's v = 0
    return (lower - start).float(), (width - (end - start)).float()
