"""`brushwork compare`: grid expansion and layout, resume, the steps axis, reports, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from brushwork import cli
from brushwork.compare import grid, report
from brushwork.errors import BrushworkError
from brushwork.engine import Engine
from brushwork.options import Options

BASE = Options(size=48, steps=3, device="cpu")
TINY_FLAGS = ["--size", "48", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A 48×40 content picture and a 64×48 two-colour style texture."""
    folder = tmp_path_factory.mktemp("compare_inputs")
    y, x = np.mgrid[0:40, 0:48]
    content = np.stack([x * 5, y * 6, 100 + 80 * np.sin(x / 4.0)], axis=-1)
    rng = np.random.default_rng(0)
    style = np.where((np.arange(64) // 8 % 2)[None, :, None] == 0, [200, 40, 30], [30, 60, 190])
    style = style + rng.integers(0, 60, (48, 64, 3))
    paths = {}
    for name, array in (("content", content), ("style", style)):
        paths[name] = str(folder / f"{name}.png")
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(paths[name])
    return paths


# --- parsing and layout --------------------------------------------------------------------


def test_parse_vary_keys_values_and_lists():
    axis = grid.parse_vary("style_weight=1, 5,20")
    assert (axis.key, axis.field, axis.values, axis.labels) == ("style-weight", "style_weight", [1.0, 5.0, 20.0], ["1", "5", "20"])
    assert grid.parse_vary("style-weight=1,5").field == "style_weight"
    assert grid.parse_vary("preset=gatys,tutorial").values == ["gatys", "tutorial"]
    assert grid.parse_vary("style-loss=gram,meancov,sliced").values == ["gram", "meancov", "sliced"]
    crop = grid.parse_vary("style-crop=none;0,0,0.5,0.5;10,10,20,20")
    assert crop.values == [None, (0.0, 0.0, 0.5, 0.5), (10.0, 10.0, 20.0, 20.0)]
    layers = grid.parse_vary("style-layers=relu1_1,relu2_1;relu3_1")
    assert layers.values == [("relu1_1", "relu2_1"), ("relu3_1",)]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("stlye-weight=1,2", "'stlye-weight' is not a stylize option"),
        ("style-weight=1,abc", "style-weight: expected a number, got 'abc'"),
        ("steps=10,2.5", "expected a whole number, got '2.5'"),
        ("optimizer=lbfgs,sgd", "expected one of lbfgs, adam, got 'sgd'"),
        ("style-loss=gram,swd", "expected one of gram, meancov, sliced, got 'swd'"),
        ("style-crop=0,0;0,0,1,1", "bad crop '0,0'"),
        ("style-crop=0,0,0.5,0.5,0,0,1,1", "separate its values with ';'"),
        ("style-weight=", "no values given for style-weight"),
        ("style-weight= , ", "no values given"),
        ("style-weight", "expected KEY=V1,V2"),
        ("style-weight=1,1.0", "listed twice"),
    ],
)
def test_parse_vary_rejects(spec, message):
    with pytest.raises(BrushworkError) as info:
        grid.parse_vary(spec)
    assert message in str(info.value)


def axes(*specs: str) -> list[grid.Axis]:
    return [grid.parse_vary(s) for s in specs]


def test_one_key_is_one_row():
    grid_axes = axes("style-weight=1,5,20")
    cells = grid.expand(BASE, grid_axes)
    assert [c.options.style_weight for c in cells] == [1.0, 5.0, 20.0]
    assert all(c.options.size == 48 and c.options.steps == 3 for c in cells)
    (page,) = report.layout(grid_axes, cells)
    assert page.name == "sheet.png" and page.title == "" and page.row_axis is None
    assert [[c.options.style_weight for c in row] for row in page.grid] == [[1.0, 5.0, 20.0]]


def test_two_keys_are_rows_by_columns():
    grid_axes = axes("preset=gatys,tutorial", "style-weight=1,5,20")
    cells = grid.expand(BASE, grid_axes)
    assert len(cells) == 6
    (page,) = report.layout(grid_axes, cells)
    assert page.name == "sheet.png"
    assert [[(c.options.preset, c.options.style_weight) for c in row] for row in page.grid] == [
        [("gatys", 1.0), ("gatys", 5.0), ("gatys", 20.0)],
        [("tutorial", 1.0), ("tutorial", 5.0), ("tutorial", 20.0)],
    ]


