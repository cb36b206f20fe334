"""What the page needs before a job: the form's fields (from the settings table), this
server's upload limits, and sample pictures to try it with."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from ..dependencies import LimitsDep
from ..form import describe, web_settings

# Pictures inside scikit-image's wheel (public domain / CC0), offered on the page.
SAMPLES = {
    "astronaut": ("astronaut.png", "content"),
    "chelsea": ("chelsea.png", "content"),
    "coffee": ("coffee.png", "content"),
    "rocket": ("rocket.jpg", "content"),
    "ihc": ("ihc.png", "style"),
    "gravel": ("gravel.png", "style"),
}

# Routes the page uses when the server has them: the arbitrary-style network's instant
# preview, from brushwork[arbitrary], is mounted only where that is installed.
OPTIONAL_ROUTES = {"instant_preview": "/api/fast/style"}

router = APIRouter(prefix="/api", tags=["setup"])


def route_paths(routes: list) -> Iterator[str]:
    """Every path of an app's routes, through the routers it included (FastAPI keeps those
    as routers of their own)."""
    for route in routes:
        if hasattr(route, "path"):
            yield route.path
        elif hasattr(route, "original_router"):
            yield from route_paths(route.original_router.routes)


@router.get("/config")
def config(request: Request, limits: LimitsDep) -> dict[str, Any]:
    """What the page offers: the form's settings (field, flag, help, kind, choices, bounds,
    default), the upload limits, the sample images, and which optional routes this server has."""
    paths = set(route_paths(request.app.routes))
    return {
        "features": {name: path in paths for name, path in OPTIONAL_ROUTES.items()},
        "settings": [describe(setting) for setting in web_settings()],
        "limits": {"max_upload_mb": limits.max_upload_mb, "max_input_pixels": limits.max_input_pixels,
                   "max_styles": limits.max_styles, "max_video_mb": limits.max_video_mb,
                   "max_video_frames": limits.max_video_frames},
        "samples": [{"name": name, "role": role, "url": f"/api/samples/{name}"} for name, (_, role) in SAMPLES.items()],
    }


@router.get("/samples/{name}", response_class=FileResponse)
def sample(name: str) -> FileResponse:
    """A sample picture that ships with scikit-image (use it like an upload)."""
    if name not in SAMPLES:
        raise HTTPException(404, f"no sample {name!r}; samples: {', '.join(SAMPLES)}")
    return FileResponse(Path(str(importlib.resources.files("skimage") / "data" / SAMPLES[name][0])))
