"""The plan of a run, worked out before any work: output size, scales and their steps, the
number format, and whether it fits in memory. Everything here is arithmetic on sizes; a run
that cannot work is refused here, with a message that says what would."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import images, lbfgs
from .devices import available_bytes, pick_dtype
from .errors import BrushworkError
from .options import Options
from .vgg import LAYER_INDEX, VGG19

MULTISCALE_FROM = 384  # outputs this large (longest side) or larger default to coarse-to-fine
# How a multi-scale run splits --steps between its scales, coarse to fine.
SCALE_SPLIT = {1: [1.0], 2: [0.7, 0.3], 3: [0.6, 0.27, 0.13]}
# Peak memory of one forward + input-gradient backward, in bytes per activation element up to
# the deepest layer, measured on this project's CPU machine (RSS growth at 256-768 px): autograd
# keeps about one copy of every activation plus the gradient being propagated.
BYTES_PER_ACTIVATION = {torch.float32: 4.8, torch.bfloat16: 3.6}


@dataclass
class Plan:
    """What a run will do, worked out before it starts."""

    width: int
    height: int
    layers: tuple[str, ...]  # every layer the losses read
    dtype: torch.dtype
    scales: list[tuple[tuple[int, int], int]]  # [((w, h), steps)], coarse to fine
    memory_needed: int  # estimated bytes for activations at the largest scale
    free: int | None  # bytes free on the device when planned


def min_side(layers: tuple[str, ...]) -> int:
    """Smallest image side that still leaves a 2×2 feature map at the deepest layer."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    pools = sum(1 for name in list(LAYER_INDEX)[:deepest] if name.startswith("pool"))
    return 2 * 2**pools


def scale_sizes(width: int, height: int, n_scales: int) -> list[tuple[int, int]]:
    """Output sizes of each scale, coarse to fine, halving the side each time."""
    return [images.fit_size(width, height, round(max(width, height) / 2**k)) for k in reversed(range(n_scales))]


def schedule(options: Options, width: int, height: int, layers: tuple[str, ...]) -> list[tuple[tuple[int, int], int]]:
    """[(size, steps)] per scale, coarse to fine.

    Single-scale runs `steps` evaluations at full size. Multi-scale (the default from 384 px)
    starts near 1/4 of the side and doubles it each scale; `steps` is then the total number of
    evaluations, split by SCALE_SPLIT (coarse scales are 4× cheaper per step than the next,
    so most of the work happens where it costs least), unless `steps_per_scale` says
    exactly how many each scale gets.
    """
    long_side = max(width, height)
    n = options.scales
    if n is None:
        n = 3 if long_side >= MULTISCALE_FROM else 1
    smallest = min_side(layers)
    while n > 1 and min(scale_sizes(width, height, n)[0]) < smallest:
        n -= 1
    sizes = scale_sizes(width, height, n)
    if options.steps_per_scale is not None:
        if len(options.steps_per_scale) != n:
            raise BrushworkError(f"--steps-per-scale has {len(options.steps_per_scale)} values for {n} scales")
        steps = list(options.steps_per_scale)
    else:
        n = min(n, options.steps)
        sizes = sizes[-n:]
        split = SCALE_SPLIT[n] if n in SCALE_SPLIT else [1 / n] * n
        steps = [max(1, round(options.steps * part)) for part in split[:-1]]
        steps.append(max(1, options.steps - sum(steps)))  # the finest scale takes the rounding
    return list(zip(sizes, steps))


def activation_elements(width: int, height: int, layers: tuple[str, ...]) -> int:
    """Number of values VGG19 produces up to the deepest of `layers` for one w×h image."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    total, channels = 0, 3
    for name in list(LAYER_INDEX)[: deepest + 1]:
        if name.startswith("pool"):
            width, height = width // 2, height // 2
        elif name.startswith("conv"):
            channels = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}[name[4]]
        total += channels * width * height
    return total


def estimate_peak_bytes(
    width: int, height: int, layers: tuple[str, ...], dtype: torch.dtype, image_copies: int = 0
) -> int:
    """Memory a run needs on top of the loaded network, at its largest scale: activations, plus
    `image_copies` fp32 image-sized vectors the optimizer keeps (L-BFGS: two per history entry)."""
    activations = activation_elements(width, height, layers) * BYTES_PER_ACTIVATION.get(dtype, 4.8)
    return int(activations + image_copies * 3 * width * height * 4)


def optimizer_copies(options: Options, steps: int) -> int:
    """Image-sized vectors the optimizer holds after `steps` steps."""
    return 2 * min(lbfgs.HISTORY, steps) if options.optimizer == "lbfgs" else 2


def largest_fitting_size(size: int, needed: int, free: int) -> int:
    """The largest --size whose estimate fits in `free` bytes (memory grows with the square)."""
    return max(1, int(size * math.sqrt(free / needed) * 0.95))


def make_plan(
    vgg: VGG19, device: torch.device, content_size: tuple[int, int], options: Options,
    style_sizes: list[tuple[int, int]] = (),
) -> Plan:
    """Check a run against the network, the limits and the memory, and lay out its scales.
    `style_sizes` are the (cropped) style images' sizes, checked against the layers too."""
    style_layers, content_layers = options.layers
    layers = tuple(dict.fromkeys(style_layers + content_layers))
    _check_network(vgg, layers, options)
    width, height = images.fit_size(*content_size, options.size)
    _check_output_size(width, height, layers, options)
    _check_style_sizes(style_sizes, max(width, height), style_layers, options)
    dtype = pick_dtype(options.precision, device)
    scales = schedule(options, width, height, layers)
    needed = estimate_peak_bytes(width, height, layers, dtype, optimizer_copies(options, scales[-1][1]))
    free = available_bytes(device)
    if free is not None and needed > free:
        raise BrushworkError(
            f"a {width}x{height} run needs about {needed / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free on "
            f"{device}; the largest --size that fits is about {largest_fitting_size(options.size, needed, free)}"
        )
    return Plan(width, height, layers, dtype, scales, needed, free)


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


def _check_style_sizes(
    style_sizes: list[tuple[int, int]], long_side: int, style_layers: tuple[str, ...], options: Options
) -> None:
    style_min = min_side(style_layers)
    for sw, sh in style_sizes:
        fitted = images.fit_size(sw, sh, max(1, round(long_side * options.style_scale)))
        if min(fitted) < style_min:
            raise BrushworkError(
                f"the style image at {fitted[0]}x{fitted[1]} is too small for the chosen layers "
                f"(shorter side must be at least {style_min} px); raise --style-scale or --size"
            )
