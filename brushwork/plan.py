"""The plan of a run, worked out before any work: output size, scales and their steps, the
number format, and whether it fits in memory. Everything here is arithmetic on sizes; a run
that cannot work is refused here, with a message that says what would."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import images, lbfgs, sliced, sliced_tiles, tiles
from .devices import CPU_BUDGET_GIB, available_bytes, pick_dtype
from .errors import BrushworkError
from .options import Options
from .vgg import LAYER_INDEX, VGG19

MULTISCALE_FROM = 384  # outputs this large (longest side) or larger default to coarse-to-fine
COARSEST = 256  # big outputs get more scales, each double the last, from about this long side
# How a multi-scale run splits --steps between its scales, coarse to fine. Three scales: half
# at the coarsest, where about 100 steps settle the layout and more change nothing the finer
# scales keep (docs/benchmarks/default-loss.md). Runs with more scales (big outputs) give
# each finer scale a quarter of the steps of the one before: a step there costs four times as
# much, so every scale takes about the same time, and the top scales, where steps only refine
# brush strokes, get a few (benchmarks/bigsize.py).
SCALE_SPLIT = {1: [1.0], 2: [0.7, 0.3], 3: [0.5, 0.3, 0.2]}
FINER_SHARE = 0.25
CPU_BUDGET = CPU_BUDGET_GIB * 2**30  # without --max-memory, on a CPU (devices.py says why)
TILE_SIDES = (2048, 1536, 1024, 512, 256)  # tile cores tried, largest first (less margin overhead)
MIN_TILE = 64
MIN_HISTORY = 2  # L-BFGS pairs below which a run is refused rather than degraded further
CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}  # VGG19's channels by block
# Peak memory of one forward + input-gradient backward, in bytes per activation element up to
# the deepest layer, measured as RSS growth at 512 and 1024 px on a CPU with native bf16
# (benchmarks/memory.py): autograd keeps about one copy of every activation plus the gradient
# being propagated. bf16 is not half of fp32: the losses and the input's gradient are fp32.
BYTES_PER_ACTIVATION = {torch.float32: 4.7, torch.bfloat16: 3.7}
# What a run holds beyond the network whatever its size: the pictures, oneDNN's kernels and
# scratch, and the heap malloc keeps as scales of different sizes come and go (measured: peak
# RSS less the estimate's terms, multi-scale runs at 1024-7680 px; a one-scale run holds less).
RUN_OVERHEAD = int(0.25 * 2**30)
# A tile's Gram or mean-and-covariance statistics read its core's features: a copy of the
# core, and in the backward the gradient of that slice, as large as the tile's features.
# Bytes a style value of the tile, measured (peak RSS less the rest of the estimate, 2048 px
# in 1536 px tiles): 1.5 for gram in bf16, 0.8 in fp32, 2 and 2.5 for meancov. Gram in fp32
# reads its features without a widened copy and counts its own figure: with 2, 4096 px fp32
# gram runs in tiles measured 11.8% and 13.1% below their estimates; the rest count 2.
TILE_STATISTICS_BYTES = {("gram", torch.float32): 0.8, ("gram", torch.bfloat16): 2,
                         ("meancov", torch.float32): 2, ("meancov", torch.bfloat16): 2}


@dataclass
class Scale:
    """One step of the coarse-to-fine ladder."""

    size: tuple[int, int]
    steps: int
    tile: int | None  # core side of the tiled evaluation; None: the whole image at once
    history: int  # L-BFGS curvature pairs kept
    memory: int  # estimated bytes beyond the network


@dataclass
class Plan:
    """What a run will do, worked out before it starts."""

    width: int
    height: int
    layers: tuple[str, ...]  # every layer the losses read
    dtype: torch.dtype
    scales: list[Scale]  # coarse to fine
    memory_needed: int  # estimated bytes beyond the network at the most demanding scale
    free: int | None  # bytes free on the device when planned
    budget: int | None  # bytes the run may use (None: the platform does not say)
    margin: int  # pixels of margin around each tile's core

    @property
    def total_steps(self) -> int:
        return sum(scale.steps for scale in self.scales)

    def tile_count(self, scale: Scale) -> int:
        return len(tiles.tiles(*scale.size, scale.tile, self.margin)) if scale.tile else 1

    def cost(self, scale: Scale) -> float:
        """Relative cost of one step at `scale`: its pixels, and for tiles the pixels all tiles
        read (margins overlap) with a third more for the extra forward pass."""
        w, h = scale.size
        if not scale.tile:
            return float(w * h)
        grid = tiles.tiles(w, h, scale.tile, self.margin)
        return 4 / 3 * sum((t.rows.stop - t.rows.start) * (t.cols.stop - t.cols.start) for t in grid)

    def describe(self, device: torch.device) -> str:
        """The plan line: scales with their steps (and tiles), device, precision, memory."""
        parts = []
        for scale in self.scales:
            w, h = scale.size
            tiled = f" in {self.tile_count(scale)} tiles of {scale.tile}+{self.margin} px" if scale.tile else ""
            parts.append(f"{w}x{h}:{scale.steps}{tiled}")
        precision = "bf16" if self.dtype.itemsize == 2 else "fp32"
        budget = f" (allowed {self.budget / 2**30:.1f})" if self.budget else ""
        return (f"plan: {' -> '.join(parts)} steps on {device} ({precision}); "
                f"estimated peak memory {self.memory_needed / 2**30:.2f} GiB beyond the network{budget}")


def min_side(layers: tuple[str, ...]) -> int:
    """Smallest image side that still leaves a 2×2 feature map at the deepest layer."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    pools = sum(1 for name in list(LAYER_INDEX)[:deepest] if name.startswith("pool"))
    return 2 * 2**pools


