"""feedback-intake's application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

from feedback_intake import api
from feedback_intake.models import metadata
from feedback_intake.settings import IntakeSettings

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: IntakeSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    app = runtime.create_app(title="Yardstick feedback-intake", routers=[api.router])
    app.state.settings = settings
    return app
