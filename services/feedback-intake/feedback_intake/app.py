"""feedback-intake's application factory."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from feedback_intake import api, consumers, open311
from feedback_intake.classify import Classifier
from feedback_intake.contact import ContactVault, derive_key
from feedback_intake.limits import RateLimiter
from feedback_intake.models import metadata
from feedback_intake.service import FeedbackWriter, Intake
from feedback_intake.settings import IntakeSettings
from yardstick import events
from yardstick.bus import Bus
from yardstick.city import CityProfile
from yardstick.runtime import ServiceRuntime

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(settings: IntakeSettings | None = None, *, bus: Bus | None = None,
               city: CityProfile | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, metadata, migrations=MIGRATIONS, bus=bus, city=city)
    app = runtime.create_app(title="Yardstick feedback-intake", routers=[api.router, open311.router])
    app.state.settings = settings
    key = settings.contact_key.encode() if settings.contact_key else (lambda: derive_key(settings.secret()))
    writer = FeedbackWriter(runtime)
    runtime.on_stop(writer.stop)
    app.state.intake = Intake(runtime=runtime, settings=settings,
                              classifier=Classifier(runtime.city, min_confidence=settings.min_confidence),
                              vault=ContactVault(key), writer=writer)
    app.state.limiter = RateLimiter(rate=settings.rate_per_s, burst=settings.rate_burst)
    runtime.consume(name="feedback-intake-notices", topics=[events.NOTICES], handlers=consumers.handlers(runtime.city))
    return app
