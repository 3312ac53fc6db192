"""Read the environment once into a frozen Settings.

This is the only module that looks at ``os.environ``; everything else receives a
``Settings`` (or the values it needs) through its constructor.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Settings", "load_settings", "parse_area_cache"]


def _default_policies_dir() -> str:
    # A checkout keeps policies/ next to src/; an installed copy falls back to ./policies.
    here = Path(__file__).resolve().parents[2] / "policies"
    return str(here if here.is_dir() else Path.cwd() / "policies")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service, with development defaults."""

    database_url: str = "sqlite:///var/delegauth.sqlite3"
    # Every database call is bounded, so a hung database fails requests (503) instead of
    # hanging them. Connecting, and waiting for a free pooled connection (PostgreSQL):
    db_connect_timeout_s: float = 2.0
    # One statement or lock wait (PostgreSQL; the client gives up half a second later).
    db_statement_timeout_ms: int = 2000
    # Waiting for another writer's lock (SQLite).
    db_busy_timeout_ms: int = 1000
    issuer: str = "http://127.0.0.1:8000"
    public_url: str = "http://127.0.0.1:8000"
    policies_dir: str = field(default_factory=_default_policies_dir)
    smtp_url: str = "file:var/mail.mbox"
    mail_from: str = "delegauth <no-reply@localhost>"
    key_dir: str = "var/keys"
    access_token_minutes: int = 10
    refresh_token_days: int = 30
    # Algorithm of keys created at first start and by `keys rotate`: ES256, RS256 or EdDSA.
    # ES256 by default: it signs about 10x faster than RS256 (bench/tokens.py).
    signing_algorithm: str = "ES256"
    invitation_days: int = 7
    # Grants that end: the delegate is reminded this long before (DELEGAUTH_EXPIRY_REMINDER_DAYS;
    # 0: no reminder), and the sweep that sends reminders and records lapses runs this often.
    expiry_reminder_days: float = 3.0
    expiry_sweep_s: float = 30.0
    verification_hours: int = 48
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    # The HTTP server `serve` runs: granian, gunicorn-gthread or gunicorn-sync (serving.py).
    server: str = "granian"
    # Python threads per worker; 0: the server's default (serving.py).
    threads: int = 0
    change_poll_ms: int = 50
    # How often each worker looks for a changed policies/ (SIGHUP checks at once).
    policy_poll_s: float = 2.0
    # Decisions fail closed (503) when the change log has not been read for this long.
    max_staleness_s: float = 5.0
    # The areas each worker holds for decisions: a count ("500000") or a size ("512MiB",
    # "1GiB"; estimated at about 1.2 KiB per area of 4 grants). Past it, the least recently
    # used are evicted and read again on their next use.
    area_cache: str = "500000"
    # At start, each worker loads up to this many areas in bulk (never past area_cache), and
    # /readyz says not ready until it is done. 0 turns the warm-up off.
    warmup_areas: int = 500_000
    max_body_bytes: int = 64 * 1024
    mail_max_attempts: int = 8
    # A provider's look: a stylesheet appended to ours, a logo and a name for the pages.
    brand_css: str = ""
    brand_logo: str = ""
    brand_name: str = ""
    background: bool = True
    log_level: str = "INFO"
    # Development only: serve OAuth on plain http on a host that is not loopback.
    insecure_http: bool = False
    # Webhooks: the server key their secrets derive from (base64; default: webhook.key in
    # key_dir), each POST's bound, attempts before giving up, how often each worker looks
    # for deliveries another process queued (its own are sent at once).
    webhook_key: str = ""
    webhook_timeout_s: float = 10.0
    webhook_max_attempts: int = 8
    webhook_poll_ms: int = 500
    # Development only: webhook URLs may be plain http and name loopback or private hosts.
    webhooks_insecure: bool = False

    @property
    def key_overlap_s(self) -> int:
        """How long a replaced signing key keeps verifying: past every token it signed."""
        return self.access_token_minutes * 60 + 120

    def transport_problem(self) -> str | None:
        """Why the issuer or public URL cannot serve OAuth, or None when they can.

        OAuth 2.0 needs TLS (RFC 6749 §1.6): plain http is allowed on loopback only
        (RFC 8252 §7.3), or everywhere with ``DELEGAUTH_INSECURE_HTTP=1`` (development).
        """
        if self.insecure_http:
            return None
        for name, url in (("ISSUER", self.issuer), ("PUBLIC_URL", self.public_url)):
            if not _secure_transport(url):
                return (
                    f"{_ENV_PREFIX}{name}={url} is not https, and plain http is allowed only on "
                    f"loopback (localhost, 127.0.0.1, ::1): use https, or set "
                    f"{_ENV_PREFIX}INSECURE_HTTP=1 for development"
                )
        return None

    @property
    def area_cache_bound(self) -> tuple[int, int]:
        """``area_cache`` as (areas, bytes); 0 means no bound of that kind."""
        return parse_area_cache(self.area_cache)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_ENV_PREFIX = "DELEGAUTH_"


_SIZE_UNITS = {
    **{"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9},
    **{"kib": 2**10, "mib": 2**20, "gib": 2**30},
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_area_cache(text: str) -> tuple[int, int]:
    """``DELEGAUTH_AREA_CACHE``: a number of areas, or bytes with a unit (B, KB, MB, GB,
    KiB, MiB, GiB), as (areas, bytes). Raises ValueError for anything else."""
    match = _SIZE.match(text.lower())
    unit = match.group(2) if match else ""
    if match is None or (unit and unit not in _SIZE_UNITS):
        raise ValueError(
            f"{_ENV_PREFIX}AREA_CACHE={text!r}: give a number of areas (500000) or a size "
            "(512MiB, 2GiB)"
        )
    if not unit:
        if "." in match.group(1) or int(match.group(1)) < 1:
            raise ValueError(f"{_ENV_PREFIX}AREA_CACHE={text!r}: a number of areas is 1 or more")
        return int(match.group(1)), 0
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"{_ENV_PREFIX}AREA_CACHE={text!r}: a size must be more than 0")
    return 0, size


def _secure_transport(url: str) -> bool:
    """https, or http on a loopback host: the same rule as Authlib's transport check."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from DELEGAUTH_* variables; unknown variables are ignored."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, object] = {}
    for name, fld in Settings.__dataclass_fields__.items():
        raw = env.get(_ENV_PREFIX + name.upper())
        if raw is None:
            continue
        current = getattr(defaults, name)
        if isinstance(current, bool):
            values[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
        elif isinstance(current, int):
            values[name] = int(raw)
        elif isinstance(current, float):
            values[name] = float(raw)
        else:
            values[name] = raw
        del fld
    if "issuer" in values and "public_url" not in values:
        values["public_url"] = values["issuer"]
    parse_area_cache(str(values.get("area_cache", defaults.area_cache)))  # refuse it now
    return replace(defaults, **values)  # type: ignore[arg-type]
