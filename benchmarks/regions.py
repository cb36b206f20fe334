"""Masks and regions: the docs' two-region example and the cost of masks.

    python benchmarks/regions.py masks      # the example's masks, from the pictures (seconds)
    python benchmarks/regions.py overhead   # seconds per evaluation with and without masks (~8 min)
    python benchmarks/regions.py sheet OUT  # docs/images/regions-rocket.jpg from the example's output

`masks` writes to benchmarks/out/regions/: sky.png and ground.png for scikit-image's rocket
photo (the sky is where the rows are bluer than red, found from the picture, with a soft
band of FEATHER rows at the horizon where the two masks overlap), and starry-sky.png, the
sky of The Starry Night (its top SKY_OF_PAINTING, feathered likewise). No mask is drawn by
hand. `overhead` writes benchmarks/results/masks.json. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork import api, images, lbfgs, regions
from brushwork.engine import Painting
from brushwork.options import Options
from brushwork.run_description import RunDescription

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"
SKIMAGE = Path(str(importlib.resources.files("skimage") / "data"))
OUT = HERE / "out" / "regions"
PHOTO = SKIMAGE / "rocket.jpg"
SKY_STYLE = SHARED / "styles" / "starry_night.jpg"
GROUND_STYLE = SHARED / "styles" / "kandinsky_composition_vii.jpg"
FEATHER = 24  # rows over which sky turns into ground
SKY_OF_PAINTING = 0.6  # of The Starry Night's height, from the top: swirls and stars above the hills


def ramp(height: int, width: int, horizon: float) -> np.ndarray:
    """1 above row `horizon`, 0 below, falling linearly over FEATHER rows around it."""
    rows = np.clip((horizon + FEATHER / 2 - np.arange(height)) / FEATHER, 0, 1)
    return np.repeat(rows[:, None], width, axis=1).astype(np.float32)


def make_masks() -> None:
    photo = np.asarray(images.load_image(PHOTO), np.float32)
    blueness = (photo[..., 2] - photo[..., 0]).mean(axis=1)  # per row: the sky is blue, the ground is not
    horizon = int(np.argmax(blueness < 0))  # the first row, from the top, that is not bluer than red
    sky = ramp(*photo.shape[:2], horizon)
    painting = images.load_image(SKY_STYLE)
    starry_sky = ramp(painting.height, painting.width, SKY_OF_PAINTING * painting.height)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, mask in (("sky", sky), ("ground", 1 - sky), ("starry-sky", starry_sky)):
        Image.fromarray(np.round(mask * 255).astype(np.uint8)).save(OUT / f"{name}.png")
    print(f"horizon at row {horizon} of {photo.shape[0]}; wrote sky.png, ground.png, starry-sky.png to {OUT}")


CASES = {  # name: (styles, options beyond the size): each masked case next to its unmasked twin
    "one style": ([SKY_STYLE], {}),
    "one style, --mask": ([SKY_STYLE], {"mask": OUT / "sky.png"}),
    "two styles blended": ([SKY_STYLE, GROUND_STYLE], {}),
    "two styles, --style-masks": ([SKY_STYLE, GROUND_STYLE], {"style_masks": (OUT / "sky.png", OUT / "ground.png")}),
    "sliced, one style": ([SKY_STYLE], {"style_loss": "sliced"}),
    "sliced, --mask": ([SKY_STYLE], {"style_loss": "sliced", "mask": OUT / "sky.png"}),
}


def objectives(size: int, threads: int) -> dict:
    """Each case's full-size objective as the engine builds it (one scale), its image and optimizer."""
    torch.set_num_threads(threads)
    photo = images.load_image(PHOTO)
    engine = api.engine_for(Options(device="cpu"))
    built = {}
    for name, (styles, extra) in CASES.items():
        options = Options(size=size, scales=1, device="cpu", **extra)
        style_images = [images.load_image(s) for s in styles]
        plan = engine.plan(photo.size, options, [s.size for s in style_images])
        run = RunDescription.from_options(options, len(style_images))
        painting = Painting(engine, run, plan, photo, style_images, None, None,
                            regions.prepare(run, photo, style_images))
        objective = painting.objective_at(0, plan.scales[0])
        x = painting.x.clone().requires_grad_(True)
        built[name] = (objective, x, lbfgs.LBFGS(x, 1.0, plan.scales[0].history), plan)
    return built


def overhead(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    built = objectives(args.size, args.threads)
    # Wall-clock seconds, and this process's CPU seconds: on a machine shared with other work
    # the second is the steadier measure of the work itself (one thread: CPU time is its work).
    wall: dict[str, list[float]] = {name: [] for name in built}
    cpu: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.rounds + 1):  # the first round sets things up and is not counted
        for name, (objective, x, optimizer, _) in built.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            optimizer.step(lambda: objective(x)[3])  # noqa: B023
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    table = {name: {f"{key}_{stat.__name__}": round(stat(v[name][1:]), 3)
                    for key, v in (("wall", wall), ("cpu", cpu)) for stat in (min, statistics.median)}
             for name in built}
    pairs = (("one style, --mask", "one style"), ("two styles, --style-masks", "two styles blended"),
             ("sliced, --mask", "sliced, one style"))
    for masked, plain in pairs:
        for key in list(table[plain]):
            table[masked][f"{key}_vs_unmasked"] = round(table[masked][key] / table[plain][key], 3)
    plan = next(iter(built.values()))[3]
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {"size": [plan.width, plan.height], "rounds": args.rounds, "threads": args.threads,
                     "precision": "bf16" if plan.dtype.itemsize == 2 else "fp32"},
        "seconds_per_evaluation": table,
    }  # fmt: skip
    for name, row in table.items():
        print(f"{name:28} {row}")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "masks.json").write_text(json.dumps(record, indent=1))


def sheet(output: Path, target: Path, height: int = 200) -> None:
    """One row: the photo, its sky mask, the two paintings and the result."""
    pictures = [images.load_image(PHOTO), Image.open(OUT / "sky.png").convert("RGB"),
                images.load_image(SKY_STYLE), images.load_image(GROUND_STYLE), images.load_image(output)]
    row = [p.resize((round(p.width * height / p.height), height), Image.LANCZOS) for p in pictures]
    canvas = Image.new("RGB", (sum(p.width for p in row) + 8 * (len(row) - 1), height), (64, 64, 64))
    left = 0
    for picture in row:
        canvas.paste(picture, (left, 0))
        left += picture.width + 8
    canvas.save(target, quality=85)
    print(f"wrote {target} ({canvas.width}x{canvas.height}, {target.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("masks")
    timing = sub.add_parser("overhead")
    timing.add_argument("--size", type=int, default=384)
    timing.add_argument("--rounds", type=int, default=12)
    timing.add_argument("--threads", type=int, default=1)
    drawing = sub.add_parser("sheet")
    drawing.add_argument("output", type=Path, help="the example's stylized picture")
    drawing.add_argument("--to", type=Path, default=ROOT / "docs" / "images" / "regions-rocket.jpg")
    args = parser.parse_args()
    if args.command == "masks":
        make_masks()
    elif args.command == "overhead":
        overhead(args)
    else:
        sheet(args.output, args.to)


if __name__ == "__main__":
    main()
