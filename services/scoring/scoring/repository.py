"""Every query of scoring."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from yardstick.db import insert_for

from scoring.method import ChannelSums
from scoring.models import channel_days


async def add_rating(session: AsyncSession, *, unit_id: str, channel: str, day: date, year: int,
                     s: float, sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1, a reassigned item) one rating of satisfaction s."""
    insert = insert_for(session)
    stmt = insert(channel_days).values(unit_id=unit_id, channel=channel, day=day, year=year,
                                       n=sign, sum_s=sign * s, sum_s2=sign * s * s)
    stmt = stmt.on_conflict_do_update(
        index_elements=["unit_id", "channel", "day"],
        set_={"n": channel_days.c.n + stmt.excluded.n, "sum_s": channel_days.c.sum_s + stmt.excluded.sum_s,
              "sum_s2": channel_days.c.sum_s2 + stmt.excluded.sum_s2})
    await session.execute(stmt)


async def channel_sums(session: AsyncSession, year: int) -> dict[str, dict[str, ChannelSums]]:
    """Per unit and channel, the year's sums (one grouped query over the daily aggregates)."""
    c = channel_days.c
    rows = await session.execute(
        select(c.unit_id, c.channel, func.sum(c.n), func.sum(c.sum_s), func.sum(c.sum_s2))
        .where(c.year == year).group_by(c.unit_id, c.channel))
    out: dict[str, dict[str, ChannelSums]] = {}
    for unit_id, channel, n, sum_s, sum_s2 in rows:
        out.setdefault(unit_id, {})[channel] = ChannelSums(n=float(n), sum_s=float(sum_s),
                                                           sum_s2=float(sum_s2), count=int(n))
    return out
