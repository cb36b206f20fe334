"""One picture from the arbitrary-style network, in memory: the web page's instant preview,
`brushwork.paint_fast` and `stylize --init fast` call this.

It is fast mode's Stylizer on a single picture (so --size, --strength and the colour handling
are the same as `apply --style`), with every CPU thread on that one picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .. import images
from .arbitrary import load_styles
from .backend import Settings, Stylizer

PictureLike = str | Path | Image.Image


def paint_fast(
    content: PictureLike, styles: PictureLike | Sequence[PictureLike], weights: Sequence[float] | None = None,
    size: int | None = None, strength: float = 1.0, preserve_color: bool = False,
) -> Image.Image:
    """`content` painted in the style of `styles` (a blend, by `weights`, if several) in one pass
    of the arbitrary-style network; `size` is the longest side (None keeps the content's)."""
    if isinstance(styles, (str, Path, Image.Image)):
        styles = [styles]
    stylizer = Stylizer(load_styles(styles, weights), Settings(size=size, strength=strength, preserve_color=preserve_color, workers=1))
    frame = np.asarray(images.load_image(content))
    with stylizer.host_threads():
        painted = stylizer.download(stylizer.stylize(stylizer.upload([frame])))
    return Image.fromarray(painted[0], "RGB")
