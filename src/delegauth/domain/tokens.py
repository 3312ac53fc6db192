"""One-time secrets for emailed links: random, at least 128 bits, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_secret", "new_secret", "same_hash"]


def new_secret() -> str:
    """Return 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # The secrets are high-entropy, so a fast hash is enough (no salt or stretching needed).
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
