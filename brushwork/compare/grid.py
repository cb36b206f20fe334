"""The grid behind `brushwork compare`: its --vary axes and the cells they span, checked
before any run. The cells are run by the batch runner (brushwork.batch), which also says
how, and why.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from PIL import Image

from .. import images
from ..batch.cache import cell_key
from ..batch.cells import Cell, Inputs, run_groups
from ..engine import image_key
from ..errors import BrushworkError
from ..options import SETTING_BY_FIELD, Options, parse_option

# Options whose own value is a comma list (style-crop, style-layers, ...): their --vary
# values are separated by ';' instead of ','.
LIST_FIELDS = {f.name for f in dataclasses.fields(Options) if str(f.type).startswith("tuple")}
OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(Options) if f.default is None}


@dataclass
class Axis:
    """One --vary KEY=V1,V2: the Options field, and each value as parsed and as written."""

    key: str  # display name, dashed: "style-weight"
    field: str
    labels: list[str]
    values: list[object]


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


def cell_label(cell: Cell, axes: list[Axis]) -> str:
    """The cell's varied values, which is all that tells it apart from its neighbours."""
    return " ".join(f"{a.key}={a.labels[i]}" for a, i in zip(axes, cell.coords))
