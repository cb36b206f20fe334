"""Jobs: queue one from a form of pictures and settings, list them, follow one live, cancel,
retry, re-run or delete it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from ...errors import BrushworkError
from ..dependencies import JobDep, LimitsDep, QueueDep
from ..form import PICTURES, JobForm, job_form, parse_settings, request_schema, settings_form
from ..events import ENDS_STREAM
from ..jobs import JobQueue, Pictures
from ..records import ACTIVE, Job
from ..uploads import Limits, is_video_name, read_image, read_mask, read_styles, read_video

KEEPALIVE_SECONDS = 15.0

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def pictures(form: JobForm, limits: Limits) -> Pictures:
    """The form's pictures, decoded and checked (each one's problem is the client's 4xx)."""
    video = read_video(form.content, "content", limits) if is_video_name(form.content.filename) else None
    content_image, content_name = (video.poster, video.name) if video else read_image(form.content, "content", limits)
    style_images, style_names = read_styles(form.styles, limits)
    mask = read_mask(form.mask, "mask", limits) if form.mask else None
    style_masks = [read_mask(upload, "style mask", limits) for upload in form.style_masks]
    regions = [read_mask(upload, "style region", limits) for upload in form.style_regions]
    return Pictures(content_image, style_images, content_name, style_names, mask, style_masks, regions,
                    video)


def conflict(error: BrushworkError) -> HTTPException:
    """A request that does not fit the job's state."""
    return HTTPException(409, str(error))


@router.post("", status_code=201, openapi_extra=request_schema())
def create_job(form: Annotated[JobForm, Depends(job_form)], queue: QueueDep, limits: LimitsDep) -> dict[str, Any]:
    """Queue a stylization job (multipart form: `content`, one or more `styles`, optionally a
    `mask`, one `style_masks` per style and one `style_regions` per style, and the settings that /api/config lists). Returns
    its state; follow it with /events. A `content` named as a video (.mp4, .mkv, .mov, .avi,
    .webm, .m4v) is painted frame by frame, each frame announced by a `frame` event."""
    job = queue.submit(pictures(form, limits), form.settings)
    return queue.state(job)


@router.get("")
def list_jobs(queue: QueueDep) -> dict[str, Any]:
    """Every job this server knows, newest first (without the per-step losses)."""
    return {"jobs": [queue.state(job, losses=False) for job in queue.jobs()]}


@router.get("/{job_id}")
async def get_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """A job's state: status, place in line, step, loss, ETA, per-step losses
    ([step, content, style, tv, total]), error; for a grid its axes, finished cells and reports.
    (A coroutine: it is polled often and only reads memory, under a lock held for microseconds.)"""
    return queue.state(job)


@router.post("/{job_id}/cancel")
def cancel_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """Cancel a queued job at once, or a running one at its next step (409 if already finished)."""
    try:
        queue.cancel(job)
    except BrushworkError as e:
        raise conflict(e) from None
    return queue.state(job)


@router.post("/{job_id}/retry")
def retry_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """Put an interrupted, failed or cancelled job back in line, at its end, as it was asked for
    (a grid keeps the cells it had finished). 409 for a job that is waiting, running or done."""
    try:
        queue.retry(job)
    except BrushworkError as e:
        raise conflict(e) from None
    return queue.state(job)


@router.post("/{job_id}/rerun", status_code=201)
def rerun_job(job: JobDep, queue: QueueDep, form: Annotated[FormData, Depends(settings_form)]) -> dict[str, Any]:
    """A new job on this job's stored pictures and masks: the settings the form gives
    (multipart or urlencoded, the fields of /api/config), the old job's for the rest."""
    if any(name in form for name in PICTURES):
        raise HTTPException(422, "a re-run paints the job's stored pictures and masks; send only settings")
    return queue.state(queue.rerun(job, parse_settings(form, base=job.settings)))


@router.delete("/{job_id}")
def delete_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """Delete a job and all its files (409 while it runs: cancel it first)."""
    try:
        queue.delete(job)
    except BrushworkError as e:
        raise conflict(e) from None
    return {"deleted": job.id}


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def event_stream(queue: JobQueue, job: Job) -> AsyncIterator[str]:
    """The job's events until it finishes (or is deleted, or the server stops), with a comment
    now and then so that proxies and browsers keep a quiet connection open."""
    state, events = queue.listen(job, asyncio.get_running_loop())
    try:
        yield sse("state", state)
        finished = state["status"] not in ACTIVE
        while not finished:
            try:
                event, data = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield sse(event, data)
            finished = event in ENDS_STREAM or (event == "state" and data["status"] not in ACTIVE)
    finally:
        queue.unlisten(job, events)


@router.get("/{job_id}/events",
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def job_events(job: JobDep, queue: QueueDep) -> StreamingResponse:
    """Server-sent events: first `state` (the full state), then `progress` after each step
    ({step, total_steps, elapsed, eta_seconds, record, preview_version}), `cell` as each cell
    of a grid is done, `frame` as each frame of a video is done ({frame, frames, eta_seconds,
    preview_version}), and `state` at each change of status; the stream ends after the job
    finishes, with `deleted` if it is deleted and `closing` if the server stops first."""
    return StreamingResponse(event_stream(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
