"""Does the memory plan hold? For each output size, aspect, precision and style loss, one
`brushwork stylize` in its own process under `/usr/bin/time -v`: its peak RSS against the
plan's estimate (the plan line's "estimated peak memory ... beyond the network", plus the
network's own process, measured once per precision). Prints a table, writes JSON. Not a test.

    python benchmarks/memory.py                                  # the whole grid: 90 runs, days on 2 cores
    python benchmarks/memory.py --sizes 4096 --losses gram       # all aspects x both precisions at 4096
    python benchmarks/memory.py --sizes 7680 --aspects 16:9 --precisions bf16 --ladder   # the default steps
    python benchmarks/memory.py --table                          # the table of what was measured so far
    python benchmarks/memory.py --reestimate                     # those runs against today's plans
    python benchmarks/memory.py --missing                        # the cells not measured yet, riskiest first
    python benchmarks/memory.py --sizes 2048 --aspects 1:1 1:3 --precisions bf16 --losses gram \
        --results benchmarks/results/memory_emulated_bf16.json   # on a CPU without native bf16

Steps: one a scale, so each scale's peak is reached in minutes rather than hours. The plan
counts the optimizer's image-sized vectors for the steps a scale runs (plan.optimizer_vectors:
3 while a first step evaluates, and a quarter more in a one-step scale for the last good
image of the scale before; 6 and two a stored L-BFGS pair from the second on), so the
estimate is that of the run measured; the default schedule gives the top scales of big
outputs one or two steps too (180 steps at 4096 px: 135/34/8/2/1).
`--ladder` runs the default schedule end to end instead. Runs the plan
refuses (it says the largest --size that fits) are recorded as refused. Rows already in the
results file are kept (each run is minutes to hours); --rerun measures them again.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # brushwork, and torch with it, is imported where a function needs it: --table needs neither
    from brushwork.engine import Engine
    from brushwork.plan import Plan

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
OUT = HERE / "out" / "memory"
RESULT = HERE / "results" / "memory.json"
SIZES, PRECISIONS, LOSSES = [2048, 4096, 7680], ["fp32", "bf16"], ["gram", "meancov", "sliced"]  # the grid
ASPECTS = {"1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "16:9": (16, 9), "1:3": (1, 3)}
BASELINE = "import resource, sys; from brushwork.engine import engine_for; from brushwork.options import Options; " \
           "engine_for(Options(device='cpu')); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", flags)
    return {"cpu": model.group(1) if model else None, "cores": os.cpu_count(), "avx512_bf16": " avx512_bf16" in flags,
            "load_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M")}


@functools.cache  # cut once per aspect and process: --reestimate asks for every row
def pictures(aspect: str) -> tuple[Path, Path]:
    """A photo cut to exactly `aspect` (the astronaut) and The Starry Night; scikit-image's
    astronaut and coffee where ../shared is absent."""
    from PIL import Image, ImageOps

    if (SHARED / "content" / "astronaut.png").exists():
        photo, painting = SHARED / "content" / "astronaut.png", SHARED / "styles" / "starry_night.jpg"
    else:
        import importlib.resources

        data = Path(str(importlib.resources.files("skimage") / "data"))
        photo, painting = data / "astronaut.png", data / "coffee.png"
    OUT.mkdir(parents=True, exist_ok=True)
    a, b = ASPECTS[aspect]
    cut = OUT / f"content-{a}x{b}.png"
    with Image.open(photo) as image:
        ImageOps.fit(image.convert("RGB"), (128 * a, 128 * b)).save(cut)
    return cut, painting


def steps_flags(size: int, aspect: str, ladder: bool) -> list[str]:
    """One step a scale (--ladder: the default schedule): every scale's peak, in minutes."""
    if ladder:
        return []
    from brushwork.plan import default_scale_count

    return ["--steps-per-scale", ",".join(["1"] * default_scale_count(size))]


def baseline_gib() -> float:
    """Peak RSS of a process that only loads the network (the budget counts beyond it)."""
    done = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 2**20


