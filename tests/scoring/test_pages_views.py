"""The dashboard, public pages and annual report in process: sign-in, scope, live data, no personal data."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from yardstick import events
from yardstick.bus.codec import decode, encode
from yardstick.events import Envelope

UNIT = "health-commission"
OTHER = "public-security"
PHONE = "13912345678"
EMAIL = "citizen.zhang@example.cn"
CONTACT_TEXT = "看病难 挂号排队三个小时"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def publish(system: Any, *items: events.Event, key: str = UNIT) -> None:
    await system.bus.publish([encode(Envelope.of(d, source="test", key=key)) for d in items])


async def settled(system: Any, eventually: Any) -> None:
    """Every event applied, and the scorecards recomputed from them (they trail by under a second)."""
    await eventually(lambda: system.bus.lag("scoring") == 0)
    await eventually(system.scorecards_current)


@pytest.fixture
def year(city: Any) -> int:
    return datetime.now(UTC).astimezone(city.timezone).year


async def rate(system: Any, token: Any, city: Any, unit_id: str, levels: list[int]) -> None:
    window = city.windows_of(unit_id)[0].id
    now = datetime.now(UTC) - timedelta(seconds=5)
    for i, level in enumerate(levels):
        kiosk = token("kiosk", window_id=window, subject=f"kiosk-{uuid.uuid4().hex[:6]}")
        body = {"ratings": [{"id": str(uuid.uuid4()), "window_id": window, "level": level,
                             "rated_at": (now - timedelta(seconds=i)).isoformat()}]}
        r = await system.intake.post("/v1/ratings", json=body, headers=auth(kiosk))
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


async def complain(system: Any, token: Any, *, level: int | None, text: str | None = None,
                   contact: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": "web", "unit_id": UNIT, "category_id": "seeing-a-doctor"}
    if level is not None:
        body["level"] = level
    if text is not None:
        body["text"] = text
    if contact:
        body["contact"] = {"phone": PHONE, "email": EMAIL}
    r = await system.intake.post("/v1/feedback", json=body, headers=auth(token("citizen", subject="c")))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def seed(system: Any, token: Any, city: Any, eventually: Any, year: int) -> dict[str, Any]:
    await rate(system, token, city, UNIT, [5, 4, 2])
    await rate(system, token, city, OTHER, [5])
    items = [await complain(system, token, level=1, text=CONTACT_TEXT, contact=True),
             await complain(system, token, level=None, text="医院排队太久", contact=True),
             await complain(system, token, level=5)]
    today = datetime.now(UTC).astimezone(city.timezone).date()
    await publish(system,
                  events.TargetDefined(target_id="t-pages", unit_id=UNIT, year=year, code="beds",
                                       title="More hospital beds", kind="numeric", direction="increase",
                                       baseline=10.0, target=20.0, weight=1.0, cadence="daily", approved=True),
                  events.TargetProgress(target_id="t-pages", unit_id=UNIT, year=year, date=today, value=12.0,
                                        attainment=0.2, status="at_risk",
                                        projection=events.Projection(value=16.0, low=14.0, high=18.0)))
    issued = datetime.now(UTC) - timedelta(days=3)
    await publish(system,
                  events.NoticeIssued(notice_id="n-pages", unit_id=UNIT, rule="complaint-recurrence",
                                      subject="seeing-a-doctor", severity="normal", issued_at=issued, year=year,
                                      evidence={"window_count": 7, "baseline_count": 1, "p_value": 0.002}),
                  events.NoticeTransitioned(notice_id="n-pages", unit_id=UNIT, previous="issued",
                                            status="acknowledged", at=issued + timedelta(hours=3),
                                            actor_role="coordinator"),
                  events.NoticeOverdue(notice_id="n-pages", unit_id=UNIT, step="plan",
                                       deadline=today - timedelta(days=1)))
    # Intake's relay publishes its 7 items after the requests returned: wait for them, then for scoring.
    await eventually(lambda: sum(decode(m).type == "feedback.received" for m in system.bus.logs[events.FEEDBACK]) == 7)
    await eventually(lambda: system.bus.lag("scoring") == 0 and system.bus.lag("notices") == 0)
    await settled(system, eventually)
    return {"items": items}


async def sign_in(system: Any, token: str) -> None:
    r = await system.scoring.post("/dashboard/sign-in", content=f"token={token}",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    system.scoring.cookies.set("yardstick_dashboard", token)


async def test_the_dashboard_needs_a_signed_in_reader(system: Any, token: Any) -> None:
    r = await system.scoring.get("/dashboard")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/sign-in"
    assert (await system.scoring.get("/dashboard/sign-in")).status_code == 200
    bad = await system.scoring.post("/dashboard/sign-in", content="token=not-a-token",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    kiosk = await system.scoring.post("/dashboard/sign-in",
                                      content=f"token={token('kiosk', window_id='w', subject='k')}",
                                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert kiosk.status_code == 403
    assert (await system.scoring.get("/dashboard/stamp")).status_code == 401


async def test_the_ranking_shows_every_unit_of_each_group_in_rank_order(system: Any, token: Any, city: Any,
                                                                         eventually: Any, year: int) -> None:
    await seed(system, token, city, eventually, year)
    commission = token("commission", subject="staff")
    await sign_in(system, commission)
    html = (await system.scoring.get(f"/dashboard?year={year}")).text
    for group in city.groups:
        api = (await system.scoring.get(f"/v1/scorecards?year={year}&group={group.id}",
                                        headers=auth(commission))).json()
        table = html.split(f'data-group="{group.id}"')[1].split("</table>")[0]
        shown = re.findall(r'<tr data-unit="([^"]+)" data-rank="(\d+)">', table)
        assert [u for u, _r in shown] == [row["unit_id"] for row in api["rows"]]
        assert [int(r) for _u, r in shown] == [row["rank"] for row in api["rows"]]
        assert {u for u, _r in shown} == {u.id for u in city.units_in_group(group.id)}
    assert "n-pages" in html  # the open notice is on the city view


async def test_a_unit_page_draws_its_charts_targets_and_notices(system: Any, token: Any, city: Any,
                                                                 eventually: Any, year: int) -> None:
    await seed(system, token, city, eventually, year)
    await sign_in(system, token("commission", subject="staff"))
    r = await system.scoring.get(f"/dashboard/units/{UNIT}?year={year}&lang=en")
    assert r.status_code == 200
    html = r.text
    assert html.count("<svg") >= 3  # weekly satisfaction, a category trend, the target
    assert 'class="band"' in html and 'class="trajectory"' in html
    assert "More hospital beds" in html and "Difficulty seeing a doctor" in html
    assert 'class="overdue"' in html and "n-pages" in html
    assert "yardstick_lang=en" in r.headers["set-cookie"]
    zh = await system.scoring.get(f"/dashboard/units/{UNIT}?year={year}&lang=zh")
    assert city.unit(UNIT).name_zh in zh.text and "看病难" in zh.text


async def test_a_coordinator_sees_its_own_unit_only(system: Any, token: Any) -> None:
    await sign_in(system, token("coordinator", unit_id=UNIT, subject="coord"))
    assert (await system.scoring.get(f"/dashboard/units/{UNIT}")).status_code == 200
    assert (await system.scoring.get(f"/dashboard/units/{OTHER}")).status_code == 403
    assert (await system.scoring.get("/dashboard/units/no-such-unit")).status_code == 404


async def test_the_dashboard_stamp_moves_when_a_rating_arrives(system: Any, token: Any, city: Any,
                                                               eventually: Any) -> None:
    await sign_in(system, token("commission", subject="staff"))
    before = (await system.scoring.get("/dashboard/stamp")).json()["stamp"]
    await rate(system, token, city, UNIT, [3])

    async def moved() -> bool:
        return bool((await system.scoring.get("/dashboard/stamp")).json()["stamp"] != before)

    await eventually(moved)


async def test_the_stamp_moves_again_when_the_recompute_lands(system: Any, token: Any, city: Any,
                                                              eventually: Any, year: int) -> None:
    """A page fetched after an event is applied but before the scorecards are recomputed shows the older
    scorecards: the stamp it carries must differ from the one after the recompute, or it would never refresh."""
    from sqlalchemy import update

    from scoring.models import years

    await sign_in(system, token("commission", subject="staff"))

    async def stamp() -> str:
        return str((await system.scoring.get("/dashboard/stamp")).json()["stamp"])

    before = await stamp()
    await rate(system, token, city, UNIT, [4])

    async def applied_and_recomputed() -> bool:  # the rating reached scoring (it travels through an outbox)
        return await stamp() != before and bool(await system.scorecards_current())

    await eventually(applied_and_recomputed)
    current = await stamp()
    runtime = system.runtime("scoring")
    async with runtime.sessions() as session, session.begin():  # the state between apply and recompute
        await session.execute(update(years).where(years.c.year == year)
                              .values(computed_version=years.c.computed_version - 1))
    between = await stamp()
    assert between != current


async def test_public_pages_and_report_hold_no_contact_data(system: Any, token: Any, city: Any,
                                                           eventually: Any, year: int) -> None:
    seeded = await seed(system, token, city, eventually, year)
    commission = token("commission", subject="staff")
    r = await system.scoring.post(f"/v1/scorecards/{year}:finalize", json={"force": True}, headers=auth(commission))
    assert r.status_code == 200, r.text
    pages = [(await system.scoring.get(f"/public?year={year}")).text,
             (await system.scoring.get(f"/public?year={year}&lang=en")).text,
             (await system.scoring.get(f"/v1/reports/annual/{year}")).text,
             (await system.scoring.get(f"/v1/reports/annual/{year}",
                                       headers={"accept": "application/json"})).text]
    for html in pages:
        for secret in (PHONE, EMAIL, "13912", "example.cn", CONTACT_TEXT, "排队太久"):
            assert secret not in html
        for item in seeded["items"]:
            assert item["tracking_code"] not in html
    assert 'data-unit="health-commission"' in pages[0] and "n-pages" in pages[0]


async def test_the_report_needs_a_reader_until_the_year_is_final(system: Any, token: Any, year: int) -> None:
    assert (await system.scoring.get(f"/v1/reports/annual/{year}")).status_code == 401
    r = await system.scoring.get(f"/v1/reports/annual/{year}", headers=auth(token("citizen", subject="c")))
    assert r.status_code == 403
    r = await system.scoring.get(f"/v1/reports/annual/{year}", headers=auth(token("leader", subject="l")))
    assert r.status_code == 200 and "<svg" in r.text


async def test_the_reports_figures_equal_the_apis(system: Any, token: Any, city: Any, eventually: Any,
                                                  year: int) -> None:
    await seed(system, token, city, eventually, year)
    commission = token("commission", subject="staff")
    report = (await system.scoring.get(f"/v1/reports/annual/{year}",
                                       headers={**auth(commission), "accept": "application/json"})).json()
    # 4 + 1 kiosk presses, 3 web items: every accepted item is one feedback.received.
    assert report["volume"]["by_channel"] == {"web": 3, "window": 4}
    assert report["volume"]["total"] == 7
    for row in report["satisfaction"]:
        card = (await system.scoring.get(f"/v1/scorecards/{row['unit_id']}?year={year}",
                                         headers=auth(commission))).json()
        assert row["S"] == card["public"]["S"] and row["rank"] == card["rank"]
    doctor = next(c for c in report["categories"] if c["category_id"] == "seeing-a-doctor")
    assert doctor["negative"] == 2 and doctor["share"] == 1.0 and doctor["previous_share"] is None
    assert report["notices"]["issued"] == 1 and report["notices"]["by_status"] == {"acknowledged": 1}
    html = (await system.scoring.get(f"/v1/reports/annual/{year}", headers=auth(commission))).text
    assert 'data-total="7"' in html and 'data-negative="2"' in html


async def test_the_tracking_lookup_sends_the_browser_to_intake(system: Any) -> None:
    r = await system.scoring.get("/public/track", params={"code": "AB12-CD34"})
    assert r.status_code == 303 and r.headers["location"].endswith("/v1/feedback/AB12-CD34")
    bad = await system.scoring.get("/public/track", params={"code": "<script>"})
    assert bad.status_code == 422 and "<script>" not in bad.text


async def test_a_reassigned_complaint_moves_its_cell(system: Any, eventually: Any, year: int) -> None:
    moment = datetime.now(UTC) - timedelta(minutes=1)
    await publish(system,
                  events.FeedbackReceived(feedback_id="f1", unit_id=OTHER, channel="web", occurred_at=moment,
                                          year=year, category_id="seeing-a-doctor", has_text=True),
                  events.FeedbackReassigned(feedback_id="f1", from_unit_id=OTHER, unit_id=UNIT, channel="web",
                                            occurred_at=moment, year=year, category_id="seeing-a-doctor"),
                  key=OTHER)
    await settled(system, eventually)
    from scoring import repository

    async with system.runtime("scoring").sessions() as session:
        cells = await repository.complaint_cells(session, year=year)
    by_unit = {u: (t, n) for u, _c, _w, t, n in cells}
    assert by_unit[UNIT] == (1, 1) and by_unit[OTHER] == (0, 0)
    assert isinstance(cells[0][2], date)


@pytest.mark.parametrize("raw", ["%C2%B2", "%D9%A2%D9%A0%D9%A2%D9%A6", "20x6", "12345"])
async def test_a_year_that_is_not_four_ascii_digits_is_refused_like_any_bad_year(system: Any, token: Any,
                                                                                 raw: str) -> None:
    """"²" and Arabic-Indic digits pass str.isdigit() but not int(): the same 422 as any bad year, never a 500."""
    signed_in = {"Authorization": f"Bearer {token('commission')}"}
    for path, headers in ((f"/public?year={raw}", {}), (f"/public/units/{UNIT}?year={raw}", {}),
                          (f"/dashboard?year={raw}", signed_in)):
        r = await system.scoring.get(path, headers=headers)
        assert r.status_code == 422, (path, r.status_code)
