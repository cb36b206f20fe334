"""Fast mode: the trained networks this server offers, a picture painted by one while the
client waits (about a second), with `brushwork apply`'s strength and colour options, and a
video painted as a job, by a trained network or by any painting (the arbitrary-style network;
its picture route is routers/arbitrary.py)."""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..dependencies import LimitsDep, ModelsDep, QueueDep
from ..fastmode import DEFAULT_SIZE, SIZE_BOUNDS, FastRequest
from ..paintings import read_paintings
from ..uploads import display_name, is_video_name, read_image, read_video

router = APIRouter(prefix="/api", tags=["fast"])


@router.get("/models")
def list_models(models: ModelsDep) -> dict[str, Any]:
    """The networks fast mode can use: the shipped ones and those of `serve --models DIR`
    (name, source, the style they were trained on, their training options; or why a file
    in the folder cannot be used)."""
    return {"models": models.describe(), "size": {"default": DEFAULT_SIZE, "bounds": SIZE_BOUNDS}}


@router.post("/fast", responses={200: {"content": {"image/png": {}}}})
async def paint_fast(
    photo: Annotated[UploadFile, File(description="the photo to paint")],
    model: Annotated[str, Form(description="a name from /api/models", max_length=200)],
    models: ModelsDep,
    limits: LimitsDep,
    strength: Annotated[float, Form(ge=0, le=1, description="1: the network's picture; 0: the photo")] = 1.0,
    preserve_color: Annotated[bool, Form(description="keep the photo's colours")] = False,
    size: Annotated[int, Form(ge=SIZE_BOUNDS[0], le=SIZE_BOUNDS[1], description="longest side")] = DEFAULT_SIZE,
) -> Response:
    """Paint one photo with a fast-mode network; the answer is the PNG. Nothing is stored."""
    request = FastRequest(model, strength, preserve_color, size)
    picture, name = await run_in_threadpool(read_image, photo, "photo", limits)
    painted = await run_in_threadpool(models.paint, picture, request)
    buffer = io.BytesIO()
    await run_in_threadpool(painted.save, buffer, format="PNG")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name.rsplit('.', 1)[0]}-{model}")
    return Response(buffer.getvalue(), media_type="image/png", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'inline; filename="{stem}.png"'})


@router.post("/fast/video", status_code=201)
async def paint_fast_video(
    video: Annotated[UploadFile, File(description="the video to paint (.mp4, .mkv, .mov, .avi, .webm, .m4v)")],
    models: ModelsDep,
    limits: LimitsDep,
    queue: QueueDep,
    model: Annotated[str | None, Form(description="a name from /api/models (or give `style`)", max_length=200)] = None,
    style: Annotated[list[UploadFile] | None, File(description="instead of a model: one painting, or several to "
                                                               "blend (the arbitrary-style network)")] = None,
    weights: Annotated[str | None, Form(max_length=200, description="blend weights, one per painting, e.g. 2,1")] = None,
    strength: Annotated[float, Form(ge=0, le=1, description="1: the network's picture; 0: the photo")] = 1.0,
    preserve_color: Annotated[bool, Form(description="keep the photo's colours")] = False,
    size: Annotated[int, Form(ge=SIZE_BOUNDS[0], le=SIZE_BOUNDS[1], description="longest side")] = DEFAULT_SIZE,
) -> dict[str, Any]:
    """Queue a video for a fast-mode network (with `brushwork apply`'s default deflicker): a
    trained `model`, or the arbitrary-style network with the uploaded `style` paintings (as
    `brushwork apply --style`). A job like the others, whose /events announce each finished
    frame and whose result.mp4 is the painted video. Everything is checked before it is queued."""
    if (model is None) == (not style):
        raise HTTPException(400, "give either a model (a name from /api/models) or style paintings to paint with"
                            if model is None else "give a model or style paintings, not both")
    if model is not None and weights:
        raise HTTPException(400, "weights blend style paintings; they do nothing with a model")
    if model is not None:
        models.model_file(model)  # an unknown model is the client's 400 now, not a failed job later
    if not is_video_name(video.filename):
        raise HTTPException(400, f"{display_name(video.filename)!r} is not named as a video "
                                 "(.mp4, .mkv, .mov, .avi, .webm, .m4v)")
    paintings = await run_in_threadpool(read_paintings, style, weights, limits) if style else None
    checked = await run_in_threadpool(read_video, video, "video", limits)
    request = FastRequest(model, strength, preserve_color, size, None if paintings is None else paintings.weights)
    job = await run_in_threadpool(queue.submit_fast_video, checked, dataclasses.asdict(request), paintings)
    return queue.state(job)
