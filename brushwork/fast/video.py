"""Videos in `brushwork apply`: decoded, stylized in batches and re-encoded as H.264 with PyAV,
keeping frame rate, frame count and size, with the audio track copied as is.

Decoding runs in a reader thread and encoding in a writer thread (pipeline.overlapped) while
the network works on the frames between them.

Timestamps: AVIs with packed B-frames (DivX-style MPEG-4 Part 2, such as opencv-doc's
Megamind.avi) decode to frames in display order whose timestamps are in decode order
(1, 2, 3, 5, 4, ...), and the muxer refuses to write those. Each frame here takes the
smallest timestamp among itself and the next few frames (REORDER of them), which sorts such
a local permutation back into 1, 2, 3, 4, 5 and leaves ordered timestamps as they are; a
frame that would still not come after the previous one is put one tick after it. Every
frame is kept, so the count and the rate are the input's.

Video flicker: a feed-forward network answers small changes between frames (noise,
compression) with large changes in its strokes. --deflicker D blends each output frame with
the previous output where the *input* did not change:

    out_t = m·D·out_{t−1} + (1 − m·D)·stylized_t,   m = exp(−|in_t − in_{t−1}| / 0.02) per pixel

so static parts stop shimmering while moving parts follow the new frame (no ghost trails).
The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

import heapq
import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Union

import numpy as np
import torch

from .. import images
from ..errors import BrushworkError
from .backend import Settings, Stylizer
from .pipeline import network_in_flight, overlapped

if TYPE_CHECKING:
    import av

MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which deflicker blending has faded to 1/e
REORDER = 4  # frames over which out-of-order timestamps are sorted (B-frames reorder 1-3)


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


@dataclass
class Picture:
    """A video frame between the stages: H×W×3 uint8 and its output timestamp."""

    pixels: np.ndarray
    pts: int


Item = Union[Picture, "av.Packet", "av.AudioFrame"]


class Timestamps:
    """Increasing output timestamps for frames in display order (see the module's docstring)."""

    def __init__(self) -> None:
        self.waiting: list[int] = []  # a heap: timestamps of the frames held back
        self.last: int | None = None

    def add(self, frame: av.VideoFrame) -> None:
        """A decoded frame; frames without a pts (raw streams) take their dts, or follow on."""
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            pts = max(self.waiting, default=-1 if self.last is None else self.last) + 1
        heapq.heappush(self.waiting, pts)

    def next(self) -> int:
        """The oldest held-back frame's output timestamp."""
        pts = heapq.heappop(self.waiting)
        if self.last is not None and pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts


def open_video(path: Path) -> av.container.InputContainer:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise BrushworkError(f"cannot read video {path}: {e}") from None
    if not container.streams.video:
        container.close()
        raise BrushworkError(f"{path} has no video stream")
    return container


def stylize_video(stylizer: Stylizer, source_path: Path, target: Path) -> VideoReport:
    """Decode, stylize in batches of frames, encode H.264 with the same rate, frame count and
    size, copy the audio (or re-encode it as AAC where the output container cannot hold it).

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
            work = lambda items: transcode.stylize(items, stylizer, deflicker)  # noqa: E731
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
        self.source, self.sink = source, sink
        self.in_video = source.streams.video[0]
        self.in_audio = source.streams.audio[0] if source.streams.audio else None
        size = (self.in_video.codec_context.width, self.in_video.codec_context.height)
        if settings.size is not None:
            size = images.fit_size(*size, settings.size)
        self.out_video = add_video_stream(sink, self.in_video, *size)
        self.copy_audio = self.in_audio is not None and can_copy_audio(self.in_audio.codec_context.name, target)
        if self.in_audio is None:
            self.out_audio = None
        elif self.copy_audio:
            self.out_audio = sink.add_stream_from_template(self.in_audio)
        else:
            self.out_audio = sink.add_stream("aac", rate=self.in_audio.codec_context.sample_rate)
        self.frames = 0

    def items(self) -> Iterator[Item]:
        """Frames (held back REORDER frames to sort their timestamps) and audio, in file order.
        A demuxer's empty flush packet (no dts) flushes its decoder and is not copied."""
        streams = [self.in_video] + ([self.in_audio] if self.in_audio is not None else [])
        times, held = Timestamps(), []
        for packet in self.source.demux(*streams):
            if packet.stream is self.in_video:
                for frame in packet.decode():
                    times.add(frame)
                    held.append(frame)
                    if len(held) > REORDER:
                        yield Picture(held.pop(0).to_ndarray(format="rgb24"), times.next())
            elif self.copy_audio:
                if packet.dts is not None:
                    yield packet
            else:
                yield from packet.decode()
        for frame in held:
            yield Picture(frame.to_ndarray(format="rgb24"), times.next())

    def stylize(self, items: Iterator[Item], stylizer: Stylizer, deflicker: Deflicker) -> Iterator[Item]:
        """Frames wait until a batch is full and go through the network (several batches at
        once with workers), then through deflicker in order; audio passes on in between."""
        audio: list[Item] = []
        for pictures, batch, stylized in network_in_flight(stylizer, self.frame_batches(items, stylizer.batch, audio)):
            yield from audio
            audio.clear()
            with stylizer.host_threads():
                blended = torch.cat([deflicker(batch[i : i + 1], stylized[i : i + 1]) for i in range(len(pictures))])
                frames = stylizer.download(blended)
            for picture, pixels in zip(pictures, frames):
                yield Picture(pixels, picture.pts)
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
        import av

        if isinstance(item, Picture):
            frame = av.VideoFrame.from_ndarray(item.pixels, format="rgb24")
            frame.pts, frame.time_base = item.pts, self.in_video.time_base
            self.sink.mux(self.out_video.encode(frame))
            self.frames += 1
        elif isinstance(item, av.Packet):  # copied audio keeps its timestamps
            item.stream = self.out_audio
            self.sink.mux(item)
        else:
            self.sink.mux(self.out_audio.encode(item))

    def finish(self) -> None:
        """The encoders' buffered tails, once every item has been written."""
        encoders = (self.out_video, self.out_audio) if self.out_audio is not None and not self.copy_audio else (self.out_video,)
        for stream in encoders:
            self.sink.mux(stream.encode())


def add_video_stream(sink: av.container.OutputContainer, in_video: av.VideoStream, width: int, height: int) -> av.VideoStream:
    """H.264 in the input's time base, so every frame can keep its own timestamp."""
    out = sink.add_stream("libx264", rate=in_video.average_rate or in_video.guessed_rate or Fraction(25))
    out.width, out.height = width, height
    # 4:2:0 chroma needs even sides; odd-sized videos keep their size in 4:4:4.
    out.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    out.time_base = in_video.time_base
    out.options = {"crf": "18", "preset": "medium"}
    return out


def can_copy_audio(codec: str, target: Path) -> bool:
    """Matroska holds any audio codec; MP4 and MOV only some (PCM, for one, is refused), so
    other tracks are re-encoded as AAC."""
    return target.suffix.lower() == ".mkv" or codec in MP4_AUDIO_CODECS
