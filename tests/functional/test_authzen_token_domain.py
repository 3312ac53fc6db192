"""authzen.toml ``[domain] from = "token"``: the Client Area is the caller's token's,
whatever the request's resource names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, api_with_mapping

MAPPING = """\
[domain]
from = "token"
"""


@pytest.fixture
def token_api(settings: Any, keyring: Any, clock: Any, tmp_path: Path) -> Iterator[Api]:
    yield from api_with_mapping(settings, keyring, clock, tmp_path, MAPPING)


def _token(api: Api, area: str | None) -> str:
    return api.services.tokens.issue(
        sub="billing-service", client_id="billing-service", scope=["decisions"], area=area
    )


def _ask(api: Api, token: str, user: str, named_area: str | None) -> Any:
    resource: dict[str, Any] = {"type": "invoice", "id": "7"}
    if named_area is not None:
        resource["properties"] = {"area": named_area}
    body = {
        "subject": {"type": "user", "id": user},
        "action": {"name": "pay"},
        "resource": resource,
    }
    return api.call("POST", "/access/v1/evaluation", token, json=body)


def test_the_token_area_decides_and_the_request_area_is_ignored(token_api: Api) -> None:
    api = token_api
    owner = api.signup("owner@example.com")
    billing = api.link(owner, "billing@example.com", ["invoices"])
    # billing pays invoices in owner's area and owns their own; nothing in a third one.
    other = api.signup("other@example.com")
    cases = [
        # (token area, area the request names, decision)
        (owner.area_id, None, True),
        (owner.area_id, other.area_id, True),  # the token wins over the request
        (other.area_id, owner.area_id, False),  # and the other way round
        (other.area_id, None, False),
    ]
    for token_area, named, decision in cases:
        res = _ask(api, _token(api, token_area), billing.user_id, named)
        assert res.status_code == 200, res.text
        assert res.json == {"decision": decision}, (token_area, named)


def test_a_token_without_an_area_is_400_naming_it(token_api: Api) -> None:
    api = token_api
    owner = api.signup("owner@example.com")
    res = _ask(api, _token(api, None), owner.user_id, owner.area_id)
    assert res.status_code == 400
    assert res.json["field"] == "authorization"
    assert "token" in res.json["message"]
