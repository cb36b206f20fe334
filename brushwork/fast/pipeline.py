"""Decoding, the network and encoding at the same time: a reader thread, the caller's thread
(the network, which may hand up to --workers calls at once to threads of its own) and a
writer thread, joined by short queues.

Threads suffice: the network (onnxruntime, or PyTorch's kernels) and FFmpeg's codecs run
outside the interpreter lock, so encoding the previous image goes on while the network works
on the next. On the project's 2-core CPU writing a 1024² PNG takes about 0.15 s, a quarter
of the network's time on one core, which overlapping hides; on a GPU, decoding and encoding
are what limit `apply`.

Order is kept: one reader, one writer, and the stages in between hand results on in order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from .. import images
from .backend import Stylizer

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")
P = TypeVar("P")

END = object()  # the last item of a queue
POLL = 0.1  # seconds between looks at the stop flag while a queue is full or empty


class Failure:
    """An exception raised in the reader, carried to the caller's thread to be raised there."""

    def __init__(self, error: BaseException):
        self.error = error


def overlapped(source: Iterable[T], work: Callable[[Iterator[T]], Iterator[U]], sink: Callable[[U], None], overlap: bool = True, depth: int = 4) -> None:
    """`sink(u)` for every u of `work(iter(source))`; `source` is iterated in a reader thread and
    `sink` runs in a writer thread, with at most `depth` items waiting between stages. Without
    `overlap` it all runs in the caller's thread, the same steps in the same order.

    An error in any stage stops the others and is raised here; both threads have ended before
    this returns or raises, so the caller may close what they were using."""
    if not overlap:
        for item in work(iter(source)):
            sink(item)
        return
    stop = threading.Event()
    inbox: queue.Queue = queue.Queue(depth)
    outbox: queue.Queue = queue.Queue(depth)
    failures: list[BaseException] = []
    reader = threading.Thread(target=read, args=(source, inbox, stop), name="brushwork-reader", daemon=True)
    writer = threading.Thread(target=write, args=(outbox, sink, stop, failures), name="brushwork-writer", daemon=True)
    reader.start()
    writer.start()
    try:
        for item in work(received(inbox, stop)):
            if not put(outbox, item, stop):
                break  # the writer failed
        else:
            put(outbox, END, stop)
            writer.join()
    finally:
        stop.set()
        reader.join()
        writer.join()
    if failures:
        raise failures[0]


def put(box: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Wait for room unless the pipeline is stopping; False if it is."""
    while not stop.is_set():
        try:
            box.put(item, timeout=POLL)
            return True
        except queue.Full:
            continue
    return False


def read(source: Iterable[T], inbox: queue.Queue, stop: threading.Event) -> None:
    """The reader thread. The iterator is closed here, so a generator's cleanup runs in the
    thread that was using it."""
    iterator = iter(source)
    try:
        for item in iterator:
            if not put(inbox, item, stop):
                return
        put(inbox, END, stop)
    except BaseException as error:  # carried to the caller's thread
        put(inbox, Failure(error), stop)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def drained(box: queue.Queue, stop: threading.Event) -> Iterator:
    """A queue's items up to END, or until the pipeline is stopped while the queue is empty."""
    while True:
        try:
            item = box.get(timeout=POLL)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is END:
            return
        yield item


def received(inbox: queue.Queue, stop: threading.Event) -> Iterator:
    """The reader's items in the caller's thread, its error raised as it comes."""
    for item in drained(inbox, stop):
        if isinstance(item, Failure):
            raise item.error
        yield item


def write(outbox: queue.Queue, sink: Callable[[U], None], stop: threading.Event, failures: list[BaseException]) -> None:
    """The writer thread: on an error it records it and stops the pipeline."""
    try:
        for item in drained(outbox, stop):
            sink(item)
    except BaseException as error:
        failures.append(error)
        stop.set()


# --- the network stage, and images ---------------------------------------------------------


def batches(items: Iterable[tuple[K, np.ndarray]], size: int) -> Iterator[list[tuple[K, np.ndarray]]]:
    """Consecutive (key, frame) pairs of one shape, `size` at a time at most: a batch is never
    waited for beyond the next item, and order is kept."""
    group: list[tuple[K, np.ndarray]] = []
    for item in items:
        if group and (len(group) == size or group[0][1].shape != item[1].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def network_in_flight(stylizer: Stylizer, groups: Iterable[tuple[P, Sequence[np.ndarray]]]) -> Iterator[tuple[P, torch.Tensor, torch.Tensor]]:
    """(payload, input batch, stylized batch) for each (payload, frames) group, in order, with
    up to `stylizer.workers` network calls running at once in threads of their own."""
    if stylizer.workers == 1:
        for payload, frames in groups:
            with stylizer.host_threads():
                batch = stylizer.upload(frames)
                stylized = stylizer.stylize(batch)
            yield payload, batch, stylized
        return
    with ThreadPoolExecutor(stylizer.workers, thread_name_prefix="brushwork-network") as pool:
        running: deque[tuple[P, torch.Tensor, Future]] = deque()
        for payload, frames in groups:
            with stylizer.host_threads():
                batch = stylizer.upload(frames)
            running.append((payload, batch, pool.submit(stylizer.network, batch)))
            if len(running) == stylizer.workers:
                yield finished(stylizer, *running.popleft())
        while running:
            yield finished(stylizer, *running.popleft())


def finished(stylizer: Stylizer, payload: P, batch: torch.Tensor, call: Future) -> tuple[P, torch.Tensor, torch.Tensor]:
    """Strength and colour in the caller's thread, where PyTorch's thread setting holds."""
    out = call.result()
    with stylizer.host_threads():
        return payload, batch, stylizer.finish(batch, out)


def stylize_batches(stylizer: Stylizer, items: Iterable[tuple[K, np.ndarray]]) -> Iterator[tuple[K, np.ndarray]]:
    """(key, uint8 frame) in, (key, stylized uint8 frame) out, in batches of the stylizer's size."""
    groups = (([key for key, _ in group], [frame for _, frame in group]) for group in batches(items, stylizer.batch))
    for keys, _, stylized in network_in_flight(stylizer, groups):
        with stylizer.host_threads():
            frames = stylizer.download(stylized)
        yield from zip(keys, frames)


def read_pictures(files: Sequence[tuple[Path | Image.Image, Path]]) -> Iterator[tuple[Path, np.ndarray]]:
    """Each source (a file, or a picture opened but not yet decoded, as --ray hands them)
    decoded to upright RGB, keyed by where its result goes."""
    for source, target in files:
        yield target, np.asarray(images.load_image(source))


def stylize_files(stylizer: Stylizer, files: Sequence[tuple[Path | Image.Image, Path]], say: Callable[[str], None]) -> None:
    """(source, target) image files: read, stylized and written at once. The time reported is
    the mean per image so far: with several in flight, single intervals say little."""
    started = time.perf_counter()
    written = [0]

    def save(item: tuple[Path, np.ndarray]) -> None:
        target, pixels = item
        images.save_image(Image.fromarray(pixels, "RGB"), target, overwrite=True)
        written[0] += 1
        mean = (time.perf_counter() - started) / written[0]
        say(f"wrote {target} ({pixels.shape[1]}x{pixels.shape[0]}, {mean:.2f} s per image so far)")

    work = lambda pictures: stylize_batches(stylizer, pictures)  # noqa: E731
    overlapped(read_pictures(files), work, save, stylizer.settings.overlap, depth=2 * stylizer.batch * stylizer.workers + 1)
