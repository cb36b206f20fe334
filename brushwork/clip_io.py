"""Reading a clip: a video file or a folder of pictures, checked once, its frames at the
output's size with each frame's own mask. The library side of painting video, shared by
`brushwork stylize clip.mp4` (commands/clip.py) and the web studio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from . import images, masks, videoio
from .errors import BrushworkError
from .options import Options
from .video import Frame

PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclasses.dataclass
class Clip:
    """The frames a run paints: a video file, or a sequence of pictures, cut to `span`."""

    source: Path
    pictures: list[Path] | None  # a sequence's files, in name order; None for a video file
    span: tuple[int, int | None]  # first frame, and the frame after the last (None: to the end)
    count: int = 0  # frames in the span, once checked (open_clip)

    @property
    def is_video(self) -> bool:
        return self.pictures is None

    def raw_frames(self) -> Iterator[tuple[int, Image.Image]]:
        """(index, picture) of every frame in the span, upright RGB."""
        start, end = self.span
        if self.pictures is not None:
            for index, path in enumerate(self.pictures[start:end], start):
                yield index, images.load_image(path)
            return
        for index, picture in enumerate(videoio.frames(self.source)):
            if end is not None and index >= end:
                return
            if index >= start:
                yield index, Image.fromarray(picture.pixels)

    def check(self) -> int:
        """The number of frames in the span, each one read once: an unreadable frame, or one of
        another size than the first, fails here and not hours into a run."""
        count, first = 0, None
        for index, picture in self.raw_frames():
            first = first or picture.size
            if picture.size != first:
                raise BrushworkError(f"frame {index} is {picture.width}x{picture.height}, the first frame "
                                     f"{first[0]}x{first[1]}: a clip's frames must share one size")
            count += 1
        return count


def open_clip(source: str, as_sequence: bool, span: tuple[int, int | None]) -> Clip:
    """The clip of `source`, checked: a readable video with frames, or a folder of pictures."""
    path = Path(source)
    if path.is_dir():
        if not as_sequence:
            raise BrushworkError(f"{path} is a folder: add --video to paint its pictures as frames of one video")
        pictures = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
        if not pictures:
            raise BrushworkError(f"no pictures in {path}")
        clip = Clip(path, pictures, span)
    else:
        if not path.is_file():
            raise BrushworkError(f"video not found: {path}")
        videoio.open_video(path).close()
        clip = Clip(path, None, span)
    clip.count = clip.check()
    if clip.count == 0:
        raise BrushworkError(f"{path} has no frames in --frames {span[0]}:{'' if span[1] is None else span[1]}")
    return clip


def frames_at_size(clip: Clip, options: Options, mask_source: str | None) -> Iterator[Frame]:
    """The clip's frames at the output's size (the first frame's, fitted to --size), with
    each frame's own mask where there is one (`mask_source`: a mask video or folder, or
    tracked faces)."""
    mask_frames = per_frame_masks(mask_source, clip.span) if mask_source else None
    tracker = None
    if options.protect_faces:
        from .faces import (
            FaceTrack,  # scikit-image's detector, loaded only when asked for
        )

        tracker = FaceTrack()
    size = None
    for index, picture in clip.raw_frames():
        size = size or images.fit_size(*picture.size, options.size)
        picture = picture if picture.size == size else picture.resize(size, Image.LANCZOS)
        mask = None if mask_frames is None else next(mask_frames, None)
        if mask_frames is not None and mask is None:
            raise BrushworkError(f"the --mask video or folder ends before frame {index}")
        yield Frame(index, picture, frame_mask(picture, options, mask, tracker))


def is_mask_sequence(mask: object) -> bool:
    """Whether --mask names a mask per frame (a video or a folder) rather than one picture."""
    return isinstance(mask, str) and (Path(mask).is_dir() or Path(mask).suffix.lower() in videoio.VIDEO_SUFFIXES)


def per_frame_masks(source: str, span: tuple[int, int | None]) -> Iterator[np.ndarray]:
    """A mask video's or folder's frames from span's start, as gray arrays."""
    path = Path(source)
    if path.is_dir():
        clip = Clip(path, sorted(p for p in path.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES), span)
    else:
        clip = Clip(path, None, span)
    return (masks.to_array(picture, "--mask") for _, picture in clip.raw_frames())


def frame_mask(picture: Image.Image, options: Options, mask: np.ndarray | None, tracker) -> np.ndarray | None:
    """The frame's own mask (mask video or folder, tracked faces), at the picture's size;
    None where --mask (one picture or none) applies as it is."""
    if mask is None and tracker is None:
        return None
    if mask is None:
        mask = masks.to_array(options.mask, "--mask") if options.mask is not None else np.ones(picture.size[::-1], np.float32)
    if mask.shape != picture.size[::-1]:
        mask = np.asarray(Image.fromarray(mask, "F").resize(picture.size, Image.BILINEAR))
    if tracker is not None:
        from .faces import face_mask

        mask = mask * (1 - options.protect_faces * face_mask(picture, tracker.update(picture)))
    return np.clip(mask, 0, 1).astype(np.float32)
