"""Contact data encrypted at rest (Fernet), with a key derived from the auth secret unless configured."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret: str) -> bytes:
    """A Fernet key bound to this purpose, so the token-signing secret itself never encrypts data."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yardstick-intake",
               info=b"feedback contact data v1").derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


class ContactVault:
    """Seals and opens contact data; the key is read on first use (the one-process mode writes it late)."""

    def __init__(self, key: bytes | Callable[[], bytes]) -> None:
        self._key = key
        self._cached: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        if self._cached is None:
            self._cached = Fernet(self._key() if callable(self._key) else self._key)
        return self._cached

    def seal(self, contact: dict[str, str]) -> str | None:
        kept = {k: v for k, v in contact.items() if v}
        if not kept:
            return None
        return self._fernet.encrypt(json.dumps(kept, ensure_ascii=False).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            value: dict[str, str] = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise ValueError("contact data cannot be decrypted with the configured key") from exc
        return value
