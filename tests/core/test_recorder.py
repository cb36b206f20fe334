"""recorder.py: what a run records and reports as it goes, when it diverged, and when --steps
auto has converged; without a network (the losses are given)."""

from __future__ import annotations

import torch

from brushwork.options import AUTO_TOLERANCE, AUTO_WINDOW
from brushwork.recorder import Progress, Recorder


def recorder(sync_every: int = 1, reports: list | None = None) -> Recorder:
    callback = None if reports is None else reports.append
    return Recorder(0.0, (2, 10), callback, lambda x: x, sync_every)


def losses(*totals: float) -> list[torch.Tensor]:
    return [torch.tensor([t / 2, t / 4, 0.0, t]) for t in totals]


def test_each_read_step_is_recorded_and_reported():
    reports: list[Progress] = []
    rec = recorder(reports=reports)
    x = torch.rand(1, 3, 2, 2)
    rec.start_scale()
    for total in (3.0, 2.0):
        assert rec.stepped(x.clone(), last=False)  # on a CPU, every step is read
        assert rec.read(0, x, losses(total))
    assert [(r.step, r.scale, r.width, r.height, r.total, r.content) for r in rec.records] == [
        (1, 0, 2, 2, 3.0, 1.5), (2, 0, 2, 2, 2.0, 1.0)]
    assert [(p.step, p.total_steps, p.n_scales, p.record.total) for p in reports] == [(1, 10, 2, 3.0), (2, 10, 2, 2.0)]
    assert rec.stop_reason == "done" and torch.equal(rec.output(x), x)


def test_losses_are_read_every_few_steps_and_at_a_scales_end():
    reports: list[Progress] = []
    rec = recorder(sync_every=3, reports=reports)
    x = torch.rand(1, 3, 2, 2)
    due = [rec.stepped(x, last=False) for _ in range(3)] + [rec.stepped(x, last=True)]
    assert due == [False, False, True, True]
    assert rec.read(0, x, losses(4.0, 3.0, 2.0, 1.0))  # the four pending steps at once
    assert [r.step for r in rec.records] == [1, 2, 3, 4] and [r.total for r in rec.records] == [4.0, 3.0, 2.0, 1.0]
    assert len(reports) == 1 and reports[0].step == 4


def test_a_loss_that_is_not_finite_stops_the_run_at_the_last_finite_image():
    rec = recorder()
    good, bad = torch.full((1, 3, 2, 2), 0.25), torch.full((1, 3, 2, 2), 0.75)
    rec.stepped(good, last=False)
    assert rec.read(0, good, losses(1.0))
    rec.stepped(bad, last=False)
    assert not rec.read(0, bad, losses(float("nan")))
    assert rec.stop_reason == "diverged" and len(rec.records) == 1
    assert torch.equal(rec.output(torch.ones(1, 3, 2, 2)), good)


def test_a_run_that_diverges_at_once_outputs_its_start_image():
    """The first image evaluated is the start image; the recorder keeps no copy of its own."""
    rec = recorder()
    start, stepped = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    rec.stepped(start, last=False)
    assert not rec.read(0, stepped, losses(float("inf")))
    assert rec.records == [] and rec.output(stepped) is start


def test_converged_once_a_scale_improves_less_than_the_tolerance_over_the_window():
    rec = recorder()
    x = torch.zeros(1, 3, 2, 2)
    total = 100.0
    for _ in range(AUTO_WINDOW + 1):
        rec.stepped(x, last=False)
        rec.read(0, x, losses(total))
        assert not rec.converged(1)  # another scale's steps do not count
        total *= 1 - 2 * AUTO_TOLERANCE  # still improving fast
    assert not rec.converged(0)
    for _ in range(AUTO_WINDOW + 1):
        rec.stepped(x, last=False)
        rec.read(0, x, losses(total))
    assert rec.converged(0)
