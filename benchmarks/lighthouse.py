"""The web studio under Lighthouse (npm `lighthouse`, against Debian's Chromium): accessibility,
best practices and SEO scores of the page, as a desktop and as a phone. Prints a table, writes
benchmarks/results/lighthouse.json (the scores and every audit that did not pass). Not a test.

    npm install --prefix ~/.cache/brushwork-npm lighthouse      # once
    python benchmarks/lighthouse.py                              # both form factors
    python benchmarks/lighthouse.py --runs 3                     # the lowest of three runs each

The page is served by `brushwork serve`'s app (a fresh data folder, so Lighthouse sees the
page a new user meets) under uvicorn on a free loopback port. Performance is left out: on a
shared 2-core machine it measures the neighbours more than the page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from brushwork.web.app import create_app

HERE = Path(__file__).resolve().parent
CATEGORIES = ("accessibility", "best-practices", "seo")
CHROME = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
FLAGS = "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage"


def lighthouse_bin() -> Path:
    """npm's lighthouse: $LIGHTHOUSE, the repository's node_modules, or ~/.cache/brushwork-npm."""
    candidates = [os.environ.get("LIGHTHOUSE", ""), HERE.parent / "node_modules" / ".bin" / "lighthouse",
                  Path.home() / ".cache" / "brushwork-npm" / "node_modules" / ".bin" / "lighthouse"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("lighthouse is not installed: npm install --prefix ~/.cache/brushwork-npm lighthouse")


def serve(data: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(data), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/", server, thread


def audit(url: str, form: str, out: Path) -> dict:
    """One Lighthouse run: the category scores (0-100) and the audits that did not pass."""
    command = [str(lighthouse_bin()), url, f"--only-categories={','.join(CATEGORIES)}", "--output=json",
               f"--output-path={out}", f"--chrome-flags={FLAGS}", "--quiet"]
    if form == "desktop":
        command.append("--preset=desktop")
    subprocess.run(command, check=True, env={**os.environ, "CHROME_PATH": CHROME}, timeout=600)
    report = json.loads(out.read_text())
    scores = {name: round(100 * report["categories"][name]["score"]) for name in CATEGORIES}
    failed = sorted(key for key, a in report["audits"].items()
                    if a.get("score") is not None and a["score"] < 1 and a.get("scoreDisplayMode") == "binary")
    return {"scores": scores, "failed": failed, "lighthouse": report["lighthouseVersion"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per form factor; the lowest score is kept")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "lighthouse.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        url, server, thread = serve(Path(folder) / "data")
        try:
            for form in ("desktop", "mobile"):
                runs = [audit(url, form, Path(folder) / f"{form}-{i}.json") for i in range(args.runs)]
                scores = {name: min(run["scores"][name] for run in runs) for name in CATEGORIES}
                results[form] = {"scores": scores, "failed": sorted({a for run in runs for a in run["failed"]}),
                                 "lighthouse": runs[0]["lighthouse"]}
        finally:
            server.should_exit = True
            thread.join(30)
    print(f"{'form':<8} " + " ".join(f"{name:>15}" for name in CATEGORIES) + "  audits not passed")
    for form, result in results.items():
        print(f"{form:<8} " + " ".join(f"{result['scores'][name]:>15}" for name in CATEGORIES)
              + f"  {', '.join(result['failed']) or '-'}")
    chrome = subprocess.run([CHROME, "--version"], capture_output=True, text=True).stdout.strip()
    record = {"results": results, "chrome": chrome, "runs": args.runs, "machine": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "load": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
