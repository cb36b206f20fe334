"""options.py: what a setting resolves to (layers, the style's size, the step budget, the step
size), and every bad value refused by validate() in one line before any work."""

from __future__ import annotations

import pytest

from brushwork.errors import BrushworkError
from brushwork.options import DEFAULT_STEPS, Options, parse_option
from brushwork.presets import PRESETS


def test_layers_come_from_the_preset_unless_given():
    tutorial = PRESETS["tutorial"]
    assert Options(preset="tutorial").layers == (tuple(tutorial.style_layers), tuple(tutorial.content_layers))
    own = Options(preset="tutorial", style_layers=("relu1_1",))
    assert own.layers == (("relu1_1",), tuple(tutorial.content_layers))


def test_the_style_is_never_enlarged_unless_style_scale_asks():
    assert Options().style_side(512, 300) == 300
    assert Options().style_side(256, 300) == 256
    assert Options(style_scale=2.0).style_side(512, 300) == 1024


def test_step_budget_and_learning_rate_defaults():
    assert Options(steps=40).step_budget == 40 and Options(steps="auto").step_budget == DEFAULT_STEPS
    assert Options().learning_rate == 1.0 and Options(optimizer="adam").learning_rate == 0.02
    assert Options(optimizer="adam", lr=0.5).learning_rate == 0.5


@pytest.mark.parametrize(
    ("changes", "styles", "message"),
    [
        ({"style_weight": -1.0}, 1, "--style-weight"),
        ({"style_weights": (1.0,)}, 2, "--style-weights"),
        ({"lr": float("nan")}, 1, "--lr must be a positive number"),
        ({"init": "no-such-file.png"}, 1, "--init must be content, noise, fast or an image file"),
        ({}, 0, "at least one style image is needed"),
    ],
)
def test_bad_values_are_refused_in_one_line(changes, styles, message):
    with pytest.raises(BrushworkError, match=message) as error:
        Options(**changes).validate(styles)
    assert "\n" not in str(error.value)


def test_style_loss_choices_are_checked():
    with pytest.raises(BrushworkError, match="unknown style loss 'wasserstein'; use gram, meancov, sliced"):
        Options(style_loss="wasserstein").validate(1)
    Options(style_loss="sliced", tile=256, protect_faces=0.8).validate(1)
    Options(style_loss="sliced", tile=256).validate(1)
    Options(style_loss="meancov", tile=256, protect_faces=0.8).validate(1)


def test_steps_auto_on_the_command_line():
    assert parse_option("steps", "auto") == "auto" and parse_option("steps", "12") == 12
    with pytest.raises(BrushworkError, match="--steps must be a whole number or auto"):
        Options(steps="many").validate(1)
