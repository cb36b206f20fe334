"""The sliced Wasserstein loss against the Gram loss: cost per evaluation, and the tiled
evaluation against the whole image.

  cost   one whole-image evaluation (forward, losses, backward) of gram and of sliced, each
         on fp32 and bf16, at --size px: median of --repeats, interleaved so that both see
         the same load; and the share of sliced's evaluation spent ranking (sorting_order).
  tiles  at 768x512 (fp32), J and its gradient from objective.TiledObjective (cores of
         --core px) against objective.Objective: J's relative error, the gradient's cosine.

    PYTHONPATH=$PWD python benchmarks/sliced.py [--size 512] [--repeats 3]

Prints a table and writes benchmarks/results/sliced.json. The machine's load (uptime) is
recorded with every timing: on a shared CPU the ratio is what to read, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork import sliced, tiles
from brushwork.engine import Engine
from brushwork.losses import STYLE_LOSSES, ContentLoss
from brushwork.objective import Objective, TiledObjective

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# sliced as it ranks now (rows split among torch's threads) and as it did (numpy on one core)
KINDS = ("gram", "sliced", "sliced one-thread-sort")


def picture(path: Path, width: int, height: int) -> torch.Tensor:
    image = Image.open(path).convert("RGB").resize((width, height), Image.LANCZOS)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


def objective(engine: Engine, kind: str, width: int, height: int, dtype: torch.dtype, tiled: int | None = None):
    """The run's objective (content 1, style 5, TV 0.1) for chelsea x starry night at width x height."""
    layers = STYLE_LAYERS + CONTENT_LAYERS
    with torch.no_grad():
        content = engine.features(picture(SHARED / "content" / "chelsea.png", width, height), CONTENT_LAYERS, dtype)
        style = engine.features(picture(SHARED / "styles" / "starry_night.jpg", width, height), STYLE_LAYERS, dtype)
    loss = STYLE_LOSSES[kind]
    term = loss.build([{n: loss.statistics(f) for n, f in style.items()}], [1.0], dict.fromkeys(STYLE_LAYERS, 1.0), 0)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return engine.features(x, layers, dtype)

    content_loss = ContentLoss(content, dict.fromkeys(CONTENT_LAYERS, 1.0))
    if tiled is None:
        return Objective(features, content_loss, term, (1.0, 5.0, 0.1))
    grid = tiles.tiles(width, height, tiled, tiles.margin_for(layers))
    return TiledObjective(features, content_loss, term, (1.0, 5.0, 0.1), tiles=grid)


def start(width: int, height: int) -> torch.Tensor:
    return picture(SHARED / "content" / "chelsea.png", width, height).requires_grad_(True)


def cost(engine: Engine, size: int, repeats: int) -> list[dict]:
    """Seconds per evaluation of gram and sliced on each precision, and sliced's ranking share."""
    width, height = size, size * 3 // 4
    rows = []
    ranking: list[float] = []
    plain = sliced.sorting_order
    threaded = True

    def timed(values: torch.Tensor) -> torch.Tensor:
        begin = time.perf_counter()
        order = plain(values) if threaded else torch.from_numpy(np.argsort(values.numpy(), -1))
        ranking.append(time.perf_counter() - begin)
        return order

    sliced.sorting_order = timed
    for precision, dtype in DTYPES.items():
        objectives = {kind: objective(engine, kind.split()[0], width, height, dtype) for kind in KINDS}
        times: dict[str, list[float]] = {kind: [] for kind in objectives}
        x = start(width, height)
        for kind, evaluate in objectives.items():
            evaluate(x)  # warm-up: caches (the style's quantiles at this size), allocator
        ranking.clear()
        for _ in range(repeats):
            for kind, evaluate in objectives.items():
                threaded = kind == "sliced"
                begin = time.perf_counter()
                evaluate(x)
                times[kind].append(time.perf_counter() - begin)
        median = {kind: statistics.median(t) for kind, t in times.items()}
        rows.append({"precision": precision, "size": f"{width}x{height}", "gram_s": median["gram"],
                     "sliced_s": median["sliced"], "ratio": median["sliced"] / median["gram"],
                     "one_thread_sort_s": median["sliced one-thread-sort"],
                     "one_thread_ratio": median["sliced one-thread-sort"] / median["gram"],
                     "ranking_s": sum(ranking) / repeats / 2, "load": os.getloadavg()[0]})
    sliced.sorting_order = plain
    return rows


def tiled_accuracy(engine: Engine, core: int) -> dict:
    """J's relative error and the gradient's cosine, tiled against whole, at 768x512 in fp32."""
    x = start(768, 512)
    whole = objective(engine, "sliced", 768, 512, torch.float32)(x)[3]
    whole_grad = x.grad.clone()
    tiled_objective = objective(engine, "sliced", 768, 512, torch.float32, tiled=core)
    tiled = tiled_objective(x)[3]
    cosine = torch.nn.functional.cosine_similarity(x.grad.double().flatten(), whole_grad.double().flatten(), 0)
    return {"size": "768x512", "core": core, "tiles": len(tiled_objective.tiles), "whole_J": float(whole),
            "tiled_J": float(tiled), "J_relative_error": abs(float(tiled - whole)) / abs(float(whole)),
            "gradient_cosine": float(cosine), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--core", type=int, default=256)
    parser.add_argument("--skip-tiles", action="store_true", help="only the cost per evaluation")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "sliced.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = Engine(device="cpu")
    accuracy = tiled_accuracy(engine, args.core) if not args.skip_tiles else {}
    if accuracy:
        print(f"tiles {accuracy['size']} ({accuracy['tiles']} tiles of {args.core} px): J relative error "
              f"{accuracy['J_relative_error']:.2e}, gradient cosine {accuracy['gradient_cosine']:.6f}")
    rows = cost(engine, args.size, args.repeats)
    print(f"{'precision':9} {'size':9} {'gram s':>7} {'sliced s':>8} {'ratio':>6} {'1-thread s':>10} {'ratio':>6} "
          f"{'ranking s':>9} {'load':>5}")
    for r in rows:
        print(f"{r['precision']:9} {r['size']:9} {r['gram_s']:7.2f} {r['sliced_s']:8.2f} {r['ratio']:6.2f} "
              f"{r['one_thread_sort_s']:10.2f} {r['one_thread_ratio']:6.2f} {r['ranking_s']:9.2f} {r['load']:5.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.json.with_suffix(".tmp")
    temporary.write_text(json.dumps({"cpu": os.cpu_count(), "tiles": accuracy, "cost": rows}, indent=2))
    temporary.replace(args.json)


if __name__ == "__main__":
    main()
