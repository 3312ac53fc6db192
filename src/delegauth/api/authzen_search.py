"""OpenID AuthZEN Authorization API 1.0: the Search APIs (subject, resource, action).

Each search takes candidates from the policy store and the policy's p lines, then
keeps only those ``Decider.decide`` allows: nothing is listed that an evaluation
would deny. Only subjects of type "user" are searched; other types give no results.

- Subject search: ``action.name`` on ``resource.type`` in ``resource.properties.area``
  → ``{"type": "user", "id": "u_…"}`` for each user who may.
- Resource search: where may ``subject`` do ``action.name`` on ``resource.type``?
  A grant covers every resource of its type in an area, so each result stands for
  all of them: ``{"type": <resource.type>, "id": "a_…", "properties": {"area": "a_…"}}``,
  the id being the area's. A result can be sent as-is to the evaluation endpoint.
  Areas are those where the user holds a grant or a policy.csv line names the user;
  a policy.csv line naming the user in every area ("*") cannot be listed.
- Action search: what may ``subject`` do in ``resource.properties.area``? With
  ``resource.type``: ``{"name": "read"}`` per action on that type; without it
  (an extension: AuthZEN requires the type) every action on every type, as
  ``{"name": "read", "properties": {"resource_type": "invoice"}}``.

Ids (``subject.id`` in subject search, ``resource.id`` in the others) are ignored,
as the spec says. A missing area gives no results, as an evaluation without one
is denied.

Paging ("Pagination"): ``page: {"token", "limit"}`` in the request; every response
starts with ``page: {"next_token", "count"}``, ``next_token`` being "" on the last
page. Results come in a stable order (user id, area id, resource type then action).
``limit`` defaults to 100 and is capped at 1000; a follow-up request may leave it
out. The token is opaque (base64url JSON of a fingerprint of the query and the last
key returned); a token sent with a different query, or one not issued here, is a 400.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.authzen import MetadataResource, entity
from delegauth.api.authzen import metadata as evaluation_metadata
from delegauth.api.body import read_json, send_json
from delegauth.domain.ids import is_casbin_name
from delegauth.errors import InvalidInput
from delegauth.policy.bundle import ANY_DOMAIN
from delegauth.policy.decider import Decider

__all__ = ["SearchFeed", "add_search_routes", "metadata"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_USER = "user:"
_AREA = "area:"

Key = tuple[str, ...]


class SearchFeed(Protocol):
    """Who holds grants where (storage implements it: PeeweeSearchFeed)."""

    def subject_domains(self, subject: str) -> list[str]: ...
    def domain_subjects(self, domain: str) -> list[str]: ...


def metadata(base_url: str) -> dict[str, str]:
    """The PDP metadata once the search routes are added: every endpoint served."""
    base = base_url.rstrip("/")
    return {
        **evaluation_metadata(base_url),
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }


def add_search_routes(
    app: falcon.App,
    auth: Authenticator,
    decider: Decider,
    search_feed: SearchFeed,
    max_body: int,
    base_url: str,
) -> None:
    """Serve the three searches, and metadata that lists them (replacing the plain one)."""
    app.add_route(
        "/access/v1/search/subject", SubjectSearchResource(auth, decider, search_feed, max_body)
    )
    app.add_route(
        "/access/v1/search/resource", ResourceSearchResource(auth, decider, search_feed, max_body)
    )
    app.add_route("/access/v1/search/action", ActionSearchResource(auth, decider, max_body))
    app.add_route(
        "/.well-known/authzen-configuration", MetadataResource(base_url, metadata(base_url))
    )


# -- input ------------------------------------------------------------------------------


def _entity(body: dict[str, Any], name: str, required: tuple[str, ...]) -> dict[str, Any]:
    return entity(body.get(name), name, required)


def _area(resource: dict[str, Any]) -> str | None:
    """The Casbin domain the resource names, or None when no decision could allow."""
    area = (resource.get("properties") or {}).get("area")
    if not isinstance(area, str) or not is_casbin_name(_AREA + area):
        return None
    return _AREA + area


def _user(subject: dict[str, Any]) -> str | None:
    if subject["type"] != "user" or not is_casbin_name(_USER + subject["id"]):
        return None
    return _USER + subject["id"]


# -- paging -----------------------------------------------------------------------------


class _Page:
    """The request's ``page``: where to start and how many to return."""

    def __init__(self, body: dict[str, Any], search: str) -> None:
        page = body.get("page")
        if page is None:
            page = {}
        if not isinstance(page, dict):
            raise InvalidInput("page must be an object", field="page")
        query = {k: body.get(k) for k in ("subject", "action", "resource", "context")}
        canonical = json.dumps([search, query], sort_keys=True, separators=(",", ":"))
        self.fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:24]
        self.after: Key | None = None
        limit: Any = page.get("limit")
        token = page.get("token")
        if token is not None and not isinstance(token, str):
            raise InvalidInput("page.token must be a string", field="page")
        if token:
            state = self._decode(token)
            self.after = tuple(state["k"])
            limit = state["l"] if limit is None else limit
        if limit is None:
            limit = DEFAULT_LIMIT
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("page.limit must be a positive integer", field="page")
        self.limit = min(limit, MAX_LIMIT)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as ex:
            raise InvalidInput("page.token was not issued by this PDP", field="page") from ex
        valid = (
            isinstance(state, dict)
            and isinstance(state.get("k"), list)
            and all(isinstance(part, str) for part in state["k"])
            and isinstance(state.get("l"), int)
        )
        if not valid:
            raise InvalidInput("page.token was not issued by this PDP", field="page")
        if state.get("q") != self.fingerprint:
            raise InvalidInput(
                "page.token belongs to a different query: send the same subject, action, "
                "resource and context as the first request",
                field="page",
            )
        return dict(state)

    def token(self, last: Key) -> str:
        state = {"q": self.fingerprint, "k": list(last), "l": self.limit}
        raw = json.dumps(state, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def select(self, keys: Sequence[Key], allowed: Callable[[Key], bool]) -> tuple[list[Key], str]:
        """The next ``limit`` allowed keys of sorted ``keys``, and the token for the rest."""
        start = 0 if self.after is None else bisect.bisect_right(keys, self.after)
        found: list[Key] = []
        for key in keys[start:]:
            if not allowed(key):
                continue
            if len(found) == self.limit:
                # One more is allowed: there is a next page, and it is not empty.
                return found, self.token(found[-1])
            found.append(key)
        return found, ""


def _respond(resp: falcon.Response, results: list[dict[str, Any]], next_token: str) -> None:
    send_json(resp, {"page": {"next_token": next_token, "count": len(results)}, "results": results})


def _sorted(keys: Sequence[Key] | set[Key]) -> list[Key]:
    return sorted(set(keys))


# -- resources --------------------------------------------------------------------------


class SubjectSearchResource:
    def __init__(
        self, auth: Authenticator, decider: Decider, feed: SearchFeed, max_body: int
    ) -> None:
        self._auth = auth
        self._decider = decider
        self._feed = feed
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._auth.service(req)
        body = read_json(req, self._max)
        subject = _entity(body, "subject", ("type",))
        act = _entity(body, "action", ("name",))["name"]
        resource = _entity(body, "resource", ("type",))
        page = _Page(body, "subject")
        domain = _area(resource)
        if subject["type"] != "user" or domain is None:
            _respond(resp, [], "")
            return
        obj = resource["type"]
        # Users holding a grant here, and users a p line names here or in every area.
        named = {
            line[1]
            for line in self._decider.bundle.p_lines
            if len(line) >= 5 and line[1].startswith(_USER) and line[2] in (ANY_DOMAIN, domain)
        }
        keys = _sorted({(sub,) for sub in [*self._feed.domain_subjects(domain), *named]})
        found, token = page.select(keys, lambda k: self._decider.decide(k[0], domain, obj, act))
        _respond(resp, [{"type": "user", "id": k[0][len(_USER) :]} for k in found], token)


class ResourceSearchResource:
    def __init__(
        self, auth: Authenticator, decider: Decider, feed: SearchFeed, max_body: int
    ) -> None:
        self._auth = auth
        self._decider = decider
        self._feed = feed
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._auth.service(req)
        body = read_json(req, self._max)
        subject = _user(_entity(body, "subject", ("type", "id")))
        act = _entity(body, "action", ("name",))["name"]
        obj = _entity(body, "resource", ("type",))["type"]
        page = _Page(body, "resource")
        if subject is None:
            _respond(resp, [], "")
            return
        named = {
            line[2]
            for line in self._decider.bundle.p_lines
            if len(line) >= 5 and line[1] == subject and line[2].startswith(_AREA)
        }
        keys = _sorted({(dom,) for dom in [*self._feed.subject_domains(subject), *named]})
        found, token = page.select(keys, lambda k: self._decider.decide(subject, k[0], obj, act))
        results = []
        for (domain,) in found:
            area = domain[len(_AREA) :]
            results.append({"type": obj, "id": area, "properties": {"area": area}})
        _respond(resp, results, token)


class ActionSearchResource:
    def __init__(self, auth: Authenticator, decider: Decider, max_body: int) -> None:
        self._auth = auth
        self._decider = decider
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._auth.service(req)
        body = read_json(req, self._max)
        subject = _user(_entity(body, "subject", ("type", "id")))
        resource = _entity(body, "resource", ())
        obj = resource.get("type")
        if obj is not None and not isinstance(obj, str):
            raise InvalidInput("resource.type must be a string", field="resource")
        page = _Page(body, "action")
        domain = _area(resource)
        if subject is None or domain is None:
            _respond(resp, [], "")
            return
        keys = _sorted(
            {
                (line[3], line[4])
                for line in self._decider.bundle.p_lines
                if len(line) >= 5 and line[2] in (ANY_DOMAIN, domain) and obj in (None, line[3])
            }
        )
        found, token = page.select(keys, lambda k: self._decider.decide(subject, domain, *k))
        if obj is not None:
            results: list[dict[str, Any]] = [{"name": act} for _, act in found]
        else:
            results = [{"name": act, "properties": {"resource_type": t}} for t, act in found]
        _respond(resp, results, token)
