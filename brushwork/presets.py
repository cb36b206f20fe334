"""Named layer configurations: the two models the seed report compared.

A preset only chooses layers (and their weights); every other option keeps its own default.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BrushworkError


@dataclass(frozen=True)
class Preset:
    name: str
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    description: str


PRESETS = {
    p.name: p
    for p in (
        Preset(
            "gatys",
            style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
            content_layers=("relu4_2",),
            description="Gatys et al. / the lecture model: keeps the content's structure (default)",
        ),
        Preset(
            "tutorial",
            style_layers=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"),
            content_layers=("conv2_2",),
            description="the PyTorch tutorial's model: strong fine texture, loses the content",
        ),
    )
}
DEFAULT_PRESET = "gatys"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise BrushworkError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
