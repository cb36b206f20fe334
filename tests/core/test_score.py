"""brushwork.score and `brushwork score`: zero for identical images, growing with perturbation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from brushwork import cli
from brushwork.batch.engines import score_engine
from brushwork.score import Score, score


def picture(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth gradient with a few blocks: enough structure for VGG features."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    array = np.stack([x * 255 / w, y * 255 / h, 128 + 60 * np.sin(x / 5.0)], axis=-1)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 12), rng.integers(0, h - 12)
        array[y0 : y0 + 12, x0 : x0 + 12] = rng.integers(0, 256, 3)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def perturbed(image: Image.Image, amount: float) -> Image.Image:
    noise = np.random.default_rng(1).normal(0, 255 * amount, (image.height, image.width, 3))
    return Image.fromarray((np.asarray(image, float) + noise).clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def engine():
    return score_engine("cpu")


def test_identical_images_score_zero(engine):
    image = picture()
    result = score(image, image, image, engine)
    assert result.content == 0.0
    assert result.style == pytest.approx(0.0, abs=1e-6)
    assert Score(content=1.0, style=0.2).objective == pytest.approx(2.0)  # J = content + 5 · style


def test_distances_grow_with_perturbation(engine):
    image = picture()
    scores = [score(perturbed(image, amount), image, image, engine) for amount in (0.02, 0.08, 0.25)]
    contents = [s.content for s in scores]
    styles = [s.style for s in scores]
    assert 0 < contents[0] < contents[1] < contents[2]
    assert 0 < styles[0] < styles[1] < styles[2]


def test_different_style_is_farther(engine):
    image = picture(0)
    assert score(image, image, picture(5), engine).style > score(image, image, image, engine).style


def test_score_command_text_and_json(tmp_path, capsys, engine):
    content, output = picture(0), perturbed(picture(0), 0.1)
    style = picture(3)
    for name, image in (("c.png", content), ("o.png", output), ("s.png", style)):
        image.save(tmp_path / name)
    args = [str(tmp_path / "o.png"), "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "--device", "cpu"]
    assert cli.main(["score", *args, "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    expected = score(output, content, style, engine)
    assert numbers["content_distance"] == pytest.approx(expected.content)
    assert numbers["style_distance"] == pytest.approx(expected.style)
    assert numbers["objective"] == pytest.approx(expected.objective)

    assert cli.main(["score", *args]) == 0
    text = capsys.readouterr().out
    assert f"content distance  {expected.content:.4g}" in text
    assert f"style distance    {expected.style:.4g}" in text


def test_score_command_bad_file(tmp_path, capsys):
    (tmp_path / "not.png").write_text("hello")
    picture().save(tmp_path / "c.png")
    code = cli.main(["score", str(tmp_path / "not.png"), "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "c.png")])
    assert code == 2
    assert "not an image file" in capsys.readouterr().err
    c = str(tmp_path / "c.png")
    assert cli.main(["score", c, "--content", c, "--style", c, "--device", "tpu"]) == 2
    assert "tpu" in capsys.readouterr().err
