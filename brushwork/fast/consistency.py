"""Holding fast mode's video frames to each other (`brushwork apply --consistency`).

A feed-forward network answers small changes between frames (noise, compression, a pan of a
pixel) with large changes in its strokes, so frames stylized one by one boil. Each output
frame is therefore blended with the previous output where that output can stand in for it:

    out_t = k·P + (1 − k)·stylized_t,   k = D · trust per pixel (D: --deflicker)

- flow (D = 0.9): P is the previous output warped along the optical flow from
  this input frame back to the previous one (flow.py: OpenCV's DIS, one call per frame on
  frames shrunk to FLOW_SIDE), trusted where the flow is smooth (no motion boundary), points
  inside the previous frame, and the previous input, warped the same way, matches this one
  (`matching` at FLOW_MOTION_SCALE). That last check also catches what the previous frame did
  not show (its warped picture does not match there), so the forward flow and its
  consistency test (flow.reliability) are not computed: on the benchmark's clips they changed
  the warping error by under 1% and cost a second DIS call. Strokes then travel with what
  moves instead of being repainted at every frame. Two stroke patterns that do not quite
  line up average to a paler picture, and each bilinear warp softens the held one a little
  more, so the blend's local contrast is brought back up to the network's
  (`with_contrast_of`); without that, D = 0.9 blurred the strokes of a pan (per-frame J 1.50×
  `blend`'s, against 1.17× with it; docs/benchmarks/video.md).
- blend (the default, D = 0.5): P is the previous output where it was, trusted
  where the input did not change, exp(−|in_t − in_{t−1}| / 0.02): static parts stop
  shimmering, moving parts get no help.
- off: every frame as the network paints it.

Where nothing can be trusted (a disocclusion, a scene cut) k is 0 and the new frame is the
network's, so no ghost trails.

The step runs in one PyTorch thread and uses no exp, so two runs write the same bytes: with
PyTorch's CPU exp on two threads, in about one process in ten the calling thread's share of
the trust map came out up to 1.5e-4 (relative) off, the other thread's share exact, and the
frames written differed from other runs'. Sums, products, quotients and square roots are
rounded exactly (IEEE 754) whichever code path computes them.

The command reports flicker as mean |out_t − out_{t−1}| ÷ mean |in_t − in_{t−1}|: 1 means
the output changes as much as the video itself does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import flow, images
from ..devices import one_torch_thread
from .backend import CONSISTENCY, Settings

MOTION_SCALE = 0.02  # input change (in [0, 1] units) at which trust has faded to about 0.4
FLOW_SIDE = 160  # long side of the frames the flow is computed on
FLOW_MOTION_SCALE = 0.1  # the same for the flow's check: warped frames differ by interpolation too
GAIN = 2.0  # most contrast a blend gets back
BOX = 5  # side of the window local contrast is measured over, in pixels


@dataclass
class Consistency:
    """The blend with the previous output frame (see the module's docstring), and the flicker
    measurement. The changes stay tensors on the device until the end, so a GPU is not stopped
    at every frame for them."""

    method: str
    strength: float  # D
    previous_in: torch.Tensor | None = None
    previous_out: torch.Tensor | None = None
    change_in: list[torch.Tensor] = field(default_factory=list)
    change_out: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def of(cls, settings: Settings) -> Consistency:
        strength = CONSISTENCY[settings.consistency] if settings.deflicker is None else settings.deflicker
        return cls(settings.consistency, strength)

    def __call__(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """One frame (1×3×H×W in [0, 1]) and the network's picture of it -> the frame to write."""
        out = stylized
        if self.previous_in is not None:
            # One thread: on a busy 2-core CPU two made this step's small element-wise work
            # 20-100 times slower (3 ms against 270 ms at 256 px, measured).
            with one_torch_thread(frame_in.device.type == "cpu"):
                out = self.blended(frame_in, stylized)
                # Measured on what gets written: 8-bit frames.
                self.change_in.append((quantize(frame_in) - quantize(self.previous_in)).abs().mean())
                self.change_out.append((quantize(out) - quantize(self.previous_out)).abs().mean())
        self.previous_in, self.previous_out = frame_in, out
        return out

    def blended(self, frame_in: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """k·P + (1 − k)·stylized, as the module's docstring says."""
        if self.strength == 0 or self.method == "off":
            return stylized
        held, trust = self.held(frame_in)
        keep = self.strength * trust
        out = keep * held + (1 - keep) * stylized
        return with_contrast_of(out, stylized) if self.method == "flow" else out

    def held(self, frame_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous output lined up with this frame, and how far it can be trusted (N×1×H×W)."""
        if self.method == "blend":
            return self.previous_out, matching(frame_in, self.previous_in, MOTION_SCALE)
        backward, reliable = flow_between(self.previous_in, frame_in)
        # One warp for both: the previous input (to check the flow) and output (to hold to).
        warped = warp(torch.cat([self.previous_in, self.previous_out], 1), backward)
        return warped[:, 3:], reliable * matching(frame_in, warped[:, :3], FLOW_MOTION_SCALE)

    def mean_changes(self) -> tuple[float, float]:
        """Mean input and output change per frame; 0 for a video of one frame, which cannot flicker."""
        if not self.change_in:
            return 0.0, 0.0
        return float(np.mean([float(c) for c in self.change_in])), float(np.mean([float(c) for c in self.change_out]))


def flow_between(previous: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward flow from `current` to `previous` and where it can be trusted (1: smooth and
    pointing inside the previous frame), at the frames' size. Computed on frames shrunk to
    FLOW_SIDE and scaled up: fast mode's strokes are coarser than that, and the full-size
    flow would cost more than the network."""
    h, w = current.shape[-2:]
    scale = min(1.0, FLOW_SIDE / max(h, w))
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    backward = flow.optical_flow(to_uint8(images.resize(current, small)), to_uint8(images.resize(previous, small)))
    reliable = 1 - torch.maximum(flow.motion_boundaries(backward), flow.outside(backward))
    if small != (w, h):
        backward = F.interpolate(backward, size=(h, w), mode="bilinear", align_corners=False)
        backward = backward * torch.tensor([w / small[0], h / small[1]]).view(1, 2, 1, 1)
        reliable = F.interpolate(reliable, size=(h, w), mode="bilinear", align_corners=False)
    return backward.to(current.device), reliable.to(current.device)


def warp(image: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """flow.warp's backward warping by grid_sample: equal to float rounding (not to the bit, as
    flow.warp is for integer shifts, which the optimization's tests ask of it) and about ten
    times faster on a CPU, which fast mode's frame rate needs."""
    _, _, h, w = backward.shape
    ys = torch.arange(h, dtype=backward.dtype, device=backward.device).view(1, h, 1)
    xs = torch.arange(w, dtype=backward.dtype, device=backward.device).view(1, 1, w)
    grid = torch.stack([(xs + backward[:, 0]) * (2 / max(w - 1, 1)) - 1, (ys + backward[:, 1]) * (2 / max(h - 1, 1)) - 1], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def with_contrast_of(blend: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """`blend`'s detail (what differs from its local mean) scaled to the local contrast of
    `stylized`: a mix of two stroke patterns that do not line up is paler than either."""
    mean_blend, mean_stylized = local_mean(blend), local_mean(stylized)
    detail = blend - mean_blend
    spread_blend = local_mean(detail.square()).sqrt()
    spread_stylized = local_mean((stylized - mean_stylized).square()).sqrt()
    gain = (spread_stylized / (spread_blend + 1e-4)).clamp(1.0, GAIN)
    return (mean_blend + detail * gain).clamp(0, 1)


def local_mean(image: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(image, BOX, stride=1, padding=BOX // 2, count_include_pad=False)


def matching(frame: torch.Tensor, previous: torch.Tensor, scale: float) -> torch.Tensor:
    """1 where two frames agree, fading as their mean difference u grows: (1 + u / 4·scale)⁻⁴,
    close to exp(−u / scale) (0.41 against 0.37 at u = scale, 0.06 against 0.02 at 4·scale)
    but made of products and a quotient only, which every thread rounds alike (N×1×H×W)."""
    near = (4 * scale) / (4 * scale + (frame - previous).abs().mean(1, keepdim=True))
    near = near * near
    return near * near


def quantize(frame: torch.Tensor) -> torch.Tensor:
    return frame.clamp(0, 1).mul(255).round().div(255)


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """A 1×3×H×W frame in [0, 1] as the H×W×3 uint8 picture the flow is computed on."""
    return frame[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()
