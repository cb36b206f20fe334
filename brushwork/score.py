"""One scorer for every output: how far an image is from the content, and from the style.

content distance = ‖F(out) − F(content)‖² / ‖F(content)‖² at relu4_2
style distance   = mean over relu1_1…relu5_1 of ‖G(out) − G(style)‖² / ‖G(style)‖²
                   (G = Gram matrix / number of positions)

Both are measured in fp32 with the default VGG19 and max pooling at the output's size (the
content is resized to the output, the style to the same longest side), whatever settings
made the image, so numbers from different tools and presets are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from . import images
from .losses import ContentLoss, StyleLoss
from .engine import Engine, image_key

SCORE_CONTENT_LAYERS = ("relu4_2",)
SCORE_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_FACTOR = 5.0  # J = content distance + 5 · style distance


@dataclass
class Score:
    content: float
    style: float

    @property
    def objective(self) -> float:
        return self.content + STYLE_FACTOR * self.style


def score(
    output: Image.Image,
    content: Image.Image,
    style: Image.Image,
    engine: Engine | None = None,
    dtype: torch.dtype = torch.float32,
) -> Score:
    """Distances of `output` from `content` and `style` (all RGB PIL images). `dtype` other
    than fp32 is only for measuring what reduced precision changes (the speed benchmark)."""
    engine = engine or Engine()
    out = images.to_tensor(output)
    w, h = output.size
    content_t = images.resize(images.to_tensor(content), (w, h))
    style_t = images.to_tensor(style)
    style_t = images.resize(style_t, images.fit_size(style_t.shape[-1], style_t.shape[-2], max(w, h)))
    layers = SCORE_STYLE_LAYERS + SCORE_CONTENT_LAYERS
    with torch.no_grad():
        feats = engine.features(out, layers, dtype)
        content_loss = ContentLoss(engine.features(content_t, SCORE_CONTENT_LAYERS, dtype), {"relu4_2": 1.0})
        grams = engine.style_grams((image_key(style),), style_t, SCORE_STYLE_LAYERS, dtype)  # cached per engine
        style_loss = StyleLoss(grams, dict.fromkeys(SCORE_STYLE_LAYERS, 1.0))
        return Score(float(content_loss(feats)), float(style_loss(feats)))
