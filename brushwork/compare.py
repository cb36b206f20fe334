"""`brushwork compare` runs a grid of settings and lays the results out side by side;
`brushwork score` measures one image. The seed's whole study was comparing settings by eye,
so this turns that study into one command.

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

import argparse
import base64
import csv
import dataclasses
import hashlib
import html
import io
import itertools
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from . import __version__, api, images
from .errors import BrushworkError
from .engine import Engine, Progress, StepRecord, image_key
from .options import SETTING_BY_FIELD, Options, add_flags, options_from_args, parse_option
from .progress import ProgressReporter
from .score import SCORE_CONTENT_LAYERS, SCORE_STYLE_LAYERS, STYLE_FACTOR, score

SCORE_LAYERS = tuple(sorted(SCORE_STYLE_LAYERS + SCORE_CONTENT_LAYERS))
# Options whose own value is a comma list (style-crop, style-layers, ...): their --vary
# values are separated by ';' instead of ','.
LIST_FIELDS = {f.name for f in dataclasses.fields(Options) if str(f.type).startswith("tuple")}
OPTIONAL_FIELDS = {f.name for f in dataclasses.fields(Options) if f.default is None}
SHEET_THUMB = 256  # longest side of a cell on the contact sheet, at most
METRICS = ("seconds", "content_distance", "style_distance", "objective", "final_loss", "steps_done", "stop_reason")


def score_engine(device: str = "auto") -> Engine:
    """The network brushwork.score measures with (default weights, max pooling), shared with
    any run that uses the same setup."""
    return api.get_engine(device, None, "auto", "max", SCORE_LAYERS)


# --- the grid ------------------------------------------------------------------------------


@dataclass
class Axis:
    """One --vary KEY=V1,V2: the Options field, and each value as parsed and as written."""

    key: str  # display name, dashed: "style-weight"
    field: str
    labels: list[str]
    values: list[object]


@dataclass
class Cell:
    index: int
    coords: tuple[int, ...]  # index into each axis' values
    options: Options
    run_steps: int = 0  # length of the run this cell is a snapshot of (== options.steps without a steps axis)
    key: str = ""  # cache key, also the file name of its image


@dataclass
class Page:
    """One contact sheet: rows × columns of the first two axes, at one value of the rest."""

    name: str  # file name of its sheet
    title: str  # the fixed values of axes 3+, "" when there are at most two axes
    row_axis: Axis | None
    col_axis: Axis
    grid: list[list[Cell]]


def format_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
    values = []
    for label in labels:
        if label == "none" and field in OPTIONAL_FIELDS:
            values.append(None)
            continue
        try:
            values.append(parse_option(field, label))
        except BrushworkError as e:
            hint = " (separate its values with ';')" if field in LIST_FIELDS else ""
            raise BrushworkError(f"--vary {shown}: {e}{hint}") from None
    for i, value in enumerate(values):
        if value in values[:i]:
            raise BrushworkError(f"--vary {shown}: the value {labels[i]!r} is listed twice")
    return Axis(shown, field, labels, values)


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


def layout(axes: list[Axis], cells: list[Cell]) -> list[Page]:
    """Axis 1 -> rows, axis 2 -> columns (a single axis -> one row), axes 3+ -> one page each."""
    by_coords = {c.coords: c for c in cells}
    row_axis = axes[0] if len(axes) >= 2 else None
    col_axis = axes[1] if len(axes) >= 2 else axes[0]
    page_axes = axes[2:]
    pages = []
    for page_coords in itertools.product(*(range(len(a.values)) for a in page_axes)):
        pairs = [(a.key, a.labels[i]) for a, i in zip(page_axes, page_coords)]
        name = re.sub(r"[^A-Za-z0-9._=+-]+", "_", "sheet" + "".join(f"_{k}={v}" for k, v in pairs)) + ".png"
        title = ", ".join(f"{k} = {v}" for k, v in pairs)
        rows = range(len(row_axis.values)) if row_axis else [None]
        grid = [
            [by_coords[(c,) if r is None else (r, c, *page_coords)] for c in range(len(col_axis.values))] for r in rows
        ]
        pages.append(Page(name, title, row_axis, col_axis, grid))
    return pages


def cell_key(cell: Cell, input_keys: list[str]) -> str:
    """Hash of everything that decides a cell's picture: options, source run, inputs, version."""
    inputs = list(input_keys)
    if cell.options.init not in ("content", "noise"):
        inputs.append(image_key(images.load_image(cell.options.init)))
    payload = {
        "options": dataclasses.asdict(cell.options),
        "run_steps": cell.run_steps,
        "inputs": inputs,
        "brushwork": __version__,
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


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


def measure(shot: Shot, cell: Cell, content: Image.Image, styles: list[Image.Image], engine: Engine) -> dict:
    """The cell's row of numbers; with several styles, the style distance is their blend-weighted mean."""
    scores = [score(shot.image, content, style, engine) for style in styles]
    weights = cell.options.style_weights or [1.0] * len(styles)
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

    def __init__(self, total: int, done: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total, self.done, self.computed = total, done, 0
        self.started = time.perf_counter()
        tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=total, initial=done, desc="compare", unit="cell", file=self.stream, position=0) if tty else None

    def cell_done(self, label: str, seconds: float) -> None:
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
        if self.bar is not None:
            self.bar.close()


def cell_label(cell: Cell, axes: list[Axis]) -> str:
    return " ".join(f"{a.key}={a.labels[i]}" for a, i in zip(axes, cell.coords))


def load_cached(cells: list[Cell], cell_dir: Path) -> dict[int, dict]:
    """Rows of the cells finished by an earlier run, by cell index."""
    rows = {}
    for cell in cells:
        cached = cell_dir / f"{cell.key}.json"
        if cached.is_file() and (cell_dir / f"{cell.key}.png").is_file():
            rows[cell.index] = json.loads(cached.read_text())
    return rows


def compute(
    cells: list[Cell], axes: list[Axis], rows: dict[int, dict], content: Image.Image, styles: list[Image.Image],
    cell_dir: Path, score_setup: tuple, engine: Callable[[tuple], Engine], quiet: bool,
) -> bool:
    """Run every cell not in `rows` and add its row; returns whether Ctrl-C stopped it.

    `engine(setup)` gives the network for a (device, weights, weights_format, pooling) setup."""
    overall = GridProgress(len(cells), len(rows), enabled=not quiet)
    queue = [[c for c in group if c.index not in rows] for group in run_groups(cells)]
    try:
        while queue:
            todo = queue.pop(0)
            if not todo:
                continue
            o = todo[0].options
            first, last = todo[0].index + 1, todo[-1].index + 1
            desc = f"cell {first}/{len(cells)}" if len(todo) == 1 else f"cells {first}-{last}/{len(cells)}"
            reporter = ProgressReporter(desc, enabled=not quiet, position=1 if overall.bar else 0)
            stop_reason, shots = run_group(engine((o.device, o.weights, o.weights_format, o.pooling)), content,
                                           styles, todo, reporter)
            if stop_reason != "interrupted":  # a snapshot the engine did not report gets a run of its own
                missed = [c for c in todo if c.index not in shots]
                queue[:0] = [[dataclasses.replace(c, run_steps=c.options.steps)] for c in missed]
            for cell in todo:
                if cell.index not in shots:
                    continue
                row = measure(shots[cell.index], cell, content, styles, engine(score_setup))
                images.save_image(shots[cell.index].image, cell_dir / f"{cell.key}.png", overwrite=True)
                images.write_atomic(cell_dir / f"{cell.key}.json", json.dumps(row, indent=1).encode())
                rows[cell.index] = row
                overall.cell_done(cell_label(cell, axes), row["seconds"])
            if stop_reason == "interrupted":
                return True
    finally:
        overall.close()
    return False


# --- outputs -------------------------------------------------------------------------------


def fixed_settings(base: Options, axes: list[Axis]) -> str:
    """The base options that differ from the defaults and are not varied, for the captions."""
    varied = {a.field for a in axes}
    defaults = Options()
    return ", ".join(
        f"{f.name.replace('_', '-')}={format_value(getattr(base, f.name))}"
        for f in dataclasses.fields(Options)
        if f.name not in varied and getattr(base, f.name) != getattr(defaults, f.name)
    )


def caption(row: dict) -> list[str]:
    lines = [f"content {row['content_distance']:.3g}  style {row['style_distance']:.3g}"]
    loss = "n/a" if row["final_loss"] is None else f"{row['final_loss']:.3g}"
    stop = "" if row["stop_reason"] == "done" else f" · {row['stop_reason']}"
    return lines + [f"loss {loss} · {row['seconds']:.1f} s{stop}"]


def style_name(i: int, n: int) -> str:
    return f"style {i + 1}" if n > 1 else "style"


def thumbnail(image: Image.Image, box: int) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((box, box), Image.Resampling.LANCZOS)
    return thumb


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            candidate = word
        line = candidate
    return lines + [line] if line else lines


def render_sheet(
    page: Page, cell_images: dict[int, Image.Image], rows: dict[int, dict],
    content: Image.Image, styles: list[Image.Image], fixed: str,
) -> Image.Image:
    """Contact sheet: title, content and style thumbnails, fixed settings, then the grid with
    each axis' name and values and each cell's distances and time underneath."""
    big, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    ink, gray, pad, line = (20, 20, 20), (110, 110, 110), 10, 16
    cells = [cell for grid_row in page.grid for cell in grid_row]
    box = min(SHEET_THUMB, max(max(cell_images[c.index].size) for c in cells))
    thumbs = {c.index: thumbnail(cell_images[c.index], box) for c in cells}
    captions = {c.index: caption(rows[c.index]) for c in cells}
    col_key, col_values = page.col_axis.key, page.col_axis.labels
    row_key, row_values = (page.row_axis.key, page.row_axis.labels) if page.row_axis else ("", [""])
    inner_w = max([thumbs[c.index].width for c in cells] + [small.getlength(t) for c in cells for t in captions[c.index]]
                  + [big.getlength(v) for v in col_values] + [small.getlength(col_key)])
    col_w = inner_w + 2 * pad
    label_w = max([small.getlength(row_key)] + [big.getlength(v) for v in row_values]) + pad if page.row_axis else 0
    grid_w = pad + label_w + len(col_values) * col_w

    input_box = max(96, box * 2 // 3)
    inputs = [("content", thumbnail(content, input_box))]
    inputs += [(style_name(i, len(styles)), thumbnail(s, input_box)) for i, s in enumerate(styles)]
    width = int(max(grid_w + pad, pad + sum(t.width + pad for _, t in inputs), 480))
    title = "brushwork compare" + (f": {page.title}" if page.title else "")
    fixed_lines = wrap(f"fixed: {fixed}", small, width - 2 * pad) if fixed else []
    inputs_h = max(t.height for _, t in inputs)
    header_h = pad + line + 6 + inputs_h + line + 4 + len(fixed_lines) * line + pad
    row_hs = [max(thumbs[c.index].height for c in grid_row) + 2 * line + 2 * pad for grid_row in page.grid]
    height = int(header_h + 2 * line + 8 + sum(row_hs))
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)

    y = pad
    draw.text((pad, y), title, font=big, fill=ink)
    y += line + 6
    x = pad
    for name, thumb in inputs:
        sheet.paste(thumb, (x, y))
        draw.text((x, y + thumb.height + 2), name, font=small, fill=gray)
        x += thumb.width + pad
    y += inputs_h + line + 4
    for text in fixed_lines:
        draw.text((pad, y), text, font=small, fill=gray)
        y += line

    y = header_h
    x0 = pad + label_w
    for j, value in enumerate(col_values):
        center = x0 + j * col_w + col_w / 2
        draw.text((center, y), col_key, font=small, fill=gray, anchor="mt")
        draw.text((center, y + line), value, font=big, fill=ink, anchor="mt")
    y += 2 * line + 8
    for i, grid_row in enumerate(page.grid):
        image_h = row_hs[i] - 2 * line - 2 * pad
        if page.row_axis:
            draw.text((pad, y + image_h / 2 - line), row_key, font=small, fill=gray)
            draw.text((pad, y + image_h / 2), row_values[i], font=big, fill=ink)
        for j, cell in enumerate(grid_row):
            thumb = thumbs[cell.index]
            center = x0 + j * col_w + col_w / 2
            sheet.paste(thumb, (int(center - thumb.width / 2), int(y + (image_h - thumb.height) / 2)))
            for k, text in enumerate(captions[cell.index]):
                draw.text((center, y + image_h + 3 + k * line), text, font=small, fill=ink if k == 0 else gray, anchor="mt")
        y += row_hs[i]
    return sheet


def data_uri(image: Image.Image, box: int = 200) -> str:
    buffer = io.BytesIO()
    thumbnail(image, box).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


HTML_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 6px; vertical-align: top; text-align: left; }
.grid th { color: #555; font-weight: normal; } .grid th b { color: #111; font-size: 1.1em; }
.grid img { max-width: 256px; max-height: 256px; display: block; }
.m { font-size: 12px; color: #444; } details { font-size: 12px; } details td { padding: 0 6px 0 0; }
.inputs figure { display: inline-block; margin: 0 1em 0 0; }
.results td, .results th { border-bottom: 1px solid #ddd; font-size: 12px; }
"""


def render_html(
    pages: list[Page], cells: list[Cell], axes: list[Axis], rows: dict[int, dict],
    content: Image.Image, styles: list[Image.Image], args: argparse.Namespace, fixed: str,
) -> str:
    """index.html: one page, no outside files but the cell images and sheets next to it."""
    e = html.escape
    out = [f"<!doctype html><meta charset=utf-8><title>brushwork compare</title><style>{HTML_STYLE}</style>",
           "<h1>brushwork compare</h1>",
           f"<p>content: {e(str(args.content))}<br>style: {e(', '.join(map(str, args.style)))}<br>"
           f"varied: {e(' × '.join(f'{a.key} ({len(a.values)})' for a in axes))}"
           + (f"<br>fixed: {e(fixed)}" if fixed else "") + "</p>",
           '<div class="inputs">']
    out += [f'<figure><img src="{data_uri(im)}" alt="{e(name)}"><figcaption>{e(name)}</figcaption></figure>'
            for name, im in [("content", content)] + [(style_name(i, len(styles)), s) for i, s in enumerate(styles)]]
    out.append("</div>")

    def cell_html(cell: Cell) -> str:
        row = rows[cell.index]
        options = "".join(f"<tr><td>{e(k.replace('_', '-'))}</td><td>{e(format_value(v))}</td></tr>"
                          for k, v in row["options"].items())
        src = f"cells/{cell.key}.png"
        return (f'<td><a href="{src}" title="open full size"><img src="{src}" alt="{e(cell_label(cell, axes))}"></a>'
                f'<div class="m">{"<br>".join(e(t) for t in caption(row))}</div>'
                f"<details><summary>options</summary><table>{options}</table></details></td>")

    for page in pages:
        out.append(f"<h2>{e(page.title or 'grid')}</h2><p><a href=\"{e(page.name)}\">{e(page.name)}</a></p>")
        out.append('<table class="grid"><tr><th></th>')
        out += [f"<th>{e(page.col_axis.key)}<br><b>{e(label)}</b></th>" for label in page.col_axis.labels]
        out.append("</tr>")
        for i, grid_row in enumerate(page.grid):
            head = f"{e(page.row_axis.key)}<br><b>{e(page.row_axis.labels[i])}</b>" if page.row_axis else ""
            out.append(f"<tr><th>{head}</th>" + "".join(cell_html(c) for c in grid_row) + "</tr>")
        out.append("</table>")

    out.append('<h2>All cells</h2><table class="results"><tr><th>cell</th>')
    out += [f"<th>{e(a.key)}</th>" for a in axes] + [f"<th>{m.replace('_', ' ')}</th>" for m in METRICS] + ["</tr>"]
    for cell in cells:
        row = rows[cell.index]
        out.append(f'<tr><td><a href="cells/{cell.key}.png">{cell.index + 1}</a></td>'
                   + "".join(f"<td>{e(a.labels[i])}</td>" for a, i in zip(axes, cell.coords))
                   + "".join(f"<td>{e(format_value(row[m]))}</td>" for m in METRICS) + "</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def result_rows(cells: list[Cell], axes: list[Axis], rows: dict[int, dict]) -> list[dict]:
    """One row per cell, grid order: position, varied values, numbers, full options."""
    return [
        {"cell": c.index + 1, "image": f"cells/{c.key}.png", "vary": {a.key: a.labels[i] for a, i in zip(axes, c.coords)},
         **rows[c.index]}
        for c in cells
    ]


def render_csv(results: list[dict]) -> str:
    fields = [f.name for f in dataclasses.fields(Options)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["cell", "image", *METRICS, "run_steps", "width", "height", *fields])
    for r in results:
        writer.writerow([r["cell"], r["image"], *(r[m] for m in METRICS), r["run_steps"], r["width"], r["height"],
                         *(format_value(r["options"][f]) for f in fields)])
    return buffer.getvalue()


# --- commands ------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[Options, list[Axis], list[Cell], Image.Image, list[Image.Image], Path]:
    """Everything that can be wrong with the request is found here, before any optimization."""
    base = options_from_args(args)
    axes = [parse_vary(spec) for spec in args.vary]
    for i, axis in enumerate(axes):
        if axis.field in (a.field for a in axes[:i]):
            raise BrushworkError(f"--vary {axis.key} is given twice; list all its values in one --vary")
        if getattr(args, axis.field) is not None:
            raise BrushworkError(f"{axis.key} is both varied and set by --{axis.key}; drop one")
    n_cells = math.prod(len(a.values) for a in axes)
    if n_cells > args.max_cells:
        raise BrushworkError(
            f"the grid has {n_cells} cells, more than --max-cells {args.max_cells}; vary fewer values or raise --max-cells"
        )
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise BrushworkError(f"{out_dir} exists and is not a folder")
    content = images.load_image(args.content)
    styles = [images.load_image(s) for s in args.style]
    cells = expand(base, axes)
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
    input_keys = [image_key(content)] + [image_key(s) for s in styles]
    for cell in cells:
        cell.key = cell_key(cell, input_keys)
    try:
        (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BrushworkError(f"cannot create {out_dir / 'cells'}: {e.strerror}") from None
    for output in (out_dir / "index.html", out_dir / "cells" / "cell.png"):
        images.check_writable(output, overwrite=True)
    return base, axes, cells, content, styles, out_dir


def cmd_compare(args: argparse.Namespace) -> int:
    base, axes, cells, content, styles, out_dir = prepare(args)
    cell_dir = out_dir / "cells"

    # One network per setup, holding every layer its cells (and the scorer, if it shares the setup) need.
    score_setup = (base.device, None, "auto", "max")
    layers: dict[tuple, set[str]] = {score_setup: set(SCORE_LAYERS)}
    for cell in cells:
        o = cell.options
        style_layers, content_layers = o.layers
        layers.setdefault((o.device, o.weights, o.weights_format, o.pooling), set()).update(style_layers + content_layers)

    def engine(setup: tuple) -> Engine:
        """Loaded on first use (api.get_engine keeps it), so a fully cached grid loads nothing."""
        return api.get_engine(*setup, tuple(sorted(layers[setup])))

    rows = load_cached(cells, cell_dir)
    for cell in cells:  # limits of size, layers and memory, checked before any optimization
        if cell.index not in rows:
            o = cell.options
            cropped = styles if o.style_crop is None else [images.crop(s, o.style_crop) for s in styles]
            engine((o.device, o.weights, o.weights_format, o.pooling)).plan(content.size, o, [s.size for s in cropped])
    started = time.perf_counter()
    interrupted = compute(cells, axes, rows, content, styles, cell_dir, score_setup, engine, args.quiet)
    if interrupted:
        print(f"brushwork: interrupted; {len(rows)} of {len(cells)} cells are saved in {cell_dir}. "
              "Run the same command again to finish the rest.", file=sys.stderr)
        return 130

    pages = layout(axes, cells)
    fixed = fixed_settings(base, axes)
    cell_images = {c.index: images.load_image(cell_dir / f"{c.key}.png") for c in cells}
    for page in pages:
        images.save_image(render_sheet(page, cell_images, rows, content, styles, fixed), out_dir / page.name)
    results = result_rows(cells, axes, rows)
    images.write_atomic(out_dir / "index.html", render_html(pages, cells, axes, rows, content, styles, args, fixed).encode())
    images.write_atomic(out_dir / "results.csv", render_csv(results).encode())
    summary = {"content": str(args.content), "styles": [str(s) for s in args.style],
               "vary": [{"key": a.key, "values": a.labels} for a in axes], "cells": results}
    images.write_atomic(out_dir / "results.json", json.dumps(summary, indent=1).encode())
    if not args.quiet:
        sheets = ", ".join(p.name for p in pages)
        print(f"wrote {out_dir}: {sheets}, index.html, results.csv, results.json "
              f"({len(cells)} cells, {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    output, content, style = (images.load_image(p) for p in (args.image, args.content, args.style))
    result = score(output, content, style, score_engine(args.device))
    numbers = {"content_distance": result.content, "style_distance": result.style, "objective": result.objective}
    if args.json:
        print(json.dumps(numbers, indent=1))
    else:
        print(f"content distance  {result.content:.4g}  (relative relu4_2 feature error)")
        print(f"style distance    {result.style:.4g}  (mean relative Gram error, relu1_1…relu5_1)")
        print(f"objective         {result.objective:.4g}  (content + {STYLE_FACTOR:g} × style)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `compare` and `score` subcommands."""
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
    add_flags(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("score", help="how far an image is from a content photo and a style image")
    p.add_argument("image", help="the image to measure (e.g. a stylized output)")
    p.add_argument("--content", "-c", required=True, help="content photo")
    p.add_argument("--style", "-s", required=True, help="style image")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=cmd_score)
