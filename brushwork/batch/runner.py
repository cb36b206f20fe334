"""Where a batch's runs go: the commands choose a runner, this process (LocalRunner) or a
Ray cluster (brushwork.cluster.RayRunner, imported only by the commands, as only --ray needs
Ray). Both write each finished cell into the same cache and add its row to `rows`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..progress import ProgressReporter
from .cells import Cell, Inputs
from .engines import Engines
from .progress import GridProgress, group_desc
from .runs import pending_groups, run_queue


class Runner(Protocol):
    def run(
        self, cells: list[Cell], rows: dict[int, dict], inputs: Inputs, cell_dir: Path, engines: Engines,
        label: Callable[[Cell], str],
    ) -> bool:
        """Run every cell not in `rows`, adding its row as it finishes; whether Ctrl-C stopped it.
        `label(cell)` names a cell in the progress lines."""


@dataclass
class LocalRunner:
    """The groups one after another in this process, on its engine pool."""

    quiet: bool = False

    def run(
        self, cells: list[Cell], rows: dict[int, dict], inputs: Inputs, cell_dir: Path, engines: Engines,
        label: Callable[[Cell], str],
    ) -> bool:
        """Every cell not in `rows`, saving each and adding its row as it finishes, so Ctrl-C
        loses at most the run in progress; returns whether Ctrl-C stopped it."""
        overall = GridProgress(len(cells), len(rows), enabled=not self.quiet)

        def saved(cell: Cell, row: dict) -> None:
            rows[cell.index] = row
            overall.cell_done(label(cell), row["seconds"])

        def reporter_for(todo: list[Cell]) -> ProgressReporter:
            return ProgressReporter(group_desc(todo, len(cells)), enabled=not self.quiet,
                                    position=1 if overall.bar else 0)

        try:
            return run_queue(pending_groups(cells, rows), inputs, cell_dir, engines, reporter_for, saved)
        finally:
            overall.close()
