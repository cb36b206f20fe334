"""`--ray [ADDRESS]`: brushwork's batch work on a Ray cluster, for `apply`, `stylize` over many
photos and `compare` grids (RayRunner, the batch runner's other kind). Only the commands
import it, and only when --ray is given, so Ray stays optional.

How the work is split, and why:
* `apply`: a Ray Data pipeline. Read tasks fetch the files' bytes (local or shared folders,
  or any filesystem Ray Data reads, such as s3://); a pool of actors, each holding the model
  (one GPU each where the cluster has GPUs, else one CPU each), decodes, stylizes and writes
  them with the very code a local run uses (pipeline.stylize_files), so the outputs have the
  same names and bytes. A video is one task: its frames depend on each other (deflicker).
* `stylize` over many photos and `compare` grids: one Ray task per run (a compare run covers
  the cells that differ only in steps), one per GPU or per CPU slot. Each task writes its
  outputs itself, into the same places and the same cache as a local run.
* Faults: every output is written to a temp file and renamed (images.write_atomic), so a
  worker killed mid-write leaves no half picture under a final name. Ray retries the lost
  task; the retry skips outputs already written by this run and redoes the rest, so none is
  lost and none is made twice. After a Ctrl-C on the driver, a rerun with --resume (apply,
  stylize) or the same command (compare, whose cache resumes) finishes the rest; temp files
  that killed workers left beside the outputs are removed at the end of a run.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from . import images
from .api import engine_for
from .batch.cells import Cell, Inputs
from .batch.engines import Engines
from .batch.progress import GridProgress
from .batch.runs import pending_groups, run_queue
from .clip_io import Clip, frames_at_size
from .errors import BrushworkError
from .fast.arbitrary import ArbitraryModel
from .fast.backend import Settings, Stylizer
from .fast.net import FastModel, load_model
from .fast.pipeline import stylize_files
from .fast.video import VideoReport, stylize_video
from .options import Options
from .progress import ProgressReporter
from .video import ClipSettings, FrameStore, paint_clip

try:
    import ray
    import ray.data
except ModuleNotFoundError:  # the commands import this module only for --ray, so this is their error
    raise BrushworkError('--ray needs Ray on this machine: pip install "brushwork[ray]"') from None

# Pictures per actor call: room for a GPU batch of 8 and for the reader and writer threads to
# overlap, and little to redo after a fault.
IMAGES_PER_CALL = 16


def connect(address: str, quiet: bool) -> None:
    """Join a running cluster: `auto` is the one `ray start` made on this machine, else the
    head's host:port. Ray Data's progress bars stay off: the commands print their own lines."""
    level = logging.ERROR if quiet else logging.WARNING
    try:
        ray.init(address=address, logging_level=level, log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BrushworkError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
    logging.getLogger("ray.data").setLevel(level)  # Ray Data logs its plans at INFO
    ray.data.DataContext.get_current().enable_progress_bars = False


def slots(device: str) -> tuple[int, float]:
    """Tasks or actors at once and GPUs for each: one per GPU where the cluster has GPUs and
    the device allows them, else one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if device in ("auto", "cuda") else 0
    return (gpus, 1.0) if gpus else (max(1, int(resources.get("CPU", 1))), 0.0)


def absolute(source: str | Path) -> str:
    """Workers do not share the driver's working folder: local paths go as absolute ones."""
    return source if isinstance(source, str) and "://" in source else os.path.abspath(source)


def completed(refs: Sequence[ray.ObjectRef]) -> Iterator[object]:
    """Task results as the tasks finish; on an error or Ctrl-C here the rest are cancelled."""
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)


def remove_leftovers(targets: Sequence[Path]) -> None:
    """Temp files a killed worker left beside the outputs (images.write_atomic names them
    `.NAME.*.tmp`, videos `.NAME.tmp.EXT`); called once no task of the run can be writing."""
    for folder in {t.parent for t in targets}:
        names = {t.name for t in targets if t.parent == folder}
        for path in folder.glob(".*tmp*"):
            if any(path.name.startswith(f".{name}.") for name in names):
                path.unlink(missing_ok=True)


