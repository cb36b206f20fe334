"""Flags that several commands share, built from options.SETTINGS (the one settings table):
the stylize options, and --ray. The commands turn them into Options here, once."""

from __future__ import annotations

import argparse

from ..errors import BrushworkError
from ..options import SETTINGS, Options


def add_flags(
    parser: argparse.ArgumentParser,
    fields: tuple[str, ...] | None = None,
    title: str = "stylization options",
    show_defaults: bool = True,
) -> None:
    """Add the flags of `fields` (default: every setting) to an argparse parser, as text that
    `options_from_args` parses, so that an error names the flag and not argparse's type."""
    group = parser.add_argument_group(title)
    for setting in SETTINGS:
        if fields is not None and setting.field not in fields:
            continue
        if setting.switch:  # a bare flag; its text "true" goes through the same parser
            group.add_argument(setting.flag, dest=setting.field, action="store_const", const="true", help=setting.help)
            continue
        default = setting.default if show_defaults else None
        shown = f" (default: {default})" if default is not None and not isinstance(default, tuple) else ""
        optional = {"nargs": "?", "const": setting.bare} if setting.bare is not None else {}
        group.add_argument(
            setting.flag, dest=setting.field, default=None, metavar=setting.field.upper(), help=setting.help + shown,
            **optional,
        )


def options_from_args(args: argparse.Namespace, base: Options | None = None) -> Options:
    """The Options that parsed flags describe; flags a command lacks or left unset keep `base`'s value."""
    changes = {}
    for setting in SETTINGS:
        text = getattr(args, setting.field, None)
        if text is not None:
            try:
                changes[setting.field] = setting.parse(text)
            except BrushworkError as e:
                raise BrushworkError(f"{setting.flag}: {e}") from None  # say which of many flags was wrong
    return (base or Options()).replace(**changes)


def add_ray_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--ray [ADDRESS], alike in every command that can run on a Ray cluster (brushwork.cluster)."""
    parser.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help=f"run on a Ray cluster: {what}. ADDRESS is the head's host:port; "
             "bare --ray means auto, the cluster that `ray start` made on this machine (needs brushwork[ray])",
    )  # fmt: skip
