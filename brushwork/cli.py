"""The `brushwork` command: a thin layer of flags over brushwork.api.

Every stylize flag comes from the settings table in options.py; this module only wires the
subcommands together, and nothing imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Callable, NoReturn

from PIL import Image

from . import __version__, clip, compare, images
from .api import engine_for
from .engine import Progress, Result
from .errors import BrushworkError, BrushworkWarning
from .losses import STYLE_LOSSES
from .fast import apply, export, train
from .options import Options, add_flags, add_ray_flag, options_from_args
from .presets import PRESETS
from .progress import ProgressReporter, format_duration
from .web import serve  # imports fastapi only when `serve` runs


# --- stylize -------------------------------------------------------------------------------


def snapshot_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")


def cmd_stylize(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if clip.is_clip(args):
        if args.ray is not None:
            raise BrushworkError("--ray paints photos; a video runs on this machine")
        return clip.stylize_clip(args, options)
    one_photo = len(args.content) == 1 and not Path(args.content[0]).is_dir()
    if one_photo and args.ray is None and not args.resume:
        check_outputs(args)
        return paint(args, images.load_image(args.content[0]), options)
    if args.trace and not one_photo:
        raise BrushworkError("--trace takes one photo; several photos each get their own run")
    runs = plan_photos(args)
    styles = [images.load_image(s) for s in args.style]
    options.validate(len(styles))
    if args.ray is not None:
        return paint_on_ray(args, runs, styles, options)
    code = 0
    for photo, target in runs:
        one = argparse.Namespace(**{**vars(args), "output": str(target)})
        code = max(code, paint(one, images.load_image(photo), options, keep_partial=False))
        if code == 130:
            break
    return code


def plan_photos(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Several photos, or folders of them: one output each in the folder -o, named as `apply`
    names them, checked before any run; with --resume the photos already done are left out."""
    if any(apply.is_uri(item) for item in args.content):
        raise BrushworkError("stylize reads photos from files (on a cluster: a folder every node sees)")
    output = Path(args.output)
    if len(args.content) > 1 or Path(args.content[0]).is_dir():
        if output.suffix.lower() in images.SAVE_FORMATS and not output.is_dir():
            raise BrushworkError(f"{output} is a picture's name; several photos, or a folder of them, go to -o FOLDER")
    jobs = apply.plan_jobs(args.content, args.output, args.overwrite, args.resume)
    for job in jobs:
        if job.video:
            raise BrushworkError(f"{job.source} is a video; stylize paints photos (videos: brushwork apply)")
        images.load_image(job.source)  # unreadable photos fail now, not runs later
    return [(Path(job.source), job.target) for job in jobs]


def paint_on_ray(args: argparse.Namespace, runs: list[tuple[Path, Path]], styles: list[Image.Image], options: Options) -> int:
    """Each photo a Ray task (cluster.py); the outputs are a local run's."""
    from . import cluster  # imports Ray, which only --ray needs

    cluster.connect(args.ray, args.quiet)
    code = 0
    for done, (target, stop_reason, seconds) in enumerate(cluster.stylize(runs, styles, options), 1):
        if stop_reason == "diverged":
            print(f"brushwork: error: the optimization diverged for {target}; saved its last finite image", file=sys.stderr)
            code = 2
        elif not args.quiet:
            print(f"wrote {target} ({done}/{len(runs)}, {seconds:.1f} s)", file=sys.stderr)
    return code


TEXTURE_CANVAS = (128, 128, 128)  # the "content" of a texture: only its size matters (content weight 0)


