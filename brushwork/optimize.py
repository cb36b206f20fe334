"""The engine: images in -> VGG features -> losses -> optimizer -> image out, coarse to fine.

`Options` is every knob of a run; `Engine` holds one loaded network (and a cache of style
targets) so many runs can share it; `Engine.run` does the work and reports through a
callback, leaving progress bars, snapshots and traces to the caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from . import images
from .errors import BrushworkError
from .losses import ContentLoss, StyleLoss, TVLoss, gram_matrix
from .presets import DEFAULT_PRESET, get_preset
from .vgg import LAYER_INDEX, VGG19, check_layers, load_vgg19

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
COLOR_MODES = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "fp32", "bf16")
MULTISCALE_FROM = 384  # outputs this large (longest side) or larger default to coarse-to-fine
DEFAULT_MAX_PIXELS = 2048 * 2048
LBFGS_HISTORY = 100
MAX_PIXEL_STEP = 0.25
# How a multi-scale run splits --steps between its scales, coarse to fine.
SCALE_SPLIT = {1: [1.0], 2: [0.7, 0.3], 3: [0.6, 0.27, 0.13]}


@dataclass
class Options:
    """Every setting of a stylization run. The CLI flags map one to one onto these fields."""

    preset: str = DEFAULT_PRESET
    style_layers: tuple[str, ...] | None = None  # None: the preset's
    content_layers: tuple[str, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None  # None: equal
    style_weights: tuple[float, ...] | None = None  # blend of several style images; None: equal
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 0.0
    optimizer: str = "lbfgs"
    lr: float | None = None  # None: 1.0 for L-BFGS, 0.02 for Adam
    steps: int = 300
    scales: int | None = None  # None: 3 from 384 px up, else 1
    steps_per_scale: tuple[int, ...] | None = None  # None: derived from `steps`, see schedule()
    init: str = "content"  # content | noise | path to an image
    seed: int = 0
    size: int = 512  # longest side of the output
    style_scale: float = 1.0  # style image's longest side relative to the output's
    style_crop: tuple[float, float, float, float] | None = None
    preserve_color: str = "none"
    pooling: str = "max"
    weights: str | None = None
    weights_format: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    @property
    def layers(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(style layers, content layers) after applying the preset and overrides."""
        preset = get_preset(self.preset)
        return tuple(self.style_layers or preset.style_layers), tuple(self.content_layers or preset.content_layers)

    def validate(self, n_styles: int) -> None:
        """Raise BrushworkError for anything that cannot run, before any work is done."""
        style_layers, content_layers = self.layers
        check_layers(style_layers, "style layer")
        check_layers(content_layers, "content layer")

        def finite_non_negative(name: str, values) -> None:
            for v in values:
                if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise BrushworkError(f"{name} must be finite and non-negative, got {v}")

        finite_non_negative("--content-weight", [self.content_weight])
        finite_non_negative("--style-weight", [self.style_weight])
        finite_non_negative("--tv-weight", [self.tv_weight])
        if self.style_layer_weights is not None:
            finite_non_negative("--style-layer-weights", self.style_layer_weights)
            if len(self.style_layer_weights) != len(style_layers):
                raise BrushworkError(
                    f"--style-layer-weights has {len(self.style_layer_weights)} values "
                    f"for {len(style_layers)} style layers ({', '.join(style_layers)})"
                )
            if sum(self.style_layer_weights) <= 0:
                raise BrushworkError("--style-layer-weights must not all be zero")
        if self.style_weights is not None:
            finite_non_negative("--style-weights", self.style_weights)
            if len(self.style_weights) != n_styles:
                raise BrushworkError(f"--style-weights has {len(self.style_weights)} values for {n_styles} style images")
            if sum(self.style_weights) <= 0:
                raise BrushworkError("--style-weights must not all be zero")
        if self.optimizer not in OPTIMIZERS:
            raise BrushworkError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BrushworkError(f"--lr must be a positive number, got {self.lr}")
        if not (isinstance(self.seed, int) and -(2**63) <= self.seed < 2**64):
            raise BrushworkError(f"--seed must be a whole number from -2**63 to 2**64 - 1, got {self.seed}")
        if self.steps < 1:
            raise BrushworkError(f"--steps must be at least 1, got {self.steps}")
        if self.scales is not None and self.scales < 1:
            raise BrushworkError(f"--scales must be at least 1, got {self.scales}")
        if self.steps_per_scale is not None and any(s < 1 for s in self.steps_per_scale):
            raise BrushworkError("--steps-per-scale values must be at least 1")
        if self.size < 1:
            raise BrushworkError(f"--size must be positive, got {self.size}")
        if not (math.isfinite(self.style_scale) and self.style_scale > 0):
            raise BrushworkError(f"--style-scale must be a positive number, got {self.style_scale}")
        if self.preserve_color not in COLOR_MODES:
            raise BrushworkError(f"unknown color mode {self.preserve_color!r}; use {', '.join(COLOR_MODES)}")
        if self.precision not in PRECISIONS:
            raise BrushworkError(f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.init not in ("content", "noise") and not Path(self.init).is_file():
            raise BrushworkError(f"--init must be content, noise or an image file; {self.init!r} is none of these")
        if n_styles < 1:
            raise BrushworkError("at least one style image is needed")


@dataclass
class StepRecord:
    """One optimizer evaluation, as written to a --trace file."""

    step: int
    scale: int
    width: int
    height: int
    content: float
    style: float
    tv: float
    total: float
    seconds: float


@dataclass
class Progress:
    """What a callback sees after each step whose losses were read."""

    step: int
    total_steps: int
    scale: int
    n_scales: int
    record: StepRecord
    image: torch.Tensor  # the image being optimized, at the current scale (do not modify)
    _finish: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    def preview(self) -> Image.Image:
        """The current image as the final output would look (colour restored if preserving)."""
        return images.to_pil(self._finish(self.image.detach()))


@dataclass
class Result:
    image: Image.Image
    records: list[StepRecord]
    stop_reason: str  # "done" | "interrupted" | "diverged"
    seconds: float
    size: tuple[int, int]


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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise BrushworkError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BrushworkError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BrushworkError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: CPUs where oneDNN runs bf16 convolutions natively."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


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


# Peak memory of one forward + input-gradient backward, in bytes per activation element up to
# the deepest layer, measured on this project's CPU machine (RSS growth at 256-768 px): autograd
# keeps about one copy of every activation plus the gradient being propagated.
BYTES_PER_ACTIVATION = {torch.float32: 4.8, torch.bfloat16: 3.6}


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
    return 2 * min(LBFGS_HISTORY, steps) if options.optimizer == "lbfgs" else 2


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the activations will live (None when the platform does not say)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def largest_fitting_size(size: int, needed: int, free: int) -> int:
    """The largest --size whose estimate fits in `free` bytes (memory grows with the square)."""
    return max(1, int(size * math.sqrt(free / needed) * 0.95))


class LBFGS:
    """L-BFGS on one image tensor, one evaluation per step, without line search.

    The update of torch.optim.LBFGS(max_iter=1, no line search), with three changes:
    * pixels are clamped to [0, 1] after each step and the step actually taken is what enters
      the curvature history. Unclamped, a few percent of the pixels drift out of range, where
      the style loss likes them, and clamping the output afterwards costs several percent of
      the objective;
    * it never reads a value back to the host (torch's reads the loss and tests the curvature
      with Python `if`s), so on a GPU the steps queue up without waiting: a pair without
      positive curvature, which torch drops, keeps its slot in the history but is masked out
      of the product (so a full history holds fewer useful pairs than torch's would);
    * the product of the inverse-Hessian estimate with the gradient is computed in the compact
      form of Byrd, Nocedal & Schnabel (1994): five matrix-vector products with the stored
      pairs and two m×m triangular solves, where the two-loop recursion runs about 8 tiny
      kernels per pair. On a GPU those launches, not the arithmetic, were most of a step
      (12 ms against 3 ms for the network's forward and backward at 512 px on an H200).
    """

    def __init__(
        self,
        param: torch.Tensor,
        lr: float = 1.0,
        history_size: int = LBFGS_HISTORY,
        h_diag: torch.Tensor | None = None,
    ):
        """`h_diag`: a known scale of the inverse Hessian (from the previous, coarser scale) for
        the first step; without one the first step is torch's cautious min(1, 1/‖g‖₁)."""
        self.param, self.lr, self.history_size = param, lr, history_size
        self.history: torch.Tensor | None = None  # m × 2 × N: (s_i, y_i) in slot i, filled cyclically
        self.sy: torch.Tensor | None = None  # m × m, s_i·y_j by slot
        self.yy: torch.Tensor | None = None  # m × m, y_i·y_j by slot
        self.count = 0  # pairs stored so far; the oldest is overwritten once m are stored
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self.first_h_diag = h_diag
        self.h_diag = torch.ones((), device=param.device) if h_diag is None else h_diag
        # The m×m algebra in float64 (cheap, and R can be ill-conditioned); MPS has no float64.
        self.small_dtype = torch.float32 if param.device.type == "mps" else torch.float64

    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store the pair (s, y) and the dot products it adds to sy and yy."""
        m, n = self.history_size, s.numel()
        if self.history is None:
            self.history = torch.empty(m, 2, n, device=s.device, dtype=torch.float32)
            self.sy = torch.zeros(m, m, device=s.device, dtype=torch.float32)
            self.yy = torch.zeros(m, m, device=s.device, dtype=torch.float32)
        k, used = self.count % m, min(self.count + 1, m)
        self.history[k, 0], self.history[k, 1] = s, y
        # Three matrix-vector products (one (2m×N)·(N×2) product is 2-3× slower on a CPU).
        stored_s, stored_y = self.history[:used, 0], self.history[:used, 1]
        self.sy[:used, k] = stored_s @ y
        self.sy[k, :used] = stored_y @ s
        self.yy[:used, k] = self.yy[k, :used] = stored_y @ y
        self.count += 1
        ys, yy = self.sy[k, k], self.yy[k, k]
        self.h_diag = torch.where(ys > 1e-10, ys / yy, self.h_diag)

    def _inverse_hessian_times(self, g: torch.Tensor) -> torch.Tensor:
        """H·g for H = the L-BFGS inverse-Hessian estimate with H0 = h_diag·I (compact form:
        H·g = γg + S·u − γY·p, p = R⁻¹Sᵀg, u = R⁻ᵀ((D + γYᵀY)p − γYᵀg), R = triu(SᵀY), D = diag(SᵀY))."""
        m = self.history_size
        used = min(self.count, m)
        oldest = self.count % m if self.count >= m else 0  # chronological order = slots rolled by this
        history = self.history[:used].view(2 * used, -1)
        dt = self.small_dtype

        def chronological(t: torch.Tensor) -> torch.Tensor:
            return t.to(dt).roll([-oldest] * t.dim(), list(range(t.dim())))

        dots = history @ g
        a, c = chronological(dots[0::2]), chronological(dots[1::2])
        sy, yy = chronological(self.sy[:used, :used]), chronological(self.yy[:used, :used])
        gamma = self.h_diag.to(dt)
        # Pairs without positive curvature are left out: their rows and columns are decoupled.
        w = (torch.diagonal(sy) > 1e-10).to(dt)
        keep, left_out = w[:, None] * w[None, :], torch.diag(1 - w)
        r = torch.triu(sy) * keep + left_out
        middle = (torch.diag(torch.diagonal(sy)) + gamma * yy) * keep + left_out
        p = torch.linalg.solve_triangular(r, (a * w)[:, None], upper=True)
        u = torch.linalg.solve_triangular(r.T, middle @ p - (gamma * c * w)[:, None], upper=False)
        coefficients = torch.cat([u, -gamma * p], 1).roll(oldest, 0).reshape(-1)  # interleaved like history's rows
        return self.h_diag * g + history.T @ coefficients.to(g.dtype)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        grad = self.param.grad.reshape(-1).float()
        # Pixels held at 0 or 1 by the clamp whose gradient pushes them further out are not free
        # to move: leave them out of the step and of the curvature pairs (projected gradient).
        flat = self.param.detach().reshape(-1)
        grad = grad.masked_fill(((flat <= 0) & (grad > 0)) | ((flat >= 1) & (grad < 0)), 0)
        if self.prev_grad is None:
            direction = -grad
            if self.first_h_diag is None:
                t = (1.0 / grad.abs().sum()).clamp(max=1.0) * self.lr  # torch's first, cautious step
            else:
                t = self.first_h_diag * self.lr
        else:
            self._remember(self.prev_step, grad - self.prev_grad)
            direction = -self._inverse_hessian_times(grad)
            t = self.lr
        self.prev_grad = grad
        step = direction * t
        # No pixel moves more than MAX_PIXEL_STEP in one step: a curvature pair spoiled by bf16
        # noise (tiny steps right after a rescale) must not throw the image away.
        step = step * (MAX_PIXEL_STEP / step.abs().max().clamp_min(1e-12)).clamp(max=1.0)
        before = self.param.detach().clone()
        self.param.add_(step.view_as(self.param)).clamp_(0, 1)
        # The step actually taken after clamping to valid pixels, so the curvature pairs stay true.
        self.prev_step = (self.param.detach() - before).reshape(-1).float()
        return loss.detach()


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


def image_key(image: Image.Image) -> str:
    """A content hash, so cached targets are shared between runs on the same picture."""
    return hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()


class Engine:
    """One loaded VGG19 on one device, reusable across runs (the compare grid shares it).

    Style Gram targets are cached by (image, size, layers): runs that differ only in weights,
    steps or optimizer never recompute them.
    """

    def __init__(
        self,
        device: str = "auto",
        weights: str | None = None,
        weights_format: str = "auto",
        pooling: str = "max",
        layers: tuple[str, ...] | None = None,
    ):
        self.device = pick_device(device)
        self.vgg: VGG19 = load_vgg19(weights, pooling, layers, weights_format).to(self.device)
        self.vgg.to(memory_format=torch.channels_last)
        self._gram_cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self.cuda_graphs = True  # on CUDA devices, see cuda_graphed; off only to measure what it gains
        if self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = True

    def _autocast(self, dtype: torch.dtype):
        # No cast cache: it only serves weights that require grad (ours do not), and it must be
        # off while a CUDA graph records.
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32, cache_enabled=False)

    def features(self, image: torch.Tensor, layers: tuple[str, ...], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        with self._autocast(dtype):
            return self.vgg(image.to(self.device, memory_format=torch.channels_last), layers)

    def style_grams(self, key: tuple, image: torch.Tensor, layers: tuple[str, ...], dtype: torch.dtype):
        cache_key = (key, tuple(image.shape), layers, dtype)
        if cache_key not in self._gram_cache:
            with torch.no_grad():
                feats = self.features(image, layers, dtype)
                self._gram_cache[cache_key] = {name: gram_matrix(f) for name, f in feats.items()}
        return self._gram_cache[cache_key]

    def plan(
        self, content_size: tuple[int, int], options: Options, style_sizes: list[tuple[int, int]] = ()
    ) -> "Plan":
        """Check a run against the limits (size, layers, memory) and lay out its scales.

        `style_sizes` are the (cropped) style images' sizes, checked against the layers too."""
        style_layers, content_layers = options.layers
        layers = tuple(dict.fromkeys(style_layers + content_layers))
        missing = [n for n in layers if n not in self.vgg.layers]
        if missing:
            raise BrushworkError(f"layers {missing} were cut from this engine's network")
        if options.pooling != self.vgg.pooling:
            raise BrushworkError(f"this engine was loaded with {self.vgg.pooling} pooling, not {options.pooling}")
        dtype = pick_dtype(options.precision, self.device)
        width, height = images.fit_size(*content_size, options.size)
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
        style_min = min_side(style_layers)
        for sw, sh in style_sizes:
            fitted = images.fit_size(sw, sh, max(1, round(max(width, height) * options.style_scale)))
            if min(fitted) < style_min:
                raise BrushworkError(
                    f"the style image at {fitted[0]}x{fitted[1]} is too small for the chosen layers "
                    f"(shorter side must be at least {style_min} px); raise --style-scale or --size"
                )
        scales = schedule(options, width, height, layers)
        needed = estimate_peak_bytes(width, height, layers, dtype, optimizer_copies(options, scales[-1][1]))
        free = available_bytes(self.device)
        if free is not None and needed > free:
            raise BrushworkError(
                f"a {width}x{height} run needs about {needed / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free on "
                f"{self.device}; the largest --size that fits is about {largest_fitting_size(options.size, needed, free)}"
            )
        return Plan(width, height, layers, dtype, scales, needed, free)

    def run(
        self,
        content: Image.Image,
        styles: list[Image.Image],
        options: Options,
        callback: Callable[[Progress], None] | None = None,
    ) -> Result:
        """Stylize `content` (RGB PIL) with `styles`; see Options for the knobs."""
        options.validate(len(styles))
        if options.style_crop is not None:
            styles = [images.crop(s, options.style_crop) for s in styles]
        init_image = images.load_image(options.init) if options.init not in ("content", "noise") else None
        plan = self.plan(content.size, options, [s.size for s in styles])
        style_layers, content_layers = options.layers
        started = time.perf_counter()

        style_keys = [image_key(s) for s in styles]
        content_full = images.to_tensor(content)
        style_full = [images.to_tensor(s) for s in styles]
        if options.preserve_color != "none":
            # Recolour the style images once, against the content at output size.
            reference = images.resize(content_full, (plan.width, plan.height))
            recolor = images.match_histogram if options.preserve_color == "histogram" else images.match_luminance
            style_full = [recolor(s, reference) for s in style_full]
            style_keys = [f"{k}:{options.preserve_color}:{image_key(content)}" for k in style_keys]

        def finish(x: torch.Tensor) -> torch.Tensor:
            """Optimized image -> output look: in luminance mode, put the content's colours back."""
            x = x.detach().float().cpu().clamp(0, 1)
            if options.preserve_color == "luminance":
                return images.with_chroma_of(x, images.resize(content_full, (x.shape[-1], x.shape[-2])))
            return x

        style_layer_weights = dict(zip(style_layers, options.style_layer_weights or [1.0] * len(style_layers)))
        style_weights = list(options.style_weights or [1.0] * len(styles))
        tv_loss = TVLoss()
        lr = options.lr or DEFAULT_LR[options.optimizer]
        total_steps = sum(steps for _, steps in plan.scales)
        # Reading a loss value waits for the GPU; on accelerators read every few steps instead.
        sync_every = 1 if self.device.type == "cpu" else 10

        x = self._initial_image(options, content_full, init_image, plan.scales[0][0])
        records: list[StepRecord] = []
        stop_reason = "done"
        step = 0
        last_good = x.clone()
        optimizer: LBFGS | torch.optim.Adam | None = None
        try:
            for scale_index, ((w, h), n_steps) in enumerate(plan.scales):
                content_s = images.resize(content_full, (w, h))
                if options.preserve_color == "luminance":
                    content_s = images.luminance(content_s)
                final_scale = scale_index == len(plan.scales) - 1
                grams = []
                for key, style in zip(style_keys, style_full):
                    sw, sh = style.shape[-1], style.shape[-2]
                    style_size = max(1, round(max(w, h) * options.style_scale))
                    if not final_scale:  # coarse scales may enlarge the style to stay computable (plan checked the final one)
                        style_size = max(style_size, math.ceil(min_side(style_layers) * max(sw, sh) / min(sw, sh)))
                    style_s = images.resize(style, images.fit_size(sw, sh, style_size))
                    grams.append(self.style_grams((key,), style_s, style_layers, plan.dtype))
                style_loss = StyleLoss(StyleLoss.blend(grams, style_weights), style_layer_weights)
                with torch.no_grad():
                    content_targets = self.features(content_s, content_layers, plan.dtype)
                content_loss = ContentLoss(content_targets, dict.fromkeys(content_layers, 1.0))

                x_pixels = x.shape[-1] * x.shape[-2]
                x = images.resize(x, (w, h)).to(self.device).contiguous()
                x.requires_grad_(True)
                if options.optimizer == "lbfgs":
                    # The losses are means over positions, so the inverse Hessian grows with the
                    # pixel count: the last scale's estimate, scaled, makes a sound first step here.
                    h_diag = None if optimizer is None else optimizer.h_diag * (w * h) / x_pixels
                    optimizer = LBFGS(x, lr, min(LBFGS_HISTORY, n_steps), h_diag)
                else:
                    optimizer = torch.optim.Adam([x], lr=lr)
                losses: list[torch.Tensor] = []

                def evaluate() -> torch.Tensor:
                    """[content, style, tv, total] at x, and the gradient in x.grad."""
                    x.grad = None
                    feats = self.features(x, plan.layers, plan.dtype)
                    c, s, t = content_loss(feats), style_loss(feats), tv_loss(x)
                    total = options.content_weight * c + options.style_weight * s + options.tv_weight * t
                    total.backward()
                    return torch.stack([c, s, t, total]).detach()

                if self.cuda_graphs and self.device.type == "cuda":
                    evaluate = cuda_graphed(evaluate, x)

                def closure() -> torch.Tensor:
                    terms = evaluate().clone()  # a replayed graph rewrites its output in place
                    losses.append(terms)
                    return terms[3]

                pending: list[tuple[int, torch.Tensor]] = []  # (step, image evaluated)
                last_read = time.perf_counter() - started
                for i in range(n_steps):
                    before = x.detach().clone()
                    optimizer.step(closure)
                    step += 1
                    if options.optimizer == "adam":
                        with torch.no_grad():
                            x.clamp_(0, 1)
                    pending.append((step, before))
                    if len(pending) < sync_every and i < n_steps - 1:
                        continue
                    values = torch.stack(losses[-len(pending):]).tolist()  # waits for the device
                    # When each step finished: a GPU runs the queued steps one after another
                    # between two reads, so their end times are spread evenly over that window.
                    now = time.perf_counter() - started
                    for j, ((at, evaluated), (c, s, t, total)) in enumerate(zip(pending, values)):
                        if not math.isfinite(total):
                            stop_reason = "diverged"
                            break
                        last_good = evaluated
                        seconds = last_read + (now - last_read) * (j + 1) / len(pending)
                        records.append(StepRecord(at, scale_index, w, h, c, s, t, total, seconds))
                    last_read = now
                    pending.clear()
                    if stop_reason != "done":
                        break
                    if callback is not None:
                        callback(Progress(step, total_steps, scale_index, len(plan.scales), records[-1], x, finish))
                if stop_reason != "done":
                    break
                x = x.detach().clamp(0, 1)
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        except RuntimeError as e:  # CUDA raises OutOfMemoryError; the CPU and MPS allocators plain RuntimeErrors
            message = str(e).lower()
            if not (isinstance(e, torch.OutOfMemoryError) or "out of memory" in message or "can't allocate" in message):
                raise
            size = options.size * 3 // 4
            if plan.free is not None:
                size = min(size, largest_fitting_size(options.size, plan.memory_needed, plan.free))
            raise BrushworkError(
                f"out of memory on {self.device} at {plan.width}x{plan.height}; try --size {size} or smaller"
            ) from e
        image = finish(last_good if stop_reason == "diverged" else x)
        if tuple(image.shape[-2:]) != (plan.height, plan.width):
            image = images.resize(image, (plan.width, plan.height))
        return Result(images.to_pil(image), records, stop_reason, time.perf_counter() - started, (plan.width, plan.height))

    def _initial_image(
        self, options: Options, content: torch.Tensor, init_image: Image.Image | None, size: tuple[int, int]
    ) -> torch.Tensor:
        if init_image is not None:
            return images.resize(images.to_tensor(init_image), size)
        if options.init == "noise":
            w, h = size
            return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(options.seed))
        x = images.resize(content, size)
        return images.luminance(x) if options.preserve_color == "luminance" else x
