"""A job's pictures: the live preview, the result and the inputs as the server stored them.
Every file is named by the server and found in the folder of a job looked up by its id."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from ..dependencies import JobDep, QueueDep
from ..jobs import JobQueue
from ..records import CONTENT_FILE, MASK_FILE, RESULT_FILES, VIDEO_RESULT, Job, style_file, style_mask_file, style_region_file

router = APIRouter(prefix="/api/jobs/{job_id}", tags=["images"])


def job_file(queue: JobQueue, job: Job, name: str, media_type: str, download: str | None = None) -> FileResponse:
    """A file the server named, in the folder of a job found by its id."""
    path = queue.folder(job) / name
    if not path.is_file():
        raise HTTPException(404, "not found")
    disposition = {"Content-Disposition": f'attachment; filename="{download}"'} if download else {}
    return FileResponse(path, media_type=media_type, headers=disposition)


@router.get("/preview", responses={200: {"content": {"image/jpeg": {}}}})
async def job_preview(job: JobDep) -> Response:
    """The latest picture of a run (JPEG, at most 512 px), while it runs and after it finished.
    (A coroutine: it is fetched twice a second by every watching page and only reads memory.)"""
    if job.preview is None:
        raise HTTPException(404, "no preview yet")
    return Response(job.preview, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/result.mp4", response_class=FileResponse)
def job_video(job: JobDep, queue: QueueDep) -> FileResponse:
    """A video job's painted video, H.264 in MP4 (409 while the job is not done)."""
    if job.status != "done" or job.video is None:
        raise HTTPException(409 if job.video else 404, f"job {job.id} has no video: it is {job.status}"
                            if job.video else f"job {job.id} is not a video job")
    return job_file(queue, job, VIDEO_RESULT, "video/mp4")


@router.get("/result.{fmt}", response_class=FileResponse)
def job_result(job: JobDep, queue: QueueDep, fmt: Literal["png", "jpg"]) -> FileResponse:
    """The finished picture, as a download (409 while the job is not done)."""
    if job.status != "done":
        raise HTTPException(409, f"job {job.id} has no result: it is {job.status}")
    return job_file(queue, job, RESULT_FILES[fmt], "image/png" if fmt == "png" else "image/jpeg",
                    download=f"brushwork-{job.id[:8]}.{fmt}")


@router.get("/content.png", response_class=FileResponse)
def job_content(job: JobDep, queue: QueueDep) -> FileResponse:
    """The content image as the server stored it."""
    return job_file(queue, job, CONTENT_FILE, "image/png")


@router.get("/style/{index}.png", response_class=FileResponse)
def job_style(job: JobDep, queue: QueueDep, index: int) -> FileResponse:
    """Style image number `index` (from 0) as the server stored it."""
    if not 0 <= index < len(job.style_names):
        raise HTTPException(404, f"job {job.id} has {len(job.style_names)} style image(s)")
    return job_file(queue, job, style_file(index), "image/png")


@router.get("/mask.png", response_class=FileResponse)
def job_mask(job: JobDep, queue: QueueDep) -> FileResponse:
    """The job's mask as the server stored it (grayscale; 404 for a job without one)."""
    if not job.mask:
        raise HTTPException(404, f"job {job.id} has no mask")
    return job_file(queue, job, MASK_FILE, "image/png")


@router.get("/style/{index}/mask.png", response_class=FileResponse)
def job_style_mask(job: JobDep, queue: QueueDep, index: int) -> FileResponse:
    """The region mask of style image number `index` (from 0), as stored (404 without one)."""
    if not (job.style_masks and 0 <= index < len(job.style_names)):
        raise HTTPException(404, f"job {job.id} has no region mask for style {index}")
    return job_file(queue, job, style_mask_file(index), "image/png")


@router.get("/style/{index}/region.png", response_class=FileResponse)
def job_style_region(job: JobDep, queue: QueueDep, index: int) -> FileResponse:
    """Which part of style image number `index` (from 0) counted, as stored (404 without one)."""
    if not (job.style_regions and 0 <= index < len(job.style_names)):
        raise HTTPException(404, f"job {job.id} has no style region for style {index}")
    return job_file(queue, job, style_region_file(index), "image/png")
