"""What a run tells as it goes: its step records, the progress reports, and when it must stop.

The engine's scale loop (engine.Painting) steps the optimizer; after each step it hands the
image it evaluated to a `Recorder`, which reads the losses back from the device every few
steps (reading waits for it), records them (a --trace's StepRecords), reports them to the
caller's callback, keeps the last image whose loss was finite (what a diverged run
outputs), and says when --steps auto has converged at a scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from PIL import Image

from . import images
from .options import AUTO_TOLERANCE, AUTO_WINDOW


@dataclass
class StepRecord:
    """One optimizer evaluation, as written to a --trace file."""

    step: int
    scale: int
    width: int
    height: int
    content: float
    style: float
    tv: float
    total: float
    seconds: float
    temporal: float = 0.0  # the temporal term of a video frame (temporal.py); 0 for a still


@dataclass
class Progress:
    """What a callback sees after each step whose losses were read."""

    step: int
    total_steps: int
    scale: int
    n_scales: int
    record: StepRecord
    image: torch.Tensor  # the image being optimized, at the current scale (do not modify)
    _finish: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    def preview(self) -> Image.Image:
        """The current image as the final output would look (colour restored if preserving)."""
        return images.to_pil(self._finish(self.image.detach()))


class Recorder:
    """The records of one run, from its start image to its stop reason."""

    def __init__(
        self,
        started: float,
        shape: tuple[int, int],
        callback: Callable[[Progress], None] | None,
        finish: Callable[[torch.Tensor], torch.Tensor],
        sync_every: int,
    ):
        """`started`: the run's perf_counter origin; `shape`: (scales, total steps) of its
        plan; `finish` turns the optimized image into the output (Progress.preview); the
        losses are read every `sync_every` steps."""
        self.started, self.callback, self.finish, self.sync_every = started, callback, finish, sync_every
        self.n_scales, self.total_steps = shape
        # The last image whose loss was finite; until one is read, the first image evaluated
        # (the start image): no copy of its own, which would be one more image-sized vector.
        self.last_good: torch.Tensor | None = None
        self.records: list[StepRecord] = []
        self.stop_reason = "done"  # "done" | "interrupted" | "diverged"
        self.step = 0
        self.pending: list[tuple[int, torch.Tensor]] = []  # (step, image evaluated), losses not read yet
        self.last_read = 0.0

    def start_scale(self) -> None:
        self.last_read = time.perf_counter() - self.started

    def stepped(self, evaluated: torch.Tensor, last: bool) -> bool:
        """One more step, which evaluated the image `evaluated`; True if its losses are due to be
        read now (every sync_every steps, and at a scale's `last` step)."""
        self.step += 1
        self.pending.append((self.step, evaluated))
        if self.last_good is None:
            self.last_good = evaluated
        return len(self.pending) >= self.sync_every or last

    def read(self, index: int, x: torch.Tensor, losses: list[torch.Tensor]) -> bool:
        """Read the pending steps' losses (the last of `losses`; this waits for the device),
        record and report them; False at the first loss that is not finite."""
        pending, self.pending = self.pending, []
        values = torch.stack(losses[-len(pending):]).tolist()
        # When each step finished: a GPU runs the queued steps one after another between two
        # reads, so their end times are spread evenly over that window.
        now = time.perf_counter() - self.started
        w, h = x.shape[-1], x.shape[-2]
        for j, ((at, evaluated), (c, s, t, total, *temporal)) in enumerate(zip(pending, values)):
            if not math.isfinite(total):
                self.stop_reason = "diverged"
                return False
            self.last_good = evaluated
            seconds = self.last_read + (now - self.last_read) * (j + 1) / len(pending)
            self.records.append(StepRecord(at, index, w, h, c, s, t, total, seconds, *temporal))
        self.last_read = now
        if self.callback is not None:
            self.callback(Progress(self.step, self.total_steps, index, self.n_scales, self.records[-1], x, self.finish))
        return True

    def steps_at(self, index: int) -> int:
        """Steps recorded at scale `index` (all of its steps once the scale has ended)."""
        return sum(1 for r in self.records if r.scale == index)

    def converged(self, index: int) -> bool:
        """--steps auto: J improved by less than AUTO_TOLERANCE over this scale's last AUTO_WINDOW steps."""
        totals = [r.total for r in self.records[-AUTO_WINDOW - 1:] if r.scale == index]
        return len(totals) > AUTO_WINDOW and totals[0] - totals[-1] < AUTO_TOLERANCE * totals[-1]

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """The image the run leaves: x, or after a divergence the last one whose loss was finite."""
        return self.last_good if self.stop_reason == "diverged" else x

    def seconds(self) -> float:
        return time.perf_counter() - self.started
