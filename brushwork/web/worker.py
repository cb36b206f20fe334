"""The worker thread behind `brushwork serve`: it takes the head of the queue's line and runs
it, one job at a time (a run takes the whole device), until the queue stops.

What a run does to the job (its steps, previews, grid cells and how it ended) goes back
through the queue, which keeps the record, the line and the listeners; the worker only knows
how to run a job and how to turn whatever happened into a status and a reason.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from ..engine import Progress
from ..errors import BrushworkError
from ..options import Options
from .records import INTERRUPTED, RESULT_FILES, VIDEO_RESULT, Job, encode_preview
from .runs import RUNNERS, RunContext
from .videoruns import VIDEO_RUNNERS
from .fastmode import Models
from .store import Store

log = logging.getLogger("brushwork.web")


class Line(Protocol):
    """What the worker needs of the queue (jobs.JobQueue), which makes it and owns the line."""

    store: Store
    preview_interval: float
    closing: bool
    models: Models | None

    def take(self) -> Job | None: ...
    def run_options(self, job: Job) -> Options: ...
    def folder(self, job: Job) -> Path: ...
    def stepped(self, job: Job, progress: Progress, preview: bytes | None) -> None: ...
    def group_started(self, job: Job, cells: list[int]) -> None: ...
    def cell_done(self, job: Job, cell: dict) -> None: ...
    def frame_done(self, job: Job, count: int, preview: bytes | None) -> None: ...
    def finish(self, job: Job, status: str, error: str | None, changes: dict[str, Any]) -> None: ...


class Cancelled(Exception):
    """Raised from the engine callback to stop a run; the engine lets it propagate."""


class Worker:
    """One thread running the queue's jobs in order."""

    def __init__(self, queue: Line):
        self.queue = queue
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="brushwork-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        """The head of the line, one job at a time, until the queue stops."""
        while (job := self.queue.take()) is not None:
            self._run(job)

    def _callback(self, job: Job) -> Callable[[Progress], None]:
        """The engine's step callback: stops a cancelled run, keeps a preview now and then,
        and hands the step to the queue."""
        last_preview = float("-inf")

        def callback(progress: Progress) -> None:
            nonlocal last_preview
            if job.cancel_requested or self.queue.closing:
                raise Cancelled
            preview = None
            if time.monotonic() - last_preview >= self.queue.preview_interval:
                preview = encode_preview(progress.preview())
                last_preview = time.monotonic()
            self.queue.stepped(job, progress, preview)

        return callback

    def _frame_done(self, job: Job) -> Callable[[int, bytes | None], None]:
        """A video's finished frame: stops a cancelled run, else hands the count to the queue."""

        def frame_done(count: int, preview: bytes | None) -> None:
            if job.cancel_requested or self.queue.closing:
                raise Cancelled
            self.queue.frame_done(job, count, preview)

        return frame_done

    def _run(self, job: Job) -> None:
        """One job through its runner; whatever happens, it ends with a status and a reason,
        and a job that did not finish keeps none of its outputs."""
        queue = self.queue
        changes: dict[str, Any] = {}
        try:
            options = None if job.kind == "fast-video" else queue.run_options(job)
            context = RunContext(options, queue.folder(job), queue.store, self._callback(job),
                                 lambda cell: queue.cell_done(job, cell), lambda cells: queue.group_started(job, cells),
                                 self._frame_done(job), queue.models)
            changes = (RUNNERS | VIDEO_RUNNERS)[job.kind](job, context)
            status, error = "done", None
        except Cancelled:
            status, error = ("interrupted", INTERRUPTED) if queue.closing else ("cancelled", None)
        except BrushworkError as e:  # DiskFull among them
            status, error = "failed", str(e)
        except Exception as e:  # a bug: keep the traceback in the log, tell the client what happened
            log.exception("job %s failed", job.id)
            status, error = "failed", f"internal error: {type(e).__name__}: {e}"
        if status != "done":
            queue.store.remove(job, list(RESULT_FILES.values()) + [VIDEO_RESULT] + job.reports)
        queue.finish(job, status, error, changes)

