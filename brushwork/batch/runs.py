"""Running a batch's groups: one engine run per group, its snapshots, each finished cell
measured and cached. Every runner (this process, a Ray task, the web studio's worker) goes
through `run_queue`."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

from PIL import Image

from .. import images
from ..engine import Engine, Progress, StepRecord
from ..progress import ProgressReporter
from ..score import STYLE_FACTOR, score
from .cache import save_cell
from .cells import Cell, Inputs, run_groups
from .engines import Engines


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


def run_and_save(
    todo: list[Cell], inputs: Inputs, cell_dir: Path, engines: Engines, reporter: ProgressReporter,
    saved: Callable[[Cell, dict], None], writing: Callable[[], ContextManager] = contextlib.nullcontext,
) -> tuple[str, list[Cell]]:
    """One run of a group: each finished cell measured, saved (inside `writing()`, the web
    store's lock) and handed to `saved(cell, row)`. Returns the stop reason and the cells whose
    snapshot the engine did not report, each as a run of its own (none after Ctrl-C)."""
    stop_reason, shots = run_group(engines.for_options(todo[0].options), inputs.content, inputs.styles, todo, reporter)
    for cell in (c for c in todo if c.index in shots):
        row = measure(shots[cell.index], cell, inputs, engines.scorer())
        with writing():
            save_cell(cell, shots[cell.index].image, row, cell_dir)
        saved(cell, row)
    if stop_reason == "interrupted":
        return stop_reason, []
    return stop_reason, [dataclasses.replace(c, run_steps=c.options.steps) for c in todo if c.index not in shots]


def pending_groups(cells: list[Cell], rows: dict[int, dict]) -> list[list[Cell]]:
    """The runs still to do: each group's cells that have no row yet, empty groups left out."""
    return [todo for todo in ([c for c in group if c.index not in rows] for group in run_groups(cells)) if todo]


def run_queue(
    queue: list[list[Cell]], inputs: Inputs, cell_dir: Path, engines: Engines,
    reporter_for: Callable[[list[Cell]], ProgressReporter], saved: Callable[[Cell, dict], None],
    writing: Callable[[], ContextManager] = contextlib.nullcontext,
) -> bool:
    """Run the groups in turn, each cell saved as it finishes, so Ctrl-C loses at most the run
    in progress; a snapshot the engine did not report gets a run of its own next. Returns
    whether Ctrl-C stopped it."""
    queue = list(queue)
    while queue:
        todo = queue.pop(0)
        stop_reason, missed = run_and_save(todo, inputs, cell_dir, engines, reporter_for(todo), saved, writing)
        if stop_reason == "interrupted":
            return True
        queue[:0] = [[c] for c in missed]
    return False
