"""The `brushwork` command (the console script's entry): the parser that brushwork.commands
builds, one subcommand module each, and the one way errors and notices are shown.

Nothing imports this module. Below it, a bad input raises BrushworkError, which `main` shows
as one line ("brushwork: error: ...", exit code 2).
"""

from __future__ import annotations

import sys
import warnings

from .commands import build_parser
from .errors import BrushworkError, BrushworkWarning


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
