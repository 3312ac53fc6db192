"""Schemathesis hooks for tests/e2e/test_schemathesis.py (loaded by the CLI, by path).

``positive_data_acceptance`` refuses any 400 answer to a request the schema allows. No
schema can say which strings are secrets this server issued: an emailed link's token,
a search's page token, an OAuth client id, code or refresh token. A well-formed one
that names nothing is refused with 400 (problem+json code ``invalid_token``; for OAuth
2.0, RFC 6749 §5.2 JSON, or the error page of /oauth/authorize). Nor can a schema say
which hosts are public: a webhook URL naming a loopback, private or local-only host is
refused with 400 (``field`` url). Nor can a schema say "after now": an access end
(``valid_until``) that is not in the future, or more than ten years away, is refused with
400 (``field`` valid_until, code ``past_time`` or ``far_time``). This check is the
built-in one, except for exactly those answers.
"""

from __future__ import annotations

import json

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

# Operations whose every request names registered clients, codes or tokens.
_OAUTH_SECRETS = ("/oauth/token", "/oauth/authorize")
_WEBHOOKS = "/v1/areas/{area_id}/webhooks"
# Problem codes of an access end that is well formed but not within (now, now + 10 years].
_RELATIVE_TO_NOW = ("past_time", "far_time")


def _refused_for_what_no_schema_says(response: schemathesis.Response, path: str) -> bool:
    if response.status_code != 400:
        return False
    if path in _OAUTH_SECRETS:
        return True
    try:
        body = json.loads(response.text)
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if path == _WEBHOOKS and body.get("field") == "url":
        return True
    if body.get("field") == "valid_until" and body.get("code") in _RELATIVE_TO_NOW:
        return True
    return body.get("code") == "invalid_token"


@schemathesis.check
def positive_data_accepted_unless_secret_unknown(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _refused_for_what_no_schema_says(response, case.operation.path):
            return None
        raise
