"""scoring's application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from yardstick import events
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

from scoring import api, consumers
from scoring.models import metadata
from scoring.settings import ScoringSettings

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: ScoringSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or ScoringSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    runtime.consume(name="scoring", topics=[events.FEEDBACK], handlers=consumers.handlers(runtime.city))
    app = runtime.create_app(title="Yardstick scoring", routers=[api.router])
    app.state.settings = settings
    return app
