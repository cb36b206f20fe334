"""The job folders under the data dir, and what a full disk does to them.

Every file is written atomically (a temp file, then a rename), so after a crash a folder
holds only complete files. A write that finds no room raises DiskFull, which says so in
words a user can act on; the temp file is gone by then, and the caller removes whatever else
of the attempt is left, so a full disk leaves no partial picture behind. A deleted job's
folder is first renamed out of the way, so a crash in the middle of a delete leaves no
half-deleted job that looks like a real one.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from PIL import Image

from .. import images
from ..errors import BrushworkError
from .records import JOB_ID, RECORD_FILE, Job

log = logging.getLogger("brushwork.web")

FULL = (errno.ENOSPC, errno.EDQUOT)
TRASH = ".deleted-"  # prefix of a folder being deleted


def out_of_space(error: BaseException) -> OSError | None:
    """The no-room error behind `error`, if that is what it is: brushwork.images may report a
    full disk in its own words, with the OSError as its context."""
    for e in (error, error.__context__):
        if isinstance(e, OSError) and e.errno in FULL:
            return e
    return None


class DiskFull(BrushworkError):
    """The data folder has no room left (HTTP 507 where a request caused it)."""


class Store:
    """Job folders by id under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turns running out of space into DiskFull (saying which folder, and what to do),
        leaving other errors alone."""
        try:
            yield
        except (OSError, BrushworkError) as e:
            cause = out_of_space(e)
            if cause is None:
                raise
            raise DiskFull(f"the data folder {self.root.parent} is full ({os.strerror(cause.errno)}): nothing "
                           "of this was kept; free some space or delete old jobs, then try again") from None

    def save_image(self, image: Image.Image, path: Path) -> None:
        with self.writing():
            images.save_image(image, path)

    def save_record(self, job: Job) -> None:
        with self.writing():
            images.write_atomic(self.folder(job.id) / RECORD_FILE, job.to_json())

    def create(self, job: Job, pictures: dict[str, Image.Image], raw: dict[str, bytes] | None = None) -> None:
        """A new job's folder: its input pictures (by the names the server gave them) and files
        kept as sent (a video), then its record (a folder without a record is not a job).
        Nothing of it stays if any write fails."""
        folder = self.folder(job.id)
        folder.mkdir()
        try:
            for name, picture in pictures.items():
                self.save_image(picture, folder / name)
            for name, data in (raw or {}).items():
                with self.writing():
                    images.write_atomic(folder / name, data)
            self.save_record(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def copy_inputs(self, source: Job, job: Job) -> None:
        """A re-run's folder: the inputs of `source` (as stored, masks included) and the new record."""
        folder = self.folder(job.id)
        folder.mkdir()
        try:
            with self.writing():
                for name in source.input_files():
                    images.write_atomic(folder / name, (self.folder(source.id) / name).read_bytes())
            self.save_record(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def remove(self, job: Job, names: list[str]) -> None:
        """Files of a failed attempt, so that none of its outputs outlives it."""
        for name in names:
            (self.folder(job.id) / name).unlink(missing_ok=True)

    def delete(self, job: Job) -> None:
        """Out of the table's sight at once (a rename), then off the disk."""
        trash = self.root / f"{TRASH}{job.id}"
        self.folder(job.id).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def records(self) -> Iterator[Job]:
        """Every job on disk; leftovers of deletes that a crash cut short are finished off."""
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(TRASH):
                shutil.rmtree(folder, ignore_errors=True)
                continue
            record = folder / RECORD_FILE
            if not (JOB_ID.fullmatch(folder.name) and record.is_file()):
                continue
            try:
                job = Job.from_json(record.read_bytes())
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("skipping %s: unreadable job record (%s)", folder, e)
                continue
            if job.id == folder.name:
                yield job
