"""The four services by name, found by import path so this package never imports them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from yardstick.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    package: str
    settings_class: str

    def settings(self, **overrides: Any) -> ServiceSettings:
        module = importlib.import_module(f"{self.package}.settings")
        cls: type[ServiceSettings] = getattr(module, self.settings_class)
        return cls(**overrides)

    def create_app(self, settings: ServiceSettings, **kwargs: Any) -> Any:
        module = importlib.import_module(f"{self.package}.app")
        return module.create_app(settings, **kwargs)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec for spec in (
        ServiceSpec("feedback-intake", "feedback_intake", "IntakeSettings"),
        ServiceSpec("target-tracker", "target_tracker", "TargetsSettings"),
        ServiceSpec("scoring", "scoring", "ScoringSettings"),
        ServiceSpec("notices", "notices", "NoticesSettings"),
    )
}
