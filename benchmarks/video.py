"""Video that holds still: the warping error, per-frame quality and seconds per frame of the
ways brushwork paints a clip, on clips of known motion and on real ones (video_clips.py).

    python benchmarks/video.py [--size 256] [--frames 8] [--opt-size 128] [--opt-frames 8]
        [--opt-steps 100] [--clips pan,zoom,rotate,vtest,tree,megamind] [--opt-clips (the same)]
        [--rows stills,video,fast-off,fast-blend,fast-flow] [--json benchmarks/results/video.json]
        [--sheets docs/images] [--fps-frames 48] [--fps-sizes 256,512] [--repeats 3]

The frame-rate table alone (no clips painted):

    python benchmarks/video.py --clips "" --rows fast-off,fast-blend,fast-flow --fps-sizes 256,512 \
        --json benchmarks/results/video-fps.json

Rows (all in The Starry Night):
  input        the content frames themselves: the measure's floor (interpolation, noise)
  stills       `brushwork stylize FOLDER` (each frame a photo of its own), --opt-steps steps
  video        `brushwork stylize FOLDER --video` (warm start and temporal term along DIS flow;
               a shot's first frame gets the still's --opt-steps, later ones --frame-steps)
  fast-off     `brushwork apply --model starry-night --consistency off`
  fast-blend   the same with --consistency blend (the default)
  fast-flow    the same with --consistency flow

The optimization rows run at --opt-size on --opt-clips (about 5 s per still at 128 px on an
idle 2-core CPU), the fast rows at --size on every clip. Fast rows run in-process on the frames (so no
video codec touches what is measured); their frames/s end to end (`apply` on a video file,
decoding and encoding included) is measured on --fps-frames of Megamind at each of --fps-sizes
(default: --size), the methods taking turns over --repeats rounds, best round kept.

Per row: warping error (8-bit levels), per-frame J = content + 5·style distance
(brushwork.score against the content frame and the style), seconds per frame (wall clock;
for `video` the first frame and the later ones apart). Contact sheets: per clip, each row
three consecutive frames at 100% and the error map |out_t - warp(out_t+1)| × 4 between the
last two (dark red: untrusted pixels). Frames are cached in benchmarks/out/video, so a rerun
only paints what is missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from brushwork import api, cli
from brushwork.batch.engines import score_engine
from brushwork.fast import video as fast_video
from brushwork.fast.apply import resolve_model
from brushwork.fast.backend import Settings, Stylizer
from brushwork.fast.consistency import Consistency
from brushwork.fast.net import load_model
from brushwork.options import DEFAULT_STYLE_LOSS, Options
from brushwork.score import score

sys.path.insert(0, str(Path(__file__).parent))
import video_clips  # noqa: E402

WORK = Path("benchmarks/out/video")
# The optimization rows' cache names the default style loss they ran with (gram's frames,
# from before sliced became the default, sit in folders without it).
LOSS_TAG = "" if DEFAULT_STYLE_LOSS == "gram" else f"-{DEFAULT_STYLE_LOSS}"
STYLE = "starry_night.jpg"
FAST = {"fast-off": "off", "fast-blend": "blend", "fast-flow": "flow"}


def style_image() -> tuple[Path, Image.Image]:
    """The shared Starry Night, else scikit-image has none: the style must be the shared one."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "styles" / STYLE
    if not path.exists():
        path = Path("/work/shared/images/styles") / STYLE
    return path, Image.open(path).convert("RGB")


def make_clip(name: str, size: int, frames: int) -> video_clips.Clip:
    if name in video_clips.MOTIONS:
        from skimage import data

        return video_clips.known_motion(Image.fromarray(data.coffee()), name, size, frames)
    return video_clips.real_clip(name, size, frames)


def write_frames(clip: video_clips.Clip, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")


def read_frames(folder: Path, count: int) -> list[np.ndarray] | None:
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths] if all(p.exists() for p in paths) else None


def paint(clip: video_clips.Clip, row: str, folder: Path, style: Path, steps: int) -> tuple[list[np.ndarray], list[float]]:
    """The CLI on the clip's frames as a folder; seconds per frame from the outputs' times."""
    out = folder / row
    cached = read_frames(out, len(clip.frames))
    times = out / "seconds.json"
    if cached is not None and times.exists():
        return cached, json.loads(times.read_text())
    inputs = folder / "input"
    write_frames(clip, inputs)
    size = max(clip.frames[0].shape[:2])
    api.engine_for(Options(size=size))  # loaded before the clock starts
    started = time.time()
    args = ["stylize", str(inputs), "-s", str(style), "-o", str(out), "--size", str(size), "--steps", str(steps), "--overwrite", "-q"]
    if cli.main(args + (["--video"] if row == "video" else [])) != 0:
        raise SystemExit(f"{row} failed on {clip.name}")
    done = sorted(p.stat().st_mtime for p in out.glob("*.png"))
    seconds = list(np.diff([started] + done))
    times.write_text(json.dumps(seconds))
    return read_frames(out, len(clip.frames)), seconds


