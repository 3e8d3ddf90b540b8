"""notices' application factory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from notices import api, consumers
from notices.models import metadata
from notices.settings import NoticesSettings
from notices.tasks import Evaluator
from notices.workdays import WorkCalendar
from yardstick import events
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: NoticesSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or NoticesSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    calendar = WorkCalendar(settings.calendar)
    evaluator = Evaluator(runtime, settings, calendar)
    # A poll's events in one transaction, their counts summed per row and written with one upsert per
    # table: a statement per rating on the same few rows kept up with about 350 ratings/s.
    runtime.consume(name="notices", topics=[events.FEEDBACK, events.TARGETS],
                    handlers=consumers.handlers(runtime.city), after_commit=evaluator.mark_dirty,
                    batch_handler=consumers.batch_handler(runtime.city))
    if settings.live_evaluation:
        runtime.add_task("live-evaluation", evaluator.live_loop)
    if settings.daily_sweep:
        runtime.add_task("daily-sweep", evaluator.sweep_loop)
    runtime.add_task("notifier", evaluator.delivery_loop)
    app = runtime.create_app(title="Yardstick notices", routers=[api.router, api.public])
    app.state.settings = settings
    app.state.calendar = calendar
    app.state.evaluator = evaluator
    app.state.clock = lambda: datetime.now(UTC)
    return app
