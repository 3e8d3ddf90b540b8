"""PostgreSQL stopped and restarted under steady kiosk load: while it is away intake answers nothing but
503 (the kiosks keep their batches and post them again), and afterwards every rating intake accepted is
counted exactly once by scoring and by notices."""

from __future__ import annotations

import time

import httpx
from harness import System, control
from kiosk_load import (
    CITY,
    KioskLoad,
    Ledger,
    commission,
    measure_recovery,
    wait_caught_up,
    wait_settled,
    windows_of_units,
)

# Recovery bound, from PostgreSQL accepting connections again to intake answering 202 and scoring and
# notices having counted every rating accepted by then. What it is made of (test settings,
# YARDSTICK_*_RETRY_MAX_S=1): the pools drop their dead connections on checkout (pool_pre_ping) and
# open new ones at once; the consumers retry the event they were on at most every 1 s; the relay
# retries at most every 1 s and publishes the events of the last accepted batches. A few seconds in
# all (measured: 4 s on a loaded 2-core machine); 60 s is the bound of the other outages and still
# fails a consumer that is stuck.
RECOVERY_BOUND_S = 60.0
OUTAGE_S = 8.0


def test_database_restart_under_load(full_system: System, ledger: Ledger) -> None:
    system = full_system
    load = ledger.add(KioskLoad(system, windows_of_units(CITY, ledger.units(6)))).start()
    ready_while_down: dict[str, int] = {}
    try:
        time.sleep(4)
        wait_caught_up(system, load.confirmed_by_unit(), ledger.year, timeout=60)  # steady before the fault
        down_at = time.monotonic()
        control("PG", "stop")
        try:
            time.sleep(OUTAGE_S)
            for name in ("feedback-intake", "scoring", "notices"):
                ready_while_down[name] = system.get(name, "/readyz").status_code
            r = system.get("scoring", f"/v1/scorecards/{load.windows[0].unit}", commission(system))
            scorecard_while_down = (r.status_code, r.json())
        finally:
            control("PG", "start")
        back_at = time.monotonic()
        recovery = measure_recovery(system, load, back_at, ledger.year, timeout=3 * RECOVERY_BOUND_S)
        time.sleep(3)  # the load goes on after the recovery
    finally:
        load.stop()
    settled = wait_settled(system, load.confirmed_by_unit(), ledger.year)
    failed = load.failures
    print(f"\ndatabase restart: outage {back_at - down_at:.1f}s, {len(failed)} answers were not 2xx "
          f"({len(load.failures_between(down_at, back_at))} while it was down), recovery {recovery:.1f}s "
          f"(bound {RECOVERY_BOUND_S:.0f}s); {load.summary()}; scoring and notices each count {settled.total()[0]}")
    assert load.anomalies == []
    assert ready_while_down == {"feedback-intake": 503, "scoring": 503, "notices": 503}
    # A read needs the database too: 503 with the JSON error shape, never a 500.
    assert scorecard_while_down[0] == 503 and scorecard_while_down[1]["error"]["code"] == "unavailable"
    assert failed, "no post failed: the database was not down while the kiosks posted"
    assert {a.status for a in failed} == {503}, [(a.status, a.detail) for a in failed if a.status != 503][:5]
    for answer in failed:
        assert httpx.Response(503, text=answer.detail).json()["error"]["code"] == "unavailable"
    # The 503s fall between the stop and intake's first 202 after the start.
    assert all(down_at <= a.at <= back_at + recovery for a in failed)
    assert settled.total() == (load.accepted + load.retry_duplicates,) * 2
    assert recovery < RECOVERY_BOUND_S, f"recovery took {recovery:.1f}s"

