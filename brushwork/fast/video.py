"""Videos in `brushwork apply`: decoded, stylized in batches and re-encoded as H.264 with PyAV,
keeping frame rate, frame count and size, with the audio track copied as is.

Decoding runs in a reader thread and encoding in a writer thread (pipeline.overlapped) while
the network works on the frames between them.

Reading and writing (timestamps, audio, odd sizes) is videoio's; this module adds the
network and the deflicker blend.

Video flicker: a feed-forward network answers small changes between frames (noise,
compression) with large changes in its strokes. --deflicker D blends each output frame with
the previous output where the *input* did not change:

    out_t = m·D·out_{t−1} + (1 − m·D)·stylized_t,   m = exp(−|in_t − in_{t−1}| / 0.02) per pixel

so static parts stop shimmering while moving parts follow the new frame (no ghost trails).
The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from .. import images
from ..errors import BrushworkError
from ..videoio import REORDER, Item, Muxer, Picture, Timestamps, demux, open_video  # noqa: F401 (REORDER, Timestamps: this module's names before videoio existed)
from .backend import Settings, Stylizer
from .pipeline import network_in_flight, overlapped

if TYPE_CHECKING:
    import av

MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which deflicker blending has faded to 1/e


@dataclass
class VideoReport:
    frames: int
    seconds: float
    flicker_in: float  # mean |in_t − in_{t−1}|
    flicker_out: float  # mean |out_t − out_{t−1}|

    @property
    def flicker_ratio(self) -> float:
        return self.flicker_out / self.flicker_in if self.flicker_in > 0 else math.nan


@dataclass
class Deflicker:
    """Motion-aware blending with the previous output frame, and the flicker measurement. The
    changes stay tensors on the device until the end, so a GPU is not stopped at every frame."""

    strength: float
    previous_in: torch.Tensor | None = None
    previous_out: torch.Tensor | None = None
    change_in: list[torch.Tensor] = field(default_factory=list)
    change_out: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        out = stylized
        if self.previous_in is not None:
            delta = (frame_in - self.previous_in).abs()
            if self.strength > 0:
                keep = self.strength * torch.exp(-delta.mean(1, keepdim=True) / MOTION_SCALE)
                out = keep * self.previous_out + (1 - keep) * stylized
            # Measured on what gets written: 8-bit frames.
            self.change_in.append((quantize(frame_in) - quantize(self.previous_in)).abs().mean())
            self.change_out.append((quantize(out) - quantize(self.previous_out)).abs().mean())
        self.previous_in, self.previous_out = frame_in, out
        return out

    def mean_changes(self) -> tuple[float, float]:
        """Mean input and output change per frame; 0 for a video of one frame, which cannot flicker."""
        if not self.change_in:
            return 0.0, 0.0
        return float(np.mean([float(c) for c in self.change_in])), float(np.mean([float(c) for c in self.change_out]))


def quantize(frame: torch.Tensor) -> torch.Tensor:
    return frame.clamp(0, 1).mul(255).round().div(255)


def stylize_video(stylizer: Stylizer, source_path: Path, target: Path,
                  on_frame: Callable[[int], None] | None = None) -> VideoReport:
    """Decode, stylize in batches of frames, encode H.264 with the same rate, frame count and
    size, copy the audio (or re-encode it as AAC where the output container cannot hold it).
    `on_frame(n)` hears of each stylized frame (n so far); an exception from it stops the run.

    Written to a temp file next to the target and renamed at the end, like images.
    """
    import av

    started = time.perf_counter()
    source = open_video(source_path)
    tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
    deflicker = Deflicker(stylizer.settings.deflicker)
    try:
        with av.open(str(tmp), "w") as sink:
            transcode = Transcode(source, sink, target, stylizer.settings)
            work = lambda items: transcode.stylize(items, stylizer, deflicker, on_frame)  # noqa: E731
            # Audio packets share the queues with frames (about two per frame), hence the room.
            overlapped(transcode.items(), work, transcode.write, stylizer.settings.overlap, depth=4 * stylizer.batch + 8)
            transcode.finish()
        if transcode.frames == 0:
            raise BrushworkError(f"{source_path} has a video stream but no decodable frames")
        os.replace(tmp, target)
    except av.error.FFmpegError as e:
        raise BrushworkError(f"video {source_path} failed: {e}") from None
    finally:
        source.close()
        tmp.unlink(missing_ok=True)
    return VideoReport(transcode.frames, time.perf_counter() - started, *deflicker.mean_changes())


class Transcode:
    """One video from `source` into `sink` in three stages: `items` (reader thread) demuxes in
    file order and decodes, `stylize` (the caller's thread) runs full batches of frames through
    the network and passes audio on, `write` (writer thread) encodes and muxes."""

    def __init__(self, source: av.container.InputContainer, sink: av.container.OutputContainer, target: Path, settings: Settings):
        self.source = source
        in_video = source.streams.video[0]
        size = (in_video.codec_context.width, in_video.codec_context.height)
        if settings.size is not None:
            size = images.fit_size(*size, settings.size)
        self.muxer = Muxer(source, sink, target, size)

    @property
    def frames(self) -> int:
        return self.muxer.frames

    def items(self) -> Iterator[Item]:
        return demux(self.source, self.muxer.copy_audio)

    def stylize(self, items: Iterator[Item], stylizer: Stylizer, deflicker: Deflicker,
                on_frame: Callable[[int], None] | None = None) -> Iterator[Item]:
        """Frames wait until a batch is full and go through the network (several batches at
        once with workers), then through deflicker in order; audio passes on in between."""
        audio: list[Item] = []
        done = 0
        for pictures, batch, stylized in network_in_flight(stylizer, self.frame_batches(items, stylizer.batch, audio)):
            yield from audio
            audio.clear()
            with stylizer.host_threads():
                blended = torch.cat([deflicker(batch[i : i + 1], stylized[i : i + 1]) for i in range(len(pictures))])
                frames = stylizer.download(blended)
            for picture, pixels in zip(pictures, frames):
                yield Picture(pixels, picture.pts)
                done += 1
                if on_frame is not None:
                    on_frame(done)
        yield from audio

    @staticmethod
    def frame_batches(items: Iterator[Item], size: int, audio: list[Item]) -> Iterator[tuple[list[Picture], list[np.ndarray]]]:
        """Full batches of frames (and the last, shorter one); other items go to `audio`."""
        pending: list[Picture] = []
        for item in items:
            if not isinstance(item, Picture):
                audio.append(item)
                continue
            pending.append(item)
            if len(pending) == size:
                yield pending, [p.pixels for p in pending]
                pending = []
        if pending:
            yield pending, [p.pixels for p in pending]

    def write(self, item: Item) -> None:
        self.muxer.write(item)

    def finish(self) -> None:
        self.muxer.finish()
