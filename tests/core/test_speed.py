"""Issue 3: coarse-to-fine, bf16, memory estimate. Tiny images, few steps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import images
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.plan import activation_elements, estimate_peak_bytes, schedule
from brushwork.score import score

GATYS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")


@pytest.fixture(scope="module")
def pair() -> tuple[Image.Image, Image.Image]:
    from brushwork.cli import demo_images

    content, style = demo_images()
    return images.load_image(content), images.load_image(style)


def test_schedule_defaults_to_multiscale_from_384():
    assert len(schedule(Options(size=256), 256, 171, GATYS_LAYERS)) == 1
    plan = schedule(Options(size=512, steps=300), 512, 341, GATYS_LAYERS)
    assert [size for size, _ in plan] == [(128, 85), (256, 170), (512, 341)]
    assert sum(steps for _, steps in plan) == 300
    assert plan[0][1] > plan[-1][1]  # most steps where they are cheap


def test_schedule_drops_scales_too_small_for_the_layers():
    # 64 px output: a quarter would be 16 px, below relu5_1's 32 px minimum
    assert [size for size, _ in schedule(Options(size=64, scales=3), 64, 64, GATYS_LAYERS)] == [(32, 32), (64, 64)]


def test_multiscale_reaches_requested_size_and_beats_single_scale(engine, pair):
    content, style = pair
    steps = 15
    single = engine.run(content, [style], Options(size=128, scales=1, steps=steps, precision="fp32"))
    multi = engine.run(content, [style], Options(size=128, scales=2, steps_per_scale=(30, steps), precision="fp32"))
    assert multi.image.size == single.image.size == (128, 128)
    assert [r.width for r in multi.records][:1] == [64]  # it really started coarse
    # Same number of full-size steps: the cheap coarse start leaves a lower full-size objective.
    assert score(multi.image, content, style, engine).objective < score(single.image, content, style, engine).objective


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


def test_activation_count_matches_the_network(engine):
    names = list(engine.vgg.layers)[: list(engine.vgg.layers).index("relu5_1") + 1]
    with torch.no_grad():
        out = engine.vgg(torch.rand(1, 3, 64, 48), names)
    assert activation_elements(48, 64, ("relu5_1",)) == sum(t.numel() for t in out.values())


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_memory_estimate_within_2x_of_measured_peak():
    """Measure the peak RSS growth of a real 320 px run in a fresh process: the kernel's
    high-water mark is reset just before it, so loading the network does not hide it."""
    code = textwrap.dedent(
        """
        import json, re
        from pathlib import Path
        from PIL import Image
        from brushwork.engine import Engine
        from brushwork.options import Options
        def status(key):
            return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
        e = Engine(device="cpu")
        c = Image.effect_noise((320, 320), 40).convert("RGB")
        e.run(c.resize((64, 64)), [c], Options(size=64, steps=2, scales=1, precision="fp32"))
        Path("/proc/self/clear_refs").write_text("5")
        base = status("VmRSS")
        plan = e.plan(c.size, Options(size=320, steps=2, scales=1, precision="fp32"))
        e.run(c, [c], Options(size=320, steps=2, scales=1, precision="fp32"))
        print(json.dumps({"estimate": plan.memory_needed, "measured": status("VmHWM") - base}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    numbers = json.loads(out.stdout.strip().splitlines()[-1])
    assert numbers["measured"] / 2 <= numbers["estimate"] <= numbers["measured"] * 2, numbers


def test_estimate_grows_with_area_and_shrinks_with_bf16():
    small = estimate_peak_bytes(256, 256, GATYS_LAYERS, torch.float32)
    assert estimate_peak_bytes(512, 512, GATYS_LAYERS, torch.float32) == pytest.approx(4 * small, rel=0.02)
    assert estimate_peak_bytes(256, 256, GATYS_LAYERS, torch.bfloat16) < small


def test_plan_refuses_a_run_that_cannot_fit(engine):
    from brushwork.errors import BrushworkError

    with pytest.raises(BrushworkError, match=r"largest --size that fits is about \d+"):
        engine.plan((4000, 3000), Options(size=40000, max_pixels=10**12))


def _quadratic_closure(x, target):
    torch.manual_seed(0)
    a = torch.randn(40, x.numel()) / 10

    def closure():
        x.grad = None
        loss = (a @ (x.reshape(-1) - target.reshape(-1))).pow(2).sum() + (x - target).pow(4).sum()
        loss.backward()
        return loss

    return closure


def test_lbfgs_matches_torch_inside_the_pixel_range():
    """Away from the [0, 1] bounds, our host-sync-free L-BFGS takes torch.optim.LBFGS's steps."""
    from brushwork.lbfgs import LBFGS

    target = torch.linspace(0.3, 0.7, 30).reshape(1, 3, 2, 5)
    ours_x = torch.full((1, 3, 2, 5), 0.5, requires_grad=True)
    theirs_x = torch.full((1, 3, 2, 5), 0.5, requires_grad=True)
    ours = LBFGS(ours_x, lr=0.5, history_size=5)
    theirs = torch.optim.LBFGS([theirs_x], lr=0.5, max_iter=1, history_size=5, tolerance_grad=-1, tolerance_change=-1)
    ours_closure, theirs_closure = _quadratic_closure(ours_x, target), _quadratic_closure(theirs_x, target)
    losses = []
    for _ in range(20):
        losses.append(float(ours.step(ours_closure)))
        theirs.step(theirs_closure)
        torch.testing.assert_close(ours_x, theirs_x, rtol=1e-4, atol=1e-6)
    assert losses[-1] < 0.01 * losses[0]


def test_lbfgs_leaves_out_pairs_without_curvature_like_torch():
    """On a non-convex loss some steps have sᵀy ≤ 0; torch drops those pairs, ours masks them
    out of the compact product: the same steps while the history has room."""
    from brushwork.lbfgs import LBFGS

    torch.manual_seed(0)
    phase = torch.rand(1, 3, 4, 4) * 6

    def closure_for(x):
        def closure():
            x.grad = None
            loss = (torch.sin(8 * x + phase) * 0.05).sum() + ((x - 0.5) ** 2).sum()
            loss.backward()
            return loss

        return closure

    ours_x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    theirs_x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    ours = LBFGS(ours_x, lr=0.5, history_size=50)
    theirs = torch.optim.LBFGS([theirs_x], lr=0.5, max_iter=1, history_size=50, tolerance_grad=-1, tolerance_change=-1)
    for _ in range(30):
        ours.step(closure_for(ours_x))
        theirs.step(closure_for(theirs_x))
        torch.testing.assert_close(ours_x, theirs_x, rtol=1e-4, atol=1e-5)
    skipped = ours.count - len(theirs.state[theirs._params[0]]["old_dirs"])
    assert skipped > 0  # the case under test happened


def test_lbfgs_history_stays_float32_under_a_float64_default():
    from brushwork.lbfgs import LBFGS

    target = torch.linspace(0.3, 0.7, 30).reshape(1, 3, 2, 5)
    x = torch.full((1, 3, 2, 5), 0.5, requires_grad=True)
    closure = _quadratic_closure(x, target)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        optimizer = LBFGS(x, lr=0.5, history_size=4)
        losses = [float(optimizer.step(closure)) for _ in range(8)]
    finally:
        torch.set_default_dtype(previous)
    assert optimizer.history.dtype == torch.float32
    assert losses[-1] < losses[0]


def test_lbfgs_keeps_pixels_in_range():
    from brushwork.lbfgs import LBFGS

    target = torch.linspace(-0.5, 1.5, 30).reshape(1, 3, 2, 5)  # half of it out of range
    x = torch.full((1, 3, 2, 5), 0.5, requires_grad=True)
    optimizer = LBFGS(x, lr=1.0, history_size=10)
    closure = _quadratic_closure(x, target)
    losses = [float(optimizer.step(closure)) for _ in range(40)]
    assert 0 <= x.min() and x.max() <= 1
    # As good as the obvious feasible guess, the target clamped into range.
    with torch.no_grad():
        x.copy_(target.clamp(0, 1))
    # no line search, so late steps wobble a little: judge the last few
    assert min(losses[-10:]) <= float(closure())
    assert losses[-1] < losses[0]


def test_gram_backward_is_exact():
    from brushwork.losses import gram_matrix

    features = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: gram_matrix(f.float()).double(), (features,), eps=1e-3, atol=1e-3)
    # and against plain autograd, in fp32
    f = torch.randn(1, 8, 6, 7, requires_grad=True)
    weights = torch.randn(1, 8, 8)
    (gram_matrix(f) * weights).sum().backward()
    ours = f.grad.clone()
    f.grad = None
    flat = f.reshape(1, 8, 42)
    ((flat @ flat.transpose(1, 2) / 42) * weights).sum().backward()
    torch.testing.assert_close(ours, f.grad)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_graph_replay_recomputes_at_the_changed_image():
    from brushwork.losses import ContentLoss, StyleLoss, gram_matrix
    from brushwork.objective import cuda_graphed

    engine = Engine(device="cuda")
    torch.manual_seed(0)
    content, style = torch.rand(2, 1, 3, 64, 64, device="cuda")
    with torch.no_grad():
        style_loss = StyleLoss({n: gram_matrix(f) for n, f in engine.features(style, GATYS_LAYERS[:5], torch.float32).items()},
                               dict.fromkeys(GATYS_LAYERS[:5], 1.0))  # fmt: skip
        content_loss = ContentLoss(engine.features(content, ("relu4_2",), torch.float32), {"relu4_2": 1.0})
    x = torch.rand(1, 3, 64, 64, device="cuda", requires_grad=True)

    def evaluate() -> torch.Tensor:
        x.grad = None
        feats = engine.features(x, GATYS_LAYERS, torch.bfloat16)
        loss = content_loss(feats) + 5 * style_loss(feats)
        loss.backward()
        return loss.detach()

    replay = cuda_graphed(evaluate, x)
    first = replay().clone()
    with torch.no_grad():
        x.mul_(0.5).add_(0.25)  # in place, as the optimizers change it
    replayed, replayed_grad = replay().clone(), x.grad.clone()
    eager, eager_grad = evaluate(), x.grad
    assert not torch.allclose(first, replayed)  # the graph really ran again, on the new pixels
    torch.testing.assert_close(replayed, eager, rtol=1e-3, atol=0)
    torch.testing.assert_close(replayed_grad, eager_grad, rtol=1e-3, atol=1e-7)


@needs_cuda
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
