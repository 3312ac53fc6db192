"""``Delegauth``: a backend service's one handle on delegauth (keys, decisions, guards)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from delegauth.client._decisions import DecisionClient, Evaluation, ServiceCredentials
from delegauth.client._exceptions import AccessDenied, KeysUnavailable, ServiceAuthFailed
from delegauth.client._guard import Requirement, bearer_token
from delegauth.client._transport import Transport
from delegauth.client._verify import AccessToken, KeySet, TokenVerifier

__all__ = ["Delegauth"]

DISCOVERY_PATH = "/.well-known/openid-configuration"


class Delegauth:
    """Verify delegauth's access tokens and ask it for decisions, over one HTTP pool.

    ``url`` is where this service reaches delegauth (paths are delegauth's own:
    /.well-known/jwks.json, /oauth/token, /access/v1/evaluation[s]). ``client_id`` and
    ``client_secret`` are this service's OAuth client (client_credentials, scope
    ``decisions``); without them tokens can still be verified. ``issuer`` defaults to
    the discovery document's, ``audience`` to the issuer. ``decision_ttl_s`` is how long
    a decision is reused (0: never). ``http_transport`` (an httpx transport) and the
    clocks are for tests.
    """

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        scope: str = "decisions",
        decision_ttl_s: float = 1.0,
        timeout_s: float = 5.0,
        leeway_s: int = 30,
        jwks_max_age_s: float = 300.0,
        jwks_min_refetch_s: float = 10.0,
        http_transport: Any = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = Transport(
            url, timeout=timeout_s, http_transport=http_transport, sleep=sleep
        )
        self.keys = KeySet(
            self._transport,
            max_age_s=jwks_max_age_s,
            min_refetch_s=jwks_min_refetch_s,
            clock=monotonic,
        )
        self._issuer = issuer
        self._issuer_lock = threading.Lock()
        self._verifier = TokenVerifier(
            self.keys, issuer or self._discover_issuer, audience, leeway_s=leeway_s, clock=clock
        )
        self.decisions: DecisionClient | None = None
        if client_id is not None and client_secret is not None:
            credentials = ServiceCredentials(
                self._transport, client_id, client_secret, scope=scope, clock=monotonic
            )
            self.decisions = DecisionClient(
                self._transport, credentials, cache_ttl_s=decision_ttl_s, clock=monotonic
            )

    def verify(self, token: str) -> AccessToken:
        """The verified access token (InvalidToken, ExpiredToken, KeysUnavailable)."""
        return self._verifier.verify(token)

    def evaluate(
        self,
        subject: str,
        area: str,
        resource_type: str,
        action: str,
        resource_id: str = "*",
        *,
        policy_version: int | None = None,
    ) -> bool:
        """May user ``subject`` do ``action`` on the resource in ``area``?

        Raises rather than answer anything but a real decision (DecisionUnavailable and
        its kin). ``policy_version``: the consistency token a grant write answered with.
        """
        evaluation = Evaluation(subject, area, resource_type, action, resource_id)
        return self._decisions().evaluate(evaluation, policy_version=policy_version)

    def evaluate_many(
        self, evaluations: Sequence[Evaluation], *, policy_version: int | None = None
    ) -> list[bool]:
        """Decisions for several questions, in order, in as few requests as possible."""
        return self._decisions().evaluate_many(evaluations, policy_version=policy_version)

    def authenticate(self, authorization: str | None) -> AccessToken:
        """The verified token of an ``Authorization`` header value (Unauthenticated)."""
        return self.verify(bearer_token(authorization))

    def check(
        self,
        token: AccessToken,
        requirement: Requirement,
        *,
        policy_version: int | None = None,
    ) -> None:
        """Ask whether the token's user meets ``requirement`` in the token's area;
        AccessDenied when not."""
        if token.area is None:
            raise AccessDenied("the token is not scoped to a Client Area")
        allowed = self.evaluate(
            token.sub,
            token.area,
            requirement.resource_type,
            requirement.action,
            requirement.resource_id,
            policy_version=policy_version,
        )
        if not allowed:
            raise AccessDenied(
                f"not allowed to {requirement.action} {requirement.resource_type} here"
            )

    def authorize(
        self, authorization: str | None, requirement: Requirement | None = None
    ) -> AccessToken:
        """What a guard does: verify the bearer token, then (with a requirement) ask."""
        token = self.authenticate(authorization)
        if requirement is not None:
            self.check(token, requirement)
        return token

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Delegauth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decisions(self) -> DecisionClient:
        if self.decisions is None:
            raise ServiceAuthFailed("no client credentials: pass client_id and client_secret")
        return self.decisions

    def _discover_issuer(self) -> str:
        if self._issuer is None:
            with self._issuer_lock:
                if self._issuer is None:
                    reply = self._transport.get(DISCOVERY_PATH, error=KeysUnavailable)
                    issuer = reply.body.get("issuer") if isinstance(reply.body, dict) else None
                    if reply.status != 200 or not isinstance(issuer, str) or not issuer:
                        raise KeysUnavailable(f"no issuer in {DISCOVERY_PATH} ({reply.status})")
                    self._issuer = issuer
        return self._issuer