def cmd_texture(args: argparse.Namespace) -> int:
    """Gatys et al.'s texture synthesis: the stylize objective without its content term, from noise."""
    options = options_from_args(args)
    options = options.replace(content_weight=0.0, init=options.init if args.init else "noise")
    check_outputs(args)
    return paint(args, Image.new("RGB", (options.size, options.size), TEXTURE_CANVAS), options)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse before any work if an output could not be written as asked."""
    images.check_output_path(args.output, args.overwrite)
    if args.trace:
        images.check_writable(args.trace, args.overwrite)
    if args.save_every is not None and args.save_every < 1:
        raise BrushworkError("--save-every must be at least 1")


def paint(args: argparse.Namespace, content: Image.Image, options: Options, keep_partial: bool = True) -> int:
    """Plan, run and write one picture (stylize, texture and demo all end here). Without
    `keep_partial` (one of several photos), Ctrl-C writes nothing, so --resume redoes it."""
    styles = [images.load_image(s) for s in args.style]
    options.validate(len(styles))
    engine = engine_for(options)
    plan = engine.plan(content.size, options)
    images.check_disk_space(args.output, (plan.width, plan.height))
    if not args.quiet:
        print(plan.describe(engine.device), file=sys.stderr)
        seconds = engine.estimate_seconds(plan)
        if seconds is not None:
            print(f"estimated time: about {format_duration(seconds)}", file=sys.stderr)
    reporter = ProgressReporter("stylize", enabled=not args.quiet)
    try:
        result = engine.run(content, styles, options, snapshot_saver(args, reporter))
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


# --- presets, demo -------------------------------------------------------------------------


def cmd_presets(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        print(f"{preset.name}: {preset.description}")
        print(f"  style:   {', '.join(preset.style_layers)}")
        print(f"  content: {', '.join(preset.content_layers)}")
    print("\nstyle losses (--style-loss), what each matches at every style layer:")
    for name, kind in STYLE_LOSSES.items():
        print(f"  {name}{' (default)' if name == Options().style_loss else ''}: {kind.summary}")
    return 0


DEMO_CONTENT = "astronaut.png"  # scikit-image's NASA portrait of Eileen Collins (public domain)
DEMO_STYLE = "ihc.png"  # scikit-image's immunohistochemistry stain micrograph (CC0)


def demo_images() -> tuple[Path, Path]:
    """Two pictures that ship inside scikit-image's wheel, so the demo runs offline."""
    import importlib.resources

    data = importlib.resources.files("skimage") / "data"
    return Path(str(data / DEMO_CONTENT)), Path(str(data / DEMO_STYLE))


def cmd_demo(args: argparse.Namespace) -> int:
    content, style = demo_images()
    args.content, args.style, args.ray, args.resume = [str(content)], [str(style)], None, False
    args.size, args.steps = str(args.demo_size), str(args.demo_steps)
    args.save_every, args.trace = None, None
    images.check_output_path(args.output, args.overwrite)  # before the banner, so a refusal stays one line
    if not args.quiet:
        print(f"demo: {content.name} in the style of {style.name} (scikit-image sample images)", file=sys.stderr)
    return cmd_stylize(args)


# --- main ----------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage mistake is one line like every other error (exit code 2)
    instead of the whole usage text. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", required=True, help="output image (.png, .jpg, .webp or .tif)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--save-every", type=int, metavar="N", help="also save a snapshot every N steps (OUT_stepNNNNN.ext)")
    p.add_argument("--trace", metavar="FILE.json", help="write per-step losses and times as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="brushwork", description="Neural style transfer: paint a photo in a painting's style.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stylize", help="paint CONTENT in the style of one or more --style images")
    p.add_argument("content", nargs="+", help="content photo; or several, or folders of them, with -o a folder; "
                   "or one video (see the video options)")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    add_output_flags(p)
    p.add_argument("--resume", action="store_true",
                   help="several photos: skip those whose output exists; a video: continue from its finished frames")
    add_ray_flag(p, "each photo a Ray task, one per GPU or CPU slot")
    clip.add_video_flags(p)
    add_flags(p)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("texture", help="synthesize a texture from --style images (no photo), e.g. --seamless")
    p.add_argument("style", nargs="+", help="style image(s)")
    add_output_flags(p)
    add_flags(p)
    p.set_defaults(func=cmd_texture)

    p = sub.add_parser("presets", help="list the layer presets and the style losses")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("demo", help="stylize a bundled photo with a bundled texture (works offline)")
    p.add_argument("--output", "-o", default="demo.png", help="output image (default demo.png)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--size", dest="demo_size", type=int, default=384, help="longest side (default 384)")
    p.add_argument("--steps", dest="demo_steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_demo)
    for module in (compare, serve, train, apply, export):  # `compare` adds `score` too
        module.add_parser(sub)
    return parser


def show_notice(message, category, filename, lineno, file=None, line=None) -> None:
    """brushwork's own warnings as one line each, like its errors; others as Python shows them."""
    if issubclass(category, BrushworkWarning):
        print(f"brushwork: notice: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", BrushworkWarning)
            warnings.showwarning = show_notice
            return args.func(args)
    except BrushworkError as e:
        print(f"brushwork: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("brushwork: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
