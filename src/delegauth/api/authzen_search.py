"""OpenID AuthZEN Authorization API 1.0: the Search APIs (subject, resource, action).

Each search takes candidates from the policy store and the policy files, then keeps
only those an evaluation of the same request allows (the request mapping of
policies/authzen.toml, then the Decider): nothing is listed that an evaluation would
deny. A request lacking what the mapping needs (the area, with the shipped policy) is
a 400, as for an evaluation.

- Subject search: who may do ``action.name`` on ``resource``? Candidates are the
  identities listed for ``subject.type`` (identities.toml), or, for delegauth users,
  the users holding a grant in the resource's area (and users a policy.csv line
  names there). Results: ``{"type": <subject.type>, "id": …}``, the id in the form
  the mapping resolves (a user id, or with ``ids = "emails"`` the verified email;
  a user who has not verified theirs is no result, as no evaluation resolves them).
- Resource search: which resources of ``resource.type`` may ``subject`` do
  ``action.name`` on? Candidates are the resources of that type listed in
  resources.toml, each decided with its listed properties. Results:
  ``{"type": <resource.type>, "id": …}``. Area ids are never results: a grant
  covers an area, not a resource. Grants on single resources add their resource ids
  as candidates (``managedomains@example.com`` held in the request's area: example.com),
  each decided like the rest; a grant on every resource lists none (nothing enumerates
  "every domain").
- Action search: what may ``subject`` do on ``resource``? Candidates are the actions
  the catalogue and the policy's rules name for ``resource.type``. Results:
  ``{"name": …}``. With the shipped policy and no ``resource.type`` (an extension:
  AuthZEN requires the type) every action on every type in the area, as
  ``{"name": "read", "properties": {"resource_type": "invoice"}}``.

Ids (``subject.id`` in subject search, ``resource.id`` in resource search) are
ignored, as the spec says.

Paging ("Pagination"): ``page: {"token", "limit"}`` in the request; every response
starts with ``page: {"next_token", "count", "total"}``, ``next_token`` being "" when
the response completes the result set. Results come in a stable order. ``limit`` is
a non-negative integer: it defaults to 100 and is capped at 1000; ``0`` returns no
results, only ``total`` and, when there are results, a token for the first page. A
follow-up request may leave ``limit`` out. The token is opaque (base64url JSON of a
fingerprint of the query and the last key returned); a token sent with a different
query, or one not issued here, is a 400.
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
from delegauth.api.authzen import MetadataResource, context_of, entity, integer
from delegauth.api.authzen import metadata as evaluation_metadata
from delegauth.api.body import read_json, send_json
from delegauth.domain.ids import SCOPE_SEP
from delegauth.errors import InvalidInput, InvalidToken
from delegauth.policy.bundle import ANY_DOMAIN, definition_tokens
from delegauth.policy.decider import Decider
from delegauth.policy.index import closure
from delegauth.policy.mapping import AREA_PROPERTY, EmailLookup, Refused, RequestMapping

__all__ = ["SearchFeed", "add_search_routes", "metadata"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_USER = "user:"

Key = tuple[str, ...]


class SearchFeed(Protocol):
    """Who holds grants where (storage implements it: PeeweeSearchFeed)."""

    def subject_domains(self, subject: str) -> list[str]: ...
    def domain_subjects(self, domain: str) -> list[str]: ...
    def verified_emails(self, subjects: list[str]) -> dict[str, str]: ...


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
    users_by_email: EmailLookup | None = None,
) -> None:
    """Serve the three searches, and metadata that lists them (replacing the plain one).

    ``users_by_email`` resolves the input subject of a type declared ``ids = "emails"``."""
    app.add_route(
        "/access/v1/search/subject", SubjectSearchResource(auth, decider, search_feed, max_body)
    )
    app.add_route(
        "/access/v1/search/resource",
        ResourceSearchResource(auth, decider, search_feed, max_body, users_by_email),
    )
    app.add_route(
        "/access/v1/search/action", ActionSearchResource(auth, decider, max_body, users_by_email)
    )
    app.add_route(
        "/.well-known/authzen-configuration", MetadataResource(base_url, metadata(base_url))
    )


# -- input ------------------------------------------------------------------------------


def _entity(body: dict[str, Any], name: str, required: tuple[str, ...]) -> dict[str, Any]:
    return entity(body.get(name), name, required)


# -- paging -----------------------------------------------------------------------------


class _Page:
    """The request's ``page``: where to start and how many to return."""

    def __init__(self, body: dict[str, Any], search: str) -> None:
        page = body.get("page")
        if page is None:
            page = {}
        if not isinstance(page, dict):
            raise InvalidInput("page must be an object", field="page")
        context_of(body)
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
        count = DEFAULT_LIMIT if limit is None else integer(limit)
        if count is None or count < 0:
            raise InvalidInput("page.limit must be a non-negative integer", field="page")
        self.limit = min(count, MAX_LIMIT)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as ex:
            raise InvalidToken("page.token was not issued by this PDP", field="page") from ex
        valid = (
            isinstance(state, dict)
            and isinstance(state.get("k"), list)
            and all(isinstance(part, str) for part in state["k"])
            and isinstance(state.get("l"), int)
        )
        if not valid:
            raise InvalidToken("page.token was not issued by this PDP", field="page")
        if state.get("q") != self.fingerprint:
            raise InvalidToken(
                "page.token belongs to a different query: send the same subject, action, "
                "resource and context as the first request",
                field="page",
            )
        return dict(state)

    def token(self, last: Key) -> str:
        state = {"q": self.fingerprint, "k": list(last), "l": self.limit}
        raw = json.dumps(state, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def select(
        self, keys: Sequence[Key], allowed: Callable[[Key], bool]
    ) -> tuple[list[Key], str, int]:
        """The next ``limit`` allowed keys of sorted ``keys``, the token for the rest ("" when
        none are left), and how many keys are allowed in all."""
        start = 0 if self.after is None else bisect.bisect_right(keys, self.after)
        total = sum(1 for key in keys[:start] if allowed(key))
        found: list[Key] = []
        more = False
        for key in keys[start:]:
            if not allowed(key):
                continue
            total += 1
            if len(found) < self.limit:
                found.append(key)
            else:
                more = True  # one more is allowed: the next page is not empty
        if not more:
            return found, "", total
        return found, self.token(found[-1] if found else self.after or ()), total


def _respond(
    resp: falcon.Response, results: list[dict[str, Any]], next_token: str, total: int | None = None
) -> None:
    page = {"next_token": next_token, "count": len(results), "total": len(results)}
    if total is not None:
        page["total"] = total
    send_json(resp, {"page": page, "results": results})


def _allows(
    decider: Decider,
    mapping: RequestMapping,
    body: dict[str, Any],
    token_area: str | None,
    users_by_email: EmailLookup | None = None,
) -> bool:
    """Whether an evaluation of ``body`` would allow, under the policy's mapping."""
    try:
        question = mapping.question(body, token_area=token_area, users_by_email=users_by_email)
    except (InvalidInput, KeyError):
        return False  # this candidate lacks what the mapping needs: it is not a result
    return not isinstance(question, str) and decider.decide_question(question)


def _domain(mapping: RequestMapping, resource: dict[str, Any], token_area: str | None) -> Any:
    """The resource's domain (InvalidInput when the request lacks it), or Refused."""
    try:
        return mapping.domain_of(resource, token_area)
    except Refused as ex:
        return ex


def _query(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("subject", "action", "resource", "context") if k in body}


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
        claims = self._auth.service(req)
        body = read_json(req, self._max)
        subject = _entity(body, "subject", ("type",))
        act = _entity(body, "action", ("name",))["name"]
        resource = _entity(body, "resource", ("type",))
        page = _Page(body, "subject")
        mapping = self._decider.bundle.mapping
        kind = subject["type"]
        resolve = mapping.subjects.get(kind)
        domain = _domain(mapping, resource, claims.area)  # a 400 if the request lacks it
        if resolve is None or isinstance(domain, Refused):
            _respond(resp, [], "", 0)
            return
        if resolve == "identities":
            query = _query(body)

            def listed(key: Key) -> bool:
                candidate = {**query, "subject": {"type": kind, "id": key[0]}}
                return _allows(self._decider, mapping, candidate, claims.area)

            keys: list[Key] = [(ident,) for ident in mapping.listed_subjects(kind)]
            found, token, total = page.select(keys, listed)
            _respond(resp, [{"type": kind, "id": k[0]} for k in found], token, total)
            return
        if domain is None or mapping.domain != AREA_PROPERTY:
            _respond(resp, [], "", 0)  # delegauth users are found through their areas
            return
        obj = resource["type"]
        # Users holding a grant here, and users a p line names here or in every area.
        named = {
            line[1]
            for line in self._decider.bundle.p_lines
            if len(line) >= 5 and line[1].startswith(_USER) and line[2] in (ANY_DOMAIN, domain)
        }
        candidates = sorted({*self._feed.domain_subjects(domain), *named})
        # Each result's id is the one an evaluation takes for this subject type: the
        # user id, or (ids = "emails") the verified email, without which none resolves.
        if resolve == "emails":
            ids = {email: sub for sub, email in self._feed.verified_emails(candidates).items()}
        else:
            ids = {sub[len(_USER) :]: sub for sub in candidates}
        keys = _sorted({(ident,) for ident in ids})
        found, token, total = page.select(
            keys, lambda k: self._decider.decide(ids[k[0]], domain, obj, act)
        )
        _respond(resp, [{"type": kind, "id": k[0]} for k in found], token, total)


class ResourceSearchResource:
    def __init__(
        self,
        auth: Authenticator,
        decider: Decider,
        feed: SearchFeed,
        max_body: int,
        users_by_email: EmailLookup | None = None,
    ) -> None:
        self._auth = auth
        self._decider = decider
        self._feed = feed
        self._max = max_body
        self._emails = users_by_email

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = self._auth.service(req)
        body = read_json(req, self._max)
        _entity(body, "subject", ("type", "id"))
        _entity(body, "action", ("name",))
        resource = _entity(body, "resource", ("type",))
        page = _Page(body, "resource")
        mapping = self._decider.bundle.mapping
        rtype = resource["type"]
        query = _query(body)

        def listed(key: Key) -> bool:
            props = mapping.resources.get((rtype, key[0]), {})
            candidate = {**query, "resource": {"type": rtype, "id": key[0], "properties": props}}
            return _allows(self._decider, mapping, candidate, claims.area, self._emails)

        scoped = self._scoped_ids(mapping, body["subject"], resource, claims.area)

        def allowed(key: Key) -> bool:
            if key[0] in scoped:
                # Named by a grant: decided with the request's own properties (its area).
                sent = resource.get("properties") or {}
                props = {**sent, **mapping.resources.get((rtype, key[0]), {})}
                candidate = {
                    **query,
                    "resource": {"type": rtype, "id": key[0], "properties": props},
                }
                if _allows(self._decider, mapping, candidate, claims.area, self._emails):
                    return True
            return listed(key)

        keys = _sorted({(ident,) for ident in [*mapping.listed_resources(rtype), *scoped]})
        found, token, total = page.select(keys, allowed)
        _respond(resp, [{"type": rtype, "id": k[0]} for k in found], token, total)

    def _scoped_ids(
        self,
        mapping: RequestMapping,
        subject: dict[str, Any],
        resource: dict[str, Any],
        token_area: str | None,
    ) -> set[str]:
        """The resource ids the subject's grants on single resources name in the area."""
        if not self._decider.resource_scoped:
            return set()
        user = mapping.user_of(subject, self._emails)
        try:
            domain = _domain(mapping, resource, token_area)
        except InvalidInput:
            return set()  # no area named: only the listed resources are candidates
        if user is None or not isinstance(domain, str):
            return set()
        links = self._decider.area_links(domain)
        ids: set[str] = set()
        for role in closure(user, links):
            at = role.find(SCOPE_SEP)
            while at >= 0:  # every split, as the matcher compares the whole role name
                ids.add(role[at + 1 :])
                at = role.find(SCOPE_SEP, at + 1)
        return ids


class ActionSearchResource:
    def __init__(
        self,
        auth: Authenticator,
        decider: Decider,
        max_body: int,
        users_by_email: EmailLookup | None = None,
    ) -> None:
        self._auth = auth
        self._decider = decider
        self._max = max_body
        self._emails = users_by_email

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = self._auth.service(req)
        body = read_json(req, self._max)
        subject = _entity(body, "subject", ("type", "id"))
        resource = _entity(body, "resource", ())
        obj = resource.get("type")
        if obj is not None and not isinstance(obj, str):
            raise InvalidInput("resource.type must be a string", field="resource")
        page = _Page(body, "action")
        mapping = self._decider.bundle.mapping
        if mapping.domain != AREA_PROPERTY or not self._decider.fast:
            if obj is None:
                raise InvalidInput(
                    "resource.type is required and must be a string", field="resource"
                )
            query = _query(body)

            def allowed(key: Key) -> bool:
                candidate = {**query, "action": {"name": key[0]}}
                return _allows(self._decider, mapping, candidate, claims.area, self._emails)

            keys = _sorted({(name,) for name in _actions_named(self._decider, obj)})
            found, token, total = page.select(keys, allowed)
            _respond(resp, [{"name": k[0]} for k in found], token, total)
            return
        user = mapping.user_of(subject, self._emails)
        domain = _domain(mapping, resource, claims.area)
        if user is None or isinstance(domain, Refused) or domain is None:
            _respond(resp, [], "", 0)
            return
        keys = _sorted(
            {
                (line[3], line[4])
                for line in self._decider.bundle.p_lines
                if len(line) >= 5 and line[2] in (ANY_DOMAIN, domain) and obj in (None, line[3])
            }
        )
        found, token, total = page.select(keys, lambda k: self._decider.decide(user, domain, *k))
        if obj is not None:
            results: list[dict[str, Any]] = [{"name": act} for _, act in found]
        else:
            results = [{"name": act, "properties": {"resource_type": t}} for t, act in found]
        _respond(resp, results, token, total)


def _actions_named(decider: Decider, obj: str) -> set[str]:
    """The actions the catalogue and the policy's rules name for resource type ``obj``."""
    bundle = decider.bundle
    names = {act for perm in bundle.catalogue for rtype, act in perm.actions if rtype == obj}
    tokens = definition_tokens(bundle.model_text, "policy_definition", "p")
    if "act" in tokens:
        at_act, at_obj = tokens.index("act") + 1, tokens.index("obj") + 1 if "obj" in tokens else 0
        for line in bundle.p_lines:
            if line[0] == "p" and len(line) > at_act and (not at_obj or line[at_obj] == obj):
                names.add(line[at_act])
    return names
