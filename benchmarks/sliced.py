"""The sliced Wasserstein loss: its cost against the Gram loss, its histogram ranks against a
full sort, and the tiled evaluation against the whole image.

  cost      one whole-image evaluation (forward, losses, backward) of gram, of sliced (ranks
            from histograms) and of "sorted" (the same loss ranked by numpy's argsort, as it
            was before), each on fp32 and bf16 at --size px: medians of --repeats rounds,
            interleaved so that all three see the same load.
  accuracy  sliced against sorted, in fp32 and bf16: the style term's relative error and its
            gradient's cosine (in the image), and the same for the whole objective J, at the
            content photo and after --steps L-BFGS steps (of the sorted objective, fp32).
  tiles     at 768x512 (fp32), J and its gradient from objective.TiledObjective (cores of
            --core px; binned moments, sliced_tiles) against objective.Objective, at the
            first evaluation and the second; and one tiled evaluation's time, gram and sliced.
  runs      (--runs) end to end, two pairs at 512 px, the engine's default 300 steps, sliced
            against sorted: final J, content distance, and benchmarks/losses.py's colour and
            feature measures; the pictures go to benchmarks/out/sliced/.

    PYTHONPATH=$PWD python benchmarks/sliced.py [--size 512] [--repeats 5] [--skip-tiles] [--runs]

Prints tables and updates benchmarks/results/sliced.json (each section its key). The load
(uptime) is recorded with every timing: on a shared CPU the ratio is what to read.
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
from torch import nn

from brushwork import sliced, tiles
from brushwork.engine import Engine
from brushwork.lbfgs import LBFGS
from brushwork.losses import STYLE_LOSSES, ContentLoss
from brushwork.objective import Objective, TiledObjective
from brushwork.options import Options

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
WEIGHTS = (1.0, 5.0, 0.1)  # content, style, TV: the engine's defaults


class SortedSliced(sliced.SlicedWassersteinLoss):
    """The sliced loss as it was before histogram ranks: every direction's values sorted
    (sliced.sorting_order: numpy's argsort over torch's threads), the style's quantiles
    scattered to their places, autograd's product and squared error. The reference for cost
    and error."""

    def _error(self, name: str, features: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        assert weights is None, "the reference is for whole images without masks"
        projected = self.directions[name] @ features.float().flatten(2)
        order = sliced.sorting_order(projected.detach())
        quantiles, energy = self.targets[name].at(projected.shape[-1])
        target = torch.empty_like(projected).scatter_(-1, order, quantiles.expand_as(projected))
        return nn.functional.mse_loss(projected, target, reduction="sum") / (energy * len(projected))


KINDS = {"gram": STYLE_LOSSES["gram"], "sliced": STYLE_LOSSES["sliced"], "sorted": SortedSliced}


def picture(path: Path, width: int, height: int) -> torch.Tensor:
    image = Image.open(path).convert("RGB").resize((width, height), Image.LANCZOS)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


def objective(engine: Engine, kind: str, width: int, height: int, dtype: torch.dtype, tiled: int | None = None,
              weights: tuple[float, float, float] = WEIGHTS):
    """The run's objective for chelsea x starry night at width x height; `kind` a key of KINDS."""
    layers = STYLE_LAYERS + CONTENT_LAYERS
    with torch.no_grad():
        content = engine.features(picture(SHARED / "content" / "chelsea.png", width, height), CONTENT_LAYERS, dtype)
        style = engine.features(picture(SHARED / "styles" / "starry_night.jpg", width, height), STYLE_LAYERS, dtype)
    loss = KINDS[kind]
    term = loss.build([{n: loss.statistics(f) for n, f in style.items()}], [1.0], dict.fromkeys(STYLE_LAYERS, 1.0), 0)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return engine.features(x, layers, dtype)

    content_loss = ContentLoss(content, dict.fromkeys(CONTENT_LAYERS, 1.0))
    if tiled is None:
        return Objective(features, content_loss, term, weights)
    grid = tiles.tiles(width, height, tiled, tiles.margin_for(layers))
    return TiledObjective(features, content_loss, term, weights, tiles=grid)


def start(width: int, height: int) -> torch.Tensor:
    return picture(SHARED / "content" / "chelsea.png", width, height).requires_grad_(True)


