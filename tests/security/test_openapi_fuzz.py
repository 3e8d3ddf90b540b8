"""Property-based requests generated from each service's OpenAPI document, valid and deliberately
invalid, as the commission and as a unit's coordinator: none may answer 5xx."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from starlette.testclient import TestClient

from feedback_intake.app import create_app as intake_app
from feedback_intake.settings import IntakeSettings
from notices.app import create_app as notices_app
from notices.settings import NoticesSettings
from scoring.app import create_app as scoring_app
from scoring.settings import ScoringSettings
from target_tracker.app import create_app as targets_app
from target_tracker.settings import TargetsSettings
from yardstick.auth import issue
from yardstick.city import default_city_path, load_city

SECRET = "schemathesis-secret-0123456789abcdef"
CITY = load_city(default_city_path())
UNIT = "health-commission"
TOKENS = {"commission": issue(SECRET, role="commission", subject="fuzz")[0],
          "coordinator": issue(SECRET, role="coordinator", unit_id=UNIT, subject="fuzz")[0]}
# Each service on SQLite and the in-process bus, in a folder of its own (removed after the module's tests:
# the apps are built when the module is collected, as schemathesis reads their documents then).
_FOLDERS = {name: tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") for name in ("intake", "targets", "scoring",
                                                                                   "notices")}
_COMMON: dict[str, Any] = {"bus": "memory", "auth_secret": SECRET, "database_url": ""}
APPS: dict[str, Any] = {
    "intake": intake_app(IntakeSettings(data_dir=Path(_FOLDERS["intake"].name), **_COMMON,
                                        rate_per_s=1e6, rate_burst=1e6, social_secrets={"weibo": "s"}), city=CITY),
    "targets": targets_app(TargetsSettings(data_dir=Path(_FOLDERS["targets"].name), **_COMMON),
                           city=CITY),
    "scoring": scoring_app(ScoringSettings(data_dir=Path(_FOLDERS["scoring"].name), **_COMMON),
                           city=CITY),
    "notices": notices_app(NoticesSettings(data_dir=Path(_FOLDERS["notices"].name), **_COMMON,
                                           daily_sweep=False, live_evaluation=False), city=CITY),
}


@schemathesis.serializer("application/x-ndjson")
def _json_lines(_ctx: Any, value: Any) -> bytes:
    """A survey upload's body: the generated text as it is, anything else as one JSON line."""
    return value.encode() if isinstance(value, str) else (json.dumps(value) + "\n").encode()


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, TestClient]]:
    running: dict[str, TestClient] = {}
    try:
        for name, app in APPS.items():
            # Runs the lifespan (migrations, relay, consumers); an unhandled error fails with its traceback.
            running[name] = TestClient(app).__enter__()
        yield running
    finally:
        for client in running.values():
            client.__exit__(None, None, None)
        for folder in _FOLDERS.values():
            folder.cleanup()


def fuzz(service: str, role: str, examples: int) -> Callable[..., None]:
    """A test of every operation of the service's document, `examples` cases each, sent with the role's token.

    The document is read from the app itself: loading it over ASGI would run the lifespan in a loop of
    its own. A fixed seed per example (derandomize) keeps CI stable.
    """
    schema = schemathesis.openapi.from_dict(APPS[service].openapi())
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @schema.parametrize()
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def test(case: Any, clients: dict[str, TestClient]) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", f"Bearer {TOKENS[role]}")
        # As the transport kwargs are meant, in the form the test client takes without deprecation warnings:
        # no per-request cookies (no operation has any: the documents declare none), raw bytes as content.
        cookies = kwargs.pop("cookies", None)
        assert not cookies, f"{case.operation.label} sends cookies: set them on the client"
        if isinstance(kwargs.get("data"), bytes | str):
            kwargs["content"] = kwargs.pop("data")
        response = clients[service].request(headers=headers, **kwargs)
        assert response.status_code < 500, \
            f"{service}: {case.method} {case.formatted_path} as {role}: {response.text[:500]}"

    return test


test_intake_as_commission = fuzz("intake", "commission", 25)
test_intake_as_coordinator = fuzz("intake", "coordinator", 10)
test_targets_as_commission = fuzz("targets", "commission", 30)
test_targets_as_coordinator = fuzz("targets", "coordinator", 10)
test_scoring_as_commission = fuzz("scoring", "commission", 30)
test_scoring_as_coordinator = fuzz("scoring", "coordinator", 10)
test_notices_as_commission = fuzz("notices", "commission", 30)
test_notices_as_coordinator = fuzz("notices", "coordinator", 10)
