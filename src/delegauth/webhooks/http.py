"""POST a signed webhook with httpx: the only server-side module that imports it.

SSRF: the host is resolved here, every address it resolves to must be public (unless the
development setting allows private ones), and the request goes to the address that was
checked, with the name kept for the Host header, TLS SNI and certificate check. So a name
that resolves to a public address at check time cannot send us to an internal one at
connect time (DNS rebinding). Redirects are not followed, and only a little of the
answer is read.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from delegauth.domain.webhooks import is_public_address
from delegauth.errors import WebhookDeliveryError

__all__ = ["HttpxSender", "Resolver"]

Resolver = Callable[[str, int], list[str]]
_MAX_ERROR_BODY = 200


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HttpxSender:
    """Send one webhook and say how it went; raises WebhookDeliveryError unless 2xx."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        allow_private: bool = False,
        resolve: Resolver = _resolve,
        user_agent: str = "delegauth-webhooks/1",
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the checked address is used
        )
        self._allow_private = allow_private
        self._resolve = resolve
        self._user_agent = user_agent

    def close(self) -> None:
        self._client.close()

    def send(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """POST ``body``; return the response status (2xx)."""
        target, extensions, host_header = self._pinned(url)
        try:
            response = self._client.post(
                target,
                content=body,
                headers={
                    **headers,
                    "content-type": "application/json",
                    "user-agent": self._user_agent,
                    "host": host_header,
                },
                extensions=extensions,
            )
        except httpx.TimeoutException as ex:
            raise WebhookDeliveryError(f"timed out: {type(ex).__name__}") from ex
        except httpx.HTTPError as ex:
            raise WebhookDeliveryError(f"could not connect: {type(ex).__name__}: {ex}") from ex
        if 200 <= response.status_code < 300:
            return response.status_code
        snippet = response.text[:_MAX_ERROR_BODY]
        raise WebhookDeliveryError(
            f"answered {response.status_code}: {snippet}", status=response.status_code
        )

    def _pinned(self, url: str) -> tuple[str, dict[str, object], str]:
        """The URL with its host replaced by a checked address, the TLS name, the Host."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self._resolve(host, port)
        except OSError as ex:
            raise WebhookDeliveryError(f"could not resolve {host}: {ex}") from ex
        if not addresses:
            raise WebhookDeliveryError(f"could not resolve {host}")
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if not self._allow_private and not all(is_public_address(a) for a in parsed):
            raise WebhookDeliveryError(
                f"{host} resolves to a non-public address: refused", transient=False
            )
        address = parsed[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rsplit("@", 1)[-1]
        extensions: dict[str, object] = {}
        if parts.scheme == "https":
            extensions["sni_hostname"] = host
        return target, extensions, host_header
