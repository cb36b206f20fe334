"""`brushwork apply`: run a trained fast-mode network on images, folders and videos.

Images of the same size go through the network together (--batch at a time); instance norm
works per image, so a batch gives the same pictures as one image at a time. Videos are read
and written with PyAV: same frame rate, size and timestamps, the audio track copied as is.

Video flicker: a feed-forward network answers small changes between frames (noise,
compression) with large changes in its strokes. --deflicker D blends each output frame with
the previous output where the *input* did not change:

    out_t = m·D·out_{t−1} + (1 − m·D)·stylized_t,   m = exp(−|in_t − in_{t−1}| / 0.02) per pixel

so static parts stop shimmering while moving parts follow the new frame (no ghost trails).
The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import images
from ..errors import BrushworkError
from ..devices import pick_device, pick_dtype
from .net import FastModel, load_model

if TYPE_CHECKING:
    import av

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
VIDEO_OUTPUT_SUFFIXES = {".mp4", ".mkv", ".mov"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which deflicker blending has faded to 1/e


def shipped_models() -> dict[str, Path]:
    """Models inside the package, by name (file name without .safetensors)."""
    folder = importlib.resources.files("brushwork.fast") / "models"
    return {Path(p.name).name.removesuffix(".safetensors"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".safetensors")}


def resolve_model(name: str) -> Path:
    """A model file path, or the name of a shipped model such as `starry-night`."""
    path = Path(name)
    if path.is_file():
        return path
    models = shipped_models()
    if name in models:
        return models[name]
    raise BrushworkError(f"model {name!r} is neither a file nor a shipped model (shipped: {', '.join(sorted(models)) or 'none'})")


@dataclass
class Settings:
    strength: float = 1.0  # 1: the network's output; 0: the input
    preserve_color: bool = False  # keep the input's chroma (YIQ), take the stylized luminance
    size: int | None = None  # longest side to resize inputs to; None keeps their size
    batch: int = 4
    deflicker: float = 0.5
    device: str = "auto"
    precision: str = "auto"

    def validate(self) -> None:
        if not (0.0 <= self.strength <= 1.0):
            raise BrushworkError(f"--strength must be between 0 and 1, got {self.strength}")
        if not (0.0 <= self.deflicker < 1.0):
            raise BrushworkError(f"--deflicker must be at least 0 and below 1, got {self.deflicker}")
        if self.batch < 1:
            raise BrushworkError(f"--batch must be at least 1, got {self.batch}")
        if self.size is not None and self.size < 4:
            raise BrushworkError(f"--size must be at least 4, got {self.size}")


class Stylizer:
    """A loaded model on a device: RGB batches in [0, 1] -> stylized batches (on the CPU)."""

    def __init__(self, model: FastModel, settings: Settings):
        settings.validate()
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.precision, self.device)
        self.net = model.net.to(self.device)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.net(batch.to(self.device)).float().cpu()
        if self.settings.preserve_color:
            out = images.with_chroma_of(out, batch)
        if self.settings.strength < 1.0:
            out = self.settings.strength * out + (1.0 - self.settings.strength) * batch
        return out.clamp(0, 1)


def stylize_images(model: FastModel, pictures: list[Image.Image], settings: Settings) -> list[Image.Image]:
    """The Python API: stylize PIL images, batching those of equal size."""
    stylizer = Stylizer(model, settings)
    tensors = [prepare(p, settings.size) for p in pictures]
    return [images.to_pil(t) for t in run_batched(stylizer, tensors, settings.batch)]


def prepare(picture: Image.Image | Path, size: int | None) -> torch.Tensor:
    """A picture (or its file), upright RGB, as a tensor with the longest side `size`."""
    tensor = images.to_tensor(images.load_image(picture))
    if size is not None:
        tensor = images.resize(tensor, images.fit_size(tensor.shape[-1], tensor.shape[-2], size))
    return tensor


def run_batched(stylizer: Stylizer, tensors: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Outputs in input order; images are grouped by size so each group forms real batches."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        by_size.setdefault(tuple(t.shape), []).append(i)
    outputs: list[torch.Tensor | None] = [None] * len(tensors)
    for indices in by_size.values():
        for start in range(0, len(indices), batch):
            chunk = indices[start : start + batch]
            result = stylizer(torch.cat([tensors[i] for i in chunk]))
            for j, i in enumerate(chunk):
                outputs[i] = result[j : j + 1]
    return outputs  # type: ignore[return-value]


# --- inputs and outputs --------------------------------------------------------------------


@dataclass
class Job:
    source: Path
    target: Path
    video: bool


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def plan_jobs(inputs: list[str], output: str, overwrite: bool) -> list[Job]:
    """Input files (folders expanded) and where each result goes, checked before any work.

    One input file: OUT is the output file (or an existing folder to put it in).
    Several inputs or a folder: OUT is a folder (created if missing), one output per input.
    """
    sources: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                raise BrushworkError(f"no images or videos in {item}")
            sources += found
        elif item.is_file():
            sources.append(item)
        else:
            raise BrushworkError(f"input not found: {item}")
    out = Path(output)
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    new_folder = not single and not out.exists()  # made below, once every output has passed its checks
    if single and not out.is_dir():
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise BrushworkError(f"{out} must be a folder when applying to several inputs or a folder")
        if new_folder:
            images.check_writable(out, overwrite=False)  # its parent exists and can be written
        targets = [out / default_name(s) for s in sources]
        if len(set(targets)) != len(targets):
            raise BrushworkError("two inputs have the same file name; their outputs would collide in " + str(out))
    jobs = [Job(s, t, is_video(s)) for s, t in zip(sources, targets)]
    for job in jobs:
        check_target(job, overwrite, new_folder)
    if new_folder:
        out.mkdir(exist_ok=True)
    return jobs


def default_name(source: Path) -> str:
    if is_video(source):
        return source.stem + (source.suffix if source.suffix.lower() in VIDEO_OUTPUT_SUFFIXES else ".mp4")
    return source.stem + (source.suffix if source.suffix.lower() in images.SAVE_FORMATS else ".png")


def check_target(job: Job, overwrite: bool, new_folder: bool) -> None:
    """Output type, then images.check_writable, unless the output goes into a folder still to be
    made (`new_folder`): nothing can exist there yet, and plan_jobs has checked its parent."""
    allowed = VIDEO_OUTPUT_SUFFIXES if job.video else set(images.SAVE_FORMATS)
    if job.target.suffix.lower() not in allowed:
        raise BrushworkError(f"unsupported output type {job.target.suffix or '(none)'!r} for {job.source.name}; use {', '.join(sorted(allowed))}")
    if not new_folder:
        images.check_writable(job.target, overwrite)


# --- video ---------------------------------------------------------------------------------


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
    """Motion-aware blending with the previous output frame, and the flicker measurement."""

    strength: float
    previous_in: torch.Tensor | None = None
    previous_out: torch.Tensor | None = None
    change_in: list[float] = field(default_factory=list)
    change_out: list[float] = field(default_factory=list)

    def __call__(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        out = stylized
        if self.previous_in is not None:
            delta = (frame_in - self.previous_in).abs()
            if self.strength > 0:
                keep = self.strength * torch.exp(-delta.mean(1, keepdim=True) / MOTION_SCALE)
                out = keep * self.previous_out + (1 - keep) * stylized
            # Measured on what gets written: 8-bit frames.
            self.change_in.append(float((quantize(frame_in) - quantize(self.previous_in)).abs().mean()))
            self.change_out.append(float((quantize(out) - quantize(self.previous_out)).abs().mean()))
        self.previous_in, self.previous_out = frame_in, out
        return out

    def mean_changes(self) -> tuple[float, float]:
        """Mean input and output change per frame; 0 for a video of one frame, which cannot flicker."""
        return float(np.mean(self.change_in or [0.0])), float(np.mean(self.change_out or [0.0]))


def quantize(frame: torch.Tensor) -> torch.Tensor:
    return frame.clamp(0, 1).mul(255).round().div(255)


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


def stylize_video(stylizer: Stylizer, job: Job, settings: Settings) -> VideoReport:
    """Decode, stylize in batches of frames, encode H.264 with the same timestamps and size, copy
    the audio (or re-encode it as AAC where the output container cannot hold it).

    Written to a temp file next to the target and renamed at the end, like images.
    """
    import av

    started = time.perf_counter()
    source = open_video(job.source)
    tmp = job.target.with_name(f".{job.target.name}.tmp{job.target.suffix}")
    deflicker = Deflicker(settings.deflicker)
    try:
        with av.open(str(tmp), "w") as sink:
            frames = Transcode(source, sink, job.target, settings).run(stylizer, deflicker)
        if frames == 0:
            raise BrushworkError(f"{job.source} has a video stream but no decodable frames")
        os.replace(tmp, job.target)
    except av.error.FFmpegError as e:
        raise BrushworkError(f"video {job.source} failed: {e}") from None
    finally:
        source.close()
        tmp.unlink(missing_ok=True)
    return VideoReport(frames, time.perf_counter() - started, *deflicker.mean_changes())


class Transcode:
    """One video from `source` into `sink`, packet by packet in file order so audio and video stay
    interleaved: frames wait until a batch is full and go through the network together."""

    def __init__(self, source: av.container.InputContainer, sink: av.container.OutputContainer, target: Path, settings: Settings):
        self.source, self.sink, self.batch = source, sink, settings.batch
        self.in_video = source.streams.video[0]
        self.in_audio = source.streams.audio[0] if source.streams.audio else None
        self.size = (self.in_video.codec_context.width, self.in_video.codec_context.height)
        if settings.size is not None:
            self.size = images.fit_size(*self.size, settings.size)
        self.out_video = add_video_stream(sink, self.in_video, *self.size)
        self.copy_audio = self.in_audio is not None and can_copy_audio(self.in_audio.codec_context.name, target)
        if self.in_audio is None:
            self.out_audio = None
        elif self.copy_audio:
            self.out_audio = sink.add_stream_from_template(self.in_audio)
        else:
            self.out_audio = sink.add_stream("aac", rate=self.in_audio.codec_context.sample_rate)
        self.pending: list[av.VideoFrame] = []
        self.frames = 0

    def run(self, stylizer: Stylizer, deflicker: Deflicker) -> int:
        """Every packet, then the encoders' buffered tails; the number of frames written."""
        streams = [self.in_video] + ([self.in_audio] if self.in_audio is not None else [])
        for packet in self.source.demux(*streams):
            if packet.stream is self.in_video:
                for frame in packet.decode():
                    self.pending.append(frame)
                    if len(self.pending) == self.batch:
                        self.flush(stylizer, deflicker)
            else:
                self.pass_audio(packet)
        self.flush(stylizer, deflicker)
        encoders = (self.out_video, self.out_audio) if self.out_audio is not None and not self.copy_audio else (self.out_video,)
        for stream in encoders:
            self.sink.mux(stream.encode())
        return self.frames

    def pass_audio(self, packet: av.Packet) -> None:
        """Copied packets keep their timestamps; a demuxer's empty flush packet (no dts) is not copied."""
        if not self.copy_audio:
            for sound in packet.decode():
                self.sink.mux(self.out_audio.encode(sound))
        elif packet.dts is not None:
            packet.stream = self.out_audio
            self.sink.mux(packet)

    def flush(self, stylizer: Stylizer, deflicker: Deflicker) -> None:
        """The pending frames as one batch; each output frame takes its input frame's timestamp."""
        import av

        if not self.pending:
            return
        batch = torch.cat([frame_tensor(f, *self.size) for f in self.pending])
        stylized = stylizer(batch)
        for i, frame in enumerate(self.pending):
            new = av.VideoFrame.from_ndarray(to_array(deflicker(batch[i : i + 1], stylized[i : i + 1])), format="rgb24")
            new.pts, new.time_base = frame.pts, frame.time_base
            for packet in self.out_video.encode(new):
                self.sink.mux(packet)
        self.frames += len(self.pending)
        self.pending.clear()


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


