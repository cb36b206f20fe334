"""`brushwork stylize`: paint one photo, or many (each its own run, locally or as Ray tasks).

`paint` is where stylize, texture and demo end: plan, run with progress and snapshots, write
the picture and the trace, and say how it went.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable

from PIL import Image

from .. import images
from ..api import engine_for
from ..batch import files
from ..engine import Progress, Result
from ..errors import BrushworkError
from ..options import Options
from ..progress import ProgressReporter, format_duration
from ..run_description import RunDescription
from . import clip
from .flags import add_flags, add_ray_flag, options_from_args


def snapshot_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")


def cmd_stylize(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if clip.is_clip(args):
        return clip.stylize_clip(args, options)
    one_photo = len(args.content) == 1 and not Path(args.content[0]).is_dir()
    if one_photo and args.ray is None and not args.resume:
        check_outputs(args)
        content = images.load_image(args.content[0])
        styles, run = load_styles(args, options)
        return paint(args, content, styles, options, run)
    if args.trace and not one_photo:
        raise BrushworkError("--trace takes one photo; several photos each get their own run")
    runs = plan_photos(args)
    styles, run = load_styles(args, options)
    if args.ray is not None:
        return paint_on_ray(args, runs, styles, options)
    code = 0
    for photo, target in runs:
        one = argparse.Namespace(**{**vars(args), "output": str(target)})
        code = max(code, paint(one, images.load_image(photo), styles, options, run, keep_partial=False))
        if code == 130:
            break
    return code


def plan_photos(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Several photos, or folders of them: one output each in the folder -o, named as `apply`
    names them, checked before any run; with --resume the photos already done are left out."""
    if any(files.is_uri(item) for item in args.content):
        raise BrushworkError("stylize reads photos from files (on a cluster: a folder every node sees)")
    output = Path(args.output)
    if len(args.content) > 1 or Path(args.content[0]).is_dir():
        if output.suffix.lower() in images.SAVE_FORMATS and not output.is_dir():
            raise BrushworkError(f"{output} is a picture's name; several photos, or a folder of them, go to -o FOLDER")
    jobs = files.plan_jobs(args.content, args.output, args.overwrite, args.resume)
    for job in jobs:
        if job.video:
            raise BrushworkError(f"{job.source} is a video; stylize paints photos (videos: brushwork apply)")
        images.load_image(job.source)  # unreadable photos fail now, not runs later
    return [(Path(job.source), job.target) for job in jobs]


