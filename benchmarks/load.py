"""A bounded load test of `brushwork serve` on loopback, while the engine is busy.

    python benchmarks/load.py [--clients 50] [--seconds 60] [--json benchmarks/results/load.json]

Starts the server (a separate process on 127.0.0.1, data in a temp folder), queues one long
job so the engine works the whole time, then runs the clients for a fixed time, all in one
asyncio process (httpx2):

  * 40 % poll the busy job's state twice a second (and the job list now and then),
  * 30 % fetch its live preview twice a second,
  * 20 % follow its event stream (reconnecting when it ends),
  * 10 % queue a small job every 4 s and cancel every third one they queued.

Then it cancels the busy job, lets the small ones drain and checks that every accepted job
ended done, cancelled, or failed with a reason. It samples the server's resident memory
every second. Prints a table; writes the numbers as JSON. Stops by itself: the clients stop
at --seconds, the drain waits at most --drain seconds, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
from PIL import Image

FINISHED = ("done", "cancelled", "failed", "interrupted")
BUSY = {"size": "128", "steps": "5000"}
SMALL = {"size": "32", "steps": "2"}


@dataclass
class Tally:
    """Every request's latency by kind, the failures, and the jobs the server accepted."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    errors: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    events: int = 0

    def note(self, kind: str, started: float, status: int) -> None:
        self.latencies[kind].append(time.perf_counter() - started)
        self.statuses[kind][status] += 1


def picture(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 40 + seed % 40).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def files(seed: int) -> list:
    return [("content", ("photo.png", picture(seed), "image/png")),
            ("styles", ("style.png", picture(seed + 1), "image/png"))]


async def timed(client: httpx.AsyncClient, tally: Tally, kind: str, method: str, url: str, **kw) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kw)
    except httpx.HTTPError as e:
        tally.errors.append(f"{kind}: {type(e).__name__}: {e}")
        return None
    tally.note(kind, started, response.status_code)
    return response


