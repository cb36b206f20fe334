"""Print-size output: is the tiled evaluation exact, what does it cost, how much memory do big
runs take, and how long does a poster take on this machine. Prints tables, writes JSON. Not a test.

    python benchmarks/bigsize.py exact              # tiled vs whole objective and gradient, per-eval cost
    python benchmarks/bigsize.py memory             # peak RSS of 1024, 2048, 4096 px (and --sizes 7680)
    python benchmarks/bigsize.py poster             # a 3840x2160 picture, timed, with a 100% crop
    python benchmarks/bigsize.py auto               # --steps auto against the default's steps (and --fixed-steps)
    python benchmarks/bigsize.py auto --auto-size 3840 --rerun   # the same at 4K, the kept rows dropped
    python benchmarks/bigsize.py styleres           # the style at its own size vs enlarged: 100% crops

Each measurement that times or measures memory runs in its own process (`/usr/bin/time -v`
for the whole process's peak RSS). The machine and its load are recorded with the numbers:
on a shared machine, time measurements are only as good as the load column says.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from brushwork.options import DEFAULT_STEPS, DEFAULT_STYLE_LOSS

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
OUT = HERE / "out" / "bigsize"
RESULTS = HERE / "results"


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M")}


def pictures() -> tuple[Path, Path]:
    """A 16:9 photo (the rocket launch, cut to 640x360 so the output is exactly 3840x2160) and
    The Starry Night; scikit-image's astronaut and coffee where ../shared is absent."""
    from PIL import Image

    OUT.mkdir(parents=True, exist_ok=True)
    if (SHARED / "content" / "rocket.jpg").exists():
        photo, painting = SHARED / "content" / "rocket.jpg", SHARED / "styles" / "starry_night.jpg"
    else:
        import importlib.resources

        data = Path(str(importlib.resources.files("skimage") / "data"))
        photo, painting = data / "astronaut.png", data / "coffee.png"
    wide = OUT / "content-16x9.png"
    with Image.open(photo) as image:
        w = image.width
        image.convert("RGB").crop((0, 0, w, w * 9 // 16)).save(wide)
    return wide, painting


def exact(args: argparse.Namespace) -> dict:
    """Objective and gradient of a random image, whole and tiled, at a size both fit (fp32)."""
    import torch

    from brushwork import tiles
    from brushwork.engine import Engine
    from brushwork.losses import ContentLoss, StyleLoss, gram_matrix
    from brushwork.objective import Objective, TiledObjective

    engine = Engine("cpu")
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
    w, h = args.exact_size
    features = functools.partial(engine.features, layers=layers, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        targets = engine.features(torch.rand(1, 3, h, w, generator=g), ("relu4_2",), torch.float32)
        style = engine.features(torch.rand(1, 3, 512, 512, generator=g), layers[:5], torch.float32)
    content = ContentLoss(targets, {"relu4_2": 1.0})
    style_loss = StyleLoss({n: gram_matrix(f) for n, f in style.items()}, dict.fromkeys(layers[:5], 1.0))
    x = torch.rand(1, 3, h, w, generator=g).requires_grad_(True)
    rows = []
    for tile in [None, *args.tiles]:
        if tile is None:
            objective = Objective(features, content, style_loss, (1.0, 5.0, 0.0))
        else:
            grid = tiles.tiles(w, h, tile, tiles.margin_for(layers))
            objective = TiledObjective(features, content, style_loss, (1.0, 5.0, 0.0), tiles=grid)
        objective(x)  # warm-up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            terms = objective(x)
            times.append(time.perf_counter() - started)
        rows.append({"tile": tile, "tiles": 1 if tile is None else len(grid), "seconds": min(times),
                     "terms": terms.tolist(), "grad": x.grad.clone()})
    whole, whole_grad = rows[0], rows[0]["grad"]
    for row in rows:
        grad = row.pop("grad")
        row["grad_rel_error"] = float((grad - whole_grad).norm() / whole_grad.norm())
        row["cost_vs_whole"] = row["seconds"] / whole["seconds"]
        row["J_rel_error"] = abs(row["terms"][3] - whole["terms"][3]) / whole["terms"][3]
    print(f"{w}x{h}, fp32, margin {tiles.margin_for(layers)} px")
    print(f"{'tile':>6} {'tiles':>5} {'s/eval':>8} {'x whole':>8} {'grad rel err':>13} {'J rel err':>10}")
    for r in rows:
        print(f"{str(r['tile'] or 'whole'):>6} {r['tiles']:>5} {r['seconds']:8.2f} {r['cost_vs_whole']:8.2f} "
              f"{r['grad_rel_error']:13.2e} {r['J_rel_error']:10.2e}")
    return {"size": [w, h], "margin": tiles.margin_for(layers), "rows": rows}


def timed_process(command: list[str]) -> dict:
    """Run a command under /usr/bin/time -v: wall seconds, peak RSS of the whole process, output."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return {"seconds": round(seconds, 1), "peak_rss_gib": int(peak.group(1)) / 2**20 if peak else None,
            "returncode": done.returncode, "log": [line for line in done.stderr.splitlines()
                                                  if line.startswith(("plan:", "estimated", "wrote", "brushwork:"))]}


def stylize_command(content: Path, style: Path, out: Path, size: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "brushwork.cli", "stylize", str(content), "-s", str(style), "-o", str(out),
            "--size", str(size), "--device", "cpu", "--overwrite", "--quiet", *flags]


def memory(args: argparse.Namespace) -> dict:
    """Peak RSS with one step per scale: the memory of every scale, in minutes not hours."""
    from brushwork.plan import default_scale_count

    content, style = pictures()
    rows = []
    for size in args.sizes:
        steps = ",".join(["1"] * default_scale_count(size))
        row = {"size": size, **machine(), **timed_process(stylize_command(
            content, style, OUT / f"memory-{size}.png", size, "--steps-per-scale", steps))}
        rows.append(row)
        print(f"{size:>6} px: peak RSS {row['peak_rss_gib']:.2f} GiB, {row['seconds']:.0f} s, load {row['load_1min']}")
        print("        " + "\n        ".join(row["log"]))
    return {"rows": rows}


def poster(args: argparse.Namespace) -> dict:
    """A 3840x2160 run, its picture downscaled, and a 100% crop of its middle."""
    from PIL import Image

    content, style = pictures()
    out = OUT / "poster-3840.png"
    flags = ["--steps-per-scale", args.poster_steps] if args.poster_steps else []
    row = {**machine(), **timed_process(stylize_command(content, style, out, 3840, *flags, "--trace",
                                                      str(OUT / "poster-3840.json"))), "steps": args.poster_steps}
    if out.exists():
        with Image.open(out) as image:
            image.resize((960, 540), Image.LANCZOS).save(OUT / "poster-3840-small.jpg", quality=90)
            cx, cy = image.width // 2, image.height // 2
            image.crop((cx - 480, cy - 270, cx + 480, cy + 270)).save(OUT / "poster-3840-crop100.jpg", quality=92)
        trace = json.loads((OUT / "poster-3840.json").read_text())
        row["final"] = trace["steps"][-1]
    print(f"3840x2160: {row['seconds']:.0f} s whole process, peak RSS {row['peak_rss_gib']:.2f} GiB, load {row['load_1min']}")
    print("  " + "\n  ".join(row["log"]))
    return row


def auto_pairs(names: list[str]) -> list[tuple[Path, Path]]:
    """CONTENT:STYLE names from ../shared/images (content/ and styles/); rocket.jpg is cut to 16:9
    as for the poster, so a 3840 px run is exactly 3840x2160."""
    found = []
    for name in names:
        content, style = (SHARED / folder / file for folder, file in zip(("content", "styles"), name.split(":")))
        if not (content.exists() and style.exists()):
            sys.exit(f"missing {content} or {style}: run next to the project's ../shared/images")
        found.append((pictures()[0] if content.name == "rocket.jpg" else content, style))
    return found


def auto_run(content: Path, style: Path, size: int, steps: str) -> dict:
    """One stylize run in its own process: wall time, and J and steps per scale from its trace."""
    stem = OUT / f"auto-{size}-{content.stem}-{style.stem}-{steps}"
    row = {"content": content.name, "style": style.name, "size": size, "steps": steps, "style_loss": DEFAULT_STYLE_LOSS,
           "output": stem.with_suffix(".png").name, **machine(),
           **timed_process(stylize_command(content, style, stem.with_suffix(".png"), size, "--steps", steps,
                                           "--trace", str(stem.with_suffix(".json"))))}
    records = json.loads(stem.with_suffix(".json").read_text())["steps"]
    per_scale = [sum(1 for r in records if r["scale"] == k) for k in range(records[-1]["scale"] + 1)]
    row.update(J=records[-1]["total"], evaluations=len(records), steps_per_scale=per_scale)
    return row


def fixed_seconds_at(j: float, fixed: list[dict], measure: str) -> float | None:
    """Seconds a fixed --steps needs to end at `measure` = j, interpolated linearly between the
    two fixed counts on either side of it; None outside the counts that were run."""
    fixed = sorted(fixed, key=lambda row: int(row["steps"]))
    for low, high in zip(fixed, fixed[1:]):
        if high[measure] <= j <= low[measure]:
            share = (low[measure] - j) / (low[measure] - high[measure]) if low[measure] != high[measure] else 0.0
            return low["seconds"] + share * (high["seconds"] - low["seconds"])
    return None


def auto(args: argparse.Namespace) -> dict:
    """--steps auto against fixed step counts, pair by pair: time and final J of each (J of the
    last step, against the output size's own targets), and the time fixed counts need to end at
    auto's J. Runs already in the results file (same pair, size and steps) are kept, not re-run:
    each is minutes to an hour."""
    path = RESULTS / f"bigsize-auto-{args.auto_size}.json"
    kept = json.loads(path.read_text())["result"]["rows"] if path.exists() and not args.rerun else []
    rows = []
    for content, style in auto_pairs(args.auto_pairs):
        runs = []
        for steps in ["auto", *map(str, args.fixed_steps)]:
            key = (content.name, style.name, args.auto_size, steps)
            old = [row for row in kept if (row["content"], row["style"], row["size"], str(row["steps"])) == key]
            runs.append(old[0] if old else auto_run(content, style, args.auto_size, steps))
            row = runs[-1]
            print(f"{content.stem} x {style.stem}, --steps {steps:>5}: {row['seconds']:6.0f} s (load {row['load_1min']}), "
                  f"steps {row.get('steps_per_scale')}, J {row['J']:.4f}")
        rows += runs
    rows = kept_others(kept, rows) + rows
    scored(rows)
    return {"rows": rows, "pairs": equal_j(rows)}


def scored(rows: list[dict]) -> None:
    """brushwork.score of each output that has none yet: J of the image written, where a trace's
    last J is that of the image before the last step (which matters when a scale has 1-2 steps),
    measured against targets of its own (the style at the output's size, fp32, whole image)."""
    from PIL import Image

    from brushwork.engine import Engine
    from brushwork.score import score

    engine = None
    for row in rows:
        if "score_J" in row:
            continue
        engine = engine or Engine("cpu")
        content = OUT / row["content"] if row["content"] == "content-16x9.png" else SHARED / "content" / row["content"]
        with Image.open(OUT / row["output"]) as out, Image.open(content) as c, Image.open(SHARED / "styles" / row["style"]) as s:
            result = score(out.convert("RGB"), c.convert("RGB"), s.convert("RGB"), engine)
        row.update(score_content=result.content, score_style=result.style, score_J=result.objective)
        print(f"scored {row['output']}: J {result.objective:.4f}")


def equal_j(rows: list[dict]) -> list[dict]:
    """Per pair and measure (the trace's last J, the score of the image written): auto's time
    and value, and the time fixed counts need to end at that value; where auto ends below every
    fixed count, the most a fixed count was given (it needs more)."""
    pairs = []
    for content, style in dict.fromkeys((r["content"], r["style"]) for r in rows):
        runs = [r for r in rows if (r["content"], r["style"]) == (content, style)]
        auto_row = next(r for r in runs if r["steps"] == "auto")
        fixed = [r for r in runs if r["steps"] != "auto"]
        for measure in ("J", "score_J"):
            equal = fixed_seconds_at(auto_row[measure], fixed, measure)
            best = min(fixed, key=lambda r: r[measure], default=None)
            more_than = best["seconds"] if equal is None and best and best[measure] > auto_row[measure] else None
            pairs.append({"content": content, "style": style, "measure": measure, "auto_seconds": auto_row["seconds"],
                          "auto_value": auto_row[measure], "fixed_seconds_at_auto_value": equal,
                          "fixed_seconds_more_than": more_than})
            if equal is not None:
                said = f"{equal:.0f} s to the same value"
            elif more_than is not None:
                said = f"over {more_than:.0f} s (--steps {best['steps']} ends at {best[measure]:.4f}, still above)"
            else:
                said = "did not bracket that value"
            print(f"{content} x {style}, {measure}: auto {auto_row['seconds']:.0f} s to {auto_row[measure]:.4f}; "
                  f"fixed --steps {said}")
    return pairs


def kept_others(kept: list[dict], rows: list[dict]) -> list[dict]:
    """Rows from earlier calls that this call did not run or reuse (other pairs)."""
    keys = {(r["content"], r["style"], r["size"], str(r["steps"])) for r in rows}
    return [r for r in kept if (r["content"], r["style"], r["size"], str(r["steps"])) not in keys]


def styleres(args: argparse.Namespace) -> dict:
    """The same output size with the style kept at its own resolution (the default) and
    enlarged to the output's (--style-scale 1), and 100% crops of the same spot side by side."""
    from PIL import Image, ImageDraw

    content, style = pictures()
    rows, crops = [], []
    for label, flags in (("style at its own size (default)", []), ("style enlarged to the output", ["--style-scale", "1"])):
        out = OUT / f"styleres-{args.styleres_size}-{'own' if not flags else 'enlarged'}.png"
        if out.exists():  # a CPU run is deterministic: an output from an earlier, stopped call is the same
            print(f"{label}: kept {out.name} from an earlier call")
        else:
            row = {"label": label, "size": args.styleres_size, **machine(),
                   **timed_process(stylize_command(content, style, out, args.styleres_size, *flags))}
            rows.append(row)
            print(f"{label}: {row['seconds']:.0f} s, load {row['load_1min']}")
        with Image.open(out) as image:
            x, y = image.width * 5 // 8, image.height // 8  # sky and stars: where the strokes show
            crops.append((label, image.crop((x, y, x + 480, y + 360))))
    sheet = Image.new("RGB", (2 * 480 + 16, 360 + 28), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, crop) in enumerate(crops):
        sheet.paste(crop, (i * 496, 28))
        draw.text((i * 496 + 4, 6), label, fill="black")
    sheet.save(OUT / f"styleres-{args.styleres_size}-crops.jpg", quality=92)
    return {"rows": rows}


def merged(path: Path, result: dict, what: str) -> dict:
    """Memory rows of other sizes measured before are kept: each size is its own long run."""
    if what != "memory" or not path.exists():
        return result
    sizes = {row["size"] for row in result["result"]["rows"]}
    old = [row for row in json.loads(path.read_text())["result"]["rows"] if row["size"] not in sizes]
    result["result"]["rows"] = sorted(old + result["result"]["rows"], key=lambda row: row["size"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["exact", "memory", "poster", "auto", "styleres"])
    parser.add_argument("--exact-size", type=int, nargs=2, default=(768, 512))
    parser.add_argument("--tiles", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--poster-steps", help="--steps-per-scale for the poster (default: brushwork's)")
    parser.add_argument("--auto-size", type=int, default=384)
    parser.add_argument("--fixed-steps", type=int, nargs="*", default=[DEFAULT_STEPS],
                        help=f"fixed --steps to set against auto (default: the default's, {DEFAULT_STEPS})")
    parser.add_argument("--rerun", action="store_true",
                        help="auto: drop the kept rows and run every pair again (after a change to the defaults)")
    parser.add_argument("--auto-pairs", nargs="+", default=["rocket.jpg:starry_night.jpg"],
                        help="CONTENT:STYLE from ../shared/images/content and styles")
    parser.add_argument("--styleres-size", type=int, default=1920)
    args = parser.parse_args()
    result = {"machine": machine(), "result": globals()[args.what](args)}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bigsize-{args.what}{f'-{args.auto_size}' if args.what == 'auto' else ''}.json"
    path.write_text(json.dumps(merged(path, result, args.what), indent=1, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
