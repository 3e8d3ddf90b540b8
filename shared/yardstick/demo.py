"""Demo activity for `make run` and `yardstick demo`: a lived-in city through the real APIs."""

from __future__ import annotations

import asyncio
import functools
import math
import random
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from yardstick.city import CityProfile
from yardstick.tokens import Registry

PORTS = {"intake": 8001, "targets": 8002, "scoring": 8003, "notices": 8004}

# Complaint sentences per category keyword: the demo writes texts the classifier must read,
# built from the profile's own keywords so any city profile works.
_ZH_TEMPLATES = ["{kw}的问题一直没有解决，希望尽快处理", "最近{kw}越来越严重了", "关于{kw}，多次反映没有回音",
                 "{kw}太让人头疼了，请相关部门重视"]
_EN_TEMPLATES = ["The {kw} problem keeps getting worse", "Please do something about {kw} in our area",
                 "I have reported {kw} twice with no answer", "{kw} again this week, very frustrating"]


@dataclass
class Tally:
    """What the demo posted, and what the services refused (shown at the end, never hidden)."""

    posted: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)

    def ok(self, what: str, n: int = 1) -> None:
        self.posted[what] = self.posted.get(what, 0) + n

    def fail(self, what: str, detail: str) -> None:
        self.failed[what] = self.failed.get(what, 0) + 1
        self.first_error.setdefault(what, detail[:300])


