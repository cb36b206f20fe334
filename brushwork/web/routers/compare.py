"""Compare grids: queue one (a job's form plus one or two settings to vary), and fetch its
cells and reports as they appear. The grid runs as one job in the same line as the others,
so it is followed, cancelled, retried and deleted through /api/jobs like any job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from ..dependencies import JobDep, LimitsDep, QueueDep
from ..form import JobForm, compare_form, request_schema
from .images import job_file
from .jobs import pictures

REPORT_TYPES = {".png": "image/png", ".html": "text/html", ".csv": "text/csv", ".json": "application/json"}

router = APIRouter(tags=["compare"])


@router.post("/api/compare", status_code=201, openapi_extra=request_schema(vary=True))
def create_grid(form: Annotated[JobForm, Depends(compare_form)], queue: QueueDep,
                limits: LimitsDep) -> dict[str, Any]:
    """Queue a compare grid: a job's form plus `vary` once or twice (`field=v1,v2,...`, a
    setting of /api/config and its values, at most 16 cells). Its state's `grid` lays out the
    cells; `cell` events and the state's `cells` bring each one's time and scores."""
    job = queue.submit(pictures(form, limits), form.settings, kind="compare", vary=form.vary)
    return queue.state(job)


@router.get("/api/jobs/{job_id}/cells/{index}.png", response_class=FileResponse)
def grid_cell(job: JobDep, queue: QueueDep, index: int) -> FileResponse:
    """A finished cell's picture (404 until it is done)."""
    key = next((cell["key"] for cell in job.cells if cell["index"] == index), None)
    if key is None:
        raise HTTPException(404, f"cell {index} of job {job.id} is not done")
    return job_file(queue, job, f"cells/{key}.png", "image/png")


@router.get("/api/jobs/{job_id}/reports/{name}", response_class=FileResponse)
def grid_report(job: JobDep, queue: QueueDep, name: str) -> FileResponse:
    """A finished grid's contact sheet, index.html, results.csv or results.json, as a download
    (the names are in the state's `reports`)."""
    if name not in job.reports:
        raise HTTPException(404, f"job {job.id} has no report {name!r}; reports: {', '.join(job.reports) or 'none yet'}")
    suffix = name[name.rindex("."):]
    return job_file(queue, job, name, REPORT_TYPES[suffix], download=f"brushwork-{job.id[:8]}-{name}")
