"""The job queue behind `brushwork serve`.

One worker thread runs the jobs one at a time, since a run takes the whole device; the
others wait in line. Each job lives in its own folder under the data dir, named by its
random id, holding the inputs and result (named by the server) and a job.json written
atomically at every change of status, so a restart finds the whole history, and jobs that a
shutdown or crash cut off are marked "interrupted".

Nothing here knows about HTTP: listeners get events through asyncio queues, fed from the
worker thread with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .. import images
from ..api import engine_for
from ..errors import BrushworkError
from ..engine import Progress
from ..options import Options

log = logging.getLogger("brushwork.web")

ACTIVE = ("queued", "running")  # the other statuses: done, failed, cancelled, interrupted
JOB_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # what secrets.token_urlsafe(16) makes
INTERRUPTED = "the server stopped before this job finished"
PREVIEW_SIDE = 512  # previews are for the screen: at most this many pixels on the long side
CONTENT_FILE = "content.png"
RESULT_FILES = {"png": "result.png", "jpg": "result.jpg"}


def style_file(index: int) -> str:
    return f"style-{index}.png"


class Cancelled(Exception):
    """Raised from the engine callback to stop a run; the engine lets it propagate."""


@dataclass
class Job:
    """One stylization request. The fields up to `warning` are saved in job.json."""

    id: str
    settings: dict  # Options fields chosen by the client
    content_name: str  # the uploaded names, for display only: files on disk are named by the server
    style_names: list[str]
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
    # Live state, never saved.
    preview: bytes | None = field(default=None, repr=False)
    preview_version: int = 0
    cancel_requested: bool = False
    listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list, repr=False)

    SAVED = ("id", "settings", "content_name", "style_names", "status", "created", "started", "finished", "step",
             "total_steps", "elapsed", "losses", "width", "height", "error", "warning")

    def eta(self) -> float | None:
        """Seconds left, from the mean step time so far (None unless running and a step is done)."""
        if self.status != "running" or not self.step:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)

    def to_json(self) -> bytes:
        return json.dumps({name: getattr(self, name) for name in self.SAVED}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Job":
        record = json.loads(data)
        return cls(**{name: record[name] for name in cls.SAVED if name in record})


def encode_preview(image: Image.Image) -> bytes:
    """A small JPEG for the live view: cheap to make twice a second and to send."""
    image = image.copy()
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class JobQueue:
    """Jobs by id, the waiting line, and the worker thread that runs them."""

    def __init__(self, data_dir: Path, preview_interval: float = 0.5):
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.preview_interval = preview_interval
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._load()

    # --- storage ---------------------------------------------------------------------------

    def folder(self, job: Job) -> Path:
        return self.root / job.id

    def _save(self, job: Job) -> None:
        images.write_atomic(self.folder(job) / "job.json", job.to_json())

    def _load(self) -> None:
        """Read the history back; jobs that were queued or running when the server died are
        marked interrupted (their folders hold only complete files: every write is atomic)."""
        for folder in self.root.iterdir():
            record = folder / "job.json"
            if not (JOB_ID.fullmatch(folder.name) and record.is_file()):
                continue
            try:
                job = Job.from_json(record.read_bytes())
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("skipping %s: unreadable job record (%s)", folder, e)
                continue
            if job.id != folder.name:
                continue
            if job.status in ACTIVE:
                job.status, job.error, job.finished = "interrupted", INTERRUPTED, job.finished or time.time()
                self._save(job)
            self._jobs[job.id] = job

    # --- what clients see ------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def state(self, job: Job, losses: bool = True) -> dict:
        """The job as the API shows it (JSON-ready)."""
        with self._lock:
            position = self._waiting.index(job.id) + 1 if job.status == "queued" and job.id in self._waiting else None
            state = {
                "id": job.id,
                "status": job.status,
                "position": position,
                "created": job.created,
                "started": job.started,
                "finished": job.finished,
                "settings": job.settings,
                "inputs": {"content": job.content_name, "styles": job.style_names},
                "step": job.step,
                "total_steps": job.total_steps,
                "loss": job.losses[-1][4] if job.losses else None,
                "elapsed": job.elapsed,
                "eta_seconds": job.eta(),
                "width": job.width,
                "height": job.height,
                "error": job.error,
                "warning": job.warning,
                "preview_version": job.preview_version,
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
        for waiting in self._waiting:
            self._publish(self._jobs[waiting], "state", self.state(self._jobs[waiting]))

    # --- requests --------------------------------------------------------------------------

    def submit(self, content: Image.Image, styles: list[Image.Image], settings: dict, content_name: str,
               style_names: list[str]) -> Job:
        """Check the settings, store the inputs and put the job in line."""
        options = Options(**settings)
        options.validate(len(styles))
        if self._closing:
            raise BrushworkError("the server is shutting down")
        job = Job(secrets.token_urlsafe(16), settings, content_name, style_names)
        folder = self.folder(job)
        folder.mkdir()
        images.save_image(content, folder / CONTENT_FILE)
        for index, style in enumerate(styles):
            images.save_image(style, folder / style_file(index))
        with self._lock:
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._changed(job)
            self._lock.notify_all()
        return job

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

    # --- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="brushwork-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs: waiting ones are marked interrupted now, the running one at its next step."""
        with self._lock:
            self._closing = True
            waiting = [self._jobs[job_id] for job_id in self._waiting]
            self._waiting.clear()
            for job in waiting:
                job.status, job.error, job.finished = "interrupted", INTERRUPTED, time.time()
                self._changed(job)
            self._lock.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """stop(), then wait for the worker, so that it leaves its files complete."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
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

    def _run(self, job: Job) -> None:
        options = Options(**job.settings)
        folder = self.folder(job)
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

        try:
            content = images.load_image(folder / CONTENT_FILE)
            styles = [images.load_image(folder / style_file(i)) for i in range(len(job.style_names))]
            result = engine_for(options).run(content, styles, options, callback)
            for name in RESULT_FILES.values():
                images.save_image(result.image, folder / name)
            status, error = "done", None
            job.width, job.height = result.size
            if result.stop_reason == "diverged":
                job.warning = "the optimization diverged (loss became NaN/inf); this is the last finite image"
            job.preview, job.preview_version = encode_preview(result.image), job.preview_version + 1
        except Cancelled:
            status, error = ("interrupted", INTERRUPTED) if self._closing else ("cancelled", None)
        except BrushworkError as e:
            status, error = "failed", str(e)
        except Exception as e:  # a bug: keep the traceback in the log, tell the client what happened
            log.exception("job %s failed", job.id)
            status, error = "failed", f"internal error: {type(e).__name__}: {e}"
        with self._lock:
            job.status, job.error, job.finished = status, error, time.time()
            self._changed(job)
