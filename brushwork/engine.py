"""The engine: images in -> VGG features -> losses -> optimizer -> image out, coarse to fine.

`Engine` holds one loaded network (and a cache of style targets) so many runs can share it;
`Engine.run` paints one picture and reports through a callback, leaving progress bars,
snapshots and traces to the caller. A run is a `Painting`: per scale, it builds the
objective (objective.py) and steps the optimizer (lbfgs.py) on it; the plan (plan.py) says
which scales and how many steps, and a `Recorder` (recorder.py) reads back, records and
reports the losses.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image

from . import images, lbfgs, masks, regions, tiles
from .devices import is_out_of_memory, pick_device
from .errors import BrushworkError
from .losses import STYLE_LOSSES, gram_matrix
from .objective import (
    Objective,
    TiledObjective,
    content_loss_for,
    cuda_graphed,
    style_loss_for,
    tiled_features,
    tiled_grams,
)
from .options import Options
from .plan import Plan, Scale, carried_steps, largest_fitting_size, make_plan, min_side
from .temporal import Temporal, TemporalTarget
from .recorder import Progress, Recorder, StepRecord
from .run_description import RunDescription
from .vgg import VGG19, load_vgg19


@dataclass
class Result:
    image: Image.Image
    records: list[StepRecord]
    stop_reason: str  # "done" | "interrupted" | "diverged"
    seconds: float
    size: tuple[int, int]


def image_key(image: Image.Image) -> str:
    """A content hash, so cached targets are shared between runs on the same picture."""
    return hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()


# --init pictures painted by name (content, styles, options, output side) -> picture: filled at
# the top (api.py: "fast"), so that the engine depends on no painter below or beside it.
START_PICTURES: dict[str, Callable[[Image.Image, list[Image.Image], Options, int], Image.Image]] = {}


class Engine:
    """One loaded VGG19 on one device, reusable across runs (the compare grid shares it).

    Style targets (Gram matrices, or what another --style-loss keeps) are cached by (image,
    size, layers, statistics): runs that differ only in weights, steps or optimizer never
    recompute them.
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
        self.cuda_graphs = True  # on CUDA devices, see objective.cuda_graphed; off only to measure what it gains
        if self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = True

    def features(self, image: torch.Tensor, layers: tuple[str, ...], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        # No cast cache: it only serves weights that require grad (ours do not), and it must be
        # off while a CUDA graph records.
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32, cache_enabled=False):
            return self.vgg(image.to(self.device, memory_format=torch.channels_last), layers)

    def style_grams(
        self, key: tuple, image: torch.Tensor, layers: tuple[str, ...], dtype: torch.dtype, tile: int | None = None,
        statistics: Callable[..., torch.Tensor] = gram_matrix, region: torch.Tensor | None = None,
        gather: Callable = torch.add,
    ) -> dict[str, torch.Tensor]:
        """Gram matrices of a style image (or what another style loss keeps of its features,
        its `statistics`), cached; with `tile`, an image larger than a tile is run tile by
        tile (a --style-scale that makes the style as large as a poster). `region`: a
        --style-regions mask (1×1×H×W at the image's size) that weights its positions."""
        region_key = None if region is None else masks.source_key(region)
        cache_key = (key, tuple(image.shape), layers, dtype, statistics, region_key)
        if cache_key not in self._gram_cache:
            h, w = image.shape[-2:]
            weights = None if region is None else masks.layer_maps(region.to(self.device), layers)
            if tile is not None and max(h, w) > tiles.tile_input_side(tile, tiles.margin_for(layers)):
                features = functools.partial(self.features, layers=layers, dtype=dtype)
                grid = tiles.tiles(w, h, tile, tiles.margin_for(layers))
                self._gram_cache[cache_key] = tiled_grams(features, image, layers, grid, statistics, weights, gather)
            else:
                with torch.no_grad():
                    feats = self.features(image, layers, dtype)
                    self._gram_cache[cache_key] = {name: statistics(f, None, weights and weights[name])
                                                   for name, f in feats.items()}
        return self._gram_cache[cache_key]

    def plan(self, content_size: tuple[int, int], options: Options, style_sizes: list[tuple[int, int]] = ()) -> Plan:
        """Check a run against the limits (size, layers, memory) and lay out its scales."""
        return make_plan(self.vgg, self.device, content_size, options, style_sizes)

    def estimate_seconds(self, plan: Plan, side: int = 256) -> float | None:
        """How long a planned run will take, from one timed evaluation (forward and backward
        through the run's layers) of a side×side image, scaled by each scale's cost in pixels.
        An estimate from above for small runs, whose coarse steps cost more per pixel; None
        where even that evaluation runs out of memory (the run itself will then say so)."""
        side = min(side, plan.width, plan.height)
        x = torch.rand(1, 3, side, side, device=self.device, requires_grad=True)
        try:
            for _ in range(2):  # the first call sets up the convolution kernels
                started = time.perf_counter()
                feats = self.features(x, plan.layers, plan.dtype)
                sum(f.float().mean() for f in feats.values()).backward()
                float(x.grad.sum())  # waits for the device
                seconds = time.perf_counter() - started
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            return None
        return seconds / side**2 * sum(scale.steps * plan.cost(scale) for scale in plan.scales)

    def run(
        self,
        content: Image.Image,
        styles: list[Image.Image],
        options: Options,
        callback: Callable[[Progress], None] | None = None,
        start: torch.Tensor | None = None,
        temporal: TemporalTarget | None = None,
        run: RunDescription | None = None,
        plan: Plan | None = None,
    ) -> Result:
        """Stylize `content` (RGB PIL) with `styles`; see Options for the knobs. The options are
        checked where the run comes in, before any network is loaded, by resolving them into the
        RunDescription that the painting reads (`run`: api.run and the commands pass theirs);
        without one (the web form and a batch's plan checked their options when they were
        queued), it is made here, and checked then: none is made from options that cannot run.
        The plan and --init's picture still read the Options; `plan` is the one a caller made
        already to print it (stylize), else it is made here. A video frame (video.py) passes
        `start`, the image to start from instead of --init (1×3×H×W), and `temporal`, what the
        frame is held to with --temporal-weight."""
        run = run or RunDescription.from_options(options, len(styles))
        run_masks = regions.prepare(run, content, styles)
        styles = images.crop_styles(styles, run.style_crop)
        plan = plan or self.plan(content.size, options, [s.size for s in styles])
        init_image = start if start is not None else starting_picture(content, styles, options, max(plan.width, plan.height))
        painting = Painting(self, run, plan, content, styles, init_image, callback, run_masks, temporal)
        try:
            painting.paint()
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            size = options.size * 3 // 4
            if plan.free is not None:
                size = min(size, largest_fitting_size(options.size, plan.memory_needed, plan.free))
            raise BrushworkError(
                f"out of memory on {self.device} at {plan.width}x{plan.height}; try --size {size} or smaller"
            ) from e
        return painting.result()


