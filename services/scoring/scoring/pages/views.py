"""Routes of the dashboard, the public pages and the annual report: parse, authorize, gather, render."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from scoring import service
from scoring.pages import content, figures, i18n
from scoring.pages.settings import PagesSettings
from scoring.pages.templates import render
from yardstick.auth import Principal
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime, runtime_of

router = APIRouter(include_in_schema=True)
TOKEN_COOKIE = "yardstick_dashboard"
LANG_COOKIE = "yardstick_lang"
DASHBOARD_ROLES = ("commission", "leader", "coordinator")
REPORT_ROLES = ("commission", "leader")
COMPONENTS = ("public", "targets", "leaders", "bonus", "adjustments")
TRACKING_CODE = re.compile(r"^[A-Za-z0-9-]{4,64}$")


def _settings(request: Request) -> PagesSettings:
    settings: PagesSettings = getattr(request.app.state, "pages_settings", None) or PagesSettings()
    return settings


def _lang(request: Request) -> i18n.Lang:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked:
        return i18n.pick(asked)
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else i18n.DEFAULT


def _principal(request: Request) -> Principal | None:
    """The signed-in token (cookie), or a bearer token; None when absent, invalid or revoked."""
    runtime = runtime_of(request)
    header = request.headers.get("authorization", "")
    token = header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else None
    token = token or request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    try:
        return runtime.authenticator.verify(token)
    except ApiError:
        return None


def _year(request: Request, runtime: ServiceRuntime) -> int:
    raw = request.query_params.get("year")
    if raw is None:
        return service.current_year(runtime)
    # ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1900 <= int(raw) <= 9999:
        raise ApiError(422, "year must be a four-digit year")
    return int(raw)


def _page(request: Request, template: str, *, title: str, nav: list[tuple[str, str]], status: int = 200,
          live: bool = False, stamp: str = "", **context: Any) -> HTMLResponse:
    runtime = runtime_of(request)
    city = runtime.city
    lang = _lang(request)

    def query(to: str) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "lang"}
        return urlencode({**params, "lang": to})

    def subject(value: str) -> str:
        if value in city.category_ids:
            return i18n.category_name(city, value, lang)
        if value in city.unit_ids:
            return i18n.unit_name(city, value, lang)
        return value

    html = render(
        template, lang=lang, title=title, nav=nav, city_name=city.city.name_zh if lang == "zh" else city.city.name,
        t=lambda key: i18n.word(key, lang), d=lambda v: i18n.day(v, lang),
        num=lambda v, digits=1: i18n.number(v, lang, digits), pct=lambda v: i18n.percent(v, lang),
        month=lambda m: i18n.month(m, lang), unit=lambda u: i18n.unit_name(city, u, lang),
        category=lambda c: i18n.category_name(city, c, lang), group=lambda g: i18n.group_name(city, g, lang),
        subject=subject, query=query, components=COMPONENTS, live="/dashboard/stamp" if live else None,
        stamp=stamp, poll_ms=int(_settings(request).poll_s * 1000), **context)
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


def _dashboard_nav(request: Request, year: int) -> list[tuple[str, str]]:
    lang = _lang(request)

    def t(key: str) -> str:
        return i18n.word(key, lang)

    return [(f"/dashboard?year={year}", t("ranking")), ("/dashboard/notices", t("notices")),
            (f"/public?year={year}", t("public")), (f"/v1/reports/annual/{year}", t("report_link")),
            ("/dashboard/sign-out", t("sign_out"))]


def _public_nav(request: Request) -> list[tuple[str, str]]:
    lang = _lang(request)
    return [("/public", i18n.word("public", lang)), ("/public#tracking", i18n.word("tracking", lang)),
            ("/dashboard", i18n.word("dashboard", lang))]


def _signed_in(request: Request) -> Principal | Response:
    """The reader, or the answer instead of the page: sign in first (no token), or 403 (a role without a dashboard)."""
    principal = _principal(request)
    if principal is None:
        return RedirectResponse("/dashboard/sign-in", status_code=303)
    if principal.role not in DASHBOARD_ROLES:
        lang = _lang(request)
        return _page(request, "message", title=i18n.word("dashboard", lang), nav=_public_nav(request), status=403,
                     heading="403", message=i18n.word("forbidden", lang))
    return principal


# --- sign-in ---------------------------------------------------------------------------------


@router.get("/dashboard/sign-in", response_class=HTMLResponse, tags=["pages"])
async def sign_in_form(request: Request) -> HTMLResponse:
    return _page(request, "sign_in", title=i18n.word("dashboard", _lang(request)), nav=_public_nav(request),
                 error=None)


@router.post("/dashboard/sign-in", tags=["pages"], response_model=None)
async def sign_in(request: Request) -> Response:
    lang = _lang(request)
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[0].strip()
    try:
        principal = runtime_of(request).authenticator.verify(token)
    except ApiError:
        return _page(request, "sign_in", title=i18n.word("dashboard", lang), nav=_public_nav(request),
                     status=401, error=i18n.word("bad_token", lang))
    if principal.role not in DASHBOARD_ROLES:
        return _page(request, "sign_in", title=i18n.word("dashboard", lang), nav=_public_nav(request),
                     status=403, error=f"{principal.role}: {i18n.word('bad_token', lang)}")
    target = f"/dashboard/units/{principal.unit_id}" if principal.role == "coordinator" else "/dashboard"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=_settings(request).secure_cookie)
    return response


@router.get("/dashboard/sign-out", tags=["pages"])
async def sign_out() -> Response:
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


# --- the dashboard ---------------------------------------------------------------------------


@router.get("/dashboard", tags=["pages"], response_model=None)
async def dashboard(request: Request) -> Response:
    principal = _signed_in(request)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    year = _year(request, runtime)
    scope = principal.unit_id if principal.role == "coordinator" else None
    stamp = await content.page_stamp(runtime)
    return _page(request, "dashboard", title=i18n.word("dashboard", _lang(request)), nav=_dashboard_nav(request, year),
                 live=True, stamp=stamp, year=year, year_q=f"?year={year}", groups=await content.ranking(runtime, year),
                 notices=await content.open_notices(runtime, scope))


@router.get("/dashboard/notices", tags=["pages"], response_model=None)
async def dashboard_notices(request: Request) -> Response:
    principal = _signed_in(request)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    scope = principal.unit_id if principal.role == "coordinator" else None
    stamp = await content.page_stamp(runtime)
    return _page(request, "notices", title=i18n.word("open_notices", _lang(request)),
                 nav=_dashboard_nav(request, service.current_year(runtime)), live=True, stamp=stamp,
                 notices=await content.open_notices(runtime, scope))


@router.get("/dashboard/units/{unit_id}", tags=["pages"], response_model=None)
async def dashboard_unit(unit_id: str, request: Request) -> Response:
    principal = _signed_in(request)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    lang = _lang(request)
    year = _year(request, runtime)
    nav = _dashboard_nav(request, year)
    if unit_id not in runtime.city.unit_ids:
        return _page(request, "message", title=i18n.word("unit_page", lang), nav=nav, status=404,
                     heading="404", message=f"unit {unit_id!r} is not in the city profile")
    if not (principal.covers_unit(unit_id) or principal.role == "leader"):
        return _page(request, "message", title=i18n.word("unit_page", lang), nav=nav, status=403,
                     heading="403", message=i18n.word("forbidden", lang))
    stamp = await content.page_stamp(runtime)
    page = await content.unit_page(runtime, unit_id, year)
    charts = figures.unit_charts(page, year=year, lang=lang, city=runtime.city)
    return _page(request, "unit", title=i18n.unit_name(runtime.city, unit_id, lang), nav=nav, live=True,
                 stamp=stamp, year=year, page=page, charts=charts)


@router.get("/dashboard/stamp", tags=["pages"])
async def dashboard_stamp(request: Request) -> JSONResponse:
    principal = _principal(request)
    if principal is None:
        raise ApiError(401, "sign in at /dashboard/sign-in")
    if principal.role not in DASHBOARD_ROLES:
        raise ApiError(403, f"role {principal.role} has no dashboard")
    return JSONResponse({"stamp": await content.page_stamp(runtime_of(request))},
                        headers={"Cache-Control": "no-store"})


# --- public pages ----------------------------------------------------------------------------


@router.get("/public", response_class=HTMLResponse, tags=["pages"])
async def public(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    year = _year(request, runtime) if "year" in request.query_params else None
    results = await content.public_results(runtime, year)
    return _page(request, "public", title=i18n.word("public", _lang(request)), nav=_public_nav(request),
                 year=results["year"], years=results["years"], results=results["results"],
                 groups=results["groups"], notices=results["notices"], year_q=f"?year={results['year']}")


@router.get("/public/units/{unit_id}", response_class=HTMLResponse, tags=["pages"])
async def public_unit(unit_id: str, request: Request) -> HTMLResponse:
    """One unit's published scorecards, year on year, and its notices: no sign-in, no personal data."""
    runtime = runtime_of(request)
    lang = _lang(request)
    if unit_id not in runtime.city.unit_ids:
        return _page(request, "message", title=i18n.word("unit_public", lang), nav=_public_nav(request),
                     status=404, heading="404", message=f"unit {unit_id!r} is not in the city profile")
    year = _year(request, runtime) if "year" in request.query_params else None
    page = await content.public_unit(runtime, unit_id, year)
    return _page(request, "public_unit", title=i18n.unit_name(runtime.city, unit_id, lang), nav=_public_nav(request),
                 page=page, year=page["year"], year_q=f"?year={page['year']}",
                 trend=figures.unit_history_chart(page, lang=lang))