def test_three_keys_give_one_sheet_per_value_of_the_third():
    grid_axes = axes("preset=gatys,tutorial", "style-weight=1,5,20", "tv-weight=0,0.01")
    cells = grid.expand(BASE, grid_axes)
    assert len(cells) == 12 and len({c.index for c in cells}) == 12
    pages = report.layout(grid_axes, cells)
    assert [p.name for p in pages] == ["sheet_tv-weight=0.png", "sheet_tv-weight=0.01.png"]
    assert [p.title for p in pages] == ["tv-weight = 0", "tv-weight = 0.01"]
    for page, tv in zip(pages, (0.0, 0.01)):
        assert len(page.grid) == 2 and all(len(row) == 3 for row in page.grid)
        assert all(c.options.tv_weight == tv for row in page.grid for c in row)
        assert [row[0].options.preset for row in page.grid] == ["gatys", "tutorial"]
    assert sorted(c.index for p in pages for row in p.grid for c in row) == list(range(12))


def test_steps_axis_shares_one_run_per_other_combination():
    cells = grid.expand(BASE, axes("style-weight=1,5", "steps=2,6,4"))
    groups = grid.run_groups(cells)
    assert len(groups) == 2
    for group in groups:
        assert sorted(c.options.steps for c in group) == [2, 4, 6]
        assert {c.run_steps for c in group} == {6}
        assert len({c.options.style_weight for c in group}) == 1


# --- running -------------------------------------------------------------------------------


def compare_args(files, out, *extra: str, steps: bool = True) -> list[str]:
    """A tiny compare command line; `steps=False` leaves --steps out, for a steps axis."""
    return ["compare", files["content"], "--style", files["style"], "-o", str(out), *TINY_FLAGS,
            *(["--steps", "3"] if steps else []), *extra]


def test_compare_writes_every_report_and_resumes(files, tmp_path, runs, monkeypatch, capsys):
    out = tmp_path / "grid"
    argv = compare_args(files, out, "--vary", "preset=gatys,tutorial", "--vary", "style-weight=1,20")
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""  # -q: no progress, no summary
    assert len(runs) == 4
    assert {o.preset for o in runs} == {"gatys", "tutorial"}

    results = json.loads((out / "results.json").read_text())["cells"]
    assert [(r["vary"]["preset"], r["vary"]["style-weight"]) for r in results] == [
        ("gatys", "1"), ("gatys", "20"), ("tutorial", "1"), ("tutorial", "20")]
    for r in results:
        assert (out / r["image"]).is_file()
        assert Image.open(out / r["image"]).size == (48, 40)
        assert r["steps_done"] == 3 and r["stop_reason"] == "done"
        assert r["seconds"] > 0 and r["content_distance"] > 0 and r["style_distance"] > 0
        assert r["final_loss"] > 0 and r["options"]["size"] == 48
    # A stronger style weight moves the picture away from the content.
    assert results[1]["content_distance"] > results[0]["content_distance"]

    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["image"] for row in table] == [r["image"] for r in results]
    assert [(row["preset"], float(row["style_weight"])) for row in table] == [
        ("gatys", 1.0), ("gatys", 20.0), ("tutorial", 1.0), ("tutorial", 20.0)]
    assert all(float(row["content_distance"]) > 0 and float(row["seconds"]) > 0 for row in table)

    page = (out / "index.html").read_text()
    for r in results:
        assert page.count(f'href="{r["image"]}"') == 2  # in the grid and in the table
    assert page.count("<details>") == 4 and "style-weight" in page and "tutorial" in page
    sheet = Image.open(out / "sheet.png")
    assert sheet.width > 2 * 48 and sheet.height > 2 * 40
    assert not list(out.glob("**/*.tmp"))

    # Second run: nothing is optimized, the reports are rebuilt from the cache.
    def no_runs(*args, **kwargs):
        raise AssertionError("a cached cell was recomputed")

    (out / "results.csv").unlink()
    monkeypatch.setattr(Engine, "run", no_runs)
    assert cli.main(argv) == 0
    assert (out / "results.csv").is_file()
    assert json.loads((out / "results.json").read_text())["cells"] == results


def test_extended_grid_computes_only_new_cells(files, tmp_path, runs):
    out = tmp_path / "grid"
    assert cli.main(compare_args(files, out, "--vary", "style-weight=1,20")) == 0
    assert len(runs) == 2
    runs.clear()
    assert cli.main(compare_args(files, out, "--vary", "style-weight=1,5,20")) == 0
    assert [o.style_weight for o in runs] == [5.0]


def test_style_losses_side_by_side(files, tmp_path, runs):
    out = tmp_path / "losses"
    assert cli.main(compare_args(files, out, "--vary", "style-loss=gram,meancov,sliced")) == 0
    assert [o.style_loss for o in runs] == ["gram", "meancov", "sliced"]
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [c["vary"]["style-loss"] for c in cells] == ["gram", "meancov", "sliced"]
    assert len({(out / c["image"]).read_bytes() for c in cells}) == 3  # three different pictures


