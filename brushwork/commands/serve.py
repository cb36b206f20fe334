"""The `brushwork serve` subcommand. FastAPI and uvicorn are imported only when it runs, so
the rest of the CLI works without the `web` extra."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
import threading
from pathlib import Path

from ..devices import pick_device
from ..errors import BrushworkError
from ..options import PRECISIONS

GENERATE = "generate"  # what a bare --token stands for
MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect to a server listening on `host`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    p.add_argument("--token", nargs="?", const=GENERATE, metavar="TOKEN",
                   help=f"require this access token (at least {MIN_TOKEN} characters) on every request; a bare "
                        "--token makes one up; needed when --host is not loopback, and printed at start")
    p.add_argument("--no-token", action="store_true",
                   help="listen beyond loopback without a token: anyone who can reach the server can use it")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name the server is reached by (a DNS name, a proxy's); repeat for more")
    p.add_argument("--device", default="auto", help="device the jobs and fast mode run on: auto, cpu, cuda or mps")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto (bf16 where fast), fp32 or bf16")
    p.add_argument("--models", metavar="DIR", help="folder of trained fast-mode models (.safetensors) to offer "
                                                   "besides the shipped ones")
    p.set_defaults(func=cmd_serve)


def access_token(args: argparse.Namespace) -> str | None:
    """The token every request must carry, if any. Beyond loopback the user must choose: a
    token, or explicitly none."""
    if args.token is not None and args.no_token:
        raise BrushworkError("--token and --no-token contradict each other; pick one")
    if args.token == GENERATE:
        return secrets.token_urlsafe(18)
    if args.token is not None:
        if len(args.token) < MIN_TOKEN:
            raise BrushworkError(f"--token must be at least {MIN_TOKEN} characters (a bare --token makes one up)")
        return args.token
    if not args.no_token and not is_loopback(args.host):
        raise BrushworkError(f"listening on {args.host} lets other machines in: pass --token (one is made up and "
                             "printed) or --token TOKEN, or --no-token to let anyone who can reach it use the server")
    return None


def check_args(args: argparse.Namespace) -> Path:
    """Everything the command line can get wrong, before the server starts; the data folder."""
    if not 1 <= args.port <= 65535:
        raise BrushworkError(f"--port must be between 1 and 65535, got {args.port}")
    pick_device(args.device)  # a device that is not there fails now, not at the first job
    if args.models and not Path(args.models).is_dir():
        raise BrushworkError(f"--models {args.models}: not a folder")
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
    return data


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web.app import create_app
        from ..web.guard import policy_for
    except ImportError as e:
        raise BrushworkError(
            f"the web app needs the web extra ({e.name} is missing): pip install 'brushwork[web]'"
        ) from None
    token = access_token(args)
    data = check_args(args)
    app = create_app(data, policy=policy_for(args.host, tuple(args.allow_host), token), device=args.device,
                     precision=args.precision, models_dir=args.models)
    host = f"[{args.host}]" if ":" in args.host else args.host
    login = f"?token={token}" if token else ""
    print(f"brushwork: serving on http://{host}:{args.port}/{login} (jobs in {data}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    if not is_loopback(args.host) and token is None:
        print(f"brushwork: warning: listening on {args.host} without a token: anyone who can reach it can use "
              "this server", file=sys.stderr, flush=True)

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