class Progress:
    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total = max(1, total)
        self.done = 0
        self.label = label
        self.quiet = quiet or not sys.stderr.isatty()
        self._last = -1

    def step(self, n: int = 1) -> None:
        self.done += n
        pct = min(100, self.done * 100 // self.total)
        if self.quiet or pct == self._last:
            return
        self._last = pct
        bar = "#" * (pct // 4)
        print(f"\r  {self.label:<24} [{bar:<25}] {pct:3d}%", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.quiet:
            print(file=sys.stderr)
        else:
            print(f"  {self.label}: done", file=sys.stderr, flush=True)


class Demo:
    def __init__(self, *, registry: Registry, city: CityProfile, host: str = "127.0.0.1",
                 days: int = 28, scale: float = 1.0, seed: int = 7, concurrency: int = 8,
                 ports: dict[str, int] | None = None) -> None:
        self.registry = registry
        self.city = city
        self.host = host
        self.days = max(1, days)
        self.scale = scale
        self.rng = random.Random(seed)
        self.sem = asyncio.Semaphore(concurrency)
        self.ports = ports or PORTS
        self.tally = Tally()
        self.tokens: dict[str, str] = {}
        self.now = datetime.now(UTC)
        self.today = self.now.astimezone(city.timezone).date()
        # Each unit's own quality, so rankings have something to show.
        self.mood = {u.id: self.rng.uniform(0.55, 0.95) for u in city.units}

    # plumbing ---------------------------------------------------------------------------
    async def _token(self, key: str, **kw: Any) -> str:
        if key not in self.tokens:
            self.tokens[key], _ = await self.registry.issue(**kw)
        return self.tokens[key]

    async def call(self, client: httpx.AsyncClient, what: str, method: str, url: str, token: str | None,
                   **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        async with self.sem:
            for _ in range(20):
                try:
                    r = await client.request(method, url, headers=headers, **kw)
                except httpx.HTTPError as exc:
                    self.tally.fail(what, repr(exc))
                    return None
                if r.status_code == 429:  # respect the service's rate limit
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status_code >= 400:
                    self.tally.fail(what, f"{r.status_code} {r.text}")
                    return None
                self.tally.ok(what)
                return r.json() if r.content else None
        self.tally.fail(what, "still rate-limited after 20 tries")
        return None

    def url(self, service: str, path: str) -> str:
        return f"http://{self.host}:{self.ports[service]}{path}"

    async def _gather(self, label: str, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        progress = Progress(len(jobs), label)

        async def run(job: Callable[[], Awaitable[Any]]) -> None:
            await job()
            progress.step()

        await asyncio.gather(*(run(j) for j in jobs))
        progress.close()

    # the city's activity ----------------------------------------------------------------
    async def run(self) -> Tally:
        # A day's commission token for the newcomer, readable by its owner only.
        commission = await self._token("commission", role="commission", subject="demo-commission", ttl_s=86_400)
        path = self.registry.settings.data_dir / "commission-token"
        path.write_text(commission + "\n")
        path.chmod(0o600)
        async with httpx.AsyncClient(timeout=60) as client:
            await self.kiosk_ratings(client)
            await self.feedback(client)
            await self.targets(client, commission)
            await self.survey(client, commission)
            await self.leaders_and_projects(client, commission)
            await self.notice_follow_through(client, commission)
        return self.tally

    def _moment(self, day_offset: int) -> datetime:
        """A time during opening hours on a day `day_offset` days ago (local), in UTC."""
        day = self.today - timedelta(days=day_offset)
        hour = self.rng.choice([9, 9, 10, 10, 10, 11, 11, 14, 14, 15, 15, 16, 17])
        local = datetime(day.year, day.month, day.day, hour, self.rng.randint(0, 59), self.rng.randint(0, 59),
                         tzinfo=self.city.timezone)
        moment = local.astimezone(UTC)
        return min(moment, self.now - timedelta(minutes=1))

    def _level(self, mood: float) -> int:
        if self.rng.random() < mood:
            return self.rng.choice([4, 5, 5])
        return self.rng.choice([1, 2, 3, 3])

    async def kiosk_ratings(self, client: httpx.AsyncClient) -> None:
        jobs = []
        for window in self.city.windows:
            token = await self._token(f"kiosk:{window.id}", role="kiosk", subject=f"kiosk-{window.id}",
                                      window_id=window.id)
            mood = self.mood[window.unit]
            items = []
            for offset in range(self.days):
                weekday = (self.today - timedelta(days=offset)).weekday()
                rate = (2.0 if weekday < 5 else 0.6) * self.scale  # halls are quiet at weekends
                for _ in range(_poisson(self.rng, rate)):
                    items.append({"id": str(uuid.uuid4()), "window_id": window.id, "level": self._level(mood),
                                  "rated_at": self._moment(offset).isoformat()})
            for start in range(0, len(items), 200):
                batch = items[start:start + 200]
                jobs.append(functools.partial(self.call, client, "kiosk ratings", "POST",
                                              self.url("intake", "/v1/ratings"), token, json={"ratings": batch}))
        await self._gather("kiosk ratings", jobs)

    def _text(self, category_id: str) -> str:
        category = self.city.category(category_id)
        zh = [k for k in category.keywords if not k.isascii()]
        en = [k for k in category.keywords if k.isascii()]
        if zh and (not en or self.rng.random() < 0.7):
            return self.rng.choice(_ZH_TEMPLATES).format(kw=self.rng.choice(zh))
        return self.rng.choice(_EN_TEMPLATES).format(kw=self.rng.choice(en))

    async def feedback(self, client: httpx.AsyncClient) -> None:
        citizens = [await self._token(f"citizen:{i}", role="citizen", subject=f"demo-app-{i}") for i in range(4)]
        categories = list(self.city.categories)
        planted = "seeing-a-doctor" if "seeing-a-doctor" in self.city.category_ids else categories[0].id
        jobs = []
        for offset in range(self.days):
            for category in categories:
                # Low enough that a quiet category rarely reaches the detector's min_count by chance.
                rate = 0.2 * self.scale
                # The planted recurring problem: three times the complaints over the last two weeks.
                if category.id == planted and offset < 14:
                    rate *= 6
                for _ in range(_poisson(self.rng, rate)):
                    body = {"channel": self.rng.choice(["web", "mobile", "mobile"]),
                            "text": self._text(category.id),
                            "level": self.rng.choice([1, 1, 2, 2, 3]),
                            "submitted_at": self._moment(offset).isoformat(),
                            "client_id": str(uuid.uuid4())}
                    token = self.rng.choice(citizens)
                    jobs.append(functools.partial(self.call, client, "citizen feedback", "POST",
                                                  self.url("intake", "/v1/feedback"), token, json=body))
        await self._gather("citizen feedback", jobs)

    async def targets(self, client: httpx.AsyncClient, commission: str) -> None:
        year = self.today.year
        jan1 = date(year, 1, 1)
        elapsed = max(1, (self.today - jan1).days)
        jobs: list[Callable[[], Awaitable[Any]]] = []
        created: list[tuple[str, str, dict[str, Any]]] = []

        async def define(unit_id: str, body: dict[str, Any]) -> None:
            out = await self.call(client, "targets", "POST", self.url("targets", "/v1/targets"), commission,
                                  json=body)
            if out and "id" in out:
                created.append((out["id"], unit_id, body))

        for unit in self.city.units:
            for i, (title, measure, direction, baseline, target) in enumerate(_target_menu(self.rng)):
                body: dict[str, Any] = {"unit_id": unit.id, "year": year, "code": f"T{i + 1:02d}", "title": title,
                        "unit_of_measure": measure, "direction": direction, "kind": "numeric",
                        "baseline": baseline, "target": target, "weight": self.rng.choice([1, 1, 2]),
                        "cadence": "daily", "public_commitment": i == 0}
                jobs.append(functools.partial(define, unit.id, body))
        await self._gather("targets", jobs)

        reports: list[Callable[[], Awaitable[Any]]] = []
        for target_id, unit_id, body in created:
            coordinator = await self._token(f"coordinator:{unit_id}", role="coordinator",
                                            subject=f"coordinator-{unit_id}", unit_id=unit_id)
            # Units with a poor mood fall behind their trajectory.
            pace = 0.6 + 0.6 * self.mood[unit_id]
            span = float(body["target"]) - float(body["baseline"])
            # The last two weeks of daily reports: enough for the tracker's trend (least squares over 14).
            for offset in range(min(self.days, elapsed, 14), -1, -1):
                day = self.today - timedelta(days=offset)
                progress = min(1.2, pace * (day - jan1).days / 365)
                value = float(body["baseline"]) + span * progress + self.rng.gauss(0, abs(span) * 0.01)
                reports.append(functools.partial(
                    self.call, client, "progress reports", "POST",
                    self.url("targets", f"/v1/targets/{target_id}/progress"), coordinator,
                    json={"date": day.isoformat(), "value": round(value, 3)}))
        await self._gather("progress reports", reports)

    async def survey(self, client: httpx.AsyncClient, commission: str) -> None:
        districts = list(self.city.districts)
        strata = [{"id": d.id, "population": self.rng.randint(200_000, 1_500_000)} for d in districts]
        made = await self.call(client, "survey", "POST", self.url("intake", "/v1/surveys"), commission,
                               json={"year": self.today.year, "title": f"Household survey {self.today.year}",
                                     "strata": strata})
        if not made:
            return
        households = int(12_000 * self.scale)
        units = [u.id for u in self.city.units]
        lines = []
        for i in range(households):
            rated = self.rng.sample(units, k=min(len(units), self.rng.randint(8, 20)))
            answers: dict[str, int | str] = {
                u: ("unknown" if self.rng.random() < 0.05 else self._level(self.mood[u])) for u in rated}
            lines.append(_json({"respondent_id": f"hh-{i:06d}", "stratum": self.rng.choice(strata)["id"],
                                "ratings": answers}))
        progress = Progress(1, "household survey")
        await self.call(client, "survey upload", "POST", self.url("intake", f"/v1/surveys/{made['id']}/responses"),
                        commission, content="\n".join(lines).encode(),
                        headers={"Content-Type": "application/x-ndjson"})
        progress.step()
        progress.close()

    async def leaders_and_projects(self, client: httpx.AsyncClient, commission: str) -> None:
        year = self.today.year
        jobs: list[Callable[[], Awaitable[Any]]] = []
        for n in range(3):
            leader = await self._token(f"leader:{n}", role="leader", subject=f"vice-mayor-{n + 1}")
            for unit in self.city.units:
                grade = round(min(100.0, max(50.0, self.rng.gauss(60 + 35 * self.mood[unit.id], 4))), 1)
                jobs.append(functools.partial(
                    self.call, client, "leader grades", "POST", self.url("scoring", "/v1/leader-evaluations"),
                    leader, json={"unit_id": unit.id, "year": year, "grade": grade}))
        await self._gather("leader grades", jobs)

        assessors = [await self._token(f"assessor:{n}", role="assessor", subject=f"assessor-{n + 1}",
                                       unit_id=None) for n in range(4)]
        innovators = self.rng.sample(list(self.city.units), k=min(8, len(self.city.units)))
        for unit in innovators:
            project = await self.call(client, "innovation projects", "POST",
                                      self.url("scoring", "/v1/innovation-projects"), commission,
                                      json={"unit_id": unit.id, "year": year,
                                            "title": f"{unit.name}: one-stop online service"})
            if not project:
                continue
            for assessor in assessors[: self.rng.choice([2, 3, 4])]:
                await self.call(client, "assessments", "POST",
                                self.url("scoring", f"/v1/innovation-projects/{project['id']}/assessments"),
                                assessor, json={"points": round(self.rng.uniform(0.3, 1.5), 2)})


    async def notice_follow_through(self, client: httpx.AsyncClient, commission: str) -> None:
        """Run the detectors now; the planted problem's unit answers its notice with a plan."""
        progress = Progress(1, "notices")
        await self.call(client, "notice sweep", "POST", self.url("notices", "/v1/rules:evaluate"), commission,
                        json={})
        listing = await self.call(client, "notice list", "GET", self.url("notices", "/v1/notices"), commission,
                                  params={"status": "issued"})
        for notice in (listing or {}).get("items", []):
            if notice.get("rule") != "complaint-recurrence":
                continue
            unit_id = notice["unit_id"]
            coordinator = await self._token(f"coordinator:{unit_id}", role="coordinator",
                                            subject=f"coordinator-{unit_id}", unit_id=unit_id)
            base = f"/v1/notices/{notice['id']}"
            await self.call(client, "notice acknowledged", "POST", self.url("notices", base + "/acknowledge"),
                            coordinator, json={"text": "Received; the department is reviewing the complaints."})
            due = (self.today + timedelta(days=45)).isoformat()
            await self.call(client, "notice plans", "POST", self.url("notices", base + "/plan"), coordinator,
                            json={"actions": ["Open evening appointment slots at district hospitals",
                                              "Publish waiting times online every day"],
                                  "commitment": {"metric": f"complaints in {notice['subject']} per week",
                                                 "target": 3, "due": due}})
        progress.step()
        progress.close()


def _target_menu(rng: random.Random) -> list[tuple[str, str, str, float, float]]:
    menu = [
        ("Share of services handled online", "%", "increase", 62.0, 80.0),
        ("Average waiting time at the window", "minutes", "decrease", 25.0, 15.0),
        ("Complaints answered within 15 working days", "%", "increase", 85.0, 98.0),
        ("Documents required per service", "documents", "decrease", 6.0, 4.0),
        ("Citizen satisfaction in the monthly poll", "%", "increase", 88.0, 93.0),
    ]
    return rng.sample(menu, k=rng.randint(2, 4))


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


async def seed(*, registry: Registry, city: CityProfile, host: str = "127.0.0.1", days: int = 28,
               scale: float = 1.0, seed_value: int = 7, ports: dict[str, int] | None = None) -> Tally:
    demo = Demo(registry=registry, city=city, host=host, days=days, scale=scale, seed=seed_value, ports=ports)
    print("Generating demo activity through the services' APIs ...", file=sys.stderr, flush=True)
    tally = await demo.run()
    for what, n in sorted(tally.posted.items()):
        print(f"  {what}: {n} posted", file=sys.stderr)
    for what, n in sorted(tally.failed.items()):
        print(f"  {what}: {n} refused (first: {tally.first_error[what]})", file=sys.stderr)
    return tally
