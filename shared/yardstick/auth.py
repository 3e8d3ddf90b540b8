"""Signed tokens (PyJWT), the revocation list fed by auth.v1, and FastAPI dependencies."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from fastapi import Request
from sqlalchemy import Column, DateTime, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yardstick import events
from yardstick.bus import Message, Subscription
from yardstick.bus.codec import decode
from yardstick.db import bulk_insert
from yardstick.errors import ApiError

Role = Literal["kiosk", "citizen", "staff", "coordinator", "commission", "leader", "assessor"]
ROLES: tuple[str, ...] = ("kiosk", "citizen", "staff", "coordinator", "commission", "leader", "assessor")
ALGORITHM = "HS256"
ISSUER = "yardstick"
# The `aud` claim every token carries; a deployment names its own (YARDSTICK_AUTH_AUDIENCE) so a
# token signed for one deployment, or for another system sharing the secret, is refused here.
AUDIENCE = "yardstick"


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    subject: str | None = None
    unit_id: str | None = None
    window_id: str | None = None

    def is_commission(self) -> bool:
        return self.role == "commission"

    def covers_unit(self, unit_id: str) -> bool:
        """Coordinators act for their own unit; the commission for all."""
        return self.role == "commission" or (self.role == "coordinator" and self.unit_id == unit_id)

    def covers_window(self, window_id: str) -> bool:
        return self.role == "kiosk" and self.window_id == window_id


def issue(secret: str, *, role: str, subject: str | None = None, unit_id: str | None = None,
          window_id: str | None = None, ttl_s: int | None = None,
          token_id: str | None = None, audience: str = AUDIENCE) -> tuple[str, dict[str, Any]]:
    """Sign a token; returns it with its claims (what the registry stores)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role == "kiosk" and not window_id:
        raise ValueError("a kiosk token needs --window")
    if role == "coordinator" and not unit_id:
        raise ValueError("a coordinator token needs --unit")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"jti": token_id or uuid.uuid4().hex, "iss": ISSUER, "aud": audience, "role": role,
                              "iat": int(now.timestamp())}
    if subject:
        claims["sub"] = subject
    if unit_id:
        claims["unit"] = unit_id
    if window_id:
        claims["window"] = window_id
    if ttl_s:
        claims["exp"] = int((now + timedelta(seconds=ttl_s)).timestamp())
    return jwt.encode(claims, secret, algorithm=ALGORITHM), claims


def revoked_table(metadata: MetaData) -> Table:
    """The revocations a service has seen, in its own database: they outlive a restart."""
    return Table(
        "revoked_tokens", metadata,
        Column("token_id", String(64), primary_key=True),
        Column("revoked_at", DateTime(timezone=True), nullable=False),
    )


class Revocations:
    """Token ids revoked anywhere; each instance keeps the set from the auth.v1 log.

    With a table, every revocation read from the log is also written to the service's database,
    and `load()` reads them back at start, before the first request: a restarted instance refuses a
    revoked token at once, instead of only once it has re-read auth.v1 (and not at all while the
    broker is down).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None = None,
                 table: Table | None = None) -> None:
        self.revoked: set[str] = set()
        self.sessions = sessions
        self.table = table

    def subscription(self, service: str, instance: str) -> Subscription:
        return Subscription(group=f"{service}-auth-{instance}", topics=[events.AUTH],
                            handler=self.handle, broadcast=True)

    async def load(self) -> int:
        if self.sessions is None or self.table is None:
            return 0
        async with self.sessions() as session:
            self.revoked.update(r[0] for r in await session.execute(select(self.table.c.token_id)))
        return len(self.revoked)

    async def handle(self, message: Message) -> None:
        envelope = decode(message)
        if not isinstance(envelope.data, events.TokenRevoked):
            return
        token_id = envelope.data.token_id
        self.revoked.add(token_id)
        if self.sessions is not None and self.table is not None:
            async with self.sessions() as session, session.begin():
                await bulk_insert(session, self.table, [{"token_id": token_id,
                                                         "revoked_at": envelope.data.revoked_at}],
                                  skip_conflicts=True)


class Authenticator:
    def __init__(self, secret: str | Callable[[], str], revocations: Revocations, *,
                 audience: str = AUDIENCE) -> None:
        self._secret = secret
        self.revocations = revocations
        self.audience = audience

    def secret(self) -> str:
        return self._secret() if callable(self._secret) else self._secret

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self.secret(), algorithms=[ALGORITHM], issuer=ISSUER, audience=self.audience,
                                options={"require": ["jti", "role", "iat", "aud"]})
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token expired; ask the commission for a new one") from exc
        except jwt.InvalidSignatureError as exc:
            raise ApiError(401, "invalid token: bad signature") from exc
        except jwt.InvalidAudienceError as exc:
            raise ApiError(401, f"invalid token: not issued for this deployment (audience {self.audience})") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise ApiError(401, f"invalid token: no {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise ApiError(401, "invalid token") from exc
        if claims["jti"] in self.revocations.revoked:
            raise ApiError(401, "token revoked")
        if claims["role"] not in ROLES:
            raise ApiError(401, "invalid token: unknown role")
        return Principal(token_id=claims["jti"], role=claims["role"], subject=claims.get("sub"),
                         unit_id=claims.get("unit"), window_id=claims.get("window"))

    def from_request(self, request: Request, *, optional: bool = False) -> Principal | None:
        header = request.headers.get("authorization", "")
        if not header:
            if optional:
                return None
            raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "expected 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
        return self.verify(token.strip())


def authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: a valid token (401 otherwise) with one of these roles (403 otherwise)."""
    allowed = set(roles)

    async def dependency(request: Request) -> Principal:
        principal = authenticator(request).from_request(request)
        assert principal is not None
        if allowed and principal.role not in allowed:
            raise ApiError(403, f"role {principal.role} may not do this; needs {' or '.join(sorted(allowed))}")
        return principal

    return dependency


async def optional_principal(request: Request) -> Principal | None:
    return authenticator(request).from_request(request, optional=True)


def ensure_unit(principal: Principal, unit_id: str, *, readers: Iterable[str] = ()) -> None:
    """403 unless the principal acts for this unit (or its role may read every unit)."""
    if principal.covers_unit(unit_id) or principal.role in set(readers):
        return
    raise ApiError(403, f"this token does not cover unit {unit_id}")
