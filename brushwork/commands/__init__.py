"""The command layer: one module per subcommand, each with its flags (`add_parser`) and its
`cmd_*`, which parses and checks the command line once and calls the libraries below. Only
this package imports argparse, and only it imports the Ray runner (brushwork.cluster), when
--ray asks for it. brushwork.cli's `main` is the console entry over `build_parser`.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import __version__
from . import apply, compare, demo, export, presets, score, serve, stylize, texture, train

# In the order `brushwork --help` lists them.
COMMANDS = (stylize, texture, presets, demo, compare, score, serve, train, apply, export)


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage mistake is one line like every other error (exit code 2)
    instead of the whole usage text. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="brushwork", description="Neural style transfer: paint a photo in a painting's style.")
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser
