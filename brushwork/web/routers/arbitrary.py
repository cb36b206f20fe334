"""The instant preview: any uploaded painting, one pass of the arbitrary-style network
(brushwork.fast.arbitrary), answered while the client waits (about a second on a CPU).

Like /api/fast it stores nothing and paints one picture at a time: on a small machine, two at
once would only each take twice as long. The app mounts it where brushwork[arbitrary] is
installed, and the page then offers its Instant preview button.
"""

from __future__ import annotations

import io
import threading
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from PIL import Image

from ...fast.preview import paint_fast
from ..dependencies import LimitsDep
from ..fastmode import DEFAULT_SIZE, SIZE_BOUNDS
from ..uploads import read_image

router = APIRouter(prefix="/api", tags=["fast"])
painting = threading.Lock()


def weight_list(text: str | None, count: int) -> list[float] | None:
    """The form's "2,1" as numbers (paint_fast checks their count and sign)."""
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise HTTPException(400, f"weights: expected {count} numbers separated by commas, got {text!r}") from None


def paint_one(photo: Image.Image, styles: list[Image.Image], weights: list[float] | None, size: int, strength: float, preserve_color: bool) -> bytes:
    with painting:
        picture = paint_fast(photo, styles, weights, size=size, strength=strength, preserve_color=preserve_color)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@router.post("/fast/style", responses={200: {"content": {"image/png": {}}}})
async def paint_with_any_style(
    photo: Annotated[UploadFile, File(description="the photo to paint")],
    style: Annotated[list[UploadFile], File(description="one painting, or several to blend")],
    limits: LimitsDep,
    weights: Annotated[str | None, Form(max_length=200, description="blend weights, one per painting, e.g. 2,1")] = None,
    strength: Annotated[float, Form(ge=0, le=1, description="1: the network's picture; 0: the photo")] = 1.0,
    preserve_color: Annotated[bool, Form(description="keep the photo's colours")] = False,
    size: Annotated[int, Form(ge=SIZE_BOUNDS[0], le=SIZE_BOUNDS[1], description="longest side")] = DEFAULT_SIZE,
) -> Response:
    """Paint one photo in the style of the uploaded painting(s); the answer is the PNG.
    A missing brushwork[arbitrary] or a bad weight list is a 400 with one line saying why."""
    if len(style) > limits.max_styles:
        raise HTTPException(400, f"at most {limits.max_styles} style images, got {len(style)}")
    picture, _ = await run_in_threadpool(read_image, photo, "photo", limits)
    paintings = [(await run_in_threadpool(read_image, upload, "style", limits))[0] for upload in style]
    png = await run_in_threadpool(paint_one, picture, paintings, weight_list(weights, len(style)), size, strength, preserve_color)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
