"""Flows that carry contact data, with every log record written by the real JSON formatter: the
phone numbers, e-mail addresses and names never appear in what is logged."""

from __future__ import annotations

import io
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Column, MetaData, String, Table, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yardstick import db
from yardstick.bus import DeadLetter
from yardstick.observability import JsonFormatter, configure_logging

PHONE, EMAIL = "13912345678", "li.wei.private@example.cn"
STAFF_PHONE, STAFF_EMAIL = "+86 571 8765 4321", "hotline.caller@example.org"
OPEN311_PHONE, OPEN311_EMAIL, OPEN311_NAME = "13700001111", "open311.user@example.net", "Zhangsanfeng"
SUBSCRIBER = "coordinator.inbox@health.example"
PERSONAL = (PHONE, EMAIL, STAFF_PHONE, STAFF_EMAIL, OPEN311_PHONE, OPEN311_EMAIL, OPEN311_NAME, SUBSCRIBER,
            "li.wei.private", "coordinator.inbox")
UNIT = "health-commission"


@pytest.fixture(params=["INFO", "DEBUG"])
def json_logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The logging `yardstick serve` sets up, at the default level and the most verbose, written to a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(request.param)
    buffer = io.StringIO()
    for handler in root.handlers:
        assert isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, JsonFormatter)
        handler.setStream(buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_contact_data_never_reaches_the_logs(json_logs: io.StringIO, system: Any, token: Any,
                                                   eventually: Any, spike_notice: str) -> None:
    staff = {"Authorization": f"Bearer {token('staff', subject='hotline-3')}"}
    coordinator = {"Authorization": f"Bearer {token('coordinator', unit_id=UNIT, subject='coord')}"}
    client_id = str(uuid.uuid4())
    r = await system.intake.post("/v1/feedback", json={
        "channel": "web", "unit_id": UNIT, "level": 1, "text": f"call me back on {PHONE}", "client_id": client_id,
        "contact": {"phone": PHONE, "email": EMAIL}})
    assert r.status_code == 201, r.text
    feedback = r.json()["id"]
    # A retry with another body (409) and a contact that does not validate (422) are logged paths too.
    r = await system.intake.post("/v1/feedback", json={
        "channel": "web", "unit_id": UNIT, "level": 2, "client_id": client_id,
        "contact": {"phone": PHONE, "email": EMAIL}})
    assert r.status_code == 409, r.text
    r = await system.intake.post("/v1/feedback", json={"channel": "web", "level": 2,
                                                       "contact": {"email": f"{EMAIL} {PHONE} not-an-address"}})
    assert r.status_code == 422
    assert EMAIL not in r.text and PHONE not in r.text
    r = await system.intake.post("/v1/feedback", headers=staff, json={
        "channel": "hotline", "unit_id": UNIT, "level": 2, "text": "heard at the hotline",
        "contact": {"phone": STAFF_PHONE, "email": STAFF_EMAIL}})
    assert r.status_code == 201, r.text
    r = await system.intake.post("/open311/v2/requests.json", data={
        "api_key": token("citizen", subject="app-1"), "service_code": "seeing-a-doctor", "description": "queue",
        "email": OPEN311_EMAIL, "phone": OPEN311_PHONE, "first_name": OPEN311_NAME, "last_name": OPEN311_NAME})
    assert r.status_code < 300, r.text
    # The coordinator reads the contact (audited): the answer has it, the logs must not.
    r = await system.intake.get(f"/v1/units/{UNIT}/feedback/{feedback}/contact", headers=coordinator)
    assert r.status_code == 200 and r.json()["phone"] == PHONE and r.json()["email"] == EMAIL
    # A subscriber's address, and a delivery to it that fails (no SMTP server listens here).
    r = await system.notices.post("/v1/subscriptions", headers=coordinator, json={"unit_id": UNIT,
                                                                                 "email": SUBSCRIBER})
    assert r.status_code == 201, r.text
    assert (await system.notices.post(f"/v1/notices/{spike_notice}/acknowledge", headers=coordinator)
            ).status_code == 200
    await eventually(lambda: "notification delivery failed" in json_logs.getvalue())
    written = json_logs.getvalue().splitlines()

    records = [json.loads(line) for line in written if line.startswith("{")]
    assert records, "nothing was logged: the check below could not fail"
    assert any(r.get("logger", "").startswith("notices") for r in records)
    leaks = [line for line in written for value in PERSONAL if value in line]
    assert not leaks, f"personal data in the logs at {logging.getLogger().level}:\n" + "\n".join(leaks[:10])


async def test_a_database_errors_row_values_never_reach_the_logs(json_logs: io.StringIO,
                                                                 scratch_engine: Any) -> None:
    """PostgreSQL names a row's values in an error's DETAIL ("Failing row contains (...)", "Key (...)=(...)"),
    and the driver's error carries it (the cause of SQLAlchemy's, or a message that quotes it): a 500's
    traceback, an exception group's, an error logged as a field, as its str or its repr, must not write a
    complaint's text or a contact to the logs."""
    metadata = MetaData()
    complaints = Table("complaints", metadata, Column("id", String(64), primary_key=True),
                       Column("text", Text, nullable=False), Column("unit_id", String(100), nullable=False))
    log = logging.getLogger("yardstick.test")
    async with scratch_engine("postgresql", metadata, "pii_logs") as engine:
        async with engine.begin() as conn:
            await conn.execute(complaints.insert().values(id=PHONE, text=f"call {EMAIL}", unit_id=UNIT))
        failures: list[Exception] = []
        # "Key (id)=(13912345678) already exists"; "Failing row contains (c-2, call me\n...)": a value over
        # lines, whose own lines read as the driver's HINT and SQLAlchemy's statement would.
        for values in ({"id": PHONE, "text": "again", "unit_id": UNIT},
                       {"id": "c-2", "text": f"call me\nHINT: on {STAFF_PHONE}\n[SQL: please]", "unit_id": None}):
            with pytest.raises(IntegrityError) as caught:
                async with engine.begin() as conn:
                    await conn.execute(complaints.insert().values(**values))
            failures.append(caught.value)
        async with AsyncSession(engine) as session, session.begin():
            with pytest.raises(asyncpg.UniqueViolationError) as raw:  # the driver's own (db.driver's path)
                await (await db.driver(session)).execute("INSERT INTO complaints VALUES ($1, 'x', 'u')", PHONE)
            failures.append(raw.value)
    # A message that quotes the driver's (as a consumer's dead letter does): its repr escapes the DETAIL.
    failures.append(DeadLetter(f"feedback.received e-1: {failures[2]}"))
    # What would be written otherwise: the driver's error, SQLAlchemy's cause or the raw one, names the values.
    tracebacks = ["".join(traceback.format_exception(exc)) for exc in failures]
    assert all("DETAIL:" in t and (PHONE in t or STAFF_PHONE in t) for t in tracebacks)
    assert "\\nDETAIL:  Key (id)=(13912345678)" in repr(failures[3])
    for exc in failures:
        log.error("request failed", exc_info=exc, extra={"error": str(exc)})
        log.error("relay failed: %s", exc)
        log.warning("batch failed; applying its events in halves", extra={"error": repr(exc)[:500], "reason": exc})
        log.warning("retrying: %r", exc)
    try:
        raise ExceptionGroup("a request's errors", failures)
    except ExceptionGroup as group:
        log.error("request failed", exc_info=group)
    written = json_logs.getvalue()
    assert PHONE not in written and STAFF_PHONE not in written and EMAIL not in written
    assert "please" not in written  # the value's last line too
    assert written.count("violates not-null constraint") >= 3 and written.count('complaints_pkey') >= 6
    # Each DETAIL written was withheld: the tracebacks' 3 + 4 (the group's), the raw error's 3 (str, message,
    # field) and the quoting one's 6 (its repr and %r too).
    assert written.count("(withheld from the logs: it may name a row's values)") == 16
