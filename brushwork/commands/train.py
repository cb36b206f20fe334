"""`brushwork train`: fit a fast-mode network to a style (brushwork.fast.train), with the
loss flags of `brushwork stylize`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..fast.train import TRAIN_FIELDS, TRAIN_STYLE_LOSS, TrainConfig, checkpoint_path, train
from ..options import Options
from .flags import add_flags, options_from_args


def cmd_train(args: argparse.Namespace) -> int:
    options = options_from_args(args, Options(style_loss=TRAIN_STYLE_LOSS))
    config = TrainConfig(
        styles=args.style, data=args.data, output=Path(args.output), options=options,
        iterations=args.iterations, batch=args.batch, crop=args.crop, width=args.width, blocks=args.blocks,
        holdout=args.holdout, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
    )  # fmt: skip
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    result = train(config)
    if result.stop_reason == "interrupted":
        print(
            f"brushwork: interrupted at iteration {result.iteration}; checkpoint saved to "
            f"{checkpoint_path(config.output)} (continue with --resume)",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(f"wrote {config.output} ({result.iteration} iterations, {result.seconds:.0f} s this run)", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a fast-mode network for a style (then use `brushwork apply`)")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of training photos (searched recursively)")
    p.add_argument("--output", "-o", required=True, metavar="NAME.safetensors", help="model file to write")
    p.add_argument("--iterations", type=int, default=2000, help="training iterations in all (default 2000)")
    p.add_argument("--batch", type=int, default=4, help="crops per iteration (default 4)")
    p.add_argument("--crop", type=int, default=256, help="side of the square training crops in px (default 256)")
    p.add_argument("--width", type=int, help="channels of the network's first layer; 32 is Johnson et al.'s (default 16)")
    p.add_argument("--blocks", type=int, help="residual blocks (default 5)")
    p.add_argument("--holdout", type=int, default=2, help="photos kept out of training for samples (default 2)")
    p.add_argument("--sample-every", type=int, default=200, metavar="N", help="write samples every N iterations")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N", help="write a checkpoint every N iterations")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint of --output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", "-q", action="store_true")
    add_flags(p, TRAIN_FIELDS, "loss options (as for `brushwork stylize`; --lr is Adam's, default 1e-3)", False)
    p.set_defaults(func=cmd_train)
