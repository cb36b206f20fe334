"""The paintings a fast-mode request paints with when it names no trained model: any uploaded
pictures through the arbitrary-style network (brushwork.fast.arbitrary, the `arbitrary`
extra), several blended by their weights (equal unless given).

The instant preview and the Fast tab's photo (POST /api/fast/style) and the Fast tab's video
(POST /api/fast/video) read them here, so both check the same things in the same words, at
the route, before anything is painted or stored: the extra is installed, there is at least
one painting and no more than the server's cap, each is a picture within the upload limits,
and the weights are one non-negative number per painting.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from PIL import Image
from starlette.datastructures import UploadFile

from ..errors import BrushworkError
from ..fast.arbitrary import blend_weights, installed_package
from .uploads import Limits, read_styles

NONE_GIVEN = "give at least one painting to paint with (the form's `style` files)"


@dataclass(frozen=True)
class Paintings:
    """The decoded paintings, the names the client gave them (shown, never used as paths), and
    the blend's weights as given (None: equal)."""

    pictures: list[Image.Image]
    names: list[str]
    weights: list[float] | None


def install_hint() -> str | None:
    """The line that says what this server lacks to paint with any picture, or None if nothing."""
    try:
        installed_package("painting with your own picture")
    except BrushworkError as e:
        return str(e)
    return None


def weight_list(text: str | None, count: int) -> list[float] | None:
    """The form's "2,1" as one weight per painting, checked as `apply --style-weights` is."""
    if not text:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise HTTPException(400, f"weights: expected {count} numbers separated by commas, got {text!r}") from None
    blend_weights(count, weights)  # the count, the signs and the sum: a BrushworkError is the client's 400
    return weights


def read_paintings(uploads: list[UploadFile] | None, weights: str | None, limits: Limits) -> Paintings:
    """The request's paintings, checked (see the module's docstring); each problem is a 4xx."""
    hint = install_hint()
    if hint is not None:
        raise HTTPException(400, hint)
    if not uploads:
        raise HTTPException(400, NONE_GIVEN)
    pictures, names = read_styles(uploads, limits)
    return Paintings(pictures, names, weight_list(weights, len(pictures)))
