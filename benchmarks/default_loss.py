"""The evidence for the default style loss and step schedule: eight photo × painting pairs
(portraits, a still life, a night scene, an interior, a wall, a texture as style), each run the
way a user's run goes (brushwork.api.run, three scales, --precision auto), with

  gram            the old default: style weight 5, 300 steps split 180/81/39
  sliced, meancov at their weight from the style-loss sweep (results/losses.json), same steps
  gram 120/81/39, sliced 120/81/39   the coarsest scale cut to 120 steps (240 in all)
  gram 100/60/40, sliced 100/60/40   200 steps, half at the coarsest scale
  sliced 90/54/36                    the new default: 180 steps (options.DEFAULT_STEPS, plan.SCALE_SPLIT)
  gram 300, sliced 180               one scale, the defaults below 384 px (--size 256)

and scored on measures no loss optimizes (measures.py: colour, feature and the MobileNet style
vector distance), besides brushwork.score's content and Gram style distances. The unpainted
photo is scored too ("photo"): the far end of every style measure.

Every run's picture and numbers are kept under --outputs, keyed by size, pair, loss and
schedule; a later call reuses them, so rows can be run again alone:

    python benchmarks/default_loss.py                          # all 40 runs: 70-200 CPU s each (bf16, one thread)
    python benchmarks/default_loss.py --only "sliced,sliced 120/81/39" --rerun   # after a change to the sliced loss
    python benchmarks/default_loss.py --report                 # only the tables, JSON and sheet from the kept runs
    python benchmarks/default_loss.py --size 384 --pairs 0,1,2,3 --only "gram,gram 120/81/39" \\
        --json benchmarks/results/default_loss-384.json --sheet ""

Prints tables (means, each configuration against gram on the pairs both ran, every pair),
writes --json and the contact sheet. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from losses import SHARED, SKIMAGE
from measures import colour_distance, contact_sheet, feature_distance, mobilenet_distance
from PIL import Image

from brushwork import api, images
from brushwork.devices import pick_dtype
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.score import score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OLD_DEFAULT = (180, 81, 39)  # gram's 300 steps over three scales, the default before sliced's 90/54/36
WEIGHTS = json.loads((HERE / "results" / "losses.json").read_text())["weights"]  # the sweep's choice per loss
PAIRS = [  # (name, content, style)
    ("astronaut / starry night", SKIMAGE / "astronaut.png", SHARED / "styles/starry_night.jpg"),
    ("astronaut / matisse", SKIMAGE / "astronaut.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
    ("cat / kandinsky", SKIMAGE / "chelsea.png", SHARED / "styles/kandinsky_composition_vii.jpg"),
    ("coffee / matisse", SKIMAGE / "coffee.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
    ("rocket / kandinsky", SKIMAGE / "rocket.jpg", SHARED / "styles/kandinsky_composition_vii.jpg"),
    ("motorcycle / starry night", SKIMAGE / "motorcycle_left.png", SHARED / "styles/starry_night.jpg"),
    ("brick wall / matisse", SKIMAGE / "brick.png", SHARED / "styles/matisse_woman_with_a_hat.jpg"),
    ("cat / ihc (texture)", SKIMAGE / "chelsea.png", SKIMAGE / "ihc.png"),
]
RESPLIT, SHORTER, EQUAL_TIME = (120, 81, 39), (100, 60, 40), (90, 54, 36)


@dataclass(frozen=True)
class Config:
    """One column of the table: a loss and the steps of each scale (three, or one below 384 px)."""

    label: str
    loss: str
    split: tuple[int, ...] | None  # None: the old default, OLD_DEFAULT

    def steps(self) -> tuple[int, ...]:
        return self.split or OLD_DEFAULT


CONFIGS = [Config("gram", "gram", None), Config("sliced", "sliced", None), Config("meancov", "meancov", None),
           Config("gram 120/81/39", "gram", RESPLIT), Config("sliced 120/81/39", "sliced", RESPLIT),
           Config("gram 100/60/40", "gram", SHORTER), Config("sliced 100/60/40", "sliced", SHORTER),
           Config("sliced 90/54/36", "sliced", EQUAL_TIME),
           # Below 384 px a run has one scale: the old default's 300 steps against the new 180.
           Config("gram 300", "gram", (300,)), Config("sliced 180", "sliced", (180,))]
MEASURES = ("seconds", "cpu_seconds", "final_j", "content", "gram", "colour", "feature", "mobilenet")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pairs", default=",".join(map(str, range(len(PAIRS)))),
                   help="which pairs, by index into PAIRS, comma-separated (default: all; two calls can share the work)")
    p.add_argument("--only", default="", help="configurations to run, by label, comma-separated (default: all)")
    p.add_argument("--rerun", action="store_true", help="run the chosen configurations again even when kept")
    p.add_argument("--report", action="store_true", help="run nothing: tables, JSON and sheet from the kept runs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1, as losses.py: on a shared 2-core CPU two threads wait on each other)")
    p.add_argument("--json", default=str(HERE / "results" / "default_loss.json"))
    p.add_argument("--sheet", default=str(ROOT / "docs" / "images" / "default-loss-sheet.jpg"), help="'' for none")
    p.add_argument("--outputs", default=str(HERE / "out" / "default_loss"), help="folder of the kept runs")
    return p.parse_args()


def chosen(only: str) -> list[Config]:
    names = {n.strip() for n in only.split(",") if n.strip()}
    unknown = names - {c.label for c in CONFIGS}
    if unknown:
        raise SystemExit(f"--only: no configuration {', '.join(sorted(unknown))}; they are {', '.join(c.label for c in CONFIGS)}")
    return [c for c in CONFIGS if not names or c.label in names]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def kept_path(outputs: Path, size: int, pair: str, config: Config) -> Path:
    """Where a run is kept: its key is (size, pair, loss, schedule); .png and .json beside it."""
    return outputs / str(size) / f"{slug(pair)}--{config.loss}--{'-'.join(map(str, config.steps()))}"


def measured(engine: Engine, output: Image.Image, content: Image.Image, style: Image.Image) -> dict:
    """Every distance of one picture: brushwork.score's two and measures.py's three."""
    s = score(output, content, style, engine)
    return {"content": s.content, "gram": s.style, "colour": colour_distance(output, style),
            "feature": feature_distance(engine, output, style), "mobilenet": mobilenet_distance(output, style)}


def run_one(engine: Engine, content: Image.Image, style: Image.Image, config: Config, size: int) -> tuple[Image.Image, dict]:
    """One library run of a configuration and its measures."""
    options = Options(size=size, device="cpu", precision="auto", style_loss=config.loss, scales=len(config.steps()),
                      style_weight=WEIGHTS[config.loss], steps_per_scale=config.steps())
    load_before, wall, cpu = os.getloadavg(), time.perf_counter(), time.process_time()
    result = api.run(content, style, options, engine=engine)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "final_j": result.records[-1].total,
           "load_before": load_before[0], "load_after": os.getloadavg()[0], "stop_reason": result.stop_reason,
           "steps": list(config.steps()), "weight": WEIGHTS[config.loss], "size": list(result.image.size),
           "precision": str(pick_dtype("auto", torch.device("cpu"))).removeprefix("torch."), "commit": commit()}
    return result.image, {**row, **measured(engine, result.image, content, style)}


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def run_or_reuse(engine: Engine, pair: tuple, config: Config, args: argparse.Namespace) -> dict:
    """A kept run's numbers, or a new run (kept, picture and numbers, written whole)."""
    name, content, style = pair
    path = kept_path(Path(args.outputs), args.size, name, config)
    if path.with_suffix(".json").is_file() and not args.rerun:
        return json.loads(path.with_suffix(".json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    image, row = run_one(engine, content, style, config, args.size)
    images.save_image(image, path.with_suffix(".png"))
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(row, indent=1))
    temporary.replace(path.with_suffix(".json"))
    print(f"{name:26s} {config.label:17s} {row['seconds']:5.0f} s (cpu {row['cpu_seconds']:4.0f})  J {row['final_j']:.3f}  "
          f"content {row['content']:.3f}  colour {row['colour']:.2f}  feature {row['feature']:.4f}  "
          f"mobilenet {row['mobilenet']:.3f}  load {row['load_before']:.1f}-{row['load_after']:.1f}", flush=True)
    return row


def photo_row(engine: Engine, pair: tuple, size: int) -> dict:
    """The unpainted photo at the run's size, measured like an output: every style measure's far end."""
    _, content, style = pair
    photo = content.resize(images.fit_size(*content.size, size), Image.LANCZOS)
    return measured(engine, photo, content, style)


def collect(engine: Engine, pairs: list, args: argparse.Namespace) -> dict:
    """{pair: {label: row}}: the chosen configurations run (or reused) pair by pair, so an
    interrupted benchmark leaves whole pairs; every other kept row is read back."""
    todo = [] if args.report else chosen(args.only)
    results = {}
    for pair in pairs:
        name = pair[0]
        results[name] = {"photo": photo_row(engine, pair, args.size)}
        for config in CONFIGS:
            kept = kept_path(Path(args.outputs), args.size, name, config).with_suffix(".json")
            if config in todo:
                results[name][config.label] = run_or_reuse(engine, pair, config, args)
            elif kept.is_file():
                results[name][config.label] = json.loads(kept.read_text())
    return results


def summary(results: dict) -> dict:
    """Per configuration (over the pairs that have it): the mean of every measure, and the mean
    of its per-pair wall and CPU time ratios to today's default (gram, default split)."""
    table = {}
    for label in dict.fromkeys(k for rows in results.values() for k in rows):
        rows = {pair: by[label] for pair, by in results.items() if label in by}
        table[label] = {"pairs": len(rows)}
        for m in MEASURES:
            if all(m in r for r in rows.values()):
                table[label][m] = statistics.mean(r[m] for r in rows.values())
        for m, key in (("seconds", "time_vs_gram"), ("cpu_seconds", "cpu_vs_gram")):
            ratios = [r[m] / results[p]["gram"][m] for p, r in rows.items() if m in r and "gram" in results[p]]
            if ratios:
                table[label][key] = statistics.mean(ratios)
    return table


PAIRED = {"content": 3, "colour": 2, "feature": 4, "mobilenet": 3}  # measure: decimals printed


def against_gram(results: dict) -> dict:
    """Per configuration, over the pairs that ran both it and the old default (gram; one-scale
    runs against gram 300): the mean of (configuration − gram) of each measure no loss optimizes and of content, with on how many
    pairs it was lower; and the mean CPU time ratio. The fair comparison when not every
    configuration ran on every pair."""
    table = {}
    for label in dict.fromkeys(k for rows in results.values() for k in rows if k not in ("gram", "gram 300", "photo")):
        base = "gram 300" if label == "sliced 180" else "gram"  # one scale against one scale
        both = [(by[label], by[base]) for by in results.values() if label in by and base in by]
        if not both:
            continue
        table[label] = {"pairs": len(both)}
        for m in PAIRED:
            table[label][m] = statistics.mean(a[m] - g[m] for a, g in both)
            table[label][f"lower_{m}"] = sum(a[m] < g[m] for a, g in both)
        if all("cpu_seconds" in a for a, _ in both):
            table[label]["cpu_vs_gram"] = statistics.mean(a["cpu_seconds"] / g["cpu_seconds"] for a, g in both)
    return table


def print_against_gram(table: dict) -> None:
    print("\n| configuration − gram | pairs | × gram's CPU time | content | colour (Lab) | feature | MobileNet |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, t in table.items():
        ratio = f"{t['cpu_vs_gram']:.2f}" if "cpu_vs_gram" in t else "–"
        cells = " | ".join(f"{t[m]:+.{places}f} ({t[f'lower_{m}']}/{t['pairs']} lower)" for m, places in PAIRED.items())
        print(f"| {label} | {t['pairs']} | {ratio} | {cells} |")


def print_tables(table: dict, results: dict) -> None:
    cell = lambda row, m, f: format(row[m], f) if m in row else "–"  # noqa: E731
    print("\n| configuration | pairs | s/run (cpu) | × gram's time (cpu) | final J | content | Gram style | colour (Lab) | feature | MobileNet |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, t in table.items():
        timing = f"{t['seconds']:.0f} ({t['cpu_seconds']:.0f})" if "seconds" in t else "–"
        ratio = f"{t['time_vs_gram']:.2f} ({t['cpu_vs_gram']:.2f})" if "time_vs_gram" in t else "–"
        print(f"| {label} | {t['pairs']} | {timing} | {ratio} | {cell(t, 'final_j', '.3f')} | {t['content']:.3f} | "
              f"{t['gram']:.4f} | {t['colour']:.2f} | {t['feature']:.4f} | {t['mobilenet']:.3f} |")
    print("\n| pair | configuration | s (cpu) | final J | content | Gram style | colour | feature | MobileNet |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for pair, rows in results.items():
        for label, r in rows.items():
            timing = f"{r['seconds']:.0f} ({r['cpu_seconds']:.0f})" if "seconds" in r else "–"
            print(f"| {pair} | {label} | {timing} | {cell(r, 'final_j', '.3f')} | {r['content']:.3f} | {r['gram']:.4f} | "
                  f"{r['colour']:.2f} | {r['feature']:.4f} | {r['mobilenet']:.3f} |")


def draw_sheet(pairs: list, results: dict, args: argparse.Namespace) -> None:
    """Rows: the pairs; columns: photo, painting, then each configuration with its measures."""
    labels = [c.label for c in CONFIGS if any(c.label in results[p[0]] for p in pairs)]
    configs = {c.label: c for c in CONFIGS}

    def caption(m: dict | None) -> str:
        return (f"content {m['content']:.2f}  cpu {m['cpu_seconds']:.0f} s\ncolour {m['colour']:.1f}  "
                f"feat {m['feature']:.3f}\nmobilenet {m['mobilenet']:.3f}") if m else "not run"

    rows = []
    for name, content, style in pairs:
        kept = [Image.open(kept_path(Path(args.outputs), args.size, name, configs[lab]).with_suffix(".png")).convert("RGB")
                if lab in results[name] else Image.new("RGB", (176, 88), "#eeeeee") for lab in labels]
        rows.append((name, [content, style, *kept], ["", "", *(caption(results[name].get(lab)) for lab in labels)]))
    contact_sheet(["photo", "painting", *labels], rows, Path(args.sheet), box=176)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    wanted = [PAIRS[int(i)] for i in args.pairs.split(",")]
    available = [(n, c, s) for n, c, s in wanted if c.is_file() and s.is_file()]
    if len(available) < len(wanted):
        print(f"note: {len(wanted) - len(available)} pairs skipped: ../shared/images is missing", flush=True)
    pairs = [(name, images.load_image(c), images.load_image(s)) for name, c, s in available]
    started, load_before = time.perf_counter(), os.getloadavg()
    engine = api.engine_for(Options(device="cpu"))
    results = collect(engine, pairs, args)
    table, paired = summary(results), against_gram(results)
    print_tables(table, results)
    print_against_gram(paired)
    if args.sheet:
        draw_sheet(pairs, results, args)
    record = {
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "precision": str(pick_dtype("auto", torch.device("cpu"))).removeprefix("torch."),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {"size": args.size, "steps": list(OLD_DEFAULT), "threads": args.threads, "weights": WEIGHTS,
                     "configs": [asdict(c) | {"steps": c.steps()} for c in CONFIGS]},
        "summary": table, "against_gram": paired, "runs": results, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.json}{' and ' + args.sheet if args.sheet else ''} in {record['seconds'] / 60:.1f} min "
          f"(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after)")


def cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


if __name__ == "__main__":
    main()
