"""Delivery of notifications: HMAC-signed webhooks and e-mail, retried with exponential backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notices import repository
from notices.settings import NoticesSettings

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Yardstick-Signature"


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>` of the body, keyed with the subscription's secret (given once, when subscribing)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def public_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def check_webhook_host(url: str, *, allow_private: bool) -> None:
    """At subscription: refuse a host that is a loopback, private or link-local address."""
    host = httpx.URL(url).host
    if allow_private:
        return
    if host in {"localhost", ""} or host.endswith(".localhost"):
        raise ValueError(f"webhook host {host!r} is not a public address")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked again, resolved, at every delivery
    if not public_address(host):
        raise ValueError(f"webhook host {host!r} is not a public address")


async def resolve_public(url: str) -> None:
    """At delivery: every address the name resolves to must be public (DNS may have changed)."""
    host = httpx.URL(url).host
    port = httpx.URL(url).port or 443
    infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(public_address(a) for a in addresses):
        raise PermissionError(f"webhook host {host!r} resolves to a non-public address")


async def send_webhook(client: httpx.AsyncClient, url: str, secret: str, payload: dict[str, Any],
                       *, allow_private: bool = False) -> None:
    if not allow_private:
        await resolve_public(url)
    body = body_of(payload)
    response = await client.post(url, content=body, headers={"Content-Type": "application/json",
                                                              SIGNATURE_HEADER: signature(secret, body)})
    response.raise_for_status()


def send_email(settings: NoticesSettings, to: str, payload: dict[str, Any]) -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = f"[Yardstick] {payload.get('type')} {payload.get('unit_id')} {payload.get('notice_id')}"
    message.set_content("\n".join(f"{k}: {v}" for k, v in sorted(payload.items())))
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        smtp.send_message(message)


def failure_reason(exc: Exception) -> str:
    """What a failed delivery records in `last_error`: the exception's class, and the SMTP code for
    an SMTP error, never its text. SMTPRecipientsRefused's text is the recipient's e-mail address,
    and servers echo addresses in their replies; addresses stay in the subscriptions table only."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return f"{name}: SMTP {', '.join(codes)}" if codes else name
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{name}: SMTP {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPException):
        return name
    return f"{name}: {exc}"[:500]


def backoff(settings: NoticesSettings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.delivery_backoff_s * 2 ** (attempts - 1), settings.delivery_backoff_max_s))


async def deliver_due(sessions: async_sessionmaker[AsyncSession], settings: NoticesSettings,
                      client: httpx.AsyncClient, now: datetime | None = None) -> int:
    """Send what is due; each attempt is recorded, a failure is retried later. Returns deliveries made.

    Due deliveries are first claimed in a short transaction (their next attempt moved past the
    time a send can take), then sent with no transaction open, and each outcome is written in
    a transaction of its own: a slow webhook or SMTP server holds no database locks, and a
    second instance skips what this one claimed. An instance that dies mid-send leaves its
    claim to expire, and the delivery is sent again then (at least once, like every webhook).
    """
    now = now or datetime.now(UTC)
    lease = timedelta(seconds=settings.webhook_timeout_s + settings.smtp_timeout_s + 30)
    async with sessions() as session, session.begin():
        due = await repository.due_deliveries(session, now=now, max_attempts=settings.delivery_max_attempts)
        for item in due:
            await repository.update_delivery(session, item["id"], {"next_attempt_at": now + lease})
        subs = {item["subscription_id"]: await repository.get_subscription(session, item["subscription_id"])
                for item in due}
    delivered = 0
    for item in due:
        sub = subs[item["subscription_id"]]
        attempts = item["attempts"] + 1
        try:
            if sub is None:
                raise LookupError("subscription removed")
            if item["channel"] == "webhook":
                await send_webhook(client, sub["webhook_url"], sub["secret"], item["payload"],
                                   allow_private=settings.webhook_allow_private)
            else:
                await asyncio.to_thread(send_email, settings, sub["email"], item["payload"])
        except Exception as exc:
            log.warning("notification delivery failed; will retry",
                        extra={"delivery": item["id"], "channel": item["channel"], "attempts": attempts,
                               "error": type(exc).__name__})
            outcome = {"attempts": attempts, "next_attempt_at": now + backoff(settings, attempts),
                       "last_error": failure_reason(exc)}
        else:
            outcome = {"attempts": attempts, "delivered_at": now}
            delivered += 1
        async with sessions() as session, session.begin():
            await repository.update_delivery(session, item["id"], outcome)
    return delivered
