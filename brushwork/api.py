"""The public Python functions. The CLI, the compare grid and the web app all call these."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from . import images
from .errors import BrushworkError
from .engine import START_PICTURES, Engine, Progress, Result, engine_for, get_engine  # noqa: F401  (the public API)
from .fast.preview import paint_fast  # noqa: F401  (the public API: any painting in one pass)
from .options import Options
from .run_description import RunDescription

ImageLike = str | Path | Image.Image


def fast_start(content: Image.Image, styles: list[Image.Image], options: Options, side: int) -> Image.Image:
    """--init fast: the arbitrary-style network's painting of the content in the run's styles,
    at the output's size, for the optimization to refine. Wired into the engine here, at the
    top, so that the engine never imports fast mode."""
    from .fast.arbitrary import installed_package  # onnxruntime and the network: only --init fast needs them

    installed_package("--init fast")
    return paint_fast(content, styles, options.style_weights, size=side)


START_PICTURES["fast"] = fast_start


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
    run = RunDescription.from_options(options, len(style_images))  # the one check of the options
    return (engine or engine_for(options)).run(content_image, style_images, options, callback, run=run)


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
