"""The clips and the measure of benchmarks/video.py.

Clips of known motion: a photo panned, zoomed or rotated by a known amount per frame. Frame t
shows the photo through the affine map M_t (frame pixel x -> photo point M_t x), so the true
flow from frame t to frame t+1 is exact: F(x) = M_{t+1}^-1 (M_t x) - x, and it can be trusted
wherever x + F(x) lies inside frame t+1.

Real clips: opencv-doc's vtest.avi (people walking, fixed camera), tree.avi (a hand-held
camera around a tree) and Megamind.avi (an animated film: camera moves, fast action). Their
flow is measured with OpenCV's Farneback method, not with the DIS flow the stylizers use, so
no stylizer is graded by its own flow; it is trusted where the forward and backward flows
agree (the forward-backward test of Sundaram et al. 2010, as Lai et al. use it) and the
point stays inside the frame.

Warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018): the mean
over consecutive pairs of mean |out_t - warp(out_{t+1})| over the trusted pixels of frame t,
in 8-bit levels (0-255), where warp(out_{t+1})(x) = out_{t+1}(x + F(x)), bilinear.
"""

from __future__ import annotations

import gzip
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# name: (pan px per frame (x, y), zoom factor per frame, rotation degrees per frame)
MOTIONS = {"pan": ((3.3, 1.2), 1.0, 0.0), "zoom": ((0.0, 0.0), 1.02, 0.0), "rotate": ((0.0, 0.0), 1.0, 1.0)}
# name: (file, first frame): stretches where things move
REAL = {"vtest": ("vtest.avi", 60), "tree": ("tree.avi", 20), "megamind": ("Megamind.avi", 40)}
MARGIN = 1.4  # the photo is this much larger than a frame, so every frame samples inside it


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]  # H×W×3 uint8
    flows: list[np.ndarray] = field(default_factory=list)  # t -> t+1 on frame t's grid, H×W×2
    trusted: list[np.ndarray] = field(default_factory=list)  # H×W bool, per pair
    exact: bool = False  # the flow is the true one (known motion), not measured


def frame_shape(photo: Image.Image, size: int) -> tuple[int, int]:
    scale = size / max(photo.size)
    return round(photo.height * scale) // 2 * 2, round(photo.width * scale) // 2 * 2


def affine(motion: str, t: int, height: int, width: int, photo_shape: tuple[int, int]) -> np.ndarray:
    """3×3 map from frame t's pixels to the photo's pixels."""
    (dx, dy), zoom, degrees = MOTIONS[motion]
    scale = zoom**-t  # zooming in: each frame shows less of the photo
    angle = math.radians(degrees * t)
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    frame_centre = np.array([(width - 1) / 2, (height - 1) / 2])
    photo_centre = np.array([(photo_shape[1] - 1) / 2, (photo_shape[0] - 1) / 2])
    shift = photo_centre + t * np.array([dx, dy]) - rotation @ frame_centre
    # centred, so that panning starts left of the middle and ends right of it
    return np.vstack([np.hstack([rotation, shift[:, None]]), [0, 0, 1]])


def known_motion(photo: Image.Image, motion: str, size: int, count: int) -> Clip:
    """`count` frames of `photo` moving by MOTIONS[motion], each resampled once (bicubic) from
    the photo, with the exact flow between consecutive frames."""
    height, width = frame_shape(photo, size)
    big = np.asarray(photo.resize((round(width * MARGIN), round(height * MARGIN)), Image.LANCZOS))
    (dx, dy), _, _ = MOTIONS[motion]
    start = -np.array([dx, dy]) * (count - 1) / 2  # centre the pan on the photo
    maps = []
    for t in range(count):
        m = affine(motion, t, height, width, big.shape[:2])
        m[:2, 2] += start
        maps.append(m)
    frames = [cv2.warpAffine(big, m[:2], (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT) for m in maps]
    clip = Clip(motion, frames, exact=True)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    for t in range(count - 1):
        there = np.linalg.inv(maps[t + 1]) @ maps[t] @ points
        flow = (there[:2] - points[:2]).T.reshape(height, width, 2)
        inside = (there[0] >= 0) & (there[0] <= width - 1) & (there[1] >= 0) & (there[1] <= height - 1)
        clip.flows.append(flow.astype(np.float32))
        clip.trusted.append(inside.reshape(height, width))
    return clip


def video_file(name: str) -> Path:
    """opencv-doc's clip, unpacked to benchmarks/out if Debian ships it gzipped."""
    path = OPENCV_DATA / name
    if path.exists():
        return path
    packed = path.with_name(name + ".gz")
    if not packed.exists():
        raise SystemExit(f"{path} not found: apt install opencv-doc")
    unpacked = Path("benchmarks/out/video") / name
    if not unpacked.exists():
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(packed) as source, open(unpacked.with_suffix(".part"), "wb") as target:
            shutil.copyfileobj(source, target)
        unpacked.with_suffix(".part").replace(unpacked)
    return unpacked


def real_clip(name: str, size: int, count: int) -> Clip:
    """`count` consecutive frames from REAL[name]'s first frame on, resized to `size` px on
    the long side, with Farneback flow and its forward-backward trust."""
    import av

    file, first = REAL[name]
    frames = []
    with av.open(str(video_file(file))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first:
                picture = frame.to_image()
                height, width = frame_shape(picture, size)
                frames.append(np.asarray(picture.resize((width, height), Image.LANCZOS)))
            if len(frames) == count:
                break
    clip = Clip(name, frames)
    for a, b in zip(frames, frames[1:]):
        forward, backward = farneback(a, b), farneback(b, a)
        clip.flows.append(forward)
        clip.trusted.append(consistent(forward, backward))
    return clip


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    gray = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b)]
    return cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 4, 15, 5, 5, 1.1, 0)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image(x + flow(x)), bilinear; float32 out."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(image.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Where the backward flow, fetched at the forward flow's end point, undoes the forward
    flow: |F + B(x+F)|² ≤ 0.01 (|F|² + |B(x+F)|²) + 0.5, and the end point is in the frame."""
    height, width = forward.shape[:2]
    back_there = warp(backward, forward)
    mismatch = ((forward + back_there) ** 2).sum(-1)
    agree = mismatch <= 0.01 * ((forward**2).sum(-1) + (back_there**2).sum(-1)) + 0.5
    ys, xs = np.mgrid[0:height, 0:width]
    x, y = xs + forward[..., 0], ys + forward[..., 1]
    return agree & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def warping_errors(outputs: list[np.ndarray], clip: Clip) -> list[float]:
    """Per consecutive pair: mean |out_t - warp(out_{t+1})| over the trusted pixels of frame t,
    in 8-bit levels."""
    errors = []
    for t, (flow, trusted) in enumerate(zip(clip.flows, clip.trusted)):
        difference = np.abs(outputs[t].astype(np.float32) - warp(outputs[t + 1], flow)).mean(-1)
        errors.append(float(difference[trusted].mean()))
    return errors


def error_map(outputs: list[np.ndarray], clip: Clip, t: int, gain: float = 4.0) -> np.ndarray:
    """|out_t - warp(out_{t+1})| × gain as a gray picture, untrusted pixels dark red: what the
    warping error counts, for the contact sheets."""
    difference = np.abs(outputs[t].astype(np.float32) - warp(outputs[t + 1], clip.flows[t])).mean(-1)
    gray = np.clip(difference * gain, 0, 255).astype(np.uint8)
    picture = np.repeat(gray[..., None], 3, -1)
    picture[~clip.trusted[t]] = (90, 0, 0)
    return picture
