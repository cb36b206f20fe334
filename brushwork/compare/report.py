"""What `brushwork compare` leaves in its output folder once every cell is computed: one
contact sheet per page of the grid, index.html, results.csv and results.json.

Everything here is rebuilt from the cell cache on every run, so an extended or resumed grid
always gets reports that cover all of its cells.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .. import images
from ..options import Options
from ..batch.cells import Cell, Inputs
from .grid import Axis, cell_label

SHEET_THUMB = 256  # longest side of a cell on the contact sheet, at most
METRICS = ("seconds", "content_distance", "style_distance", "objective", "final_loss", "steps_done", "stop_reason")
INK, GRAY = (20, 20, 20), (110, 110, 110)
PAD, LINE = 10, 16  # pixels: the gap around things, the height of a line of text


@dataclass
class Page:
    """One contact sheet: rows × columns of the first two axes, at one value of the rest."""

    name: str  # file name of its sheet
    title: str  # the fixed values of axes 3+, "" when there are at most two axes
    row_axis: Axis | None
    col_axis: Axis
    grid: list[list[Cell]]


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


# --- text shared by the reports ------------------------------------------------------------


def format_value(value: object) -> str:
    """A value as the user would type it on the command line, so reports read like flags."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
    """The few numbers worth reading under a picture; the rest is in the tables."""
    lines = [f"content {row['content_distance']:.3g}  style {row['style_distance']:.3g}"]
    loss = "n/a" if row["final_loss"] is None else f"{row['final_loss']:.3g}"
    stop = "" if row["stop_reason"] == "done" else f" · {row['stop_reason']}"
    return lines + [f"loss {loss} · {row['seconds']:.1f} s{stop}"]


def style_name(i: int, n: int) -> str:
    """Numbers the styles only when there are several to tell apart."""
    return f"style {i + 1}" if n > 1 else "style"


def named_inputs(inputs: Inputs) -> list[tuple[str, Image.Image]]:
    """The content and style pictures with their labels, shown atop every report."""
    return [("content", inputs.content)] + [(style_name(i, len(inputs.styles)), s) for i, s in enumerate(inputs.styles)]


def thumbnail(image: Image.Image, box: int) -> Image.Image:
    """A shrunk copy, leaving the cell's own picture intact for the other reports."""
    thumb = image.copy()
    thumb.thumbnail((box, box), Image.Resampling.LANCZOS)
    return thumb


# --- the contact sheet ---------------------------------------------------------------------


@dataclass
class SheetLayout:
    """Sizes worked out before drawing, since the canvas is made at its final size."""

    big: ImageFont.FreeTypeFont
    small: ImageFont.FreeTypeFont
    thumbs: dict[int, Image.Image]  # by cell index
    captions: dict[int, list[str]]
    inputs: list[tuple[str, Image.Image]]  # labelled thumbnails of the content and styles
    col_w: float
    label_w: float  # the row labels' column, 0 without a row axis
    width: int
    fixed_lines: list[str]
    inputs_h: int
    header_h: int
    row_hs: list[int]

    @property
    def height(self) -> int:
        """Header, column headings and rows stacked, as the canvas must hold them all."""
        return int(self.header_h + 2 * LINE + 8 + sum(self.row_hs))


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Breaks at spaces, as a long list of fixed settings would run off the sheet."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            candidate = word
        line = candidate
    return lines + [line] if line else lines


def column_widths(
    page: Page, thumbs: dict[int, Image.Image], captions: dict[int, list[str]],
    big: ImageFont.FreeTypeFont, small: ImageFont.FreeTypeFont,
) -> tuple[float, float]:
    """(grid column, row label column) widths: each fits its widest picture, caption or
    heading, so no text runs into its neighbour."""
    texts = [small.getlength(t) for lines in captions.values() for t in lines]
    headings = [big.getlength(v) for v in page.col_axis.labels] + [small.getlength(page.col_axis.key)]
    col_w = max([t.width for t in thumbs.values()] + texts + headings) + 2 * PAD
    if not page.row_axis:
        return col_w, 0
    return col_w, max([small.getlength(page.row_axis.key)] + [big.getlength(v) for v in page.row_axis.labels]) + PAD


