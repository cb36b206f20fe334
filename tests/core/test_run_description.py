"""run_description.py: the checked, resolved description of a run that the engine, objective and
regions read instead of the Options: made once per run, settled values only, and only from
options that can run."""

from __future__ import annotations

import dataclasses

import pytest

from brushwork import engine as engine_module
from brushwork.engine import Painting
from brushwork.errors import BrushworkError
from brushwork.options import DEFAULT_LR, Options
from brushwork.presets import PRESETS
from brushwork.run_description import RunDescription
from conftest import TINY


def test_the_preset_and_the_defaults_are_resolved():
    gatys = PRESETS["gatys"]
    run = RunDescription.from_options(Options(preset="gatys", optimizer="adam", steps="auto"), 2)
    assert (run.style_layers, run.content_layers) == (tuple(gatys.style_layers), tuple(gatys.content_layers))
    assert run.style_layer_weights == (1.0,) * len(gatys.style_layers)
    assert run.style_weights == (1.0, 1.0)  # one per style image
    assert run.learning_rate == DEFAULT_LR["adam"] and run.auto_steps
    assert not RunDescription.from_options(Options(steps=40), 1).auto_steps


def test_what_the_user_gave_is_carried_as_given():
    options = Options(style_layers=("relu1_1", "relu2_1"), content_layers=("relu3_1",), style_layer_weights=(1.0, 3.0),
                      style_weights=(2.0, 1.0), content_weight=0.5, style_weight=7.0, tv_weight=0.25,
                      style_loss="meancov", preserve_color="luminance", seamless=True, seed=11, init="noise",
                      lr=0.3, style_scale=1.5, style_crop=(0.0, 0.0, 0.5, 0.5), protect_faces=0.4)
    run = RunDescription.from_options(options, 2)
    assert (run.style_layers, run.content_layers) == options.layers
    assert (run.style_layer_weights, run.style_weights) == ((1.0, 3.0), (2.0, 1.0))
    assert (run.content_weight, run.style_weight, run.tv_weight) == (0.5, 7.0, 0.25)
    assert (run.style_loss, run.preserve_color, run.seamless, run.seed, run.init) == ("meancov", "luminance", True,
                                                                                      11, "noise")
    assert (run.learning_rate, run.style_crop, run.protect_faces) == (0.3, (0.0, 0.0, 0.5, 0.5), 0.4)
    assert run.style_side(512, 300) == options.style_side(512, 300) == 768


def test_it_cannot_be_changed_in_place():
    run = RunDescription.from_options(Options(), 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3  # type: ignore[misc]
    assert run.replace(seed=3).seed == 3 and run.seed == 0


@pytest.mark.parametrize("changes, n_styles, message", [
    ({"style_weight": -1.0}, 1, "--style-weight must be finite"),
    ({"style_weights": (1.0, 2.0)}, 1, "--style-weights has 2 values for 1 style images"),
    ({"style_layers": ("relu9_9",)}, 1, "relu9_9"),
    ({"style_loss": "nope"}, 1, "unknown style loss"),
    ({}, 0, "at least one style image"),
])
def test_invalid_options_never_become_a_description(changes, n_styles, message):
    with pytest.raises(BrushworkError, match=message):
        RunDescription.from_options(Options(**changes), n_styles)


def test_a_run_resolves_its_options_once_and_paints_from_the_description(engine, content, style, monkeypatch):
    made: list[RunDescription] = []
    painted: list[object] = []
    original_from, original_init = RunDescription.from_options.__func__, Painting.__init__

    def counting(cls, options, n_styles):
        made.append(original_from(cls, options, n_styles))
        return made[-1]

    def recording(self, engine, run, *rest, **more):
        painted.append(run)
        original_init(self, engine, run, *rest, **more)

    monkeypatch.setattr(RunDescription, "from_options", classmethod(counting))
    monkeypatch.setattr(Painting, "__init__", recording)
    engine.run(content, [style], TINY.replace(steps=2, scales=1, precision="fp32"))
    assert len(made) == 1 and len(painted) == 1 and painted[0] is made[0]


def test_an_engine_run_with_invalid_options_paints_nothing(engine, content, style, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("invalid options reached the painting")

    monkeypatch.setattr(engine_module.Painting, "__init__", refuse)
    with pytest.raises(BrushworkError, match="--content-weight must be finite"):
        engine.run(content, [style], TINY.replace(content_weight=float("nan")))
