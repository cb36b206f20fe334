"""The resolved run description: what the engine, objective and regions read of a run.

`Options` is what a user says (33 fields, most of them optional: None means "the preset's",
"equal", "the optimizer's default"); the painting below the engine's door needs far fewer
things, and each of them settled. `RunDescription.from_options` checks the options
(Options.validate) and resolves them once: the preset's layers, the layer and blend weights
filled in, the learning rate, --steps auto as a switch. So the code that paints never meets an
unchecked or half-resolved setting, and a reader sees in one place what a run depends on.
The plan (plan.py) still takes the Options: it checks limits and speaks in flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import masks
from .options import Options, fitted_style_side


@dataclass(frozen=True)
class RunDescription:
    """One checked run, resolved: layers, weights, style loss, colour mode, start and masks."""

    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]  # one per style layer
    style_weights: tuple[float, ...]  # one per style image (a region's subset in regions.py)
    content_weight: float
    style_weight: float
    tv_weight: float
    temporal_weight: float
    style_loss: str  # a key of losses.STYLE_LOSSES
    optimizer: str
    learning_rate: float
    auto_steps: bool  # --steps auto: each scale stops when it converges
    preserve_color: str  # none | luminance | histogram
    seamless: bool
    seed: int
    init: str  # content | noise | a START_PICTURES name | an image file
    style_scale: float | None
    style_crop: tuple[float, float, float, float] | None
    mask: masks.MaskLike | None
    style_masks: tuple[masks.MaskLike, ...] | None
    style_regions: tuple[masks.MaskLike | None, ...] | None
    protect_faces: float

    @classmethod
    def from_options(cls, options: Options, n_styles: int) -> "RunDescription":
        """Check `options` for a run with `n_styles` style images (BrushworkError if they cannot
        run) and resolve them."""
        options.validate(n_styles)
        style_layers, content_layers = options.layers
        return cls(
            style_layers=style_layers,
            content_layers=content_layers,
            style_layer_weights=tuple(options.style_layer_weights or [1.0] * len(style_layers)),
            style_weights=tuple(options.style_weights or [1.0] * n_styles),
            content_weight=options.content_weight,
            style_weight=options.style_weight,
            tv_weight=options.tv_weight,
            temporal_weight=options.temporal_weight,
            style_loss=options.style_loss,
            optimizer=options.optimizer,
            learning_rate=options.learning_rate,
            auto_steps=options.steps == "auto",
            preserve_color=options.preserve_color,
            seamless=options.seamless,
            seed=options.seed,
            init=options.init,
            style_scale=options.style_scale,
            style_crop=options.style_crop,
            mask=options.mask,
            style_masks=options.style_masks,
            style_regions=options.style_regions,
            protect_faces=options.protect_faces,
        )

    def replace(self, **changes) -> "RunDescription":
        return dataclasses.replace(self, **changes)

    def style_side(self, output_side: int, style_side: int) -> int:
        """The style image's longest side for an output whose longest side is `output_side`
        (options.fitted_style_side)."""
        return fitted_style_side(self.style_scale, output_side, style_side)
