"""What the page needs before a job: the form's fields (from the settings table), this
server's upload limits, and sample pictures to try it with."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from ...fast.arbitrary import MISSING
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

# Routes the page uses when the server has them, and what the page calls each: the
# arbitrary-style network's route (brushwork[arbitrary]) is mounted only where that is
# installed, and is both the Paint tab's instant preview and the Fast tab's "your painting".
OPTIONAL_ROUTES = {"instant_preview": ("/api/fast/style", "The instant preview"),
                   "any_style": ("/api/fast/style", "Your painting (any style)")}

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
    default), the upload limits, the sample images, which optional routes this server has, and
    for each one it lacks the line that says what to install."""
    paths = set(route_paths(request.app.routes))
    features = {name: path in paths for name, (path, _) in OPTIONAL_ROUTES.items()}
    return {
        "features": features,
        "unavailable": {name: MISSING.format(OPTIONAL_ROUTES[name][1]) for name, on in features.items() if not on},
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
