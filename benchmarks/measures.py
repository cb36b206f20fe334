"""Measures no style loss optimizes, shared by the style-loss benchmarks (losses.py,
default_loss.py): an output is scored by things none of gram, meancov and sliced looks at, so
no loss wins by construction.

  colour    sliced Wasserstein distance between the output's and the style's pixel colours in
            CIELAB (64 fixed directions, seed 1201; in Lab units, ~ΔE)
  feature   relative sliced Wasserstein distance of the VGG features at relu1_2, relu2_2,
            relu3_3 and relu4_3, layers no loss uses, with its own directions (seed 4077)
  mobilenet a network other than VGG19: the relative Euclidean distance between the 100-number
            style vectors that Magenta's arbitrary-style predictor (a MobileNet, the `arbitrary`
            extra) gives the output and the painting, each vector the mean over three squares
            (start, centre and end of the long side) so that one crop does not decide

Also the contact sheet both draw (contact_sheet). Not a module of the package: benchmarks import it as `from measures import ...` (a script's
own folder is on its path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from skimage.color import rgb2lab

from brushwork import images
from brushwork.engine import Engine
from brushwork.fast.arbitrary import predictor, style_square

FEATURE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def quantiles(values: np.ndarray, levels: int = 256) -> np.ndarray:
    """Rows of values -> their quantiles at `levels` evenly spaced levels (any number of samples)."""
    return np.quantile(values, (np.arange(levels) + 0.5) / levels, axis=-1).T


def same_scale(style: Image.Image, output: Image.Image) -> Image.Image:
    """The style at the output's longest side, as the runs and brushwork.score see it."""
    return style.resize(images.fit_size(*style.size, max(output.size)), Image.BICUBIC)


def colour_distance(output: Image.Image, style: Image.Image, seed: int = 1201) -> float:
    """Sliced W2 between the pixel colours in CIELAB, in Lab units: the RMS over 64 fixed
    directions and 256 levels of the difference of the two colour distributions' quantiles."""
    style = same_scale(style, output)
    a, b = (rgb2lab(np.asarray(im, np.float64) / 255).reshape(-1, 3) for im in (output, style))
    directions = np.random.default_rng(seed).standard_normal((64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return float(np.sqrt(np.mean((quantiles(directions @ a.T) - quantiles(directions @ b.T)) ** 2)))


def feature_distance(engine: Engine, output: Image.Image, style: Image.Image, seed: int = 4077) -> float:
    """Mean over FEATURE_LAYERS of the relative sliced W2 of the VGG features: C fixed random
    directions per layer, ‖q(out) − q(style)‖² / ‖q(style)‖² over 256 quantile levels."""
    style = same_scale(style, output)
    generator = np.random.default_rng(seed)
    with torch.no_grad():
        out, sty = (engine.features(images.to_tensor(im), FEATURE_LAYERS, torch.float32) for im in (output, style))
    total = 0.0
    for name in FEATURE_LAYERS:
        a, b = (f[0].flatten(1).cpu().double().numpy() for f in (out[name], sty[name]))
        directions = generator.standard_normal((a.shape[0], a.shape[0]))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        qa, qb = quantiles(directions @ a), quantiles(directions @ b)
        total += float(((qa - qb) ** 2).sum() / (qb**2).sum())
    return total / len(FEATURE_LAYERS)


def squares(picture: Image.Image) -> list[Image.Image]:
    """The three squares of side min(w, h) at the start, centre and end of the long side (one
    picture three times when it is square)."""
    side, slack = min(picture.size), abs(picture.width - picture.height)
    offsets = (0, slack // 2, slack)
    if picture.width >= picture.height:
        return [picture.crop((o, 0, o + side, side)) for o in offsets]
    return [picture.crop((0, o, side, o + side)) for o in offsets]


def style_vector(picture: Image.Image) -> np.ndarray:
    """The MobileNet predictor's 100 numbers, averaged over squares(): each square is seen at
    256² as Magenta trained the predictor (arbitrary.style_square)."""
    net = predictor()
    name = net.get_inputs()[0].name
    vectors = [net.run(None, {name: style_square(square)})[0].reshape(-1) for square in squares(picture.convert("RGB"))]
    return np.mean(np.asarray(vectors, np.float64), axis=0)


def mobilenet_distance(output: Image.Image, style: Image.Image) -> float:
    """‖v(output) − v(style)‖ / ‖v(style)‖ for the style vectors v above: 0 for the painting
    itself, and what a network trained on other goals than VGG19's says of the style."""
    target = style_vector(same_scale(style, output))
    return float(np.linalg.norm(style_vector(output) - target) / np.linalg.norm(target))


def contact_sheet(titles: list[str], rows: list[tuple[str, list[Image.Image], list[str]]], target: Path,
                  box: int, font_size: int = 13) -> None:
    """A benchmark page's sheet: a title over each column, then per row (a pair) its pictures
    fitted in box×box, each with its caption under it (`captions`, "" for none) and the row's
    name under the first; written whole as a JPEG."""
    font, small = ImageFont.load_default(size=font_size), ImageFont.load_default(size=font_size - 2)
    label_h, pad, top = 40, 6, 24
    fitted = []
    for name, cells, captions in rows:
        cells = [cell.copy() for cell in cells]
        for image in cells:
            image.thumbnail((box, box), Image.LANCZOS)
        fitted.append((name, cells, captions, max(image.height for image in cells)))
    sheet = Image.new("RGB", (len(titles) * (box + pad) + pad, top + sum(h + label_h + pad for *_, h in fitted)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(titles):
        draw.text((pad + c * (box + pad), 5), title, fill="black", font=font)
    for name, cells, captions, height in fitted:
        for c, (image, caption) in enumerate(zip(cells, captions)):
            x = pad + c * (box + pad)
            sheet.paste(image, (x, top))
            draw.multiline_text((x, top + height + 1), caption, fill="black", font=small, spacing=1)
        draw.multiline_text((pad, top + height + 1), name.replace(" / ", "\n/ "), fill="black", font=small, spacing=1)
        top += height + label_h + pad
    images.write_atomic(target, lambda path: sheet.save(path, "JPEG", quality=82, optimize=True))
