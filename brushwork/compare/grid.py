"""The grid behind `brushwork compare`: its --vary axes, the cells they span, computing the
cells with the engine, and the cache that lets a grid resume.

How a grid is run, and why:
* One process, one network per (device, weights, pooling): an Engine holds every layer any
  cell needs (the forward pass stops at the deepest one a run asks for) and caches style
  Grams, so cells that differ in weights, steps or optimizer share their style targets.
* `steps` as an axis costs one run: the cells that differ only in steps are snapshots of a
  single run of the largest value, taken through Engine.run's callback. With a single scale
  a snapshot at step n is exactly what a run of n steps gives. With several scales (the
  default from 384 px) the run splits the largest value between its scales, so an earlier
  snapshot shows that run part-way, possibly still at a coarser scale (upsampled to the
  output size), not what a shorter run with its own split would give; pass `--scales 1`
  when the steps axis should mean "a run of this many steps". Accelerators call back only
  every few steps; a snapshot the engine did not report is run on its own.
* Every finished cell is cached in DIR/cells under a hash of its full options, the run it is
  a snapshot of and its input images, so an interrupted or extended compare recomputes only
  what is new.
* Distances come from brushwork.score against the whole content and style images (not the
  style crop, not colour-matched copies), so every cell is measured with the same ruler.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from PIL import Image
from tqdm import tqdm

from .. import __version__, api, images, masks
from ..engine import Engine, Progress, StepRecord, image_key
from ..errors import BrushworkError
from ..options import SETTING_BY_FIELD, Options, parse_option
from ..progress import ProgressReporter
from ..score import SCORE_CONTENT_LAYERS, SCORE_STYLE_LAYERS, STYLE_FACTOR, score

SCORE_LAYERS = tuple(sorted(SCORE_STYLE_LAYERS + SCORE_CONTENT_LAYERS))
# Options whose own value is a comma list (style-crop, style-layers, ...): their --vary
# values are separated by ';' instead of ','.
LIST_FIELDS = {f.name for f in dataclasses.fields(Options) if str(f.type).startswith("tuple")}
OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(Options) if f.default is None}
CELLS = "cells"  # the cache folder inside the output folder; the reports link into it
Setup = tuple[str, str | None, str, str]  # (device, weights, weights_format, pooling): one network each


def score_engine(device: str = "auto") -> Engine:
    """The network brushwork.score measures with (default weights, max pooling), shared with
    any run that uses the same setup."""
    return api.get_engine(device, None, "auto", "max", SCORE_LAYERS)


@dataclass
class Axis:
    """One --vary KEY=V1,V2: the Options field, and each value as parsed and as written."""

    key: str  # display name, dashed: "style-weight"
    field: str
    labels: list[str]
    values: list[object]


@dataclass
class Cell:
    """One combination of axis values; its key names its cached picture and numbers."""

    index: int
    coords: tuple[int, ...]  # index into each axis' values
    options: Options
    run_steps: int = 0  # length of the run this cell is a snapshot of (== options.steps without a steps axis)
    key: str = ""  # cache key, also the file name of its image

    @property
    def image_file(self) -> str:
        """Relative to the output folder, so the reports' links survive moving the folder."""
        return f"{CELLS}/{self.key}.png"


@dataclass
class Inputs:
    """The pictures a grid is run on, with the names the user gave them (for the reports)."""

    content: Image.Image
    styles: list[Image.Image]
    content_path: str
    style_paths: list[str]


# --- parsing and planning ------------------------------------------------------------------


def parse_vary(spec: str) -> Axis:
    """'style-weight=1,5,20' -> Axis; list-valued options separate their values with ';'."""
    key, sep, text = spec.partition("=")
    field = key.strip().replace("-", "_")
    shown = field.replace("_", "-")
    if not sep or not field:
        raise BrushworkError(f"--vary {spec!r}: expected KEY=V1,V2,... (e.g. style-weight=1,5,20)")
    if field not in SETTING_BY_FIELD:
        names = ", ".join(f.replace("_", "-") for f in SETTING_BY_FIELD)
        raise BrushworkError(f"--vary {spec!r}: {key.strip()!r} is not a stylize option; options are: {names}")
    separator = ";" if field in LIST_FIELDS else ","
    labels = [v.strip() for v in text.split(separator) if v.strip()]
    if not labels:
        raise BrushworkError(f"--vary {spec!r}: no values given for {shown} (an empty grid)")
    values = [parse_value(shown, field, label) for label in labels]
    for i, value in enumerate(values):
        if value in values[:i]:
            raise BrushworkError(f"--vary {shown}: the value {labels[i]!r} is listed twice")
    return Axis(shown, field, labels, values)


