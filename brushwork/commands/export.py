"""`brushwork export MODEL --onnx OUT.onnx`: a fast-mode network as ONNX, checked against
PyTorch (brushwork.fast.export)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..fast.apply import resolve_model
from ..fast.export import export_onnx


def cmd_export(args: argparse.Namespace) -> int:
    difference = export_onnx(resolve_model(args.model), Path(args.onnx), args.overwrite)
    if not args.quiet:
        print(f"wrote {args.onnx} (onnxruntime matches PyTorch within {difference:.1e})", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a fast-mode model to ONNX (checked with onnxruntime)")
    p.add_argument("model", help="a .safetensors model from `brushwork train`, or a shipped name (starry-night)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_export)
