"""notices' application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from yardstick import events
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

from notices import api, consumers
from notices.models import metadata
from notices.settings import NoticesSettings

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: NoticesSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or NoticesSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    runtime.consume(name="notices", topics=[events.FEEDBACK], handlers=consumers.handlers(runtime.city))
    app = runtime.create_app(title="Yardstick notices", routers=[api.router])
    app.state.settings = settings
    return app
