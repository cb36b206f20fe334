"""apply --style at 1024 px, file to file, after start-up: seconds per image on this CPU.

Four photos (the shared content pictures, stretched to 1024 px on the longest side) are written
as PNG and JPEG; each setting runs fast mode's pipeline (reader thread, network, writer thread,
stylize_files as `apply` calls it) over them --rounds times, the Stylizer made beforehand, so
loading the networks and reading the style are left out (they are reported apart as start-up).
CPU seconds per image (all the process's threads) are recorded beside the wall time: on a
machine shared with other work they say what the image costs, and on an idle 2-core CPU the
wall time per image can be no less than half of them.
Settings: the float graph (the default) or the shipped int8 one, and the pipeline's --workers
(2: one picture per core, 1 thread each; 1: both threads on one picture).

    python benchmarks/arbitrary.py --rounds 3     # ~4 min on the shared 2-core CPU at load 12-15

Prints a table and writes benchmarks/results/arbitrary.json. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from brushwork import images
from brushwork.fast.arbitrary import load_styles
from brushwork.fast.backend import Settings, Stylizer
from brushwork.fast.pipeline import stylize_files

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
CONTENT = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
STYLE = SHARED / "styles" / "starry_night.jpg"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=str(HERE / "results" / "arbitrary.json"))
    p.add_argument("--work", default=str(HERE / "out" / "arbitrary"))
    return p.parse_args()


def make_inputs(folder: Path, size: int) -> dict[str, list[Path]]:
    """The photos at `size` px, as PNG and as JPEG (quality 90)."""
    found: dict[str, list[Path]] = {"png": [], "jpg": []}
    for name in CONTENT:
        picture = images.load_image(SHARED / "content" / name)
        picture = picture.resize(images.fit_size(picture.width, picture.height, size), Image.LANCZOS)
        for kind, paths in found.items():
            path = folder / f"{Path(name).stem}.{kind}"
            picture.save(path, quality=90) if kind == "jpg" else picture.save(path)
            paths.append(path)
    return found


def time_setting(style, workers: int, files: list[Path], out: Path, rounds: int) -> dict:
    started = time.perf_counter()
    stylizer = Stylizer(style, Settings(workers=workers))
    start_up = time.perf_counter() - started
    per_image, cpu = [], []
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        stylize_files(stylizer, [(f, out / f.name) for f in files], lambda text: None)
        per_image.append((time.perf_counter() - started) / len(files))
        cpu.append((time.process_time() - cpu_started) / len(files))
    return {"start_up_s": start_up, "per_image_s": per_image, "best_s": min(per_image), "median_s": statistics.median(per_image),
            "cpu_s": cpu, "best_cpu_s": min(cpu)}  # fmt: skip


def main() -> None:
    args = parse_args()
    work = Path(args.work)
    (work / "out").mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(work, args.size)
    started = time.perf_counter()
    style = load_styles([STYLE])
    style_s = time.perf_counter() - started
    rows = []
    print(f"style vector: {style_s:.2f} s (predictor loaded and run once); load {os.getloadavg()[0]:.1f}")
    print(f"{'graph':<6} {'files':<5} {'workers':>7} {'start-up s':>10} {'best s/img':>10} {'median':>7} {'CPU s/img':>9}  load")
    for float_graph in (True, False):
        for kind in ("png", "jpg"):
            for workers in (2, 1):
                if kind == "jpg" and not float_graph:
                    continue
                model = dataclasses.replace(style, float_graph=float_graph)
                row = {"graph": "float" if float_graph else "int8", "files": kind, "workers": workers,
                       **time_setting(model, workers, inputs[kind], work / "out", args.rounds), "load": os.getloadavg()[0]}  # fmt: skip
                rows.append(row)
                print(f"{row['graph']:<6} {kind:<5} {workers:>7} {row['start_up_s']:>10.2f} {row['best_s']:>10.2f} {row['median_s']:>7.2f} {row['best_cpu_s']:>9.2f}  {row['load']:.1f}")
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    result = {"size": args.size, "style_vector_s": style_s, "machine": machine, "rows": rows}
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
