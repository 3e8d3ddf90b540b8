"""scoring's application factory."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from scoring import api, consumers, service
from scoring.models import metadata
from scoring.pages import views as pages
from scoring.pages.settings import PagesSettings
from scoring.settings import ScoringSettings
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.consumer import Decoded
from yardstick.runtime import ServiceRuntime

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")
log = logging.getLogger(__name__)


def create_app(settings: ScoringSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or ScoringSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    table = consumers.handlers(runtime.city)
    changed = asyncio.Event()  # set after each applied batch: the recompute loop's wake-up

    async def applied(_event: Decoded) -> None:
        changed.set()

    runtime.consume(name=consumers.CONSUMER, topics=consumers.TOPICS, handlers=table, after_commit=applied,
                    batch_handler=consumers.batch_handler(runtime.city, table), decode=consumers.DECODE,
                    decode_batch=consumers.DECODE_BATCH, prepare=consumers.preparer(runtime.city, table),
                    poll_size=consumers.POLL_SIZE)
    runtime.add_task("scorecard-recompute", lambda: service.refresher(
        runtime, changed, min_gap_s=settings.recompute_gap_s, poll_s=settings.recompute_poll_s))

    async def emitter() -> None:
        while True:
            try:
                await service.emit_updates(runtime, min_interval_s=settings.update_interval_s)
            except Exception:
                log.exception("scorecard.updated pass failed; retrying", extra={"service": runtime.service})
            await asyncio.sleep(settings.update_interval_s)

    runtime.add_task("scorecard-updates", emitter)
    app = runtime.create_app(title="Yardstick scoring", routers=[api.router, pages.router])
    pages.install_page_not_found(app)
    app.state.settings = settings
    app.state.pages_settings = PagesSettings()
    return app
