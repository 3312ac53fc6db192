"""Access requests over JSON, shaped after the OpenID AuthZEN "Access Request and Approval
Profile" (Draft 1, profiles/authzen-access-request-approval in openid/authzen).

Where it fits, the draft's shapes are used as they are:

- ``POST /access/v1/requests`` submits a request and answers ``202 Accepted`` with a
  ``Location`` and a ``task`` (``id``, ``status``, ``status_endpoint``, ``expires_at``,
  ``links.cancel`` and ``links.ticket``); the body names the ``resource`` asked about, the
  ``requested_access`` and the requester's words in ``context.message``;
- ``GET /access/v1/requests/{id}`` is the Task Status Endpoint; an approved task carries a
  ``result`` in the draft's one completion mode, ``reevaluate`` (the PDP stays
  authoritative: ask ``/access/v1/evaluation`` again, with ``policy_version`` to read the
  approval's write);
- ``POST /access/v1/requests/{id}/cancel`` withdraws a pending request (the draft's
  cancellation; ``invalid_task_state`` when it is no longer pending);
- task statuses are the draft's: ``pending``, ``approved``, ``denied``, ``cancelled``,
  ``expired`` (declined and withdrawn in the pages' words).

Where it departs, and why:

- a request is not the answer to a denied evaluation: a person asks from their pages or
  their own token, so there is no ``denial`` binding (``evaluation_id``/``binding_token``)
  and decisions carry no ``context.access_request``; the caller is the subject (a
  ``subject`` member, if sent, must be the caller), and nothing is granted except by a
  manager's approval under the no-escalation rule;
- ``resource`` is ``{"type": "area", "id": …}`` (an area the caller is in) or
  ``{"type": "owner", "id": <email>}`` (the area of whoever owns that address); there is
  no ``action``: what is asked is ``requested_access.permissions``, catalogue names;
- the approver's side (which the draft leaves out of scope) is plain REST under
  ``/v1/areas/{area_id}/access-requests``; ``/v1/me/access-requests`` lists one's own;
- ``access_request_endpoint`` is in /.well-known/authzen-configuration, but no
  ``capabilities`` URN (the metadata's values are all strings);
- no callbacks, no ``Idempotency-Key`` (a second open request to the same place is a 409);
  problem types are the service's (``code`` members), not the
  draft's URNs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.api.views import grant_view, timestamp
from delegauth.domain.access_requests import AccessRequests
from delegauth.domain.entities import AccessRequest, AccessRequestStatus, User
from delegauth.domain.ports import Store
from delegauth.errors import InvalidInput

__all__ = ["add_access_request_routes", "metadata"]

# The draft's task statuses for ours.
_TASK_STATUS = {
    AccessRequestStatus.PENDING: "pending",
    AccessRequestStatus.APPROVED: "approved",
    AccessRequestStatus.DECLINED: "denied",
    AccessRequestStatus.WITHDRAWN: "cancelled",
    AccessRequestStatus.EXPIRED: "expired",
}


def task_view(request: AccessRequest, base: str, now: datetime) -> dict[str, Any]:
    """The requester's view: the draft's task, and what they asked, as they asked it (a
    request by email never names the area it reached)."""
    status = request.status_at(now)
    endpoint = f"{base}/access/v1/requests/{request.id}"
    task: dict[str, Any] = {
        "id": request.id,
        "status": _TASK_STATUS[status],
        "status_endpoint": endpoint,
        "expires_at": timestamp(request.expires_at),
        "links": {"ticket": f"{base}/access-requests"},
    }
    if status is AccessRequestStatus.PENDING:
        task["links"]["cancel"] = f"{endpoint}/cancel"
    if request.asked_email:
        resource: dict[str, str | None] = {"type": "owner", "id": request.asked_email}
    else:
        resource = {"type": "area", "id": request.area_id}
    body: dict[str, Any] = {
        "task": task,
        "request": {
            "resource": resource,
            "requested_access": {"permissions": request.permissions.to_json()},
            "context": {"message": request.message},
            "created_at": timestamp(request.created_at),
        },
    }
    if status is AccessRequestStatus.APPROVED and request.granted is not None:
        body["result"] = {
            "mode": "reevaluate",
            "approval": {
                "id": request.id,
                "approved_at": timestamp(request.updated_at),
                "permissions": request.granted.to_json(),
            },
        }
    return body


def review_view(request: AccessRequest, requester: User | None, now: datetime) -> dict[str, Any]:
    """The approver's view of a request to their area."""
    return {
        "id": request.id,
        "status": str(request.status_at(now)),
        "requester": (
            {"id": requester.id, "email": requester.email, "name": requester.name}
            if requester is not None
            else {"id": request.requester_id}
        ),
        "permissions": request.permissions.to_json(),
        "message": request.message,
        "created_at": timestamp(request.created_at),
        "expires_at": timestamp(request.expires_at),
    }