def plan_sheet(
    page: Page, cell_images: dict[int, Image.Image], rows: dict[int, dict], inputs: Inputs, fixed: str
) -> SheetLayout:
    """Thumbnails at one size for the whole page (the largest cell's, at most SHEET_THUMB),
    so cells of different sizes stay comparable, and the sheet's measurements around them."""
    big, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    cells = [cell for grid_row in page.grid for cell in grid_row]
    box = min(SHEET_THUMB, max(max(cell_images[c.index].size) for c in cells))
    thumbs = {c.index: thumbnail(cell_images[c.index], box) for c in cells}
    captions = {c.index: caption(rows[c.index]) for c in cells}
    col_w, label_w = column_widths(page, thumbs, captions, big, small)
    grid_w = PAD + label_w + len(page.col_axis.labels) * col_w
    input_box = max(96, box * 2 // 3)
    named = [(name, thumbnail(image, input_box)) for name, image in named_inputs(inputs)]
    width = int(max(grid_w + PAD, PAD + sum(t.width + PAD for _, t in named), 480))
    fixed_lines = wrap(f"fixed: {fixed}", small, width - 2 * PAD) if fixed else []
    inputs_h = max(t.height for _, t in named)
    header_h = PAD + LINE + 6 + inputs_h + LINE + 4 + len(fixed_lines) * LINE + PAD
    row_hs = [max(thumbs[c.index].height for c in grid_row) + 2 * LINE + 2 * PAD for grid_row in page.grid]
    return SheetLayout(big, small, thumbs, captions, named, col_w, label_w, width, fixed_lines, inputs_h, header_h,
                       row_hs)


def draw_header(sheet: Image.Image, draw: ImageDraw.ImageDraw, page: Page, lay: SheetLayout) -> None:
    """Title, inputs and fixed settings, so a sheet passed around on its own says what it shows."""
    y = PAD
    draw.text((PAD, y), "brushwork compare" + (f": {page.title}" if page.title else ""), font=lay.big, fill=INK)
    y += LINE + 6
    x = PAD
    for name, thumb in lay.inputs:
        sheet.paste(thumb, (x, y))
        draw.text((x, y + thumb.height + 2), name, font=lay.small, fill=GRAY)
        x += thumb.width + PAD
    y += lay.inputs_h + LINE + 4
    for text in lay.fixed_lines:
        draw.text((PAD, y), text, font=lay.small, fill=GRAY)
        y += LINE


def draw_cell(
    sheet: Image.Image, draw: ImageDraw.ImageDraw, lay: SheetLayout, index: int, center: float, y: float, image_h: int
) -> None:
    """A cell's thumbnail centred in its slot, its caption underneath."""
    thumb = lay.thumbs[index]
    sheet.paste(thumb, (int(center - thumb.width / 2), int(y + (image_h - thumb.height) / 2)))
    for k, text in enumerate(lay.captions[index]):
        draw.text((center, y + image_h + 3 + k * LINE), text, font=lay.small, fill=INK if k == 0 else GRAY, anchor="mt")


def draw_grid(sheet: Image.Image, draw: ImageDraw.ImageDraw, page: Page, lay: SheetLayout) -> None:
    """Column headings, then each row with its label at the left, below the header."""
    y = lay.header_h
    x0 = PAD + lay.label_w
    for j, value in enumerate(page.col_axis.labels):
        center = x0 + j * lay.col_w + lay.col_w / 2
        draw.text((center, y), page.col_axis.key, font=lay.small, fill=GRAY, anchor="mt")
        draw.text((center, y + LINE), value, font=lay.big, fill=INK, anchor="mt")
    y += 2 * LINE + 8
    for i, grid_row in enumerate(page.grid):
        image_h = lay.row_hs[i] - 2 * LINE - 2 * PAD
        if page.row_axis:
            draw.text((PAD, y + image_h / 2 - LINE), page.row_axis.key, font=lay.small, fill=GRAY)
            draw.text((PAD, y + image_h / 2), page.row_axis.labels[i], font=lay.big, fill=INK)
        for j, cell in enumerate(grid_row):
            draw_cell(sheet, draw, lay, cell.index, x0 + j * lay.col_w + lay.col_w / 2, y, image_h)
        y += lay.row_hs[i]


def render_sheet(
    page: Page, cell_images: dict[int, Image.Image], rows: dict[int, dict], inputs: Inputs, fixed: str
) -> Image.Image:
    """Contact sheet: title, content and style thumbnails, fixed settings, then the grid with
    each axis' name and values and each cell's distances and time underneath."""
    lay = plan_sheet(page, cell_images, rows, inputs, fixed)
    sheet = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(sheet)
    draw_header(sheet, draw, page, lay)
    draw_grid(sheet, draw, page, lay)
    return sheet


# --- index.html ----------------------------------------------------------------------------


HTML_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 6px; vertical-align: top; text-align: left; }
.grid th { color: #555; font-weight: normal; } .grid th b { color: #111; font-size: 1.1em; }
.grid img { max-width: 256px; max-height: 256px; display: block; }
.m { font-size: 12px; color: #444; } details { font-size: 12px; } details td { padding: 0 6px 0 0; }
.inputs figure { display: inline-block; margin: 0 1em 0 0; }
.results td, .results th { border-bottom: 1px solid #ddd; font-size: 12px; }
"""


def data_uri(image: Image.Image, box: int = 200) -> str:
    """The inputs go inline, as the page must not depend on where they were read from."""
    buffer = io.BytesIO()
    thumbnail(image, box).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def html_header(axes: list[Axis], inputs: Inputs, fixed: str) -> list[str]:
    """What was compared against what, before any cell."""
    e = html.escape
    out = [f"<!doctype html><meta charset=utf-8><title>brushwork compare</title><style>{HTML_STYLE}</style>",
           "<h1>brushwork compare</h1>",
           f"<p>content: {e(inputs.content_path)}<br>style: {e(', '.join(inputs.style_paths))}<br>"
           f"varied: {e(' × '.join(f'{a.key} ({len(a.values)})' for a in axes))}"
           + (f"<br>fixed: {e(fixed)}" if fixed else "") + "</p>",
           '<div class="inputs">']
    out += [f'<figure><img src="{data_uri(im)}" alt="{e(name)}"><figcaption>{e(name)}</figcaption></figure>'
            for name, im in named_inputs(inputs)]
    out.append("</div>")
    return out


def cell_html(cell: Cell, row: dict, axes: list[Axis]) -> str:
    """A cell's picture, linked at full size, its caption, and its full options folded away."""
    e = html.escape
    options = "".join(f"<tr><td>{e(k.replace('_', '-'))}</td><td>{e(format_value(v))}</td></tr>"
                      for k, v in row["options"].items())
    src = cell.image_file
    return (f'<td><a href="{src}" title="open full size"><img src="{src}" alt="{e(cell_label(cell, axes))}"></a>'
            f'<div class="m">{"<br>".join(e(t) for t in caption(row))}</div>'
            f"<details><summary>options</summary><table>{options}</table></details></td>")


def page_html(page: Page, rows: dict[int, dict], axes: list[Axis]) -> list[str]:
    """One sheet's grid as a table, with a link to the sheet itself."""
    e = html.escape
    out = [f"<h2>{e(page.title or 'grid')}</h2><p><a href=\"{e(page.name)}\">{e(page.name)}</a></p>",
           '<table class="grid"><tr><th></th>']
    out += [f"<th>{e(page.col_axis.key)}<br><b>{e(label)}</b></th>" for label in page.col_axis.labels]
    out.append("</tr>")
    for i, grid_row in enumerate(page.grid):
        head = f"{e(page.row_axis.key)}<br><b>{e(page.row_axis.labels[i])}</b>" if page.row_axis else ""
        out.append(f"<tr><th>{head}</th>" + "".join(cell_html(c, rows[c.index], axes) for c in grid_row) + "</tr>")
    out.append("</table>")
    return out


def results_html(cells: list[Cell], axes: list[Axis], rows: dict[int, dict]) -> list[str]:
    """Every cell's numbers in one table, where they are easier to compare than under pictures."""
    e = html.escape
    out = ['<h2>All cells</h2><table class="results"><tr><th>cell</th>']
    out += [f"<th>{e(a.key)}</th>" for a in axes] + [f"<th>{m.replace('_', ' ')}</th>" for m in METRICS] + ["</tr>"]
    for cell in cells:
        row = rows[cell.index]
        out.append(f'<tr><td><a href="{cell.image_file}">{cell.index + 1}</a></td>'
                   + "".join(f"<td>{e(a.labels[i])}</td>" for a, i in zip(axes, cell.coords))
                   + "".join(f"<td>{e(format_value(row[m]))}</td>" for m in METRICS) + "</tr>")
    out.append("</table>")
    return out


def render_html(
    pages: list[Page], cells: list[Cell], axes: list[Axis], rows: dict[int, dict], inputs: Inputs, fixed: str
) -> str:
    """index.html: one page, no outside files but the cell images and sheets next to it."""
    out = html_header(axes, inputs, fixed)
    for page in pages:
        out += page_html(page, rows, axes)
    out += results_html(cells, axes, rows)
    return "\n".join(out) + "\n"


# --- results.csv and results.json ----------------------------------------------------------


def result_rows(cells: list[Cell], axes: list[Axis], rows: dict[int, dict]) -> list[dict]:
    """One row per cell, grid order: position, varied values, numbers, full options."""
    return [
        {"cell": c.index + 1, "image": c.image_file, "vary": {a.key: a.labels[i] for a, i in zip(axes, c.coords)},
         **rows[c.index]}
        for c in cells
    ]


def render_csv(results: list[dict]) -> str:
    """A flat table for spreadsheets: the options spread into columns, one per field."""
    fields = [f.name for f in dataclasses.fields(Options)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["cell", "image", *METRICS, "run_steps", "width", "height", *fields])
    for r in results:
        writer.writerow([r["cell"], r["image"], *(r[m] for m in METRICS), r["run_steps"], r["width"], r["height"],
                         *(format_value(r["options"][f]) for f in fields)])
    return buffer.getvalue()


def render_json(inputs: Inputs, axes: list[Axis], results: list[dict]) -> str:
    """The whole grid for scripts: inputs, axes and every cell's row."""
    summary = {"content": inputs.content_path, "styles": inputs.style_paths,
               "vary": [{"key": a.key, "values": a.labels} for a in axes], "cells": results}
    return json.dumps(summary, indent=1)


def write_reports(
    out_dir: Path, base: Options, axes: list[Axis], cells: list[Cell], rows: dict[int, dict], inputs: Inputs
) -> list[Page]:
    """Every report, from the cached cells; returns the sheets' pages, for the summary line."""
    pages = layout(axes, cells)
    fixed = fixed_settings(base, axes)
    cell_images = {c.index: images.load_image(out_dir / c.image_file) for c in cells}
    for page in pages:
        images.save_image(render_sheet(page, cell_images, rows, inputs, fixed), out_dir / page.name)
    results = result_rows(cells, axes, rows)
    images.write_atomic(out_dir / "index.html", render_html(pages, cells, axes, rows, inputs, fixed).encode())
    images.write_atomic(out_dir / "results.csv", render_csv(results).encode())
    images.write_atomic(out_dir / "results.json", render_json(inputs, axes, results).encode())
    return pages
