"""`brushwork stylize` on a video or a picture sequence: what it reads and writes around the
frame loop (video.py).

- A video file (any PyAV reads) becomes a video with the same frame count, rate and
  timestamps and the audio copied; a folder with --video becomes PNGs of the same names.
- Finished frames go to a work folder next to the output (`OUT.frames/`), each written whole,
  so a run stopped by Ctrl-C, a kill or a full disk continues with --resume; the video is
  assembled from them only when every frame is done, into a temp file renamed at the end.
- --mask is one picture for every frame, or a mask video or folder with a mask per frame;
  --protect-faces tracks face boxes over time (faces.FaceTrack), so protection holds still.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import images, videoio
from ..api import engine_for
from ..clip_io import Clip, frames_at_size, is_mask_sequence, open_clip
from ..errors import BrushworkError
from ..options import Options
from ..video import ClipSettings, Frame, FrameStore, paint_clip, shot_starts


def parse_span(text: str | None) -> tuple[int, int | None]:
    """--frames START:END, END excluded, either side may be left out (0-based frame numbers)."""
    if text is None:
        return 0, None
    start, sep, end = text.partition(":")
    try:
        span = (int(start) if start else 0, int(end) if end else None)
    except ValueError:
        span = (-1, None)
    if not sep or span[0] < 0 or (span[1] is not None and span[1] <= span[0]):
        raise BrushworkError(f"--frames takes START:END frame numbers with START < END (e.g. 0:48), got {text!r}")
    return span

def parse_temporal_frames(text: str) -> tuple[int, ...]:
    """--temporal-frames 1,2,4: the earlier frames each frame is held to; 1 must be one."""
    try:
        frames = tuple(sorted({int(v) for v in text.split(",")}))
    except ValueError:
        frames = ()
    if not frames or frames[0] != 1:
        raise BrushworkError(f"--temporal-frames takes frame distances that include 1, e.g. 1,2,4; got {text!r}")
    return frames


def add_video_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video (a video file, or a folder with --video)")
    group.add_argument("--video", action="store_true",
                       help="a folder's pictures, in name order, are the frames of one video (-o: a folder of PNGs "
                            "of the same names); without it a folder is independent photos")
    group.add_argument("--frames", metavar="START:END", help="paint only frames START to END-1 (0-based), e.g. 0:48")
    group.add_argument("--frame-steps", type=int, default=ClipSettings.frame_steps, metavar="N",
                       help="steps of each frame after a shot's first, which gets the still's schedule "
                            f"(default {ClipSettings.frame_steps})")
    group.add_argument("--temporal-frames", default="1", metavar="J,...",
                       help="earlier frames each frame is held to, e.g. 1,2,4 (default 1: the previous frame)")


def is_clip(args: argparse.Namespace) -> bool:
    """Whether `stylize` paints a video: one video file, or a folder with --video."""
    if len(args.content) != 1:
        return False
    path = Path(args.content[0])
    return (getattr(args, "video", False) and path.is_dir()) or (path.is_file() and path.suffix.lower() in videoio.VIDEO_SUFFIXES)


def frame_names(clip: Clip, output: Path) -> tuple[Path, FrameStore]:
    """Where finished frames go: the work folder next to a video output (OUT.frames/), or
    the output folder of a sequence, as PNGs named like the input pictures."""
    folder = output.absolute()  # the store travels to Ray workers, which have another working folder
    if clip.is_video:
        work = folder.with_name(output.name + ".frames")
        return output.with_name(work.name), FrameStore(lambda i: work / f"frame_{i:06d}.png")
    return output, FrameStore(lambda i: folder / (clip.pictures[i].stem + ".png"))


def prepare_output(clip: Clip, args: argparse.Namespace, run: dict) -> tuple[Path, FrameStore]:
    """Check the output and the work folder before any work; with --resume, that the frames
    there were painted by the same run."""
    output = Path(args.output)
    if clip.is_video:
        if output.suffix.lower() not in videoio.VIDEO_OUTPUT_SUFFIXES:
            raise BrushworkError(f"a video is written as .mp4, .mkv or .mov, not {output.name}")
        images.check_writable(output, args.overwrite or args.resume)
    elif output.exists() and not output.is_dir():
        raise BrushworkError(f"{output} is a file; a picture sequence goes to -o FOLDER")
    elif not output.parent.is_dir():
        raise BrushworkError(f"output folder does not exist: {output.parent}")
    work, store = frame_names(clip, output)
    record = work / ".brushwork-run.json"
    if not clip.is_video and not args.resume:
        done = [p for p in (output / (p.stem + ".png") for p in clip.pictures[slice(*clip.span)]) if p.exists()]
        if done and not args.overwrite:
            raise BrushworkError(f"{done[0]} exists; pass --overwrite to replace the outputs, or --resume to keep them")
        for path in done:
            path.unlink()
    if record.is_file() and not args.resume:
        if not args.overwrite:
            raise BrushworkError(f"{work} holds frames of an earlier run: --resume continues it, --overwrite starts over")
        if clip.is_video:
            shutil.rmtree(work)
        else:
            record.unlink()
    if args.resume and record.is_file() and json.loads(record.read_text()) != run:
        raise BrushworkError(f"the frames in {work} were painted with other settings; --overwrite starts over")
    work.mkdir(parents=False, exist_ok=True)
    images.write_atomic(record, json.dumps(run, sort_keys=True).encode())
    return work, store


def stylize_clip(args: argparse.Namespace, options: Options) -> int:
    """`brushwork stylize` on a video or picture sequence (see the module's docstring)."""
    settings = ClipSettings(args.frame_steps, parse_temporal_frames(args.temporal_frames))
    if settings.frame_steps < 1:
        raise BrushworkError("--frame-steps must be at least 1")
    if args.trace or args.save_every:
        raise BrushworkError("--trace and --save-every take one photo; a video's frames are kept in its work folder")
    clip = open_clip(args.content[0], args.video, parse_span(args.frames))
    styles = [images.load_image(s) for s in args.style]
    mask_source = options.mask if is_mask_sequence(options.mask) else None
    run = {"options": dataclasses.asdict(options), "styles": [str(Path(s).resolve()) for s in args.style],
           "clip": dataclasses.asdict(settings), "source": str(clip.source.resolve())}
    run = json.loads(json.dumps(run, default=str))
    if mask_source is not None:
        options = options.replace(mask=None)  # each frame gets its own
    options.validate(len(styles))
    if clip.is_video and args.resume and Path(args.output).exists() and not frame_names(clip, Path(args.output))[0].exists():
        print(f"brushwork: {args.output} is already finished; nothing to resume", file=sys.stderr)
        return 0
    work, store = prepare_output(clip, args, run)
    frames = frames_at_size(clip, options, mask_source)
    try:
        if args.ray is not None:
            painted = paint_shots(args, clip, mask_source, styles, options, settings, store)
        else:
            painted = paint_frames(args, clip, frames, styles, options, settings, store)
    except KeyboardInterrupt:
        print(f"brushwork: interrupted; the finished frames are kept in {work}: run the same command with --resume "
              "to continue", file=sys.stderr)
        return 130
    except BrushworkError as e:
        raise BrushworkError(f"{e}; the finished frames are kept in {work}: --resume continues") from None
    if clip.is_video:
        size = store.load(clip.span[0]).size
        videoio.rewrite(clip.source, Path(args.output), size, lambda i, _: np.asarray(store.load(i)), clip.span)
        shutil.rmtree(work)
    else:
        (work / ".brushwork-run.json").unlink()
    if not args.quiet:
        print(f"wrote {args.output} ({painted} frames painted)", file=sys.stderr)
    return 0


def paint_frames(args, clip: Clip, frames: Iterator[Frame], styles, options: Options, settings: ClipSettings,
                 store: FrameStore) -> int:
    """The frame loop under one progress bar; the number of frames painted (not resumed)."""
    engine = engine_for(options)
    painted = 0
    # The bar and its ETA count the frames still to paint.
    count = clip.count - sum(store.has(i) for i in range(clip.span[0], clip.span[0] + clip.count))
    with tqdm(total=count, unit="frame", desc="stylize", disable=args.quiet, dynamic_ncols=True) as bar:
        for frame, result, link in paint_clip(engine, frames, styles, options, settings, store):
            if result is not None:
                painted += 1
                bar.set_postfix_str("new shot" if link is None else f"{link.reliable:.0%} carried over")
                bar.update()
    return painted


def paint_shots(args, clip: Clip, mask_source: str | None, styles, options: Options, settings: ClipSettings,
                store: FrameStore) -> int:
    """--ray: the shots found first (video.shot_starts), each painted as a Ray task
    (cluster.py) into the same work folder a local run uses; the number of frames painted."""
    from .. import cluster  # imports Ray, which only --ray needs

    cluster.connect(args.ray, args.quiet)
    starts = shot_starts(frames_at_size(clip, options.replace(protect_faces=0.0), None), settings.cut_below)
    ends = [*starts[1:], clip.span[0] + clip.count]
    shots = [(a, b) for a, b in zip(starts, ends) if not all(store.has(i) for i in range(a, b))]
    todo = sum(not store.has(i) for a, b in shots for i in range(a, b))
    painted = 0
    with tqdm(total=todo, unit="frame", desc=f"stylize ({len(shots)} shots)", disable=args.quiet, dynamic_ncols=True) as bar:
        for count in cluster.stylize_shots(clip, shots, mask_source, styles, options, settings, store):
            painted += count
            bar.update(count)
    return painted
