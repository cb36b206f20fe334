"""A batch's progress: cells done of all, with an ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from .cells import Cell


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
