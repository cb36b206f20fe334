"""`brushwork apply` locally and with --ray, in pictures per second.

    python benchmarks/cluster.py [--pictures 48] [--size 512] [--model starry-night]
                                 [--json benchmarks/results/cluster.json]

Three setups, each `brushwork apply FOLDER -m MODEL -o OUT -q` timed as a whole command (a
fresh process: Python, PyTorch and, with --ray, joining the cluster and starting its actors
all count):
  * local: no Ray; the default settings (on a CPU: onnxruntime, one network call per thread),
  * Ray, one node: a head with all the machine's cores (`ray start --head --num-cpus N`),
  * Ray, two nodes: a head and a second node joined to it, with half the cores each.
On one machine both Ray setups share the same cores as the local run, so they cannot be
faster: what they show is what Ray adds. Each setup runs twice, over --pictures and over
--few pictures, so that its time splits into a fixed cost (start-up) and a cost per picture:
per picture = (t_many - t_few) / (many - few), fixed = t_few - few × per picture. The
clusters are started on loopback by tests/cluster/local_ray.py and stopped at the end; starting them
is not timed.

The JSON records the machine (CPU, cores, versions) and the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cluster"))
from conftest import sample  # noqa: E402
from local_ray import DRIVER_ENV, local_cluster  # noqa: E402

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "hubble_deep_field.jpg")


def write_pictures(folder: Path, count: int, size: int) -> None:
    """`count` PNGs of size², the photos and the same mirrored, so that few are alike."""
    folder.mkdir()
    for i in range(count):
        picture = sample(PHOTOS[i % len(PHOTOS)], 1024).resize((size, size), Image.BICUBIC)
        if (i // len(PHOTOS)) % 2:
            picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
        picture.save(folder / f"in{i:03d}.png")


def timed_apply(folder: Path, model: str, out: Path, ray: str | None) -> float:
    """Seconds for the whole command."""
    command = [sys.executable, "-m", "brushwork.cli", "apply", str(folder), "-m", model, "-o", str(out), "-q"]
    started = time.perf_counter()
    env = {key: value for key, value in DRIVER_ENV.items() if key != "OMP_NUM_THREADS"}  # apply's own thread settings
    done = subprocess.run(command + (["--ray", ray] if ray else []), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"apply failed:\n{done.stderr[-3000:]}")
    return seconds


def measure(name: str, folders: dict[int, Path], model: str, work: Path, ray: str | None) -> dict:
    times = {count: timed_apply(folder, model, work / f"{name}-{count}", ray) for count, folder in folders.items()}
    (few, t_few), (many, t_many) = sorted(times.items())
    per_picture = (t_many - t_few) / (many - few)
    return {
        "seconds": {str(k): round(v, 2) for k, v in times.items()},
        "pictures_per_second": round(many / t_many, 2),
        "seconds_per_picture": round(per_picture, 3),
        "fixed_seconds": round(t_few - few * per_picture, 2),
    }


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "ray": version("ray"),
            "torch": version("torch"), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=48)
    parser.add_argument("--few", type=int, default=4, help="the smaller run, for the fixed cost")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", default="starry-night")
    parser.add_argument("--json", default="benchmarks/results/cluster.json")
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    result = {"machine": machine(), "pictures": args.pictures, "few": args.few, "size": args.size, "model": args.model,
              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as temp:
        work = Path(temp)
        folders = {count: work / f"in-{count}" for count in (args.few, args.pictures)}
        for count, folder in folders.items():
            write_pictures(folder, count, args.size)
        setups = {"local": measure("local", folders, args.model, work, None)}
        with local_cluster([cores]) as (address, _):
            setups["ray, 1 node"] = measure("one", folders, args.model, work, address)
        with local_cluster([cores // 2, cores - cores // 2]) as (address, _):
            setups["ray, 2 nodes"] = measure("two", folders, args.model, work, address)
    result["setups"] = setups
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    local = result["setups"]["local"]
    print(f"{result['pictures']} PNGs of {result['size']}², model {result['model']}, {result['machine']['cpu']}, "
          f"{result['machine']['cores']} cores; load average before {result['load_average_before']}, after {result['load_average_after']}")
    print(f"{'setup':<14} {'pictures/s':>10} {'s/picture':>10} {'fixed s':>8} {'whole run s':>12} {'vs local':>9}")
    for name, row in result["setups"].items():
        whole = row["seconds"][str(result["pictures"])]
        ratio = whole / local["seconds"][str(result["pictures"])]
        print(f"{name:<14} {row['pictures_per_second']:>10.2f} {row['seconds_per_picture']:>10.3f} "
              f"{row['fixed_seconds']:>8.2f} {whole:>12.2f} {ratio:>8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