async def poller(client: httpx.AsyncClient, tally: Tally, busy: str, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        await timed(client, tally, "state", "GET", f"/api/jobs/{busy}")
        n += 1
        if n % 10 == 0:
            await timed(client, tally, "list", "GET", "/api/jobs")
        await asyncio.sleep(0.5)


async def previewer(client: httpx.AsyncClient, tally: Tally, busy: str, until: float) -> None:
    while time.monotonic() < until:
        await timed(client, tally, "preview", "GET", f"/api/jobs/{busy}/preview")
        await asyncio.sleep(0.5)


async def follower(client: httpx.AsyncClient, tally: Tally, busy: str, until: float) -> None:
    """Follows the event stream; its latency is the time to the first event."""
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            async with client.stream("GET", f"/api/jobs/{busy}/events", timeout=None) as response:
                first = True
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        tally.events += 1
                        if first:
                            tally.note("events (first)", started, response.status_code)
                            first = False
                    if time.monotonic() >= until:
                        break
        except httpx.HTTPError as e:
            tally.errors.append(f"events: {type(e).__name__}: {e}")
            await asyncio.sleep(0.5)


async def submitter(client: httpx.AsyncClient, tally: Tally, seed: int, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        response = await timed(client, tally, "submit", "POST", "/api/jobs", files=files(seed + n), data=SMALL)
        if response is not None and response.status_code == 201:
            job = response.json()["id"]
            tally.accepted.append(job)
            n += 1
            if n % 3 == 0:
                await timed(client, tally, "cancel", "POST", f"/api/jobs/{job}/cancel")
        await asyncio.sleep(4)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def sample_memory(pid: int, until: float, samples: list[float]) -> None:
    while time.monotonic() < until:
        samples.append(rss_mib(pid))
        await asyncio.sleep(1)


async def drain(client: httpx.AsyncClient, tally: Tally, busy: str, seconds: float) -> dict[str, int]:
    """Cancel the busy job, wait for the small ones, and count how every accepted job ended."""
    await client.post(f"/api/jobs/{busy}/cancel")
    deadline = time.monotonic() + seconds
    while True:
        jobs = {job["id"]: job for job in (await client.get("/api/jobs")).json()["jobs"]}
        ends: dict[str, int] = defaultdict(int)
        for job_id in tally.accepted + [busy]:
            job = jobs.get(job_id)
            status = "lost" if job is None else job["status"]
            if status == "failed" and not job["error"]:
                status = "failed without a reason"
            ends[status] += 1
        if not any(status in ("queued", "running") for status in ends) or time.monotonic() > deadline:
            return dict(ends)
        await asyncio.sleep(1)


async def load(url: str, pid: int, args: argparse.Namespace) -> dict:
    tally, memory = Tally(), []
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        busy = (await client.post("/api/jobs", files=files(0), data=BUSY)).json()["id"]
        while (await client.get(f"/api/jobs/{busy}")).json()["step"] < 1:
            await asyncio.sleep(0.5)
        until = time.monotonic() + args.seconds
        roles = [poller] * 4 + [previewer] * 3 + [follower] * 2 + [submitter]
        tasks = [sample_memory(pid, until, memory)]
        for i in range(args.clients):
            role = roles[i % len(roles)]
            tasks.append(role(client, tally, 1000 * i, until) if role is submitter else role(client, tally, busy, until))
        await asyncio.gather(*tasks)
        ends = await drain(client, tally, busy, args.drain)
    return report(tally, memory, ends, args)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(tally: Tally, memory: list[float], ends: dict[str, int], args: argparse.Namespace) -> dict:
    kinds = {}
    for kind, values in sorted(tally.latencies.items()):
        kinds[kind] = {"requests": len(values), "p50_ms": round(1000 * percentile(values, 50), 1),
                       "p95_ms": round(1000 * percentile(values, 95), 1),
                       "p99_ms": round(1000 * percentile(values, 99), 1), "max_ms": round(1000 * max(values), 1),
                       "statuses": dict(tally.statuses[kind])}
    five_xx = sum(n for statuses in tally.statuses.values() for code, n in statuses.items() if code >= 500)
    settled = memory[len(memory) // 6:] or memory  # after the first sixth: the server has warmed up
    return {"clients": args.clients, "seconds": args.seconds, "requests": kinds, "5xx": five_xx,
            "client_errors": tally.errors[:20], "n_client_errors": len(tally.errors), "events_received": tally.events,
            "accepted_jobs": len(tally.accepted) + 1, "job_ends": ends,
            "rss_mib": {"start": round(settled[0], 1), "max": round(max(memory), 1), "end": round(memory[-1], 1)},
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_average_before": args.load_before, "load_average_after": os.getloadavg()}}


def print_table(result: dict) -> None:
    print(f"\n{result['clients']} clients for {result['seconds']} s on loopback, the engine busy with a "
          f"{BUSY['size']} px job\n")
    print("| request | count | p50 ms | p95 ms | p99 ms | max ms | statuses |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind, row in result["requests"].items():
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(row["statuses"].items()))
        print(f"| {kind} | {row['requests']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
              f"{row['max_ms']} | {statuses} |")
    rss = result["rss_mib"]
    print(f"\n5xx: {result['5xx']}; client errors: {result['n_client_errors']}; events received: "
          f"{result['events_received']}; accepted jobs: {result['accepted_jobs']}, ended: {result['job_ends']}; "
          f"server memory {rss['start']} -> {rss['end']} MiB (max {rss['max']})")


def start_server(data: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "brushwork.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port), "--data", str(data), "--device", "cpu"],
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/config", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit(f"the server did not come up: {server.stderr.read()}")
        time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--drain", type=float, default=300, help="most seconds to wait for the queued jobs after")
    parser.add_argument("--port", type=int, default=random.randint(20000, 40000))
    parser.add_argument("--json", default="benchmarks/results/load.json")
    args = parser.parse_args()
    args.load_before = os.getloadavg()  # other work on the machine, before this adds its own
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), args.port)
        try:
            result = asyncio.run(load(f"http://127.0.0.1:{args.port}", server.pid, args))
        finally:
            server.terminate()
            server.wait(60)
    print_table(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    bad = result["5xx"] or set(result["job_ends"]) - {"done", "cancelled", "failed"}
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
