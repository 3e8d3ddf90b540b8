"""Request ids and the request-time metric, on a real service app."""

from __future__ import annotations

from typing import Any


async def test_every_answer_carries_a_request_id_and_a_given_one_is_kept(system: Any) -> None:
    fresh = await system.notices.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    again = await system.notices.get("/healthz")
    assert again.headers["x-request-id"] != fresh.headers["x-request-id"]
    kept = await system.notices.get("/healthz", headers={"X-Request-Id": "kiosk-17-retry-3"})
    assert kept.headers["x-request-id"] == "kiosk-17-retry-3"
    # Errors too, so a client can quote the id of a failed call.
    missing = await system.intake.post("/v1/ratings", json={"ratings": []})
    assert missing.status_code == 401 and missing.headers["x-request-id"]


def request_count(metrics: str, route: str, status: int, method: str = "GET") -> float:
    series = (f'yardstick_http_request_seconds_count{{method="{method}",route="{route}",service="notices",'
              f'status="{status}"}} ')
    return next((float(line.removeprefix(series)) for line in metrics.splitlines() if line.startswith(series)), 0.0)


async def test_request_times_are_recorded_per_route_and_status(system: Any, token: Any) -> None:
    before = (await system.notices.get("/metrics")).text
    for _ in range(3):
        await system.notices.get("/healthz")
    # One route, two answers: each in its own series.
    assert (await system.notices.get("/v1/notices")).status_code == 401
    commission = {"Authorization": f"Bearer {token('commission')}"}
    for _ in range(2):
        assert (await system.notices.get("/v1/notices", headers=commission)).status_code == 200
    assert (await system.notices.get("/no/such/route")).status_code == 404
    for _ in range(2):  # the same route and status by another method: a series of its own
        assert (await system.notices.post("/no/such/route")).status_code == 404
    after = (await system.notices.get("/metrics")).text

    def counted(route: str, status: int, method: str = "GET") -> float:
        return request_count(after, route, status, method) - request_count(before, route, status, method)

    assert counted("/healthz", 200) == 3
    assert counted("/v1/notices", 401) == 1 and counted("/v1/notices", 200) == 2
    assert counted("unmatched", 404) == 1 and counted("unmatched", 404, "POST") == 2


def test_every_key_the_code_logs_is_on_the_allow_list() -> None:
    """A key missing from the allow-list is silently dropped: the log line loses what it was for."""
    import ast
    from pathlib import Path

    from yardstick.observability import _ALLOWED_EXTRA

    root = Path(__file__).resolve().parents[2]
    used: dict[str, str] = {}
    for path in [*root.glob("shared/yardstick/**/*.py"), *root.glob("services/*/*/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {
                    "debug", "info", "warning", "error", "exception", "critical"}:
                for keyword in node.keywords:
                    if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                        for key in keyword.value.keys:
                            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                                used.setdefault(key.value, f"{path.relative_to(root)}:{node.lineno}")
    assert used, "found no log calls with extra: the scan is broken"
    missing = {k: where for k, where in used.items() if k not in _ALLOWED_EXTRA}
    assert not missing, f"logged keys the formatter drops: {missing}"