def cost(engine: Engine, size: int, repeats: int) -> list[dict]:
    """Median seconds per evaluation of each kind on each precision, interleaved round by round."""
    width, height = size, size * 3 // 4
    rows = []
    for precision, dtype in DTYPES.items():
        objectives = {kind: objective(engine, kind, width, height, dtype) for kind in KINDS}
        times: dict[str, list[float]] = {kind: [] for kind in objectives}
        x = start(width, height)
        for evaluate in objectives.values():
            evaluate(x)  # warm-up: caches (the style's quantiles at this size), allocator
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            for kind, evaluate in objectives.items():
                begin = time.perf_counter()
                evaluate(x)
                times[kind].append(time.perf_counter() - begin)
            loads.append(os.getloadavg()[0])
        median = {kind: statistics.median(t) for kind, t in times.items()}
        rows.append({"precision": precision, "size": f"{width}x{height}", "threads": torch.get_num_threads(),
                     "gram_s": median["gram"], "sliced_s": median["sliced"], "sorted_s": median["sorted"],
                     "ratio": median["sliced"] / median["gram"], "sorted_ratio": median["sorted"] / median["gram"],
                     "load": statistics.median(loads)})
    return rows


def stepped(engine: Engine, width: int, height: int, steps: int) -> torch.Tensor:
    """The content photo after `steps` L-BFGS steps of the sorted objective (fp32)."""
    evaluate = objective(engine, "sorted", width, height, torch.float32)
    x = start(width, height)
    optimizer = LBFGS(x)
    for _ in range(steps):
        optimizer.step(lambda: evaluate(x)[3])
    return x.detach()


def against_sorted(engine: Engine, x: torch.Tensor, dtype: torch.dtype, weights: tuple) -> dict:
    """J (the last term) and its gradient of sliced against sorted at the image x."""
    height, width = x.shape[-2:]
    values, gradients = {}, {}
    for kind in ("sorted", "sliced"):
        image = x.clone().requires_grad_(True)
        values[kind] = float(objective(engine, kind, width, height, dtype, weights=weights)(image)[3])
        gradients[kind] = image.grad.double().flatten()
    return {"J_sorted": values["sorted"], "J_sliced": values["sliced"],
            "J_relative_error": abs(values["sliced"] - values["sorted"]) / abs(values["sorted"]),
            "gradient_cosine": float(nn.functional.cosine_similarity(gradients["sliced"], gradients["sorted"], 0))}


def accuracy(engine: Engine, size: int, steps: int, saved: Path) -> list[dict]:
    """Histogram ranks against the sort: the style term alone and the whole objective, at the
    content photo and after `steps` steps (kept in `saved`, torch.save, for the next time), on
    both precisions."""
    width, height = size, size * 3 // 4
    if not saved.exists():
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save(stepped(engine, width, height, steps), saved)
    images = {"content photo": start(width, height).detach(), f"after {steps} L-BFGS steps": torch.load(saved)}
    rows = []
    for where, x in images.items():
        for precision, dtype in DTYPES.items():
            for term, weights in (("style term", (0.0, 1.0, 0.0)), ("J", WEIGHTS)):
                rows.append({"image": where, "precision": precision, "size": f"{width}x{height}", "term": term,
                             **against_sorted(engine, x, dtype, weights), "load": os.getloadavg()[0]})
    return rows


def tiled_accuracy(engine: Engine, core: int) -> list[dict]:
    """J's relative error and the gradient's cosine, tiled (binned moments, sliced_tiles) against
    whole, at 768x512 in fp32: the first evaluation (bins over the style's range) and the
    second (over the range the values took)."""
    x = start(768, 512)
    whole = objective(engine, "sliced", 768, 512, torch.float32)(x)[3]
    whole_grad = x.grad.clone()
    tiled_objective = objective(engine, "sliced", 768, 512, torch.float32, tiled=core)
    rows = []
    for evaluation in (1, 2):
        tiled = tiled_objective(x)[3]
        cosine = torch.nn.functional.cosine_similarity(x.grad.double().flatten(), whole_grad.double().flatten(), 0)
        rows.append({"size": "768x512", "core": core, "tiles": len(tiled_objective.tiles), "evaluation": evaluation,
                     "whole_J": float(whole), "tiled_J": float(tiled),
                     "J_relative_error": abs(float(tiled - whole)) / abs(float(whole)),
                     "gradient_cosine": float(cosine), "load": os.getloadavg()[0]})
    gram = objective(engine, "gram", 768, 512, torch.float32, tiled=core)
    times: dict[str, list[float]] = {"gram": [], "sliced": []}
    for _ in range(3):  # interleaved, the same load for both
        for kind, evaluate in (("gram", gram), ("sliced", tiled_objective)):
            begin = time.perf_counter()
            evaluate(x)
            times[kind].append(time.perf_counter() - begin)
    for row in rows:
        row.update(gram_tiled_s=statistics.median(times["gram"]), sliced_tiled_s=statistics.median(times["sliced"]))
    return rows


