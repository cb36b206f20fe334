"""Optical flow, warping, reliability and the temporal term on pictures moved by known amounts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brushwork import flow
from brushwork.temporal import Temporal, TemporalTarget, long_term_weights

from conftest import sample


def shifted_pair(dx: int, dy: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Two 64×48 windows of a photo; in the second the scene has moved by (dx, dy) pixels."""
    photo = np.asarray(sample("astronaut.png", size))
    previous = photo[20:68, 16:80]
    current = photo[20 - dy : 68 - dy, 16 - dx : 80 - dx]
    return np.ascontiguousarray(previous), np.ascontiguousarray(current)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("dx, dy", [(3, 0), (-2, 2)])
def test_flow_recovers_a_known_shift(dx, dy):
    previous, current = shifted_pair(dx, dy)
    forward, backward = flow.flows(previous, current)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert forward[inner].median(-1).values.median(-1).values.flatten().tolist() == pytest.approx([dx, dy], abs=0.25)
    assert backward[inner].median(-1).values.median(-1).values.flatten().tolist() == pytest.approx([-dx, -dy], abs=0.25)


@pytest.mark.parametrize("cubic", [False, True])
def test_warping_is_exact_for_an_integer_shift(cubic):
    image = torch.rand(1, 3, 20, 30)
    shift = torch.zeros(1, 2, 20, 30)
    shift[:, 0], shift[:, 1] = 4, -3  # output(x, y) = image(x + 4, y − 3)
    warped = flow.warp(image, shift, cubic=cubic)
    assert torch.equal(warped[..., 3:, :-4], image[..., :-3, 4:])
    assert torch.equal(warped[..., :3, :-4], image[..., :1, 4:].expand(-1, -1, 3, -1))  # the edge repeats


