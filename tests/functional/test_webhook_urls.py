"""With the development setting off (the default), webhooks go to public https hosts only."""

from __future__ import annotations

from tests.conftest import Api


def test_the_api_refuses_plain_http_and_private_hosts(api: Api) -> None:
    owner = api.signup("o@example.com")
    hooks = f"/v1/areas/{owner.area_id}/webhooks"
    for url in ("http://hooks.example.com/x", "https://127.0.0.1/x", "https://169.254.169.254/"):
        res = api.call("POST", hooks, api.token(owner), json={"url": url})
        assert res.status_code == 400 and res.json["field"] == "url", url
    res = api.call("POST", hooks, api.token(owner), json={"url": "https://hooks.example.com/x"})
    assert res.status_code == 201
