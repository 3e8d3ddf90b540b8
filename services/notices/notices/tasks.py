"""notices' background loops: debounced live evaluation, the daily sweep, and the notifier."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx

from notices import notify, repository, service
from notices.settings import NoticesSettings
from notices.workdays import WorkCalendar
from yardstick.events import Envelope
from yardstick.runtime import ServiceRuntime

log = logging.getLogger(__name__)


class Evaluator:
    """Marks the counts dirty as events are applied, and evaluates a few seconds after the last one."""

    def __init__(self, runtime: ServiceRuntime, settings: NoticesSettings, calendar: WorkCalendar) -> None:
        self.runtime = runtime
        self.settings = settings
        self.calendar = calendar
        self.dirty = asyncio.Event()
        self.evaluations = 0

    async def mark_dirty(self, _: Envelope) -> None:
        self.dirty.set()

    def today(self, now: datetime) -> datetime:
        return now.astimezone(self.runtime.city.timezone)

    async def evaluate_now(self) -> service.Evaluation | None:
        now = datetime.now(UTC)
        async with self.runtime.transaction() as session:
            if not await repository.try_lock(session, "notices-sweep"):
                return None
            result = await service.evaluate(session, city=self.runtime.city, calendar=self.calendar,
                                            today=self.today(now).date(), now=now)
        self.evaluations += 1
        return result

    async def sweep_now(self) -> list[service.Evaluation]:
        now = datetime.now(UTC)
        async with self.runtime.transaction() as session:
            return await service.sweep(session, city=self.runtime.city, calendar=self.calendar,
                                       today=self.today(now).date(), now=now, catchup_days=self.settings.catchup_days)

    async def live_loop(self) -> None:
        clock = asyncio.get_running_loop().time
        while True:
            await self.dirty.wait()
            # Debounce: wait until events stop arriving for debounce_s, then evaluate once. Kiosks at
            # every window leave no quiet debounce_s on a working day, so no later than evaluate_within_s
            # after the first event not yet evaluated (the events since then wait for the next pass).
            deadline = clock() + self.settings.evaluate_within_s
            while True:
                self.dirty.clear()
                await asyncio.sleep(max(0.0, min(self.settings.debounce_s, deadline - clock())))
                if not self.dirty.is_set() or clock() >= deadline:
                    break
            try:
                if await self.evaluate_now() is None:
                    self.dirty.set()
            except Exception:
                log.exception("live evaluation failed; will retry")
                self.dirty.set()
                await asyncio.sleep(self.settings.retry_max_s)

    async def sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep_now()
            except Exception:
                log.exception("daily sweep failed; will retry")
            await asyncio.sleep(self.settings.sweep_check_s)

    async def delivery_loop(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s) as client:
            while True:
                try:
                    await notify.deliver_due(self.runtime.writing, self.settings, client)
                except Exception:
                    log.exception("notification delivery pass failed")
                await asyncio.sleep(self.settings.delivery_interval_s)
