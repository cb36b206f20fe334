"""Style losses side by side: gram, meancov and sliced on six content / style pairs.

1. Sweep: on the first two pairs at --sweep-size, gram at its default weight 5, meancov and
   sliced at --sweep-weights. Each then runs at the weight whose mean content distance is
   nearest gram's at 5:
   the losses are compared at an equal price in content, which is what "the same
   --style-weight means the same balance" promises (and the sweep shows how well it holds).
2. Main runs: every pair at --size with each loss at its weight, the engine's defaults
   otherwise (three scales, L-BFGS), --steps evaluations.
3. Per evaluation: the full-size objective (forward, loss, backward, one L-BFGS step) of each
   loss, interleaved round by round on the same picture, best and median of --rounds.

Measures, the first two being brushwork.score's:
  content   relative relu4_2 error to the content photo
  gram      mean relative Gram error to the style, relu1_1..relu5_1 (what `gram` optimizes)
  colour    sliced Wasserstein distance between the output's and the style's pixel colours in
            CIELAB (64 fixed directions, seed 1201; in Lab units, ~ΔE), which no loss sees
  feature   relative sliced Wasserstein distance of the VGG features at relu1_2, relu2_2,
            relu3_3 and relu4_3, layers no loss uses, with its own directions (seed 4077)

    python benchmarks/losses.py     # 41 min on this project's 2-core CPU at load 3-5 (with a run of ours beside it)

Prints a table, writes benchmarks/results/losses.json and docs/images/losses-sheet.jpg. Not a test.
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
from measures import colour_distance, contact_sheet, feature_distance
from PIL import Image

from brushwork import api, images, lbfgs
from brushwork.engine import Engine
from brushwork.losses import STYLE_LOSSES
from brushwork.objective import Objective, content_loss_for, style_loss_for
from brushwork.options import Options
from brushwork.run_description import RunDescription
from brushwork.score import score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"
SKIMAGE = Path(str(importlib.resources.files("skimage") / "data"))
PAIRS = [  # (name, content, style): portraits, a cat, a landscape, a still life; three paintings and a texture
    ("astronaut / starry night", SKIMAGE / "astronaut.png", SHARED / "styles/starry_night.jpg"),
    ("cat / kandinsky", SKIMAGE / "chelsea.png", SHARED / "styles/kandinsky_composition_vii.jpg"),
    ("rocket / starry night", SKIMAGE / "rocket.jpg", SHARED / "styles/starry_night.jpg"),
    ("coffee / matisse", SKIMAGE / "coffee.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
    ("cat / ihc (texture)", SKIMAGE / "chelsea.png", SKIMAGE / "ihc.png"),
    ("astronaut / matisse", SKIMAGE / "astronaut.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
]
LOSSES = tuple(STYLE_LOSSES)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--steps", type=int, default=80, help="evaluations per main run (three scales)")
    p.add_argument("--sweep-size", type=int, default=160)
    p.add_argument("--sweep-steps", type=int, default=30)
    p.add_argument("--sweep-weights", default="2.5,5,10", help="weights tried for meancov and sliced (gram: 5)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the per-evaluation timing")
    p.add_argument("--timing-only", action="store_true",
                   help="only time the evaluations again (on a quiet machine) and update the JSON's timing")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared CPU two threads ran 2.4× slower, waiting on each other)")
    p.add_argument("--json", default=str(HERE / "results" / "losses.json"))
    p.add_argument("--sheet", default=str(ROOT / "docs" / "images" / "losses-sheet.jpg"))
    p.add_argument("--outputs", default=str(HERE / "out" / "losses"), help="folder for every output picture")
    return p.parse_args()


# --- runs -----------------------------------------------------------------------------------


def run_one(engine: Engine, content: Image.Image, style: Image.Image, options: Options) -> dict:
    """One run and every measure of its output; the picture itself under "image"."""
    started = time.perf_counter()
    result = engine.run(content, [style], options)
    seconds = time.perf_counter() - started
    last = [r for r in result.records if r.scale == result.records[-1].scale]
    per_step = (last[-1].seconds - last[0].seconds) / max(1, len(last) - 1)
    measured = score(result.image, content, style, engine)
    return {
        "image": result.image, "seconds": round(seconds, 2), "seconds_per_full_size_step": round(per_step, 3),
        "content": measured.content, "gram": measured.style, "colour": colour_distance(result.image, style),
        "feature": feature_distance(engine, result.image, style), "stop_reason": result.stop_reason,
    }  # fmt: skip


def sweep(engine: Engine, pairs: list, args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Each loss's weight: the swept weight whose mean content distance is nearest gram's at 5."""
    weights = [float(w) for w in args.sweep_weights.split(",")]
    rows = []
    for loss in LOSSES:
        for weight in weights if loss != "gram" else [5.0]:
            options = Options(size=args.sweep_size, steps=args.sweep_steps, device=args.device, style_loss=loss,
                              style_weight=weight)
            for name, content, style in pairs[:2]:
                row = run_one(engine, content, style, options)
                rows.append({"loss": loss, "weight": weight, "pair": name,
                             **{k: v for k, v in row.items() if k != "image"}})
                print(f"sweep {loss:8s} w={weight:<5g} {name:28s} content {row['content']:.3f} gram {row['gram']:.4f} "
                      f"colour {row['colour']:.2f} feature {row['feature']:.4f} {row['seconds']:.0f} s", flush=True)

    def mean_content(loss: str, weight: float) -> float:
        return statistics.mean(r["content"] for r in rows if r["loss"] == loss and r["weight"] == weight)

    reference = mean_content("gram", 5.0)
    chosen = {"gram": 5.0}
    for loss in LOSSES[1:]:
        chosen[loss] = min(weights, key=lambda w: abs(np.log(mean_content(loss, w) / reference)))
    return chosen, rows


