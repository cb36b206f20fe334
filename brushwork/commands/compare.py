"""`brushwork compare` runs a grid of settings and lays the results out side by side. The
seed's whole study was comparing settings by eye, so this turns that study into one command.

compare/grid.py plans the cells, the batch runner (brushwork.batch) computes them, here or
on a Ray cluster, and compare/report.py draws the contact sheets and writes index.html,
results.csv and results.json. This module is the flags and the order of the steps between.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import images
from ..batch.cache import load_cached
from ..batch.cells import CELLS, Cell, Inputs
from ..batch.engines import Engines, check_plans
from ..batch.runner import LocalRunner, Runner
from ..compare.grid import Axis, cell_label, check_cell_count, parse_axes, plan_cells
from ..compare.report import write_reports
from ..errors import BrushworkError
from ..options import SETTING_BY_FIELD, Options
from .flags import add_flags, add_ray_flag, options_from_args


def output_folder(output: str) -> Path:
    """Refuses a file in the way before the inputs are even read."""
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise BrushworkError(f"{out_dir} exists and is not a folder")
    return out_dir


def make_folders(out_dir: Path) -> None:
    """Creates the cache folder and proves the reports can be written, so an unwritable folder
    fails now and not after every cell has run."""
    try:
        (out_dir / CELLS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BrushworkError(f"cannot create {out_dir / CELLS}: {e.strerror}") from None
    for output in (out_dir / "index.html", out_dir / CELLS / "cell.png"):
        images.check_writable(output, overwrite=True)


def prepare(args: argparse.Namespace) -> tuple[Options, list[Axis], list[Cell], Inputs, Path]:
    """Everything that can be wrong with the request is found here, before any optimization."""
    base = options_from_args(args)
    set_fields = {field for field in SETTING_BY_FIELD if getattr(args, field) is not None}
    axes = parse_axes(args.vary, set_fields)
    check_cell_count(axes, args.max_cells)
    out_dir = output_folder(args.output)
    inputs = Inputs(images.load_image(args.content), [images.load_image(s) for s in args.style],
                    str(args.content), [str(s) for s in args.style])
    cells = plan_cells(base, axes, inputs)
    make_folders(out_dir)
    return base, axes, cells, inputs, out_dir


def cmd_compare(args: argparse.Namespace) -> int:
    """Check everything, run the cells not cached yet, then rebuild every report."""
    base, axes, cells, inputs, out_dir = prepare(args)
    cell_dir = out_dir / CELLS
    engines = Engines(base, cells)
    rows = load_cached(cells, cell_dir)
    check_plans(cells, rows, inputs, engines)
    started = time.perf_counter()
    if args.ray is not None:
        from .. import cluster  # imports Ray, which only --ray needs

        runner: Runner = cluster.RayRunner.connect(args.ray, args.quiet)
    else:
        runner = LocalRunner(args.quiet)
    interrupted = runner.run(cells, rows, inputs, cell_dir, engines, lambda cell: cell_label(cell, axes))
    if interrupted:
        print(f"brushwork: interrupted; {len(rows)} of {len(cells)} cells are saved in {cell_dir}. "
              "Run the same command again to finish the rest.", file=sys.stderr)
        return 130
    pages = write_reports(out_dir, base, axes, cells, rows, inputs)
    if not args.quiet:
        sheets = ", ".join(p.name for p in pages)
        print(f"wrote {out_dir}: {sheets}, index.html, results.csv, results.json "
              f"({len(cells)} cells, {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="run a grid of settings and lay the results out side by side",
                       description="Run every combination of the --vary values and write a contact sheet, "
                                   "index.html, results.csv and results.json to DIR. Finished cells are cached "
                                   "in DIR/cells, so running the same command again resumes.")
    p.add_argument("content", help="content photo")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    p.add_argument("--vary", required=True, action="append", metavar="KEY=V1,V2",
                   help="a stylize option and its values, e.g. style-weight=1,5,20 or preset=gatys,tutorial; "
                        "options whose value is a list take ';' between values "
                        "(\"style-crop=none;0,0,0.5,0.5\"); repeat for more axes")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the results (created if missing)")
    p.add_argument("--max-cells", type=int, default=64, help="refuse grids with more cells than this (default 64)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    add_ray_flag(p, "each run of the grid a Ray task, one per GPU or CPU slot, with the same cache")
    add_flags(p)
    p.set_defaults(func=cmd_compare)