def measure(size: int, aspect: str, precision: str, loss: str, ladder: bool) -> dict:
    """One stylize run under /usr/bin/time -v: peak RSS, wall time, the plan line."""
    content, style = pictures(aspect)
    command = [sys.executable, "-m", "brushwork.cli", "stylize", str(content), "-s", str(style),
               "-o", str(OUT / f"{size}-{aspect.replace(':', 'x')}-{precision}-{loss}.png"), "--overwrite",
               "--device", "cpu", "--size", str(size), "--precision", precision, "--style-loss", loss,
               *steps_flags(size, aspect, ladder)]
    row = {"size": size, "aspect": aspect, "precision": precision, "loss": loss, "ladder": ladder, **machine()}
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    row["seconds"] = round(time.perf_counter() - started, 1)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    plan = re.search(r"^plan: .*", done.stderr, re.MULTILINE)
    estimate = re.search(r"estimated peak memory ([\d.]+) GiB", done.stderr)
    refused = re.search(r"^brushwork: error: (.*)", done.stderr, re.MULTILINE)
    row.update(command=command[2:], returncode=done.returncode, plan=plan.group(0) if plan else None,
               estimate_beyond_gib=float(estimate.group(1)) if estimate else None,
               peak_rss_gib=int(peak.group(1)) / 2**20 if peak else None, refused=refused.group(1) if refused else None)
    if done.returncode != 0 and not refused:
        print(done.stderr[-2000:], file=sys.stderr)
    return row


def with_baseline(row: dict, baseline: float) -> dict:
    """The estimate of the whole process (the plan's, plus the network's process) and its error."""
    row["baseline_gib"] = baseline
    if row["estimate_beyond_gib"] is not None and row["peak_rss_gib"] and row["returncode"] == 0:
        row["estimate_gib"] = row["estimate_beyond_gib"] + row["baseline_gib"]
        row["beyond_gib"] = row["peak_rss_gib"] - row["baseline_gib"]
        row["estimate_error"] = (row["estimate_gib"] - row["peak_rss_gib"]) / row["peak_rss_gib"]
    return row


def key(row: dict) -> tuple:
    return row["size"], row["aspect"], row["precision"], row["loss"], row.get("ladder", False)


def table(rows: list[dict]) -> str:
    """Markdown: one line per run, the plan at the top scale, estimate against measured."""
    lines = ["| --size | aspect | precision | loss | top scale | estimate GiB | peak RSS GiB | error | wall s (load) |",
             "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=key):
        label = f"{r['aspect']}{' ladder' if r.get('ladder') else ''}"
        if r.get("refused"):
            lines.append(f"| {r['size']} | {label} | {r['precision']} | {r['loss']} | refused: "
                         f"{r['refused'].split(';')[-1].strip()} | | | | |")
            continue
        top = r["plan"].split(" -> ")[-1].split(" steps on")[0] if r.get("plan") else "?"
        error = f"{100 * r['estimate_error']:+.1f}%" if "estimate_error" in r else "–"
        estimate = f"{r['estimate_gib']:.2f}" if "estimate_gib" in r else "–"
        peak = f"{r['peak_rss_gib']:.2f}" if r.get("peak_rss_gib") else "–"
        lines.append(f"| {r['size']} | {label} | {r['precision']} | {r['loss']} | {top} | {estimate} | {peak} | "
                     f"{error} | {r['seconds']:.0f} ({r['load_1min']}) |")
    return "\n".join(lines)


def todays_plan(engine: Engine, size: int, aspect: str, precision: str, loss: str, ladder: bool) -> tuple[Plan, bool]:
    """The plan a run of this cell would get now, made without running it, and whether the
    default budget refuses it (then the plan --max-memory 8 gives, for its estimate)."""
    from PIL import Image

    from brushwork.errors import BrushworkError
    from brushwork.options import Options
    from brushwork.plan import default_scale_count

    content, style = pictures(aspect)
    with Image.open(content) as photo, Image.open(style) as painting:
        sizes = photo.size, painting.size
    steps = {} if ladder else {"steps_per_scale": (1,) * default_scale_count(size)}
    options = Options(device="cpu", size=size, precision=precision, style_loss=loss, **steps)
    try:
        return engine.plan(sizes[0], options, [sizes[1]]), False
    except BrushworkError:
        return engine.plan(sizes[0], options.replace(max_memory=8.0), [sizes[1]]), True


def reestimated(rows: list[dict]) -> str:
    """Markdown: every measured run against today's plan for it. A run whose plan (scales,
    tiles) is today's still measures today's peak, so a change to the estimate alone needs no
    new runs; one whose plan changed needs measuring."""
    from brushwork.engine import engine_for
    from brushwork.options import Options

    engine = engine_for(Options(device="cpu"))
    lines = ["| --size | aspect | precision | loss | top scale today | estimate today GiB | peak RSS GiB | error | "
             "measured | same plan |", "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in sorted((r for r in rows if r.get("peak_rss_gib")), key=key):
        plan, over = todays_plan(engine, r["size"], r["aspect"], r["precision"], r["loss"], r.get("ladder", False))
        refused = " (refused; --max-memory 8)" if over else ""
        line = plan.describe(engine.device).split(" steps on")[0].removeprefix("plan: ")
        estimate = plan.memory_needed / 2**30 + r["baseline_gib"]
        at_run = (r.get("plan") or "").split(" steps on")[0].removeprefix("plan: ")
        same = at_run == line or at_run.startswith("... -> ") and line.endswith(at_run[7:])  # restored: top only
        lines.append(f"| {r['size']} | {r['aspect']}{' ladder' if r.get('ladder') else ''} | {r['precision']} | "
                     f"{r['loss']} | {line.split(' -> ')[-1]}{refused} | {estimate:.2f} | {r['peak_rss_gib']:.2f} | "
                     f"{100 * (estimate / r['peak_rss_gib'] - 1):+.1f}% | {r['date']} | {'yes' if same else 'no'} |")
    return "\n".join(lines)


def save(made: list[dict], result: Path) -> list[dict]:
    """This call's rows merged into the results file as it is now (another call may have
    added rows since this one started), written whole or not at all."""
    keys = {key(r) for r in made}
    rows = json.loads(result.read_text())["rows"] if result.exists() else []
    rows = sorted([r for r in rows if key(r) not in keys] + made, key=key)
    result.parent.mkdir(exist_ok=True)
    temporary = result.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"rows": rows}, indent=1))
    temporary.replace(result)
    return rows


