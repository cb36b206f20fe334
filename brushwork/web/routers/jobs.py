"""Jobs: queue one from a form of pictures and settings, list them, follow one live, cancel it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse

from ...errors import BrushworkError
from ..dependencies import JobDep, LimitsDep, QueueDep
from ..form import JobForm, job_form, request_schema
from ..jobs import ACTIVE, Job, JobQueue
from ..uploads import read_image

KEEPALIVE_SECONDS = 15.0

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.post("", status_code=201, openapi_extra=request_schema())
def create_job(form: Annotated[JobForm, Depends(job_form)], queue: QueueDep, limits: LimitsDep) -> dict[str, Any]:
    """Queue a stylization job (multipart form: `content`, one or more `styles`, and the
    settings that /api/config lists). Returns its state; follow it with /events."""
    if len(form.styles) > limits.max_styles:
        raise HTTPException(400, f"{len(form.styles)} style images is over the limit of {limits.max_styles}")
    content_image, content_name = read_image(form.content, "content", limits)
    style_images, style_names = zip(*(read_image(style, "style", limits) for style in form.styles))
    job = queue.submit(content_image, list(style_images), form.settings, content_name, list(style_names))
    return queue.state(job)


@router.get("")
def list_jobs(queue: QueueDep) -> dict[str, Any]:
    """Every job this server knows, newest first (without the per-step losses)."""
    return {"jobs": [queue.state(job, losses=False) for job in queue.jobs()]}


@router.get("/{job_id}")
def get_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """A job's state: status, place in line, step, loss, ETA, per-step losses
    ([step, content, style, tv, total]), error."""
    return queue.state(job)


@router.post("/{job_id}/cancel")
def cancel_job(job: JobDep, queue: QueueDep) -> dict[str, Any]:
    """Cancel a queued job at once, or a running one at its next step (409 if already finished)."""
    try:
        queue.cancel(job)
    except BrushworkError as e:
        raise HTTPException(409, str(e)) from None
    return queue.state(job)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def event_stream(queue: JobQueue, job: Job) -> AsyncIterator[str]:
    """The job's events until it finishes, with a comment now and then so that proxies and
    browsers keep a quiet connection open."""
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
            finished = event == "state" and data["status"] not in ACTIVE
    finally:
        queue.unlisten(job, events)


@router.get("/{job_id}/events",
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def job_events(job: JobDep, queue: QueueDep) -> StreamingResponse:
    """Server-sent events: first `state` (the full state), then `progress` after each step
    ({step, total_steps, elapsed, eta_seconds, record, preview_version}) and `state` at each
    change of status; the stream ends after the job finishes."""
    return StreamingResponse(event_stream(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
