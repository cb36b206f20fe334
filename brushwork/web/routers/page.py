"""The page and its assets: files this package ships, served from memory by name, under a
policy that lets the page load only what this server sends (no inline script, no other origin)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ASSET_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# Read once: a request's name is only ever looked up in this table, never joined to a path.
ASSETS = {item.name: item.read_bytes() for item in (importlib.resources.files("brushwork.web") / "static").iterdir()
          if Path(item.name).suffix in ASSET_TYPES}

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> HTMLResponse:
    return HTMLResponse(ASSETS["index.html"], headers={"Content-Security-Policy": PAGE_POLICY,
                                                       "Cache-Control": "no-cache"})


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "not found")
    return Response(ASSETS[name], media_type=ASSET_TYPES[Path(name).suffix], headers={"Cache-Control": "no-cache"})
