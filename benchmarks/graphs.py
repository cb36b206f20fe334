"""What the engine's GPU path gains from CUDA graphs, and where a process's start-up goes.

    python benchmarks/graphs.py [--size 512] [--steps 300] [--device cuda]

* start-up: wall seconds of fresh processes that (a) import torch, (b) import brushwork's CLI,
  (c) also initialise the device, (d) also load the VGG19 engine; each includes the ones before.
* optimization: `Engine.run` in this process on chelsea × The Starry Night at --size with the
  default options (3 scales, bf16 where supported), CUDA graphs off and on, each after one
  untimed warm-up run; seconds per evaluation at the finest scale from the step records
  (on a GPU the engine reads the losses every 10 steps and spreads the time between two
  reads evenly over those steps), and the result's score.
Prints a table, writes JSON. Not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from brushwork import images
from brushwork.commands.demo import demo_images
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.score import score

HERE = Path(__file__).resolve().parent
STARTUP = {
    "import torch": "import torch",
    "import brushwork.cli": "import brushwork.cli",
    "+ device ready": "import brushwork.cli, torch; torch.zeros(1, device='{device}').sum().item()",
    "+ engine loaded": "import brushwork.cli; from brushwork.engine import Engine; Engine(device='{device}')",
}


def startup_seconds(device: str) -> dict[str, float]:
    seconds = {}
    for name, code in STARTUP.items():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code.format(device=device)], check=True)
        seconds[name] = round(time.perf_counter() - started, 3)
    return seconds


def finest_scale_seconds_per_eval(result) -> float:
    last_scale = result.records[-1].scale
    finest = [r for r in result.records if r.scale == last_scale]
    return (finest[-1].seconds - finest[0].seconds) / (len(finest) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--styles", type=Path, default=HERE.parent.parent / "shared" / "images" / "styles")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "graphs.json")
    args = parser.parse_args()

    report: dict[str, object] = {"device": torch.cuda.get_device_name() if args.device == "cuda" else args.device}
    report["startup_seconds"] = startup_seconds(args.device)
    print("start-up: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["startup_seconds"].items()), flush=True)

    content = images.load_image(demo_images()[0].parent / "chelsea.png")
    style = images.load_image(args.styles / "starry_night.jpg")
    engine = Engine(device=args.device)
    options = Options(size=args.size, steps=args.steps, device=args.device)
    runs = {}
    for graphs in (False, True):
        engine.cuda_graphs = graphs
        engine.run(content, [style], options)  # warm-up: cuDNN's choices, the allocator, the Gram cache
        started = time.perf_counter()
        result = engine.run(content, [style], options)
        seconds = time.perf_counter() - started
        quality = score(result.image, content, style, engine)
        runs["graphs" if graphs else "eager"] = run = {
            "run_seconds": round(seconds, 3),
            "finest_scale_seconds_per_eval": round(finest_scale_seconds_per_eval(result), 5),
            "content": round(quality.content, 4), "style": round(quality.style, 4), "J": round(quality.objective, 4),
        }  # fmt: skip
        print(f"{'graphs' if graphs else 'eager':6s} {run}", flush=True)
    report["runs"] = runs
    report["size"], report["steps"] = args.size, args.steps

    print(f"\n{'mode':8s} {'run s':>8s} {'s/eval (finest)':>16s} {'content':>8s} {'style':>8s} {'J':>8s}")
    for name, run in runs.items():
        print(f"{name:8s} {run['run_seconds']:8.2f} {run['finest_scale_seconds_per_eval']:16.4f} "
              f"{run['content']:8.4f} {run['style']:8.4f} {run['J']:8.4f}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