class _Submit:
    def __init__(
        self, auth: Authenticator, requests: AccessRequests, max_body: int, base: str
    ) -> None:
        self._auth, self._requests, self._max, self._base = auth, requests, max_body, base
        self._clock = requests.clock

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = self._auth.user(req)
        data = read_json(req, self._max, ("resource", "requested_access", "context"))
        resource = _object(data, "resource")
        access = _object(data, "requested_access", ("permissions",))
        context = data.get("context") or {}
        if not isinstance(context, dict) or set(context) - {"message"}:
            raise InvalidInput('context may hold only "message"', field="context")
        if set(resource) - {"type", "id"}:
            raise InvalidInput('resource holds "type" and "id"', field="resource")
        kind = resource.get("type")
        perms, message = access.get("permissions"), context.get("message")
        if kind == "area":
            request = self._requests.ask_area(claims.sub, resource.get("id"), perms, message)
        elif kind == "owner":
            request = self._requests.ask_owner(claims.sub, resource.get("id"), perms, message)
        else:
            raise InvalidInput('resource.type must be "area" or "owner"', field="resource")
        body = task_view(request, self._base, self._clock())
        resp.set_header("Location", body["task"]["status_endpoint"])
        send_json(resp, body, 202)


class _Task:
    def __init__(self, auth: Authenticator, requests: AccessRequests, base: str) -> None:
        self._auth, self._requests, self._base = auth, requests, base
        self._clock = requests.clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        request = self._requests.get_mine(self._auth.user(req).sub, request_id)
        send_json(resp, task_view(request, self._base, self._clock()))

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response, request_id: str) -> None:
        request = self._requests.withdraw(self._auth.user(req).sub, request_id)
        send_json(resp, task_view(request, self._base, self._clock()))


class _Mine:
    def __init__(self, auth: Authenticator, requests: AccessRequests, base: str) -> None:
        self._auth, self._requests, self._base = auth, requests, base
        self._clock = requests.clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._clock()
        mine = self._requests.mine(self._auth.user(req).sub)
        send_json(resp, {"access_requests": [task_view(r, self._base, now) for r in mine]})


class _AreaRequests:
    def __init__(
        self,
        auth: Authenticator,
        requests: AccessRequests,
        store: Store,
        max_body: int,
    ) -> None:
        self._auth, self._requests, self._store = auth, requests, store
        self._max, self._clock = max_body, requests.clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        now = self._clock()
        items = self._requests.pending(claims.sub, area_id)
        views = [review_view(r, self._store.get_user(r.requester_id), now) for r in items]
        send_json(resp, {"access_requests": views})

    def on_post_approve(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, request_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = _optional_json(req, self._max, ("permissions", "valid_until"))
        if "permissions" in data and data["permissions"] is None:
            raise InvalidInput('permissions must be "all" or a list of names', field="permissions")
        request, change = self._requests.approve(
            claims.sub, area_id, request_id, data.get("permissions"), data.get("valid_until")
        )
        assert change.grant is not None
        send_json(
            resp,
            {
                "access_request": review_view(
                    request, self._store.get_user(request.requester_id), self._clock()
                ),
                "member": grant_view(change.grant),
                "policy_version": change.version,
            },
        )

    def on_post_decline(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, request_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        request = self._requests.decline(claims.sub, area_id, request_id)
        requester = self._store.get_user(request.requester_id)
        send_json(resp, {"access_request": review_view(request, requester, self._clock())})


def _object(
    data: dict[str, Any], name: str, allowed: tuple[str, ...] | None = None
) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object", field=name)
    if allowed is not None and set(value) - set(allowed):
        raise InvalidInput(f"{name} may hold only {', '.join(allowed)}", field=name)
    return value


def _optional_json(req: falcon.Request, max_body: int, fields: tuple[str, ...]) -> dict[str, Any]:
    """An optional JSON object body: an approval with no body gives what was asked."""
    if not req.content_length:
        return {}
    return read_json(req, max_body, fields)


def metadata(base_url: str) -> dict[str, str]:
    """The PDP metadata the draft asks for ("Discovery"): where requests are submitted."""
    return {"access_request_endpoint": f"{base_url.rstrip('/')}/access/v1/requests"}


def add_access_request_routes(
    app: falcon.App,
    auth: Authenticator,
    requests: AccessRequests,
    store: Store,
    max_body: int,
    base: str,
) -> None:
    app.add_route("/access/v1/requests", _Submit(auth, requests, max_body, base))
    task = _Task(auth, requests, base)
    app.add_route("/access/v1/requests/{request_id}", task)
    app.add_route("/access/v1/requests/{request_id}/cancel", task, suffix="cancel")
    app.add_route("/v1/me/access-requests", _Mine(auth, requests, base))
    area = _AreaRequests(auth, requests, store, max_body)
    app.add_route("/v1/areas/{area_id}/access-requests", area)
    app.add_route(
        "/v1/areas/{area_id}/access-requests/{request_id}/approve", area, suffix="approve"
    )
    app.add_route(
        "/v1/areas/{area_id}/access-requests/{request_id}/decline", area, suffix="decline"
    )