def starting_picture(content: Image.Image, styles: list[Image.Image], options: Options, side: int) -> Image.Image | None:
    """--init as a picture: an image file, or one that START_PICTURES paints (fast: the
    arbitrary-style network's painting, which the optimization then refines). None for content
    and noise, which the Painting makes itself."""
    if options.init in START_PICTURES:
        return START_PICTURES[options.init](content, styles, options, side)
    if options.init in ("content", "noise"):
        return None
    return images.load_image(options.init)


class Painting:
    """One run of the engine: the inputs prepared once, then coarse to fine, per scale an
    objective and an optimizer; its Recorder reads the losses back, records and reports them."""

    def __init__(
        self,
        engine: Engine,
        run: RunDescription,
        plan: Plan,
        content: Image.Image,
        styles: list[Image.Image],
        init_image: Image.Image | torch.Tensor | None,
        callback: Callable[[Progress], None] | None,
        run_masks: regions.RunMasks | None = None,
        temporal: TemporalTarget | None = None,
    ):
        self.engine, self.run, self.plan = engine, run, plan
        self.masks, self.temporal = run_masks, temporal
        started = time.perf_counter()
        self.content = images.to_tensor(content)
        if run.seamless:
            self.content = images.make_periodic(images.resize(self.content, (plan.width, plan.height)))
        self.styles = [images.to_tensor(s) for s in styles]
        self.style_keys = [image_key(s) for s in styles]
        if run.preserve_color != "none":
            # Recolour the style images once, against the content at output size.
            reference = images.resize(self.content, (plan.width, plan.height))
            recolor = images.match_histogram if run.preserve_color == "histogram" else images.match_luminance
            self.styles = [recolor(s, reference) for s in self.styles]
            self.style_keys = [f"{k}:{run.preserve_color}:{image_key(content)}" for k in self.style_keys]
        self.x = self._initial_image(init_image, plan.scales[0].size)
        # Reading a loss value waits for the GPU; on accelerators read every few steps instead.
        sync_every = 1 if engine.device.type == "cpu" else 10
        shape = (len(plan.scales), plan.total_steps)
        self.recorder = Recorder(started, shape, callback, self.finish, sync_every)

    def paint(self) -> None:
        """Every scale, coarse to fine; the result is left in self.x (or the recorder's last_good)."""
        optimizer, spare = None, 0.0  # spare: pixels' evaluations settled scales left (--steps auto)
        try:
            for index, scale in enumerate(self.plan.scales):
                objective = self.objective_at(index, scale)
                previous_pixels = self.x.shape[-1] * self.x.shape[-2]
                x = images.resize(self.x, scale.size).to(self.engine.device).contiguous().requires_grad_(True)
                self.x = x
                optimizer = self._optimizer(x, scale.history, optimizer, previous_pixels)
                steps, spare = carried_steps(scale.steps, spare, scale.size)
                if not self.optimize_scale(index, x, objective, optimizer, steps):
                    return
                spare += (steps - self.recorder.steps_at(index)) * scale.size[0] * scale.size[1]
                self.x = x.detach().clamp(0, 1)
        except KeyboardInterrupt:
            self.recorder.stop_reason = "interrupted"
        finally:
            self.engine.vgg.set_wrap(False)

    def objective_at(self, index: int, scale: Scale) -> Objective | regions.KeepContent:
        """The losses at one scale: content targets at this size, style targets from the style
        images resized to match (cached across runs by the engine); tiled if the plan says so;
        with masks, the style term over regions and the picture composed through the mask."""
        run, dtype, engine = self.run, self.plan.dtype, self.engine
        content_layers = run.content_layers
        engine.vgg.set_wrap(False)  # style images are not tori, whatever the output is
        grams = [self._style_targets(i, scale, index == len(self.plan.scales) - 1) for i in range(len(self.styles))]
        if self.masks is None:
            style = style_loss_for(run, grams, index)
        else:
            style = self.masks.style_term(run, grams, index, scale.size, engine.device)
        grid = tiles.tiles(*scale.size, scale.tile, self.plan.margin, run.seamless) if scale.tile else None
        engine.vgg.set_wrap(run.seamless and grid is None)  # tiles wrap through their margins instead
        features = functools.partial(engine.features, layers=self.plan.layers, dtype=dtype)
        content = self._content_at(scale.size)
        if grid is None:
            with torch.no_grad():
                content_targets = engine.features(content, content_layers, dtype)
            objective = Objective.for_run(run, features, content_loss_for(run, content_targets), style)
        else:
            content_targets = tiled_features(features, content.to(engine.device), content_layers, grid)
            objective = TiledObjective.for_run(
                run, features, content_loss_for(run, content_targets), style, tiles=grid
            )
        if self.temporal is not None:
            objective = Temporal(objective, self.temporal.at(scale.size, engine.device), run.temporal_weight)
        if self.masks is None:
            return objective
        mask = self.masks.picture_mask(scale.size).to(engine.device)
        return regions.KeepContent(objective, mask, content.to(engine.device))

    def _style_targets(self, i: int, scale: Scale, final_scale: bool) -> dict[str, torch.Tensor]:
        """Style image i's targets at this scale (what its style loss keeps of its features),
        over its --style-regions mask if it has one."""
        style_layers = self.run.style_layers
        style = self._style_at(self.styles[i], scale.size, final_scale)
        region = None if self.masks is None else self.masks.style_regions[i]
        if region is not None:
            region = masks.resize(region, (style.shape[-1], style.shape[-2]))
        kind = STYLE_LOSSES[self.run.style_loss]
        return self.engine.style_grams((self.style_keys[i],), style, style_layers, self.plan.dtype, scale.tile,
                                       kind.statistics, region, kind.gather)

    def _content_at(self, size: tuple[int, int]) -> torch.Tensor:
        """The content at `size`, as the optimization sees it (gray in luminance mode)."""
        content = images.resize(self.content, size)
        return images.luminance(content) if self.run.preserve_color == "luminance" else content

    def _style_at(self, style: torch.Tensor, size: tuple[int, int], final_scale: bool) -> torch.Tensor:
        """The style image at the size this scale uses: --style-scale times the output's long
        side; coarse scales may enlarge it to stay computable (the plan checked the final one)."""
        sw, sh = style.shape[-1], style.shape[-2]
        long_side = self.run.style_side(max(size), max(sw, sh))
        if not final_scale:
            long_side = max(long_side, math.ceil(min_side(self.run.style_layers) * max(sw, sh) / min(sw, sh)))
        return images.resize(style, images.fit_size(sw, sh, long_side))

    def _optimizer(
        self, x: torch.Tensor, history: int, previous: lbfgs.LBFGS | torch.optim.Adam | None, previous_pixels: int
    ) -> lbfgs.LBFGS | torch.optim.Adam:
        lr = self.run.learning_rate
        if self.run.optimizer == "adam":
            return torch.optim.Adam([x], lr=lr)
        # The losses are means over positions, so the inverse Hessian grows with the pixel
        # count: the last scale's estimate, scaled, makes a sound first step here.
        h_diag = None if previous is None else previous.h_diag * (x.shape[-1] * x.shape[-2]) / previous_pixels
        return lbfgs.LBFGS(x, lr, history, h_diag)

    def optimize_scale(self, index: int, x: torch.Tensor, objective: Objective, optimizer, n_steps: int) -> bool:
        """`n_steps` optimizer steps on x; False if the run diverged."""
        evaluate = functools.partial(objective, x)
        if self.engine.cuda_graphs and self.engine.device.type == "cuda" and objective.graphable:
            evaluate = cuda_graphed(evaluate, x)
        losses: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            terms = evaluate().clone()  # a replayed graph rewrites its output in place
            losses.append(terms)
            return terms[3]

        self.recorder.start_scale()
        for i in range(n_steps):
            before = x.detach().clone()
            optimizer.step(closure)
            if self.run.optimizer == "adam":
                with torch.no_grad():
                    x.clamp_(0, 1)
            if not self.recorder.stepped(before, last=i == n_steps - 1):
                continue
            if not self.recorder.read(index, x, losses):
                return False
            if self.run.auto_steps and self.recorder.converged(index):
                break
        return True

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Optimized image -> output look: composed onto the content through the mask (what the
        masked objective scored), and in luminance mode with the content's colours put back."""
        x = x.detach().float().cpu().clamp(0, 1)
        if self.masks is not None:
            size = (x.shape[-1], x.shape[-2])
            x = regions.compose(x, self._content_at(size), self.masks.picture_mask(size))
        if self.run.preserve_color == "luminance":
            return images.with_chroma_of(x, images.resize(self.content, (x.shape[-1], x.shape[-2])))
        return x

    def result(self) -> Result:
        recorder = self.recorder
        image = self.finish(recorder.output(self.x))
        if tuple(image.shape[-2:]) != (self.plan.height, self.plan.width):
            image = images.resize(image, (self.plan.width, self.plan.height))
        size = (self.plan.width, self.plan.height)
        return Result(images.to_pil(image), recorder.records, recorder.stop_reason, recorder.seconds(), size)

    def _initial_image(self, init_image: Image.Image | torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if isinstance(init_image, torch.Tensor):
            return images.resize(init_image, size).clone()
        if init_image is not None:
            return images.resize(images.to_tensor(init_image), size)
        if self.run.init == "noise":
            w, h = size
            return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(self.run.seed))
        return self._content_at(size).clone()  # not the content itself: x is changed in place


@functools.lru_cache(maxsize=4)
def get_engine(
    device: str = "auto",
    weights: str | None = None,
    weights_format: str = "auto",
    pooling: str = "max",
    layers: tuple[str, ...] | None = None,
) -> Engine:
    """A loaded network, kept so that repeated calls with the same setup skip the load."""
    return Engine(device=device, weights=weights, weights_format=weights_format, pooling=pooling, layers=layers)


def engine_for(options: Options) -> Engine:
    """The engine a run needs, its network cut after the deepest layer the run uses."""
    style_layers, content_layers = options.layers
    layers = tuple(sorted(set(style_layers + content_layers)))
    return get_engine(options.device, options.weights, options.weights_format, options.pooling, layers)