# --- apply ---------------------------------------------------------------------------------


def model_from_bytes(data: bytes | ArbitraryModel) -> FastModel | ArbitraryModel:
    """The model file travels through the object store, so the nodes need no copy of it; an
    arbitrary style travels as its vector (each node loads the network from its own install)."""
    if isinstance(data, ArbitraryModel):
        return data
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as file:
        file.write(data)
        file.flush()
        return load_model(file.name)


class Painter:
    """An actor of the apply pool: one loaded model, called with batches of files' bytes.
    Outputs that exist were written by an earlier attempt of this run (apply refuses or skips
    existing ones before it starts), so unless the run overwrites they are not made again."""

    def __init__(self, model: bytes | ArbitraryModel, settings: Settings, targets: dict[str, str], overwrite: bool) -> None:
        self.stylizer = Stylizer(model_from_bytes(model), settings)
        self.targets = targets  # by the source's file name, which apply has checked to be unique
        self.overwrite = overwrite

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        targets = [Path(self.targets[PurePosixPath(path).name]) for path in batch["path"]]
        todo = [(self.decode(data, path), target) for data, path, target in zip(batch["bytes"], batch["path"], targets)
                if self.overwrite or not target.exists()]
        stylize_files(self.stylizer, todo, lambda text: None)
        return {"target": np.array([str(t) for t in targets])}

    @staticmethod
    def decode(data: bytes, path: str) -> Image.Image:
        """Opened lazily: load_image decodes it in the pipeline's reader thread, as locally."""
        try:
            return Image.open(io.BytesIO(data))
        except (OSError, SyntaxError, ValueError):
            raise BrushworkError(f"not an image file (or a format Pillow cannot read): {path}") from None


@ray.remote(max_retries=3)
def paint_video(model: bytes | ArbitraryModel, settings: Settings, source: str, target: str, overwrite: bool) -> tuple[str, VideoReport | None]:
    """One video, whole; None when an earlier attempt of this run finished it."""
    if Path(target).exists() and not overwrite:
        return target, None
    return target, stylize_video(Stylizer(model_from_bytes(model), settings), Path(source), Path(target))


def apply(
    pictures: Sequence[tuple[str | Path, Path]], videos: Sequence[tuple[Path, Path]], model_file: Path | ArbitraryModel,
    settings: Settings, overwrite: bool,
) -> Iterator[tuple[str, VideoReport | None]]:
    """(target, None) for each picture and (target, report) for each video as they finish;
    `model_file` is a trained model's file or an arbitrary style (apply --style)."""
    model = model_file if isinstance(model_file, ArbitraryModel) else model_file.read_bytes()
    count, gpus = slots(settings.device)
    shared = ray.put(model)
    video_refs = [paint_video.options(num_gpus=gpus).remote(shared, settings, absolute(s), absolute(t), overwrite)
                  for s, t in videos]
    if pictures:
        targets = {PurePosixPath(str(s)).name: absolute(t) for s, t in pictures}
        # Reading bytes is I/O: the read tasks take no CPU slot, which the actors keep (else a
        # pool with an actor per CPU would leave them none).
        dataset = ray.data.read_binary_files([absolute(s) for s, _ in pictures], include_paths=True, num_cpus=0)
        painted = dataset.map_batches(
            Painter, fn_constructor_args=(model, settings, targets, overwrite), batch_size=IMAGES_PER_CALL, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=count), num_cpus=1, num_gpus=gpus,
        )  # fmt: skip
        for row in painted.iter_rows():
            yield row["target"], None
    yield from completed(video_refs)
    remove_leftovers([t for _, t in [*pictures, *videos]])


# --- stylize over many photos --------------------------------------------------------------


@ray.remote(max_retries=3)
def paint_photo(photo: str, target: str, styles: list[Image.Image], options: Options) -> tuple[str, str, float]:
    """One stylize run, written where a local run writes it. A cancelled run writes nothing,
    so that --resume redoes it."""
    result = engine_for(options).run(images.load_image(photo), styles, options)
    if result.stop_reason != "interrupted":
        images.save_image(result.image, target, overwrite=True)
    return target, result.stop_reason, result.seconds


