"""Open311 GeoReport v2 (JSON) over the categories and feedback, so existing 311 apps can post."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from feedback_intake import service
from feedback_intake.api import intake_of, rate_limit
from feedback_intake.service import NewFeedback
from yardstick.auth import authenticator
from yardstick.db import as_utc
from yardstick.errors import ApiError
from yardstick.text import check_storable

router = APIRouter(prefix="/open311/v2", tags=["open311"])


@router.get("/services.json")
async def services(request: Request) -> list[dict[str, Any]]:
    return [{"service_code": c.id, "service_name": c.name, "description": c.name_zh, "metadata": False,
             "type": "realtime", "keywords": ",".join(c.keywords), "group": c.unit}
            for c in intake_of(request).city.categories]


def _field(form: dict[str, list[str]], name: str) -> str | None:
    """The field's first value, stripped, or None when empty; 422 for a value that cannot be stored
    (%00 decodes to NUL; the form's strict UTF-8 decoding already refuses surrogates)."""
    values = form.get(name)
    value = values[0].strip() if values and values[0].strip() else None
    if value is not None:
        try:
            check_storable(value)
        except ValueError as exc:
            message = f"{name} {exc}"
            raise ApiError(422, message, details=[{"loc": ["body", name], "message": message}]) from None
    return value


@router.post("/requests.json", status_code=201, openapi_extra={"requestBody": {"content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["api_key", "service_code"],
                                                     "properties": {"api_key": {"type": "string"},
                                                                    "service_code": {"type": "string"},
                                                                    "description": {"type": "string"},
                                                                    "email": {"type": "string"},
                                                                    "phone": {"type": "string"}}}}}}})
async def create_request(request: Request) -> JSONResponse:
    """Form-encoded; `api_key` is a citizen token. Names sent by the app are not kept."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise ApiError(415, "Open311 requests are form-encoded (application/x-www-form-urlencoded)")
    try:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "the form is not UTF-8") from None
    api_key = _field(form, "api_key")
    if api_key is None:
        raise ApiError(401, "api_key (a citizen token) is required")
    principal = authenticator(request).verify(api_key)
    if principal.role != "citizen":
        raise ApiError(403, "api_key must be a citizen token")
    rate_limit(request, principal)
    intake = intake_of(request)
    code = _field(form, "service_code")
    if code is None or code not in intake.city.category_ids:
        raise ApiError(422, f"unknown service_code {code!r}; see services.json")
    description = _field(form, "description")
    if description is None:
        raise ApiError(422, "description is required")
    if len(description) > 4000:
        raise ApiError(422, "description is over 4000 characters")
    contact = {k: v[:254] for k in ("phone", "email") if (v := _field(form, k))}
    outcome, _ = await service.create_feedback(intake, NewFeedback(
        channel="open311", text=description, category_id=code, contact=contact))
    return JSONResponse([{"service_request_id": outcome["tracking_code"], "service_notice": "",
                          "account_id": None}], status_code=201)


@router.get("/requests/{request_id}.json")
async def get_request(request_id: str, request: Request) -> list[dict[str, Any]]:
    """By the tracking code (the request id we hand out): as unguessable as the citizen's own link."""
    rate_limit(request, None)
    intake = intake_of(request)
    row = await service.by_tracking_code(intake, request_id)
    category = intake.city.categories_by_id.get(row.category_id)
    updated = row.responded_at or row.submitted_at
    return [{"service_request_id": row.tracking_code, "status": "closed" if row.responded_at else "open",
             "status_notes": row.response_text, "service_name": category.name if category else None,
             "service_code": row.category_id, "agency_responsible": row.unit_id,
             "requested_datetime": as_utc(row.submitted_at).isoformat(),
             "updated_datetime": as_utc(updated).isoformat(),
             "expected_datetime": row.due.isoformat() if row.due else None}]
