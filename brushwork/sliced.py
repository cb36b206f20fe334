"""The sliced Wasserstein style loss (`--style-loss sliced`): its term, its targets (the style's
quantiles along random directions) and the ranking (a sort, or histograms for long
directions) that gives each of an output's projected features its target.

Its own module because it works unlike the others: it keeps the style's whole distribution
along each direction, not averages, and in the tiled evaluation its statistics (every
position's projections) line up side by side instead of adding up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from .devices import one_torch_thread
from .sliced_tiles import BinnedError, BinnedMoments, Grid, residual_terms
from .style_terms import SCALE_ERROR, normalized
from .tiles import Tile


class SlicedWassersteinLoss(nn.Module):
    """`--style-loss sliced`: the sliced Wasserstein distance between the output's and the
    style's features at each layer (Heitz, Vanhoey, Chambon & Belcour, CVPR 2021).

    Each layer's C-channel features are projected on C random unit directions; along each,
    the output's P values, sorted, are matched to the style's quantiles at the same P levels
    (k + ½)/P: the squared distance between two 1-D distributions is the squared distance
    between their sorted values. That matches whole distributions, not their second moments.
    Only the ranks matter, not the sorted order itself: directions of many values (the fine
    layers, most of the values) are ranked by histograms, at a cost near the Gram loss's and
    an error against the sort below 1e-3 of J (ranked_residuals).
    Relative like the others: 4 ‖sorted − quantiles‖² / ‖quantiles‖² (the 4: SCALE_ERROR), a
    weighted mean over layers. Reading the style's quantile function at the output's own P
    levels makes it size-invariant: output and style need not have the same number of positions.

    Random directions and L-BFGS. The paper's code draws new directions at every evaluation
    (under torch's L-BFGS): the objective changes under the optimizer at every step, which
    it tolerates because every draw measures the same distance. Here the directions are
    fixed for one objective, drawn from --seed and the scale's index, so each scale of a run
    (three by default) measures along its own set: L-BFGS sees one smooth objective, the
    style's quantiles are computed once per scale, and a CUDA graph can replay the
    evaluation. Tried at 128 px, one scale, 100 steps, scored by content + 5 × a sliced
    distance along other seeds' directions: a redraw at every evaluation ended 0.8-1.6% lower
    than fixed directions, a redraw every 25 steps with the L-BFGS history reset 0.7-1.2%
    lower (seeds of the fixed draw spread 0.4%). For that, the first re-projects and re-sorts
    the style at every evaluation (twice the sorting, and no CUDA graph), the second makes the
    engine restart its optimizer: not worth it.

    A blend of styles is the mixture of their feature samples: every style's positions,
    each style weighing its style weight in all, so its quantiles are those of the mixture.
    """

    name = "sliced"
    summary = "the whole distribution of each layer's features along random directions (sliced Wasserstein)"
    tileable = True  # binned moments of the projections add up over tiles: tile_statistics

    def __init__(self, targets: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
                 layer_weights: dict[str, float], seed: int = 0):
        """`targets`: per layer, the style's samples (N×C×Q, `statistics`), or samples and their
        weights (`blend`); `seed` draws the directions."""
        super().__init__()
        self.layer_weights = normalized(layer_weights)
        generator = torch.Generator().manual_seed(seed)
        self.directions: dict[str, torch.Tensor] = {}
        self.targets: dict[str, Quantiles] = {}
        for name in self.layer_weights:
            samples, weights = targets[name] if isinstance(targets[name], tuple) else (targets[name], None)
            directions = random_directions(samples.shape[-2], generator).to(samples.device)
            self.directions[name] = directions
            self.targets[name] = Quantiles(directions @ samples.detach().float(), weights)
        self.grids: dict[str, Grid] = {}  # in tiles: each layer's bins (sliced_tiles)
        self._compared = False

    @staticmethod
    def statistics(features: torch.Tensor, positions=None, weights: torch.Tensor | None = None):
        """The samples themselves: the positions' feature vectors, N×C×P, in fp32 (at most
        STYLE_VALUES values, `thinned`); with `weights` (a --style-regions mask), the
        positions it covers and their weights."""
        with torch.autocast(features.device.type, enabled=False):
            samples = features.float().flatten(2)
        if weights is None:
            return thinned(samples)
        weights = weights.float().flatten()
        return thinned((samples[..., weights > 0], weights[weights > 0]))

    @staticmethod
    def gather(total, share):
        """Two tiles' statistics together (objective.tiled_grams): samples (and weights) side by side."""
        if isinstance(total, tuple):
            return thinned((torch.cat([total[0], share[0]], -1), torch.cat([total[1], share[1]])))
        return thinned(torch.cat([total, share], -1))

    @classmethod
    def build(cls, targets: list[dict], style_weights: list[float], layer_weights: dict[str, float],
              seed: int = 0) -> "SlicedWassersteinLoss":
        """The factory (StyleLossKind.build): the blended samples, directions drawn from `seed`."""
        return cls(cls.blend(targets, style_weights), layer_weights, seed)

    @staticmethod
    def blend(samples: list[dict], style_weights: list[float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The mixture: all styles' samples side by side, each weighing its style's share / its
        count (or, for weighted samples, its share in proportion to each sample's weight)."""
        total = sum(style_weights)
        kept = [(s, w) for s, w in zip(samples, style_weights) if w > 0]

        def share(sample, w: float) -> torch.Tensor:
            if isinstance(sample, tuple):
                return sample[1] * (w / total / sample[1].sum().clamp_min(1e-12))
            return sample.new_full((sample.shape[-1],), w / total / sample.shape[-1])

        return {
            name: (torch.cat([s[name][0] if isinstance(s[name], tuple) else s[name] for s, _ in kept], -1),
                   torch.cat([share(s[name], w) for s, w in kept]))
            for name in samples[0]
        }

    def forward(self, features: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """The loss of an image's features; `weights` (per layer, masks.py) restrict it to a
        region: see ranked_residuals."""
        return sum(w * SCALE_ERROR * self._error(name, features[name], weights and weights[name])
                   for name, w in self.layer_weights.items())

    def tile_statistics(self, tile: Tile, feats: dict[str, torch.Tensor], positions: dict,
                        weights: dict[str, torch.Tensor] | None = None) -> dict:
        """One tile's share of every layer's binned moments (sliced_tiles): they add up over
        tiles, so TiledObjective's pass 1 sums them and compare() ranks the whole image's values
        from them; with `weights` (a region's mask cut to the tile) each value counts its
        weight. A new evaluation's pass 1 (the first call without a gradient after a compare)
        bins over the range the values took in the last one."""
        counts = {name: int(positions[name]) for name in self.layer_weights}  # with weights: Σ w
        if self._compared and not torch.is_grad_enabled():
            self.grids = {name: grid.renew(counts[name]) for name, grid in self.grids.items()}
            self._compared = False
        for name in self.layer_weights:
            if name not in self.grids:  # the first evaluation: over the style's range
                values = self.targets[name].values
                low, high = (torch.from_numpy(v).float().unsqueeze(1).to(self.directions[name].device)
                             for v in (values.min(-1), values.max(-1)))
                self.grids[name] = Grid(low, high, counts[name])
        return {name: BinnedMoments.apply(tile.core(feats[name], name), self.directions[name], self.grids[name],
                                          None if weights is None else weights[name][0, 0].float())
                for name in self.layer_weights}

    def compare(self, statistics: dict) -> torch.Tensor:
        """The loss from every layer's binned moments summed over the tiles (tile_statistics)."""
        total = 0.0
        for name, w in self.layer_weights.items():
            moments, quantiles = statistics[name], self.targets[name]
            a, c = residual_terms(moments[0].detach(), self.grids[name], quantiles.read)
            energy = moments[0, 0].detach().double().sum() * quantiles.mean_square
            total = total + w * SCALE_ERROR * (BinnedError.apply(moments, a, c) / energy.clamp_min(1e-12)).float()
        self._compared = True
        return total

    def _error(self, name: str, features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """One layer's relative error against the style's quantiles."""
        positions = features[0, 0].numel()
        quantiles, energy = self.targets[name].at(positions)
        w = None if weights is None else weights.flatten().float()
        share = 1.0 if w is None else w.sum().clamp_min(1e-12) / positions
        return SquaredResiduals.apply(features, self.directions[name], quantiles, w) / (energy * share * len(features))


# The style's sample values a layer keeps at most: a larger painting's positions are taken at a
# regular stride, which keeps its distribution (a quantile's error about 1/sqrt(positions)) and
# bounds what its targets hold (fp32 samples and sorted projections, SAMPLE_BYTES a value):
# relu1_1 keeps up to 262144 positions (a 512 px painting's 164k all), relu5_1 32768.
STYLE_VALUES, SAMPLE_BYTES = 1 << 24, 8


def style_sample_bytes(layers: list[tuple[int, int]]) -> int:
    """What one style's targets hold for layers of (channels, positions) at the painting's size."""
    return SAMPLE_BYTES * sum(min(channels * positions, STYLE_VALUES) for channels, positions in layers)


def thinned(samples):
    """`samples` (N×C×P, or with their weights) at a stride that leaves at most STYLE_VALUES."""
    values = samples[0] if isinstance(samples, tuple) else samples
    stride = -(-values.shape[-2] * values.shape[-1] // STYLE_VALUES)
    if stride == 1:
        return samples
    if isinstance(samples, tuple):  # copies, so that the whole painting's features are freed
        return samples[0][..., ::stride].clone(), samples[1][::stride].clone()
    return samples[..., ::stride].clone()


# Bytes per projected value (one direction at one position) an evaluation holds, measured
# (peak RSS less the rest of the estimate, 1024×768 and 683×2048, whole): for every layer at
# once, what autograd keeps (HELD; in bf16 also the features widened to fp32 for the
# projection); for one layer at a time, what its ranking and squared error pass on (PASSING).
HELD, PASSING = {torch.bfloat16: 5, torch.float32: 2}, 4


def ranked_bytes(values: list[int], dtype: torch.dtype) -> int:
    """Memory the sliced loss needs beyond the network for layers of `values` projected values
    each, evaluated whole in `dtype` (in tiles: sliced_tiles.tiled_bytes)."""
    return HELD.get(dtype, 5) * sum(values) + PASSING * max(values, default=0)


# Directions of up to SORTED_UP_TO values are ranked by a sort, longer ones by a histogram of
# P / VALUES_PER_BIN bins (at most MOST_BINS), CHUNK values at a time.
SORTED_UP_TO, VALUES_PER_BIN, MOST_BINS, CHUNK = 8192, 16, 1 << 16, 1 << 20


def ranked_residuals(projected: torch.Tensor, quantiles: torch.Tensor, weights: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Each value minus its target, the style's quantile at the value's rank among its
    direction's P values: N×M×P (`quantiles`: 1×M×P, the style's at P levels). With `weights`
    (a region's mask, one per position) the rank is the weighted mid-rank (Σ w below + w/2) / Σ w,
    so soft edges count in proportion.

    Where a direction has many values (relu1_1 and relu2_1 at 512 px, 80% of all), a sort
    was most of the time the loss added to the network's (numpy's argsort: the evaluation
    cost fp32 1.55×, bf16 1.40× the Gram loss's at 512×384), so they are ranked by a
    histogram (histogram_residuals): O(P), and against the sort J differs by < 1e-3 of itself
    and the image's gradient keeps a cosine > 0.999 (benchmarks/sliced.py measures both).
    Shorter directions are sorted: cheaply, and there a histogram's bins would hold too many
    values each for that accuracy."""
    p = projected.shape[-1]
    rows = projected.reshape(-1, p)
    table = quantiles.expand(len(projected), -1, -1).reshape(len(rows), p)
    ranking = sorted_residuals if p <= SORTED_UP_TO else histogram_residuals
    return ranking(rows, table, weights).reshape(projected.shape)


def sorted_residuals(rows: torch.Tensor, quantiles: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """ranked_residuals by a sort (sorting_order). Without weights each value's target is the
    quantile at its rank; with them, the quantiles read at its weighted mid-rank by linear
    interpolation (with equal weights: exactly the unweighted targets)."""
    order = sorting_order(rows)
    if weights is not None:
        p = rows.shape[-1]
        ranked = weights[order]
        levels = ((ranked.cumsum(-1) - ranked / 2) / weights.sum().clamp_min(1e-12) * p - 0.5).clamp_(0, p - 1)
        below = levels.long()
        ends = quantiles.gather(-1, below), quantiles.gather(-1, (below + 1).clamp_(max=p - 1))
        quantiles = torch.lerp(*ends, levels - below)
    return rows - torch.empty_like(rows).scatter_(-1, order, quantiles)


def histogram_residuals(rows: torch.Tensor, quantiles: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """ranked_residuals by a histogram, not a sort: per direction, P/16 bins evenly between the
    values' own extremes; the mass below a bin's edges gives exact ranks, and within a bin a
    value's rank is taken as linear in the value. So each bin maps values to targets by a
    line between the style's quantiles at its edges' ranks: a few passes over the values.
    Values that are exactly equal (a flat patch of the picture) share one target, where a
    sort would spread them over their block of quantiles by their order in the image.

    On a CPU the directions are ranked a few at a time (CHUNK values), in a work space reused
    from one to the next (fresh memory for every pass cost as much as the passes), the
    chunks shared among torch's threads like the sort's rows, each running torch on one
    thread: on a busy CPU, OpenMP's two threads waiting on each other at every one of the
    many small operations made the ranking several times slower."""
    residuals = torch.empty_like(rows)
    if rows.device.type != "cpu":  # one go: the memory is there, and no host threads under a CUDA graph
        _rank(rows, quantiles, weights, residuals, _work_space(rows, len(rows)))
        return residuals
    threads = min(torch.get_num_threads(), len(rows))
    step = max(1, min(CHUNK // rows.shape[-1], -(-len(rows) // threads)))  # every thread gets rows
    parts = [slice(start, start + step) for start in range(0, len(rows), step)]

    def rank(share: list[slice]) -> None:
        space = _work_space(rows, step)
        for part in share:
            _rank(rows[part], quantiles[part], weights, residuals[part], space)

    with one_torch_thread():
        list(_pool(threads).map(rank, [parts[i::threads] for i in range(threads)]))
    return residuals


def _work_space(rows: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scratch memory for _rank of `count` rows like `rows`: two of values, one of bin indices."""
    p = rows.shape[-1]
    return rows.new_empty(count, p), rows.new_empty(count, p), rows.new_empty(count, p, dtype=torch.long)


def _rank(rows: torch.Tensor, quantiles: torch.Tensor, weights: torch.Tensor | None, out: torch.Tensor,
          space: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    """histogram_residuals for a few rows, written to `out`, `space` its scratch memory."""
    count, p = rows.shape
    bins = min(p // VALUES_PER_BIN, MOST_BINS)  # over a thousand: p > SORTED_UP_TO
    low, high = rows.amin(-1, keepdim=True), rows.amax(-1, keepdim=True)
    # Widened by a hair, so that the largest value falls inside the last bin, and a direction
    # whose values are all equal still has bins (all in one: one target, within the style's range).
    margin = (high - low + low.abs()) * 1e-6 + 1e-30
    low, scale = low - margin, bins / (high - low + 2 * margin)
    position, keep, bin_of = (s[:count] for s in space)
    bin_of.copy_(torch.sub(rows, low, out=position).mul_(scale))  # in bins; the index truncates it
    wide = torch.float32 if rows.device.type == "mps" else torch.float64  # MPS has no float64
    mass = rows.new_zeros(count, bins, dtype=wide)
    ones = torch.ones((), dtype=wide, device=rows.device).expand_as(rows)
    mass.scatter_add_(-1, bin_of, ones if weights is None else weights.to(wide).expand_as(rows))
    targets = _edge_targets(mass, quantiles)
    steps = targets.diff(dim=-1).to(rows)  # per bin, how far the target goes across it
    # target = target at the bin's lower edge + step · (position − bin): in bin units, which
    # keeps fp32's precision however narrow the bins are next to the values themselves
    position.sub_(bin_of)
    torch.gather(targets[:, :-1].to(rows), -1, bin_of, out=keep)
    keep.addcmul_(torch.gather(steps, -1, bin_of, out=out), position)
    torch.sub(rows, keep, out=out)


def _edge_targets(mass: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """The style's quantile at the rank of each bin edge (rows × bins+1): an edge's rank is
    the mass below it, as a mid-rank level (Σ below) / Σ · P − ½, read off the P-level
    quantiles linearly, flat beyond the ends (the smallest and largest value get the style's
    extremes, as with a sort)."""
    p = quantiles.shape[-1]
    below = torch.nn.functional.pad(mass.cumsum(-1), (1, 0))
    levels = (below / below[:, -1:].clamp_min(1e-12) * p - 0.5).clamp_(0, p - 1)
    first = levels.long()
    below, above = (quantiles.gather(-1, i).to(mass) for i in (first, (first + 1).clamp_(max=p - 1)))
    return torch.lerp(below, above, levels - first)


class SquaredResiduals(torch.autograd.Function):
    """Σ w·r² of one layer's residuals r = projected − target (ranked_residuals), its features
    projected on `directions`. The gradient in the projections is 2·w·r: the targets count as
    constants, as a sort's ranks would.

    One function, rather than autograd's product and squared error, for time: its backward
    is one matrix product, Dᵀ (2·w·r), with the scale folded into D, that hands the features
    their gradient in their own memory layout (channels-last), so adding it to the network's
    costs no reordering; and it keeps only the residuals for it."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, directions: torch.Tensor, quantiles: torch.Tensor,
                weights: torch.Tensor | None) -> torch.Tensor:
        with torch.autocast(features.device.type, enabled=False):
            projected = directions @ features.flatten(2).float()
        residuals = ranked_residuals(projected.detach(), quantiles, weights)
        weighted = residuals if weights is None else residuals * weights
        ctx.save_for_backward(weighted, directions)
        ctx.shape, ctx.dtype = features.shape, features.dtype
        return torch.dot(residuals.flatten(), weighted.flatten())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weighted, directions = ctx.saved_tensors
        # N×P×C, whose transpose is N×C×P with the strides of channels-last features
        gradient = (weighted.transpose(1, 2) @ (directions * (2 * grad))).transpose(1, 2)
        return gradient.to(ctx.dtype).reshape(ctx.shape), None, None, None


def random_directions(channels: int, generator: torch.Generator) -> torch.Tensor:
    """`channels` unit vectors in R^channels, uniform on the sphere (as many as the paper's code)."""
    directions = torch.randn(channels, channels, generator=generator)
    return directions / directions.norm(dim=1, keepdim=True)


def sorting_order(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort `values` along the last axis.

    On a CPU, numpy's argsort is 2-3× faster than torch's sort (relu1_1's 64×98304 projections
    at 384 px: 0.3 s against 0.9 s on this project's 2-core machine, loaded). Starting from
    the previous evaluation's order, which a stable sort of nearly sorted values exploits,
    was tried: after an L-BFGS step the order is not near enough, and it was slower. Other
    devices sort fast, and must not wait for the host (CUDA graphs): torch's sort there.

    numpy sorts on one core, releasing the GIL: the rows (directions) are split among torch's
    threads, so the sort uses the cores the network uses. The same order, sooner."""
    if values.device.type != "cpu":
        return values.argsort(-1)
    rows = values.detach().reshape(-1, values.shape[-1]).numpy()
    order = np.empty(rows.shape, dtype=np.int64)

    def sort(part: slice) -> None:
        order[part] = np.argsort(rows[part], -1)

    on_threads(len(rows), sort)
    return torch.from_numpy(order).reshape(values.shape)


def sort_rows(rows: np.ndarray) -> np.ndarray:
    """`rows` (M×Q) sorted in place, the rows shared among torch's threads as sorting_order's."""
    def sort(part: slice) -> None:
        rows[part].sort(-1)

    on_threads(len(rows), sort)
    return rows


def on_threads(count: int, work: Callable[[slice], None]) -> None:
    """`work(rows)` on `count` rows, split in one slice per torch thread (numpy releases the GIL)."""
    threads = max(1, min(torch.get_num_threads(), count))
    bounds = np.linspace(0, count, threads + 1).astype(int)
    parts = [slice(bounds[k], bounds[k + 1]) for k in range(threads)]
    if threads > 1:
        list(_pool(threads).map(work, parts))
    else:
        work(parts[0])


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count for the process: the ranking runs at every evaluation."""
    return ThreadPoolExecutor(threads, thread_name_prefix="brushwork-sort")


class Quantiles:
    """The quantile function of one layer's style projections (M×Q, maybe weighted samples),
    read at the P levels (k + ½)/P of an output with P positions: linear between the samples'
    own levels, flat beyond them; computed once per P (the levels in float64: with a million
    samples they are closer than fp32 can tell apart)."""

    def __init__(self, projected: torch.Tensor, weights: torch.Tensor | None = None):
        values = projected.detach().reshape(-1, projected.shape[-1]).cpu()
        count = values.shape[-1]
        if weights is None or bool((weights == weights[0]).all()):  # one style: equal weights, even levels
            self.values = sort_rows(values.numpy())  # in place: nothing but this loss holds the projections
            self.levels = np.broadcast_to((np.arange(count) + 0.5) / count, self.values.shape)
        else:
            order = sorting_order(values)
            self.values = values.gather(-1, order).numpy()
            w = weights.cpu().double()[order].numpy()
            self.levels = np.cumsum(w, -1) - w / 2
        self.mean_square = self._mean_square()
        self.device = projected.device
        self._at: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def at(self, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1×M×P quantiles, and their energy (sum of squares: the relative error's divisor)."""
        if positions not in self._at:
            u = (np.arange(positions) + 0.5) / positions
            rows = np.stack([np.interp(u, levels, values) for levels, values in zip(self.levels, self.values)])
            quantiles = torch.from_numpy(rows).float().unsqueeze(0).to(self.device)
            self._at[positions] = quantiles, quantiles.pow(2).sum().clamp_min(1e-12)
        return self._at[positions]

    def _mean_square(self) -> float:
        """∫₀¹ Q(u)² du summed over the directions, Q linear between the samples' levels and flat
        beyond: what Σ Q((k + ½)/P)² / P (at's energy) tends to for many positions P."""
        total = 0.0
        for values, levels in zip(self.values, self.levels):  # a row at a time in float64
            values = values.astype(np.float64)
            v0, v1, l0, l1 = values[:-1], values[1:], levels[:-1], levels[1:]
            inside = ((l1 - l0) * (v0 * v0 + v0 * v1 + v1 * v1) / 3).sum()
            total += inside + levels[0] * values[0] ** 2 + (1 - levels[-1]) * values[-1] ** 2
        return float(total)

    def read(self, fractions: np.ndarray) -> np.ndarray:
        """The quantiles at any levels: `fractions` M×K in 0..1 (the tiled loss's bin edges)."""
        return np.stack([np.interp(f, levels, values) for f, levels, values in zip(fractions, self.levels, self.values)])
