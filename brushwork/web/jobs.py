"""The job queue behind `brushwork serve`: jobs by id, the waiting line and each job's life.

Each job lives in its own folder under the data dir (`store`), and its job.json is rewritten
atomically at every change of status, so a restart finds the whole history and the line in
its order: jobs that were waiting wait again, and the one a shutdown or crash cut off is
marked "interrupted", ready to be retried. One `worker` thread runs the head of the line;
pages follow a job through its `events`. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..batch.cells import Inputs
from ..engine import Progress
from ..errors import BrushworkError
from ..options import Options
from . import events
from .records import (
    ACTIVE, CONTENT_FILE, INTERRUPTED, MASK_FILE, RETRYABLE, Job, style_file, style_mask_file, style_region_file,
)
from .runs import describe_grid, plan_grid
from .fastmode import Models
from .paintings import Paintings
from .store import Store
from .uploads import Video
from .worker import Worker

log = logging.getLogger("brushwork.web")


@dataclass
class Pictures:
    """A request's decoded pictures and the names the client gave them (shown, never used as
    paths); masks are grayscale (white: the style paints, black: the photo stays)."""

    content: Image.Image
    styles: list[Image.Image]
    content_name: str
    style_names: list[str]
    mask: Image.Image | None = None
    style_masks: list[Image.Image] = field(default_factory=list)  # none, or one per style
    style_regions: list[Image.Image] = field(default_factory=list)  # none, or one per style image
    video: Video | None = None  # a video to paint (`content` is its first frame)

    @property
    def video_file(self) -> str | None:
        """The name the video is stored under."""
        return None if self.video is None else f"content{self.video.suffix}"

    def raw_files(self) -> dict[str, bytes]:
        """What is stored as sent: the video (PyAV reads it as it came)."""
        return {} if self.video is None else {self.video_file: self.video.data}

    def files(self) -> dict[str, Image.Image]:
        """The pictures by the names the server stores them under."""
        named = {CONTENT_FILE: self.content, **{style_file(i): s for i, s in enumerate(self.styles)},
                 **{style_mask_file(i): m for i, m in enumerate(self.style_masks)},
                 **{style_region_file(i): m for i, m in enumerate(self.style_regions)}}
        return named | ({MASK_FILE: self.mask} if self.mask is not None else {})


class JobQueue:
    """Jobs by id and the waiting line; what the worker and the routes change goes through here."""

    def __init__(self, data_dir: Path, preview_interval: float = 0.5, device: str = "auto",
                 precision: str = "auto", models: Models | None = None):
        self.store = Store(Path(data_dir) / "jobs")
        self.models = models  # fast mode's networks, for fast-mode video jobs
        self.preview_interval = preview_interval
        self.device, self.precision = device, precision
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self.closing = False
        self._worker = Worker(self)
        self._next_order = 0
        self._load()

    def folder(self, job: Job) -> Path:
        return self.store.folder(job.id)

    def options(self, settings: dict) -> Options:
        """A job's Options: the client's settings on this server's device and precision."""
        return Options(**settings).replace(device=self.device, precision=self.precision)

    def run_options(self, job: Job) -> Options:
        """What a job runs with: its Options, and its stored masks as files."""
        folder, styles = self.folder(job), range(len(job.style_names))
        return self.options(job.settings).replace(
            mask=str(folder / MASK_FILE) if job.mask else None,
            style_masks=tuple(str(folder / style_mask_file(i)) for i in styles) if job.style_masks else None,
            style_regions=tuple(str(folder / style_region_file(i)) for i in styles) if job.style_regions else None)

    def _save(self, job: Job) -> None:
        """job.json, where a failure must not stop the worker: the state in memory stays
        right, and a full disk is logged (the record on disk is then one change behind)."""
        try:
            self.store.save_record(job)
        except (OSError, BrushworkError) as e:
            log.error("cannot save the record of job %s: %s", job.id, e)

    def _load(self) -> None:
        """The history back, and the line in its old order; a job that was running is interrupted."""
        for job in self.store.records():
            if job.status == "running":
                job.status, job.error, job.finished = "interrupted", INTERRUPTED, time.time()
                self._save(job)
            self._jobs[job.id] = job
        waiting = sorted((job for job in self._jobs.values() if job.status == "queued"),
                         key=lambda job: (job.order, job.created))
        self._waiting.extend(job.id for job in waiting)
        self._next_order = max((job.order for job in self._jobs.values()), default=-1) + 1

    # --- what clients see ------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def state(self, job: Job, losses: bool = True) -> dict[str, Any]:
        """The job as the API shows it (JSON-ready), with its place in line."""
        with self._lock:
            position = self._waiting.index(job.id) + 1 if job.status == "queued" and job.id in self._waiting else None
            return job.view(position, losses)

    def listen(self, job: Job, loop: asyncio.AbstractEventLoop) -> tuple[dict, asyncio.Queue]:
        """The job's state now and a queue of (event, data) from then on, with nothing lost between."""
        with self._lock:
            return self.state(job), events.subscribe(job, loop)

    def unlisten(self, job: Job, queue: asyncio.Queue) -> None:
        with self._lock:
            events.unsubscribe(job, queue)

    def _changed(self, job: Job) -> None:
        """Save and announce a change of status; everyone behind in line moved up too."""
        self._save(job)
        events.publish(job, "state", self.state(job))
        self._line_moved()

    def _line_moved(self) -> None:
        """Tell those following a waiting job its new place (only those: a long line would
        otherwise cost a state per waiting job at every change)."""
        for waiting in self._waiting:
            if self._jobs[waiting].listeners:
                events.publish(self._jobs[waiting], "state", self.state(self._jobs[waiting]))

    def _enqueue(self, job: Job) -> None:
        """At the end of the line (called with the lock held)."""
        self._jobs[job.id] = job
        self._waiting.append(job.id)
        self._changed(job)
        self._lock.notify_all()

    def _take_order(self) -> int:
        """The next place in line, kept across restarts (the lock is reentrant)."""
        with self._lock:
            self._next_order += 1
            return self._next_order - 1

    def _check_open(self) -> None:
        if self.closing:
            raise BrushworkError("the server is shutting down")

    # --- requests --------------------------------------------------------------------------

    def check(self, kind: str, settings: dict, vary: list[str], pictures: Pictures) -> dict | None:
        """Everything that can be wrong with a request, before anything is stored; a grid's
        layout comes back, for the page to draw before the first cell is done."""
        options = self.options(settings)
        masks = {"mask": pictures.mask, "style_masks": tuple(pictures.style_masks) or None,
                 "style_regions": tuple(pictures.style_regions) or None}
        options.replace(**masks).validate(len(pictures.styles))
        if pictures.video is not None and (kind == "compare" or any(masks.values())):
            raise BrushworkError("a video is painted whole: it takes no mask, style masks or style regions, "
                                 "and no compare grid")
        if kind != "compare":
            return None
        inputs = Inputs(pictures.content, pictures.styles, pictures.content_name, pictures.style_names)
        return describe_grid(*plan_grid(options, vary, inputs))

    def submit(self, pictures: Pictures, settings: dict, kind: str = "stylize", vary: list[str] = ()) -> Job:
        """Check the request, store the inputs and put the job in line."""
        grid = self.check(kind, settings, list(vary), pictures)
        self._check_open()
        job = Job(secrets.token_urlsafe(16), settings, pictures.content_name, pictures.style_names,
                  "video" if pictures.video else kind, list(vary), self._take_order(), grid=grid,
                  mask=pictures.mask is not None, style_masks=bool(pictures.style_masks),
                  style_regions=bool(pictures.style_regions), video=pictures.video_file,
                  frames=pictures.video.frames if pictures.video else 0)
        self.store.create(job, pictures.files(), pictures.raw_files())
        with self._lock:
            self._enqueue(job)
        return job

    def submit_fast_video(self, video: Video, request: dict, paintings: Paintings | None = None) -> Job:
        """A video through a fast-mode network (`request`: FastRequest's fields), as a job:
        it takes a while, and the page follows it frame by frame. Without a model, the job
        keeps the paintings it paints with as its style images."""
        self._check_open()
        styles, names = ([], []) if paintings is None else (paintings.pictures, paintings.names)
        pictures = Pictures(video.poster, styles, video.name, names, video=video)
        job = Job(secrets.token_urlsafe(16), request, video.name, names, "fast-video", order=self._take_order(),
                  video=pictures.video_file, frames=video.frames)
        self.store.create(job, pictures.files(), pictures.raw_files())
        with self._lock:
            self._enqueue(job)
        return job

    def rerun(self, source: Job, settings: dict) -> Job:
        """A new job on `source`'s stored pictures with changed settings, at the end of the line."""
        if source.kind == "fast-video":
            raise BrushworkError("a fast-mode video is painted again from the Fast tab")
        self.options(settings).validate(len(source.style_names))
        self._check_open()
        job = Job(secrets.token_urlsafe(16), settings, source.content_name, source.style_names, source.kind,
                  list(source.vary), self._take_order(), rerun_of=source.id, grid=source.grid, mask=source.mask,
                  style_masks=source.style_masks, style_regions=source.style_regions, video=source.video,
                  frames=source.frames)
        self.store.copy_inputs(source, job)
        with self._lock:
            self._enqueue(job)
        return job

    def retry(self, job: Job) -> None:
        """An interrupted, failed or cancelled job goes back in line, as it was asked for."""
        with self._lock:
            if job.status not in RETRYABLE:
                raise BrushworkError(f"job {job.id} is {job.status}; only {', '.join(RETRYABLE)} jobs can be retried")
            self._check_open()
            job.reset(self._take_order())
            self._enqueue(job)

    def cancel(self, job: Job) -> None:
        """A waiting job leaves the line at once; a running one stops at its next step."""
        with self._lock:
            if job.status not in ACTIVE:
                raise BrushworkError(f"job {job.id} is already {job.status}")
            if job.status == "queued":
                self._waiting.remove(job.id)
                job.status, job.finished = "cancelled", time.time()
                self._changed(job)
            else:
                job.cancel_requested = True

    def delete(self, job: Job) -> None:
        """A job and its files; a running one must be cancelled first (its files are in use)."""
        with self._lock:
            if job.status == "running":
                raise BrushworkError(f"job {job.id} is running; cancel it first")
            if self._jobs.get(job.id) is not job:
                raise BrushworkError(f"job {job.id} is already deleted")
            if job.id in self._waiting:
                self._waiting.remove(job.id)
            del self._jobs[job.id]
            events.publish(job, "deleted", {"id": job.id})
            self._line_moved()
        self.store.delete(job)

    # --- the worker's side -----------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Stop taking jobs: waiting ones stay in line on disk for the next start (their event
        streams end now), the running one stops at its next step and is marked interrupted."""
        with self._lock:
            self.closing = True
            for job_id in self._waiting:
                events.publish(self._jobs[job_id], "closing", {"id": job_id})
            self._lock.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """stop(), then wait for the worker, so that it leaves its files complete."""
        self.stop()
        self._worker.join(timeout)

    def take(self) -> Job | None:
        """The head of the line, now running; waits for one, and None once the queue stops."""
        with self._lock:
            while not self._waiting and not self.closing:
                self._lock.wait()
            if self.closing:
                return None
            job = self._jobs[self._waiting.popleft()]
            job.status, job.started = "running", time.time()
            self._changed(job)
            return job

    def stepped(self, job: Job, progress: Progress, preview: bytes | None) -> None:
        """One step of a running job, and a new preview if the worker made one."""
        r = progress.record
        with self._lock:
            job.step, job.total_steps, job.elapsed = progress.step, progress.total_steps, r.seconds
            job.losses.append([r.step, r.content, r.style, r.tv, r.total])
            if preview is not None:
                job.preview, job.preview_version = preview, job.preview_version + 1
            events.publish(job, "progress", {
                "step": job.step, "total_steps": job.total_steps, "elapsed": job.elapsed, "eta_seconds": job.eta(),
                "record": job.losses[-1], "preview_version": job.preview_version,
            })

    def frame_done(self, job: Job, count: int, preview: bytes | None) -> None:
        """A video's frame is finished: `count` of them now, with its picture for the live view."""
        with self._lock:
            job.frame = count
            if preview is not None:
                job.preview, job.preview_version = preview, job.preview_version + 1
            events.publish(job, "frame", {"frame": count, "frames": job.frames, "eta_seconds": job.eta(),
                                          "preview_version": job.preview_version})

    def group_started(self, job: Job, cells: list[int]) -> None:
        """A grid's next run begins: the cells it paints, and where its losses start."""
        group = {"cells": cells, "first": len(job.losses)}
        with self._lock:
            job.groups.append(group)
            events.publish(job, "group", group)

    def cell_done(self, job: Job, cell: dict) -> None:
        """A grid cell is announced and recorded at once, so a page or a restart sees it."""
        with self._lock:
            job.cells.append(cell)
            events.publish(job, "cell", cell)
        self._save(job)

    def finish(self, job: Job, status: str, error: str | None, changes: dict[str, Any]) -> None:
        """How a run ended, and the job fields its outcome set (size, preview, reports)."""
        with self._lock:
            if "preview" in changes:
                changes["preview_version"] = job.preview_version + 1
            for name, value in changes.items():
                setattr(job, name, value)
            job.status, job.error, job.finished = status, error, time.time()
            self._changed(job)
