"""`brushwork demo`: stylize a photo and a texture that ship with scikit-image, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import images
from ..options import DEFAULT_STEPS
from .stylize import cmd_stylize

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stylize a bundled photo with a bundled texture (works offline)")
    p.add_argument("--output", "-o", default="demo.png", help="output image (default demo.png)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--size", dest="demo_size", type=int, default=384, help="longest side (default 384)")
    p.add_argument("--steps", dest="demo_steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimizer steps (default {DEFAULT_STEPS})")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_demo)