RUN_PAIRS = (("astronaut", "starry_night.jpg"), ("chelsea", "kandinsky_composition_vii.jpg"))


def runs(engine: Engine, size: int, pairs: tuple, out: Path) -> list[dict]:
    """End to end at `size` px, the default schedule, sliced against sorted: benchmarks/losses.py's
    measures of each output; the pictures saved to `out`."""
    from losses import SKIMAGE, run_one  # the benchmark beside this one

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for content_name, style_name in pairs:
        content = Image.open(SKIMAGE / f"{content_name}.png").convert("RGB")
        style = Image.open(SHARED / "styles" / style_name).convert("RGB")
        for kind in ("sorted", "sliced"):
            STYLE_LOSSES["sliced"] = KINDS[kind]
            try:
                measured = run_one(engine, content, style, Options(size=size, style_loss="sliced"))
            finally:
                STYLE_LOSSES["sliced"] = KINDS["sliced"]
            name = f"{content_name}-{Path(style_name).stem}-{kind}.png"
            measured.pop("image").save(out / name)
            rows.append({"pair": f"{content_name} / {Path(style_name).stem}", "size": size, "kind": kind, "image": name,
                         **measured, "load": os.getloadavg()[0]})
            print(rows[-1], flush=True)
    return rows


def print_tables(results: dict) -> None:
    for t in results.get("tiles", []) if isinstance(results.get("tiles"), list) else []:
        print(f"tiles {t['size']} ({t['tiles']} tiles of {t['core']} px), evaluation {t['evaluation']}: "
              f"J relative error {t['J_relative_error']:.2e}, gradient cosine {t['gradient_cosine']:.7f}; "
              f"one tiled evaluation: gram {t['gram_tiled_s']:.2f} s, sliced {t['sliced_tiled_s']:.2f} s")
    for r in results.get("accuracy", []):
        print(f"{r['image']:24} {r['precision']:5} {r['term']:10} J rel. error {r['J_relative_error']:.2e} "
              f"gradient cosine {r['gradient_cosine']:.7f} load {r['load']:.1f}")
    print(f"{'precision':9} {'size':9} {'gram s':>7} {'sliced s':>8} {'ratio':>6} {'sorted s':>8} {'ratio':>6} "
          f"{'load':>5}")
    for r in results.get("cost", []):
        print(f"{r['precision']:9} {r['size']:9} {r['gram_s']:7.2f} {r['sliced_s']:8.2f} {r['ratio']:6.2f} "
              f"{r['sorted_s']:8.2f} {r['sorted_ratio']:6.2f} {r['load']:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50, help="L-BFGS steps before the second accuracy image")
    parser.add_argument("--core", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--skip-tiles", action="store_true", help="no tiled accuracy")
    parser.add_argument("--skip-accuracy", action="store_true", help="no accuracy against the sort")
    parser.add_argument("--skip-cost", action="store_true", help="no cost per evaluation")
    parser.add_argument("--runs", action="store_true", help="also the end-to-end runs (minutes each)")
    parser.add_argument("--runs-size", type=int, default=512, help="px of the end-to-end runs")
    parser.add_argument("--runs-pairs", type=int, default=len(RUN_PAIRS), help="how many of the pairs to run")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "sliced.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    engine = Engine(device="cpu")
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results["cpu"] = f"{os.cpu_count()} cores, torch {torch.__version__}"
    for key, skip, measure in (
        ("tiles", args.skip_tiles, lambda: tiled_accuracy(engine, args.core)),
        ("accuracy", args.skip_accuracy, lambda: accuracy(
            engine, args.size, args.steps, HERE / "out" / "sliced" / f"stepped-{args.size}-{args.steps}.pt")),
        ("cost", args.skip_cost, lambda: cost(engine, args.size, args.repeats)),
        ("runs", not args.runs,
         lambda: runs(engine, args.runs_size, RUN_PAIRS[: args.runs_pairs], HERE / "out" / "sliced")),
    ):
        if not skip:
            results[key] = measure()
            args.json.parent.mkdir(parents=True, exist_ok=True)
            temporary = args.json.with_suffix(".tmp")
            temporary.write_text(json.dumps(results, indent=2))
            temporary.replace(args.json)
    print_tables(results)


if __name__ == "__main__":
    main()
