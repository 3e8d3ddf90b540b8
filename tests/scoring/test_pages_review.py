"""The pages after a reviewer's pass in a browser: local dates, errors as pages, scope, years, words, charts."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_pages_views import auth, publish

from scoring.pages import i18n, svg
from yardstick import events

UNIT = "health-commission"
OTHER = "public-security"
CATEGORY = "seeing-a-doctor"
HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SVG = "{http://www.w3.org/2000/svg}"


async def caught_up(system: Any, eventually: Any) -> None:
    await eventually(lambda: all(system.bus.lag(g) == 0 for g in ("scoring", "notices")))
    await eventually(system.scorecards_current)


async def finalized_with_notices(system: Any, token: Any, eventually: Any, year: int,
                                 *notices: events.NoticeIssued) -> None:
    """Last year rated, these notices issued in it, all applied, and the year finalized (published)."""
    await publish(system, *ratings(year - 1, UNIT, [1]))
    await publish(system, *notices)
    await caught_up(system, eventually)
    r = await system.scoring.post(f"/v1/scorecards/{year - 1}:finalize", json={"force": True},
                                  headers=auth(token("commission", subject="staff")))
    assert r.status_code == 200, r.text


@pytest.fixture
def year(city: Any) -> int:
    return datetime.now(UTC).astimezone(city.timezone).year


def ratings(year: int, unit_id: str, levels: list[int], *, tag: str = "") -> list[events.Event]:
    moment = datetime(year, 6, 1, 3, tzinfo=UTC)
    return [events.FeedbackReceived(feedback_id=f"r-{tag}{unit_id}-{year}-{i}", unit_id=unit_id, channel="window",
                                    occurred_at=moment, year=year, level=level) for i, level in enumerate(levels)]


def complaints(year: int, counts: dict[str, int]) -> list[events.Event]:
    moment = datetime(year, 5, 4, 3, tzinfo=UTC)
    return [events.FeedbackReceived(feedback_id=f"c-{year}-{category}-{i}", unit_id=UNIT, channel="web",
                                    occurred_at=moment, year=year, level=1, category_id=category)
            for category, n in counts.items() for i in range(n)]


def main_of(html: str) -> str:
    return html.split('<main id="content"', 1)[1].split("</main>", 1)[0]


async def sign_in(system: Any, token: str) -> None:
    r = await system.scoring.post("/dashboard/sign-in", content=f"token={token}",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303, r.text
    system.scoring.cookies.set("yardstick_dashboard", token)


# --- 1. dates in the city's time zone ---------------------------------------------------------------


def test_a_timestamp_is_shown_as_the_citys_day() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert i18n.day("2026-11-30T20:45:00+00:00", "en", shanghai) == "1 Dec 2026"
    assert i18n.day(datetime(2026, 11, 30, 20, 45, tzinfo=UTC), "zh", shanghai) == "2026年12月1日"
    assert i18n.day("2026-11-30", "en", shanghai) == "30 Nov 2026"  # a date is already the city's day
    assert i18n.day(date(2026, 11, 30), "en", shanghai) == "30 Nov 2026"


async def test_the_register_shows_each_step_on_the_citys_day(system: Any, city: Any, eventually: Any,
                                                             year: int) -> None:
    """Issued 04:45 on 1 Dec in Hangzhou is 20:45 UTC on 30 Nov: every date of the row says 1 Dec."""
    y = year - 1
    issued = datetime(y, 11, 30, 20, 45, tzinfo=UTC)
    assert issued.astimezone(city.timezone).date() == date(y, 12, 1)
    await publish(system,
                  events.NoticeIssued(notice_id="n-tz", unit_id=UNIT, rule="complaint-recurrence", subject=CATEGORY,
                                      severity="normal", issued_at=issued, year=y, evidence={"window_count": 7}),
                  events.NoticeTransitioned(notice_id="n-tz", unit_id=UNIT, previous="acknowledged",
                                            status="plan_submitted", at=issued + timedelta(minutes=5),
                                            actor_role="coordinator", actions=["Open evening slots"]),
                  events.NoticeTransitioned(notice_id="n-tz", unit_id=UNIT, previous="resolved", status="verified",
                                            at=issued + timedelta(minutes=10), actor_role="commission"))
    await caught_up(system, eventually)
    html = (await system.scoring.get(f"/public?year={y}&lang=en")).text
    row = html.split('data-notice="n-tz"')[1].split("</tr>")[0]
    assert f"30 Nov {y}" not in row
    # issued, planned, verified, and the history's three steps
    assert row.count(f"1 Dec {y}") == 6, row
    assert "seen on" not in row  # no observed day differs from the (local) issue day


# --- 2. the stylesheet ------------------------------------------------------------------------------


async def test_the_stylesheet_keeps_its_font_list_and_pages_stay_escaped(system: Any) -> None:
    html = (await system.scoring.get("/public", params={"x": '"><b>'})).text
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert '"PingFang SC","Noto Sans CJK SC","Microsoft YaHei"' in style and "&#34;" not in style
    assert '"><b>' not in html  # everything else is still escaped (the language switch echoes the query)


# --- 3. the report link on the public page ----------------------------------------------------------


async def test_the_public_page_links_the_report_only_to_those_it_opens_for(system: Any, token: Any,
                                                                            eventually: Any, year: int) -> None:
    y = year - 1
    commission = token("commission", subject="staff")
    await publish(system, *ratings(y, UNIT, [4, 5]))
    await caught_up(system, eventually)
    r = await system.scoring.post(f"/v1/scorecards/{y}:publish-draft", headers=auth(commission))
    assert r.status_code == 200, r.text
    link = f'href="/v1/reports/annual/{y}"'
    draft = (await system.scoring.get(f"/public?year={y}")).text
    assert "data-unit=" in draft and link not in draft
    assert (await system.scoring.get(f"/v1/reports/annual/{y}")).status_code == 401
    await sign_in(system, commission)
    assert link in (await system.scoring.get(f"/public?year={y}")).text  # the commission may read the draft's
    system.scoring.cookies.clear()
    r = await system.scoring.post(f"/v1/scorecards/{y}:finalize", json={"force": True}, headers=auth(commission))
    assert r.status_code == 200, r.text
    assert link in (await system.scoring.get(f"/public?year={y}")).text
    assert (await system.scoring.get(f"/v1/reports/annual/{y}")).status_code == 200


# --- 4 and 11. the report's test columns, p formats, percentage points, words -----------------------


async def test_the_report_shows_p_and_q_named_as_such_and_changes_in_points(system: Any, token: Any, city: Any,
                                                                            eventually: Any, year: int) -> None:
    await publish(system, *complaints(year - 1, {CATEGORY: 5, "parking": 75}),
                  *complaints(year, {CATEGORY: 60, "parking": 20}), *ratings(year, UNIT, [5, 4]),
                  *ratings(year - 1, UNIT, [3]), *ratings(year, OTHER, [2]))
    await caught_up(system, eventually)
    commission = auth(token("commission", subject="staff"))
    report = (await system.scoring.get(f"/v1/reports/annual/{year}",
                                       headers={**commission, "accept": "application/json"})).json()
    doctor = next(c for c in report["categories"] if c["category_id"] == CATEGORY)
    assert doctor["p_value"] < 1e-6 and doctor["q_value"] is not None and doctor["q_value"] != doctor["p_value"]
    en = (await system.scoring.get(f"/v1/reports/annual/{year}?lang=en", headers=commission)).text
    zh = (await system.scoring.get(f"/v1/reports/annual/{year}?lang=zh", headers=commission)).text
    assert ">p-value</th>" in en and ">q-value (BH-adjusted)</th>" in en
    assert ">p值</th>" in zh and ">q值（BH校正）</th>" in zh
    row = en.split(f'data-category="{CATEGORY}"')[1].split("</tr>")[0]
    assert f'data-p="{doctor["p_value"]}">&lt; 0.001<' in row
    assert f'data-q="{doctor["q_value"]}">&lt; 0.001<' in row
    change = f"{doctor['change'] * 100:+.1f}"
    assert f"{change} pp" in row and f"{change}个百分点" in zh.split(f'data-category="{CATEGORY}"')[1]
    assert "0.000" not in row
    # Satisfaction: this year's change against last year's in points, the rank named for what it ranks by.
    unit_row = en.split(f'<tr data-unit="{UNIT}"')[1].split("</tr>")[0]
    mine = next(s for s in report["satisfaction"] if s["unit_id"] == UNIT)
    assert f"{mine['change'] * 100:+.1f} pp" in unit_row
    assert ">Rank (by total score)</th>" in en and ">名次（按总分）</th>" in zh
    # Units in the city profile's group order (departments first), not sorted by group id.
    shown = re.findall(r'<tr data-unit="([^"]+)" data-s=', en)
    order = {g.id: i for i, g in enumerate(city.groups)}
    groups = [order[city.unit(u).group] for u in shown]
    assert groups == sorted(groups) and len(set(groups)) > 1
    # The "All" row adds up each month.
    months = [sum(counts[m] for counts in report["volume"]["channels"].values()) for m in range(12)]
    assert report["volume"]["by_month"] == months
    all_row = en.split('<tr class="all">')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', all_row)
    assert cells[:12] == [f"{n:,}" for n in months] and sum(months) > 0


async def test_last_years_column_says_no_state_when_last_year_has_no_data(system: Any, token: Any,
                                                                          eventually: Any, year: int) -> None:
    await publish(system, *ratings(year, UNIT, [5]))
    await caught_up(system, eventually)
    commission = auth(token("commission", subject="staff"))
    report = (await system.scoring.get(f"/v1/reports/annual/{year}",
                                       headers={**commission, "accept": "application/json"})).json()
    assert report["previous_status"] is None
    zh = (await system.scoring.get(f"/v1/reports/annual/{year}?lang=zh", headers=commission)).text
    assert f"上年满意度 ({year - 1}, —)" in zh and "实时)" not in zh


def test_probabilities_and_points_are_formatted_for_people() -> None:
    assert i18n.probability(4e-10, "zh") == "< 0.001" and i18n.probability(0.0123, "en") == "0.012"
    assert i18n.probability(None, "en") == "—"
    assert i18n.points(0.025, "en") == "+2.5 pp" and i18n.points(-0.1, "zh") == "-10.0个百分点"
    assert i18n.evidence("p_value", 4e-10, "zh") == "p值 < 0.001"
    assert i18n.evidence("window_count", 7, "zh") == "观察期件数：7"
    assert i18n.evidence("baseline_rate_per_day", 0.25, "en") == "baseline items a day: 0.250"
    assert i18n.word("unsatisfactory", "zh") == "不合格"


# --- 5. a year of thousands of digits ---------------------------------------------------------------


async def test_a_year_of_thousands_of_digits_is_refused_like_any_bad_year(system: Any, token: Any) -> None:
    """int() refuses strings of more than 4,300 digits with a ValueError: that was a plain 500."""
    raw = "2" * 4301
    signed_in = auth(token("commission"))
    for path, headers in ((f"/public?year={raw}", {}), (f"/public/units/{UNIT}?year={raw}", {}),
                          (f"/dashboard?year={raw}", signed_in), (f"/dashboard/units/{UNIT}?year={raw}", signed_in)):
        r = await system.scoring.get(path, headers=headers)
        assert r.status_code == 422, (path[:40], r.status_code)
        assert r.json()["error"]["message"] == "year must be a four-digit year"
        page = await system.scoring.get(path, headers={**headers, **HTML})
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")


# --- 6. the tracking lookup -------------------------------------------------------------------------


async def test_a_tracking_code_typed_in_lower_case_finds_the_feedback(system: Any, token: Any) -> None:
    r = await system.intake.post("/v1/feedback", headers=auth(token("citizen", subject="c")),
                                 json={"channel": "web", "unit_id": UNIT, "level": 2, "text": "太慢"})
    assert r.status_code == 201, r.text
    code = r.json()["tracking_code"]
    typed = f"  {code.lower()} "
    r = await system.scoring.get("/public/track", params={"code": typed})
    assert r.status_code == 303 and r.headers["location"].endswith(f"/v1/feedback/{code}")
    found = await system.intake.get(r.headers["location"].split("8001", 1)[1])
    assert found.status_code == 200 and found.json()["tracking_code"] == code
    bad = await system.scoring.get("/public/track", params={"code": "ab", "lang": "zh"})
    assert bad.status_code == 422 and "查询码为4至64位字母、数字或连字符" in bad.text
    assert "letters, digits" not in bad.text


# --- 7. errors as pages, navigation and links by role, titles by scope ------------------------------


async def test_a_bad_year_on_a_page_is_an_error_page_in_the_readers_language(system: Any, token: Any) -> None:
    r = await system.scoring.get("/public?year=abc&lang=zh", headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "年度须为1900至9999之间的四位数字" in r.text
    assert 'aria-label="主导航"' in r.text and 'href="/public"' in r.text and 'lang="en"' in r.text
    # An API client (no text/html in Accept) still gets api.md's JSON error.
    assert (await system.scoring.get("/public?year=abc")).json()["error"]["code"] == "invalid"
    await sign_in(system, token("commission", subject="staff"))
    r = await system.scoring.get("/dashboard?year=abc&lang=en", headers=HTML)
    assert r.status_code == 422 and "The year must be four digits" in r.text
    assert 'href="/dashboard/sign-out"' in r.text
    r = await system.scoring.get("/v1/reports/annual/abc?lang=en", headers=HTML)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")


async def test_a_path_no_page_has_is_a_404_page_to_a_browser_and_json_to_a_client(system: Any) -> None:
    r = await system.scoring.get("/public/nope?lang=zh", headers=HTML)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "找不到该页面。" in r.text and 'aria-label="主导航"' in r.text
    for path, headers in (("/public/nope", {}), ("/v1/nope", HTML)):  # a client, or no page's path
        r = await system.scoring.get(path, headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


async def test_the_report_of_a_live_year_tells_a_browser_to_sign_in(system: Any, year: int) -> None:
    r = await system.scoring.get(f"/v1/reports/annual/{year}?lang=zh", headers=HTML)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"].startswith("text/html")
    assert "该年度报告在结果终定后公开" in r.text and 'href="/dashboard/sign-in"' in r.text
    api = await system.scoring.get(f"/v1/reports/annual/{year}", headers={"accept": "application/json"})
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthenticated"


async def test_a_coordinator_is_offered_only_what_it_may_open(system: Any, token: Any, city: Any,
                                                              eventually: Any, year: int) -> None:
    await publish(system, *ratings(year, UNIT, [5]), *ratings(year, OTHER, [4]))
    await publish(system, events.NoticeIssued(notice_id="n-own", unit_id=UNIT, rule="complaint-recurrence",
                                              subject=CATEGORY, severity="normal", issued_at=datetime.now(UTC),
                                              year=year))
    await caught_up(system, eventually)
    await sign_in(system, token("coordinator", unit_id=UNIT, subject="coord"))
    html = (await system.scoring.get(f"/dashboard?year={year}&lang=en")).text
    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert "/v1/reports/annual/" not in nav  # a 403 for a coordinator before the year is final
    assert f'href="/dashboard/units/{UNIT}?year={year}"' in nav
    links = set(re.findall(r'href="/dashboard/units/([^"?]+)\?year=', main_of(html)))
    assert links == {UNIT}  # other units are listed in the ranking, without a link to a 403
    assert f'data-unit="{OTHER}"' in html
    title = f"Open notices of {city.unit(UNIT).name}"
    assert f"<h2>{title}</h2>" in html and "across the city" not in html
    notices = (await system.scoring.get("/dashboard/notices?lang=en")).text
    assert f"<h1>{title}</h1>" in notices and "across the city" not in notices and "n-own" in notices
    system.scoring.cookies.clear()
    await sign_in(system, token("commission", subject="staff"))
    html = (await system.scoring.get(f"/dashboard?year={year}&lang=en")).text
    assert f'href="/v1/reports/annual/{year}"' in html and "Open notices across the city" in html
    assert set(re.findall(r'href="/dashboard/units/([^"?]+)\?year=', main_of(html))) == set(city.unit_ids)


# --- 8. charts --------------------------------------------------------------------------------------


def test_weeks_are_placed_by_date_and_a_missing_week_breaks_the_line() -> None:
    weeks = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 4, 6)]  # four weeks without data in between
    chart = svg.line_chart("weekly", [w.isoformat() for w in weeks], [svg.Series("window", [0.5, 0.6, 0.7])],
                           y_min=0, y_max=1, xs=[float(w.toordinal()) for w in weeks], max_gap=7)
    root = ET.fromstring(str(chart))
    (line,) = root.findall(f".//{SVG}polyline")
    (dot,) = root.findall(f".//{SVG}circle")
    x0, x1 = (float(p.split(",")[0]) for p in line.get("points", "").split())
    x2 = float(dot.get("cx", "0"))
    assert (x2 - x1) == pytest.approx(4 * (x1 - x0), abs=0.2)  # 28 days against 7 days


def test_no_x_label_runs_past_the_charts_edges() -> None:
    labels = [f"{d} Dec" for d in range(1, 30)]
    chart = svg.line_chart("t", labels, [svg.Series("s", [0.5] * len(labels))], y_min=0, y_max=1)
    texts = ET.fromstring(str(chart)).findall(f".//{SVG}text[@class='x-label']")
    assert texts and texts[-1].text == labels[-1]  # the last week is labelled
    spans = []
    for text in texts:
        x, w = float(text.get("x", "0")), i18n.text_width(text.text or "")
        anchor = text.get("text-anchor")
        left = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        assert 0 <= left and left + w <= svg.WIDTH + 0.01, (text.text, anchor, x)
        spans.append((left, left + w))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # none overlap


def test_a_long_bar_label_is_shortened_at_a_word_with_its_whole_text_in_a_title() -> None:
    long = "Difficulty obtaining hospital appointments and prescriptions for chronic illness"
    chart = svg.bars("shares", [(long, 0.4), ("Noise", 0.2), ("看病难挂号难住院难出院结算难医保报销难异地就医难", 0.1)])
    labels = ET.fromstring(str(chart)).findall(f".//{SVG}text[@class='bar-label']")
    first = labels[0]
    shown = "".join(first.itertext())[len(long):]
    assert first.find(f"{SVG}title") is not None and first.find(f"{SVG}title").text == long  # type: ignore[union-attr]
    assert shown.endswith("…") and long.startswith(shown[:-1]) and long[len(shown) - 1] == " "
    assert i18n.text_width(shown) <= 190
    assert "".join(labels[1].itertext()).endswith("Noise")
    cjk = "".join(labels[2].itertext())
    assert cjk.endswith("…") and i18n.text_width(cjk.split("难异地就医难", 1)[-1]) <= 190


# --- 9. the weekly table ----------------------------------------------------------------------------


async def test_the_weekly_table_is_named_for_what_it_lists_and_kept_open_by_id(system: Any, token: Any,
                                                                                eventually: Any, year: int) -> None:
    await publish(system, *ratings(year, UNIT, [5, 3]))
    await caught_up(system, eventually)
    await sign_in(system, token("commission", subject="staff"))
    html = (await system.scoring.get(f"/dashboard/units/{UNIT}?year={year}&lang=en")).text
    assert '<details id="weekly-figures"><summary>Weekly satisfaction as a table (%)</summary>' in html
    assert "(n)</summary>" not in html
    assert 'querySelectorAll("details[open][id]")' in html  # the live refresh reopens them


# --- 10. years ----------------------------------------------------------------------------------------


async def test_the_year_selector_names_the_year_the_heading_names(system: Any, token: Any, eventually: Any,
                                                                  year: int) -> None:
    commission = token("commission", subject="staff")
    await publish(system, *ratings(year - 1, UNIT, [4]))
    await caught_up(system, eventually)
    r = await system.scoring.post(f"/v1/scorecards/{year - 1}:finalize", json={"force": True}, headers=auth(commission))
    assert r.status_code == 200, r.text
    for path in ("/public?year=1999&lang=en", f"/public/units/{UNIT}?year=1999&lang=en"):
        html = (await system.scoring.get(path)).text
        selected = re.findall(r'<option value="(\d+)" selected>', html)
        assert selected == ["1999"], path
        assert f'<option value="{year - 1}" >' in html
        assert "1999 (not published)" in html


async def test_the_dashboard_says_when_a_year_has_no_data(system: Any, token: Any, eventually: Any,
                                                          year: int) -> None:
    await publish(system, *ratings(year, UNIT, [4]))
    await caught_up(system, eventually)
    await sign_in(system, token("commission", subject="staff"))
    empty = (await system.scoring.get("/dashboard?year=1999&lang=en")).text
    assert "There is no data for 1999 yet." in empty
    assert 'class="ranking"' not in empty and "Unsatisfactory" not in empty
    full = (await system.scoring.get(f"/dashboard?year={year}&lang=en")).text
    assert 'class="ranking"' in full and "There is no data" not in full
    # A unit's page for that year says the same, instead of a card of zeros graded unsatisfactory.
    empty = (await system.scoring.get(f"/dashboard/units/{UNIT}?year=1999&lang=en")).text
    assert "There is no data for 1999 yet." in empty
    assert 'class="components"' not in empty and "Unsatisfactory" not in empty
    full = (await system.scoring.get(f"/dashboard/units/{UNIT}?year={year}&lang=en")).text
    assert 'class="components"' in full and "There is no data" not in full


async def test_a_units_dashboard_page_lists_the_notices_of_its_year(system: Any, token: Any, eventually: Any,
                                                                    year: int) -> None:
    now = datetime.now(UTC)
    await publish(system, *(events.NoticeIssued(notice_id=f"n-{y}", unit_id=UNIT, rule="complaint-recurrence",
                                                subject=CATEGORY, severity="normal",
                                                issued_at=now - timedelta(days=400 * (year - y)), year=y)
                            for y in (year - 1, year)))
    await caught_up(system, eventually)
    await sign_in(system, token("commission", subject="staff"))
    this = (await system.scoring.get(f"/dashboard/units/{UNIT}?year={year}")).text
    last = (await system.scoring.get(f"/dashboard/units/{UNIT}?year={year - 1}")).text
    assert 'data-notice="n-' + str(year) + '"' in this and f'data-notice="n-{year - 1}"' not in this
    assert f'data-notice="n-{year - 1}"' in last and f'data-notice="n-{year}"' not in last


# --- 11. Chinese pages --------------------------------------------------------------------------------


async def test_a_chinese_page_names_the_evidence_and_has_no_english_words(system: Any, token: Any,
                                                                          eventually: Any, year: int) -> None:
    await finalized_with_notices(system, token, eventually, year, events.NoticeIssued(
        notice_id="n-zh", unit_id=UNIT, rule="complaint-recurrence", subject=CATEGORY, severity="normal",
        issued_at=datetime.now(UTC), year=year - 1,
        evidence={"window_count": 9, "baseline_count": 1, "alpha": 0.01, "p_value": 4e-10, "decided_by": "test"}))
    html = (await system.scoring.get(f"/public?year={year - 1}&lang=zh")).text
    row = html.split('data-notice="n-zh"')[1].split("</tr>")[0]
    assert "观察期件数：9" in row and "显著性水平：0.010" in row and "p值 &lt; 0.001" in row
    assert "window_count" not in re.sub(r'data-key="[^"]+"', "", row) and "p_value=" not in row
    assert "0.000" not in row
    assert ">查看</button>" in html and ">OK<" not in html
    assert "不合格" in html and "不满意" not in html  # a unit rated 1 is under the pass line
    missing = await system.scoring.get("/public/units/no-such-unit?lang=zh")
    assert missing.status_code == 404 and "城市名录中没有该单位" in missing.text
    assert "is not in the city profile" not in missing.text


async def test_a_notices_evidence_in_words_is_shown_beside_its_numbers(system: Any, token: Any,
                                                                       eventually: Any, year: int) -> None:
    """Why a detector fired and how it decided are words in its evidence: the register shows them, in
    the reader's language, and never the sample feedback ids nor any text it cannot name."""
    await finalized_with_notices(system, token, eventually, year, events.NoticeIssued(
        notice_id="n-words", unit_id=UNIT, rule="satisfaction-drop", subject=UNIT, severity="normal",
        issued_at=datetime.now(UTC), year=year - 1,
        evidence={"n": 40, "satisfied": 20, "kind": "unit", "reason": "dropped",
                  "window": [f"{year - 1}-03-01", f"{year - 1}-03-14"], "sample_feedback_ids": ["fb-secret-1"]}),
        events.NoticeIssued(
        notice_id="n-min", unit_id=UNIT, rule="complaint-recurrence", subject=CATEGORY, severity="normal",
        issued_at=datetime.now(UTC), year=year - 1,
        evidence={"window_count": 6, "decided_by": "min_count", "note": "call 13800000000",
                  "reason": "a word no release knows", "day": "not a day"}))
    zh = (await system.scoring.get(f"/public?year={year - 1}&lang=zh")).text
    row = zh.split('data-notice="n-words"')[1].split("</tr>")[0]
    assert "满意比例较上期明显下降" in row and "依据线上评价" in row
    assert f"观察期：{year - 1}年3月1日 – {year - 1}年3月14日" in row
    assert "评价数：40" in row and "fb-secret-1" not in zh
    en = (await system.scoring.get(f"/public?year={year - 1}&lang=en")).text
    row = en.split('data-notice="n-min"')[1].split("</tr>")[0]
    assert "under 35 days of history: decided by the minimum count alone" in row
    # Only the detectors' own words and calendar days: other text in an event could say anything.
    assert "13800000000" not in en and "a word no release knows" not in en and "not a day" not in en
    assert "items in the window: 6" in row