def main_runs(engine: Engine, pairs: list, chosen: dict, args: argparse.Namespace) -> dict:
    """Every pair with every loss at its weight; the pictures are saved under --outputs."""
    out = Path(args.outputs)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    for index, (name, content, style) in enumerate(pairs):
        results[name] = {}
        for loss in LOSSES:
            options = Options(size=args.size, steps=args.steps, device=args.device, style_loss=loss,
                              style_weight=chosen[loss])
            row = {"weight": chosen[loss], **run_one(engine, content, style, options)}
            row["image"].save(out / f"{index}-{loss}.png")
            results[name][loss] = row
            print(f"{name:28s} {loss:8s} content {row['content']:.3f} gram {row['gram']:.4f} colour {row['colour']:.2f} "
                  f"feature {row['feature']:.4f} {row['seconds']:.0f} s ({row['seconds_per_full_size_step']:.2f} s/step)",
                  flush=True)
    return results


def time_evaluations(engine: Engine, pair: tuple, args: argparse.Namespace) -> dict:
    """Seconds per full-size evaluation and L-BFGS step of each loss, interleaved round by round."""
    _, content, style = pair
    base = Options(size=args.size, device=args.device)
    style_layers, content_layers = base.layers
    content = images.resize(images.to_tensor(content), images.fit_size(*content.size, args.size))
    style = images.resize(images.to_tensor(style), images.fit_size(*style.size, args.size))
    features = lambda x: engine.features(x, tuple(dict.fromkeys(style_layers + content_layers)), torch.float32)  # noqa: E731
    with torch.no_grad():
        content_loss = content_loss_for(RunDescription.from_options(base, 1), engine.features(content, content_layers, torch.float32))
    runs = {}
    for loss, kind in STYLE_LOSSES.items():
        options = RunDescription.from_options(base.replace(style_loss=loss), 1)
        with torch.no_grad():
            targets = {n: kind.statistics(f) for n, f in engine.features(style, style_layers, torch.float32).items()}
        objective = Objective.for_run(options, features, content_loss, style_loss_for(options, [targets]))
        x = content.clone().to(engine.device).requires_grad_(True)
        runs[loss] = (objective, x, lbfgs.LBFGS(x, 1.0, 20))
    seconds: dict[str, list[float]] = {loss: [] for loss in runs}
    for _ in range(args.rounds + 1):  # the first round sets things up and is not counted
        for loss, (objective, x, optimizer) in runs.items():
            started = time.perf_counter()
            optimizer.step(lambda: objective(x)[3])  # noqa: B023
            seconds[loss].append(time.perf_counter() - started)
    return {loss: {"best": round(min(v[1:]), 3), "median": round(statistics.median(v[1:]), 3)} for loss, v in seconds.items()}


# --- reports --------------------------------------------------------------------------------


MEASURES = ("content", "gram", "colour", "feature", "seconds", "seconds_per_full_size_step")


