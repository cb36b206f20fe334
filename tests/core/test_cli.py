"""The `brushwork` command: tiny runs end to end, outputs, progress, and one-line errors."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from brushwork import cli
from brushwork.engine import Engine
from brushwork.progress import ProgressReporter
from conftest import TINY

# --device cpu picks the session engine (see conftest), so in-process runs load nothing.
FAST = ["--size", "48", "--steps", "3", "--device", "cpu"]


def brushwork(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture
def out(tmp_path):
    """An empty folder for outputs; tests check it holds exactly what they expect."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def one_line_error(capsys, *needles: str) -> str:
    """The error is one line, the last; only informational lines (the run's plan) may precede it."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert [line for line in lines if "error" in line] == lines[-1:], err
    assert lines[-1].startswith("brushwork") and "error: " in lines[-1], err
    for needle in needles:
        assert needle in lines[-1], err
    return lines[-1]


# --- runs that work ----------------------------------------------------------------------------


def test_stylize_end_to_end(image_files, out, capsys, engine):
    trace = out / "trace.json"
    code = brushwork("stylize", image_files["content"], "--style", image_files["style"], "-o", out / "a.png",
                     "--trace", trace, "--save-every", "2", "--steps", "4", "--size", "48", "--device", "cpu")
    assert code == 0
    err = capsys.readouterr().err
    assert "stylize: step 1/4" in err and "it/s" in err and f"wrote {out / 'a.png'} (48x48, 4 steps" in err
    assert files(out) == ["a.png", "a_step00002.png", "a_step00004.png", "trace.json"]
    for name in ("a.png", "a_step00002.png", "a_step00004.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size == (48, 48)
    data = json.loads(trace.read_text())
    assert data["stop_reason"] == "done" and data["size"] == [48, 48] and data["options"]["steps"] == 4
    assert [s["step"] for s in data["steps"]] == [1, 2, 3, 4]
    for record in data["steps"]:
        assert {"content", "style", "tv", "total", "seconds"} <= set(record)
        assert record["total"] == pytest.approx(record["content"] + 5 * record["style"], rel=1e-4)
    assert data["steps"][-1]["seconds"] >= data["steps"][0]["seconds"] > 0


@pytest.mark.parametrize("name, fmt", [("b.jpg", "JPEG"), ("b.webp", "WEBP")])
def test_output_format_by_extension(image_files, out, name, fmt):
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / name, "-q", *FAST) == 0
    with Image.open(out / name) as image:
        assert image.format == fmt and image.size == (48, 48)
    assert files(out) == [name]  # no temp file left over


def test_quiet_and_options(image_files, out, capsys, runs):
    code = brushwork("stylize", image_files["content"], "-s", image_files["style"], image_files["style2"], "-o",
                     out / "c.png", "-q", "--style-weights", "3,1", "--preset", "tutorial", "--style-layer-weights",
                     "1,1,1,2,2", "--preserve-color", "luminance", "--optimizer", "adam", "--lr", "0.05", *FAST)
    assert code == 0
    assert capsys.readouterr().err == ""
    assert Image.open(out / "c.png").size == (48, 48)
    (options,) = runs
    assert (options.style_weights, options.preset, options.style_layer_weights) == ((3.0, 1.0), "tutorial", (1, 1, 1, 2, 2))
    assert (options.preserve_color, options.optimizer, options.lr) == ("luminance", "adam", 0.05)


def test_bf16_where_the_cpu_lacks_it_says_so_once_and_still_runs(image_files, out, capsys, cpu_without_bf16):
    code = brushwork("stylize", image_files["content"], "--style", image_files["style"], "-o", out / "a.png",
                     "--precision", "bf16", *FAST)
    err = capsys.readouterr().err
    assert code == 0 and files(out) == ["a.png"]
    assert err.count("brushwork: notice: this CPU has no native bf16") == 1, err
    assert "(bf16)" in err  # the plan line: it ran bf16 as asked


def test_no_overwrite(image_files, out, capsys):
    target = out / "d.png"
    target.write_bytes(b"keep me")
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", target, *FAST) == 2
    one_line_error(capsys, "exists; pass --overwrite")
    assert target.read_bytes() == b"keep me" and files(out) == ["d.png"]
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", target, "-q",
                     "--overwrite", *FAST) == 0
    assert Image.open(target).size == (48, 48) and files(out) == ["d.png"]


def test_stylize_over_several_photos_writes_one_output_each_and_resumes(image_files, tmp_path, out, capsys, runs):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.open(image_files["content"]).convert("RGB").rotate(90 if name == "b.jpg" else 0).save(photos / name)
    assert brushwork("stylize", photos / "a.png", "-s", image_files["style"], "-o", out / "single.png", "-q", *FAST) == 0
    assert brushwork("stylize", photos, "-s", image_files["style"], "-o", out / "many", "-q", *FAST) == 0
    assert files(out / "many") == ["a.png", "b.jpg"] and len(runs) == 3
    assert (out / "many" / "a.png").read_bytes() == (out / "single.png").read_bytes()  # as the one-photo command paints it
    assert brushwork("stylize", photos, "-s", image_files["style"], "-o", out / "many", "-q", *FAST) == 2
    one_line_error(capsys, "exists; pass --overwrite", "--resume")
    (out / "many" / "b.jpg").unlink()
    assert brushwork("stylize", photos, "-s", image_files["style"], "-o", out / "many", "-q", "--resume", *FAST) == 0
    assert files(out / "many") == ["a.png", "b.jpg"] and [o.size for o in runs] == [48] * 4  # only b again
    assert brushwork("stylize", photos, "-s", image_files["style"], "-o", out / "t", "--trace", out / "t.json", *FAST) == 2
    one_line_error(capsys, "--trace takes one photo")
    assert brushwork("stylize", photos, "-s", image_files["style"], "-o", "s3://bucket/painted", *FAST) == 2
    one_line_error(capsys, "URLs are only read")


def test_without_ray_nothing_imports_it_and_with_ray_missing_the_error_is_one_line(image_files, out):
    """Run in fresh interpreters, since this one may have imported Ray for other tests."""
    args = ["stylize", str(image_files["content"]), "-s", str(image_files["style"]), "-q", *FAST]
    plain = f"import sys; from brushwork import cli; assert cli.main({args + ['-o', str(out / 'p.png')]!r}) == 0; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
    blocked = f"import sys; sys.modules['ray'] = None; from brushwork import cli; sys.exit(cli.main({args + ['-o', str(out / 'r.png'), '--ray']!r}))"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == 'brushwork: error: --ray needs Ray on this machine: pip install "brushwork[ray]"'


def test_trace_is_not_overwritten(image_files, out, capsys):
    trace = out / "t.json"
    trace.write_text("{}")
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "e.png", "--trace",
                     trace, *FAST) == 2
    one_line_error(capsys, "t.json exists")
    assert files(out) == ["t.json"] and trace.read_text() == "{}"


def test_presets_command(capsys):
    assert brushwork("presets") == 0
    text = capsys.readouterr().out
    assert "gatys:" in text and "tutorial:" in text
    assert "relu1_1, relu2_1, relu3_1, relu4_1, relu5_1" in text and "relu4_2" in text
    assert "conv1_1, conv1_2, conv2_1, conv2_2, conv3_1" in text
    assert "gram: Gram matrices" in text and "meancov: mean and covariance" in text
    assert "sliced (default): the whole distribution" in text


def test_demo(out, capsys):
    assert brushwork("demo", "-o", out / "demo.png", "--size", "48", "--steps", "2") == 0
    err = capsys.readouterr().err
    assert "astronaut.png" in err and "ihc.png" in err
    assert Image.open(out / "demo.png").size == (48, 48)
    assert brushwork("demo", "-o", out / "demo.png", "--size", "48", "--steps", "2") == 2  # exists
    one_line_error(capsys, "exists")


def test_diverged_run_saves_the_last_finite_image(image_files, out, capsys):
    code = brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "f.png",
                     "--style-weight", "1e38", *FAST)
    assert code == 2
    assert "diverged" in capsys.readouterr().err
    assert Image.open(out / "f.png").size == (48, 48)


def test_out_of_memory(image_files, out, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(Engine, "features", oom)
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "g.png", *FAST) == 2
    one_line_error(capsys, "out of memory", "--size")
    assert files(out) == []


# --- bad input: exit code 2, one line, nothing written -------------------------------------------


BAD_INPUTS = [
    # (arguments after CONTENT -s STYLE -o OUT, words the message must contain)
    (["--preset", "picasso"], ["--preset", "gatys, tutorial", "picasso"]),
    (["--style-layers", "relu1_1,relu9_1"], ["unknown style layer relu9_1", "valid names are", "relu5_4"]),
    (["--content-layers", "fc7"], ["unknown content layer fc7", "conv1_1"]),
    (["--style-weight", "-1"], ["--style-weight must be finite and non-negative, got -1"]),
    (["--style-weight", "nan"], ["--style-weight", "nan"]),
    (["--content-weight", "inf"], ["--content-weight", "inf"]),
    (["--tv-weight", "-0.1"], ["--tv-weight"]),
    (["--style-weight", "lots"], ["--style-weight: expected a number, got 'lots'"]),
    (["--style-layer-weights", "1,2"], ["--style-layer-weights has 2 values for 5 style layers"]),
    (["--style-layer-weights=1,1,1,1,-1"], ["--style-layer-weights must be finite and non-negative"]),
    (["--style-layer-weights", "1,x"], ["--style-layer-weights: expected comma-separated numbers"]),
    (["--style-weights", "1,2"], ["--style-weights has 2 values for 1 style images"]),
    (["--style-weights", "inf"], ["--style-weights must be finite"]),
    (["--style-crop", "1,2"], ["--style-crop: bad crop '1,2'"]),
    (["--style-crop", "0.8,0.8,0.5,0.5"], ["does not fit inside the 96x96 style image"]),
    (["--steps", "0"], ["--steps must be at least 1"]),
    (["--steps", "2.5"], ["--steps: expected a whole number"]),
    (["--size", "16"], ["16x16 is too small for layer relu5_1"]),
    (["--max-pixels", "1000"], ["over the limit", "--max-pixels"]),
    (["--lr", "0"], ["--lr must be a positive number"]),
    (["--optimizer", "sgd"], ["--optimizer: expected one of lbfgs, adam"]),
    (["--preserve-color", "sepia"], ["--preserve-color"]),
    (["--style-loss", "histogram"], ["--style-loss: expected one of gram, meancov, sliced, got 'histogram'"]),
    (["--style-scale", "0"], ["--style-scale must be a positive number"]),
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--init", "nowhere.png"], ["--init must be content, noise, fast or an image file"]),
    (["--weights", "nowhere.pth"], ["weights file not found: nowhere.pth"]),
    (["--save-every", "0"], ["--save-every must be at least 1"]),
]


@pytest.mark.parametrize("extra, needles", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_option(image_files, out, capsys, extra, needles):
    args = ["stylize", image_files["content"], "-s", image_files["style"], "-o", out / "x.png", "--trace",
            out / "x.json", *FAST, *extra]
    assert brushwork(*args) == 2
    one_line_error(capsys, *needles)
    assert files(out) == []


def bad_files(tmp_path, image_files):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    cut = tmp_path / "cut.png"
    data = image_files["style"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return {
        "missing content": ([tmp_path / "nope.png", "-s", image_files["style"]], "image not found"),
        "missing style": ([image_files["content"], "-s", tmp_path / "nope.jpg"], "image not found"),
        "folder as content": ([tmp_path, "-s", image_files["style"]], "several photos, or a folder of them, go to -o FOLDER"),
        "text as style": ([image_files["content"], "-s", text], "not an image file"),
        "truncated style": ([image_files["content"], "-s", cut], "truncated or corrupt"),
        "non-image init": ([image_files["content"], "-s", image_files["style"], "--init", text], "not an image file"),
    }


@pytest.mark.parametrize(
    "case", ["missing content", "missing style", "folder as content", "text as style", "truncated style", "non-image init"]
)
def test_bad_file(tmp_path, image_files, out, capsys, case):
    args, needle = bad_files(tmp_path, image_files)[case]
    assert brushwork("stylize", *args, "-o", out / "x.png", *FAST) == 2
    one_line_error(capsys, needle)
    assert files(out) == []


@pytest.mark.parametrize(
    "output, needle",
    [("x.gif", "unsupported output type '.gif'"), ("x", "unsupported output type '(none)'"),
     ("missing/x.png", "output folder does not exist"), ("sub.png", "is a directory")],
)
def test_bad_output(image_files, out, capsys, output, needle):
    (out / "sub.png").mkdir()
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / output, *FAST) == 2
    one_line_error(capsys, needle)
    assert files(out) == ["sub.png"]


def test_bad_trace_folder(image_files, out, capsys):
    assert brushwork("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "x.png",
                     "--trace", out / "missing" / "t.json", *FAST) == 2
    one_line_error(capsys, "output folder does not exist")
    assert files(out) == []


@pytest.mark.parametrize(
    "args, needle",
    [(["stylize", "c.png", "-o", "x.png"], "required: --style"), (["stylize", "c.png", "-s", "s.png"], "--output"),
     (["stylize", "c.png", "-s", "s.png", "-o", "x.png", "--colour", "red"], "unrecognized arguments: --colour"),
     (["stylize", "c.png", "-s", "s.png", "-o", "x.png", "--save-every", "x"], "--save-every"),
     (["paint"], "invalid choice: 'paint'"), ([], "required: COMMAND"), (["demo", "--size", "big"], "--size")],
)
def test_usage_errors_are_one_line(capsys, args, needle):
    with pytest.raises(SystemExit) as exit_:
        brushwork(*args)
    assert exit_.value.code == 2
    assert "--help" in one_line_error(capsys, needle)


# --- progress ------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(engine, content, style):
    terminal = FakeTerminal()
    reporter = ProgressReporter("paint", stream=terminal)
    engine.run(content, [style], TINY.replace(steps=3), reporter)
    reporter.close()
    text = terminal.getvalue()
    assert "paint" in text and "3/3" in text and "loss=" in text and ("step/s" in text or "s/step" in text)


def test_progress_lines_in_a_log(engine, content, style):
    log = io.StringIO()
    engine.run(content, [style], TINY.replace(steps=3), ProgressReporter("paint", stream=log))
    lines = log.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(line.startswith("paint: step") and "loss" in line and "it/s" in line for line in lines)
    quiet = io.StringIO()
    engine.run(content, [style], TINY.replace(steps=1), ProgressReporter(stream=quiet, enabled=False))
    assert quiet.getvalue() == ""


# --- as a real process -----------------------------------------------------------------------------


def command(*args) -> list[str]:
    return [sys.executable, "-m", "brushwork.cli", *(str(a) for a in args)]


@pytest.mark.slow
def test_subprocess_run_and_error(image_files, out):
    done = subprocess.run(command("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "p.png",
                                  "--size", "32", "--steps", "2"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Image.open(out / "p.png").size == (32, 32)
    failed = subprocess.run(command("stylize", image_files["content"], "-s", image_files["style"], "-o", out / "p.png"),
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0 and "exists; pass --overwrite" in failed.stderr


@pytest.mark.slow
def test_ctrl_c_saves_the_current_image(image_files, out):
    output, trace = out / "i.png", out / "i.json"
    process = subprocess.Popen(
        command("stylize", image_files["content"], "-s", image_files["style"], "-o", output, "--trace", trace,
                "--size", "64", "--steps", "500"),
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        line = ""
        while "step 1/500" not in line:
            line = process.stderr.readline()
            assert line and time.monotonic() < deadline, "no progress line"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "saved the current image" in err and "Traceback" not in err
    with Image.open(output) as image:
        image.load()
        assert image.size == (64, 64)
    data = json.loads(trace.read_text())
    assert data["stop_reason"] == "interrupted" and 1 <= len(data["steps"]) < 500
