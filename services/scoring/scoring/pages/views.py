"""Routes of the dashboard, the public pages and the annual report: parse, authorize, gather, render."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from scoring import service
from scoring.pages import content, figures, i18n
from scoring.pages.settings import PagesSettings
from scoring.pages.templates import render
from yardstick.auth import Principal
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime, runtime_of


class PageError(ApiError):
    """An error a page explains in the reader's language: `key` names its message in i18n.WORDS.

    To a JSON client it is the ApiError it extends, with the English message."""

    def __init__(self, status: int, message: str, *, key: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers=headers)
        self.key = key


def _wants_html(request: Request) -> bool:
    """A browser's navigation names text/html; an API client (or one asking for JSON) gets api.md's JSON errors."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


class PageRoute(APIRoute):
    """A page's errors answer a page to a browser: the same layout, navigation and language switch,
    with the same status code (a bad `?year=` is a 422 page, not a JSON body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, RequestValidationError) as exc:
                if not _wants_html(request):
                    raise
                return _error_page(request, exc)

        return route


router = APIRouter(include_in_schema=True, route_class=PageRoute)
PAGE_PREFIXES = ("/public", "/dashboard")


def install_page_not_found(app: FastAPI) -> None:
    """A path no route knows under the pages (a mistyped or stale link) is a 404 page to a browser, like
    the pages' own errors; the JSON 404 (api.md's error shape) stays for everything else."""
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and request.url.path.startswith(PAGE_PREFIXES) and _wants_html(request):
            return _error_page(request, ApiError(404, "no such page"))
        answer = json_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, not_found)
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
    # Four ASCII digits before int(): str.isdigit() also takes "²" and other digits int() refuses, and
    # int() refuses more than 4,300 digits with a ValueError (a 500).
    if not (len(raw) == 4 and raw.isascii() and raw.isdigit()) or not 1900 <= int(raw) <= 9999:
        raise PageError(422, "year must be a four-digit year", key="bad_year")
    return int(raw)


def _page(request: Request, template: str, *, title: str, nav: list[tuple[str, str]], status: int = 200,
          live: bool = False, stamp: str = "", headers: dict[str, str] | None = None,
          **context: Any) -> HTMLResponse:
    runtime = runtime_of(request)
    city = runtime.city
    lang = _lang(request)
    tz = city.timezone
    context.setdefault("can_open", None)  # the units whose page the reader may open (None: all)
    context.setdefault("link", None)  # a message page's way on (a 401's sign-in form)

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
        t=lambda key: i18n.word(key, lang), d=lambda v: i18n.day(v, lang, tz),
        num=lambda v, digits=1: i18n.number(v, lang, digits), pct=lambda v: i18n.percent(v, lang),
        pp=lambda v: i18n.points(v, lang), pval=lambda v: i18n.probability(v, lang),
        fact=lambda k, v: i18n.evidence(k, v, lang), said=lambda k, v: i18n.evidence_words(k, v, lang, tz),
        status_code=status,
        month=lambda m: i18n.month(m, lang), unit=lambda u: i18n.unit_name(city, u, lang),
        category=lambda c: i18n.category_name(city, c, lang), group=lambda g: i18n.group_name(city, g, lang),
        subject=subject, query=query, components=COMPONENTS, live="/dashboard/stamp" if live else None,
        stamp=stamp, poll_ms=int(_settings(request).poll_s * 1000), **context)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


async def _dashboard_nav(request: Request, year: int, principal: Principal) -> list[tuple[str, str]]:
    """The dashboard's links, each only for a reader it opens for: a coordinator gets its own unit's
    page, and the annual report only once the year is final (before, it is the commission's and leaders')."""
    lang = _lang(request)
    runtime = runtime_of(request)

    def t(key: str) -> str:
        return i18n.word(key, lang)

    nav = [(f"/dashboard?year={year}", t("ranking"))]
    if principal.role == "coordinator" and principal.unit_id in runtime.city.unit_ids:
        nav.append((f"/dashboard/units/{principal.unit_id}?year={year}",
                    i18n.unit_name(runtime.city, principal.unit_id, lang)))
    nav += [("/dashboard/notices", t("notices")), (f"/public?year={year}", t("public"))]
    if principal.role in REPORT_ROLES or await content.year_status(runtime, year) == "final":
        nav.append((f"/v1/reports/annual/{year}", t("report_link")))
    nav.append(("/dashboard/sign-out", t("sign_out")))
    return nav


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
                     heading="403", message=_no_dashboard(principal, lang))
    return principal


def _no_dashboard(principal: Principal, lang: i18n.Lang) -> str:
    return f"{i18n.word('role', lang)}: {i18n.role(principal.role, lang)}. {i18n.word('no_dashboard', lang)}"


def _scope(principal: Principal) -> str | None:
    """The one unit a coordinator reads; None for the commission and leaders (every unit)."""
    return principal.unit_id if principal.role == "coordinator" else None


def _notices_title(request: Request, scope: str | None) -> str:
    lang = _lang(request)
    if scope is None:
        return i18n.word("open_notices", lang)
    return i18n.word("open_notices_of", lang).format(unit=i18n.unit_name(runtime_of(request).city, scope, lang))


def _error_page(request: Request, exc: ApiError | RequestValidationError) -> HTMLResponse:
    """An error as a page in the reader's language; a 401 offers the sign-in form."""
    lang = _lang(request)
    status = exc.status if isinstance(exc, ApiError) else 422
    key = exc.key if isinstance(exc, PageError) else f"error_{status}"
    message = i18n.word(key, lang) if key in i18n.WORDS else i18n.word("error", lang)
    headers = exc.headers if isinstance(exc, ApiError) else None
    link = ("/dashboard/sign-in", i18n.word("go_sign_in", lang)) if status == 401 else None
    principal = _principal(request)
    if request.url.path.startswith("/dashboard") and principal is not None and principal.role in DASHBOARD_ROLES:
        runtime = runtime_of(request)
        year = service.current_year(runtime)
        nav = [(f"/dashboard?year={year}", i18n.word("ranking", lang)),
               ("/dashboard/notices", i18n.word("notices", lang)), ("/dashboard/sign-out", i18n.word("sign_out", lang))]
    else:
        nav = _public_nav(request)
    return _page(request, "message", title=i18n.word("error", lang), nav=nav, status=status, headers=headers,
                 heading=str(status), message=message, link=link)


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
        # A valid token, of a role that has no dashboard: say so, not that the token is bad.
        return _page(request, "sign_in", title=i18n.word("dashboard", lang), nav=_public_nav(request),
                     status=403, error=_no_dashboard(principal, lang))
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
    lang = _lang(request)
    year = _year(request, runtime)
    scope = _scope(principal)
    stamp = await content.page_stamp(runtime)
    # A year nothing was recorded for has every unit at 0 ("unsatisfactory"): say there is no data instead.
    has_data = await content.has_data(runtime, year)
    return _page(request, "dashboard", title=i18n.word("dashboard", lang),
                 nav=await _dashboard_nav(request, year, principal), live=True, stamp=stamp, year=year,
                 year_q=f"?year={year}", year_state=await content.year_status(runtime, year), has_data=has_data,
                 no_data=i18n.word("no_data_year", lang).format(year=year),
                 groups=await content.ranking(runtime, year) if has_data else {},
                 can_open=None if scope is None else {scope}, notices_title=_notices_title(request, scope),
                 notices=await content.open_notices(runtime, scope))