def summary(results: dict) -> dict:
    """Per loss: the mean of every measure over the pairs, and how many pairs it is best on
    (lowest) for each style measure."""
    table = {}
    for loss in LOSSES:
        rows = [results[pair][loss] for pair in results]
        table[loss] = {m: statistics.mean(r[m] for r in rows) for m in MEASURES}
        for m in ("gram", "colour", "feature"):
            table[loss][f"best_{m}"] = sum(1 for pair in results if min(LOSSES, key=lambda o: results[pair][o][m]) == loss)
    return table


def print_table(table: dict, chosen: dict, timing: dict) -> None:
    print("\n| loss | weight | content | gram style | colour (Lab) | feature | s/run | s/full-size step | "
          "s/eval best (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for loss, t in table.items():
        print(f"| {loss} | {chosen[loss]:g} | {t['content']:.3f} | {t['gram']:.4f} ({t['best_gram']}) | "
              f"{t['colour']:.2f} ({t['best_colour']}) | {t['feature']:.4f} ({t['best_feature']}) | {t['seconds']:.0f} | "
              f"{t['seconds_per_full_size_step']:.2f} | {timing[loss]['best']:.2f} ({timing[loss]['median']:.2f}) |")
    gram = timing["gram"]
    for loss in LOSSES[1:]:
        print(f"{loss}: {timing[loss]['best'] / gram['best']:.2f}× gram's evaluation (best), "
              f"{timing[loss]['median'] / gram['median']:.2f}× (median)")


def draw_sheet(pairs: list, results: dict, args: argparse.Namespace) -> None:
    """Rows: the pairs; columns: content, style, then each loss's output with its measures."""
    outputs = Path(args.outputs)
    rows = []
    for r, (name, content, style) in enumerate(pairs):
        captions = [f"content {m['content']:.2f}  gram {m['gram']:.3f}\ncolour {m['colour']:.1f}  feature {m['feature']:.3f}"
                    for m in (results[name][loss] for loss in LOSSES)]
        rows.append((name, [content, style, *(Image.open(outputs / f"{r}-{loss}.png").convert("RGB") for loss in LOSSES)],
                     ["", "", *captions]))
    titles = ["content", "style", *(f"{loss} (weight {results_weight(results, loss):g})" for loss in LOSSES)]
    contact_sheet(titles, rows, Path(args.sheet), box=232, font_size=15)


def results_weight(results: dict, loss: str) -> float:
    return next(iter(results.values()))[loss]["weight"]


def retime(engine: Engine, pair: tuple, args: argparse.Namespace, load_before: tuple) -> None:
    """Replace the JSON's per-evaluation timing with a new measurement, keeping everything else."""
    timing = time_evaluations(engine, pair, args)
    for loss, t in timing.items():
        print(f"{loss:8} best {t['best']:.3f} s  median {t['median']:.3f} s  "
              f"({t['best'] / timing['gram']['best']:.2f}x, {t['median'] / timing['gram']['median']:.2f}x gram's)")
    record = json.loads(Path(args.json).read_text())
    record["evaluation_seconds"] = timing
    record["evaluation_timing"] = {"rounds": args.rounds, "threads": args.threads,
                                   "load_average_before": load_before, "load_average_after": os.getloadavg()}
    Path(args.json).write_text(json.dumps(record, indent=1))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    pairs = [(name, images.load_image(c), images.load_image(s)) for name, c, s in PAIRS if c.is_file() and s.is_file()]
    if len(pairs) < len(PAIRS):
        print(f"note: {len(PAIRS) - len(pairs)} pairs skipped: ../shared/images is missing", flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    engine = api.engine_for(Options(device=args.device))
    if args.timing_only:
        retime(engine, pairs[0], args, load_before)
        return
    chosen, sweep_rows = sweep(engine, pairs, args)
    print("weights:", chosen, flush=True)
    results = main_runs(engine, pairs, chosen, args)
    timing = time_evaluations(engine, pairs[0], args)
    table = summary(results)
    print_table(table, chosen, timing)
    draw_sheet(pairs, results, args)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "sheet", "outputs")},
        "weights": chosen, "sweep": sweep_rows, "summary": table, "evaluation_seconds": timing,
        "runs": {pair: {loss: {k: v for k, v in row.items() if k != "image"} for loss, row in by_loss.items()}
                 for pair, by_loss in results.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.json} and {args.sheet} in {record['seconds'] / 60:.1f} min "
          f"(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
