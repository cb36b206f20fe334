"""devices.py: the number format a run picks, and the notice when bf16 is asked for where it
is emulated."""

from __future__ import annotations

import warnings

import pytest
import torch

from brushwork import devices
from brushwork.errors import BrushworkWarning

CPU = torch.device("cpu")


def test_bf16_asked_for_on_a_cpu_without_it_runs_bf16_with_one_notice(cpu_without_bf16):
    with pytest.warns(BrushworkWarning, match="no native bf16.*emulated.*--precision auto picks fp32") as seen:
        dtypes = [devices.pick_dtype("bf16", CPU) for _ in range(2)]  # a second run: compare, the studio
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert len(seen) == 1


@pytest.mark.parametrize(("precision", "device", "native", "dtype"), [
    ("auto", "cpu", False, torch.float32),   # auto never picks the emulated format
    ("auto", "cpu", True, torch.bfloat16),
    ("bf16", "cpu", True, torch.bfloat16),   # native: nothing to say
    ("fp32", "cpu", False, torch.float32),
    ("bf16", "cuda", False, torch.bfloat16),  # the CPU's flags say nothing about a GPU
])  # fmt: skip
def test_no_notice_where_bf16_is_native_or_not_asked_for(monkeypatch, precision, device, native, dtype):
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: native)
    devices.notice_emulated_bf16.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", BrushworkWarning)
        assert devices.pick_dtype(precision, torch.device(device)) == dtype