@router.get("/public/track", tags=["pages"], response_model=None)
async def track(request: Request, code: str = "") -> Response:
    """The citizen's lookup: the browser goes to intake's public read (no server-side call between services)."""
    code = code.strip()
    if not TRACKING_CODE.match(code):
        lang = _lang(request)
        return _page(request, "message", title=i18n.word("tracking", lang), nav=_public_nav(request), status=422,
                     heading=i18n.word("tracking", lang),
                     message="a tracking code is 4 to 64 letters, digits or hyphens")
    base = _settings(request).intake_url.rstrip("/")
    return RedirectResponse(f"{base}/v1/feedback/{quote(code)}", status_code=303)


# --- the annual report -----------------------------------------------------------------------


@router.get("/v1/reports/annual/{year}", tags=["reports"], response_model=None)
async def annual_report(year: int, request: Request) -> Response:
    """Open for a finalized year; before that, for the commission and leaders (bearer or dashboard cookie)."""
    runtime = runtime_of(request)
    if not 1900 <= year <= 9999:
        raise ApiError(422, "year must be a four-digit year")
    # Who may read it first: the report is heavy, and anonymous callers may not make us build it.
    if await content.year_status(runtime, year) != "final":
        principal = _principal(request)
        if principal is None:
            raise ApiError(401, f"the report of {year} is public once the year is finalized; until then sign in",
                           headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in REPORT_ROLES:
            raise ApiError(403, f"role {principal.role} may not read the report of a year not finalized")
    report = await content.annual_report(runtime, year)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(report)
    lang = _lang(request)
    charts = figures.report_charts(report, lang=lang, city=runtime.city)
    nav = [("/public", i18n.word("public", lang)), ("/dashboard", i18n.word("dashboard", lang))]
    return _page(request, "report", title=i18n.word("report", lang), nav=nav, r=report, charts=charts)
