"""What the routes share, as FastAPI dependencies: the app's job queue, limits and fast-mode
models (kept on `app.state` by `create_app`, so that several apps can live in one process,
as the tests make them), and the job a path names.

They are coroutines because they only look things up: FastAPI would run plain functions in
its thread pool, a thread hop per dependency per request, which a busy server feels.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .fastmode import Models
from .jobs import JobQueue
from .records import Job
from .uploads import Limits


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def get_limits(request: Request) -> Limits:
    return request.app.state.limits


async def get_models(request: Request) -> Models:
    return request.app.state.models


QueueDep = Annotated[JobQueue, Depends(get_queue)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
ModelsDep = Annotated[Models, Depends(get_models)]


async def find_job(job_id: str, queue: QueueDep) -> Job:
    """The job with this id. Ids are only ever looked up in the queue's table, so no part of a
    request's path reaches the filesystem."""
    job = queue.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


JobDep = Annotated[Job, Depends(find_job)]
