"""CPU time of fast mode's consistency step per video frame, by method: what `--consistency`
adds to a frame's cost, measured so that a busy machine barely changes it.

    python benchmarks/video_step.py [--sizes 256,512] [--frames 8] [--repeats 5]
        [--json benchmarks/results/video-step.json]

The step runs on Megamind's frames (the network's output stood in by the mirrored frame: the
step's cost does not depend on the picture) with OpenCV and PyTorch on one thread, timed with
time.thread_time, which leaves out the time the thread waits for a core; best of --repeats
rounds, the methods taking turns. On a shared 2-core machine `apply`'s wall-clock frame rate
varied several-fold from run to run; these costs, added to the frame time of `blend` on an idle
machine, predicted the old flow step's measured 0.54× `blend`'s frame rate as 0.51-0.54×.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import torch

from brushwork.fast.backend import Settings
from brushwork.fast.consistency import Consistency

sys.path.insert(0, str(Path(__file__).parent))
import video_clips  # noqa: E402

METHODS = ("off", "blend", "flow")


def step_costs(size: int, frames: int, repeats: int) -> dict[str, float]:
    """Best round's mean CPU seconds per frame after the first, per method."""
    clip = video_clips.real_clip("megamind", size, frames)
    inputs = [torch.from_numpy(f.copy()).permute(2, 0, 1)[None].float().div(255).contiguous() for f in clip.frames]
    painted = [torch.flip(x, (-1,)).contiguous() for x in inputs]
    best = dict.fromkeys(METHODS, float("inf"))
    for _ in range(repeats):
        for method in METHODS:
            hold, total = Consistency.of(Settings(consistency=method)), 0.0
            for i, (frame, stylized) in enumerate(zip(inputs, painted)):
                started = time.thread_time()
                hold(frame, stylized)
                total += (time.thread_time() - started) if i else 0.0
            best[method] = min(best[method], total / (len(inputs) - 1))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/video-step.json"))
    args = p.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    report = {"load_average_before": [round(x, 2) for x in os.getloadavg()], "ms_per_frame": {}}
    for size in (int(s) for s in args.sizes.split(",")):
        costs = {m: round(1000 * c, 2) for m, c in step_costs(size, args.frames, args.repeats).items()}
        report["ms_per_frame"][size] = costs
        print(f"{size} px, CPU ms per frame: " + ", ".join(f"{m} {c:.1f}" for m, c in costs.items())
              + f"; flow − blend {costs['flow'] - costs['blend']:.1f}", flush=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
