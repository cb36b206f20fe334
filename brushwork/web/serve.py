"""The `brushwork serve` subcommand. FastAPI and uvicorn are imported only when it runs, so
the rest of the CLI works without the `web` extra."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from pathlib import Path

from ..errors import BrushworkError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def default_data_dir() -> Path:
    """Where the job history lives unless --data says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "brushwork" / "web"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app: upload pictures, watch them painted (needs brushwork[web])")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data", metavar="DIR",
                   help=f"folder for uploads, results and job history (default {default_data_dir()})")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise BrushworkError(
            f"the web app needs the web extra ({e.name} is missing): pip install 'brushwork[web]'"
        ) from None
    if not 1 <= args.port <= 65535:
        raise BrushworkError(f"--port must be between 1 and 65535, got {args.port}")
    try:  # a clear message now, rather than uvicorn's after startup
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        socket.create_server((args.host, args.port), family=family).close()
    except OSError as e:
        raise BrushworkError(f"cannot listen on {args.host} port {args.port}: {e.strerror or e}") from None
    data = Path(args.data) if args.data else default_data_dir()
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BrushworkError(f"cannot use {data} as the data folder: {e.strerror}") from None
    app = create_app(data)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"brushwork: serving on http://{host}:{args.port}/ (jobs in {data}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    if args.host not in LOOPBACK:
        print(f"brushwork: warning: listening on {args.host}: anyone who can reach it can use this server",
              file=sys.stderr, flush=True)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            """On Ctrl-C, stop the jobs first, so that open event streams end with the jobs'
            last state instead of holding the shutdown (in a thread: this is a signal handler)."""
            threading.Thread(target=app.state.queue.stop).start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)
    try:
        Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C once it has shut down cleanly
        pass
    print("brushwork: server stopped", file=sys.stderr)
    return 0