def frame_tensor(frame, width: int, height: int) -> torch.Tensor:
    array = frame.to_ndarray(format="rgb24")
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div(255)
    return images.resize(tensor, (width, height))


def to_array(frame: torch.Tensor) -> np.ndarray:
    return frame[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()


# --- command -------------------------------------------------------------------------------


def iter_image_groups(jobs: list[Job], batch: int) -> Iterator[list[Job]]:
    """Image jobs in groups of a few batches, so a big folder is never all in memory at once."""
    image_jobs = [j for j in jobs if not j.video]
    step = batch * 8
    for start in range(0, len(image_jobs), step):
        yield image_jobs[start : start + step]


def check_readable(job: Job) -> None:
    if job.video:
        open_video(job.source).close()
        return
    try:
        with Image.open(job.source) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BrushworkError(f"not an image file (or a format Pillow cannot read): {job.source}") from None


def cmd_apply(args: argparse.Namespace) -> int:
    settings = Settings(args.strength, args.preserve_color, args.size, args.batch, args.deflicker, args.device, args.precision)
    settings.validate()
    model = load_model(resolve_model(args.model))
    jobs = plan_jobs(args.inputs, args.output, args.overwrite)
    for job in jobs:
        check_readable(job)
    stylizer = Stylizer(model, settings)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    for group in iter_image_groups(jobs, settings.batch):
        started = time.perf_counter()
        tensors = [prepare(job.source, settings.size) for job in group]
        outputs = run_batched(stylizer, tensors, settings.batch)
        seconds = (time.perf_counter() - started) / len(group)
        for job, out in zip(group, outputs):
            images.save_image(images.to_pil(out), job.target, overwrite=True)
            say(f"wrote {job.target} ({out.shape[-1]}x{out.shape[-2]}, {seconds:.2f} s per image)")
    for job in (j for j in jobs if j.video):
        report = stylize_video(stylizer, job, settings)
        ratio = f"{report.flicker_ratio:.2f}" if math.isfinite(report.flicker_ratio) else "n/a (the input does not change)"
        say(
            f"wrote {job.target} ({report.frames} frames, {report.frames / report.seconds:.1f} frames/s); "
            f"flicker {ratio}: output frames change {report.flicker_out:.4f} per frame, "
            f"input frames {report.flicker_in:.4f} (deflicker {settings.deflicker})"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="stylize images, folders or videos with a trained fast-mode model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--model", "-m", required=True, help="a .safetensors model from `brushwork train`, or a shipped name (starry-night)")
    p.add_argument("--output", "-o", required=True, help="output file (one input) or folder (several inputs or a folder)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--strength", type=float, default=1.0, help="blend with the input: 1 = full style, 0 = the input (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the input's colours, take the stylized brightness")
    p.add_argument("--size", type=int, help="resize inputs so the longest side is this many px (default: keep)")
    p.add_argument("--batch", type=int, default=4, help="images or video frames per network call (default 4)")
    p.add_argument("--deflicker", type=float, default=0.5, help="video: blend static parts with the previous frame, 0 = off (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 where fast")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_apply)
