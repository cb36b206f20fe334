"""Reading and writing video with PyAV, for every command that paints video.

Frames come out in display order as RGB uint8 arrays with the timestamps they are written
back with; the output is H.264 with the input's time base, frame rate and frame count, and
the audio track copied as is (or re-encoded as AAC where the container cannot hold it).

Timestamps: AVIs with packed B-frames (DivX-style MPEG-4 Part 2, such as opencv-doc's
Megamind.avi) decode to frames in display order whose timestamps are in decode order
(1, 2, 3, 5, 4, ...), and the muxer refuses to write those. Each frame here takes the
smallest timestamp among itself and the next few frames (REORDER of them), which sorts such
a local permutation back into 1, 2, 3, 4, 5 and leaves ordered timestamps as they are; a
frame that would still not come after the previous one is put one tick after it. Every
frame is kept, so the count and the rate are the input's.

Rotation: phones store portrait video sideways with a display matrix. With `upright`, frames
are turned as a player shows them and written upright, with no rotation left to apply.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Union

import numpy as np

from .errors import BrushworkError

if TYPE_CHECKING:
    import av

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
REORDER = 4  # frames over which out-of-order timestamps are sorted (B-frames reorder 1-3)


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


def rgb(frame: av.VideoFrame, upright: bool = False) -> np.ndarray:
    """A decoded frame as RGB uint8 (10-bit and alpha formats converted to 8-bit RGB); with
    `upright`, turned by its display rotation."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = round(frame.rotation / 90) % 4 if upright else 0
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def demux(source: av.container.InputContainer, copy_audio: bool, upright: bool = False) -> Iterator[Item]:
    """Frames (held back REORDER frames to sort their timestamps) and audio, in file order:
    audio packets where they are copied, decoded audio frames where they are re-encoded. A
    demuxer's empty flush packet (no dts) flushes its decoder and is not copied."""
    in_video = source.streams.video[0]
    streams = [in_video, *source.streams.audio[:1]]
    times, held = Timestamps(), []
    for packet in source.demux(*streams):
        if packet.stream is in_video:
            for frame in packet.decode():
                times.add(frame)
                held.append(frame)
                if len(held) > REORDER:
                    yield Picture(rgb(held.pop(0), upright), times.next())
        elif copy_audio:
            if packet.dts is not None:
                yield packet
        else:
            yield from packet.decode()
    for frame in held:
        yield Picture(rgb(frame, upright), times.next())


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


class Muxer:
    """Writes one video's items into `sink`: frames encoded as H.264 at `size`, audio copied
    (or re-encoded where `target`'s container cannot hold it)."""

    def __init__(self, source: av.container.InputContainer, sink: av.container.OutputContainer, target: Path,
                 size: tuple[int, int]):
        self.sink = sink
        self.in_video = source.streams.video[0]
        in_audio = source.streams.audio[0] if source.streams.audio else None
        self.out_video = add_video_stream(sink, self.in_video, *size)
        self.copy_audio = in_audio is not None and can_copy_audio(in_audio.codec_context.name, target)
        if in_audio is None:
            self.out_audio = None
        elif self.copy_audio:
            self.out_audio = sink.add_stream_from_template(in_audio)
        else:
            self.out_audio = sink.add_stream("aac", rate=in_audio.codec_context.sample_rate)
        self.frames = 0

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


def frames(path: Path) -> Iterator[Picture]:
    """Every frame of a video, upright, in display order."""
    import av

    source = open_video(path)
    try:
        for item in demux(source, copy_audio=False, upright=True):
            if isinstance(item, Picture):
                yield item
    except av.error.FFmpegError as e:
        raise BrushworkError(f"cannot decode video {path}: {e}") from None
    finally:
        source.close()


def rewrite(source_path: Path, target: Path, size: tuple[int, int], paint: Callable[[int, Picture], np.ndarray],
            span: tuple[int, int | None] = (0, None)) -> int:
    """A copy of a video whose frame i (upright, display order) is replaced by paint(i, frame),
    a `size` (width, height) picture, keeping the input's timestamps and audio; written to a
    temp file and renamed once whole. With a `span` of frames (first, and the one after the
    last), only those are written, moved to start at 0, with the audio they span. Returns
    the number of frames written."""
    import av

    window = _span_window(source_path, span)
    source = open_video(source_path)
    tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
    try:
        with av.open(str(tmp), "w") as sink:
            muxer = Muxer(source, sink, target, size)
            index = 0
            for item in demux(source, muxer.copy_audio, upright=True):
                if isinstance(item, Picture):
                    index += 1
                    if span[0] <= index - 1 < (span[1] if span[1] is not None else index):
                        muxer.write(Picture(paint(index - 1, item), item.pts - window[0]))
                elif _shift_into(item, window, muxer.in_video.time_base):
                    muxer.write(item)
            muxer.finish()
        os.replace(tmp, target)
        return muxer.frames
    except av.error.FFmpegError as e:
        raise BrushworkError(f"video {source_path} failed: {e}") from None
    finally:
        source.close()
        tmp.unlink(missing_ok=True)


def _span_window(path: Path, span: tuple[int, int | None]) -> tuple[int, int | None]:
    """The output timestamps (video time base) of the span's first frame and of the frame
    after its last (None: to the end); (0, None) for the whole video."""
    if span == (0, None):
        return 0, None
    times = [picture.pts for picture in frames(path)]
    start, end = span
    return times[min(start, len(times) - 1)], times[end] if end is not None and end < len(times) else None


def _shift_into(item: Item, window: tuple[int, int | None], video_base: Fraction) -> bool:
    """Whether an audio packet or frame falls in the window (in the video's time base); if it
    does, its timestamps are moved so that the window starts at 0."""
    import av

    if window == (0, None):
        return True
    if item.pts is None:
        return False
    start, end = (float(t * video_base) if t is not None else None for t in window)
    at = float(item.pts * item.time_base)
    if at < start or (end is not None and at >= end):
        return False
    offset = round(start / item.time_base)
    item.pts -= offset
    if isinstance(item, av.Packet) and item.dts is not None:
        item.dts -= offset
    return True

