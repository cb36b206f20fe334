"""stylize --init fast against the default start (the photo): does starting from the
arbitrary-style network's picture reach the default's quality in fewer steps?

For each content / style pair at --size, the default run (--init content, --steps STEPS) and
--init fast runs at each of --fast-steps, the engine's defaults otherwise (three scales,
L-BFGS). Measured:
  J           the objective's last value (content + style + TV terms, the run's own weights)
  reach       for --init fast at STEPS: the step and the seconds (network included) at which
              its finest-scale J first drops to the default's final J, as a fraction of the
              default's steps and seconds ("-" if it never does)
  content, style, score J   brushwork.score's independent distances of the written picture
              (fp32 VGG19 at the output size; score J = content + 5·style)
and, as a reference, the arbitrary network's picture alone (apply --style).

    python benchmarks/init_fast.py                 # 3 pairs at 384 px: ~1 h on the shared 2-core CPU
    python benchmarks/init_fast.py --size 512

Prints a table, writes benchmarks/results/init-fast.json (and the pictures to benchmarks/out/).
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from PIL import Image

from brushwork import api, images
from brushwork.fast.preview import paint_fast
from brushwork.options import Options
from brushwork.score import score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"
PAIRS = [  # (name, content, style)
    ("astronaut / starry night", SHARED / "content/astronaut.png", SHARED / "styles/starry_night.jpg"),
    ("cat / kandinsky", SHARED / "content/chelsea.png", SHARED / "styles/kandinsky_composition_vii.jpg"),
    ("coffee / matisse", SHARED / "content/coffee.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--steps", type=int, default=300, help="the default run's evaluations (the engine's default)")
    p.add_argument("--fast-steps", default="300", help="evaluations of the --init fast runs (comma-separated)")
    p.add_argument("--scales", type=int, help="coarse-to-fine scales (default: the engine's, three at 384 px)")
    p.add_argument("--pairs", default=f"0-{len(PAIRS) - 1}", help="which pairs, first-last (0-based), e.g. 1-2")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    p.add_argument("--json", default=str(HERE / "results" / "init-fast.json"))
    p.add_argument("--outputs", default=str(HERE / "out" / "init-fast"))
    p.add_argument("--report", action="store_true", help="only print the tables again from the JSON")
    return p.parse_args()


def measured(picture: Image.Image, content: Image.Image, style: Image.Image) -> dict:
    s = score(picture, content, style, api.engine_for(Options(device="cpu")))
    return {"content": s.content, "style": s.style, "score_J": s.objective}


def one_run(content: Image.Image, style: Image.Image, options: Options, picture: Path) -> dict:
    """One stylize run: its trace (finest scale), wall time and the picture's measures."""
    started = time.perf_counter()
    result = api.run(content, style, options)
    wall = time.perf_counter() - started
    result.image.save(picture)
    finest = max(r.scale for r in result.records)
    overhead = wall - result.records[-1].seconds  # the start picture, planning, the result
    trace = [(r.step, r.seconds + overhead, r.total) for r in result.records if r.scale == finest]
    return {"J": result.records[-1].total, "seconds": wall, "steps": result.records[-1].step, "trace": trace,
            "start_seconds": overhead, **measured(result.image, content, style)}  # fmt: skip


def reach(trace: list, target: float, base: dict) -> dict:
    """When a trace first gets down to `target`, as fractions of the default run's cost."""
    for step, seconds, total in trace:
        if total <= target:
            return {"step": step, "seconds": seconds, "step_ratio": step / base["steps"], "time_ratio": seconds / base["seconds"]}
    return {"step": None, "seconds": None, "step_ratio": None, "time_ratio": None}


