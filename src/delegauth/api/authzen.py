"""OpenID AuthZEN Authorization API 1.0: access evaluation(s) and PDP metadata.

A request names subject {type: "user", id}, action {name} and resource {type, id,
properties: {area}}; it is decided as Casbin request (user:<id>, area:<area>,
<resource type>, <action name>). Unknown users, areas and actions are simply deny.
Unknown fields are ignored (AuthZEN "JSON Serialization").
"""

from __future__ import annotations

from typing import Any

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.errors import InvalidInput
from delegauth.policy.decider import Decider

__all__ = ["EvaluationResource", "EvaluationsResource", "MetadataResource"]

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
MAX_EVALUATIONS = 256


def _entity(value: object, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object", field=name)
    for key in keys:
        if not isinstance(value.get(key), str):
            raise InvalidInput(f"{name}.{key} is required and must be a string", field=name)
    props = value.get("properties")
    if props is not None and not isinstance(props, dict):
        raise InvalidInput(f"{name}.properties must be an object", field=name)
    return value


def _request(body: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """The Casbin request for one evaluation, or None when it can only be denied."""
    subject = _entity(body.get("subject"), "subject", ("type", "id"))
    action = _entity(body.get("action"), "action", ("name",))
    resource = _entity(body.get("resource"), "resource", ("type", "id"))
    area = (resource.get("properties") or {}).get("area")
    if subject["type"] != "user" or not isinstance(area, str):
        return None
    return ("user:" + subject["id"], "area:" + area, resource["type"], action["name"])


class EvaluationResource:
    def __init__(self, auth: Authenticator, decider: Decider, max_body: int) -> None:
        self._auth = auth
        self._decider = decider
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._auth.service(req)
        request = _request(read_json(req, self._max))
        send_json(resp, {"decision": request is not None and self._decider.decide(*request)})


class EvaluationsResource:
    def __init__(self, auth: Authenticator, decider: Decider, max_body: int) -> None:
        self._auth = auth
        self._decider = decider
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._auth.service(req)
        body = read_json(req, self._max)
        items = body.get("evaluations")
        if items is None or items == []:
            request = _request(body)  # behaves as a single evaluation
            send_json(resp, {"decision": request is not None and self._decider.decide(*request)})
            return
        if not isinstance(items, list) or len(items) > MAX_EVALUATIONS:
            raise InvalidInput(
                f"evaluations must be an array of at most {MAX_EVALUATIONS} objects",
                field="evaluations",
            )
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidInput("options must be an object", field="options")
        semantic = options.get("evaluations_semantic", "execute_all")
        if semantic not in SEMANTICS:
            raise InvalidInput(
                "evaluations_semantic must be one of " + ", ".join(SEMANTICS), field="options"
            )
        defaults: dict[str, Any] = {
            k: body[k] for k in ("subject", "action", "resource", "context") if k in body
        }
        # Validate every item before deciding any: a malformed payload is a 400 as a whole.
        requests = []
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput("each evaluation must be an object", field="evaluations")
            requests.append(_request({**defaults, **item}))
        results: list[dict[str, Any]] = []
        for request in requests:
            decision = request is not None and self._decider.decide(*request)
            results.append({"decision": decision})
            if semantic == "deny_on_first_deny" and not decision:
                break
            if semantic == "permit_on_first_permit" and decision:
                break
        send_json(resp, {"evaluations": results})


class MetadataResource:
    def __init__(self, base_url: str) -> None:
        base = base_url.rstrip("/")
        self._doc = {
            "policy_decision_point": base,
            "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, self._doc)
