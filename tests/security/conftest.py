"""Fixtures of the security tests: a notice raised the way production raises one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from yardstick import events
from yardstick.bus.codec import encode
from yardstick.events import Envelope

SPIKE_UNIT = "health-commission"


@pytest.fixture
async def spike_notice(system: Any, token: Any, eventually: Any) -> str:
    """A complaint spike in health-commission as feedback events on the bus, the detector run on
    its day: the id of the notice it raised."""
    day = date.today() - timedelta(days=3)

    def complaint(on: date, i: int) -> Envelope:
        moment = datetime(on.year, on.month, on.day, 3, 0, tzinfo=UTC)
        return Envelope.of(events.FeedbackReceived(
            feedback_id=f"fb-spike-{on.isoformat()}-{i}", unit_id=SPIKE_UNIT, channel="web", occurred_at=moment,
            year=on.year, level=1, category_id="seeing-a-doctor", has_text=True), source="feedback-intake",
            key=SPIKE_UNIT)

    envelopes = [complaint(day - timedelta(days=d), d) for d in range(12, 60, 4)]
    envelopes += [complaint(day - timedelta(days=i % 5), 100 + i) for i in range(10)]
    ids = {e.id for e in envelopes}
    await system.bus.publish([encode(e) for e in envelopes])
    notices = system.runtime("notices")

    async def all_applied() -> bool:
        async with notices.sessions() as session:
            table = notices.processed
            rows = (await session.execute(select(table.c.event_id).where(table.c.event_id.in_(ids)))).all()
        return len(rows) == len(ids)

    await eventually(all_applied)
    commission = {"Authorization": f"Bearer {token('commission', subject='detector-run')}"}
    r = await system.notices.post("/v1/rules:evaluate", json={"day": day.isoformat()}, headers=commission)
    assert r.status_code == 200, r.text
    listed = (await system.notices.get("/v1/notices", params={"unit_id": SPIKE_UNIT}, headers=commission)).json()
    assert listed["items"], "the spike raised no notice"
    notice_id: str = listed["items"][0]["id"]
    return notice_id
