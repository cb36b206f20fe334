"""What the page needs before a job: the form's fields (from the settings table), this
server's upload limits, and sample pictures to try it with."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
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

router = APIRouter(prefix="/api", tags=["setup"])


@router.get("/config")
def config(limits: LimitsDep) -> dict[str, Any]:
    """What the page offers: the form's settings (field, flag, help, kind, choices, bounds,
    default), the upload limits and the sample images."""
    return {
        "settings": [describe(setting) for setting in web_settings()],
        "limits": {"max_upload_mb": limits.max_upload_mb, "max_input_pixels": limits.max_input_pixels,
                   "max_styles": limits.max_styles},
        "samples": [{"name": name, "role": role, "url": f"/api/samples/{name}"} for name, (_, role) in SAMPLES.items()],
    }


@router.get("/samples/{name}", response_class=FileResponse)
def sample(name: str) -> FileResponse:
    """A sample picture that ships with scikit-image (use it like an upload)."""
    if name not in SAMPLES:
        raise HTTPException(404, f"no sample {name!r}; samples: {', '.join(SAMPLES)}")
    return FileResponse(Path(str(importlib.resources.files("skimage") / "data" / SAMPLES[name][0])))
