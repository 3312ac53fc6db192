"""HTTP to delegauth over one pooled httpx client: the only module that imports httpx.

Retries only where sending again cannot do harm: a connection that could not be made
(the request never left), and a 503 whose ``Retry-After`` is short, a bounded number of
times. A timeout after sending, a dropped connection or any other failure is raised at
once as the caller's ``Unavailable`` kind, never retried and never read as an answer.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from delegauth.client._exceptions import DecisionUnavailable, Unavailable

__all__ = ["Reply", "Transport"]

USER_AGENT = "delegauth-client/0.1"


@dataclass(frozen=True)
class Reply:
    """A response: status, lower-cased headers and the JSON body (None when not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any


class Transport:
    """One connection pool to one delegauth base URL.

    ``http_transport`` is an ``httpx.BaseTransport`` (such as ``httpx.MockTransport``)
    for tests; ``sleep`` is what waits out a ``Retry-After``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        retries: int = 1,
        max_retry_wait: float = 1.0,
        http_transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retries = retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            transport=http_transport,
            follow_redirects=False,  # an answer is delegauth's own, never another host's
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def get(self, path: str, *, error: type[Unavailable] = DecisionUnavailable) -> Reply:
        return self._send("GET", path, error=error)

    def post(
        self,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        basic: tuple[str, str] | None = None,
        bearer: str | None = None,
        error: type[Unavailable] = DecisionUnavailable,
    ) -> Reply:
        headers: dict[str, str] = {}
        if basic is not None:
            # RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
            pair = f"{quote(basic[0], safe='')}:{quote(basic[1], safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return self._send(
            "POST", path, headers=headers, json_body=json_body, form=form, error=error
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        error: type[Unavailable],
    ) -> Reply:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, headers=headers, json=json_body, data=form
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as ex:
                # The request never left this process: sending it again is safe.
                if attempt < self._retries:
                    attempt += 1
                    continue
                raise error(f"cannot reach delegauth at {self.base_url}: {ex}") from ex
            except httpx.HTTPError as ex:
                # It may have been received (a read timeout, a dropped connection): no retry.
                raise error(f"delegauth did not answer {method} {path}: {ex!r}") from ex
            if response.status_code == 503 and attempt < self._retries:
                wait = _retry_after(response.headers.get("retry-after"))
                if wait is not None and wait <= self._max_retry_wait:
                    attempt += 1
                    self._sleep(wait)
                    continue
            return Reply(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                _json_or_none(response),
            )

    def close(self) -> None:
        self._http.close()


def _retry_after(value: str | None) -> float | None:
    """Delay seconds of a ``Retry-After`` header (an HTTP date is not waited for)."""
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return float(int(text))


def _json_or_none(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None
