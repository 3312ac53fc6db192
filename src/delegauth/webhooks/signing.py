"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec v1), and the
per-endpoint secrets they use. The only module that imports ``standardwebhooks``.

Each endpoint has its own ``whsec_…`` secret. It is not stored: it is derived as
HMAC-SHA256(server webhook key, endpoint id and a random per-endpoint salt), so a copy of
the database alone reveals no secret, and the server can always sign again. The server
key is DELEGAUTH_WEBHOOK_KEY (base64, 32 bytes or more), or else ``webhook.key`` in the
key directory, created (mode 0600) at first start. Replicas must share it, like the
token signing keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from standardwebhooks.webhooks import Webhook

__all__ = ["WebhookKey", "new_salt", "signed_headers"]

_KEY_FILE = "webhook.key"
_MIN_KEY_BYTES = 32


def new_salt() -> str:
    """A fresh per-endpoint salt: a new salt is a new secret."""
    return secrets.token_hex(16)


def signed_headers(
    signing_secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp``, signed by
    each of ``signing_secrets`` (during a rotation: the new one, then the previous one). The spec's
    ``webhook-signature`` is a space-separated list: a receiver accepts any that matches."""
    signatures = [Webhook(secret).sign(msg_id, timestamp, body) for secret in signing_secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


class WebhookKey:
    """The server's webhook key: derives each endpoint's signing secret."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"the webhook key must be at least {_MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "WebhookKey(...)"  # never the key itself

    def secret(self, endpoint_id: str, salt: str) -> str:
        """The endpoint's ``whsec_…`` secret."""
        digest = hmac.new(
            self._key, f"delegauth webhook v1\0{endpoint_id}\0{salt}".encode(), hashlib.sha256
        ).digest()
        return "whsec_" + base64.b64encode(digest).decode("ascii")

    @classmethod
    def load_or_create(cls, configured: str, key_dir: str) -> WebhookKey:
        """The configured key (base64), else the key directory's file, created if missing."""
        if configured:
            try:
                return cls(base64.b64decode(configured + "=" * (-len(configured) % 4)))
            except (binascii.Error, ValueError) as ex:
                raise ValueError(
                    "DELEGAUTH_WEBHOOK_KEY must be base64 of at least 32 bytes"
                ) from ex
        path = Path(key_dir) / _KEY_FILE
        if not path.exists():
            try:
                cls._create(path)
            except OSError as ex:
                raise ValueError(
                    f"cannot create {path} ({ex.strerror}): set DELEGAUTH_WEBHOOK_KEY "
                    "(base64 of 32 random bytes, the same on every replica)"
                ) from ex
        return cls(path.read_bytes())

    @staticmethod
    def _create(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        try:
            os.link(draft, path)  # whole or not at all; fails if another process won
        except FileExistsError:
            pass
        finally:
            draft.unlink()
