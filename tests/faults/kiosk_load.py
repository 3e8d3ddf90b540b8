"""Steady kiosk load for the fault tests, and the totals every scenario compares afterwards.

A kiosk posts batches of presses for its window; when a post fails (no answer, or any non-2xx)
it posts the same batch again, same rating ids, until intake answers 2xx. The load keeps one such
kiosk per window and sends one batch at a fixed rate, round robin, recording every answer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from harness import _BASE, System, wait_for

from yardstick import auth
from yardstick.city import CityProfile, Window, default_city_path, load_city

CITY = load_city(default_city_path())
# The scoring and notices processes beside the first ones: (name, service, port).
SECOND = (("scoring-2", "scoring", _BASE + 25), ("notices-2", "notices", _BASE + 26))

# Presses of one kiosk closer than intake's suppress interval (5 s) are kept but not counted.
PRESS_SPACING = timedelta(seconds=6)


@dataclass
class Answer:
    at: float  # time.monotonic() when the answer came
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    detail: str


@dataclass
class Kiosk:
    window: Window
    token: str
    clock: datetime
    pending: dict[str, Any] | None = None  # a batch that has not had a 2xx answer yet
    attempts: int = 0


@dataclass
class KioskLoad:
    """Kiosks for `windows`; `start()` posts `rate_per_s` batches of `batch` presses a second."""

    system: System
    windows: list[Window]
    # 6 ratings a second: well under what two scoring instances apply on a loaded 2-core machine
    # (about 17 a second), so a backlog drains in a time the bounds can state.
    rate_per_s: float = 3.0
    batch: int = 2
    timeout_s: float = 10.0
    # Ratings intake confirmed as stored: accepted in the answer, or reported as duplicates when
    # a batch is posted again after an attempt that got no 2xx (that attempt stored them).
    confirmed: Counter[str] = field(default_factory=Counter)  # by window id
    accepted: int = 0
    retry_duplicates: int = 0
    anomalies: list[str] = field(default_factory=list)  # answers a correct intake never gives
    failures: list[Answer] = field(default_factory=list)  # every answer that was not a 2xx
    answers: int = 0
    batches_sent: int = 0
    last_ok_at: float = 0.0  # time.monotonic() of the last 2xx

    def __post_init__(self) -> None:
        # Presses start two hours back and advance 6 s each: hundreds per kiosk stay in the past.
        start = datetime.now(UTC) - timedelta(hours=2)
        self.kiosks = [Kiosk(w, auth.issue(self.system.secret, role="kiosk", window_id=w.id,
                                           subject=f"kiosk-{w.id}-{uuid.uuid4().hex[:6]}")[0], start)
                       for w in self.windows]
        self._next = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.system.url("feedback-intake"), timeout=self.timeout_s)

    # ---- what was sent and confirmed ----------------------------------------------------------
    @property
    def units(self) -> set[str]:
        return {w.unit for w in self.windows}

    def confirmed_total(self) -> int:
        with self._lock:
            return sum(self.confirmed.values())

    def confirmed_by_unit(self) -> Counter[str]:
        with self._lock:
            out: Counter[str] = Counter()
            for k in self.kiosks:
                out[k.window.unit] += self.confirmed[k.window.id]
            return out

    def failures_between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.failures if start <= a.at <= end]

    # ---- sending -------------------------------------------------------------------------------
    def _new_batch(self, kiosk: Kiosk) -> dict[str, Any]:
        items = []
        for _ in range(self.batch):
            kiosk.clock += PRESS_SPACING
            items.append({"id": str(uuid.uuid4()), "window_id": kiosk.window.id,
                          "level": 1 + (kiosk.clock.second + kiosk.clock.minute) % 5,
                          "rated_at": kiosk.clock.isoformat()})
        return {"ratings": items}

    def send_one(self) -> None:
        """One post by the next kiosk in turn: its unanswered batch again, or a new one."""
        kiosk = self.kiosks[self._next % len(self.kiosks)]
        self._next += 1
        body = kiosk.pending or self._new_batch(kiosk)
        retry = kiosk.pending is not None
        kiosk.pending, kiosk.attempts = body, kiosk.attempts + 1
        self.batches_sent += 0 if retry else 1
        got: dict[str, Any] = {}
        try:
            r = self._client.post("/v1/ratings", json=body, headers={"Authorization": f"Bearer {kiosk.token}"})
            answer = Answer(time.monotonic(), r.status_code, r.text[:300])
            if r.is_success:
                got = r.json()
        except httpx.HTTPError as exc:
            answer = Answer(time.monotonic(), 0, repr(exc)[:300])
        with self._lock:
            self.answers += 1
            if not got:
                self.failures.append(answer)
                return
            kiosk.pending, kiosk.attempts = None, 0
            self.last_ok_at = answer.at
            n = len(body["ratings"])
            if got.get("suppressed") or got.get("rejected") or got["accepted"] + got["duplicates"] != n:
                self.anomalies.append(f"{kiosk.window.id}: {answer.detail}")
            if got["duplicates"] and not retry:
                self.anomalies.append(f"{kiosk.window.id}: duplicates in a batch posted once: {answer.detail}")
            self.accepted += got["accepted"]
            self.retry_duplicates += got["duplicates"]
            self.confirmed[kiosk.window.id] += got["accepted"] + got["duplicates"]

    def _run(self) -> None:
        interval = 1.0 / self.rate_per_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.send_one()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind (a slow answer): do not burst to catch up

    def start(self) -> KioskLoad:
        self._thread = threading.Thread(target=self._run, name="kiosk-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, drain_timeout_s: float = 60.0) -> None:
        """Stop the steady load, then post every unanswered batch until it gets a 2xx (as a kiosk would)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
            assert not self._thread.is_alive(), "the load thread did not stop"
        deadline = time.monotonic() + drain_timeout_s
        for kiosk in self.kiosks:
            while kiosk.pending is not None:
                assert time.monotonic() < deadline, f"kiosk {kiosk.window.id} still has an unanswered batch"
                self._next = self.kiosks.index(kiosk)
                self.send_one()
                if kiosk.pending is not None:
                    time.sleep(0.5)
        self._client.close()

    def summary(self) -> str:
        statuses = Counter(a.status for a in self.failures)
        return (f"{self.batches_sent} batches, {self.answers} answers, {self.accepted} accepted, "
                f"{self.retry_duplicates} confirmed on retry, non-2xx: {dict(statuses) or 'none'}")


