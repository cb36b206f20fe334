"""A job as the server keeps it: the fields saved in its job.json, the live ones that are
not, and the names of the files in its folder (all chosen by the server, never by a client)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

ACTIVE = ("queued", "running")  # the other statuses: done, failed, cancelled, interrupted
RETRYABLE = ("interrupted", "failed", "cancelled")
JOB_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # what secrets.token_urlsafe(16) makes
INTERRUPTED = "the server stopped before this job finished"
PREVIEW_SIDE = 512  # previews are for the screen: at most this many pixels on the long side
CONTENT_FILE = "content.png"
MASK_FILE = "mask.png"  # where the style goes: white paints, black keeps the photo
RESULT_FILES = {"png": "result.png", "jpg": "result.jpg"}  # a video job's poster: its first painted frame
VIDEO_RESULT = "result.mp4"
FRAMES_FOLDER = "frames"  # a painted video's finished frames, until the video is written
VIDEO_KINDS = ("video", "fast-video")  # the optimization's frame loop; a fast-mode network
RECORD_FILE = "job.json"


def style_file(index: int) -> str:
    return f"style-{index}.png"


def style_mask_file(index: int) -> str:
    """Which region of the photo style `index` paints."""
    return f"style-{index}-mask.png"


def style_region_file(index: int) -> str:
    """Which part of style image `index` counts (white: that part)."""
    return f"style-{index}-region.png"


@dataclass
class Job:
    """One request: a stylization, or a compare grid of them. The fields before `preview` are
    saved in job.json; `order` is its place in the line, kept across restarts."""

    id: str
    settings: dict  # Options fields chosen by the client
    content_name: str  # the uploaded names, for display only: files on disk are named by the server
    style_names: list[str]
    kind: str = "stylize"
    vary: list[str] = field(default_factory=list)  # compare: "field=v1,v2" per axis
    order: int = 0
    rerun_of: str | None = None
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total_steps: int = 0
    elapsed: float = 0.0  # seconds since the run started, at the last step
    losses: list[list[float]] = field(default_factory=list)  # [step, content, style, tv, total] per step
    width: int | None = None
    height: int | None = None
    error: str | None = None
    warning: str | None = None
    grid: dict | None = None  # compare: its axes and cells, known when it is queued
    cells: list[dict] = field(default_factory=list)  # compare: each finished cell's numbers
    reports: list[str] = field(default_factory=list)  # compare: the report files, once written
    groups: list[dict] = field(default_factory=list)  # compare: each run's cells and its first row of `losses`
    mask: bool = False  # asked with a mask (MASK_FILE)
    style_masks: bool = False  # asked with one region mask per style (style_mask_file)
    style_regions: bool = False  # asked with one mask per style image (style_region_file)
    video: str | None = None  # a video job: its stored video's file name (content.png is its first frame)
    frames: int = 0  # a video job: its frame count
    frame: int = 0  # a video job: frames finished
    # Live state, never saved.
    preview: bytes | None = field(default=None, repr=False)
    preview_version: int = 0
    cancel_requested: bool = False
    listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list, repr=False)

    def eta(self) -> float | None:
        """Seconds left, from the mean step time so far, or for a video the mean frame time
        (None unless running and a step or frame is done)."""
        if self.status == "running" and self.video is not None and self.frame and self.started:
            return (time.time() - self.started) / self.frame * (self.frames - self.frame)
        if self.status != "running" or not self.step:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)

    def view(self, position: int | None, losses: bool = True) -> dict[str, Any]:
        """The job as the API shows it (JSON-ready), given its place in line."""
        state = {
            "id": self.id, "kind": self.kind, "status": self.status, "position": position,
            "created": self.created, "started": self.started, "finished": self.finished,
            "settings": self.settings, "vary": self.vary, "rerun_of": self.rerun_of,
            "inputs": {"content": self.content_name, "styles": self.style_names, "mask": self.mask,
                       "style_masks": self.style_masks, "style_regions": self.style_regions},
            "step": self.step, "total_steps": self.total_steps, "loss": self.losses[-1][4] if self.losses else None,
            "elapsed": self.elapsed, "eta_seconds": self.eta(), "width": self.width, "height": self.height,
            "error": self.error, "warning": self.warning, "preview_version": self.preview_version,
            "video": self.video, "frames": self.frames, "frame": self.frame,
            "grid": self.grid, "cells": list(self.cells), "reports": self.reports, "groups": list(self.groups),
        }
        if losses:
            state["losses"] = list(self.losses)
        return state

    def input_files(self) -> list[str]:
        """Every picture the job was asked with, masks included, as stored: what a re-run copies."""
        styles = range(len(self.style_names))
        return ([CONTENT_FILE] + [style_file(i) for i in styles] + [MASK_FILE] * self.mask
                + [style_mask_file(i) for i in styles if self.style_masks]
                + [style_region_file(i) for i in styles if self.style_regions] + [self.video] * bool(self.video))

    def to_json(self) -> bytes:
        return json.dumps({name: getattr(self, name) for name in SAVED}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Job":
        record = json.loads(data)
        return cls(**{name: record[name] for name in SAVED if name in record})

    def reset(self, order: int) -> None:
        """Back in line as if new (a retry): what the last attempt left is forgotten."""
        fresh = Job(self.id, self.settings, self.content_name, self.style_names, self.kind, self.vary, order,
                    self.rerun_of, created=self.created, grid=self.grid, mask=self.mask,
                    style_masks=self.style_masks, style_regions=self.style_regions, video=self.video,
                    frames=self.frames)
        for name in SAVED:
            setattr(self, name, getattr(fresh, name))
        self.preview, self.cancel_requested = None, False


def saved_fields() -> tuple[str, ...]:
    """The dataclass's fields up to the first live one: adding a saved field is one line."""
    names = [f.name for f in fields(Job)]
    return tuple(names[: names.index("preview")])


SAVED = saved_fields()


def encode_preview(image: Image.Image) -> bytes:
    """A small JPEG for the live view: cheap to make twice a second and to send."""
    image = image.copy()
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
