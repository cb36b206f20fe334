"""lbfgs.py: our L-BFGS takes torch's steps where torch's apply, and keeps pixels in [0, 1]."""

from __future__ import annotations

import torch

from brushwork.lbfgs import LBFGS


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