def test_evidence_words_are_sentences_in_either_language() -> None:
    assert i18n.evidence_words("reason", "below_threshold", "en") == \
        "the satisfied share's upper bound is under the threshold"
    assert i18n.evidence_words("latest_status", "off_track", "zh") == "最新状态：偏离"
    assert i18n.evidence_words("window", ["2026-11-01", "2026-11-14"], "en") == "window: 1 Nov 2026 – 14 Nov 2026"


# --- 12. an unrated unit --------------------------------------------------------------------------


async def test_an_unrated_units_public_page_shows_no_satisfaction(system: Any, token: Any, eventually: Any,
                                                                  year: int) -> None:
    await publish(system, *ratings(year - 1, OTHER, [5]))
    await caught_up(system, eventually)
    r = await system.scoring.post(f"/v1/scorecards/{year - 1}:finalize", json={"force": True},
                                  headers=auth(token("commission", subject="staff")))
    assert r.status_code == 200, r.text
    html = (await system.scoring.get(f"/public/units/{UNIT}?year={year - 1}&lang=en")).text
    assert 'Satisfaction: <span data-s="">—</span>' in html and "0.0%" not in html
    rated = (await system.scoring.get(f"/public/units/{OTHER}?year={year - 1}&lang=en")).text
    assert re.search(r'Satisfaction: <span data-s="[0-9.]+">\d+\.\d%</span>', rated)