def stylize(runs: Sequence[tuple[Path, Path]], styles: list[Image.Image], options: Options) -> Iterator[tuple[str, str, float]]:
    """(target, stop reason, seconds) of each run as it finishes."""
    _, gpus = slots(options.device)
    shared = ray.put(styles)
    task = paint_photo.options(num_cpus=1, num_gpus=gpus)
    yield from completed([task.remote(absolute(photo), absolute(target), shared, options) for photo, target in runs])
    remove_leftovers([t for _, t in runs])


# --- stylize a video: a task per shot ------------------------------------------------------


@ray.remote(max_retries=3)
def paint_shot(clip: Clip, mask_source: str | None, styles: list[Image.Image], options: Options,
               settings: ClipSettings, store: FrameStore) -> int:
    """One shot's frames, in order, into the run's work folder (as a local run stores them);
    frames an earlier attempt stored are kept. Returns the number of frames it painted."""
    frames = frames_at_size(clip, options, mask_source)
    return sum(result is not None for _, result, _ in paint_clip(engine_for(options), frames, styles, options, settings, store))


def stylize_shots(clip: Clip, shots: Sequence[tuple[int, int]], mask_source: str | None, styles: list[Image.Image],
                  options: Options, settings: ClipSettings, store: FrameStore) -> Iterator[int]:
    """Each shot (first frame, frame after the last) a task: a shot's frames depend on each
    other, shots do not (a cut restarts the chain). Yields each shot's frame count as it ends."""
    _, gpus = slots(options.device)
    shared = ray.put(styles)
    task = paint_shot.options(num_cpus=1, num_gpus=gpus)
    pictures = None if clip.pictures is None else [Path(absolute(p)) for p in clip.pictures]
    whole = replace(clip, source=Path(absolute(clip.source)), pictures=pictures)
    yield from completed([task.remote(replace(whole, span=shot), mask_source, shared, options, settings, store)
                          for shot in shots])


# --- compare -------------------------------------------------------------------------------


@ray.remote(max_retries=3)
def run_cells(todo: list[Cell], shared: tuple[Inputs, Engines], cell_dir: str) -> dict[int, dict]:
    """One batch run and any snapshots it could not give, saved into the cache as locally."""
    inputs, engines = shared  # the same networks, cut at the same layers, as a local batch's
    rows: dict[int, dict] = {}
    run_queue([todo], inputs, Path(cell_dir), engines, lambda group: ProgressReporter(enabled=False),
              lambda cell, row: rows.__setitem__(cell.index, row))
    return rows


@dataclass
class RayRunner:
    """The batch runner (brushwork.batch.runner) on the cluster: the runs not cached yet, one
    task each, writing the same cache as a local run."""

    quiet: bool = False

    @classmethod
    def connect(cls, address: str, quiet: bool) -> "RayRunner":
        connect(address, quiet)
        return cls(quiet)

    def run(
        self, cells: list[Cell], rows: dict[int, dict], inputs: Inputs, cell_dir: Path, engines: Engines,
        label: Callable[[Cell], str],
    ) -> bool:
        """As LocalRunner.run: returns whether Ctrl-C stopped it (the cells finished so far are
        saved, as locally)."""
        _, gpus = slots(engines.device)
        shared = ray.put((inputs, engines))
        task = run_cells.options(num_cpus=1, num_gpus=gpus)
        refs = [task.remote(group, shared, str(cell_dir.resolve())) for group in pending_groups(cells, rows)]
        overall = GridProgress(len(cells), len(rows), enabled=not self.quiet)
        try:
            for finished in completed(refs):
                for index, row in sorted(finished.items()):
                    rows[index] = row
                    overall.cell_done(label(cells[index]), row["seconds"])
        except KeyboardInterrupt:
            return True
        finally:
            overall.close()
        remove_leftovers([cell_dir / f"{c.key}.{kind}" for c in cells for kind in ("png", "json")])
        return False