def fast_frames(stylizer: Stylizer, clip: video_clips.Clip, method: str) -> tuple[list[np.ndarray], list[float]]:
    """`apply`'s per-frame work (network, consistency step, 8 bits) on the clip's frames."""
    hold = Consistency.of(Settings(consistency=method))
    outputs, seconds = [], []
    for frame in clip.frames:
        started = time.perf_counter()
        with stylizer.host_threads():
            batch = stylizer.upload([frame])
            outputs.append(stylizer.download(hold(batch, stylizer.stylize(batch)))[0])
        seconds.append(time.perf_counter() - started)
    return outputs, seconds


def frames_per_second(size: int, frames: int, repeats: int, methods: list[str]) -> dict[str, float]:
    """`apply` end to end on a lossless video file (FFV1), the methods taking turns."""
    clip = video_clips.real_clip("megamind", size, frames)
    model = load_model(resolve_model("starry-night"))
    best = dict.fromkeys(methods, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.mkv"
        encode_lossless(clip.frames, source)
        for _ in range(repeats):
            for method in methods:
                stylizer = Stylizer(model, Settings(consistency=method))
                report = fast_video.stylize_video(stylizer, source, Path(folder) / "out.mp4")
                best[method] = max(best[method], report.frames / report.seconds)
    return best


def encode_lossless(frames: list[np.ndarray], path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def quality(outputs: list[np.ndarray], clip: video_clips.Clip, style: Image.Image) -> dict[str, float]:
    """Mean per-frame distances and J, every frame scored against its own content frame."""
    engine = score_engine("cpu")
    scores = [score(Image.fromarray(o), Image.fromarray(c), style, engine) for o, c in zip(outputs, clip.frames)]
    return {
        "content": float(np.mean([s.content for s in scores])),
        "style": float(np.mean([s.style for s in scores])),
        "J": float(np.mean([s.objective for s in scores])),
    }


def measure(outputs: list[np.ndarray], seconds: list[float], clip: video_clips.Clip, style: Image.Image) -> dict:
    errors = video_clips.warping_errors(outputs, clip)
    entry = {"warping_error": float(np.mean(errors)), "warping_error_per_pair": [round(e, 3) for e in errors]}
    entry.update(quality(outputs, clip, style))
    entry["seconds_per_frame"] = [round(s, 3) for s in seconds]
    # The optimization's first timed frame includes the style's Gram matrices; later ones not.
    entry["first_frame_s"] = float(seconds[0])
    entry["later_frames_s"] = float(np.mean(seconds[1:])) if len(seconds) > 1 else float(seconds[0])
    return entry


def contact_sheet(rows: dict[str, list[np.ndarray]], clip: video_clips.Clip, path: Path, first: int) -> None:
    """Per row: frames first..first+2 at 100% and the error map between the last two."""
    strips = []
    for name, outputs in rows.items():
        picks = [outputs[first + i] for i in range(3)] + [video_clips.error_map(outputs, clip, first + 1)]
        strip = Image.fromarray(np.hstack(picks))
        ImageDraw.Draw(strip).text((4, 2), name, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        strips.append(np.asarray(strip))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(strips)).save(path, quality=75, optimize=True)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.machine())
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu, "cores": os.cpu_count(), "bf16_native": "avx512_bf16" in flags or "amx_bf16" in flags,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def run_clip(name: str, args: argparse.Namespace, style: tuple[Path, Image.Image], stylizer: Stylizer) -> dict:
    """Every requested row on one clip; contact sheets for the clips in --sheet-clips."""
    clip = make_clip(name, args.size, args.frames)
    results = {"input": {"warping_error": float(np.mean(video_clips.warping_errors(clip.frames, clip))), "size": args.size}}
    rows = {"input": clip.frames}
    for row in (r for r in args.rows if r in FAST):
        rows[row], seconds = fast_frames(stylizer, clip, FAST[row])
        results[row] = {**measure(rows[row], seconds, clip, style[1]), "size": args.size, "frames": args.frames}
        print(f"  {name} {row}: {results[row]['warping_error']:.2f}", file=sys.stderr, flush=True)
    if name in args.sheet_clips:
        contact_sheet(rows, clip, args.sheets / f"video-{name}-fast.jpg", args.frames - 3)
    if name not in args.opt_clips:
        return results
    small = make_clip(name, args.opt_size, args.opt_frames)
    folder = WORK / f"{name}-{args.opt_size}px-{args.opt_frames}f-{args.opt_steps}steps{LOSS_TAG}"
    results["input-opt"] = {"warping_error": float(np.mean(video_clips.warping_errors(small.frames, small))), "size": args.opt_size}
    opt_rows = {"input": small.frames}
    for row in (r for r in args.rows if r in ("stills", "video")):
        opt_rows[row], seconds = paint(small, row, folder, style[0], args.opt_steps)
        results[row] = {**measure(opt_rows[row], seconds, small, style[1]), "size": args.opt_size, "frames": args.opt_frames}
        print(f"  {name} {row}: {results[row]['warping_error']:.2f}", file=sys.stderr, flush=True)
    if name in args.sheet_clips:
        contact_sheet(opt_rows, small, args.sheets / f"video-{name}-optimization.jpg", args.opt_frames - 3)
    return results


def print_table(results: dict, fps: dict[int, dict[str, float]]) -> None:
    print(f"{'clip':9} {'row':11} {'px':>4} {'warp err':>8} {'vs ref':>7} {'J':>6} {'J ratio':>7} {'s/frame 1st':>11} {'later':>7}")
    for clip, rows in results.items():
        for row, r in rows.items():
            reference = rows.get("stills" if row == "video" else "fast-blend" if row == "fast-flow" else "", {})
            ratio = f"{r['warping_error'] / reference['warping_error']:.2f}" if reference else ""
            j_ratio = f"{r['J'] / reference['J']:.2f}" if reference else ""
            j = f"{r['J']:.3f}" if "J" in r else ""
            times = f"{r['first_frame_s']:11.2f} {r['later_frames_s']:7.2f}" if "first_frame_s" in r else ""
            print(f"{clip:9} {row:11} {r['size']:4d} {r['warping_error']:8.2f} {ratio:>7} {j:>6} {j_ratio:>7} {times}")
    for size, rates in fps.items():
        ratio = f", flow ÷ blend {rates['flow'] / rates['blend']:.2f}" if {"flow", "blend"} <= rates.keys() else ""
        print(f"apply end to end, {size} px, frames/s: " + ", ".join(f"{m} {r:.2f}" for m, r in rates.items()) + ratio)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="fast rows: longest side (default 256)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--opt-size", type=int, default=128, help="optimization rows: longest side (default 128)")
    p.add_argument("--opt-frames", type=int, default=8)
    p.add_argument("--opt-steps", type=int, default=100, help="a still's steps (and a shot's first frame's)")
    p.add_argument("--clips", default="pan,zoom,rotate,vtest,tree,megamind")
    p.add_argument("--opt-clips", default="pan,zoom,rotate,vtest,tree,megamind")
    p.add_argument("--sheet-clips", default="pan,megamind")
    p.add_argument("--rows", default="stills,video,fast-off,fast-blend,fast-flow")
    p.add_argument("--fps-frames", type=int, default=48, help="frames of Megamind for apply's frames/s (0: skip)")
    p.add_argument("--fps-sizes", default="", help="longest sides for apply's frames/s, comma-separated (default: --size)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/video.json"))
    p.add_argument("--sheets", type=Path, default=Path("docs/images"))
    args = p.parse_args()
    for key in ("clips", "opt_clips", "sheet_clips", "rows"):
        setattr(args, key, [name for name in getattr(args, key).split(",") if name])
    args.fps_sizes = [int(size) for size in args.fps_sizes.split(",") if size] or [args.size]
    report = {"machine": machine(), "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    style = style_image()
    stylizer = Stylizer(load_model(resolve_model("starry-night")), Settings(workers=1))
    results = {}
    for name in args.clips:
        print(f"{name}...", file=sys.stderr, flush=True)
        results[name] = run_clip(name, args, style, stylizer)
    methods = [FAST[r] for r in args.rows if r in FAST]
    fps = {size: frames_per_second(size, args.fps_frames, args.repeats, methods) for size in args.fps_sizes} if args.fps_frames and methods else {}
    report.update(results=results, apply_frames_per_second=fps)
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print_table(results, fps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
