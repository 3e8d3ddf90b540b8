"""Property-based requests generated from feedback-intake's OpenAPI document: none may answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from feedback_intake.app import create_app
from feedback_intake.settings import IntakeSettings
from yardstick.auth import issue
from yardstick.city import default_city_path, load_city

SECRET = "schemathesis-secret-0123456789abcdef"
TMP = Path("/tmp") / f"intake-schemathesis-{__import__('os').getpid()}"


def build_app() -> Any:
    TMP.mkdir(parents=True, exist_ok=True)
    app_settings = IntakeSettings(data_dir=TMP, bus="memory", auth_secret=SECRET, database_url="",
                                  rate_per_s=1e6, rate_burst=1e6, social_secrets={"weibo": "s"})
    return create_app(app_settings, city=load_city(default_city_path()))


APP = build_app()
# From the document itself: loading it over ASGI would run the lifespan in a loop of its own.
schema = schemathesis.openapi.from_dict(APP.openapi())


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as running:  # runs the lifespan: migrations, relay, consumers
        yield running


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, client: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(kwargs.pop("headers", None) or {})
    headers.setdefault("Authorization", f"Bearer {issue(SECRET, role='commission')[0]}")
    response = client.request(headers=headers, **kwargs)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
