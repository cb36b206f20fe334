"""The job queue behind `brushwork serve`.

One worker thread runs the jobs one at a time, since a run takes the whole device; the
others wait in line. Each job lives in its own folder under the data dir (`store`), and its
job.json is rewritten atomically at every change of status, so a restart finds the whole
history and the line in its order: jobs that were waiting wait again, and the one a
shutdown or crash cut off is marked "interrupted", ready to be retried.

Nothing here knows about HTTP: listeners get events through asyncio queues, fed from the
worker thread with `call_soon_threadsafe`.
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
from typing import Any, Callable

from PIL import Image

from ..batch.cells import Inputs
from ..engine import Progress
from ..errors import BrushworkError
from ..options import Options
from .records import (
    ACTIVE, CONTENT_FILE, INTERRUPTED, MASK_FILE, RESULT_FILES, RETRYABLE, Job, encode_preview, style_file,
    style_mask_file,
)
from .runs import RUNNERS, RunContext, describe_grid, plan_grid
from .store import Store

log = logging.getLogger("brushwork.web")

ENDS_STREAM = ("closing", "deleted")  # events after which a job's event stream ends


class Cancelled(Exception):
    """Raised from the engine callback to stop a run; the engine lets it propagate."""


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

    def files(self) -> dict[str, Image.Image]:
        """The pictures by the names the server stores them under."""
        named = {CONTENT_FILE: self.content, **{style_file(i): s for i, s in enumerate(self.styles)},
                 **{style_mask_file(i): m for i, m in enumerate(self.style_masks)}}
        return named | ({MASK_FILE: self.mask} if self.mask is not None else {})


class JobQueue:
    """Jobs by id, the waiting line, and the worker thread that runs them."""

    def __init__(self, data_dir: Path, preview_interval: float = 0.5, device: str = "auto",
                 precision: str = "auto"):
        self.store = Store(Path(data_dir) / "jobs")
        self.preview_interval = preview_interval
        self.device, self.precision = device, precision
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
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
            style_masks=tuple(str(folder / style_mask_file(i)) for i in styles) if job.style_masks else None)

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
        """The job as the API shows it (JSON-ready)."""
        with self._lock:
            position = self._waiting.index(job.id) + 1 if job.status == "queued" and job.id in self._waiting else None
            state = {
                "id": job.id, "kind": job.kind, "status": job.status, "position": position,
                "created": job.created, "started": job.started, "finished": job.finished,
                "settings": job.settings, "vary": job.vary, "rerun_of": job.rerun_of,
                "inputs": {"content": job.content_name, "styles": job.style_names, "mask": job.mask,
                           "style_masks": job.style_masks},
                "step": job.step, "total_steps": job.total_steps, "loss": job.losses[-1][4] if job.losses else None,
                "elapsed": job.elapsed, "eta_seconds": job.eta(), "width": job.width, "height": job.height,
                "error": job.error, "warning": job.warning, "preview_version": job.preview_version,
                "grid": job.grid, "cells": list(job.cells), "reports": job.reports,
            }
            if losses:
                state["losses"] = list(job.losses)
            return state

    def listen(self, job: Job, loop: asyncio.AbstractEventLoop) -> tuple[dict, asyncio.Queue]:
        """The job's state now and a queue of (event, data) from then on, with nothing lost between."""
        events: asyncio.Queue = asyncio.Queue()
        with self._lock:
            job.listeners.append((loop, events))
            return self.state(job), events

    def unlisten(self, job: Job, events: asyncio.Queue) -> None:
        with self._lock:
            job.listeners = [(loop, q) for loop, q in job.listeners if q is not events]

    def _publish(self, job: Job, event: str, data: dict) -> None:
        for loop, events in list(job.listeners):
            try:
                loop.call_soon_threadsafe(events.put_nowait, (event, data))
            except RuntimeError:  # that listener's event loop is gone
                self.unlisten(job, events)

    def _changed(self, job: Job) -> None:
        """Save and announce a change of status; everyone behind in line moved up too."""
        self._save(job)
        self._publish(job, "state", self.state(job))
        self._line_moved()

    def _line_moved(self) -> None:
        """Tell those following a waiting job its new place (only those: a long line would
        otherwise cost a state per waiting job at every change)."""
        for waiting in self._waiting:
            if self._jobs[waiting].listeners:
                self._publish(self._jobs[waiting], "state", self.state(self._jobs[waiting]))

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

    # --- requests --------------------------------------------------------------------------

    def check(self, kind: str, settings: dict, vary: list[str], pictures: Pictures) -> dict | None:
        """Everything that can be wrong with a request, before anything is stored; a grid's
        layout comes back, for the page to draw before the first cell is done."""
        options = self.options(settings)
        masks = {"mask": pictures.mask, "style_masks": tuple(pictures.style_masks) or None}
        options.replace(**masks).validate(len(pictures.styles))
        if kind != "compare":
            return None
        inputs = Inputs(pictures.content, pictures.styles, pictures.content_name, pictures.style_names)
        return describe_grid(*plan_grid(options, vary, inputs))

    def submit(self, pictures: Pictures, settings: dict, kind: str = "stylize", vary: list[str] = ()) -> Job:
        """Check the request, store the inputs and put the job in line."""
        grid = self.check(kind, settings, list(vary), pictures)
        if self._closing:
            raise BrushworkError("the server is shutting down")
        job = Job(secrets.token_urlsafe(16), settings, pictures.content_name, pictures.style_names, kind, list(vary),
                  self._take_order(), grid=grid, mask=pictures.mask is not None, style_masks=bool(pictures.style_masks))
        self.store.create(job, pictures.files())
        with self._lock:
            self._enqueue(job)
        return job

    def rerun(self, source: Job, settings: dict) -> Job:
        """A new job on `source`'s stored pictures with changed settings, at the end of the line."""
        self.options(settings).validate(len(source.style_names))
        if self._closing:
            raise BrushworkError("the server is shutting down")
        job = Job(secrets.token_urlsafe(16), settings, source.content_name, source.style_names, source.kind,
                  list(source.vary), self._take_order(), rerun_of=source.id, grid=source.grid, mask=source.mask,
                  style_masks=source.style_masks)
        self.store.copy_inputs(source, job)
        with self._lock:
            self._enqueue(job)
        return job

    def retry(self, job: Job) -> None:
        """An interrupted, failed or cancelled job goes back in line, as it was asked for."""
        with self._lock:
            if job.status not in RETRYABLE:
                raise BrushworkError(f"job {job.id} is {job.status}; only {', '.join(RETRYABLE)} jobs can be retried")
            if self._closing:
                raise BrushworkError("the server is shutting down")
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
            self._publish(job, "deleted", {"id": job.id})
            self._line_moved()
        self.store.delete(job)

    # --- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="brushwork-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs: waiting ones stay in line on disk for the next start (their event
        streams end now), the running one stops at its next step and is marked interrupted."""
        with self._lock:
            self._closing = True
            for job_id in self._waiting:
                self._publish(self._jobs[job_id], "closing", {"id": job_id})
            self._lock.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """stop(), then wait for the worker, so that it leaves its files complete."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        """The worker thread: the head of the line, one job at a time, until stopped."""
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                job = self._jobs[self._waiting.popleft()]
                job.status, job.started = "running", time.time()
                self._changed(job)
            self._run(job)

    def _callback(self, job: Job) -> Callable[[Progress], None]:
        """The engine's step callback: stops a cancelled run, keeps a preview now and then,
        and tells the listeners."""
        last_preview = float("-inf")

        def callback(progress: Progress) -> None:
            nonlocal last_preview
            if job.cancel_requested or self._closing:
                raise Cancelled
            preview = None
            if time.monotonic() - last_preview >= self.preview_interval:
                preview = encode_preview(progress.preview())
                last_preview = time.monotonic()
            r = progress.record
            with self._lock:
                job.step, job.total_steps, job.elapsed = progress.step, progress.total_steps, r.seconds
                job.losses.append([r.step, r.content, r.style, r.tv, r.total])
                if preview is not None:
                    job.preview, job.preview_version = preview, job.preview_version + 1
                self._publish(job, "progress", {
                    "step": job.step, "total_steps": job.total_steps, "elapsed": job.elapsed, "eta_seconds": job.eta(),
                    "record": job.losses[-1], "preview_version": job.preview_version,
                })

        return callback

    def _cell_done(self, job: Job, cell: dict) -> None:
        """A grid cell is announced and recorded at once, so a page or a restart sees it."""
        with self._lock:
            job.cells.append(cell)
            self._publish(job, "cell", cell)
        self._save(job)

    def _run(self, job: Job) -> None:
        """One job through its runner; whatever happens, it ends with a status and a reason,
        and a job that did not finish keeps none of its outputs."""
        changes: dict[str, Any] = {}
        try:
            context = RunContext(self.run_options(job), self.folder(job), self.store, self._callback(job),
                                 lambda cell: self._cell_done(job, cell))
            changes = RUNNERS[job.kind](job, context)
            status, error = "done", None
        except Cancelled:
            status, error = ("interrupted", INTERRUPTED) if self._closing else ("cancelled", None)
        except BrushworkError as e:  # DiskFull among them
            status, error = "failed", str(e)
        except Exception as e:  # a bug: keep the traceback in the log, tell the client what happened
            log.exception("job %s failed", job.id)
            status, error = "failed", f"internal error: {type(e).__name__}: {e}"
        if status != "done":
            self.store.remove(job, list(RESULT_FILES.values()) + job.reports)
        with self._lock:
            if "preview" in changes:
                changes["preview_version"] = job.preview_version + 1
            for name, value in changes.items():
                setattr(job, name, value)
            job.status, job.error, job.finished = status, error, time.time()
            self._changed(job)

