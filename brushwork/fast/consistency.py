"""Holding fast mode's video frames to each other (`brushwork apply --consistency`).

A feed-forward network answers small changes between frames (noise, compression, a pan of a
pixel) with large changes in its strokes, so frames stylized one by one boil. Each output
frame is therefore blended with the previous output where that output can stand in for it:

    out_t = k·P + (1 − k)·stylized_t,   k = D · trust per pixel (D: --deflicker)

- flow (the default, D = 0.97): P is the previous output carried along the optical flow onto this frame,
  or left where it was wherever that explains this frame better, trusted where the previous
  input, lined up the same way, matches this one (flow_hold.py, on the host in OpenCV). Strokes
  then travel with what moves instead of being repainted at every frame, and its local
  contrast is restored (two stroke patterns that do not line up mix to a paler picture).
- blend (D = 0.5): P is the previous output where it was, trusted
  where the input did not change, exp(−|in_t − in_{t−1}| / 0.02): static parts stop
  shimmering, moving parts get no help.
- off: every frame as the network paints it.

Where nothing can be trusted (a disocclusion, a scene cut) k is 0 and the new frame is the
network's, so no ghost trails.

The step runs in one PyTorch thread and uses no exp, so two runs write the same bytes: with
PyTorch's CPU exp on two threads, in about one process in ten the calling thread's share of
the trust map came out up to 1.5e-4 (relative) off, the other thread's share exact, and the
frames written differed from other runs'. Sums, products, quotients and square roots are
rounded exactly (IEEE 754) whichever code path computes them; so are OpenCV's per-pixel
operations in flow_hold.py.

The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..devices import one_torch_thread
from .backend import CONSISTENCY, Settings

if TYPE_CHECKING:
    from .flow_hold import Seen

MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which trust has faded to about 0.4


@dataclass
class Consistency:
    """The blend with the previous output frame (see the module's docstring), and the flicker
    measurement. The changes stay tensors on the device until the end, so a GPU is not stopped
    at every frame for them."""

    method: str
    strength: float  # D
    previous_in: torch.Tensor | None = None
    previous_out: torch.Tensor | None = None
    seen: Seen | None = None  # flow: the previous frame, on the host
    change_in: list[torch.Tensor] = field(default_factory=list)
    change_out: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def of(cls, settings: Settings) -> Consistency:
        strength = CONSISTENCY[settings.consistency] if settings.deflicker is None else settings.deflicker
        return cls(settings.consistency, strength)

    def __call__(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """One frame (1×3×H×W in [0, 1]) and the network's picture of it -> the frame to write."""
        # One thread: on a busy 2-core CPU two made this step's small element-wise work 20-100
        # times slower (3 ms against 270 ms at 256 px, measured).
        with one_torch_thread(frame_in.device.type == "cpu"):
            out = self.blended(frame_in, stylized)
            if self.previous_in is not None:  # measured on what gets written: 8-bit frames
                self.change_in.append((quantize(frame_in) - quantize(self.previous_in)).abs().mean())
                self.change_out.append((quantize(out) - quantize(self.previous_out)).abs().mean())
        self.previous_in, self.previous_out = frame_in, out
        return out

    def blended(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """k·P + (1 − k)·stylized, as the module's docstring says."""
        if self.method == "flow":
            return self.along_flow(frame_in, stylized)
        if self.strength == 0 or self.method == "off" or self.previous_in is None:
            return stylized
        keep = self.strength * matching(frame_in, self.previous_in, MOTION_SCALE)
        return keep * self.previous_out + (1 - keep) * stylized

    def along_flow(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """flow_hold.blended on host copies of the frames; the first frame is the network's.
        Imported here: OpenCV comes with the `video` extra, and `apply` on pictures needs none."""
        from . import flow_hold

        current, painted = flow_hold.brightness(frame_in[0].float().cpu().numpy()), to_picture(stylized)
        small = flow_hold.small_gray(current)
        out = painted
        if self.seen is not None and self.strength > 0:
            out = flow_hold.blended(current, painted, self.seen, small, self.strength)
        self.seen = flow_hold.Seen(current, small, out)
        return stylized if out is painted else torch.from_numpy(out).permute(2, 0, 1)[None].to(stylized.device)

    def mean_changes(self) -> tuple[float, float]:
        """Mean input and output change per frame; 0 for a video of one frame, which cannot flicker."""
        if not self.change_in:
            return 0.0, 0.0
        return float(np.mean([float(c) for c in self.change_in])), float(np.mean([float(c) for c in self.change_out]))


def matching(frame: torch.Tensor, previous: torch.Tensor, scale: float) -> torch.Tensor:
    """1 where two frames agree, fading as their mean difference u grows: (1 + u / 4·scale)⁻⁴,
    close to exp(−u / scale) (0.41 against 0.37 at u = scale, 0.06 against 0.02 at 4·scale)
    but made of products and a quotient only, which every thread rounds alike (N×1×H×W)."""
    near = (4 * scale) / (4 * scale + (frame - previous).abs().mean(1, keepdim=True))
    near = near * near
    return near * near


def quantize(frame: torch.Tensor) -> torch.Tensor:
    return frame.clamp(0, 1).mul(255).round().div(255)


def to_picture(frame: torch.Tensor) -> np.ndarray:
    """A 1×3×H×W frame as the H×W×3 float32 picture flow_hold works on (cv2.merge: 4× faster
    than NumPy's transposing copy)."""
    import cv2

    return cv2.merge(list(frame[0].float().cpu().numpy()))
