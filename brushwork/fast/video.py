"""Videos in `brushwork apply`: decoded, stylized in batches and re-encoded as H.264 with PyAV,
keeping frame rate, frame count and size, with the audio track copied as is.

Decoding runs in a reader thread and encoding in a writer thread (pipeline.overlapped) while
the network works on the frames between them.

Reading and writing (timestamps, audio, odd sizes) is videoio's; this module adds the
network and the consistency step.

Holding frames to each other (--consistency, --deflicker) and the flicker report: consistency.py.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from .. import images
from ..errors import BrushworkError
from ..videoio import Item, Muxer, Picture, demux, open_video
from .backend import Settings, Stylizer
from .consistency import Consistency
from .pipeline import network_in_flight, overlapped

if TYPE_CHECKING:
    import av


@dataclass
class VideoReport:
    frames: int
    seconds: float
    flicker_in: float  # mean |in_t − in_{t−1}|
    flicker_out: float  # mean |out_t − out_{t−1}|

    @property
    def flicker_ratio(self) -> float:
        return self.flicker_out / self.flicker_in if self.flicker_in > 0 else math.nan


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
    hold = Consistency.of(stylizer.settings)
    try:
        with av.open(str(tmp), "w") as sink:
            transcode = Transcode(source, sink, target, stylizer.settings)
            work = lambda items: transcode.stylize(items, stylizer, hold, on_frame)  # noqa: E731
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
    return VideoReport(transcode.frames, time.perf_counter() - started, *hold.mean_changes())


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

    def stylize(self, items: Iterator[Item], stylizer: Stylizer, hold: Consistency,
                on_frame: Callable[[int], None] | None = None) -> Iterator[Item]:
        """Frames wait until a batch is full and go through the network (several batches at
        once with workers), then through the consistency step in order; audio passes on in between."""
        audio: list[Item] = []
        done = 0
        for pictures, batch, stylized in network_in_flight(stylizer, self.frame_batches(items, stylizer.batch, audio)):
            yield from audio
            audio.clear()
            with stylizer.host_threads():
                blended = torch.cat([hold(batch[i : i + 1], stylized[i : i + 1]) for i in range(len(pictures))])
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
