"""What a painted video's later frames cost against a still, at a real size: `stylize --video`'s
frame loop (brushwork.video.paint_clip) on a photo panned by a known amount, the first frame
with a still's default schedule, the later ones with --frame-steps from the warm start.

    python benchmarks/video_cost.py [--size 512] [--frames 4] [--frame-steps 20]
        [--precision auto] [--json benchmarks/results/video_cost.json]

Per frame: wall-clock seconds and CPU seconds of this process (all threads). On a shared
machine the wall clock says little; the CPU seconds hold up better, and their ratio (a later
frame against the first, a still) is the number the video guide quotes. The first frame's time
includes the style's targets (computed once per run), as a still's does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from brushwork.api import engine_for
from brushwork.options import Options
from brushwork.video import ClipSettings, Frame, FrameStore, paint_clip

sys.path.insert(0, str(Path(__file__).parent))
import video_clips  # noqa: E402
from video import style_image  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--frame-steps", type=int, default=ClipSettings.frame_steps)
    p.add_argument("--precision", default="auto")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/video_cost.json"))
    args = p.parse_args()
    clip = video_clips.known_motion(Image.fromarray(data.coffee()), "pan", args.size, args.frames)
    options = Options(size=args.size, precision=args.precision)
    engine = engine_for(options)
    frames = [Frame(i, Image.fromarray(pixels)) for i, pixels in enumerate(clip.frames)]
    folder = tempfile.TemporaryDirectory()
    store = FrameStore(lambda i: Path(folder.name) / f"{i:04d}.png")  # saved as the command saves them
    rows = []
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    for frame, result, link in paint_clip(engine, frames, [style_image()[1]], options, ClipSettings(args.frame_steps), store):
        now_wall, now_cpu = time.perf_counter(), time.process_time()
        rows.append({"frame": frame.index, "kind": "still (first)" if link is None else "later",
                     "steps": len(result.records), "wall_s": round(now_wall - wall, 2), "cpu_s": round(now_cpu - cpu, 2)})
        wall, cpu = now_wall, now_cpu
        print(f"frame {frame.index}: {rows[-1]['kind']:13} {rows[-1]['steps']:4d} steps "
              f"{rows[-1]['wall_s']:7.1f} s wall {rows[-1]['cpu_s']:7.1f} CPU s", flush=True)
    later = [r for r in rows if r["kind"] == "later"]
    ratio_cpu = float(np.mean([r["cpu_s"] for r in later])) / rows[0]["cpu_s"]
    ratio_wall = float(np.mean([r["wall_s"] for r in later])) / rows[0]["wall_s"]
    print(f"later frame / still: {ratio_cpu:.2f}x in CPU seconds, {ratio_wall:.2f}x wall clock")
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    report = {
        "machine": {"cores": os.cpu_count(), "bf16_native": "avx512_bf16" in flags, "torch": torch.__version__,
                    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"size": args.size, "frames": args.frames, "frame_steps": args.frame_steps,
                     "precision": options.precision, "clip": "coffee panned 3.3, 1.2 px per frame"},
        "frames": rows, "later_over_still_cpu": round(ratio_cpu, 3), "later_over_still_wall": round(ratio_wall, 3),
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
