"""/openapi.json stays true: a valid OpenAPI 3.1 document that names every JSON route
the app serves, with the same methods, and nothing the app does not serve."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from openapi_spec_validator import validate

from delegauth.api.app import create_app
from tests.conftest import Api

# Hosted HTML pages are not part of the JSON API.
PAGES = (
    "/",
    "/signin",
    "/signup",
    "/signout",
    "/areas",
    "/invitations",
    "/access-requests",
    "/static",
    "/verify-email",
)


def _routes(nodes: Any) -> Iterator[tuple[str, set[str]]]:
    for node in nodes:
        if node.resource is not None:
            methods = {
                m
                for m, responder in node.method_map.items()
                if m != "OPTIONS" and responder.__name__ != "method_not_allowed"
            }
            yield node.uri_template, methods
        yield from _routes(node.children)


def _is_page(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PAGES[1:])


def test_the_document_is_valid_openapi_31(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_is_documented_and_nothing_else(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json
    app = create_app(api.services.settings, services=api.services)
    served = {
        path.replace("{area_id}", "{area_id}"): methods
        for path, methods in _routes(app._router._roots)  # noqa: SLF001
        if not _is_page(path)
    }
    documented = {
        path: {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
        for path, item in doc["paths"].items()
    }
    assert served == documented
