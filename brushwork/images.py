"""Images in and out: decoding any reasonable file to RGB, resizing, color, atomic saving."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BrushworkError

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
WEBP_MAX_SIDE = 16383  # the WebP format's own limit


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB, compositing transparency onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F":
            peak = max(float(array.max()), 1.0)
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation tag says.

    While turning, Pillow re-encodes the rest of the EXIF block, which raises assorted errors
    (struct.error, TypeError, AttributeError...) on corrupt tags; such a picture is better
    loaded as stored than refused.
    """
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def load_image(source: str | Path | Image.Image) -> Image.Image:
    """Open a file (or take a PIL image) as upright 8-bit RGB, or fail with a clear message."""
    return _to_rgb(open_image(source))


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """Open a file (or take a PIL image) upright in its own mode (masks.py reads transparency
    as black, where load_image puts the picture on white), or fail with a clear message."""
    if isinstance(source, Image.Image):
        return _upright(source)
    path = Path(source)
    if not path.exists():
        raise BrushworkError(f"image not found: {path}")
    if not path.is_file():
        raise BrushworkError(f"not a file: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            upright = _upright(image)
            return upright if upright is not image else image.copy()  # the file closes on return
    except Image.DecompressionBombError as e:
        raise BrushworkError(f"{path} is too large to open safely: {e}") from None
    except UnidentifiedImageError:
        raise BrushworkError(f"not an image file (or a format Pillow cannot read): {path}") from None
    except PermissionError:
        raise BrushworkError(f"cannot read {path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BrushworkError(f"cannot decode {path} (truncated or corrupt?): {e}") from None


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> 1×3×H×W float tensor in [0, 1]."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach().float().clamp(0, 1).squeeze(0).permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
    return Image.fromarray(array, "RGB")


def fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is `long_side`, keeping the aspect ratio."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a 1×3×H×W tensor to (w, h); antialiased when shrinking."""
    w, h = size
    if tensor.shape[-2:] == (h, w):
        return tensor
    return F.interpolate(tensor, size=(h, w), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def parse_crop(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' in pixels, or in fractions of the image when every value is at most 1."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or any(not np.isfinite(v) or v < 0 for v in values):
        raise BrushworkError(f"bad crop {text!r}: expected x,y,w,h as four non-negative numbers")
    return values  # type: ignore[return-value]


def crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    x, y, w, h = box
    if max(box) <= 1.0:
        x, w = x * image.width, w * image.width
        y, h = y * image.height, h * image.height
    left, top, right, bottom = round(x), round(y), round(x + w), round(y + h)
    if right <= left or bottom <= top or right > image.width or bottom > image.height:
        raise BrushworkError(f"crop {box} does not fit inside the {image.width}x{image.height} style image")
    return image.crop((left, top, right, bottom))


def crop_styles(styles: list[Image.Image], box: tuple[float, float, float, float] | None) -> list[Image.Image]:
    """The style images as a run paints from them (--style-crop's box of each, if one is set):
    the one place the run, its plan and fast training read them from."""
    return styles if box is None else [crop(s, box) for s in styles]


# --- color ---------------------------------------------------------------------------------

# ITU-R BT.601 luma and the YIQ chroma axes, as in Gatys et al., "Preserving Color in Neural
# Artistic Style Transfer" (2016).
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _YIQ_TO_RGB.to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated over three channels, so VGG sees a gray image."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and spread (gray, 3 channels)."""
    y_style, y_content = luminance(style), luminance(content)
    matched = (y_style - y_style.mean()) / y_style.std().clamp_min(1e-6) * y_content.std() + y_content.mean()
    return matched.clamp(0, 1)


def with_chroma_of(luma: torch.Tensor, color_source: torch.Tensor) -> torch.Tensor:
    """Combine the luminance of `luma` with the I/Q chroma of `color_source` (same size)."""
    yiq = rgb_to_yiq(color_source)
    yiq[:, :1] = rgb_to_yiq(luma)[:, :1]
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Linear color transfer: give the style image the content's color mean and covariance.

    x' = A (x − μ_s) + μ_c with A = Σ_c^½ Σ_s^−½ (symmetric square roots), the
    "image analogies" variant from Gatys et al.'s color-preservation paper.
    """

    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(1, keepdim=True)
        centered = pixels - mean
        cov = centered @ centered.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=torch.float64)
        return mean, cov

    def sqrtm(matrix: torch.Tensor, power: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix)
        return vectors @ torch.diag(values.clamp_min(1e-10).pow(power)) @ vectors.T

    mean_s, cov_s = stats(style)
    mean_c, cov_c = stats(content)
    transform = sqrtm(cov_c, 0.5) @ sqrtm(cov_s, -0.5)
    pixels = style.reshape(3, -1).double()
    matched = transform @ (pixels - mean_s) + mean_c
    return matched.reshape(style.shape).to(style.dtype).clamp(0, 1)


def make_periodic(image: torch.Tensor, border: float = 0.25) -> torch.Tensor:
    """The picture made to wrap around without a join, for seamless output: within `border`
    of each edge it fades into a copy shifted by half the width (then height), whose own join
    lies in the middle under the untouched original. The centre stays as it was."""
    for axis in (-1, -2):
        n = image.shape[axis]
        edge = torch.minimum(torch.arange(n), n - 1 - torch.arange(n)).float()
        weight = (edge / max(1.0, border * n)).clamp(max=1.0)
        weight = weight.view(-1, 1) if axis == -2 else weight
        image = weight * image + (1 - weight) * image.roll(n // 2, axis)
    return image


# --- saving --------------------------------------------------------------------------------


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work if the image `path` cannot be written as asked."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise BrushworkError(f"unsupported output type {path.suffix or '(none)'!r}; use .png, .jpg, .webp or .tif")
    return check_writable(path, overwrite)


def check_writable(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work if any output file (image, trace, report) cannot be written as asked."""
    path = Path(path)
    if path.is_dir():
        raise BrushworkError(f"{path} is a directory")
    if path.exists() and not overwrite:
        raise BrushworkError(f"{path} exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BrushworkError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise BrushworkError(f"output folder is not writable: {parent}")
    return path


def check_disk_space(path: str | Path, size: tuple[int, int]) -> None:
    """Fail before a long run whose picture could not be written: a PNG or TIFF of w×h can
    take up to the raw 3·w·h bytes (JPEG and WebP far less, but we do not bet on it)."""
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    needed = 3 * size[0] * size[1] + 2**20
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise BrushworkError(
            f"{folder} has {free / 2**20:.0f} MiB free, but a {size[0]}x{size[1]} picture may need "
            f"{needed / 2**20:.0f} MiB; free some space or write elsewhere"
        )


def save_image(image: Image.Image, path: str | Path, overwrite: bool = True) -> Path:
    """Write atomically: a temp file in the same folder, then a rename, so a crash, Ctrl-C or a
    full disk never leaves a half-written picture under the real name. The encoder writes
    straight into the file, so a poster-size picture is not held a second time in memory."""
    path = check_output_path(path, overwrite)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    if fmt == "WEBP" and max(image.size) > WEBP_MAX_SIDE:
        raise BrushworkError(f"WebP pictures can be at most {WEBP_MAX_SIDE} px a side; use .png, .jpg or .tif")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
    write_atomic(path, lambda f: image.save(f, format=fmt, **options))
    return path


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Same temp-file-and-rename guarantee for non-image outputs (traces, reports); `data` is
    the bytes, or a function that writes them into the open file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files others may read
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise BrushworkError(f"the disk is full: could not write {path} (nothing was left behind)") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
