"""target-tracker's application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from target_tracker import api, service
from target_tracker.models import metadata
from target_tracker.settings import TargetsSettings
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: TargetsSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or TargetsSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    runtime.add_task("stale-sweep", lambda: service.sweep_forever(runtime, settings))
    app = runtime.create_app(title="Yardstick target-tracker", routers=[api.router])
    app.state.settings = settings
    return app