def paint_on_ray(args: argparse.Namespace, runs: list[tuple[Path, Path]], styles: list[Image.Image], options: Options) -> int:
    """Each photo a Ray task (cluster.py); the outputs are a local run's."""
    from .. import cluster  # imports Ray, which only --ray needs

    cluster.connect(args.ray, args.quiet)
    code = 0
    for done, (target, stop_reason, seconds) in enumerate(cluster.stylize(runs, styles, options), 1):
        if stop_reason == "diverged":
            print(f"brushwork: error: the optimization diverged for {target}; saved its last finite image", file=sys.stderr)
            code = 2
        elif not args.quiet:
            print(f"wrote {target} ({done}/{len(runs)}, {seconds:.1f} s)", file=sys.stderr)
    return code


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse before any work if an output could not be written as asked."""
    images.check_output_path(args.output, args.overwrite)
    if args.trace:
        images.check_writable(args.trace, args.overwrite)
    if args.save_every is not None and args.save_every < 1:
        raise BrushworkError("--save-every must be at least 1")


def load_styles(args: argparse.Namespace, options: Options) -> tuple[list[Image.Image], RunDescription]:
    """The style images, and the options checked against them, once, by resolving them into
    the run description the engine paints from."""
    styles = [images.load_image(s) for s in args.style]
    return styles, RunDescription.from_options(options, len(styles))


def paint(
    args: argparse.Namespace, content: Image.Image, styles: list[Image.Image], options: Options,
    run: RunDescription, keep_partial: bool = True,
) -> int:
    """Plan, run and write one picture (stylize, texture and demo all end here), with options
    that load_styles has checked. Without `keep_partial` (one of several photos), Ctrl-C
    writes nothing, so --resume redoes it."""
    engine = engine_for(options)
    plan = engine.plan(content.size, options, [s.size for s in images.crop_styles(styles, run.style_crop)])
    images.check_disk_space(args.output, (plan.width, plan.height))
    if not args.quiet:
        print(plan.describe(engine.device), file=sys.stderr)
        seconds = engine.estimate_seconds(plan)
        if seconds is not None:
            print(f"estimated time: about {format_duration(seconds)}", file=sys.stderr)
    reporter = ProgressReporter("stylize", enabled=not args.quiet)
    try:
        result = engine.run(content, styles, options, snapshot_saver(args, reporter), run=run, plan=plan)
    finally:
        reporter.close()
    if result.stop_reason == "interrupted" and not keep_partial:
        print("brushwork: interrupted; the photos done so far are saved: run the same command with --resume "
              "to finish the rest", file=sys.stderr)
        return 130
    images.save_image(result.image, args.output, overwrite=True)
    if args.trace:
        write_trace(args.trace, options, result)
    return report(args, result)


def snapshot_saver(args: argparse.Namespace, reporter: ProgressReporter) -> Callable[[Progress], None]:
    """The run's callback: progress, and with --save-every a snapshot each time a multiple of N
    steps has passed (steps arrive in batches on a GPU)."""
    saved = 0

    def callback(progress: Progress) -> None:
        nonlocal saved
        reporter(progress)
        if args.save_every and progress.step // args.save_every > saved:
            saved = progress.step // args.save_every
            images.save_image(progress.preview(), snapshot_path(Path(args.output), progress.step), overwrite=True)

    return callback


def write_trace(path: str, options: Options, result: Result) -> None:
    trace = {
        "options": dataclasses.asdict(options),
        "size": result.size,
        "stop_reason": result.stop_reason,
        "seconds": result.seconds,
        "steps": [dataclasses.asdict(r) for r in result.records],
    }
    images.write_atomic(path, json.dumps(trace, indent=1).encode())


def report(args: argparse.Namespace, result: Result) -> int:
    """The closing line and exit code: 0 done, 130 interrupted, 2 diverged (image saved each time)."""
    steps_done = result.records[-1].step if result.records else 0
    if result.stop_reason == "interrupted":
        print(f"brushwork: interrupted at step {steps_done}; saved the current image to {args.output}", file=sys.stderr)
        return 130
    if result.stop_reason == "diverged":
        print(
            f"brushwork: error: the optimization diverged (loss became NaN/inf) after step {steps_done}; "
            f"saved the last finite image to {args.output}. Try lower weights or --lr.",
            file=sys.stderr,
        )
        return 2
    if not args.quiet:
        w, h = result.size
        print(f"wrote {args.output} ({w}x{h}, {steps_done} steps, {result.seconds:.1f} s)", file=sys.stderr)
    return 0


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", required=True, help="output image (.png, .jpg, .webp or .tif)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--save-every", type=int, metavar="N", help="also save a snapshot every N steps (OUT_stepNNNNN.ext)")
    p.add_argument("--trace", metavar="FILE.json", help="write per-step losses and times as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="paint CONTENT in the style of one or more --style images")
    p.add_argument("content", nargs="+", help="content photo; or several, or folders of them, with -o a folder; "
                   "or one video (see the video options)")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    add_output_flags(p)
    p.add_argument("--resume", action="store_true",
                   help="several photos: skip those whose output exists; a video: continue from its finished frames")
    add_ray_flag(p, "each photo, or each shot of a video, a Ray task, one per GPU or CPU slot")
    clip.add_video_flags(p)
    add_flags(p)
    p.set_defaults(func=cmd_stylize)
