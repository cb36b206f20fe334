"""A batch over files (`apply`, and `stylize` over many photos): inputs expanded (folders,
URIs that Ray Data reads), each input's output path, all checked before any work. With
`resume`, the inputs whose output exists are left out (outputs are written atomically: one
that exists is whole)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import images
from ..errors import BrushworkError
from ..videoio import VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class Job:
    source: Path | str  # a str only for a URI (s3://...), which --ray reads
    target: Path
    video: bool


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def is_uri(text: str | Path) -> bool:
    return isinstance(text, str) and "://" in text


def expand_input(item: str) -> tuple[list[Path | str], bool]:
    """An input's pictures and videos, and whether it was a folder."""
    if is_uri(item):
        return list_uri(item)
    path = Path(item)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not found:
            raise BrushworkError(f"no images or videos in {path}")
        return list(found), True
    if path.is_file():
        return [path], False
    raise BrushworkError(f"input not found: {path}")


def list_uri(uri: str) -> tuple[list[Path | str], bool]:
    """Pictures at a URI that Ray Data reads (s3://, gs://, file://...): the file, or a folder's
    pictures. pyarrow, which reads them, comes with brushwork[ray]."""
    try:
        from pyarrow import fs
    except ModuleNotFoundError:
        raise BrushworkError(f'reading {uri} needs pyarrow: pip install "brushwork[ray]"') from None
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            return [uri], False
        entries = filesystem.get_file_info(fs.FileSelector(path)) if info.type == fs.FileType.Directory else None
    except (OSError, ValueError) as e:
        raise BrushworkError(f"cannot read {uri}: {e}") from None
    if entries is None:
        raise BrushworkError(f"input not found: {uri}")
    scheme = uri.split("://", 1)[0]
    found = sorted(f"{scheme}://{e.path}" for e in entries if e.type == fs.FileType.File and Path(e.path).suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise BrushworkError(f"no images in {uri} (videos are read from files every node sees, not from URIs)")
    return list(found), True


def plan_jobs(inputs: list[str], output: str, overwrite: bool, resume: bool = False) -> list[Job]:
    """Input files (folders expanded) and where each result goes, checked before any work.

    One input file: OUT is the output file (or an existing folder to put it in).
    Several inputs or a folder: OUT is a folder (created if missing), one output per input.
    With `resume`, inputs whose output exists are left out: a rerun finishes an interrupted one.
    """
    if is_uri(output):
        raise BrushworkError(f"{output}: outputs go to a folder (on a cluster, one every node sees); URLs are only read")
    sources: list[Path | str] = []
    folders = False
    for item in inputs:
        found, folder = expand_input(item)
        sources += found
        folders = folders or folder
    out = Path(output)
    single = len(inputs) == 1 and not folders
    new_folder = not single and not out.exists()  # made below, once every output has passed its checks
    if single and not out.is_dir():
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise BrushworkError(f"{out} must be a folder when applying to several inputs or a folder")
        if new_folder:
            images.check_writable(out, overwrite=False)  # its parent exists and can be written
        targets = [out / default_name(Path(s)) for s in sources]
        if len(set(targets)) != len(targets):
            raise BrushworkError("two inputs have the same file name; their outputs would collide in " + str(out))
    jobs = [Job(s, t, is_video(Path(s))) for s, t in zip(sources, targets)]
    for job in jobs:
        check_target(job, overwrite, resume, new_folder)
    if new_folder:
        out.mkdir(exist_ok=True)
    return [job for job in jobs if overwrite or not (resume and job.target.exists())]


def default_name(source: Path) -> str:
    if is_video(source):
        return source.stem + (source.suffix if source.suffix.lower() in VIDEO_OUTPUT_SUFFIXES else ".mp4")
    return source.stem + (source.suffix if source.suffix.lower() in images.SAVE_FORMATS else ".png")


def check_target(job: Job, overwrite: bool, resume: bool, new_folder: bool) -> None:
    """Output type, then images.check_writable, unless the output goes into a folder still to be
    made (`new_folder`): nothing can exist there yet, and plan_jobs has checked its parent."""
    allowed = VIDEO_OUTPUT_SUFFIXES if job.video else set(images.SAVE_FORMATS)
    if job.target.suffix.lower() not in allowed:
        raise BrushworkError(f"unsupported output type {job.target.suffix or '(none)'!r} for {Path(job.source).name}; use {', '.join(sorted(allowed))}")
    if job.target.is_file() and not (overwrite or resume):
        raise BrushworkError(f"{job.target} exists; pass --overwrite to replace it, or --resume to skip the inputs already done")
    if not new_folder:
        images.check_writable(job.target, overwrite=True)
