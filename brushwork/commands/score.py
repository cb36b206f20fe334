"""`brushwork score`: how far one image is from a content photo and a style image, with the
ruler every compare cell is measured with (brushwork.score)."""

from __future__ import annotations

import argparse
import json

from .. import images
from ..batch.engines import score_engine
from ..score import STYLE_FACTOR, score


def cmd_score(args: argparse.Namespace) -> int:
    """Prints one image's distances, with what each number means unless JSON is asked for."""
    output, content, style = (images.load_image(p) for p in (args.image, args.content, args.style))
    result = score(output, content, style, score_engine(args.device))
    numbers = {"content_distance": result.content, "style_distance": result.style, "objective": result.objective}
    if args.json:
        print(json.dumps(numbers, indent=1))
    else:
        print(f"content distance  {result.content:.4g}  (relative relu4_2 feature error)")
        print(f"style distance    {result.style:.4g}  (mean relative Gram error, relu1_1…relu5_1)")
        print(f"objective         {result.objective:.4g}  (content + {STYLE_FACTOR:g} × style)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="how far an image is from a content photo and a style image")
    p.add_argument("image", help="the image to measure (e.g. a stylized output)")
    p.add_argument("--content", "-c", required=True, help="content photo")
    p.add_argument("--style", "-s", required=True, help="style image")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=cmd_score)
