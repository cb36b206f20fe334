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
from ..options import Setting
from ..presets import PRESETS

CONTENT, STYLES = "content", "styles"  # the form's file fields; every other field is a setting
JSON_TYPES = {"choice": "string", "int": "integer", "float": "number", "text": "string"}


def web_settings() -> tuple[Setting, ...]:
    """The rows the page offers. Read from the table at each call, not kept from import time,
    so that the table stays the only place they are written down."""
    return tuple(s for s in options.SETTINGS if s.web)


def form_default(setting: Setting) -> Any:
    """What a field holds when the form leaves it out: the page's lighter start where the row
    has one (a run sized for a CPU), else the engine's default."""
    return setting.default if setting.web_default is None else setting.web_default


def kind(setting: Setting) -> str:
    """How the page should ask for a value: a menu of choices, or a number or text input."""
    if setting.choices:
        return "choice"
    return {int: "int", float: "float"}.get(type(setting.default), "text")


def choice_help(setting: Setting) -> dict[str, str]:
    """What each choice means, where the project says: the presets describe themselves."""
    return {name: preset.description for name, preset in PRESETS.items()} if setting.field == "preset" else {}


def describe(setting: Setting) -> dict[str, Any]:
    """One field as /api/config shows it, for the page to build its input from."""
    return {"field": setting.field, "flag": setting.flag, "help": setting.help, "kind": kind(setting),
            "choices": list(setting.choices), "choice_help": choice_help(setting), "bounds": setting.bounds,
            "default": form_default(setting)}


def request_schema() -> dict[str, Any]:
    """The multipart body of POST /api/jobs for the OpenAPI document (the route reads the form
    itself, so FastAPI cannot derive this from its parameters)."""
    fields: dict[str, Any] = {
        CONTENT: {"type": "string", "contentMediaType": "application/octet-stream",
                  "description": "the photo to repaint"},
        STYLES: {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                 "description": "one or more style images"},
    }
    for setting in web_settings():
        field = {"type": JSON_TYPES[kind(setting)], "description": setting.help, "default": form_default(setting)}
        if setting.choices:
            field["enum"] = list(setting.choices)
        if setting.bounds:
            field["minimum"], field["maximum"] = setting.bounds
        fields[setting.field] = field
    schema = {"type": "object", "properties": fields, "required": [CONTENT, STYLES]}
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
    if setting.bounds and not setting.bounds[0] <= value <= setting.bounds[1]:
        low, high = setting.bounds
        raise HTTPException(422, f"{setting.field}: must be from {low:g} to {high:g}, got {value}")
    return value


def parse_settings(form: FormData) -> dict[str, Any]:
    """Every web setting's value (the default where the form has none). A field the form does
    not know is refused rather than ignored: it is a typo or a client that expects more."""
    settings = {setting.field: setting for setting in web_settings()}
    unknown = sorted(set(form.keys()) - {CONTENT, STYLES} - settings.keys())
    if unknown:
        raise HTTPException(422, f"{unknown[0]}: not a field of this form; fields: "
                                 f"{', '.join([CONTENT, STYLES, *settings])}")
    return {field: parse_value(setting, form.getlist(field)) for field, setting in settings.items()}


def files(form: FormData, field: str) -> list[UploadFile]:
    """The files of one file field, of which there must be at least one."""
    values = form.getlist(field)
    if not values:
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


async def job_form(request: Request) -> AsyncIterator[JobForm]:
    """The request's form as a dependency: read and checked before the route runs, and its
    temporary files closed after."""
    async with request.form() as form:
        content = files(form, CONTENT)
        if len(content) > 1:
            raise HTTPException(422, f"{CONTENT}: expected one file, got {len(content)}")
        yield JobForm(content[0], files(form, STYLES), parse_settings(form))