@router.get("/dashboard/notices", tags=["pages"], response_model=None)
async def dashboard_notices(request: Request) -> Response:
    principal = _signed_in(request)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    scope = _scope(principal)
    stamp = await content.page_stamp(runtime)
    title = _notices_title(request, scope)
    return _page(request, "notices", title=title,
                 nav=await _dashboard_nav(request, service.current_year(runtime), principal), live=True, stamp=stamp,
                 notices_title=title, notices=await content.open_notices(runtime, scope))


@router.get("/dashboard/units/{unit_id}", tags=["pages"], response_model=None)
async def dashboard_unit(unit_id: str, request: Request) -> Response:
    principal = _signed_in(request)
    if isinstance(principal, Response):
        return principal
    runtime = runtime_of(request)
    lang = _lang(request)
    year = _year(request, runtime)
    nav = await _dashboard_nav(request, year, principal)
    if unit_id not in runtime.city.unit_ids:
        return _page(request, "message", title=i18n.word("unit_page", lang), nav=nav, status=404,
                     heading="404", message=f"{i18n.word('unknown_unit', lang)} ({unit_id})")
    if not (principal.covers_unit(unit_id) or principal.role == "leader"):
        return _page(request, "message", title=i18n.word("unit_page", lang), nav=nav, status=403,
                     heading="403", message=i18n.word("forbidden", lang))
    stamp = await content.page_stamp(runtime)
    page = await content.unit_page(runtime, unit_id, year)
    charts = figures.unit_charts(page, year=year, lang=lang, city=runtime.city)
    # A year nothing was recorded for says so, as the ranking does, instead of a card of zeros graded
    # unsatisfactory (which reads as a verdict); the page's other sections (its notices) stay.
    return _page(request, "unit", title=i18n.unit_name(runtime.city, unit_id, lang), nav=nav, live=True,
                 stamp=stamp, year=year, page=page, charts=charts, has_data=await content.has_data(runtime, year),
                 no_data=i18n.word("no_data_year", lang).format(year=year))


