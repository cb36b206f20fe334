"""A photo in the style of any uploaded painting, one pass of the arbitrary-style network
(brushwork.fast.arbitrary), answered while the client waits (about a second on a CPU).

Like /api/fast it stores nothing and paints one picture at a time: on a small machine, two at
once would only each take twice as long. The app mounts it where brushwork[arbitrary] is
installed, and the page then offers its Instant preview button and, in the Fast tab, the
"your painting" choice. A video in any style is a job: POST /api/fast/video with `style`.
"""

from __future__ import annotations

import io
import threading
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from PIL import Image

from ...fast.preview import paint_fast
from ..dependencies import LimitsDep
from ..fastmode import DEFAULT_SIZE, SIZE_BOUNDS
from ..paintings import Paintings, read_paintings
from ..uploads import read_image

router = APIRouter(prefix="/api", tags=["fast"])
painting = threading.Lock()


def paint_one(photo: Image.Image, paintings: Paintings, size: int, strength: float, preserve_color: bool) -> bytes:
    with painting:
        picture = paint_fast(photo, paintings.pictures, paintings.weights, size=size, strength=strength,
                             preserve_color=preserve_color)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@router.post("/fast/style", responses={200: {"content": {"image/png": {}}}})
async def paint_with_any_style(
    photo: Annotated[UploadFile, File(description="the photo to paint")],
    limits: LimitsDep,
    style: Annotated[list[UploadFile] | None, File(description="one painting, or several to blend")] = None,
    weights: Annotated[str | None, Form(max_length=200, description="blend weights, one per painting, e.g. 2,1")] = None,
    strength: Annotated[float, Form(ge=0, le=1, description="1: the network's picture; 0: the photo")] = 1.0,
    preserve_color: Annotated[bool, Form(description="keep the photo's colours")] = False,
    size: Annotated[int, Form(ge=SIZE_BOUNDS[0], le=SIZE_BOUNDS[1], description="longest side")] = DEFAULT_SIZE,
) -> Response:
    """Paint one photo in the style of the uploaded painting(s); the answer is the PNG. No
    painting, too many, or a bad weight list is a 400 with one line saying why."""
    paintings = await run_in_threadpool(read_paintings, style, weights, limits)
    picture, _ = await run_in_threadpool(read_image, photo, "photo", limits)
    png = await run_in_threadpool(paint_one, picture, paintings, size, strength, preserve_color)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
