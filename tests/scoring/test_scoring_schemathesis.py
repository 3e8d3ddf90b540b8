"""Property-based requests generated from scoring's OpenAPI document: none may answer 5xx."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from starlette.testclient import TestClient

from scoring.app import create_app
from scoring.settings import ScoringSettings
from yardstick.auth import issue
from yardstick.city import default_city_path, load_city

SECRET = "schemathesis-secret-0123456789abcdef"
TMP = Path("/tmp") / f"scoring-schemathesis-{os.getpid()}"
CITY = load_city(default_city_path())
UNIT = "health-commission"


def build_app() -> Any:
    TMP.mkdir(parents=True, exist_ok=True)
    return create_app(ScoringSettings(data_dir=TMP, bus="memory", auth_secret=SECRET, database_url=""), city=CITY)


APP = build_app()
# From the document itself: loading it over ASGI would run the lifespan in a loop of its own.
schema = schemathesis.openapi.from_dict(APP.openapi())
# Both valid and deliberately invalid data; a fixed seed per example (derandomize) keeps CI stable.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
TOKENS = {"commission": issue(SECRET, role="commission", subject="fuzz")[0],
          "coordinator": issue(SECRET, role="coordinator", unit_id=UNIT, subject="fuzz")[0]}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as running:  # runs the lifespan; an unhandled error fails the test with its traceback
        yield running


def _call(case: Any, client: TestClient, role: str) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(kwargs.pop("headers", None) or {})
    headers.setdefault("Authorization", f"Bearer {TOKENS[role]}")
    response = client.request(headers=headers, **kwargs)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} as {role}: {response.text[:500]}"


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_commission(case: Any, client: TestClient) -> None:
    _call(case, client, "commission")


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_as_coordinator(case: Any, client: TestClient) -> None:
    _call(case, client, "coordinator")
