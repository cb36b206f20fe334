"""Coarse to fine beats one scale, bf16 paints what fp32 does, and on a GPU CUDA graphs replay exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import images
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.score import score

GATYS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")


@pytest.fixture(scope="module")
def pair() -> tuple[Image.Image, Image.Image]:
    from brushwork.commands.demo import demo_images

    content, style = demo_images()
    return images.load_image(content), images.load_image(style)


@pytest.mark.slow
def test_multiscale_reaches_requested_size_and_beats_single_scale(engine, pair):
    content, style = pair
    steps = 15
    single = engine.run(content, [style], Options(size=128, scales=1, steps=steps, precision="fp32"))
    multi = engine.run(content, [style], Options(size=128, scales=2, steps_per_scale=(30, steps), precision="fp32"))
    assert multi.image.size == single.image.size == (128, 128)
    assert [r.width for r in multi.records][:1] == [64]  # it really started coarse
    # Same number of full-size steps: the cheap coarse start leaves a lower full-size objective.
    assert score(multi.image, content, style, engine).objective < score(single.image, content, style, engine).objective


@pytest.mark.slow
def test_bf16_and_fp32_agree(engine, pair):
    content, style = pair
    x = images.resize(images.to_tensor(content), (96, 96))
    for name, f32 in engine.features(x, GATYS_LAYERS, torch.float32).items():
        bf = engine.features(x, GATYS_LAYERS, torch.bfloat16)[name].float()
        rel = (bf - f32).norm() / f32.norm()
        assert rel < 0.05, name
    runs = {
        p: engine.run(content, [style], Options(size=96, scales=1, steps=10, precision=p)) for p in ("fp32", "bf16")
    }
    scores = {p: score(r.image, content, style, engine) for p, r in runs.items()}
    assert scores["bf16"].objective == pytest.approx(scores["fp32"].objective, rel=0.1)
    diff = np.abs(np.asarray(runs["bf16"].image, float) - np.asarray(runs["fp32"].image, float)).mean()
    assert diff < 8  # of 255: the same picture, not a different one


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_cuda_run_with_graphs_matches_eager(pair, optimizer):
    engine = Engine(device="cuda")
    options = Options(size=128, steps=40, optimizer=optimizer, device="cuda")
    graphed = engine.run(pair[0], [pair[1]], options)
    engine.cuda_graphs = False
    eager = engine.run(pair[0], [pair[1]], options)
    assert graphed.stop_reason == eager.stop_reason == "done"
    assert graphed.records[-1].total < 0.8 * graphed.records[0].total
    assert graphed.records[-1].total == pytest.approx(eager.records[-1].total, rel=0.03)
