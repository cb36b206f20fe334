"""The job form, made from the one settings table (`brushwork.options.SETTINGS`).

The rows marked `web` are the form's fields: /api/config describes them to the page (which
builds its inputs from that), the OpenAPI schema documents them, and POST /api/jobs parses
each with its row's parser and checks its row's bounds. There is no copy of the table here,
so a row marked `web` is a new field everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile

from .. import options
from ..errors import BrushworkError
from ..losses import STYLE_LOSSES
from ..options import Setting
from ..presets import PRESETS

CONTENT, STYLES = "content", "styles"  # the form's pictures
MASK, STYLE_MASKS = "mask", "style_masks"  # optional: where the style goes, and each style's region
STYLE_REGIONS = "style_regions"  # optional, a row of the table: which part of each style image counts
PICTURES = (CONTENT, STYLES, MASK, STYLE_MASKS, STYLE_REGIONS)  # the form's file fields; the rest are settings
VARY = "vary"  # a compare grid's axes: "field=v1,v2", once or twice
MAX_FIELDS = 64  # text fields in one form: every setting, twice over, and room for a mistake
JSON_TYPES = {"choice": "string", "int": "integer", "float": "number", "text": "string"}
PICTURES_SCHEMA = {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}


def web_settings() -> tuple[Setting, ...]:
    """The rows the page offers. Read from the table at each call, not kept from import time,
    so that the table stays the only place they are written down."""
    return tuple(s for s in options.SETTINGS if s.web)


def text_settings() -> tuple[Setting, ...]:
    """The web rows that are text fields: the others (masks) come as pictures."""
    return tuple(s for s in web_settings() if s.field not in PICTURES)


def form_default(setting: Setting) -> Any:
    """What a field holds when the form leaves it out: the page's lighter start where the row
    has one (a run sized for a CPU), else the engine's default."""
    return setting.default if setting.web_default is None else setting.web_default


def kind(setting: Setting) -> str:
    """How the page should ask for a value: pictures, a menu of choices, or a number or text input."""
    if setting.field in PICTURES:
        return "files"
    if setting.choices:
        return "choice"
    return {int: "int", float: "float"}.get(type(setting.default), "text")


def choice_help(setting: Setting) -> dict[str, str]:
    """What each choice means, where the project says: the presets and style losses describe themselves."""
    if setting.field == "style_loss":
        return {name: kind.summary for name, kind in STYLE_LOSSES.items()}
    return {name: preset.description for name, preset in PRESETS.items()} if setting.field == "preset" else {}


def describe(setting: Setting) -> dict[str, Any]:
    """One field as /api/config shows it, for the page to build its input from."""
    return {"field": setting.field, "flag": setting.flag, "help": setting.help, "kind": kind(setting),
            "choices": list(setting.choices), "choice_help": choice_help(setting), "bounds": setting.bounds,
            "default": form_default(setting)}


def request_schema(vary: bool = False) -> dict[str, Any]:
    """The multipart body of POST /api/jobs (and, with `vary`, of POST /api/compare) for the
    OpenAPI document (the routes read the form themselves, so FastAPI cannot derive this)."""
    fields: dict[str, Any] = {
        CONTENT: {"type": "string", "contentMediaType": "application/octet-stream",
                  "description": "the photo to repaint"},
        STYLES: {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                 "description": "one or more style images"},
        MASK: {"type": "string", "contentMediaType": "application/octet-stream",
               "description": "optional grayscale picture: white where the style paints, black where the photo "
                              "stays, gray between"},
        STYLE_MASKS: {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                      "description": "optional, one per style in the same order: the region each style paints"},
    }
    if vary:
        fields[VARY] = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2,
                        "description": "a setting of this form and its values, e.g. style_weight=1,5,20"}
    for setting in web_settings():
        if kind(setting) == "files":
            fields[setting.field] = {**PICTURES_SCHEMA, "description": f"optional, one per style: {setting.help}"}
            continue
        field = {"type": JSON_TYPES[kind(setting)], "description": setting.help, "default": form_default(setting)}
        if setting.choices:
            field["enum"] = list(setting.choices)
        if setting.bounds:
            field["minimum"], field["maximum"] = setting.bounds
        fields[setting.field] = field
    schema = {"type": "object", "properties": fields, "required": [CONTENT, STYLES] + ([VARY] if vary else [])}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def parse_value(setting: Setting, values: list[str | UploadFile]) -> Any:
    """One field's value: its row's parser on the text, then the row's bounds; the client
    hears which field was wrong, since a form has several."""
    if not values:
        return form_default(setting)
    if len(values) > 1 or not isinstance(values[0], str):
        raise HTTPException(422, f"{setting.field}: expected one text value")
    try:
        value = setting.parse(values[0])
    except BrushworkError as e:
        raise HTTPException(422, f"{setting.field}: {e}") from None
    if setting.bounds and isinstance(value, (int, float)) and not setting.bounds[0] <= value <= setting.bounds[1]:
        low, high = setting.bounds
        raise HTTPException(422, f"{setting.field}: must be from {low:g} to {high:g}, got {value}")
    return value