# --- 13. sign-in --------------------------------------------------------------------------------------


async def test_a_valid_token_of_a_role_without_a_dashboard_is_told_so(system: Any, token: Any) -> None:
    for role in ("citizen", "staff"):
        r = await system.scoring.post("/dashboard/sign-in?lang=en", content=f"token={token(role, subject='x')}",
                                      headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403 and "yardstick_dashboard" not in r.headers.get("set-cookie", "")
        assert "its role has no dashboard" in r.text and "invalid, expired or revoked" not in r.text
    bad = await system.scoring.post("/dashboard/sign-in?lang=en", content="token=nonsense",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 401 and "invalid, expired or revoked" in bad.text
    form = (await system.scoring.get("/dashboard/sign-in?lang=en")).text
    assert "city leader" in form
    assert "市领导" in (await system.scoring.get("/dashboard/sign-in?lang=zh")).text


# --- 14. accessibility ----------------------------------------------------------------------------------


async def test_pages_carry_their_icon_a_fixed_nav_label_and_a_labelled_language_group(system: Any) -> None:
    html = (await system.scoring.get("/public?lang=zh")).text
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,[^"]+">', html)
    assert '<nav aria-label="主导航">' in html
    assert '<span class="lang" role="group" aria-label="语言">' in html
    r = await system.scoring.get("/favicon.ico")
    assert r.status_code == 204
