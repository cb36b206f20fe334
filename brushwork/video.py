"""Painting a video with the optimization: the frame loop of `brushwork stylize clip.mp4`.

Frames painted one by one as stills flicker: each puts its brush strokes somewhere else. Here
(after Ruder, Dosovitskiy and Brox, 2016) the first frame of a shot gets a still's schedule,
and every later frame t

- starts from output t−1 warped onto it along the optical flow (flow.py), with the pixels
  the flow cannot bring over (disocclusions) taken from the content frame, and
- runs a short single-scale schedule at the output's size (`frame_steps`), with the
  temporal term (temporal.py) holding it to the warped outputs t−j, j in `temporal_frames`.

The warm start is why a later frame needs a fraction of a still's steps; the temporal term
is why the strokes stay put. A frame whose flow from the previous one is unreliable almost
everywhere (a scene cut) starts a new shot: a still's schedule, no temporal term.

Outputs travel down the chain as they are stored (8-bit), so a run resumed from its stored
frames continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from . import flow, images
from .engine import Engine, Progress, Result
from .options import Options
from .temporal import TemporalTarget, long_term_weights

# A later frame's schedule: single-scale steps at the output's size, from the warm start.
# Chosen by measurement (docs/guides/video.md).
FRAME_STEPS = 25
# A frame whose flow from the previous frame is reliable on less than this share of its
# pixels starts a new shot. Within a shot even fast pans keep most pixels reliable; across a
# cut DIS finds consistent flow only on flat areas.
CUT_BELOW = 0.5


@dataclass(frozen=True)
class ClipSettings:
    """How the frame loop runs (the per-picture settings are Options)."""

    frame_steps: int = FRAME_STEPS
    temporal_frames: tuple[int, ...] = (1,)  # previous frames each frame is held to: 1 = t−1
    cut_below: float = CUT_BELOW


@dataclass
class Frame:
    """One content frame at the output's size, with its per-frame --mask (None: no mask)."""

    index: int
    picture: Image.Image
    mask: np.ndarray | None = None


@dataclass
class Link:
    """How a frame follows the frames before it: where it starts and what it is held to."""

    start: torch.Tensor
    target: TemporalTarget
    reliable: float  # share of pixels the flow from the previous frame brings over


class Chain:
    """The last few content frames and their outputs (in the optimization's space), and the
    warped targets and warm start of the next frame."""

    def __init__(self, settings: ClipSettings, space: Callable[[torch.Tensor], torch.Tensor]):
        self.settings, self.space = settings, space
        self.history: deque[tuple[np.ndarray, torch.Tensor]] = deque(maxlen=max(settings.temporal_frames))

    def add(self, pixels: np.ndarray, output: Image.Image) -> None:
        self.history.appendleft((pixels, self.space(images.to_tensor(output))))

    def link(self, pixels: np.ndarray) -> Link | None:
        """The next frame's link, or None where it starts a shot (the first frame, a cut)."""
        if not self.history:
            return None
        warped, reliabilities = [], []
        for j in sorted(self.settings.temporal_frames):
            if j > len(self.history):
                break
            previous, output = self.history[j - 1]
            forward, backward = flow.flows(previous, pixels)
            reliable = flow.reliability(forward, backward, (previous, pixels))
            if float(reliable.mean()) < self.settings.cut_below:
                if j == 1:
                    return None
                continue  # a long-term target across a cut
            warped.append(flow.warp(output, backward, cubic=True))
            reliabilities.append(reliable)
        if not warped:
            return None
        content = self.space(torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255)
        start = torch.lerp(content, warped[0], reliabilities[0])
        target = TemporalTarget(torch.cat(warped), long_term_weights(reliabilities))
        return Link(start, target, float(reliabilities[0].mean()))


def shot_starts(frames: Iterable[Frame], cut_below: float = CUT_BELOW) -> list[int]:
    """The indices of the frames that start a shot: the first, and each one the flow from the
    frame before reaches on less than `cut_below` of its pixels (the test Chain.link makes).
    Found before painting, so that shots, which share nothing, can be painted apart (--ray)."""
    starts, previous = [], None
    for frame in frames:
        pixels = np.asarray(frame.picture)
        if previous is None or float(flow.reliability(*flow.flows(previous, pixels), (previous, pixels)).mean()) < cut_below:
            starts.append(frame.index)
        previous = pixels
    return starts


def optimization_space(options: Options) -> Callable[[torch.Tensor], torch.Tensor]:
    """Outputs as the optimization sees them: gray in luminance mode (whose colours are put
    back after the optimization), as they are otherwise."""
    return images.luminance if options.preserve_color == "luminance" else (lambda x: x)


def frame_options(options: Options, frame: Frame, link: Link | None, settings: ClipSettings) -> Options:
    """A shot's first frame runs the still's schedule; later frames `frame_steps` single-scale
    steps. The frame's own mask (mask videos, smoothed faces) replaces --mask."""
    if frame.mask is not None:
        options = options.replace(mask=frame.mask, protect_faces=0.0)
    if link is None:
        return options
    return options.replace(scales=1, steps=settings.frame_steps, steps_per_scale=None, init="content")


def paint_clip(
    engine: Engine,
    frames: Iterable[Frame],
    styles: list[Image.Image],
    options: Options,
    settings: ClipSettings,
    store: FrameStore,
    callback: Callable[[Progress], None] | None = None,
) -> Iterator[tuple[Frame, Result | None, Link | None]]:
    """Paint every frame not in `store` yet, in order, saving each as it is done. Yields
    (frame, result, link) per frame: result None for a frame already stored (--resume),
    link None for a shot's first frame. `callback` gets every step of every frame (the web
    studio's progress; an exception from it stops the run between steps)."""
    chain = Chain(settings, optimization_space(options))
    for frame in frames:
        pixels = np.asarray(frame.picture)
        if store.has(frame.index):
            output = store.load(frame.index)
            chain.add(pixels, output)
            yield frame, None, None
            continue
        link = chain.link(pixels)
        result = engine.run(
            frame.picture, styles, frame_options(options, frame, link, settings), callback,
            start=None if link is None else link.start, temporal=None if link is None else link.target,
        )
        if result.stop_reason == "interrupted":
            raise KeyboardInterrupt
        store.save(frame.index, result.image)
        chain.add(pixels, result.image)
        yield frame, result, link


class FrameStore:
    """Finished frames as PNG files, one per frame index, each written whole (temp + rename),
    so an interrupted run leaves only complete frames and --resume paints the rest."""

    def __init__(self, names: Callable[[int], Path]):
        self.names = names

    def has(self, index: int) -> bool:
        return self.names(index).is_file()

    def load(self, index: int) -> Image.Image:
        return images.load_image(self.names(index))

    def save(self, index: int, picture: Image.Image) -> None:
        images.save_image(picture, self.names(index), overwrite=True)
