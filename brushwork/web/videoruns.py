"""What the worker does with a video job: the optimization's frame loop (brushwork.video,
as `brushwork stylize clip.mp4` runs it), or a fast-mode network over the frames.

Both report each finished frame (frame i of N, for the page's progress and ETA) and write
the video whole, to a temp file renamed at the end, before the job is done; the first
painted frame is the job's poster (result.png / result.jpg). A painted video keeps its
finished frames in the job's folder until the video is written, so a retried job paints
only the frames it had not finished. A cancel stops the frame loop between steps, and fast
mode between frames.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
from PIL import Image

from .. import videoio
from ..api import engine_for
from ..clip_io import frames_at_size, open_clip
from ..fast.video import stylize_video
from ..video import FRAME_STEPS, ClipSettings, FrameStore, paint_clip
from .fastmode import FastRequest
from .records import FRAMES_FOLDER, RESULT_FILES, VIDEO_RESULT, Job, encode_preview
from .runs import RunContext


def save_poster(ctx: RunContext, picture: Image.Image) -> dict[str, Any]:
    """The first painted frame as the job's picture: its size, preview and downloads."""
    for name in RESULT_FILES.values():
        ctx.store.save_image(picture, ctx.folder / name)
    return {"width": picture.width, "height": picture.height, "preview": encode_preview(picture)}


def run_video(job: Job, ctx: RunContext) -> dict[str, Any]:
    """The frame loop: a shot's first frame gets the job's schedule, each later frame starts
    from the one before, warped, and runs at most as many steps (never more than the
    command's default of later-frame steps)."""
    source = ctx.folder / job.video
    clip = open_clip(str(source), False, (0, None))
    _, styles = ctx.inputs(job)
    work = ctx.folder / FRAMES_FOLDER
    work.mkdir(exist_ok=True)
    store = FrameStore(lambda index: work / f"{index:06d}.png")
    settings = ClipSettings(frame_steps=min(FRAME_STEPS, ctx.options.steps))
    frames = frames_at_size(clip, ctx.options, None)
    with ctx.store.writing():
        for done, (frame, result, _) in enumerate(paint_clip(engine_for(ctx.options), frames, styles, ctx.options,
                                                             settings, store, ctx.callback), 1):
            picture = result.image if result is not None else store.load(frame.index)
            ctx.frame_done(done, encode_preview(picture))
        first = store.load(0)
        videoio.rewrite(source, ctx.folder / VIDEO_RESULT, first.size, lambda index, _: np.asarray(store.load(index)))
    changes = save_poster(ctx, first)
    shutil.rmtree(work, ignore_errors=True)
    return changes


def run_fast_video(job: Job, ctx: RunContext) -> dict[str, Any]:
    """The video through a fast-mode network with `brushwork apply`'s default deflicker: the
    trained model the job names, or the arbitrary-style network with the job's paintings."""
    request = FastRequest(**job.settings)
    paintings = ctx.inputs(job)[1] if request.model is None else []
    stylizer = ctx.models.stylizer(request, paintings)
    target = ctx.folder / VIDEO_RESULT
    with ctx.store.writing():
        stylize_video(stylizer, ctx.folder / job.video, target, lambda count: ctx.frame_done(count, None))
    first = next(videoio.frames(target))
    return save_poster(ctx, Image.fromarray(first.pixels))


VIDEO_RUNNERS = {"video": run_video, "fast-video": run_fast_video}
