"""The host (OpenCV) parts of fast mode's flow step: warping, standing still, contrast."""

from __future__ import annotations

import numpy as np
import torch

from brushwork import flow
from brushwork.fast import flow_hold

from conftest import sample


def photo(h: int = 48, w: int = 64) -> np.ndarray:
    """A textured H×W×3 float32 picture in [0, 1]."""
    return np.asarray(sample("coffee.png", 128), dtype=np.float32)[20 : 20 + h, 10 : 10 + w] / 255


def shift_maps(h: int, w: int, dx: float, dy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    xs = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :] + dx, (h, w)).copy()
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None] + dy, (h, w)).copy()
    return xs, ys


def test_an_integer_shift_copies_pixels_exactly():
    picture = photo()
    xs, ys = shift_maps(*picture.shape[:2], 3, -2)
    for cubic in (False, True):
        moved = flow_hold.warp(picture, xs, ys, cubic)
        assert np.array_equal(moved[2:, :-3], picture[:-2, 3:]), cubic


def test_the_warp_agrees_with_the_optimization_s_warp():
    """cv2.remap against flow.warp (written out in PyTorch) on a fractional flow: equal to
    OpenCV's 1/32-pixel sampling grid, far below an 8-bit level."""
    picture = photo()
    h, w = picture.shape[:2]
    rng = np.random.default_rng(0)
    field = rng.uniform(-2.5, 2.5, (2, h, w)).astype(np.float32)
    xs, ys = shift_maps(h, w, 0)
    ours = flow_hold.warp(picture, xs + field[0], ys + field[1])
    theirs = flow.warp(torch.from_numpy(picture).permute(2, 0, 1)[None], torch.from_numpy(field)[None])
    error = np.abs(ours - theirs[0].permute(1, 2, 0).numpy())
    assert error.max() < 0.5 / 255 and error.mean() < 0.05 / 255


def test_standing_still_wins_where_nothing_moved():
    """A flow that smears motion over a still picture: the held output stays in place."""
    picture, out = photo(), photo()[::-1].copy()
    luma = flow_hold.brightness(np.ascontiguousarray(picture.transpose(2, 0, 1)))
    previous = flow_hold.Seen(luma, flow_hold.small_gray(luma), out)
    xs, ys = shift_maps(*luma.shape, 2.5)
    lined_in, held, moved = flow_hold.lined_up(luma, previous, xs, ys)
    assert moved.max() == 0
    assert np.allclose(held, out, rtol=2e-5, atol=0) and np.allclose(lined_in, luma, rtol=2e-5, atol=0)  # mix's 1e-5


def test_a_pan_is_followed():
    """The same picture panned by 3 pixels: the held output travels along the flow."""
    picture = photo(48, 72)
    luma = flow_hold.brightness(np.ascontiguousarray(picture.transpose(2, 0, 1)))
    previous = flow_hold.Seen(luma[:, :-3].copy(), flow_hold.small_gray(luma[:, :-3].copy()), picture[:, :-3].copy())
    current = luma[:, 3:].copy()  # what was at x + 3 is now at x
    xs, ys = shift_maps(48, 69, 3)
    _, held, moved = flow_hold.lined_up(current, previous, xs, ys)
    assert moved[8:-8, 8:-8].min() > 0.99
    assert np.abs(held[8:-8, 8:-8] - picture[8:-8, 11:-8]).max() < 1e-4  # held(x) = previous(x + 3)


def test_contrast_comes_back_only_where_the_mix_lost_it():
    rng = np.random.default_rng(1)
    held, stylized = (rng.uniform(0.2, 0.8, (40, 40, 3)).astype(np.float32) for _ in range(2))
    keep = np.full((40, 40), 0.5, np.float32)
    pale = flow_hold.mix(held, stylized, keep)
    restored = flow_hold.with_contrast_of(pale, stylized, held, keep)
    assert restored.std() > 1.25 * pale.std()  # two patterns that do not line up: paler, brought back
    same = flow_hold.with_contrast_of(held.copy(), held, held, keep)
    assert np.abs(same - held).max() < 1e-5  # lined up already: left as it is


def test_the_first_frame_starts_the_chain_and_two_runs_agree():
    from brushwork.fast.consistency import Consistency

    frames = [torch.from_numpy(np.roll(photo(), 2 * t, 1)).permute(2, 0, 1)[None].contiguous() for t in range(4)]
    runs = []
    for _ in range(2):
        hold = Consistency("flow", 0.97)
        runs.append([hold(x, (1 - x).contiguous()) for x in frames])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][1], 1 - frames[1])  # the second frame is held to the first
