"""The JSON error shape of api.md and the handlers that produce it for every service."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "payload_too_large",
          415: "unsupported_media_type",
          422: "invalid", 429: "rate_limited", 503: "unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details or []
        self.headers = headers


def error_body(status: int, message: str, code: str | None = None,
               details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code or _CODES.get(status, "error"), "message": message,
                      "details": details or []}}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        # Never echo the input back: it may hold a phone number or an e-mail address.
        out.append({"loc": [str(p) for p in err.get("loc", ())], "message": err.get("msg", ""),
                    "type": err.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message, exc.code, exc.details),
                            status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        where = ", ".join(".".join(d["loc"][1:] or d["loc"]) + ": " + d["message"] for d in details[:5])
        return JSONResponse(error_body(422, f"invalid request: {where}", "invalid", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


class BodyLimit:
    """413 for bodies over the limit, before anything is parsed (api.md: 1 MiB, surveys 64 MiB); 408 for
    bodies that take too long to arrive.

    The read timeout counts only the time spent waiting for the client's bytes, summed over the
    body: a client dribbling a byte a second holds a connection and a request for at most that long,
    while the app's own work between reads (a survey upload stores rows as it reads) is not counted.
    """

    def __init__(self, app: ASGIApp, limit: int, large_prefixes: tuple[str, ...] = (),
                 large_limit: int = 64 * 1024 * 1024, read_timeout_s: float = 30.0,
                 large_read_timeout_s: float = 600.0) -> None:
        self.app = app
        self.limit = limit
        self.large_prefixes = large_prefixes
        self.large_limit = large_limit
        self.read_timeout_s = read_timeout_s
        self.large_read_timeout_s = large_read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        large = any(path.startswith(p) and path.endswith("/responses") for p in self.large_prefixes)
        limit = self.large_limit if large else self.limit
        allowed_s = self.large_read_timeout_s if large else self.read_timeout_s
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._reject(send, 413, f"body over {limit} bytes")
                return
        loop = asyncio.get_running_loop()
        received = 0
        waited = 0.0
        complete = False
        started = False
        rejected = False

        # Over the limit or out of time mid-stream, answer here and tell the app the client went away;
        # raising instead does not work: FastAPI turns any error while reading the body into a 400,
        # and BaseHTTPMiddleware wraps errors of receive() in an ExceptionGroup.
        async def limited() -> Message:
            nonlocal received, waited, complete, rejected
            if rejected:
                return {"type": "http.disconnect"}
            if complete:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            began = loop.time()
            try:
                async with asyncio.timeout(max(allowed_s - waited, 0.0)):
                    message = await receive()
            except TimeoutError:
                rejected = True
                if not started:
                    await self._reject(send, 408, f"the body did not arrive within {allowed_s:g} s")
                return {"type": "http.disconnect"}
            finally:
                waited += loop.time() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    rejected = True
                    if not started:
                        await self._reject(send, 413, f"body over {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the app's answer to the "disconnect": the client has its 413 or 408
            started = True
            await send(message)

        await self.app(scope, limited, guarded)

    async def _reject(self, send: Send, status: int, message: str) -> None:
        # Connection: close, so the server drops the rest of the body instead of reading on.
        body = JSONResponse(error_body(status, message), status_code=status, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": status, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})
