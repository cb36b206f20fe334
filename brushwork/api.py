"""The public Python functions. The CLI, the compare grid and the web app all call these."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from . import images
from .errors import BrushworkError
from .engine import Engine, Progress, Result
from .fast.preview import paint_fast  # noqa: F401  (the public API: any painting in one pass)
from .options import Options

ImageLike = str | Path | Image.Image


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


def run(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    options: Options | None = None,
    callback: Callable[[Progress], None] | None = None,
    engine: Engine | None = None,
) -> Result:
    """Stylize and return the full Result (image, per-step records, why it stopped)."""
    options = options or Options()
    if isinstance(styles, (str, Path, Image.Image)):
        styles = [styles]
    content_image = images.load_image(content)
    style_images = [images.load_image(s) for s in styles]
    options.validate(len(style_images))
    return (engine or engine_for(options)).run(content_image, style_images, options, callback)


def stylize(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    callback: Callable[[Progress], None] | None = None,
    **options,
) -> Image.Image:
    """Paint `content` in the style of `styles`; keyword options are the fields of Options.

    >>> brushwork.stylize("photo.jpg", "starry_night.jpg", size=384, steps=200)

    `callback(progress)` is called after every optimizer step; `progress.preview()` gives the
    current picture. A run that diverges returns the last finite image with a warning; Ctrl-C
    raises KeyboardInterrupt as usual (use `run` to get the partial image instead).
    """
    unknown = set(options) - {f for f in Options.__dataclass_fields__}
    if unknown:
        raise BrushworkError(f"unknown option(s): {', '.join(sorted(unknown))}")
    result = run(content, styles, Options(**options), callback)
    if result.stop_reason == "interrupted":
        raise KeyboardInterrupt
    if result.stop_reason == "diverged":
        warnings.warn("the optimization diverged (loss became NaN/inf); returning the last finite image", stacklevel=2)
    return result.image