def run_pair(name: str, content_path: Path, style_path: Path, args: argparse.Namespace, out: Path) -> dict:
    content, style = images.load_image(content_path), images.load_image(style_path)
    stem = name.replace(" / ", "-").replace(" ", "_")
    options = Options(size=args.size, steps=args.steps, scales=args.scales, device="cpu", precision="fp32")
    api.run(content, style, options.replace(steps=6))  # loads VGG19 and caches the style targets for every run alike
    started = time.perf_counter()
    network = paint_fast(content, style, size=args.size)
    row = {"pair": name, "network": {"seconds": time.perf_counter() - started, **measured(network, content, style)}}
    network.save(out / f"{stem}-network.png")
    row["default"] = one_run(content, style, options, out / f"{stem}-default.png")
    for steps in [int(s) for s in args.fast_steps.split(",")]:
        run = one_run(content, style, options.replace(init="fast", steps=steps), out / f"{stem}-fast{steps}.png")
        run["reach"] = reach(run["trace"], row["default"]["J"], row["default"])
        row[f"fast{steps}"] = run
    return row


def print_row(row: dict) -> None:
    print(f"\n{row['pair']}")
    print(f"  {'run':<12} {'J':>10} {'steps':>6} {'s':>7} {'reach':>16} {'content':>8} {'style':>10} {'score J':>8}")
    for key, run in row.items():
        if key == "pair":
            continue
        got = run.get("reach", {})
        reached = "-" if not got else ("never" if got["step"] is None else f"{got['step']} ({got['time_ratio']:.2f}x t)")
        print(f"  {key:<12} {run.get('J', float('nan')):>10.4g} {run.get('steps', 0):>6} {run['seconds']:>7.1f} {reached:>16} "
              f"{run['content']:>8.3f} {run['style']:>10.4g} {run['score_J']:>8.3f}")


TOLERANCES = (0.05, 0.02, 0.01)


def steps_within(trace: list, target: float) -> list:
    """The first step whose J is within each tolerance of `target` (None if never)."""
    return [next((step for step, _, total in trace if total <= target * (1 + tol)), None) for tol in TOLERANCES]


def print_convergence(rows: list[dict]) -> None:
    """How soon each run gets near the default's final J: steps to within 5%, 2%, 1% of it."""
    print(f"\n{'pair':<26} {'run':<9} {'J at finest start':>17} " + " ".join(f"{f'{t:.0%}':>5}" for t in TOLERANCES))
    for row in rows:
        target = row["default"]["J"]
        for key in (k for k in row if k.startswith(("default", "fast"))):
            trace = row[key]["trace"]
            hits = " ".join(f"{'-' if h is None else h:>5}" for h in steps_within(trace, target))
            print(f"{row['pair']:<26} {key:<9} {trace[0][2]:>17.4g} {hits}")


def main() -> None:
    args = parse_args()
    if args.report:
        for entry in json.loads(Path(args.json).read_text()).values():
            print(f"\n== {entry['size']} px, scales {entry.get('scales') or 'default'}, default {entry['steps']} steps, load after {entry['machine']['load_after'][0]:.1f}")
            for row in entry["rows"]:
                print_row(row)
            print_convergence(entry["rows"])
        return
    torch.set_num_threads(args.threads)
    out = Path(args.outputs)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    first, last = (int(i) for i in args.pairs.split("-"))
    for pair in PAIRS[first : last + 1]:
        rows.append(run_pair(*pair, args, out))
        print_row(rows[-1])
        save(args, rows)  # after each pair: a long run that is stopped keeps what it measured


def save(args: argparse.Namespace, rows: list[dict]) -> None:
    """Into the JSON under the size; pairs measured again replace their old rows, others stay."""
    machine = {"cpu": platform.processor() or platform.machine(), "load_after": os.getloadavg(), "threads": args.threads}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.is_file() else {}
    done = {row["pair"] for row in rows}
    key = str(args.size) if args.scales is None else f"{args.size}-scales{args.scales}"
    kept = [row for row in existing.get(key, {}).get("rows", []) if row["pair"] not in done]
    order = [name for name, _, _ in PAIRS]
    rows = sorted(kept + rows, key=lambda row: order.index(row["pair"]))
    existing[key] = {"size": args.size, "steps": args.steps, "scales": args.scales, "machine": machine, "rows": rows}
    path.write_text(json.dumps(existing, indent=1))


if __name__ == "__main__":
    main()
