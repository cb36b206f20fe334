"""`brushwork apply`: run a trained fast-mode network on images, folders and videos.

Images are read, stylized and written at once (pipeline.py): a reader thread decodes the next
pictures and a writer thread encodes the finished ones while the network runs. Images of the
same size that follow each other go through the network together (--batch at a time; by
default 1 on a CPU, 8 on a GPU); instance norm works per image, so a batch gives the same
pictures as one image at a time. Videos: video.py.
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import images
from ..errors import BrushworkError
from .backend import BACKENDS, Settings, Stylizer
from .net import FastModel, load_model
from .pipeline import stylize_batches, stylize_files
from .video import open_video, stylize_video

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
VIDEO_OUTPUT_SUFFIXES = {".mp4", ".mkv", ".mov"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


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


def stylize_images(model: FastModel, pictures: list[Image.Image], settings: Settings) -> list[Image.Image]:
    """The Python API: stylize PIL images, batching those of equal size that follow each other."""
    stylizer = Stylizer(model, settings)
    frames = ((i, np.asarray(images.load_image(p))) for i, p in enumerate(pictures))
    return [Image.fromarray(pixels, "RGB") for _, pixels in stylize_batches(stylizer, frames)]


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


# --- command -------------------------------------------------------------------------------


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
    settings = Settings(
        strength=args.strength, preserve_color=args.preserve_color, size=args.size, batch=args.batch, deflicker=args.deflicker,
        device=args.device, precision=args.precision, backend=args.backend, workers=args.workers,
    )  # fmt: skip
    settings.validate()
    model = load_model(resolve_model(args.model))
    jobs = plan_jobs(args.inputs, args.output, args.overwrite)
    for job in jobs:
        check_readable(job)
    stylizer = Stylizer(model, settings)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    stylize_files(stylizer, [(job.source, job.target) for job in jobs if not job.video], say)
    for job in (j for j in jobs if j.video):
        report = stylize_video(stylizer, job.source, job.target)
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
    p.add_argument("--batch", type=int, help="images or video frames per network call (default: 1 on a CPU, 8 on a GPU)")
    p.add_argument("--deflicker", type=float, default=0.5, help="video: blend static parts with the previous frame, 0 = off (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 where fast")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="auto: onnxruntime for fp32 on a CPU where installed, else torch")
    p.add_argument("--workers", type=int, help="onnxruntime: network calls at once, threads shared among them (default: one per thread)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_apply)