def scale_sizes(width: int, height: int, n_scales: int, align: int = 1) -> list[tuple[int, int]]:
    """Output sizes of each scale, coarse to fine, halving the side each time; with `align`,
    each side a multiple of it (seamless runs: a torus must fit VGG's pooling grid)."""
    sizes = [images.fit_size(width, height, round(max(width, height) / 2**k)) for k in reversed(range(n_scales))]
    return [(max(align, align * round(w / align)), max(align, align * round(h / align))) for w, h in sizes]


def default_scale_count(long_side: int) -> int:
    """1 below MULTISCALE_FROM; else 3, or more for big outputs, so the first is near COARSEST."""
    if long_side < MULTISCALE_FROM:
        return 1
    return max(3, 1 + round(math.log2(long_side / COARSEST)))


def split_steps(steps: int, n: int) -> list[int]:
    """`steps` evaluations over n scales, most where they are cheap (SCALE_SPLIT)."""
    split = SCALE_SPLIT.get(n) or [FINER_SHARE**k for k in range(n)]
    split = [part / sum(split) for part in split]
    counts = [max(1, round(steps * part)) for part in split[:-1]]
    return counts + [max(1, steps - sum(counts))]  # the finest scale takes the rounding


def carried_steps(steps: int, spare: float, size: tuple[int, int]) -> tuple[int, float]:
    """--steps auto: a scale's planned `steps` plus what the scales before it left unspent
    (`spare`, in evaluated pixels), and what is still left over after whole steps at `size`."""
    pixels = size[0] * size[1]
    extra = int(spare // pixels)
    return steps + extra, spare - extra * pixels


def schedule(options: Options, width: int, height: int, layers: tuple[str, ...]) -> list[tuple[tuple[int, int], int]]:
    """[(size, steps)] per scale, coarse to fine.

    Single-scale runs `steps` evaluations at full size. Multi-scale (the default from 384 px)
    starts near 1/4 of the side and doubles it each scale; `steps` is then the total number of
    evaluations, split by SCALE_SPLIT (coarse scales are 4× cheaper per step than the next,
    so most of the work happens where it costs least), unless `steps_per_scale` says
    exactly how many each scale gets.
    """
    n = options.scales or default_scale_count(max(width, height))
    align = tiles.ALIGN if options.seamless else 1
    smallest = min_side(layers)
    while n > 1 and min(scale_sizes(width, height, n, align)[0]) < smallest:
        n -= 1
    sizes = scale_sizes(width, height, n, align)
    if options.steps_per_scale is not None:
        if len(options.steps_per_scale) != n:
            raise BrushworkError(f"--steps-per-scale has {len(options.steps_per_scale)} values for {n} scales")
        return list(zip(sizes, options.steps_per_scale))
    n = min(n, options.step_budget)
    return list(zip(sizes[-n:], split_steps(options.step_budget, n)))


def activation_elements(width: int, height: int, layers: tuple[str, ...]) -> int:
    """Number of values VGG19 produces up to the deepest of `layers` for one w×h image."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    total, channels = 0, 3
    for name in list(LAYER_INDEX)[: deepest + 1]:
        if name.startswith("pool"):
            width, height = width // 2, height // 2
        elif name.startswith("conv"):
            channels = CHANNELS[name[4]]
        total += channels * width * height
    return total


def activation_bytes(width: int, height: int, layers: tuple[str, ...], dtype: torch.dtype) -> int:
    """Memory of one forward and input-gradient backward through VGG19 of a width×height image."""
    return int(activation_elements(width, height, layers) * BYTES_PER_ACTIVATION.get(dtype, 4.7))


def optimizer_vectors(optimizer: str, steps: int, pairs: int) -> tuple[float, float]:
    """Image-sized fp32 vectors a scale of `steps` steps holds while the network evaluates, and
    at the peak of an update (when no activations are held). Measured as RSS growth of the
    engine's scale loop on a large image (tests/core/test_plan.py): x, its gradient and the
    evaluated image the recorder keeps, from the second step on also the one before it and
    L-BFGS's previous gradient and step, and two a stored pair (up to `pairs`; each step after
    the first stores one, after its evaluation); an update adds its gradient, direction and
    clamped image, and its masks (a quarter of a vector more, counted as one). A scale of one
    step also holds the recorder's last good image from the scale before (a quarter of a
    vector: sides halve) through its evaluation and update; from the second step on, that is
    the one before it. Adam: x, its gradient, the two kept images and its two moments."""
    if optimizer == "adam":
        return 7, 9
    if steps == 1:
        return 3.25, 6.25
    return 6 + 2 * min(pairs, steps - 2), 8 + 2 * min(pairs, steps - 1)


def scale_bytes(size: tuple[int, int], tile: int | None, steps: int, pairs: int, options: Options,
                layers: tuple[str, ...], dtype: torch.dtype) -> int:
    """A scale's peak beyond the network: the larger of an evaluation (the activations of the
    whole image or of its largest tile, the style term, the optimizer's vectors) and an update
    (the vectors alone: a tiled evaluation hands its tiles' heap back, devices.return_free_heap),
    plus what both hold: the content targets, kept whole, and RUN_OVERHEAD."""
    w, h = size
    evaluated = (w, h) if tile is None else largest_tile(w, h, tile, tiles.margin_for(layers))
    evaluation = activation_bytes(*evaluated, layers, dtype) + style_term_bytes(w, h, options, dtype, tile)
    evaluating, updating = optimizer_vectors(options.optimizer, steps, pairs)
    vector = 3 * w * h * 4
    held = feature_map_bytes(w, h, options.layers[1], dtype) + RUN_OVERHEAD
    return held + int(max(evaluation + evaluating * vector, updating * vector))


def feature_map_bytes(width: int, height: int, layers: tuple[str, ...], dtype: torch.dtype) -> int:
    """Bytes of the whole-image feature maps at `layers` (content targets are kept whole)."""
    total = 0
    for name in layers:
        factor = tiles.downsampling(name)
        total += CHANNELS[name[4]] * (width // factor) * (height // factor) * dtype.itemsize
    return total


def largest_tile(width: int, height: int, tile: int, margin: int) -> tuple[int, int]:
    """Width and height of the largest input of the tiles a width×height image is cut into."""
    grid = tiles.tiles(width, height, tile, margin)
    sizes = [(t.cols.stop - t.cols.start, t.rows.stop - t.rows.start) for t in grid]
    return max(sizes, key=lambda size: size[0] * size[1])


def style_values(width: int, height: int, style_layers: tuple[str, ...]) -> list[int]:
    """Feature values of each style layer for one width×height image."""
    factors = [tiles.downsampling(name) for name in style_layers]
    return [CHANNELS[name[4]] * (width // f) * (height // f) for name, f in zip(style_layers, factors)]


def style_shapes(width: int, height: int, style_layers: tuple[str, ...]) -> list[tuple[int, int]]:
    """(channels, positions) of each style layer for one width×height image."""
    factors = [tiles.downsampling(name) for name in style_layers]
    return [(CHANNELS[name[4]], (width // f) * (height // f)) for name, f in zip(style_layers, factors)]


def style_term_bytes(width: int, height: int, options: Options, dtype: torch.dtype, tile: int | None) -> int:
    """What the style term holds beyond the network's activations. The sliced loss ranks every
    position's projections at once (sliced.ranked_bytes), in tiles it holds binned moments
    (sliced_tiles.tiled_bytes); meancov's statistics keep a copy of the features they read
    (with a row of ones); in tiles both statistics read a copy of the core (TILE_STATISTICS_BYTES);
    the Gram loss of the whole image keeps C×C matrices only."""
    style_layers, _ = options.layers
    if options.style_loss == "sliced" and tile is not None:
        evaluated = largest_tile(width, height, tile, tiles.margin_for(options.layers[0] + options.layers[1]))
        regions = len(options.style_masks or ()) or 1  # each region's loss bins its own moments
        return regions * sliced_tiles.tiled_bytes(style_shapes(width, height, style_layers),
                                                  style_values(*evaluated, style_layers))
    if options.style_loss == "sliced":
        return sliced.ranked_bytes(style_values(width, height, style_layers), dtype)
    if tile is not None:
        evaluated = largest_tile(width, height, tile, tiles.margin_for(options.layers[0] + options.layers[1]))
        return round(TILE_STATISTICS_BYTES[options.style_loss, dtype] * sum(style_values(*evaluated, style_layers)))
    if options.style_loss == "meancov":
        return dtype.itemsize * sum(style_values(width, height, style_layers))
    return 0


def largest_fitting_size(size: int, needed: int, free: int) -> int:
    """The largest --size whose estimate fits in `free` bytes (memory grows with the square)."""
    return max(1, int(size * math.sqrt(free / needed) * 0.95))


def memory_budget(options: Options, device: torch.device, free: int | None) -> int | None:
    """Bytes a run may use beyond the network: --max-memory, else on a CPU CPU_BUDGET, capped
    by what is free; elsewhere what is free."""
    budget = options.max_memory * 2**30 if options.max_memory is not None else None
    if budget is None and device.type == "cpu":
        budget = CPU_BUDGET
    if free is not None:
        budget = free if budget is None else min(budget, free)
    return None if budget is None else int(budget)


def fit_scale(size: tuple[int, int], steps: int, options: Options, layers: tuple[str, ...],
              dtype: torch.dtype, budget: int | None) -> Scale | None:
    """How one scale fits the budget: the whole image with as much L-BFGS history as fits
    (down to 10 pairs), else tiles (the largest first) with at least MIN_HISTORY pairs;
    None if nothing fits. --tile forces tiles wherever the image is larger than one."""
    w, h = size
    wanted = min(lbfgs.HISTORY, steps) if options.optimizer == "lbfgs" else 0
    # --steps auto may hand a scale the steps that settled scales left: count a full history.
    counted = lbfgs.HISTORY + 2 if options.steps == "auto" else steps
    forced = options.tile is not None and max(w, h) > options.tile
    candidates: list[int | None] = [] if forced else [None]
    candidates += [options.tile] if options.tile else [t for t in TILE_SIDES if t < max(w, h)]
    for tile in candidates:
        def need(pairs: int) -> int:
            return scale_bytes(size, tile, counted, pairs, options, layers, dtype)

        floor = min(wanted, 10 if tile is None else MIN_HISTORY)
        pairs = next((m for m in range(wanted, floor - 1, -1) if budget is None or need(m) <= budget), None)
        if pairs is not None:
            return Scale(size, steps, tile, pairs, need(pairs))
    return None


def make_plan(
    vgg: VGG19, device: torch.device, content_size: tuple[int, int], options: Options,
    style_sizes: list[tuple[int, int]] = (),
) -> Plan:
    """Check a run against the network, the limits and the memory, and lay out its scales.
    `style_sizes` are the (cropped) style images' sizes, checked against the layers too."""
    style_layers, content_layers = options.layers
    layers = tuple(dict.fromkeys(style_layers + content_layers))
    _check_network(vgg, layers, options)
    width, height = scale_sizes(*images.fit_size(*content_size, options.size), 1, tiles.ALIGN if options.seamless else 1)[0]
    _check_output_size(width, height, layers, options)
    _check_style_sizes(style_sizes, max(width, height), style_layers, options)
    dtype = pick_dtype(options.precision, device)
    free = available_bytes(device)
    budget = memory_budget(options, device, free)
    held = style_targets_bytes(style_sizes, max(width, height), options)
    budget_left = None if budget is None else budget - held
    scales = [fit_scale(size, steps, options, layers, dtype, budget_left)
              for size, steps in schedule(options, width, height, layers)]
    if scales[-1] is None or None in scales:
        _refuse_memory(width, height, options, layers, dtype, (budget, held), device)
    needed = held + max(scale.memory for scale in scales)
    return Plan(width, height, layers, dtype, scales, needed, free, budget, tiles.margin_for(layers))


def style_targets_bytes(style_sizes: list[tuple[int, int]], long_side: int, options: Options) -> int:
    """What the style targets hold through the run: the sliced loss keeps each painting's
    samples (at most sliced.STYLE_VALUES a layer) and their quantiles, at the final scale's
    style size, and a blend of paintings one more copy of them side by side; the other losses
    keep C×C statistics only."""
    if options.style_loss != "sliced":
        return 0
    held = sum(sliced.style_sample_bytes(style_shapes(*size, options.layers[0]))
               for size in fitted_styles(style_sizes, long_side, options))
    return held * (2 if len(style_sizes) > 1 else 1)


def fitted_styles(style_sizes: list[tuple[int, int]], long_side: int, options: Options) -> list[tuple[int, int]]:
    """The paintings' sizes at the final scale of an output `long_side` px long."""
    return [images.fit_size(sw, sh, options.style_side(long_side, max(sw, sh))) for sw, sh in style_sizes]


def _refuse_memory(width: int, height: int, options: Options, layers: tuple[str, ...], dtype: torch.dtype,
                   budget_held: tuple[int, int], device: torch.device) -> None:
    """Raise the error for a run that fits in no way, naming the largest --size that does
    (`budget_held`: the budget, and what the style targets hold of it)."""
    budget, held = budget_held

    def fits(side: int) -> bool:
        w, h = images.fit_size(width, height, side)
        # The final scale's steps decide its history; --steps-per-scale's may not match a smaller side's scales.
        steps = options.steps_per_scale[-1] if options.steps_per_scale else schedule(options, w, h, layers)[-1][1]
        return fit_scale((w, h), steps, options.replace(tile=None), layers, dtype, budget - held) is not None

    low, high = 1, max(width, height)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    steps = schedule(options, width, height, layers)[-1][1]
    least = scale_bytes((width, height), min(TILE_SIDES), steps, MIN_HISTORY, options, layers, dtype) + held
    raise BrushworkError(
        f"a {width}x{height} run needs at least {least / 2**30:.1f} GiB but {budget / 2**30:.1f} GiB is allowed on "
        f"{device} (--max-memory, or what is free); the largest --size that fits is about {low}"
    )


def _check_network(vgg: VGG19, layers: tuple[str, ...], options: Options) -> None:
    missing = [n for n in layers if n not in vgg.layers]
    if missing:
        raise BrushworkError(f"layers {missing} were cut from this engine's network")
    if options.pooling != vgg.pooling:
        raise BrushworkError(f"this engine was loaded with {vgg.pooling} pooling, not {options.pooling}")


def _check_output_size(width: int, height: int, layers: tuple[str, ...], options: Options) -> None:
    if width * height > options.max_pixels:
        raise BrushworkError(
            f"output of {width}x{height} = {width * height:,} pixels is over the limit of "
            f"{options.max_pixels:,}; use a smaller --size or raise --max-pixels"
        )
    smallest = min_side(layers)
    if min(width, height) < smallest:
        raise BrushworkError(
            f"output of {width}x{height} is too small for layer {max(layers, key=LAYER_INDEX.get)}: "
            f"its shorter side must be at least {smallest} px (raise --size or use shallower layers)"
        )
    if options.tile is not None and not MIN_TILE <= options.tile <= max(width, height):
        raise BrushworkError(
            f"--tile {options.tile} must be from {MIN_TILE} px to the output's longest side ({max(width, height)} px)"
        )


def _check_style_sizes(
    style_sizes: list[tuple[int, int]], long_side: int, style_layers: tuple[str, ...], options: Options
) -> None:
    style_min = min_side(style_layers)
    for fitted in fitted_styles(style_sizes, long_side, options):
        if min(fitted) < style_min:
            raise BrushworkError(
                f"the style image at {fitted[0]}x{fitted[1]} is too small for the chosen layers "
                f"(shorter side must be at least {style_min} px); raise --style-scale or --size"
            )