def test_warping_interpolates_between_pixels():
    image = torch.arange(5.0).view(1, 1, 1, 5)
    half = torch.tensor([0.5, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 5)
    assert flow.warp(image, half).flatten().tolist() == [0.5, 1.5, 2.5, 3.5, 4.0]


def test_cubic_warping_keeps_the_detail_that_bilinear_blurs_away_frame_after_frame():
    """A painted frame goes down a video's chain warped once per frame: after 6 sub-pixel
    moves there and back, bilinear has smeared the texture, cubic much less."""
    image = torch.tensor(np.asarray(sample("astronaut.png", 64))).permute(2, 0, 1)[None].float() / 255
    there, back = torch.full((1, 2, 64, 64), 0.3), torch.full((1, 2, 64, 64), -0.3)
    lost = {}
    for cubic in (False, True):
        moved = image
        for _ in range(6):
            moved = flow.warp(flow.warp(moved, there, cubic=cubic), back, cubic=cubic)
        lost[cubic] = float((moved - image)[..., 4:-4, 4:-4].abs().mean())
    assert lost[True] < 0.6 * lost[False]  # 0.049 against 0.090
    assert 0 <= float(moved.min()) and float(moved.max()) <= 1  # cubic's overshoot is clamped


def test_reliability_marks_the_disoccluded_band_and_trusts_the_rest():
    previous, current = shifted_pair(4, 0)
    reliable = flow.reliability(*flow.flows(previous, current))[0, 0]
    assert reliable[:, :4].mean() < 0.1  # the band the pan brought into view
    assert reliable[:, 8:].mean() > 0.9
    assert flow.reliability(*flow.flows(previous, previous)).mean() == 1


def test_agreement_overrules_a_noisy_flows_false_alarms_but_not_new_content():
    previous, current = shifted_pair(4, 0)
    forward, backward = flow.flows(previous, current)
    noisy = backward.clone()
    noisy[:, 0, 16:40, 24:56] += torch.tensor([0.3, -0.3]).repeat(12)[:, None]  # rows alternate ±0.3 px
    alone = flow.reliability(forward, noisy)[0, 0]
    assert alone[18:38, 26:54].mean() < 0.1  # the flow's gradient reads as motion boundaries
    checked = flow.reliability(forward, noisy, (previous, current))[0, 0]
    assert checked[18:38, 26:54].mean() > 0.7  # yet the warp brings what is there
    assert checked[:, :4].mean() < 0.1  # the band the pan brought into view stays untrusted
    other = np.ascontiguousarray(np.asarray(sample("coffee.png", 96))[:48, :64])
    assert flow.reliability(*flow.flows(previous, other), (previous, other)).mean() < 0.5


def test_motion_boundaries_are_where_the_flow_jumps():
    backward = torch.zeros(1, 2, 10, 10)
    backward[:, 0, :, 5:] = 3.0
    boundary = flow.motion_boundaries(backward)[0, 0]
    assert boundary[:, 4].all() and not boundary[:, :4].any() and not boundary[:, 5:].any()


def test_an_unrelated_frame_is_unreliable_almost_everywhere():
    previous, _ = shifted_pair(0, 0)
    other = np.ascontiguousarray(np.asarray(sample("coffee.png", 96))[:48, :64])
    assert flow.reliability(*flow.flows(previous, other)).mean() < 0.5


def test_long_term_weights_count_each_pixel_once_for_the_most_recent_reliable_frame():
    recent = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    older = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    weights = long_term_weights([recent, older])
    assert weights[:, 0, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def nothing(image: torch.Tensor) -> torch.Tensor:
    """An objective with no terms of its own: [content, style, tv, total] all 0, no gradient."""
    image.grad = torch.zeros_like(image)
    return torch.zeros(4)


def test_temporal_term_value_and_gradient_match_autograd():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 12, requires_grad=True)
    target = TemporalTarget(torch.rand(2, 3, 8, 12), torch.rand(2, 1, 8, 12))
    terms = Temporal(nothing, target, weight=7.0)(x)
    expected = (target.weights * (x - target.warped) ** 2).sum(0).mean()
    (gradient,) = torch.autograd.grad(7.0 * expected, x)
    assert terms[4].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms[3].item() == pytest.approx(7.0 * expected.item(), rel=1e-5)
    assert torch.allclose(x.grad, gradient, atol=1e-7)


def test_temporal_term_means_the_same_at_every_size():
    """A mean over pixels: the same picture and target at twice the size give the same value."""
    small = torch.rand(1, 3, 8, 8)
    big = small.repeat_interleave(2, -1).repeat_interleave(2, -2)
    values = []
    for x in (small, big):
        target = TemporalTarget(torch.zeros_like(x), torch.ones(1, 1, *x.shape[-2:]))
        x = x.clone().requires_grad_(True)
        values.append(Temporal(nothing, target, 1.0)(x)[4])
    assert values[0].item() == pytest.approx(values[1].item(), rel=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_with_a_temporal_target_records_the_term_and_lowers_it(engine, precision):
    """The term computes in fp32 whatever the network's precision; the total includes it."""
    from brushwork.options import Options

    content = sample("astronaut.png", 48)
    torch.manual_seed(0)
    start = torch.rand(1, 3, content.height, content.width)
    target = TemporalTarget(torch.full_like(start, 0.5), torch.ones(1, 1, content.height, content.width))
    options = Options(size=48, steps=4, scales=1, device="cpu", precision=precision, temporal_weight=1000.0)
    result = engine.run(content, [sample("ihc.png", 48)], options, start=start, temporal=target)
    first, last = result.records[0], result.records[-1]
    assert last.temporal < 0.5 * first.temporal
    assert last.total == pytest.approx(last.content + 5 * last.style + 1000.0 * last.temporal, rel=1e-4)


def test_the_temporal_term_adds_to_the_tiled_objective_exactly(engine):
    """Per pixel, like total variation: tile by tile the run takes the same steps."""
    from brushwork.options import Options

    content = sample("astronaut.png", 128)
    torch.manual_seed(0)
    start = torch.rand(1, 3, content.height, content.width)
    target = TemporalTarget(torch.full_like(start, 0.5), torch.ones(1, 1, content.height, content.width))
    runs = []
    for tile in (None, 64):
        options = Options(size=128, steps=2, scales=1, device="cpu", precision="fp32", temporal_weight=1000.0, tile=tile,
                          style_loss="gram")  # exact in tiles, so the temporal term is the difference
        records = engine.run(content, [sample("ihc.png", 64)], options, start=start, temporal=target).records
        runs.append([value for r in records for value in (r.total, r.temporal)])
    assert runs[1] == pytest.approx(runs[0], rel=1e-4) and runs[0][1] > 0
