"""The pages in headless Chromium: sign-in, ranking order, charts, live updates, no contact data, phone layout."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from yardstick import events
from yardstick.auth import issue
from yardstick.bus.codec import encode
from yardstick.bus.memory import MemoryBus
from yardstick.city import default_city_path, load_city
from yardstick.events import Envelope
from yardstick.runner import _Server, _server
from yardstick.services import SERVICES

CHROMIUM = "/usr/bin/chromium"
SECRET = "browser-secret-0123456789abcdef0123456789abcdef"
UNIT = "health-commission"
PHONE = "13987654321"
EMAIL = "li.si@example.cn"
COMPLAINT = "在医院挂号排了四个小时"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The four services on one MemoryBus and uvicorn servers, in a thread with its own event loop."""

    def __init__(self, data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.data_dir = data_dir
        self.overrides = overrides or {}
        self.city = load_city(default_city_path())
        self.ports = {name: free_port() for name in SERVICES}
        self.loop = asyncio.new_event_loop()
        self.bus = MemoryBus(retry_s=0.02)
        self.servers: list[_Server] = []
        self.apps: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from scoring.pages.settings import PagesSettings

        for name, spec in SERVICES.items():
            settings = spec.settings(data_dir=self.data_dir, bus="memory", auth_secret=SECRET, database_url="",
                                     port=self.ports[name], **self.overrides.get(name, {}))
            app = self.apps[name] = spec.create_app(settings, bus=self.bus, city=self.city)
            if name == "scoring":
                app.state.pages_settings = PagesSettings(intake_url=self.url("feedback-intake"), poll_s=0.5)
            # The servers `make run` starts (its keep-alive and head timeouts): the demo's client
            # drops idle connections by the server's keep-alive, uvicorn's default (5 s) raced it.
            self.servers.append(_server(app, settings))
        await self.bus.start()
        try:
            await asyncio.gather(*(s.serve() for s in self.servers))
        finally:
            await self.bus.stop()

    def start(self) -> None:
        self.thread.start()
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while not (len(self.servers) == len(SERVICES) and all(s.started for s in self.servers)):
            assert datetime.now(UTC) < deadline, "services did not start"
            threading.Event().wait(0.1)

    def stop(self) -> None:
        for s in self.servers:
            s.should_exit = True
        self.thread.join(timeout=30)

    def publish(self, *items: events.Event, key: str = UNIT) -> None:
        envelopes = [encode(Envelope.of(d, source="test", key=key)) for d in items]
        asyncio.run_coroutine_threadsafe(self.bus.publish(envelopes), self.loop).result(timeout=10)

    async def _unsettled(self) -> bool:
        """Events still in a service's outbox or unread by a consumer, or scorecards not yet recomputed."""
        from scoring import service

        # In this order: what was published before the lag is read has been applied once the lag is 0.
        for app in self.apps.values():
            if await app.state.runtime.relay.pending():
                return True
        if any(self.bus.lag(group) for group in ("scoring", "notices")):
            return True
        return bool(await service.behind(self.apps["scoring"].state.runtime))

    def settled(self) -> None:
        """Every event the services committed published and applied, and scoring's stored scorecards
        recomputed from them: the pages and the API then read the same scorecards (under a second later)."""
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while True:
            if not asyncio.run_coroutine_threadsafe(self._unsettled(), self.loop).result(timeout=10):
                return
            assert datetime.now(UTC) < deadline, "consumers did not catch up, or scorecards were not recomputed"
            threading.Event().wait(0.05)


def token(role: str, **scope: Any) -> str:
    signed, _claims = issue(SECRET, role=role, **scope)
    return signed


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("browser-data"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots go to $YARDSTICK_TEST_ARTIFACTS when set (CI uploads it), else pytest's tmp dir."""
    chosen = os.environ.get("YARDSTICK_TEST_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the test setup installs Debian's chromium package")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def rate(stack: Stack, levels: list[int], unit_id: str = UNIT) -> None:
    window = stack.city.windows_of(unit_id)[0].id
    now = datetime.now(UTC) - timedelta(seconds=5)
    with httpx.Client(base_url=stack.url("feedback-intake")) as client:
        for i, level in enumerate(levels):
            kiosk = token("kiosk", window_id=window, subject=f"kiosk-{uuid.uuid4().hex[:8]}")
            body = {"ratings": [{"id": str(uuid.uuid4()), "window_id": window, "level": level,
                                 "rated_at": (now - timedelta(seconds=i)).isoformat()}]}
            r = client.post("/v1/ratings", json=body, headers={"Authorization": f"Bearer {kiosk}"})
            assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> dict[str, Any]:
    """Ratings for several units, complaints with contact data, a target, a notice, and a finalized last year."""
    year = datetime.now(UTC).astimezone(stack.city.timezone).year
    for unit in stack.city.units[:6]:
        rate(stack, [5, 4, 3][: 1 + len(unit.id) % 3], unit.id)
    codes = []
    with httpx.Client(base_url=stack.url("feedback-intake")) as client:
        for level in (1, 2, None):
            body: dict[str, Any] = {"channel": "web", "unit_id": UNIT, "category_id": "seeing-a-doctor",
                                    "text": COMPLAINT, "contact": {"phone": PHONE, "email": EMAIL}}
            if level is not None:
                body["level"] = level
            r = client.post("/v1/feedback", json=body,
                            headers={"Authorization": f"Bearer {token('citizen', subject='c')}"})
            assert r.status_code == 201, r.text
            codes.append(r.json()["tracking_code"])
    last_year = datetime(year - 1, 6, 15, 3, tzinfo=UTC)
    stack.publish(*(events.FeedbackReceived(feedback_id=f"old-{i}", unit_id=UNIT, channel="mobile",
                                            occurred_at=last_year, year=year - 1, level=1 + i % 5,
                                            category_id="seeing-a-doctor" if i % 2 else None)
                    for i in range(10)))
    today = datetime.now(UTC).astimezone(stack.city.timezone).date()
    stack.publish(
        events.TargetDefined(target_id="t-browser", unit_id=UNIT, year=year, code="beds", title="More beds",
                             kind="numeric", direction="increase", baseline=0.0, target=100.0, weight=1.0,
                             cadence="daily", approved=True),
        *(events.TargetProgress(target_id="t-browser", unit_id=UNIT, year=year, date=today - timedelta(days=d),
                                value=40.0 - d, attainment=0.4, status="at_risk",
                                projection=events.Projection(value=80.0, low=65.0, high=95.0))
          for d in (6, 4, 2, 0)),
        events.NoticeIssued(notice_id="n-browser", unit_id=UNIT, rule="complaint-recurrence",
                            subject="seeing-a-doctor", severity="normal",
                            issued_at=datetime.now(UTC) - timedelta(days=2), year=year,
                            evidence={"window_count": 6, "baseline_count": 0}))
    stack.settled()
    commission = token("commission", subject="browser-test")
    r = httpx.post(f"{stack.url('scoring')}/v1/scorecards/{year - 1}:finalize", json={"force": True},
                   headers={"Authorization": f"Bearer {commission}"})
    assert r.status_code == 200, r.text
    return {"year": year, "codes": codes, "commission": commission}


def sign_in(page: Any, stack: Stack, tok: str) -> None:
    page.goto(f"{stack.url('scoring')}/dashboard/sign-in?lang=en")
    page.get_by_label("Access token").fill(tok)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/dashboard(\?.*)?$|.*/dashboard/units/.*"))


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A fresh context that refuses (and records) every request leaving the machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    opened = context.new_page()
    opened.outside = outside
    yield opened
    context.close()
    assert outside == [], f"pages reached for the internet: {outside}"


def test_the_dashboard_ranks_every_unit_of_a_group(page: Any, stack: Stack, seeded: dict[str, Any],
                                                    artifacts: Path) -> None:
    sign_in(page, stack, seeded["commission"])
    year = seeded["year"]
    page.goto(f"{stack.url('scoring')}/dashboard?year={year}")
    for group in stack.city.groups:
        api = httpx.get(f"{stack.url('scoring')}/v1/scorecards", params={"year": year, "group": group.id},
                        headers={"Authorization": f"Bearer {seeded['commission']}"}).json()
        rows = page.locator(f'table[data-group="{group.id}"] tbody tr')
        shown = [rows.nth(i).get_attribute("data-unit") for i in range(rows.count())]
        assert shown == [r["unit_id"] for r in api["rows"]]
        assert set(shown) == {u.id for u in stack.city.units_in_group(group.id)}
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)


def test_a_unit_page_draws_its_charts_and_takes_a_new_rating_live(page: Any, stack: Stack,
                                                                  seeded: dict[str, Any], artifacts: Path) -> None:
    sign_in(page, stack, seeded["commission"])
    page.goto(f"{stack.url('scoring')}/dashboard/units/{UNIT}?year={seeded['year']}&lang=en")
    charts = page.locator("svg.chart")
    assert charts.count() >= 2
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
        assert charts.nth(i).get_attribute("aria-label")
    assert page.locator("svg.chart polygon.band").count() == 1
    assert page.locator("svg.chart .series").count() >= 2  # a line per channel (a dot for one week)
    page.screenshot(path=str(artifacts / "unit.png"), full_page=True)

    before = kiosk_ratings_shown(page)
    rate_and_wait_for_the_live_refresh(page, stack, before)
    assert int(kiosk_ratings_shown(page)) == int(before) + 1


def kiosk_ratings_shown(page: Any) -> str:
    """The unit page's count of kiosk ratings, as shown."""
    return str(page.locator("table.channels tr", has_text="Service-window kiosks").locator("td").first.inner_text())


def rate_and_wait_for_the_live_refresh(page: Any, stack: Stack, before: str) -> None:
    """Post a kiosk rating and wait until the page shows another count than `before`, by its live refresh
    (swapping <main>), not by a reload."""
    page.evaluate("window.__notReloaded = true")
    rate(stack, [5])
    page.wait_for_function("([sel, old]) => { const r = [...document.querySelectorAll(sel)].find("
                           "t => t.textContent.includes('Service-window kiosks'));"
                           " return r && r.querySelector('td').textContent.trim() !== old; }",
                           arg=["table.channels tr", before], timeout=20000)
    assert page.evaluate("window.__notReloaded") is True


def test_public_pages_and_report_show_no_contact_data(page: Any, stack: Stack, seeded: dict[str, Any],
                                                      artifacts: Path) -> None:
    year = seeded["year"]
    base = stack.url("scoring")
    seen = []
    for lang in ("zh", "en"):
        page.goto(f"{base}/public?year={year - 1}&lang={lang}")
        seen.append(page.content())
        page.goto(f"{base}/v1/reports/annual/{year - 1}?lang={lang}")
        seen.append(page.content())
    page.goto(f"{base}/public?year={year - 1}")
    assert page.locator("html").get_attribute("lang") == "en"  # the last switch (English) is remembered
    page.screenshot(path=str(artifacts / "public.png"), full_page=True)
    sign_in(page, stack, seeded["commission"])
    page.goto(f"{base}/v1/reports/annual/{year}?lang=en")
    seen.append(page.content())
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    page.emulate_media(media="print")
    page.screenshot(path=str(artifacts / "report-print.png"), full_page=True)
    for html in seen:
        for secret in (PHONE, EMAIL, "example.cn", COMPLAINT, *seeded["codes"]):
            assert secret not in html


def test_the_reports_figures_equal_the_apis(page: Any, stack: Stack, seeded: dict[str, Any]) -> None:
    year = seeded["year"]
    bearer = {"Authorization": f"Bearer {seeded['commission']}"}
    report = httpx.get(f"{stack.url('scoring')}/v1/reports/annual/{year - 1}",
                       headers={"accept": "application/json"}).json()
    page.goto(f"{stack.url('scoring')}/v1/reports/annual/{year - 1}?lang=en")
    total = page.locator("table.volume tr", has_text="All").locator("td[data-total]")
    assert int(total.get_attribute("data-total")) == report["volume"]["total"] == 10
    final = httpx.get(f"{stack.url('scoring')}/v1/public/scorecards", params={"year": year - 1}).json()
    for card in final["scorecards"]:
        row = page.locator(f'table.satisfaction tr[data-unit="{card["unit_id"]}"]')
        shown = row.get_attribute("data-s")
        assert (float(shown) if shown else None) == card["public"]["S"]
    live = httpx.get(f"{stack.url('scoring')}/v1/scorecards/{UNIT}", params={"year": year}, headers=bearer).json()
    this_year = httpx.get(f"{stack.url('scoring')}/v1/reports/annual/{year}",
                          headers={**bearer, "accept": "application/json"}).json()
    assert next(s for s in this_year["satisfaction"] if s["unit_id"] == UNIT)["S"] == live["public"]["S"]
    doctor = next(c for c in this_year["categories"] if c["category_id"] == "seeing-a-doctor")
    assert doctor["negative"] == 3 and doctor["previous_negative"] == 2
    # Year on year: last year's satisfaction per unit is its final scorecard's (none when nobody rated it).
    sign_in(page, stack, seeded["commission"])
    page.goto(f"{stack.url('scoring')}/v1/reports/annual/{year}?lang=en")
    compared = 0
    for card in final["scorecards"]:
        rated = any(ch.get("n", 0) for ch in card["public"]["channels"].values())
        expected = card["public"]["S"] if rated else None
        row = next(s for s in this_year["satisfaction"] if s["unit_id"] == card["unit_id"])
        assert row["previous_S"] == expected
        shown = page.locator(f'table.satisfaction tr[data-unit="{card["unit_id"]}"]').get_attribute("data-previous-s")
        assert (float(shown) if shown else None) == expected
        compared += expected is not None
    assert compared >= 1 and this_year["previous_status"] == "final"
    # Each category's share this year against last, as the table shows it.
    shares = page.locator("table.categories tr[data-category]")
    assert shares.count() == len(this_year["categories"])
    assert page.locator('table.categories tr[data-category="seeing-a-doctor"]').get_attribute("data-negative") == "3"


def test_pages_work_on_a_phone_and_from_the_keyboard(browser: Any, stack: Stack, seeded: dict[str, Any],
                                                     artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{stack.url('scoring')}/public?year={seeded['year'] - 1}&lang=en")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    for field in page.locator("input, select").all():
        field_id = field.get_attribute("id")
        assert field_id and page.locator(f'label[for="{field_id}"]').count() == 1
    page.get_by_label("Tracking code").fill(seeded["codes"][0])
    with page.expect_navigation():
        page.get_by_role("button", name="Look up").click()
    assert page.url.startswith(stack.url("feedback-intake")) and seeded["codes"][0] in page.url
    assert '"status"' in page.content()
    page.goto(f"{stack.url('scoring')}/public?year={seeded['year'] - 1}&lang=zh")
    page.screenshot(path=str(artifacts / "public-phone.png"), full_page=True)
    context.close()


# --- accessibility: contrast, labels, keyboard ----------------------------------------------

# Every visible text node's colour and the background it is drawn on, from the computed styles.
TEXT_STYLES_JS = """
() => {
  const rgba = (s) => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const layers = (el) => { const out = []; for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor); if (c && c[3] > 0) out.push(c); } return out; };
  const out = []; const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim(); const el = n.parentElement;
    if (!text || !el || seen.has(el) || el.closest('script,style,title')) continue;
    seen.add(el);
    const s = getComputedStyle(el); const r = el.getBoundingClientRect();
    if (s.visibility !== 'visible' || s.display === 'none' || r.width === 0 || r.height === 0 || r.right < 0
        || r.bottom < 0 || el.closest('details:not([open]) > :not(summary)')) continue;
    const inSvg = el.closest('svg') !== null;
    out.push({text: text.slice(0, 40), tag: el.tagName, color: rgba(inSvg ? s.fill : s.color),
              opacity: Number(s.opacity), layers: layers(el), size: parseFloat(s.fontSize),
              weight: Number(s.fontWeight) || 400});
  }
  return out;
}
"""


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _over(top: list[float], bottom: tuple[float, float, float]) -> tuple[float, float, float]:
    a = top[3]
    return (top[0] * a + bottom[0] * (1 - a), top[1] * a + bottom[1] * (1 - a), top[2] * a + bottom[2] * (1 - a))


def contrast_failures(page: Any) -> list[str]:
    """WCAG 2.1 contrast (1.4.3): 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold)."""
    failures = []
    for item in page.evaluate(TEXT_STYLES_JS):
        background: tuple[float, float, float] = (255.0, 255.0, 255.0)  # the canvas under every layer
        for layer in reversed(item["layers"]):
            background = _over(layer, background)
        color = item["color"]
        assert color is not None, f"no colour computed for {item}"
        foreground = _over([color[0], color[1], color[2], color[3] * item["opacity"]], background)
        lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
        ratio = (lighter + 0.05) / (darker + 0.05)
        large = item["size"] >= 24 or (item["size"] >= 18.66 and item["weight"] >= 700)
        if ratio < (3.0 if large else 4.5):
            failures.append(f"{item['tag']} {item['text']!r}: {ratio:.2f}:1")
    return failures


def unlabelled_fields(page: Any) -> list[str]:
    return list(page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter(f => !(f.labels && f.labels.length) && !f.getAttribute('aria-label')
                   && !f.getAttribute('aria-labelledby'))
      .map(f => f.outerHTML.slice(0, 80))"""))


def test_every_page_has_readable_contrast_and_labelled_fields(page: Any, stack: Stack, seeded: dict[str, Any],
                                                              artifacts: Path) -> None:
    base = stack.url("scoring")
    year = seeded["year"]
    public = [f"/public?year={year - 1}", f"/public/units/{UNIT}", f"/v1/reports/annual/{year - 1}",
              "/dashboard/sign-in"]
    signed = [f"/dashboard?year={year}", f"/dashboard/units/{UNIT}?year={year}", "/dashboard/notices",
              f"/v1/reports/annual/{year}"]
    checked = 0
    for lang in ("en", "zh"):
        for path in public:
            page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
            assert contrast_failures(page) == [], path
            assert unlabelled_fields(page) == [], path
            checked += 1
    sign_in(page, stack, seeded["commission"])
    for path in signed:
        page.goto(f"{base}{path}")
        assert contrast_failures(page) == [], path
        assert unlabelled_fields(page) == [], path
        checked += 1
    assert checked == 2 * len(public) + len(signed)
    # The check itself can fail: grey on white at 2:1 is caught.
    page.evaluate("document.querySelector('h1').style.color = '#aaaaaa'")
    assert any("H1" in f for f in contrast_failures(page))


def _tab_until(page: Any, found: str, limit: int = 60) -> dict[str, Any]:
    """Press Tab until the focused element matches `found` (a CSS selector); what was focused then."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(sel) => document.activeElement && document.activeElement.matches(sel)", found):
            return dict(page.evaluate("""() => { const e = document.activeElement; const s = getComputedStyle(e);
                return {tag: e.tagName, text: e.textContent.trim(), outline: s.outlineStyle,
                        width: parseFloat(s.outlineWidth)}; }"""))
    raise AssertionError(f"Tab never reached {found}")


def test_the_keyboard_reaches_the_language_switch_and_sign_in(page: Any, stack: Stack,
                                                              seeded: dict[str, Any]) -> None:
    page.goto(f"{stack.url('scoring')}/dashboard/sign-in?lang=zh")
    english = _tab_until(page, '.lang a[lang="en"]')
    assert english["text"] == "English" and english["outline"] != "none" and english["width"] >= 2
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    token_field = _tab_until(page, "#token")
    assert token_field["tag"] == "INPUT" and token_field["outline"] != "none"
    page.keyboard.type(seeded["commission"])
    button = _tab_until(page, 'button[type="submit"]')
    assert button["text"] == "Sign in" and button["outline"] != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/dashboard$"))
    assert page.locator('table[data-group]').count() == len(stack.city.groups)


def test_the_public_unit_page_and_report_on_a_phone(browser: Any, stack: Stack, seeded: dict[str, Any],
                                                    artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    year = seeded["year"]
    for name, path in (("public-unit-phone", f"/public/units/{UNIT}?year={year - 1}&lang=zh"),
                       ("report-phone", f"/v1/reports/annual/{year - 1}?lang=en")):
        phone.goto(f"{stack.url('scoring')}{path}")
        assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
        assert contrast_failures(phone) == []
        phone.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    html = phone.content()
    for secret in (PHONE, EMAIL, "example.cn", COMPLAINT, *seeded["codes"]):
        assert secret not in html
    context.close()


# --- after the review in a browser: fonts, icon, errors as pages, charts, the live refresh ------------------


def test_the_font_list_applies_and_a_first_load_logs_no_error(browser: Any, stack: Stack,
                                                              seeded: dict[str, Any]) -> None:
    """Autoescaped quotes (&#34;) in <style> dropped the whole font declaration; a page without an icon
    link makes the browser ask for /favicon.ico, a 404 in the console on every first load."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{stack.url('scoring')}/public?year={seeded['year'] - 1}&lang=zh")
    page.wait_for_load_state("networkidle")
    assert "PingFang SC" in page.evaluate("getComputedStyle(document.body).fontFamily")
    assert page.evaluate("getComputedStyle(document.body).fontSize") == "16px"
    assert errors == []
    assert page.locator('nav[aria-label="主导航"]').count() == 1
    assert page.get_by_role("group", name="语言").count() == 1
    context.close()


def test_a_bad_year_is_an_error_page_with_the_layout_and_language_switch(page: Any, stack: Stack,
                                                                         seeded: dict[str, Any]) -> None:
    response = page.goto(f"{stack.url('scoring')}/public?year=abc&lang=zh")
    assert response.status == 422 and "text/html" in response.headers["content-type"]
    assert "年度须为" in page.locator("main").inner_text()
    page.get_by_role("group", name="语言").get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert "The year must be four digits" in page.locator("main").inner_text()
    response = page.goto(f"{stack.url('scoring')}/public?year={'9' * 5000}")
    assert response.status == 422
    response = page.goto(f"{stack.url('scoring')}/v1/reports/annual/{seeded['year']}?lang=en")
    assert response.status == 401
    page.get_by_role("link", name="Sign in").last.click()
    page.wait_for_url(re.compile(r".*/dashboard/sign-in$"))


def test_a_tracking_code_typed_in_lower_case_is_found(page: Any, stack: Stack, seeded: dict[str, Any]) -> None:
    page.goto(f"{stack.url('scoring')}/public?lang=en")
    page.get_by_label("Tracking code").fill(f" {seeded['codes'][0].lower()} ")
    with page.expect_navigation():
        page.get_by_role("button", name="Look up").click()
    assert page.url.endswith(f"/v1/feedback/{seeded['codes'][0]}")
    assert '"status"' in page.content() and "not_found" not in page.content()


CHART_TEXT_OUTSIDE_JS = """
() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const vb = svg.viewBox.baseVal;
  return [...svg.querySelectorAll('text')].map(t => ({text: t.textContent, box: t.getBBox()}))
    .filter(({box}) => box.x < vb.x - 0.5 || box.x + box.width > vb.x + vb.width + 0.5)
    .map(({text, box}) => `${text}: ${box.x.toFixed(1)}+${box.width.toFixed(1)} > ${vb.width}`);
})
"""


def test_weeks_are_spaced_by_date_labels_stay_inside_and_open_figures_stay_open(
        page: Any, stack: Stack, seeded: dict[str, Any]) -> None:
    year = seeded["year"]
    today = datetime.now(UTC).astimezone(stack.city.timezone).date()
    # Two earlier weeks with ratings, three weeks apart: weeks without data lie between them.
    earlier = [today - timedelta(days=d) for d in (35, 14) if (today - timedelta(days=d)).year == year]
    stack.publish(*(events.FeedbackReceived(feedback_id=f"week-{d.isoformat()}-{i}", unit_id=UNIT, channel="window",
                                            occurred_at=datetime(d.year, d.month, d.day, 4, tzinfo=UTC), year=year,
                                            level=3 + i % 3) for d in earlier for i in range(2)))
    stack.settled()
    sign_in(page, stack, seeded["commission"])
    for lang in ("zh", "en"):
        page.goto(f"{stack.url('scoring')}/dashboard/units/{UNIT}?year={year}&lang={lang}")
        assert page.evaluate(CHART_TEXT_OUTSIDE_JS) == [], lang
    weekly = page.locator("svg.chart").first
    xs = [float(v) for v in weekly.evaluate(
        "s => [...s.querySelectorAll('.series')].flatMap(e => e.tagName === 'circle' ? [e.getAttribute('cx')]"
        " : e.getAttribute('points').split(' ').map(p => p.split(',')[0]))")]
    if len(earlier) == 2:  # 35 and 14 days back and this week: three weeks, then about two, apart
        xs = sorted(set(xs))
        assert len(xs) == 3 and (xs[1] - xs[0]) > (xs[2] - xs[1]) * 1.2, xs
    page.goto(f"{stack.url('scoring')}/v1/reports/annual/{year}?lang=zh")
    assert page.evaluate(CHART_TEXT_OUTSIDE_JS) == []

    # The live refresh swaps <main>: the weekly figures the reader opened stay open.
    page.goto(f"{stack.url('scoring')}/dashboard/units/{UNIT}?year={year}&lang=en")
    page.locator("#weekly-figures summary").click()
    assert page.locator("#weekly-figures").evaluate("d => d.open") is True
    rate_and_wait_for_the_live_refresh(page, stack, kiosk_ratings_shown(page))
    assert page.locator("#weekly-figures").evaluate("d => d.open") is True
    assert page.locator("#weekly-figures table").is_visible()
