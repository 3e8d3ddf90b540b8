"""A duplicate storm: every consumer group of scoring and notices rewound to the beginning of its topics
under steady kiosk load. Every event of the run is delivered again and skipped; no total changes."""

from __future__ import annotations

import asyncio
import time

from harness import System
from kafka_tools import rewind_group
from kiosk_load import CITY, SECOND, KioskLoad, Ledger, wait_caught_up, wait_settled, windows_of_units

from scoring.consumers import TOPICS as SCORING_TOPICS
from yardstick import events

GROUPS = {"scoring": SCORING_TOPICS, "notices": [events.FEEDBACK, events.TARGETS]}

# Recovery bound, from the restarted consumers' first /readyz to the totals matching again: every event
# of the run so far (a few thousand) is read again and skipped (one indexed lookup in its own
# transaction each, two instances per group). 60 s leaves room for a loaded 2-core CI machine.
RECOVERY_BOUND_S = 120.0


def test_every_consumer_rewound_to_the_beginning(full_system: System, ledger: Ledger) -> None:
    system = full_system
    load = ledger.add(KioskLoad(system, windows_of_units(CITY, ledger.units(6)))).start()
    try:
        time.sleep(4)
        wait_caught_up(system, ledger.confirmed_by_unit(), ledger.year, timeout=60)
        before = ledger.confirmed_by_unit()
        instances = {service: [service] + [name for name, of, _ in SECOND if of == service] for service in GROUPS}
        for service, names in instances.items():
            for name in names:
                system.stop(name)
            for topic in GROUPS[service]:
                asyncio.run(rewind_group(system.prefix + service, system.prefix + topic))
        for service, names in instances.items():
            for name in names:
                system.start(service, name=name, port=system.ports[name], wait=False)
        for names in instances.values():
            for name in names:
                system.wait_ready(name, timeout=180)
        back_at = time.monotonic()
        wait_caught_up(system, ledger.confirmed_by_unit(), ledger.year, timeout=3 * RECOVERY_BOUND_S)
        recovery = time.monotonic() - back_at
        time.sleep(3)
    finally:
        load.stop()
    settled = wait_settled(system, ledger.confirmed_by_unit(), ledger.year)
    skipped = {service: sum(system.metric(name, "yardstick_events_consumed_total", consumer=service,
                                          outcome="duplicate") for name in names)
               for service, names in instances.items()}
    print(f"\nduplicate storm: {sum(before.values())} ratings of {len(before)} units delivered again; skipped "
          f"{skipped}; recovery {recovery:.1f}s (bound {RECOVERY_BOUND_S:.0f}s); {load.summary()}")
    assert load.anomalies == [] and load.failures == []
    # Every rating counted before the rewind came again and was recognised.
    assert skipped["scoring"] >= sum(before.values()) and skipped["notices"] >= sum(before.values())
    assert settled.scoring == ledger.confirmed_by_unit() and settled.notices == ledger.confirmed_by_unit()
    assert recovery < RECOVERY_BOUND_S, f"recovery took {recovery:.1f}s"