def parse_settings(form: FormData, base: dict[str, Any] | None = None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every web setting's value: the form's, else `base`'s (a re-run's old settings), else
    the default. A field the form does not know is refused rather than ignored: it is a typo
    or a client that expects more. `extra` names the other text fields a route reads itself."""
    settings = {setting.field: setting for setting in text_settings()}
    unknown = sorted(set(form.keys()) - {*PICTURES, *extra} - settings.keys())
    if unknown:
        raise HTTPException(422, f"{unknown[0]}: not a field of this form; fields: "
                                 f"{', '.join([CONTENT, STYLES, *extra, *settings, MASK, STYLE_MASKS, STYLE_REGIONS])}")
    base = base or {}
    return {field: parse_value(setting, form.getlist(field)) if field in form or field not in base else base[field]
            for field, setting in settings.items()}


def texts(form: FormData, field: str) -> list[str]:
    """The text values of a repeatable field (a grid's `vary`)."""
    values = form.getlist(field)
    if not all(isinstance(value, str) for value in values):
        raise HTTPException(422, f"{field}: expected text, got a file")
    return [str(value) for value in values]


def files(form: FormData, field: str, required: bool = True) -> list[UploadFile]:
    """The files of one file field, of which there must be at least one if it is `required`."""
    values = form.getlist(field)
    if not values and required:
        raise HTTPException(422, f"{field}: Field required")
    uploads = [value for value in values if isinstance(value, UploadFile)]
    if len(uploads) < len(values):
        raise HTTPException(422, f"{field}: expected a file, got text")
    return uploads


@dataclass
class JobForm:
    """A job request's form, its text fields already parsed and checked."""

    content: UploadFile
    styles: list[UploadFile]
    settings: dict[str, Any]
    vary: list[str]
    mask: UploadFile | None
    style_masks: list[UploadFile]
    style_regions: list[UploadFile]


def one_file(form: FormData, field: str, required: bool) -> UploadFile | None:
    """The file of a field that takes one."""
    uploads = files(form, field, required)
    if len(uploads) > 1:
        raise HTTPException(422, f"{field}: expected one file, got {len(uploads)}")
    return uploads[0] if uploads else None


async def read_job_form(request: Request, extra: tuple[str, ...]) -> AsyncIterator[JobForm]:
    """The request's form, read and checked before the route runs, its temporary files closed after."""
    limits = request.app.state.limits  # one file over the cap still parses, for the route's clearer message
    async with request.form(max_files=limits.max_images + 1, max_fields=MAX_FIELDS) as form:
        content = one_file(form, CONTENT, required=True)
        vary = texts(form, VARY) if VARY in extra else []
        yield JobForm(content, files(form, STYLES), parse_settings(form, extra=extra), vary,
                      one_file(form, MASK, required=False), files(form, STYLE_MASKS, required=False),
                      files(form, STYLE_REGIONS, required=False))


async def job_form(request: Request) -> AsyncIterator[JobForm]:
    """A stylization's form, as a dependency."""
    async for form in read_job_form(request, ()):
        yield form


async def compare_form(request: Request) -> AsyncIterator[JobForm]:
    """A compare grid's form: a job's, with the axes to vary."""
    async for form in read_job_form(request, (VARY,)):
        yield form


async def settings_form(request: Request) -> AsyncIterator[FormData]:
    """A re-run's form: settings only, no files; the route merges them over the old job's."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        yield form
