"""Mask pictures: read from files, PIL images or arrays, resized to each scale and to each
VGG layer, cut like the image for the tiled evaluation. What a run does with them is in
regions.py.

A mask is one channel in [0, 1]: white (1) where the style goes, black (0) where the photo
is kept, gray in between. Colour pictures count by their luminance; transparent pixels count
as black (a brush painted on a transparent layer marks only what it painted). A mask whose
size differs from its picture's is stretched to fit, with a notice (BrushworkWarning): masks
exported at another resolution are common, and refusing them would help nobody.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import images
from .errors import BrushworkError, BrushworkWarning
from .tiles import downsampling

MaskLike = str | Path | Image.Image | np.ndarray


def to_array(source: MaskLike, what: str) -> np.ndarray:
    """Any mask source -> H×W float32 in [0, 1]; BrushworkError naming `what` if it is none."""
    if isinstance(source, np.ndarray):
        return _from_array(source, what)
    if not isinstance(source, (str, Path, Image.Image)):
        raise BrushworkError(f"{what}: expected an image file, a PIL image or an array, got {type(source).__name__}")
    try:
        image = images.open_image(source)
    except BrushworkError as e:
        raise BrushworkError(f"{what}: {e}") from None
    if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255
        return np.asarray(rgba.convert("L"), np.float32) / 255 * alpha
    return np.asarray(images.load_image(image).convert("L"), np.float32) / 255


def _from_array(array: np.ndarray, what: str) -> np.ndarray:
    """H×W floats or booleans in [0, 1], or 8-bit gray, RGB or RGBA like a picture's pixels."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        return to_array(Image.fromarray(np.ascontiguousarray(array)), what)
    if array.ndim != 2 or min(array.shape) < 1 or not (array.dtype == bool or np.issubdtype(array.dtype, np.floating)):
        raise BrushworkError(f"{what}: expected an H×W array of numbers in [0, 1] (or 8-bit gray, RGB or RGBA "
                             f"pixels), got {array.dtype} of shape {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise BrushworkError(f"{what}: mask values must lie in [0, 1]")
    return array


def read(source: MaskLike, size: tuple[int, int], what: str, picture: str = "photo") -> torch.Tensor:
    """A mask as a 1×1×H×W tensor at `size` (w, h), the size of its `picture`; stretched to
    fit, with a notice, if it has another."""
    array = to_array(source, what)
    mask = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    h, w = array.shape
    if (w, h) != tuple(size):
        warnings.warn(f"{what} is {w}x{h} but the {picture} is {size[0]}x{size[1]}: resized to fit",
                      BrushworkWarning, stacklevel=3)
        mask = resize(mask, size)
    return mask


def resize(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A 1×1×H×W mask at (w, h). Bilinear, antialiased when shrinking: unlike bicubic it does
    not ring, so a black area stays exactly 0 beyond a pixel or two from a white edge."""
    w, h = size
    if mask.shape[-2:] == (h, w):
        return mask
    return F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def layer_maps(mask: torch.Tensor, layers: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
    """The mask at each layer's resolution: the mean over the pixels each position steps over
    (a pool of the same size as VGG's, so the maps have the feature maps' shapes, and the
    whole-image maps cut with tiles.Tile.region give each tile exactly its share)."""
    maps = {}
    for name in layers:
        factor = downsampling(name)
        maps[name] = F.avg_pool2d(mask, factor) if factor > 1 else mask
    return maps


def crop(mask: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    """The part of a style's mask that --style-crop keeps of the style image (images.crop's box)."""
    array = mask[0, 0].numpy()
    cropped = images.crop(Image.fromarray(np.ascontiguousarray(array, np.float32)), box)
    return torch.from_numpy(np.asarray(cropped, np.float32).copy())[None, None]


def source_key(source: MaskLike) -> str:
    """A content hash of a mask source, for caches (compare's cells, style targets)."""
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, Image.Image):
        data = source.tobytes() + repr((source.mode, source.size)).encode()
    elif isinstance(source, torch.Tensor):
        data = source.numpy().tobytes() + repr(tuple(source.shape)).encode()
    else:
        data = np.ascontiguousarray(source).tobytes() + repr((source.dtype.str, source.shape)).encode()
    return hashlib.sha1(data).hexdigest()
