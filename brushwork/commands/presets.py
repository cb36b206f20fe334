"""`brushwork presets`: the layer presets and the style losses, as the flags name them."""

from __future__ import annotations

import argparse

from ..losses import STYLE_LOSSES
from ..options import Options
from ..presets import PRESETS


def cmd_presets(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        print(f"{preset.name}: {preset.description}")
        print(f"  style:   {', '.join(preset.style_layers)}")
        print(f"  content: {', '.join(preset.content_layers)}")
    print("\nstyle losses (--style-loss), what each matches at every style layer:")
    for name, kind in STYLE_LOSSES.items():
        print(f"  {name}{' (default)' if name == Options().style_loss else ''}: {kind.summary}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the layer presets and the style losses")
    p.set_defaults(func=cmd_presets)
