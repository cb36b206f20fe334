"""The cell cache: every finished cell's picture and numbers under a hash of what decides
them, so an interrupted or extended batch recomputes only what is new."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from PIL import Image

from .. import __version__, images, masks
from ..engine import image_key
from .cells import Cell


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