def parse_value(shown: str, field: str, label: str) -> object:
    """One --vary value; 'none' is accepted for optional fields so a grid can compare a
    setting against leaving it unset."""
    if label == "none" and field in OPTIONAL_FIELDS:
        return None
    try:
        return parse_option(field, label)
    except BrushworkError as e:
        hint = " (separate its values with ';')" if field in LIST_FIELDS else ""
        raise BrushworkError(f"--vary {shown}: {e}{hint}") from None


def parse_axes(specs: list[str], set_fields: set[str]) -> list[Axis]:
    """Every --vary, refusing an axis that repeats another or a flag given on its own
    (`set_fields`), since either would leave it unclear which value a cell used."""
    axes = [parse_vary(spec) for spec in specs]
    for i, axis in enumerate(axes):
        if axis.field in (a.field for a in axes[:i]):
            raise BrushworkError(f"--vary {axis.key} is given twice; list all its values in one --vary")
        if axis.field in set_fields:
            raise BrushworkError(f"{axis.key} is both varied and set by --{axis.key}; drop one")
    return axes


def check_cell_count(axes: list[Axis], max_cells: int) -> None:
    """A grid grows multiplicatively; refuse a big one before hours of work start."""
    n_cells = math.prod(len(a.values) for a in axes)
    if n_cells > max_cells:
        raise BrushworkError(
            f"the grid has {n_cells} cells, more than --max-cells {max_cells}; vary fewer values or raise --max-cells"
        )


def expand(base: Options, axes: list[Axis]) -> list[Cell]:
    """Every combination of the axes' values, first axis slowest, and the run each cell reads."""
    cells = [
        Cell(i, coords, base.replace(**{a.field: a.values[j] for a, j in zip(axes, coords)}))
        for i, coords in enumerate(itertools.product(*(range(len(a.values)) for a in axes)))
    ]
    for group in run_groups(cells):
        longest = max(c.options.steps for c in group)
        for cell in group:
            cell.run_steps = longest
    return cells


def run_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that differ only in `steps`, in grid order: each group is one optimization run."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        same_run = json.dumps(dataclasses.asdict(cell.options.replace(steps=0)), sort_keys=True)
        groups.setdefault(same_run, []).append(cell)
    return list(groups.values())


def check_cells(cells: list[Cell], axes: list[Axis], styles: list[Image.Image]) -> None:
    """Every cell's options and style crops, so a bad value fails the grid before any run."""
    crops = set()
    for cell in cells:
        cell.options.validate(len(styles))
        if cell.options.style_crop is not None:
            crops.add(cell.options.style_crop)
    for box in crops:
        for style in styles:
            images.crop(style, box)
    if any(a.field == "steps" for a in axes) and any(c.options.steps_per_scale is not None for c in cells):
        raise BrushworkError("--vary steps has no effect with --steps-per-scale, which fixes every scale's steps")


def plan_cells(base: Options, axes: list[Axis], inputs: Inputs) -> list[Cell]:
    """The checked cells of the grid, each with the cache key it is stored under."""
    cells = expand(base, axes)
    check_cells(cells, axes, inputs.styles)
    input_keys = [image_key(inputs.content)] + [image_key(s) for s in inputs.styles]
    for cell in cells:
        cell.key = cell_key(cell, input_keys)
    return cells