class Ledger:
    """Every load of the session, and units handed out so that no two scenarios share one."""

    def __init__(self, city: CityProfile) -> None:
        self.city = city
        self.loads: list[KioskLoad] = []
        self._free = [u.id for u in city.departments if len(city.windows_of(u.id)) >= 2]
        # The year the presses fall in (they start two hours back; see KioskLoad).
        self.year = (datetime.now(UTC) - timedelta(hours=2)).astimezone(city.timezone).year

    def units(self, n: int) -> list[str]:
        assert len(self._free) >= n, "the city has no more free units for another scenario"
        taken, self._free = self._free[:n], self._free[n:]
        return taken

    def add(self, load: KioskLoad) -> KioskLoad:
        self.loads.append(load)
        return load

    def confirmed_by_unit(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for load in self.loads:
            out.update(load.confirmed_by_unit())
        return out


def windows_of_units(city: CityProfile, units: list[str]) -> list[Window]:
    return [w for u in units for w in city.windows_of(u)]


# ---- what scoring and notices counted ----------------------------------------------------------
def commission(system: System) -> str:
    return auth.issue(system.secret, role="commission", subject="fault-tests")[0]


def scoring_n(system: System, unit_id: str, year: int, token: str, instance: str = "scoring") -> int:
    r = system.get(instance, f"/v1/scorecards/{unit_id}?year={year}", token)
    r.raise_for_status()
    return int(r.json()["public"]["channels"]["window"]["n"])


def notices_n(system: System, kind: str, subject_id: str, token: str, instance: str = "notices") -> int:
    r = system.get(instance, f"/v1/counts/{kind}/{subject_id}", token)
    r.raise_for_status()
    return int(r.json()["n"])


@dataclass
class Counts:
    scoring: Counter[str]  # window ratings by unit (its scorecard's window channel)
    notices: Counter[str]  # window ratings by unit (the sum of its windows' counts)

    def total(self) -> tuple[int, int]:
        return sum(self.scoring.values()), sum(self.notices.values())


def counts(system: System, units: set[str], year: int) -> Counts:
    token = commission(system)
    return Counts(Counter({u: scoring_n(system, u, year, token) for u in sorted(units)}),
                  Counter({u: sum(notices_n(system, "window", w.id, token) for w in CITY.windows_of(u))
                           for u in sorted(units)}))


def wait_caught_up(system: System, want: Counter[str], year: int, *, timeout: float) -> float:
    """Seconds until scoring and notices count at least `want` on every unit (polled every 0.25 s)."""
    started = time.monotonic()

    def caught_up() -> bool:
        got = counts(system, set(want), year)
        return all(got.scoring[u] >= n and got.notices[u] >= n for u, n in want.items())

    wait_for(caught_up, timeout=timeout, interval=0.25, what=f"scoring and notices to count {sum(want.values())}")
    return time.monotonic() - started


def measure_recovery(system: System, load: KioskLoad, back_at: float, year: int, *, timeout: float) -> float:
    """Seconds from `back_at` (the dependency is back) until intake accepts again and scoring and
    notices count every rating intake had confirmed at that moment (the outage's backlog)."""
    wait_for(lambda: load.last_ok_at > back_at, timeout=timeout, what="intake to accept ratings again")
    want = load.confirmed_by_unit()
    wait_caught_up(system, want, year, timeout=max(1.0, timeout - (time.monotonic() - back_at)))
    return time.monotonic() - back_at


def wait_settled(system: System, want: Counter[str], year: int, *, timeout: float = 90.0,
                 quiet_s: float = 3.0) -> Counts:
    """Counts once they equal `want` on every unit and stay so for `quiet_s` (redeliveries would show)."""
    def equal() -> Counts | None:
        got = counts(system, set(want), year)
        return got if got.scoring == want and got.notices == want else None

    def unit_by_unit() -> str:
        got = counts(system, set(want), year)
        return "; ".join(f"{u}: intake {want[u]}, scoring {got.scoring[u]}, notices {got.notices[u]}"
                         for u in sorted(want) if (want[u], want[u]) != (got.scoring[u], got.notices[u]))

    try:
        wait_for(equal, timeout=timeout, interval=0.5, what="totals to match")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; differences: {unit_by_unit()}") from None
    time.sleep(quiet_s)
    final = counts(system, set(want), year)
    assert final.scoring == want and final.notices == want, f"counts moved after matching: {unit_by_unit()}"
    return final
