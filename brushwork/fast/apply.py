"""`brushwork apply`: run a trained fast-mode network on images, folders and videos.

Images are read, stylized and written at once (pipeline.py): a reader thread decodes the next
pictures and a writer thread encodes the finished ones while the network runs. Images of the
same size that follow each other go through the network together (--batch at a time; by
default 1 on a CPU, 8 on a GPU); instance norm works per image, so a batch gives the same
pictures as one image at a time. Videos: video.py.

--resume leaves out the inputs whose output exists, so a rerun finishes an interrupted run
(outputs are written atomically: one that exists is whole). --ray runs the same work on a Ray
cluster (cluster.py), with the same outputs.
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import images, masks
from ..errors import BrushworkError
from ..options import PROTECT_FACES_BARE, add_ray_flag
from ..videoio import VIDEO_SUFFIXES, open_video
from .backend import BACKENDS, CONSISTENCY, Settings, Stylizer
from .consistency import Consistency
from .net import FastModel, load_model
from .pipeline import stylize_batches, stylize_files
from .video import VideoReport, stylize_video

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
    source: Path | str  # a str only for a URI (s3://...), which --ray reads
    target: Path
    video: bool


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def is_uri(text: str | Path) -> bool:
    return isinstance(text, str) and "://" in text


def expand_input(item: str) -> tuple[list[Path | str], bool]:
    """An input's pictures and videos, and whether it was a folder."""
    if is_uri(item):
        return list_uri(item)
    path = Path(item)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not found:
            raise BrushworkError(f"no images or videos in {path}")
        return list(found), True
    if path.is_file():
        return [path], False
    raise BrushworkError(f"input not found: {path}")


