"""`brushwork texture`: Gatys et al.'s texture synthesis, stylize without a photo."""

from __future__ import annotations

import argparse

from PIL import Image

from .flags import add_flags, options_from_args
from .stylize import add_output_flags, check_outputs, load_styles, paint

TEXTURE_CANVAS = (128, 128, 128)  # the "content" of a texture: only its size matters (content weight 0)


def cmd_texture(args: argparse.Namespace) -> int:
    """Gatys et al.'s texture synthesis: the stylize objective without its content term, from noise."""
    options = options_from_args(args)
    options = options.replace(content_weight=0.0, init=options.init if args.init else "noise")
    check_outputs(args)
    canvas = Image.new("RGB", (options.size, options.size), TEXTURE_CANVAS)
    styles, run = load_styles(args, options)
    return paint(args, canvas, styles, options, run)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("texture", help="synthesize a texture from --style images (no photo), e.g. --seamless")
    p.add_argument("style", nargs="+", help="style image(s)")
    add_output_flags(p)
    add_flags(p)
    p.set_defaults(func=cmd_texture)
