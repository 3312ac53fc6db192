"""OpenID AuthZEN Authorization API 1.0: access evaluation(s) and PDP metadata.

A request names subject {type, id}, action {name} and resource {type, id,
properties}; policies/authzen.toml says how it becomes a Casbin request
(delegauth.policy.mapping). With the shipped policy: subject {type: "user", id},
resource {type, id, properties: {area}}, decided as (user:<id>, area:<area>,
<resource type>, <action name>). A request lacking what the mapping needs (the
area, say) is a 400 naming the field; unknown subjects, areas and actions are deny.
Unknown fields are ignored (AuthZEN "JSON Serialization").

Batches (``/access/v1/evaluations``, AuthZEN "Errors"): what is wrong with the payload
as a whole is a 400 (not JSON, ``evaluations`` not an array of at most 256 objects,
``options`` or a top-level default malformed). An item that cannot be evaluated (it
lacks a field and has no default for it, or lacks what the mapping needs) is
``{"decision": false, "context": {"error": {"status": 400, "message": …}}}`` in its
place, the error with the members of a whole request's problem+json; the others are
decided, and the response is 200. Such an item counts as a deny for the semantics.

Explanations: a request whose ``context`` holds ``"explain": true`` gets the Decision
context ``{"explanation": {...}}`` (see delegauth.policy.explanations): the policy
version, the grants and rules that applied, or why nothing matched. Without it the
response is exactly ``{"decision": …}``. In a batch each evaluation's own context
(or the shared default) decides whether that evaluation is explained.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

import falcon

from delegauth import metrics
from delegauth.api.auth import Authenticator
from delegauth.api.body import dump_json, read_json, send_json, send_json_text
from delegauth.api.common_shape import Evaluation
from delegauth.api.problems import authzen_error
from delegauth.domain.ids import casbin_tail
from delegauth.errors import InvalidInput
from delegauth.policy.decider import Decider
from delegauth.policy.explanations import explain_decision, explain_question, explain_refusal
from delegauth.policy.mapping import EmailLookup, Question

__all__ = [
    "EvaluationResource",
    "EvaluationsResource",
    "MetadataResource",
    "all_plain",
    "metadata",
    "plain_evaluation",
    "plain_requests",
]

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
MAX_EVALUATIONS = 256


def entity(value: object, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """An AuthZEN entity (subject, action or resource) with its required string keys."""
    if value is None:
        raise InvalidInput(f"{name} is required and must be an object", field=name)
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be an object", field=name)
    for key in keys:
        if not isinstance(value.get(key), str):
            raise InvalidInput(f"{name}.{key} is required and must be a string", field=name)
    props = value.get("properties")
    if props is not None and not isinstance(props, dict):
        raise InvalidInput(f"{name}.properties must be an object", field=name)
    return value


def resource_area(resource: dict[str, Any]) -> str | None:
    """``resource.properties.area``: None when absent, InvalidInput when not a string."""
    props = resource.get("properties") or {}
    if "area" not in props:
        return None
    area = props["area"]
    if not isinstance(area, str):
        raise InvalidInput("resource.properties.area must be a string", field="resource")
    return str(area)


def context_of(body: dict[str, Any]) -> dict[str, Any]:
    """The request's ``context`` (absent or null: empty), its policy_version checked.

    Only ``"explain": true`` asks for an explanation; any other value of it does not."""
    context = body.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise InvalidInput("context must be an object", field="context")
    if "policy_version" in context:
        value = integer(context["policy_version"])
        if value is None or value < 0:
            raise InvalidInput(
                "context.policy_version must be a non-negative integer", field="context"
            )
    return context


def integer(value: object) -> int | None:
    """A JSON integer as JSON Schema counts them (``3`` or ``3.0``, never ``true``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _request(
    decider: Decider,
    body: dict[str, Any],
    token_area: str | None,
    users_by_email: EmailLookup | None = None,
) -> Request:
    """The Casbin request for one evaluation, or why it can only be denied (InvalidInput
    when it lacks what the policy's request mapping needs)."""
    entity(body.get("subject"), "subject", ("type", "id"))
    entity(body.get("action"), "action", ("name",))
    resource_area(entity(body.get("resource"), "resource", ("type", "id")))
    context_of(body)
    return decider.bundle.mapping.question(
        body, token_area=token_area, users_by_email=users_by_email
    )


def _wants_explanation(body: dict[str, Any]) -> bool:
    return context_of(body).get("explain") is True


def _consistency(body: dict[str, Any]) -> int:
    """The change-log version the caller must not see the world before (0: none).

    A grant write answers with the ``policy_version`` it produced; a caller that passes it
    back in ``context.policy_version`` never gets a decision from before its write.
    """
    return integer(context_of(body).get("policy_version", 0)) or 0


Request = Question | str


def _decision(
    decider: Decider, body: dict[str, Any], request: Request, tally: metrics.DecisionTally
) -> dict[str, Any]:
    """The Decision for one validated evaluation (``request`` is ``_request(body)``):
    decide (counted in ``tally``), then explain if asked."""
    if isinstance(request, str):
        decision: dict[str, Any] = {"decision": False}
        if _wants_explanation(body):
            decision["context"] = {"explanation": explain_refusal(decider, request)}
        return decision
    started = time.perf_counter()
    allowed = decider.decide_question(request)
    tally.add(allowed, time.perf_counter() - started)
    decision = {"decision": allowed}
    if _wants_explanation(body):
        if decider.fast and request.domain is not None:
            asked = (request.subject, request.domain, request.obj, request.act)
            explanation = explain_decision(
                decider, asked, allowed, resource_id=request.resource_id or ""
            )
        else:
            explanation = explain_question(decider, request, allowed)
        decision["context"] = {"explanation": explanation}
    return decision


class EvaluationResource:
    """``users_by_email`` resolves subjects of a type declared ``ids = "emails"``."""

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
        decision = _single(self._decider, body, claims.area, self._emails)
        self._auth.still_valid(claims)
        _send_decision(resp, decision)


def _single(
    decider: Decider,
    body: dict[str, Any],
    token_area: str | None,
    users_by_email: EmailLookup | None = None,
) -> dict[str, Any]:
    """One evaluation: validate (a malformed request is a 400 before anything waits),
    catch up to the caller's consistency token, decide."""
    request = _request(decider, body, token_area, users_by_email)
    if "context" in body:  # no context: no consistency token to wait for, no explanation
        decider.wait_for(_consistency(body))
        if isinstance(request, str) or _wants_explanation(body):
            tally = metrics.DecisionTally()
            try:
                return _decision(decider, body, request, tally)
            finally:
                tally.observe()
    if isinstance(request, str):
        return {"decision": False}
    started = time.perf_counter()
    allowed = decider.decide_question(request)
    metrics.count_decision(allowed, time.perf_counter() - started)
    return {"decision": allowed}


# A Decision without context, as send_json writes it: sent as these bytes.
_PLAIN_DECISION = {True: b'{"decision":true}', False: b'{"decision":false}'}


def _send_decision(resp: falcon.Response, decision: dict[str, Any]) -> None:
    if len(decision) == 1 and type(decision["decision"]) is bool:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _PLAIN_DECISION[decision["decision"]]
    else:
        send_json(resp, decision)


class EvaluationsResource:
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
        semantic = _semantic(body)
        items = body.get("evaluations")
        if items is None or items == []:
            # behaves as a single evaluation
            decision = _single(self._decider, body, claims.area, self._emails)
            self._auth.still_valid(claims)
            send_json(resp, decision)
            return
        if not isinstance(items, list) or len(items) > MAX_EVALUATIONS:
            raise InvalidInput(
                f"evaluations must be an array of at most {MAX_EVALUATIONS} objects",
                field="evaluations",
            )
        if not all(isinstance(item, dict) for item in items):
            raise InvalidInput("each evaluation must be an object", field="evaluations")
        defaults = _defaults(body)
        decider = self._decider
        # The common shape (see plain_evaluation) skips the general validation and mapping; anything
        # else, an item that cannot be evaluated among them, takes the general path.
        plain = decider.fast and decider.bundle.mapping.plain
        # An item that cannot be evaluated is no reason to refuse the others (AuthZEN
        # "Errors"): it is a deny carrying its error; only the payload's shape is a 400.
        entries: list[_Plain | _General] = []
        consistency = 0
        general = False
        for item in items:
            evaluation = {**defaults, **item} if defaults else item
            asked = plain_evaluation(evaluation) if plain else None
            if asked is not None:
                entries.append(asked)
                continue
            general = True
            try:
                request: Request | InvalidInput = _request(
                    decider, evaluation, claims.area, self._emails
                )
            except InvalidInput as ex:
                request = ex
            else:
                consistency = max(consistency, _consistency(evaluation))
            entries.append(_General(evaluation, request))
        decider.wait_for(consistency)
        # A failure is a denial (AuthZEN "Evaluations semantics").
        until = {"deny_on_first_deny": False, "permit_on_first_permit": True}.get(semantic)
        tally = metrics.DecisionTally()
        try:
            if general:
                text = _mixed(decider, entries, until, tally)
            else:
                text = all_plain(decider, cast("list[_Plain]", entries), until, tally)
        finally:
            tally.observe()
        self._auth.still_valid(claims)
        send_json_text(resp, text)


def all_plain(
    decider: Decider, asked: list[_Plain], until: bool | None, tally: metrics.DecisionTally
) -> str:
    """The response to a batch whose every item is in the common shape."""
    started = time.perf_counter()
    answers = decider.decide_all(asked, until)
    allowed = sum(answers)
    tally.add_many(allowed, len(answers) - allowed, time.perf_counter() - started)
    return '{"evaluations":[' + ",".join([_TRUE if a else _FALSE for a in answers]) + "]}"


def _mixed(
    decider: Decider,
    entries: list[_Plain | _General],
    until: bool | None,
    tally: metrics.DecisionTally,
) -> str:
    """The response to a batch with items of any shape, decided one by one in order."""
    parts: list[str] = []
    allowed = denied = 0
    others_s = 0.0  # the time of the general path's items, which time themselves
    started = time.perf_counter()
    try:
        for entry in entries:
            if isinstance(entry, _General):
                evaluation, request = entry
                if isinstance(request, InvalidInput):
                    result: dict[str, Any] = {
                        "decision": False,
                        "context": {"error": authzen_error(request)},
                    }
                else:
                    began = time.perf_counter()
                    result = _decision(decider, evaluation, request, tally)
                    others_s += time.perf_counter() - began
                decision = result["decision"]
                parts.append(dump_json(result))
            else:
                decision = decider.decide(*entry)
                if decision:
                    allowed += 1
                else:
                    denied += 1
                parts.append(_TRUE if decision else _FALSE)
            if decision is until:
                break
    finally:
        tally.add_many(allowed, denied, time.perf_counter() - started - others_s)
    return '{"evaluations":[' + ",".join(parts) + "]}"


# One evaluation in the common shape: (user:<id>, area:<area>, resource type, action name,
# resource id), as Decider.decide takes it.
_Plain = tuple[str, str, str, str, str]


class _General(NamedTuple):
    """An evaluation of any other shape: its _request, or why it cannot be evaluated."""

    evaluation: dict[str, Any]
    request: Request | InvalidInput


# {"decision": true} and {"decision": false} as dump_json writes them.
_TRUE = '{"decision":true}'
_FALSE = '{"decision":false}'


def plain_evaluation(evaluation: dict[str, Any]) -> _Plain | None:
    """The decision request of an evaluation in the common shape, checked as ``_request``
    checks it and mapped as the shipped mapping (RequestMapping.plain) maps it; None for
    anything else, which then takes ``_request``: a context, another subject type, ids
    that are no Casbin names, any field missing or malformed, any other ``properties``.

    Common shape: subject {type: "user", id}, action {name}, resource {type, id,
    properties: {area}}, every one of them a string (other members of resource.properties
    are ignored, as ``_request`` ignores them)."""
    try:
        subject = evaluation["subject"]
        action = evaluation["action"]
        resource = evaluation["resource"]
        ident = subject["id"]
        name = action["name"]
        rtype = resource["type"]
        rid = resource["id"]
        props = resource["properties"]
        area = props["area"]
    except (KeyError, TypeError):  # absent, or a container of another type
        return None
    if not (
        type(name) is type(rtype) is type(rid) is type(ident) is type(area) is str
        and type(subject) is type(action) is type(resource) is type(props) is dict
        and subject.get("type") == "user"
        and "properties" not in subject
        and "properties" not in action
        and "context" not in evaluation
    ):
        return None
    return _names(ident, area, rtype, name, rid)


def _names(ident: str, area: str, rtype: str, name: str, rid: str) -> _Plain | None:
    """The request with the user's and the area's Casbin names, None unless both ids make
    Casbin names. Checked each time: a memo of checked ids, once many users ask, costs
    more in the CPU's cache misses than the check it saves."""
    if not casbin_tail(ident) or not casbin_tail(area):
        return None
    return "user:" + ident, "area:" + area, rtype, name, rid


def plain_requests(evaluations: Iterable[Evaluation]) -> list[_Plain] | None:
    """plain_evaluation's requests of evaluations read by api.common_shape (every one in
    the common shape but for the subject type and the ids, checked here); None if any one
    is not in it."""
    asked: list[_Plain] = []
    for evaluation in evaluations:
        subject = evaluation.subject
        resource = evaluation.resource
        if subject.type != "user":
            return None
        plain = _names(
            subject.id, resource.properties.area, resource.type, evaluation.action.name, resource.id
        )
        if plain is None:
            return None
        asked.append(plain)
    return asked


def _semantic(body: dict[str, Any]) -> str:
    options = body.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput("options must be an object", field="options")
    semantic = options.get("evaluations_semantic", "execute_all")
    if semantic not in SEMANTICS:
        raise InvalidInput(
            "evaluations_semantic must be one of " + ", ".join(SEMANTICS), field="options"
        )
    return str(semantic)


def _defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The top-level members every evaluation starts from, each checked even where every
    item gives its own: a malformed one is a 400 for the whole payload."""
    defaults: dict[str, Any] = {}
    for name, keys in (("subject", ("type", "id")), ("action", ("name",))):
        if name in body:
            defaults[name] = entity(body[name], name, keys)
    if "resource" in body:
        defaults["resource"] = entity(body["resource"], "resource", ("type", "id"))
        resource_area(defaults["resource"])
    if "context" in body:
        context_of(body)
        defaults["context"] = body["context"]
    return defaults


def metadata(base_url: str) -> dict[str, str]:
    """The PDP metadata of the evaluation endpoints (AuthZEN "pdp-metadata")."""
    base = base_url.rstrip("/")
    return {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
    }


class MetadataResource:
    """``/.well-known/authzen-configuration``: ``document`` lists every endpoint served."""

    def __init__(self, base_url: str, document: dict[str, str] | None = None) -> None:
        self._doc = dict(document) if document is not None else metadata(base_url)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, self._doc)