def missing(rows: list[dict]) -> str:
    """Markdown: the grid's cells with no measured run, by today's estimate beyond the network,
    highest (nearest the budget, so measured first) at the top."""
    from brushwork.engine import engine_for
    from brushwork.options import Options

    engine = engine_for(Options(device="cpu"))
    measured = {key(r) for r in rows if r.get("peak_rss_gib")}
    cells = [(size, aspect, precision, loss) for size in SIZES for aspect in ASPECTS
             for precision in PRECISIONS for loss in LOSSES
             if (size, aspect, precision, loss, False) not in measured]
    estimated = []
    for cell in cells:
        plan, over = todays_plan(engine, *cell, ladder=False)
        estimated.append((plan.memory_needed / 2**30, over, *cell))
    lines = ["| --size | aspect | precision | loss | estimate beyond the network GiB |", "| ---: | --- | --- | --- | ---: |"]
    lines += [f"| {size} | {aspect} | {precision} | {loss} | {estimate:.2f}{' (refused: over the budget)' if over else ''} |"
              for estimate, over, size, aspect, precision, loss in sorted(estimated, reverse=True)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--aspects", nargs="+", default=list(ASPECTS), choices=list(ASPECTS))
    parser.add_argument("--precisions", nargs="+", default=PRECISIONS, choices=PRECISIONS)
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--ladder", action="store_true", help="the default schedule end to end")
    parser.add_argument("--rerun", action="store_true", help="measure rows already in the results again")
    parser.add_argument("--table", action="store_true", help="print the table of the results file and stop")
    parser.add_argument("--reestimate", action="store_true", help="the measured runs against today's plans, and stop")
    parser.add_argument("--missing", action="store_true", help="the cells not measured yet, riskiest first, and stop")
    parser.add_argument("--results", type=Path, default=RESULT,
                        help="the results file (another for runs outside the grid, e.g. bf16 where the CPU emulates it)")
    args = parser.parse_args()
    kept = json.loads(args.results.read_text())["rows"] if args.results.exists() else []
    if args.table or args.reestimate or args.missing:
        print(missing(kept) if args.missing else reestimated(kept) if args.reestimate else table(kept))
        return
    baseline = baseline_gib()
    print(f"network loaded: {baseline:.2f} GiB peak RSS", flush=True)
    made: list[dict] = []
    for size in args.sizes:
        for aspect in args.aspects:
            for precision in args.precisions:
                for loss in args.losses:
                    wanted = (size, aspect, precision, loss, args.ladder)
                    if not args.rerun and any(key(r) == wanted for r in kept):
                        continue
                    made.append(with_baseline(measure(size, aspect, precision, loss, args.ladder), baseline))
                    kept = save(made, args.results)
                    print(table(made[-1:]).splitlines()[-1], flush=True)
    print(table(kept))


if __name__ == "__main__":
    main()
