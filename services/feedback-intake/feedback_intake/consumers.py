"""feedback-intake's event handlers: link feedback to the notices issued about it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from feedback_intake import repository
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import EventHandler
from yardstick.events import Envelope


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    async def notice_issued(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.NoticeIssued)
        # A complaint notice's subject is its category: the unit's open items of it are being rectified.
        category = data.subject if data.subject in city.category_ids else None
        await repository.link_notice(session, notice_id=data.notice_id, unit_id=data.unit_id,
                                     feedback_ids=data.feedback_ids, category_id=category)

    return {"notice.issued": notice_issued}
