"""The pool of networks a batch runs on: one per setup, shared by its cells and the scorer."""

from __future__ import annotations

from .. import api, images
from ..engine import Engine
from ..options import Options
from ..score import SCORE_CONTENT_LAYERS, SCORE_STYLE_LAYERS
from .cells import Cell, Inputs

SCORE_LAYERS = tuple(sorted(SCORE_STYLE_LAYERS + SCORE_CONTENT_LAYERS))
Setup = tuple[str, str | None, str, str]  # (device, weights, weights_format, pooling): one network each


def score_engine(device: str = "auto") -> Engine:
    """The network brushwork.score measures with (default weights, max pooling), shared with
    any run that uses the same setup."""
    return api.get_engine(device, None, "auto", "max", SCORE_LAYERS)


def setup_of(options: Options) -> Setup:
    """The part of a cell's options that needs a network of its own."""
    return (options.device, options.weights, options.weights_format, options.pooling)


class Engines:
    """One network per setup, holding every layer its cells (and the scorer, if it shares the
    setup) need. Loaded on first use (api.get_engine keeps it), so a fully cached grid loads
    nothing."""

    def __init__(self, base: Options, cells: list[Cell]) -> None:
        self.device = base.device  # the batch's --device: a Ray runner's slots follow it
        self.score_setup: Setup = (base.device, None, "auto", "max")
        self.layers: dict[Setup, set[str]] = {self.score_setup: set(SCORE_LAYERS)}
        for cell in cells:
            style_layers, content_layers = cell.options.layers
            self.layers.setdefault(setup_of(cell.options), set()).update(style_layers + content_layers)

    def _get(self, setup: Setup) -> Engine:
        """Every cell of a setup shares one network, cut after the deepest layer any of them uses."""
        return api.get_engine(*setup, tuple(sorted(self.layers[setup])))

    def for_options(self, options: Options) -> Engine:
        """The network a cell with these options runs on."""
        return self._get(setup_of(options))

    def scorer(self) -> Engine:
        """The network every cell is measured with, whatever it was made with."""
        return self._get(self.score_setup)


def check_plans(cells: list[Cell], rows: dict[int, dict], inputs: Inputs, engines: Engines) -> None:
    """Limits of size, layers and memory for every cell still to run, checked before any of
    them runs so a grid does not fail hours in."""
    for cell in cells:
        if cell.index not in rows:
            o = cell.options
            cropped = images.crop_styles(inputs.styles, o.style_crop)
            engines.for_options(o).plan(inputs.content.size, o, [s.size for s in cropped])
