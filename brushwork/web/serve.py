"""The `brushwork serve` subcommand. FastAPI and uvicorn are imported only when it runs, so
the rest of the CLI works without the `web` extra."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import BrushworkError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def default_data_dir() -> Path:
    """Where the job history lives unless --data says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "brushwork" / "web"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app: upload pictures, watch the painting appear (needs brushwork[web])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data", metavar="DIR", help=f"folder for uploads, results and job history (default {default_data_dir()})")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise BrushworkError(f"the web app needs the web extra ({e.name} is missing): pip install 'brushwork[web]'") from None
    if not 0 <= args.port <= 65535:
        raise BrushworkError(f"--port must be between 0 and 65535, got {args.port}")
    data = Path(args.data) if args.data else default_data_dir()
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BrushworkError(f"cannot use {data} as the data folder: {e.strerror}") from None
    app = create_app(data)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"brushwork: serving on http://{host}:{args.port}/ (jobs in {data}); Ctrl-C stops", file=sys.stderr, flush=True)
    if args.host not in LOOPBACK:
        print(f"brushwork: warning: listening on {args.host}: anyone who can reach it can use this server",
              file=sys.stderr, flush=True)
    # Open event streams would hold a graceful shutdown forever; cut them after 3 s.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0