def cell_key(cell: Cell, input_keys: list[str]) -> str:
    """Hash of everything that decides a cell's picture: options, source run, inputs, version."""
    inputs = list(input_keys)
    if cell.options.init not in ("content", "noise"):
        inputs.append(image_key(images.load_image(cell.options.init)))
    o = cell.options
    inputs += [masks.source_key(m) for m in (o.mask, *(o.style_masks or ()), *(o.style_regions or ())) if m is not None]
    payload = {
        "options": dataclasses.asdict(cell.options),
        "run_steps": cell.run_steps,
        "inputs": inputs,
        "brushwork": __version__,
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def cell_label(cell: Cell, axes: list[Axis]) -> str:
    """The cell's varied values, which is all that tells it apart from its neighbours."""
    return " ".join(f"{a.key}={a.labels[i]}" for a, i in zip(axes, cell.coords))


# --- networks ------------------------------------------------------------------------------


def setup_of(options: Options) -> Setup:
    """The part of a cell's options that needs a network of its own."""
    return (options.device, options.weights, options.weights_format, options.pooling)


class Engines:
    """One network per setup, holding every layer its cells (and the scorer, if it shares the
    setup) need. Loaded on first use (api.get_engine keeps it), so a fully cached grid loads
    nothing."""

    def __init__(self, base: Options, cells: list[Cell]) -> None:
        self.score_setup: Setup = (base.device, None, "auto", "max")
        self.layers: dict[Setup, set[str]] = {self.score_setup: set(SCORE_LAYERS)}
        for cell in cells:
            style_layers, content_layers = cell.options.layers
            self.layers.setdefault(setup_of(cell.options), set()).update(style_layers + content_layers)

    def _get(self, setup: Setup) -> Engine:
        """Every cell of a setup shares one network, cut after the deepest layer any of them uses."""
        return api.get_engine(*setup, tuple(sorted(self.layers[setup])))

    def for_options(self, options: Options) -> Engine:
        """The network a cell with these options runs on."""
        return self._get(setup_of(options))

    def scorer(self) -> Engine:
        """The network every cell is measured with, whatever it was made with."""
        return self._get(self.score_setup)


def check_plans(cells: list[Cell], rows: dict[int, dict], inputs: Inputs, engines: Engines) -> None:
    """Limits of size, layers and memory for every cell still to run, checked before any of
    them runs so a grid does not fail hours in."""
    for cell in cells:
        if cell.index not in rows:
            o = cell.options
            cropped = inputs.styles if o.style_crop is None else [images.crop(s, o.style_crop) for s in inputs.styles]
            engines.for_options(o).plan(inputs.content.size, o, [s.size for s in cropped])


# --- running -------------------------------------------------------------------------------


@dataclass
class Shot:
    """A finished cell's picture and how it got there, before scoring."""

    image: Image.Image
    record: StepRecord | None
    stop_reason: str
    seconds: float


def run_group(
    engine: Engine, content: Image.Image, styles: list[Image.Image], group: list[Cell], reporter: ProgressReporter
) -> tuple[str, dict[int, Shot]]:
    """One Engine.run of the group's longest `steps`; shorter cells are its snapshots.

    Returns the run's stop reason and a Shot per finished cell (by cell index). Left out: after
    Ctrl-C, the cells not reached; and any snapshot the engine did not report (on accelerators
    it reads losses, and calls back, only every few steps), which the caller runs on its own.
    """
    run_steps = group[0].run_steps
    options = group[0].options.replace(steps=run_steps)
    wanted = {c.options.steps for c in group} - {run_steps}
    final_size = images.fit_size(*content.size, options.size)
    snapshots: dict[int, Shot] = {}

    def callback(progress: Progress) -> None:
        reporter(progress)
        if progress.step in wanted:
            shot = progress.preview()
            if shot.size != final_size:  # multi-scale: still at a coarser scale
                shot = shot.resize(final_size, Image.Resampling.BICUBIC)
            snapshots[progress.step] = Shot(shot, progress.record, "done", progress.record.seconds)

    try:
        result = engine.run(content, styles, options, callback)
    finally:
        reporter.close()
    reached = result.records[-1].step if result.records else 0
    final = Shot(result.image, result.records[-1] if result.records else None, result.stop_reason, result.seconds)
    shots = {}
    for cell in group:
        steps = cell.options.steps
        if steps in snapshots:
            shots[cell.index] = snapshots[steps]
        elif result.stop_reason == "interrupted":
            continue
        elif steps >= run_steps or (result.stop_reason == "diverged" and steps > reached):
            shots[cell.index] = final
    return result.stop_reason, shots


def measure(shot: Shot, cell: Cell, inputs: Inputs, engine: Engine) -> dict:
    """The cell's row of numbers; with several styles, the style distance is their blend-weighted mean."""
    scores = [score(shot.image, inputs.content, style, engine) for style in inputs.styles]
    weights = cell.options.style_weights or [1.0] * len(inputs.styles)
    style_distance = sum(w * s.style for w, s in zip(weights, scores)) / sum(weights)
    return {
        "key": cell.key,
        "options": dataclasses.asdict(cell.options),
        "run_steps": cell.run_steps,
        "seconds": round(shot.seconds, 3),
        "content_distance": scores[0].content,
        "style_distance": style_distance,
        "objective": scores[0].content + STYLE_FACTOR * style_distance,
        "final_loss": shot.record.total if shot.record else None,
        "steps_done": shot.record.step if shot.record else 0,
        "stop_reason": shot.stop_reason,
        "width": shot.image.width,
        "height": shot.image.height,
    }


class GridProgress:
    """Cells done / total with an ETA: a tqdm bar on a terminal, one line per cell otherwise."""

    def __init__(self, total: int, done: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total, self.done, self.computed = total, done, 0
        self.started = time.perf_counter()
        tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = (tqdm(total=total, initial=done, desc="compare", unit="cell", file=self.stream, position=0)
                    if tty else None)

    def cell_done(self, label: str, seconds: float) -> None:
        """Counts a computed cell; the ETA uses only computed ones, as cached cells cost nothing."""
        self.done += 1
        self.computed += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            elapsed = time.perf_counter() - self.started
            left = elapsed / self.computed * (self.total - self.done)
            print(f"compare: {self.done}/{self.total} cells done ({label}: {seconds:.1f} s), about {left:.0f} s left",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Ends the bar so later output starts on a line of its own."""
        if self.bar is not None:
            self.bar.close()


def group_desc(todo: list[Cell], n_cells: int) -> str:
    """Names the run by the cells it produces, as the cells are what the user counts."""
    first, last = todo[0].index + 1, todo[-1].index + 1
    return f"cell {first}/{n_cells}" if len(todo) == 1 else f"cells {first}-{last}/{n_cells}"


# --- the cache -----------------------------------------------------------------------------


def load_cached(cells: list[Cell], cell_dir: Path) -> dict[int, dict]:
    """Rows of the cells finished by an earlier run, by cell index."""
    rows = {}
    for cell in cells:
        cached = cell_dir / f"{cell.key}.json"
        if cached.is_file() and (cell_dir / f"{cell.key}.png").is_file():
            rows[cell.index] = json.loads(cached.read_text())
    return rows


def save_cell(cell: Cell, image: Image.Image, row: dict, cell_dir: Path) -> None:
    """Picture first, numbers last: load_cached trusts a cell only once both are there."""
    images.save_image(image, cell_dir / f"{cell.key}.png", overwrite=True)
    images.write_atomic(cell_dir / f"{cell.key}.json", json.dumps(row, indent=1).encode())


def run_and_save(
    todo: list[Cell], inputs: Inputs, cell_dir: Path, engines: Engines, reporter: ProgressReporter,
    saved: Callable[[Cell, dict], None],
) -> tuple[str, list[Cell]]:
    """One run of a group: each finished cell measured, saved and handed to `saved(cell, row)`.
    Returns the stop reason and the cells whose snapshot the engine did not report, each as a
    run of its own (none after Ctrl-C). Local grids and Ray tasks (cluster.py) both run this."""
    stop_reason, shots = run_group(engines.for_options(todo[0].options), inputs.content, inputs.styles, todo, reporter)
    for cell in (c for c in todo if c.index in shots):
        row = measure(shots[cell.index], cell, inputs, engines.scorer())
        save_cell(cell, shots[cell.index].image, row, cell_dir)
        saved(cell, row)
    if stop_reason == "interrupted":
        return stop_reason, []
    return stop_reason, [dataclasses.replace(c, run_steps=c.options.steps) for c in todo if c.index not in shots]


def compute(
    cells: list[Cell], axes: list[Axis], rows: dict[int, dict], inputs: Inputs, cell_dir: Path,
    engines: Engines, quiet: bool,
) -> bool:
    """Run every cell not in `rows`, saving each and adding its row as it finishes, so Ctrl-C
    loses at most the run in progress; returns whether Ctrl-C stopped it."""
    overall = GridProgress(len(cells), len(rows), enabled=not quiet)
    queue = [[c for c in group if c.index not in rows] for group in run_groups(cells)]

    def saved(cell: Cell, row: dict) -> None:
        rows[cell.index] = row
        overall.cell_done(cell_label(cell, axes), row["seconds"])

    try:
        while queue:
            todo = queue.pop(0)
            if not todo:
                continue
            reporter = ProgressReporter(group_desc(todo, len(cells)), enabled=not quiet,
                                        position=1 if overall.bar else 0)
            stop_reason, missed = run_and_save(todo, inputs, cell_dir, engines, reporter, saved)
            if stop_reason == "interrupted":
                return True
            queue[:0] = [[c] for c in missed]  # a snapshot the engine did not report gets a run of its own
    finally:
        overall.close()
    return False
