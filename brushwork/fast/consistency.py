"""Holding fast mode's video frames to each other (`brushwork apply --consistency`).

A feed-forward network answers small changes between frames (noise, compression, a pan of a
pixel) with large changes in its strokes, so frames stylized one by one boil. Each output
frame is therefore blended with the previous output where that output can stand in for it:

    out_t = k·P + (1 − k)·stylized_t,   k = D · trust per pixel (D: --deflicker)

- flow (the default): P is the previous output warped along the optical flow from the
  previous input frame to this one (flow.py: OpenCV's DIS), and a pixel is trusted where
  the flow is reliable (forward and backward flows agree, no motion boundary) and the
  previous input, warped the same way, matches this one: exp(−|in_t − warp(in_{t−1})| / s).
  Strokes then travel with what moves instead of being repainted at every frame.
- blend: P is the previous output where it was, trusted where the input did not change,
  exp(−|in_t − in_{t−1}| / s): static parts stop shimmering, moving parts get no help.
- off: every frame as the network paints it.

Where nothing can be trusted (a disocclusion, a scene cut) k is 0 and the new frame is the
network's, so no ghost trails. The measured comparison (warping error, frames per second)
is on docs/benchmarks/video.md.

The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import flow

METHODS = ("flow", "blend", "off")
MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which trust has faded to 1/e


@dataclass
class Consistency:
    """The blend with the previous output frame (see the module's docstring), and the flicker
    measurement. The changes stay tensors on the device until the end, so a GPU is not stopped
    at every frame for them."""

    method: str
    strength: float
    previous_in: torch.Tensor | None = None
    previous_out: torch.Tensor | None = None
    change_in: list[torch.Tensor] = field(default_factory=list)
    change_out: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """One frame (1×3×H×W in [0, 1]) and the network's picture of it -> the frame to write."""
        out = stylized
        if self.previous_in is not None:
            if self.strength > 0 and self.method != "off":
                held, trust = self.held(frame_in)
                keep = self.strength * trust
                out = keep * held + (1 - keep) * stylized
            # Measured on what gets written: 8-bit frames.
            self.change_in.append((quantize(frame_in) - quantize(self.previous_in)).abs().mean())
            self.change_out.append((quantize(out) - quantize(self.previous_out)).abs().mean())
        self.previous_in, self.previous_out = frame_in, out
        return out

    def held(self, frame_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous output lined up with this frame, and how far it can be trusted (N×1×H×W)."""
        if self.method == "blend":
            return self.previous_out, matching(frame_in, self.previous_in)
        forward, backward = flow.flows(to_uint8(self.previous_in), to_uint8(frame_in))
        backward = backward.to(frame_in.device)
        reliable = flow.reliability(forward.to(frame_in.device), backward)
        trust = reliable * matching(frame_in, flow.warp(self.previous_in, backward))
        return flow.warp(self.previous_out, backward), trust

    def mean_changes(self) -> tuple[float, float]:
        """Mean input and output change per frame; 0 for a video of one frame, which cannot flicker."""
        if not self.change_in:
            return 0.0, 0.0
        return float(np.mean([float(c) for c in self.change_in])), float(np.mean([float(c) for c in self.change_out]))


def matching(frame: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """1 where two frames agree, fading as they differ (N×1×H×W)."""
    return torch.exp(-(frame - previous).abs().mean(1, keepdim=True) / MOTION_SCALE)


def quantize(frame: torch.Tensor) -> torch.Tensor:
    return frame.clamp(0, 1).mul(255).round().div(255)


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """A 1×3×H×W frame in [0, 1] as the H×W×3 uint8 picture the flow is computed on."""
    return frame[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()