def test_three_keys_with_a_steps_axis(files, tmp_path, runs, capsys):
    out = tmp_path / "grid"
    argv = compare_args(files, out, "--vary", "tv-weight=0,1", "--vary", "style-weight=1,20",
                        "--vary", "steps=2,4", steps=False)
    argv.remove("-q")
    assert cli.main(argv) == 0
    # One run of the longest steps per (tv-weight, style-weight), not one per cell.
    assert len(runs) == 4 and {o.steps for o in runs} == {4}
    assert (out / "sheet_steps=2.png").is_file() and (out / "sheet_steps=4.png").is_file()
    assert not (out / "sheet.png").exists()
    progress = capsys.readouterr().err
    assert "compare: 8/8 cells done" in progress and "sheet_steps=2.png" in progress

    results = json.loads((out / "results.json").read_text())["cells"]
    assert len(results) == 8 and {r["run_steps"] for r in results} == {4}
    assert sorted(r["steps_done"] for r in results) == [2] * 4 + [4] * 4
    page = (out / "index.html").read_text()
    assert all(f'href="{r["image"]}"' in page for r in results)

    # On one scale, the snapshot at step 2 is exactly what a 2-step run gives.
    short = next(r for r in results if r["vary"] == {"tv-weight": "0", "style-weight": "1", "steps": "2"})
    runs.clear()
    alone = tmp_path / "alone"
    assert cli.main(compare_args(files, alone, "--vary", "steps=2", "--style-weight", "1", steps=False)) == 0
    assert [o.steps for o in runs] == [2]
    (single,) = json.loads((alone / "results.json").read_text())["cells"]
    a = np.asarray(Image.open(out / short["image"]), dtype=int)
    b = np.asarray(Image.open(alone / single["image"]), dtype=int)
    assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize(
    "vary, extra, message",
    [
        (["style-wieght=1,2"], [], "'style-wieght' is not a stylize option"),
        (["style-weight=1,x"], [], "expected a number, got 'x'"),
        (["steps="], [], "no values given for steps"),
        (["style-weight=1,2,3", "tv-weight=0,1,2"], ["--max-cells", "8"], "the grid has 9 cells, more than --max-cells 8"),
        (["style-weight=1,-2"], [], "--style-weight must be finite and non-negative"),
        (["style-crop=0,0,0.5,0.5;0,0,200,10"], [], "does not fit inside the 64x48 style image"),
        (["style-weight=1,2", "style_weight=3"], [], "given twice"),
        (["style-weight=1,2"], ["--style-weight", "3"], "both varied and set by --style-weight"),
    ],
)
def test_bad_grids_fail_before_any_work(files, tmp_path, capsys, monkeypatch, vary, extra, message):
    def no_work(*args, **kwargs):
        raise AssertionError("work started on a bad grid")

    monkeypatch.setattr(Engine, "run", no_work)
    monkeypatch.setattr(Engine, "__init__", no_work)
    out = tmp_path / "grid"
    argv = compare_args(files, out, *extra)
    for spec in vary:
        argv += ["--vary", spec]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("brushwork: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_compare_rejects_a_file_as_output_folder(files, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("")
    assert cli.main(compare_args(files, out, "--vary", "style-weight=1,2")) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_a_snapshot_the_engine_does_not_report_gets_its_own_run(files, tmp_path, monkeypatch):
    """On accelerators the engine calls back only every few steps; a missed snapshot is run alone."""
    calls: list[int] = []
    original = Engine.run

    def every_fourth_step(self, content, styles, options, callback=None):
        calls.append(options.steps)
        sparse = (lambda p: callback(p) if p.step % 4 == 0 else None) if callback else None
        return original(self, content, styles, options, sparse)

    monkeypatch.setattr(Engine, "run", every_fourth_step)
    out = tmp_path / "grid"
    assert cli.main(compare_args(files, out, "--vary", "steps=2,4", steps=False)) == 0
    assert calls == [4, 2]
    rows = json.loads((out / "results.json").read_text())["cells"]
    assert [(r["steps_done"], r["run_steps"]) for r in rows] == [(2, 2), (4, 4)]


def test_cells_too_small_for_the_layers_fail_before_any_run(files, tmp_path, runs, capsys):
    out = tmp_path / "grid"
    argv = ["compare", files["content"], "--style", files["style"], "-o", str(out), "--vary", "size=48,20",
            "--steps", "2", "--device", "cpu", "-q"]
    assert cli.main(argv) == 2
    assert "too small for layer relu5_1" in capsys.readouterr().err
    assert runs == [] and not list((out / "cells").iterdir())


def test_a_style_too_small_for_a_cell_fails_before_any_run(files, tmp_path, runs, capsys):
    out = tmp_path / "grid"
    argv = ["compare", files["content"], "--style", files["style"], "-o", str(out), "--vary", "style-scale=1,0.1",
            "--size", "48", "--steps", "2", "--device", "cpu", "-q"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "the style image at" in capsys.readouterr().err
    assert runs == [] and not list((out / "cells").iterdir())
