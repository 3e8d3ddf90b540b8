"""Demo activity for `make run` and `yardstick demo`: a lived-in city through the real APIs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from yardstick.city import CityProfile
from yardstick.tokens import Registry

PORTS = {"intake": 8001, "targets": 8002, "scoring": 8003, "notices": 8004}
# The variables that move each service (its settings' `port`, under the service's prefix).
PORT_VARIABLES = {"intake": "YARDSTICK_INTAKE_PORT", "targets": "YARDSTICK_TARGETS_PORT",
                  "scoring": "YARDSTICK_SCORING_PORT", "notices": "YARDSTICK_NOTICES_PORT"}


def service_ports() -> dict[str, int]:
    """Where the services listen: their YARDSTICK_*_PORT, as the services read it, else 8001-8004."""
    ports = {}
    for name, variable in PORT_VARIABLES.items():
        value = os.environ.get(variable, "").strip()
        if value and not (value.isascii() and value.isdigit()):
            raise SystemExit(f"{variable}={value!r} is not a port number; set it as the services have it")
        ports[name] = int(value) if value else PORTS[name]
    return ports
# The recurring problem the demo plants, and the category whose share it makes rise this year.
PLANTED = "seeing-a-doctor"
RISING = "parking"
SOCIAL_PLATFORM = "weibo"

# Complaint sentences per category keyword: the demo writes texts the classifier must read,
# built from the profile's own keywords so any city profile works.
# What the demo may send again after a dropped connection: the service de-duplicates these.
_IDEMPOTENT = frozenset({"kiosk ratings", "citizen feedback", "social posts"})

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
    stages: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, what: str, n: int = 1) -> None:
        self.posted[what] = self.posted.get(what, 0) + n

    def fail(self, what: str, detail: str) -> None:
        self.failed[what] = self.failed.get(what, 0) + 1
        self.first_error.setdefault(what, detail[:300])


class Progress:
    """One bar for the whole demo: requests done of those planned so far, and the stage running."""

    def __init__(self, quiet: bool = False) -> None:
        self.total = 0
        self.done = 0
        self.stage = ""
        self.quiet = quiet or not sys.stderr.isatty()
        self.started = time.monotonic()
        self._last = -1

    def plan(self, n: int) -> None:
        self.total += n

    def begin(self, stage: str) -> None:
        self.stage = stage
        if self.quiet:
            print(f"  demo: {stage} ({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)
        self._draw(force=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(file=sys.stderr)
        print(f"  demo: {text} ({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)

    def step(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if self.quiet:
            return
        pct = min(100, self.done * 100 // max(1, self.total))
        if pct == self._last and not force:
            return
        self._last = pct
        bar = "#" * (pct // 4)
        elapsed = time.monotonic() - self.started
        print(f"\r  demo [{bar:<25}] {pct:3d}% {elapsed:4.0f} s  {self.stage:<40}", end="", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if not self.quiet:
            print(file=sys.stderr)


_PART_RNG: ContextVar[random.Random] = ContextVar("demo_part_rng")
Job = Callable[[], Awaitable[Any]]
Settle = Callable[[tuple[str, ...]], Awaitable[None]]


class Demo:
    def __init__(self, *, registry: Registry, city: CityProfile, host: str = "127.0.0.1",
                 days: int = 14, scale: float = 1.0, seed: int = 7, concurrency: int = 24,
                 last_year: bool = True, ports: dict[str, int] | None = None,
                 social_secret: str | None = None, settle: Settle | None = None,
                 progress: Progress | None = None) -> None:
        self.registry = registry
        self.city = city
        self.host = host
        self.days = max(1, days)
        self.scale = scale
        self.seed = seed
        self._rng = random.Random(seed)
        self.sem = asyncio.Semaphore(concurrency)
        self.ports = ports or service_ports()
        self.want_last_year = last_year
        self.social_secret = social_secret
        self._settle = settle
        self.progress = progress or Progress()
        self.tally = Tally()
        self.tokens: dict[str, str] = {}
        self.now = datetime.now(UTC)
        self.today = self.now.astimezone(city.timezone).date()
        self.year = self.today.year
        # Each unit's own quality, so rankings have something to show; it drifts a little between years.
        self.mood = {u.id: self.rng.uniform(0.55, 0.95) for u in city.units}
        self.last_mood = {u: min(0.97, max(0.45, m + self.rng.gauss(-0.03, 0.06))) for u, m in self.mood.items()}
        self.planted = PLANTED if PLANTED in city.category_ids else city.categories[0].id
        self.rising = RISING if RISING in city.category_ids and RISING != self.planted else None

    @property
    def rng(self) -> random.Random:
        """The random stream of the stage part running (each has its own: parts interleave, the city stays
        the same for a seed)."""
        return _PART_RNG.get(self._rng)

    # plumbing ---------------------------------------------------------------------------
    async def _token(self, key: str, **kw: Any) -> str:
        if key not in self.tokens:
            self.tokens[key], _ = await self.registry.issue(**kw)
        return self.tokens[key]

    async def call(self, client: httpx.AsyncClient, what: str, method: str, url: str, token: str | None,
                   **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        # Safe to send again after a connection dropped under it: reads, and writes the service
        # de-duplicates (a rating's id, feedback's client_id, a social post's platform and id).
        resend = method == "GET" or what in _IDEMPOTENT
        dropped = 0
        async with self.sem:
            for _ in range(20):
                try:
                    r = await client.request(method, url, headers=headers, **kw)
                except httpx.TransportError as exc:
                    if resend and dropped < 3 and not isinstance(exc, httpx.TimeoutException):
                        dropped += 1  # e.g. a keep-alive connection the server closed as it was reused
                        await asyncio.sleep(0.2 * dropped)
                        continue
                    self.tally.fail(what, repr(exc))
                    return None
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
                body = r.json() if r.content else None
                if isinstance(body, dict) and body.get("rejected"):  # a batch's items refused one by one
                    self.tally.fail(f"{what} (items)", json.dumps(body["rejected"][:3], ensure_ascii=False))
                return body
        self.tally.fail(what, "still rate-limited after 20 tries")
        return None

    def url(self, service: str, path: str) -> str:
        return f"http://{self.host}:{self.ports[service]}{path}"

    async def _gather(self, jobs: Sequence[Job]) -> list[Any]:
        self.progress.plan(len(jobs))

        async def run(job: Job) -> Any:
            try:
                return await job()
            finally:
                self.progress.step()

        return list(await asyncio.gather(*(run(j) for j in jobs)))

    async def _stage(self, name: str, *parts: Coroutine[Any, Any, Any]) -> None:
        """Parts that write to different services' databases run side by side; each one is timed."""
        started = time.monotonic()
        self.progress.begin(name)

        async def timed(i: int, part: Coroutine[Any, Any, Any]) -> None:
            label = f"{getattr(part, '__name__', 'part')}#{i}"
            _PART_RNG.set(random.Random(f"{self.seed}:{name}:{label}"))  # this task's context only
            await part
            self.tally.stages.append((f"{name} / {label}", time.monotonic() - started))

        await asyncio.gather(*(timed(i, p) for i, p in enumerate(parts)))
        self.tally.stages.append((name, time.monotonic() - started))

    async def settle(self, *groups: str) -> None:
        """Wait until these consumer groups (all when none) have read every event the demo caused so far."""
        if self._settle is not None:
            await self._settle(groups)

    # the city's activity ----------------------------------------------------------------
    async def run(self) -> Tally:
        # A day's commission token for the newcomer, readable by its owner only.
        commission = await self._token("commission", role="commission", subject="demo-commission", ttl_s=86_400)
        path = self.registry.settings.data_dir / "commission-token"
        path.write_text(commission + "\n")
        path.chmod(0o600)
        year, last = self.year, self.year - 1
        # An idle connection is dropped here before the server's keep-alive timeout closes it, so a
        # request is never sent on a connection the server is closing at that moment.
        expiry = max(0.5, self.registry.settings.keep_alive_s / 2)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=expiry)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            # The commission's and leaders' inputs to scoring go first, before the services are busy
            # reading the flood of ratings; then this year, so the dashboard fills while the rest loads.
            with_last = self.want_last_year and await self._last_year_open(client)
            await self._stage("leader grades and innovation projects",
                              *(self.leaders_and_projects(client, commission, y)
                                for y in ((year, last) if with_last else (year,))))
            await self._stage(f"{year}: ratings, complaints, targets", self.kiosk_ratings(client, year),
                              self.feedback(client, year), self.targets(client, commission, year))
            if with_last:
                await self._stage(f"{last}: ratings, complaints, targets", self.kiosk_ratings(client, last),
                                  self.feedback(client, last), self.targets(client, commission, last))
                await self._stage(f"{last}: a notice and its rectification", self.rectified_notice(client, commission))
            await self._stage(f"{year}: the problem recurs, its notice", self.recurrence(client, commission))
            self.progress.note("the dashboard is lived-in; the household surveys and closing the year follow")
            if with_last:
                await self._stage(f"{last}: household survey", self.survey(client, commission, last))
                await self._stage(f"{last}: published and finalized", self.close_year(client, commission, last))
            await self._stage(f"{year}: household survey", self.survey(client, commission, year))
        self.progress.close()
        return self.tally

    # calendar ---------------------------------------------------------------------------
    def _active_days(self, year: int, every_weeks: int = 1) -> list[tuple[date, bool]]:
        """The days the demo writes for a year, each with whether it is a sampled history day.

        The last `days` days are complete; before them, one Wednesday every `every_weeks` weeks
        stands for its weeks, so a year's shape (months, seasons) shows at a fraction of the requests.
        """
        first, end = date(year, 1, 1), min(date(year, 12, 31), self.today)
        recent_from = self.today - timedelta(days=self.days - 1)
        out = []
        day = first
        while day <= end:
            if day >= recent_from:
                out.append((day, False))
            elif day.weekday() == 2 and day.isocalendar().week % every_weeks == 0:
                out.append((day, True))
            day += timedelta(days=1)
        return out

    def _moment(self, day: date) -> datetime:
        """A time during opening hours on a local day, in UTC, never in the future."""
        hour = self.rng.choice([9, 9, 10, 10, 10, 11, 11, 14, 14, 15, 15, 16, 17])
        local = datetime(day.year, day.month, day.day, hour, self.rng.randint(0, 59), self.rng.randint(0, 59),
                         tzinfo=self.city.timezone)
        return min(local.astimezone(UTC), self.now - timedelta(minutes=1))

    def _level(self, mood: float) -> int:
        if self.rng.random() < mood:
            return self.rng.choice([4, 5, 5])
        return self.rng.choice([1, 2, 3, 3])

    def _moods(self, year: int) -> dict[str, float]:
        return self.mood if year == self.year else self.last_mood

    # intake -----------------------------------------------------------------------------
    async def _last_year_open(self, client: httpx.AsyncClient) -> bool:
        """Whether intake takes last year's items: `yardstick run` widens its horizon for the demo only."""
        window = self.city.windows[0]
        token = await self._token(f"kiosk:{window.id}", role="kiosk", subject=f"kiosk-{window.id}",
                                  window_id=window.id)
        probe = {"id": str(uuid.uuid4()), "window_id": window.id, "level": 5,
                 "rated_at": self._moment(date(self.year - 1, 1, 2)).isoformat()}
        out = await self.call(client, "kiosk ratings", "POST", self.url("intake", "/v1/ratings"), token,
                              json={"ratings": [probe]})
        if out and out.get("accepted"):
            return True
        self.tally.notes.append(f"intake's horizon refuses {self.year - 1}: the previous year was skipped "
                                "(`yardstick run` widens it for the demo city)")
        return False

    async def kiosk_ratings(self, client: httpx.AsyncClient, year: int) -> None:
        moods = self._moods(year)
        days = self._active_days(year, every_weeks=4)
        jobs: list[Job] = []
        for window in self.city.windows:
            token = await self._token(f"kiosk:{window.id}", role="kiosk", subject=f"kiosk-{window.id}",
                                      window_id=window.id)
            mood = moods[window.unit]
            items = []
            for day, _sampled in days:
                rate = (2.0 if day.weekday() < 5 else 0.6) * self.scale  # halls are quiet at weekends
                for _ in range(_poisson(self.rng, rate)):
                    items.append({"id": str(uuid.uuid4()), "window_id": window.id, "level": self._level(mood),
                                  "rated_at": self._moment(day).isoformat()})
            for start in range(0, len(items), 500):
                jobs.append(self._post(client, "kiosk ratings", "intake", "/v1/ratings", token,
                                       {"ratings": items[start:start + 500]}))
        await self._gather(jobs)

    def _post(self, client: httpx.AsyncClient, what: str, service: str, path: str, token: str | None,
              body: Any, **kw: Any) -> Job:
        def job() -> Awaitable[Any]:
            return self.call(client, what, "POST", self.url(service, path), token, json=body, **kw)
        return job

    def _text(self, category_id: str) -> str:
        category = self.city.category(category_id)
        zh = [k for k in category.keywords if not k.isascii()]
        en = [k for k in category.keywords if k.isascii()]
        if zh and (not en or self.rng.random() < 0.7):
            return self.rng.choice(_ZH_TEMPLATES).format(kw=self.rng.choice(zh))
        return self.rng.choice(_EN_TEMPLATES).format(kw=self.rng.choice(en))

    def _complaint_rate(self, category_id: str, day: date) -> float:
        """Complaints a day in a category: seasons, the week, and the stories the demo tells."""
        doy = day.timetuple().tm_yday
        rate = 0.2
        if category_id in ("flood-drainage", "river-quality"):  # the plum rains of June and July
            rate *= 1 + 1.5 * math.exp(-(((doy - 180) / 30) ** 2))
        elif category_id in ("air-pollution",):  # winter haze
            rate *= 1 + 0.8 * math.cos(2 * math.pi * doy / 365)
        if day.weekday() >= 5:
            rate *= 0.6
        elif day.weekday() == 0:
            rate *= 1.3
        fix = self._last_year_fix()
        if category_id == self.planted and day.year < self.year:
            # Last year, seeing a doctor was the city's worst complaint until its rectification in spring:
            # a bad winter, a spike in the week before the notice, then back to an ordinary level.
            rate *= 16.0 if fix - timedelta(days=7) <= day < fix else 4.0 if day < fix else 1.5
        if category_id == self.rising and day.year == self.year:
            rate *= 3.0  # this year's priority area
        rate *= self.scale
        if category_id == self.planted and day.year < self.year and fix - timedelta(days=7) <= day < fix:
            rate = max(rate, 1.5)  # the week that fires the notice, whatever the scale
        return rate

    def _last_year_fix(self) -> date:
        return date(self.year - 1, 5, 15)

    async def _citizen(self, n: int) -> str:
        # Many citizens, each with their own rate limit: a complaint every few seconds per person.
        i = n % 24
        return await self._token(f"citizen:{i}", role="citizen", subject=f"demo-app-{i}")

    async def _complaint_jobs(self, client: httpx.AsyncClient, category_id: str, day: date, count: int,
                              start: int) -> list[Job]:
        jobs = []
        for k in range(count):
            moment = self._moment(day)
            text = self._text(category_id)
            level = self.rng.choice([1, 1, 2, 2, 3])
            channel = self.rng.choice(["web", "mobile", "mobile", "social"] if self.social_secret
                                      else ["web", "mobile", "mobile"])
            if channel == "social":
                jobs.append(self._social(client, text, moment))
                continue
            body: dict[str, Any] = {"channel": channel, "text": text, "level": level,
                                    "submitted_at": moment.isoformat(), "client_id": str(uuid.uuid4())}
            if channel == "mobile":
                body["category_id"] = category_id  # the app has a category picker; the web form has a text box
            jobs.append(self._post(client, "citizen feedback", "intake", "/v1/feedback",
                                   await self._citizen(start + k), body))
        return jobs

    def _social(self, client: httpx.AsyncClient, text: str, moment: datetime) -> Job:
        assert self.social_secret is not None
        body = json.dumps({"platform": SOCIAL_PLATFORM, "post_id": uuid.uuid4().hex, "text": text,
                           "posted_at": moment.isoformat()}, ensure_ascii=False).encode()
        signature = hmac.new(self.social_secret.encode(), body, hashlib.sha256).hexdigest()

        def job() -> Awaitable[Any]:
            return self.call(client, "social posts", "POST", self.url("intake", "/v1/social/items"), None,
                             content=body, headers={"Content-Type": "application/json",
                                                    "X-Signature": f"sha256={signature}"})
        return job

    async def feedback(self, client: httpx.AsyncClient, year: int) -> None:
        jobs: list[Job] = []
        days = self._active_days(year)
        if year < self.year:
            # Around last year's notice every day is written, so the detector sees its window and baseline.
            fix = self._last_year_fix()
            full = {fix - timedelta(days=d) for d in range(36)}  # the window (7) and baseline (28) before it
            days = sorted({*days, *((d, False) for d in full)})
        for day, _sampled in days:
            for category in self.city.categories:
                count = _poisson(self.rng, self._complaint_rate(category.id, day))
                jobs += await self._complaint_jobs(client, category.id, day, count, len(jobs))
        await self._gather(jobs)

    async def recurrence(self, client: httpx.AsyncClient, commission: str) -> None:
        """The planted recurring problem: seeing a doctor is hard again over the last week; its notice."""
        jobs: list[Job] = []
        for offset in range(7):  # the detector's window, whatever --days and --scale are
            jobs += await self._complaint_jobs(client, self.planted, self.today - timedelta(days=offset),
                                               _poisson(self.rng, max(1.0, 2.0 * self.scale)) + 1, offset)
        await self._gather(jobs)
        await self.notice_follow_through(client, commission)

    async def survey(self, client: httpx.AsyncClient, commission: str, year: int) -> None:
        """The household survey, uploaded as one NDJSON stream (the rows are made as they are sent)."""
        moods = self._moods(year)
        strata = [{"id": d.id, "population": self.rng.randint(200_000, 1_500_000)} for d in self.city.districts]
        made = await self.call(client, "survey", "POST", self.url("intake", "/v1/surveys"), commission,
                               json={"year": year, "title": f"Household survey {year}", "strata": strata})
        if not made:
            return
        households = int(12_000 * self.scale)
        units = [u.id for u in self.city.units]
        rng = random.Random(self.rng.random())
        self.progress.plan(households // 500)

        async def rows() -> AsyncIterator[bytes]:
            for i in range(households):
                # A household answers for the offices it dealt with this year: a handful, not all.
                rated = rng.sample(units, k=min(len(units), rng.randint(3, 8)))
                answers: dict[str, int | str] = {
                    u: ("unknown" if rng.random() < 0.05 else _level(rng, moods[u])) for u in rated}
                line = json.dumps({"respondent_id": f"hh-{year}-{i:06d}", "stratum": rng.choice(strata)["id"],
                                   "ratings": answers}, ensure_ascii=False)
                yield (line + "\n").encode()
                if i % 500 == 499:
                    self.progress.step()
                    await asyncio.sleep(0)

        await self.call(client, "survey upload", "POST", self.url("intake", f"/v1/surveys/{made['id']}/responses"),
                        commission, content=rows(), headers={"Content-Type": "application/x-ndjson"})

    # targets ----------------------------------------------------------------------------
    async def targets(self, client: httpx.AsyncClient, commission: str, year: int) -> None:
        """The year's targets in one CSV import, then a few progress reports each (daily cadence)."""
        moods = self._moods(year)
        jan1 = date(year, 1, 1)
        rows: list[tuple[str, dict[str, Any]]] = []
        for unit in self.city.units:
            for i, (title, measure, direction, baseline, target) in enumerate(_target_menu(self.rng)):
                rows.append((unit.id, {"unit_id": unit.id, "code": f"T{i + 1:02d}", "title": title,
                                       "unit_of_measure": measure, "direction": direction, "kind": "numeric",
                                       "baseline": baseline, "target": target, "weight": self.rng.choice([1, 1, 2]),
                                       "cadence": "daily", "public_commitment": "true" if i == 0 else "false"}))
        columns = list(rows[0][1])
        lines = [",".join(columns)] + [",".join(str(body[c]) for c in columns) for _u, body in rows]
        self.progress.plan(1)
        made = await self.call(client, "targets", "POST", self.url("targets", f"/v1/targets:import?year={year}"),
                               commission, content=("\n".join(lines) + "\n").encode(),
                               headers={"Content-Type": "text/csv"})
        self.progress.step()
        if not made:
            return
        # Reports spread over the year: enough for a trajectory and a projection, not one a day.
        end = min(self.today, date(year, 12, 31))
        elapsed = (end - jan1).days
        if year < self.year:
            report_days = [date(year, 12, 31)]  # the year-end figure is the year's result
        else:
            report_days = sorted({jan1 + timedelta(days=elapsed // 2), end})
        # A unit's reports of the year in one request (target-tracker's progress:batch, by its coordinator).
        by_unit: dict[str, list[dict[str, Any]]] = {}
        for target_id, (unit_id, body) in zip(made["ids"], rows, strict=True):
            pace = 0.6 + 0.6 * moods[unit_id]  # units with a poor mood fall behind their trajectory
            span = float(body["target"]) - float(body["baseline"])
            for day in report_days:
                done = min(1.2, pace * (day - jan1).days / 365)
                value = float(body["baseline"]) + span * done + self.rng.gauss(0, abs(span) * 0.01)
                by_unit.setdefault(unit_id, []).append({"target_id": target_id, "date": day.isoformat(),
                                                        "value": round(value, 3)})
        reports: list[Job] = []
        for unit_id, items in by_unit.items():
            coordinator = await self._coordinator(unit_id)
            reports.append(self._post(client, "progress reports", "targets", f"/v1/units/{unit_id}/progress:batch",
                                      coordinator, {"reports": items}))
        await self._gather(reports)

    # scoring inputs ---------------------------------------------------------------------
    async def leaders_and_projects(self, client: httpx.AsyncClient, commission: str, year: int) -> None:
        moods = self._moods(year)
        jobs: list[Job] = []
        # Each unit is graded by the vice-mayor whose portfolio it is in (four portfolios).
        for i, unit in enumerate(self.city.units):
            leader = await self._token(f"leader:{i % 4}", role="leader", subject=f"vice-mayor-{i % 4 + 1}")
            grade = round(min(100.0, max(50.0, self.rng.gauss(60 + 35 * moods[unit.id], 4))), 1)
            jobs.append(self._post(client, "leader grades", "scoring", "/v1/leader-evaluations", leader,
                                   {"unit_id": unit.id, "year": year, "grade": grade}))
        assessors = [await self._token(f"assessor:{n}", role="assessor", subject=f"assessor-{n + 1}")
                     for n in range(3)]
        innovators = self.rng.sample(list(self.city.units), k=min(6, len(self.city.units)))
        grades = asyncio.ensure_future(self._gather(jobs))

        async def project(unit_id: str, name: str, n_assessors: int, points: list[float]) -> None:
            made = await self.call(client, "innovation projects", "POST",
                                   self.url("scoring", "/v1/innovation-projects"), commission,
                                   json={"unit_id": unit_id, "year": year, "title": f"{name}: one-stop online service"})
            if made:
                await asyncio.gather(*(self.call(
                    client, "assessments", "POST",
                    self.url("scoring", f"/v1/innovation-projects/{made['id']}/assessments"), assessor,
                    json={"points": p}) for assessor, p in zip(assessors[:n_assessors], points, strict=False)))

        # Three assessors each: the method's min_assessors, below which a project earns no bonus.
        projects = [(u.id, u.name, 3, [round(self.rng.uniform(0.3, 1.5), 2) for _ in range(3)]) for u in innovators]
        await self._gather([lambda p=p: project(*p) for p in projects])  # type: ignore[misc]
        await grades

    async def close_year(self, client: httpx.AsyncClient, commission: str, year: int) -> None:
        """Publish last year's draft and finalize it at once (forced: the objection period is the demo's minute)."""
        self.progress.plan(2)
        await self.settle()  # every item of the year is in scoring's figures before they are frozen
        base = f"/v1/scorecards/{year}"
        published = await self.call(client, "year closed", "POST", self.url("scoring", f"{base}:publish-draft"),
                                    commission, json={})
        self.progress.step()
        if published is not None:
            await self.call(client, "year closed", "POST", self.url("scoring", f"{base}:finalize"), commission,
                            json={"force": True})
        self.progress.step()

    # notices ----------------------------------------------------------------------------
    async def _coordinator(self, unit_id: str) -> str:
        return await self._token(f"coordinator:{unit_id}", role="coordinator", subject=f"coordinator-{unit_id}",
                                 unit_id=unit_id)

    async def _evaluate(self, client: httpx.AsyncClient, commission: str, day: date | None) -> list[dict[str, Any]]:
        """Run the detectors (a past day, or the sweep now) until the planted cell's notice shows, briefly."""
        body = {"day": day.isoformat()} if day else {}
        unit = self.city.category(self.planted).unit
        for _ in range(20):
            await self.call(client, "notice sweeps", "POST", self.url("notices", "/v1/rules:evaluate"), commission,
                            json=body)
            listing = await self.call(client, "notice lists", "GET", self.url("notices", "/v1/notices"), commission,
                                      params={"unit_id": unit})
            found = [n for n in (listing or {}).get("items", [])
                     if n.get("subject") == self.planted and n.get("status") != "verified"]
            if found:
                return found
            await asyncio.sleep(0.5)  # the notices service is still reading the complaints
        self.tally.notes.append(f"no notice on {self.planted} after evaluating {day or 'today'}")
        return []

    async def rectified_notice(self, client: httpx.AsyncClient, commission: str) -> None:
        """Last spring's notice: evaluated on its day, answered with a plan, resolved and verified."""
        self.progress.plan(5)
        await self.settle("notices")
        found = await self._evaluate(client, commission, self._last_year_fix() - timedelta(days=1))
        due = (self.today + timedelta(days=30)).isoformat()
        self.progress.step()
        for notice in found:
            if notice.get("status") != "issued":
                continue
            coordinator = await self._coordinator(notice["unit_id"])
            base = f"/v1/notices/{notice['id']}"
            steps: list[tuple[str, str, dict[str, Any], str]] = [
                ("acknowledge", coordinator, {"text": "Received; the health commission is reviewing the complaints."},
                 "notice steps"),
                ("plan", coordinator, {"actions": ["Open evening appointment slots at district hospitals",
                                                   "Publish waiting times online every day"],
                                       "commitment": {"metric": "complaints about seeing a doctor per week",
                                                      "target": 2, "due": due}},
                 "notice steps"),
                ("resolve", coordinator, {"text": "Evening slots open in all district hospitals since May."},
                 "notice steps"),
                ("verify", commission, {}, "notice steps")]
            for action, token, body, what in steps:
                await self.call(client, what, "POST", self.url("notices", f"{base}/{action}"), token, json=body)
                self.progress.step()

    async def notice_follow_through(self, client: httpx.AsyncClient, commission: str) -> None:
        """Today's sweep finds the recurrence; its unit acknowledges and answers with a plan."""
        self.progress.plan(3)
        await self.settle("notices")
        found = await self._evaluate(client, commission, None)
        self.progress.step()
        for notice in found:
            if notice.get("status") != "issued":
                continue
            coordinator = await self._coordinator(notice["unit_id"])
            base = f"/v1/notices/{notice['id']}"
            await self.call(client, "notice steps", "POST", self.url("notices", base + "/acknowledge"),
                            coordinator, json={"text": "Received; the department is reviewing the complaints."})
            self.progress.step()
            due = (self.today + timedelta(days=45)).isoformat()
            await self.call(client, "notice steps", "POST", self.url("notices", base + "/plan"), coordinator,
                            json={"actions": ["Extend the evening slots to weekends",
                                              "Add online booking for specialist clinics"],
                                  "commitment": {"metric": f"complaints in {notice['subject']} per week",
                                                 "target": 3, "due": due}})
            self.progress.step()


def _target_menu(rng: random.Random) -> list[tuple[str, str, str, float, float]]:
    menu = [
        ("Share of services handled online", "%", "increase", 62.0, 80.0),
        ("Average waiting time at the window", "minutes", "decrease", 25.0, 15.0),
        ("Complaints answered within 15 working days", "%", "increase", 85.0, 98.0),
        ("Documents required per service", "documents", "decrease", 6.0, 4.0),
        ("Citizen satisfaction in the monthly poll", "%", "increase", 88.0, 93.0),
    ]
    return rng.sample(menu, k=rng.randint(1, 3))


def _level(rng: random.Random, mood: float) -> int:
    if rng.random() < mood:
        return rng.choice([4, 5, 5])
    return rng.choice([1, 2, 3, 3])


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


async def seed(*, registry: Registry, city: CityProfile, host: str = "127.0.0.1", days: int = 14,
               scale: float = 1.0, seed_value: int = 7, ports: dict[str, int] | None = None,
               last_year: bool = True, social_secret: str | None = None, settle: Settle | None = None) -> Tally:
    demo = Demo(registry=registry, city=city, host=host, days=days, scale=scale, seed=seed_value, ports=ports,
                last_year=last_year, social_secret=social_secret, settle=settle)
    print("Generating demo activity through the services' APIs (the pages work meanwhile) ...",
          file=sys.stderr, flush=True)
    tally = await demo.run()
    for name, seconds in tally.stages:
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr)
    for what, n in sorted(tally.posted.items()):
        print(f"  {what}: {n} posted", file=sys.stderr)
    for what, n in sorted(tally.failed.items()):
        print(f"  {what}: {n} refused (first: {tally.first_error[what]})", file=sys.stderr)
    for note in tally.notes:
        print(f"  note: {note}", file=sys.stderr)
    return tally


# --- the demo as a child of `yardstick run` ---------------------------------------------------
# The demo's HTTP client costs about a quarter of the loop it runs on; in its own process it uses
# the machine's other core while the services answer. It asks its parent to wait for the bus to
# settle through its stdin/stdout ("settle <groups>" -> "ok"); its progress goes to stderr.


async def _child(data_dir: Path, city_path: Path, host: str, days: int, scale: float, seed_value: int) -> int:
    from yardstick.city import load_city
    from yardstick.settings import AuthSettings

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def settle(groups: tuple[str, ...]) -> None:
        sys.stdout.write(f"settle {','.join(groups)}\n")
        sys.stdout.flush()
        if (await reader.readline()).strip() != b"ok":
            raise RuntimeError("yardstick run stopped answering")

    registry = Registry(AuthSettings(data_dir=data_dir, city=city_path))
    await registry.prepare()
    try:
        tally = await seed(registry=registry, city=load_city(city_path), host=host, days=days, scale=scale,
                           seed_value=seed_value, social_secret=os.environ.get(SOCIAL_SECRET_ENV) or None,
                           settle=settle)
    finally:
        await registry.close()
    return 0 if tally.posted else 1


SOCIAL_SECRET_ENV = "YARDSTICK_DEMO_SOCIAL_SECRET"


def child_command(*, data_dir: Path, city_path: Path, host: str, days: int, scale: float,
                  seed_value: int) -> list[str]:
    return [sys.executable, "-m", "yardstick.demo", str(data_dir), str(city_path), host, str(days), str(scale),
            str(seed_value)]


if __name__ == "__main__":
    data, city_file, host_arg, days_arg, scale_arg, seed_arg = sys.argv[1:7]
    try:
        sys.exit(asyncio.run(_child(Path(data), Path(city_file), host_arg, int(days_arg), float(scale_arg),
                                    int(seed_arg))))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: yardstick run says goodbye
        sys.exit(130)
