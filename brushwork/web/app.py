"""The web app: a JSON API over the job queue, and the page that uses it.

Safety rules, all enforced here: uploads are limited in bytes and pixels and decoded by
Pillow (the name and declared type count for nothing); inputs are re-encoded as PNG under
names the server chooses; job ids are random and only ever looked up in the queue's table,
so no part of a request path reaches the filesystem; every error is JSON {"error": message}.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import io
import json
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, AsyncIterator, Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, images
from ..errors import BrushworkError
from ..options import COLOR_MODES, Options
from ..presets import PRESETS
from .jobs import ACTIVE, CONTENT_FILE, RESULT_FILES, Job, JobQueue, style_file

MB = 1024 * 1024
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
KEEPALIVE_SECONDS = 15.0
# What the page starts with: the engine's defaults, but a size and step count meant for a CPU
# (the engine's 512 px and 300 steps suit a GPU); the page lets users raise them.
DEFAULTS = {"preset": Options.preset, "size": 256, "style_weight": Options.style_weight, "steps": 100,
            "preserve_color": Options.preserve_color}
SIZE_RANGE = (32, 2048)
STEPS_RANGE = (1, 5000)
# Pictures inside scikit-image's wheel (public domain / CC0), offered on the page.
SAMPLES = {
    "astronaut": ("astronaut.png", "content"),
    "chelsea": ("chelsea.png", "content"),
    "coffee": ("coffee.png", "content"),
    "rocket": ("rocket.jpg", "content"),
    "ihc": ("ihc.png", "style"),
    "gravel": ("gravel.png", "style"),
}
# The page may load only what this server sends; no inline script, no other origin.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ASSET_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def sample_path(name: str) -> Path:
    return Path(str(importlib.resources.files("skimage") / "data" / SAMPLES[name][0]))


def display_name(filename: str | None) -> str:
    """The last part of a client's file name, printable and short: it is only ever shown."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:100]
    return name or "upload"


def read_image(upload: UploadFile, role: str, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    """Decode one upload to RGB, or refuse it with a message that says why."""
    name = display_name(upload.filename)
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"the {role} image {name!r} is over the upload limit of {max_bytes / MB:.3g} MB")
    if not data:
        raise HTTPException(400, f"the {role} image {name!r} is empty")
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            width, height = image.size  # known from the header, before decoding any pixel
            if width * height > max_pixels:
                raise HTTPException(413, f"the {role} image {name!r} is {width}x{height} = {width * height:,} "
                                         f"pixels, over the limit of {max_pixels:,}")
            image.load()
            return images.load_image(image), name
    except UnidentifiedImageError:
        raise HTTPException(400, f"the {role} file {name!r} is not an image Brushwork reads "
                                 f"({', '.join(ACCEPTED_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the {role} image {name!r} has too many pixels") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(400, f"cannot decode the {role} image {name!r} (truncated or corrupt?): {e}") from None


