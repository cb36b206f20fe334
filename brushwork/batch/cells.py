"""The cells of a batch (each one picture to make, with its own Options), the pictures they
share, and the groups of cells that one engine run makes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from PIL import Image

from ..options import Options

CELLS = "cells"  # the cache folder inside the output folder; the reports link into it


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


def run_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that differ only in `steps`, in grid order: each group is one optimization run."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        same_run = json.dumps(dataclasses.asdict(cell.options.replace(steps=0)), sort_keys=True)
        groups.setdefault(same_run, []).append(cell)
    return list(groups.values())