async def dashboard_stamp(request: Request) -> JSONResponse:
    """The live pages' fingerprint; its errors stay JSON (the polling script reads it, not a person)."""
    principal = _principal(request)
    if principal is None:
        raise ApiError(401, "sign in at /dashboard/sign-in")
    if principal.role not in DASHBOARD_ROLES:
        raise ApiError(403, f"role {principal.role} has no dashboard")
    return JSONResponse({"stamp": await content.page_stamp(runtime_of(request))},
                        headers={"Cache-Control": "no-store"})


router.add_api_route("/dashboard/stamp", dashboard_stamp, methods=["GET"], tags=["pages"],
                     route_class_override=APIRoute)


# --- public pages ----------------------------------------------------------------------------


async def favicon() -> Response:
    """The pages carry their icon inline; a browser asking anyway gets "no content", not a 404."""
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


router.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False,
                     route_class_override=APIRoute)


@router.get("/public", response_class=HTMLResponse, tags=["pages"])
async def public(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    year = _year(request, runtime) if "year" in request.query_params else None
    results = await content.public_results(runtime, year)
    # The report is open to all once the year is final (the route's own rule); before, the link is shown
    # only to a signed-in commission or leader, whom the report lets in.
    reader = _principal(request)
    final = bool(results["results"] and results["results"]["final"])
    report_open = final or (reader is not None and reader.role in REPORT_ROLES)
    return _page(request, "public", title=i18n.word("public", _lang(request)), nav=_public_nav(request),
                 year=results["year"], years=results["years"], results=results["results"],
                 groups=results["groups"], notices=results["notices"], year_q=f"?year={results['year']}",
                 report_open=report_open)


@router.get("/public/units/{unit_id}", response_class=HTMLResponse, tags=["pages"])
async def public_unit(unit_id: str, request: Request) -> HTMLResponse:
    """One unit's published scorecards, year on year, and its notices: no sign-in, no personal data."""
    runtime = runtime_of(request)
    lang = _lang(request)
    if unit_id not in runtime.city.unit_ids:
        return _page(request, "message", title=i18n.word("unit_public", lang), nav=_public_nav(request),
                     status=404, heading="404", message=f"{i18n.word('unknown_unit', lang)} ({unit_id})")
    year = _year(request, runtime) if "year" in request.query_params else None
    page = await content.public_unit(runtime, unit_id, year)
    return _page(request, "public_unit", title=i18n.unit_name(runtime.city, unit_id, lang), nav=_public_nav(request),
                 page=page, year=page["year"], year_q=f"?year={page['year']}",
                 trend=figures.unit_history_chart(page, lang=lang))


@router.get("/public/track", tags=["pages"], response_model=None)
async def track(request: Request, code: str = "") -> Response:
    """The citizen's lookup: the browser goes to intake's public read (no server-side call between services).

    Intake's codes are upper case and its lookup is exact: a code typed in lower case, or with spaces
    around it, is put right here before the redirect."""
    code = code.strip().upper()
    if not TRACKING_CODE.match(code):
        lang = _lang(request)
        return _page(request, "message", title=i18n.word("tracking", lang), nav=_public_nav(request), status=422,
                     heading=i18n.word("tracking", lang), message=i18n.word("bad_code", lang),
                     link=("/public#tracking", i18n.word("back_to_public", lang)))
    base = _settings(request).intake_url.rstrip("/")
    return RedirectResponse(f"{base}/v1/feedback/{quote(code)}", status_code=303)


# --- the annual report -----------------------------------------------------------------------


@router.get("/v1/reports/annual/{year}", tags=["reports"], response_model=None)
async def annual_report(year: int, request: Request) -> Response:
    """Open for a finalized year; before that, for the commission and leaders (bearer or dashboard cookie)."""
    runtime = runtime_of(request)
    if not 1900 <= year <= 9999:
        raise PageError(422, "year must be a four-digit year", key="bad_year")
    # Who may read it first: the report is heavy, and anonymous callers may not make us build it.
    if await content.year_status(runtime, year) != "final":
        principal = _principal(request)
        if principal is None:
            raise PageError(401, f"the report of {year} is public once the year is finalized; until then sign in",
                            key="report_not_final", headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in REPORT_ROLES:
            raise PageError(403, f"role {principal.role} may not read the report of a year not finalized",
                            key="report_role")
    report = await content.annual_report(runtime, year)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(report)
    lang = _lang(request)
    charts = figures.report_charts(report, lang=lang, city=runtime.city)
    nav = [("/public", i18n.word("public", lang)), ("/dashboard", i18n.word("dashboard", lang))]
    return _page(request, "report", title=i18n.word("report", lang), nav=nav, r=report, charts=charts)
