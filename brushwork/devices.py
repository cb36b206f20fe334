"""Which device and number format a run uses, and how much memory it has to work with."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch

from .errors import BrushworkError, BrushworkWarning

# Without --max-memory, a CPU run keeps under this many GiB beyond the network (the loaded
# network and Python take about 0.4 GiB more, so the whole process stays under 8 GiB): RAM is
# the whole machine's, and the tiled evaluation is only about 1.5-2x slower per step than a
# whole-image one that would take most of it. The one place this default is set: --max-memory's
# help and the plan read it.
CPU_BUDGET_GIB = 7


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise BrushworkError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BrushworkError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BrushworkError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


@functools.cache  # the CPU does not change under a process, and every plan asks
def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: CPUs where oneDNN runs bf16 convolutions natively."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_bf16():
            notice_emulated_bf16()
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


@functools.cache  # once a process: compare and the studio plan many runs
def notice_emulated_bf16() -> None:
    """bf16 asked for on a CPU without it: PyTorch emulates it, and its convolutions run many
    times slower than fp32 (12x a whole run at 128 px on a 2-core AMD EPYC without AVX512),
    which a user who asked for bf16 to go faster would not guess."""
    warnings.warn(BrushworkWarning(
        "this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated and runs many times "
        "slower than fp32; --precision auto picks fp32 here"), stacklevel=3)


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the activations will live (None when the platform does not say)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def return_free_heap(device: torch.device) -> None:
    """Hand the pages malloc's heap holds free back to the system (glibc's malloc_trim). A tiled
    evaluation allocates and frees many tensors below malloc's mmap threshold (a tile's deeper
    maps, its statistics); the heap kept their pages through TV and the optimizer's update
    (measured at 4096×4096 in 1024 px tiles: 12.3 image-sized vectors there, 8.3 with the trim).
    Nothing to do off the CPU or where the C library has no trim."""
    if device.type != "cpu":
        return
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; the CPU and MPS allocators plain RuntimeErrors."""
    message = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in message or "can't allocate" in message


@contextlib.contextmanager
def one_torch_thread(active: bool = True) -> Iterator[None]:
    """PyTorch on one thread within the block (where `active`), restored after it, as the
    setting is process-wide: for small element-wise work beside a network, which a second
    OpenMP thread barely speeds up and, on a busy 2-core CPU, slows down many times over."""
    if not active:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
