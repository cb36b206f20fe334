"""What the worker does with a job of each kind: a stylization, or a compare grid.

Both paint with the engine through the same step callback (which also stops a cancelled
run), and return the job fields their outcome sets. A grid is planned with brushwork.compare
when it is queued (so a bad axis is the client's 4xx, not a failed job) and again when it
runs; its finished cells are cached in the job's folder like the CLI's, so a retried grid
redoes only the cells it had not finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from .. import images
from ..api import engine_for
from ..batch.cache import load_cached
from ..batch.cells import CELLS, Cell, Inputs
from ..batch.engines import Engines, check_plans
from ..batch.runs import pending_groups, run_queue
from ..compare.grid import Axis, cell_label, check_cell_count, parse_axes, plan_cells
from ..compare.report import layout, write_reports
from ..engine import Progress
from ..errors import BrushworkError
from ..options import SETTING_BY_FIELD, Options
from .fastmode import Models
from .form import text_settings
from .records import CONTENT_FILE, RESULT_FILES, Job, encode_preview, style_file
from .store import Store

MAX_CELLS = 16  # a grid is one job in a shared line: keep it to minutes, not hours
MAX_AXES = 2
ROW_NUMBERS = ("seconds", "content_distance", "style_distance", "objective", "final_loss", "steps_done", "stop_reason")


@dataclass
class RunContext:
    """What a runner needs from the queue: the options to run with (the server's device and
    precision included), where the job's files are, the step callback, where to report a
    finished grid cell, and where to say which cells the next run of a grid paints."""

    options: Options | None  # None for a fast-mode video, which takes no Options
    folder: Path
    store: Store
    callback: Callable[[Progress], None]
    cell_done: Callable[[dict], None]
    group_started: Callable[[list[int]], None] = lambda cells: None
    frame_done: Callable[[int, bytes | None], None] = lambda count, preview: None  # a video's frames so far
    models: Models | None = None  # fast mode's networks

    def inputs(self, job: Job) -> tuple[Image.Image, list[Image.Image]]:
        content = images.load_image(self.folder / CONTENT_FILE)
        return content, [images.load_image(self.folder / style_file(i)) for i in range(len(job.style_names))]


def run_stylize(job: Job, ctx: RunContext) -> dict[str, Any]:
    """One picture, saved as PNG and JPEG."""
    content, styles = ctx.inputs(job)
    result = engine_for(ctx.options).run(content, styles, ctx.options, ctx.callback)
    for name in RESULT_FILES.values():
        ctx.store.save_image(result.image, ctx.folder / name)
    changes: dict[str, Any] = {"width": result.size[0], "height": result.size[1],
                               "preview": encode_preview(result.image)}
    if result.stop_reason == "diverged":
        changes["warning"] = "the optimization diverged (loss became NaN/inf); this is the last finite image"
    return changes


# --- compare -------------------------------------------------------------------------------


def check_axis(axis: Axis) -> None:
    """Only the page's own settings may vary, within the page's bounds: the rest of the table
    names files on the server (weights, init) or has no caps for a shared server."""
    setting = SETTING_BY_FIELD[axis.field]
    if setting not in text_settings():
        raise BrushworkError(f"vary {axis.key}: not one of this form's settings")
    for label, value in zip(axis.labels, axis.values):
        if setting.bounds and value is not None and not setting.bounds[0] <= value <= setting.bounds[1]:
            low, high = setting.bounds
            raise BrushworkError(f"vary {axis.key}: {label} is not from {low:g} to {high:g}")


def plan_grid(options: Options, vary: list[str], inputs: Inputs) -> tuple[list[Axis], list[Cell]]:
    """The grid's axes and checked cells, or BrushworkError saying what is wrong with it."""
    if not 1 <= len(vary) <= MAX_AXES:
        raise BrushworkError(f"vary: give one or two settings to vary, got {len(vary)}")
    axes = parse_axes(vary, set())
    for axis in axes:
        check_axis(axis)
    check_cell_count(axes, MAX_CELLS)
    return axes, plan_cells(options, axes, inputs)


def describe_grid(axes: list[Axis], cells: list[Cell]) -> dict:
    """The grid as the page lays it out before any cell is done."""
    return {"axes": [{"key": a.key, "labels": a.labels} for a in axes],
            "cells": [{"index": c.index, "coords": list(c.coords), "label": cell_label(c, axes),
                       "steps": c.options.steps} for c in cells]}


def cell_summary(cell: Cell, row: dict) -> dict:
    """A finished cell for the page: its numbers and the key its picture is stored under."""
    return {"index": cell.index, "key": cell.key, **{name: row.get(name) for name in ROW_NUMBERS}}


class StepReporter:
    """The batch runner's reporter interface over the job's step callback."""

    def __init__(self, callback: Callable[[Progress], None]):
        self.callback = callback

    def __call__(self, progress: Progress) -> None:
        self.callback(progress)

    def close(self) -> None:
        """Nothing to close: the job's state is the progress display."""


def run_cells(cells: list[Cell], rows: dict[int, dict], inputs: Inputs, engines: Engines, ctx: RunContext) -> None:
    """The batch runner's queue, each group announced as it starts and each cell reported as it
    is saved; a cancel stops it between steps through the callback."""

    def saved(cell: Cell, row: dict) -> None:
        rows[cell.index] = row
        ctx.cell_done(cell_summary(cell, row))

    def reporter_for(todo: list[Cell]) -> StepReporter:
        ctx.group_started([c.index for c in todo])
        return StepReporter(ctx.callback)

    run_queue(pending_groups(cells, rows), inputs, ctx.folder / CELLS, engines, reporter_for, saved, ctx.store.writing)


def run_compare(job: Job, ctx: RunContext) -> dict[str, Any]:
    """Every cell (cached ones from an earlier attempt reported at once), then the reports."""
    content, styles = ctx.inputs(job)
    inputs = Inputs(content, styles, job.content_name, job.style_names)
    axes, cells = plan_grid(ctx.options, job.vary, inputs)
    (ctx.folder / CELLS).mkdir(exist_ok=True)
    engines = Engines(ctx.options, cells)
    rows = load_cached(cells, ctx.folder / CELLS)
    check_plans(cells, rows, inputs, engines)
    for cell in cells:
        if cell.index in rows:
            ctx.cell_done(cell_summary(cell, rows[cell.index]))
    run_cells(cells, rows, inputs, engines, ctx)
    sheets = [page.name for page in layout(axes, cells)]
    reports = sheets + ["index.html", "results.csv", "results.json"]
    try:
        with ctx.store.writing():
            write_reports(ctx.folder, ctx.options, axes, cells, rows, inputs)
    except BaseException:
        ctx.store.remove(job, reports)  # all the reports or none
        raise
    sheet = images.load_image(ctx.folder / sheets[0])
    return {"reports": reports, "width": sheet.width, "height": sheet.height, "preview": encode_preview(sheet)}


RUNNERS: dict[str, Callable[[Job, RunContext], dict[str, Any]]] = {"stylize": run_stylize, "compare": run_compare}