def list_uri(uri: str) -> tuple[list[Path | str], bool]:
    """Pictures at a URI that Ray Data reads (s3://, gs://, file://...): the file, or a folder's
    pictures. pyarrow, which reads them, comes with brushwork[ray]."""
    try:
        from pyarrow import fs
    except ModuleNotFoundError:
        raise BrushworkError(f'reading {uri} needs pyarrow: pip install "brushwork[ray]"') from None
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            return [uri], False
        entries = filesystem.get_file_info(fs.FileSelector(path)) if info.type == fs.FileType.Directory else None
    except (OSError, ValueError) as e:
        raise BrushworkError(f"cannot read {uri}: {e}") from None
    if entries is None:
        raise BrushworkError(f"input not found: {uri}")
    scheme = uri.split("://", 1)[0]
    found = sorted(f"{scheme}://{e.path}" for e in entries if e.type == fs.FileType.File and Path(e.path).suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise BrushworkError(f"no images in {uri} (videos are read from files every node sees, not from URIs)")
    return list(found), True


def plan_jobs(inputs: list[str], output: str, overwrite: bool, resume: bool = False) -> list[Job]:
    """Input files (folders expanded) and where each result goes, checked before any work.

    One input file: OUT is the output file (or an existing folder to put it in).
    Several inputs or a folder: OUT is a folder (created if missing), one output per input.
    With `resume`, inputs whose output exists are left out: a rerun finishes an interrupted one.
    """
    if is_uri(output):
        raise BrushworkError(f"{output}: outputs go to a folder (on a cluster, one every node sees); URLs are only read")
    sources: list[Path | str] = []
    folders = False
    for item in inputs:
        found, folder = expand_input(item)
        sources += found
        folders = folders or folder
    out = Path(output)
    single = len(inputs) == 1 and not folders
    new_folder = not single and not out.exists()  # made below, once every output has passed its checks
    if single and not out.is_dir():
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise BrushworkError(f"{out} must be a folder when applying to several inputs or a folder")
        if new_folder:
            images.check_writable(out, overwrite=False)  # its parent exists and can be written
        targets = [out / default_name(Path(s)) for s in sources]
        if len(set(targets)) != len(targets):
            raise BrushworkError("two inputs have the same file name; their outputs would collide in " + str(out))
    jobs = [Job(s, t, is_video(Path(s))) for s, t in zip(sources, targets)]
    for job in jobs:
        check_target(job, overwrite, resume, new_folder)
    if new_folder:
        out.mkdir(exist_ok=True)
    return [job for job in jobs if overwrite or not (resume and job.target.exists())]


def default_name(source: Path) -> str:
    if is_video(source):
        return source.stem + (source.suffix if source.suffix.lower() in VIDEO_OUTPUT_SUFFIXES else ".mp4")
    return source.stem + (source.suffix if source.suffix.lower() in images.SAVE_FORMATS else ".png")


def check_target(job: Job, overwrite: bool, resume: bool, new_folder: bool) -> None:
    """Output type, then images.check_writable, unless the output goes into a folder still to be
    made (`new_folder`): nothing can exist there yet, and plan_jobs has checked its parent."""
    allowed = VIDEO_OUTPUT_SUFFIXES if job.video else set(images.SAVE_FORMATS)
    if job.target.suffix.lower() not in allowed:
        raise BrushworkError(f"unsupported output type {job.target.suffix or '(none)'!r} for {Path(job.source).name}; use {', '.join(sorted(allowed))}")
    if job.target.is_file() and not (overwrite or resume):
        raise BrushworkError(f"{job.target} exists; pass --overwrite to replace it, or --resume to skip the inputs already done")
    if not new_folder:
        images.check_writable(job.target, overwrite=True)


# --- command -------------------------------------------------------------------------------


def check_readable(job: Job) -> None:
    if is_uri(job.source):
        return  # read on the cluster; a picture that is not one fails there, naming it
    if job.video:
        open_video(job.source).close()
        return
    try:
        with Image.open(job.source) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BrushworkError(f"not an image file (or a format Pillow cannot read): {job.source}") from None


def video_line(target: Path | str, report: VideoReport, settings: Settings) -> str:
    ratio = f"{report.flicker_ratio:.2f}" if math.isfinite(report.flicker_ratio) else "n/a (the input does not change)"
    return (
        f"wrote {target} ({report.frames} frames, {report.frames / report.seconds:.1f} frames/s); "
        f"flicker {ratio}: output frames change {report.flicker_out:.4f} per frame, "
        f"input frames {report.flicker_in:.4f} (consistency {settings.consistency}, deflicker {Consistency.of(settings).strength})"
    )


def cmd_apply(args: argparse.Namespace) -> int:
    settings = Settings(
        strength=args.strength, preserve_color=args.preserve_color, size=args.size, batch=args.batch,
        consistency=args.consistency, deflicker=args.deflicker, device=args.device, precision=args.precision, backend=args.backend, workers=args.workers,
        mask=None if args.mask is None else masks.to_array(args.mask, "--mask"), protect_faces=args.protect_faces,
    )  # fmt: skip
    settings.validate()
    if args.ray is None and any(is_uri(item) for item in args.inputs):
        raise BrushworkError("URL inputs (s3://...) are read with --ray; locally, give files or folders")
    model_file = resolve_model(args.model)
    model = load_model(model_file)
    jobs = plan_jobs(args.inputs, args.output, args.overwrite, args.resume)
    for job in jobs:
        check_readable(job)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    if args.ray is not None:
        return apply_on_ray(args, jobs, model_file, settings, say)
    stylizer = Stylizer(model, settings)
    stylize_files(stylizer, [(job.source, job.target) for job in jobs if not job.video], say)
    for job in (j for j in jobs if j.video):
        say(video_line(job.target, stylize_video(stylizer, job.source, job.target), settings))
    return 0


def apply_on_ray(args: argparse.Namespace, jobs: list[Job], model_file: Path, settings: Settings, say: Callable[[str], None]) -> int:
    """The same jobs on a Ray cluster (cluster.py), reported as they finish."""
    from .. import cluster  # imports Ray, which only --ray needs

    cluster.connect(args.ray, args.quiet)
    pictures = [(job.source, job.target) for job in jobs if not job.video]
    videos = [(Path(job.source), job.target) for job in jobs if job.video]
    started = time.perf_counter()
    for done, (target, report) in enumerate(cluster.apply(pictures, videos, model_file, settings, args.overwrite), 1):
        say(video_line(target, report, settings) if report else f"wrote {target} ({done}/{len(jobs)})")
    say(f"{len(jobs)} outputs in {time.perf_counter() - started:.1f} s on the Ray cluster")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="stylize images, folders or videos with a trained fast-mode model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    p.add_argument("--model", "-m", required=True, help="a .safetensors model from `brushwork train`, or a shipped name (starry-night)")
    p.add_argument("--output", "-o", required=True, help="output file (one input) or folder (several inputs or a folder)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--resume", action="store_true", help="skip inputs whose output exists (finish an interrupted run)")
    p.add_argument("--strength", type=float, default=1.0, help="blend with the input: 1 = full style, 0 = the input (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the input's colours, take the stylized brightness")
    p.add_argument("--mask", metavar="MASK.png", help="where the style goes: white stylized, black the input, gray between; "
                   "one mask for every image and frame, stretched to each one's size")
    p.add_argument("--protect-faces", type=float, nargs="?", const=PROTECT_FACES_BARE, default=0.0, metavar="STRENGTH",
                   help=f"keep detected faces closer to the input: 1 keeps them as they were, 0 off (default; bare: {PROTECT_FACES_BARE})")
    p.add_argument("--size", type=int, help="resize inputs so the longest side is this many px (default: keep)")
    p.add_argument("--batch", type=int, help="images or video frames per network call (default: 1 on a CPU, 8 on a GPU)")
    p.add_argument("--consistency", default="flow", choices=CONSISTENCY,
                   help="video: hold each frame to the previous output warped along the optical flow (flow, default), "
                   "to the previous output where the input did not change (blend), or not at all (off)")
    p.add_argument("--deflicker", type=float, metavar="D",
                   help="video: how much of the previous output a trusted pixel keeps, 0 = none "
                   f"(default {CONSISTENCY['flow']} with flow, {CONSISTENCY['blend']} with blend)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 where the CPU or GPU has it natively; fp32 with --backend onnxruntime")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: onnxruntime for fp32 on a CPU where installed, else torch; onnxruntime alone implies fp32")
    p.add_argument("--workers", type=int, help="onnxruntime: network calls at once, threads shared among them (default: one per thread)")
    p.add_argument("--quiet", "-q", action="store_true")
    add_ray_flag(p, "pictures through a Ray Data pool of model actors (one per GPU or CPU), one task per video")
    p.set_defaults(func=cmd_apply)