class BodyLimit:
    """Refuse a request whose declared body is over the limit before anything parses it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                message = f"the request is over the upload limit of {self.max_bytes / MB:.3g} MB"
                await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(
    data_dir: str | Path,
    *,
    max_upload_mb: float = 25,
    max_input_pixels: int = 25_000_000,
    max_styles: int = 4,
    preview_interval: float = 0.5,
) -> FastAPI:
    """The app, keeping its jobs under `data_dir`. The worker runs while the app is served
    (between the ASGI lifespan's startup and shutdown)."""
    queue = JobQueue(Path(data_dir), preview_interval=preview_interval)
    max_bytes = int(max_upload_mb * MB)
    static = importlib.resources.files("brushwork.web") / "static"
    assets = {item.name: item.read_bytes() for item in static.iterdir() if Path(item.name).suffix in ASSET_TYPES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        yield
        await run_in_threadpool(queue.close)

    app = FastAPIOffline(
        title="brushwork",
        version=__version__,
        description="Neural style transfer jobs: upload a content image and style images, follow the run live, "
        "download the result. Errors are JSON objects {\"error\": message}.",
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.add_middleware(BodyLimit, max_bytes=max_bytes * (1 + max_styles) + MB)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BrushworkError)
    async def brushwork_error(request: Request, exc: BrushworkError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{e['loc'][-1]}: {e['msg']}" if e.get("loc") else e["msg"] for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    def find(job_id: str) -> Job:
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    def job_file(job: Job, name: str, media_type: str, download: str | None = None) -> FileResponse:
        """A file the server named, in the folder of a job found by its id."""
        path = queue.folder(job) / name
        if not path.is_file():
            raise HTTPException(404, "not found")
        disposition = {"Content-Disposition": f'attachment; filename="{download}"'} if download else {}
        return FileResponse(path, media_type=media_type, headers=disposition)

    # --- the page --------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(assets["index.html"], headers={"Content-Security-Policy": PAGE_POLICY,
                                                           "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, "not found")
        return Response(assets[name], media_type=ASSET_TYPES[Path(name).suffix], headers={"Cache-Control": "no-cache"})

    # --- the API ---------------------------------------------------------------------------

    @app.get("/api/config", tags=["setup"])
    def config() -> dict:
        """What the page offers: presets, color modes, defaults, limits and sample images."""
        return {
            "presets": [{"name": p.name, "description": p.description} for p in PRESETS.values()],
            "color_modes": list(COLOR_MODES),
            "defaults": DEFAULTS,
            "limits": {"max_upload_mb": max_upload_mb, "max_input_pixels": max_input_pixels,
                       "max_styles": max_styles, "size": SIZE_RANGE, "steps": STEPS_RANGE},
            "samples": [{"name": name, "role": role, "url": f"/api/samples/{name}"}
                        for name, (_, role) in SAMPLES.items()],
        }

    @app.get("/api/samples/{name}", tags=["setup"], response_class=FileResponse)
    def sample(name: str) -> FileResponse:
        """A sample picture that ships with scikit-image (use it like an upload)."""
        if name not in SAMPLES:
            raise HTTPException(404, f"no sample {name!r}; samples: {', '.join(SAMPLES)}")
        return FileResponse(sample_path(name))

    @app.post("/api/jobs", status_code=201, tags=["jobs"])
    def create_job(
        content: Annotated[UploadFile, File(description="the photo to repaint")],
        styles: Annotated[list[UploadFile], File(description="one or more style images")],
        preset: Annotated[str, Form()] = DEFAULTS["preset"],
        size: Annotated[int, Form(ge=SIZE_RANGE[0], le=SIZE_RANGE[1], description="longest side of the output")]
        = DEFAULTS["size"],
        style_weight: Annotated[float, Form(ge=0, le=1e6)] = DEFAULTS["style_weight"],
        steps: Annotated[int, Form(ge=STEPS_RANGE[0], le=STEPS_RANGE[1])] = DEFAULTS["steps"],
        preserve_color: Annotated[Literal[COLOR_MODES], Form()] = DEFAULTS["preserve_color"],  # type: ignore[valid-type]
    ) -> dict:
        """Queue a stylization job (multipart form). Returns its state; follow it with /events."""
        if len(styles) > max_styles:
            raise HTTPException(400, f"{len(styles)} style images is over the limit of {max_styles}")
        content_image, content_name = read_image(content, "content", max_bytes, max_input_pixels)
        style_images, style_names = zip(*(read_image(s, "style", max_bytes, max_input_pixels) for s in styles))
        settings = {"preset": preset, "size": size, "style_weight": style_weight, "steps": steps,
                    "preserve_color": preserve_color}
        job = queue.submit(content_image, list(style_images), settings, content_name, list(style_names))
        return queue.state(job)

    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs() -> dict:
        """Every job this server knows, newest first (without the per-step losses)."""
        return {"jobs": [queue.state(job, losses=False) for job in queue.jobs()]}

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str) -> dict:
        """A job's state: status, place in line, step, loss, ETA, per-step losses
        ([step, content, style, tv, total]), error."""
        return queue.state(find(job_id))

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel_job(job_id: str) -> dict:
        """Cancel a queued job at once, or a running one at its next step (409 if already finished)."""
        job = find(job_id)
        try:
            queue.cancel(job)
        except BrushworkError as e:
            raise HTTPException(409, str(e)) from None
        return queue.state(job)

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"],
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def job_events(job_id: str) -> StreamingResponse:
        """Server-sent events: first `state` (the full state), then `progress` after each step
        ({step, total_steps, elapsed, eta_seconds, record, preview_version}) and `state` at each
        change of status; the stream ends after the job finishes."""
        job = find(job_id)
        state, events = queue.listen(job, asyncio.get_running_loop())

        async def stream() -> AsyncIterator[str]:
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

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/preview", tags=["images"], responses={200: {"content": {"image/jpeg": {}}}})
    def job_preview(job_id: str) -> Response:
        """The latest picture of a run (JPEG, at most 512 px), while it runs and after it finished."""
        job = find(job_id)
        if job.preview is None:
            raise HTTPException(404, "no preview yet")
        return Response(job.preview, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result.{fmt}", tags=["images"], response_class=FileResponse)
    def job_result(job_id: str, fmt: Literal["png", "jpg"]) -> FileResponse:
        """The finished picture, as a download (409 while the job is not done)."""
        job = find(job_id)
        if job.status != "done":
            raise HTTPException(409, f"job {job.id} has no result: it is {job.status}")
        return job_file(job, RESULT_FILES[fmt], "image/png" if fmt == "png" else "image/jpeg",
                        download=f"brushwork-{job.id[:8]}.{fmt}")

    @app.get("/api/jobs/{job_id}/content.png", tags=["images"], response_class=FileResponse)
    def job_content(job_id: str) -> FileResponse:
        """The content image as the server stored it."""
        return job_file(find(job_id), CONTENT_FILE, "image/png")

    @app.get("/api/jobs/{job_id}/style/{index}.png", tags=["images"], response_class=FileResponse)
    def job_style(job_id: str, index: int) -> FileResponse:
        """Style image number `index` (from 0) as the server stored it."""
        job = find(job_id)
        if not 0 <= index < len(job.style_names):
            raise HTTPException(404, f"job {job.id} has {len(job.style_names)} style image(s)")
        return job_file(job, style_file(index), "image/png")

    return app
