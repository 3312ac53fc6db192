from __future__ import annotations

from pathlib import Path

import pytest

from delegauth.domain.catalogue import (
    CatalogueError,
    PermissionSet,
    load_catalogue,
    parse_catalogue,
)
from delegauth.errors import InvalidInput, UnknownPermission
from tests.conftest import POLICIES

HOSTING = {
    "profile",
    "contacts",
    "products",
    "manageproducts",
    "productsso",
    "domains",
    "managedomains",
    "invoices",
    "quotes",
    "tickets",
    "affiliates",
    "emails",
    "orders",
}


def test_shipped_catalogue_has_the_hosting_panel_set() -> None:
    cat = load_catalogue(Path(POLICIES) / "catalogue.toml")
    assert set(cat.names()) >= HOSTING
    assert "users" in cat
    for perm in cat:
        assert perm.label("en") and perm.label("es") and perm.label("en") != ""
        assert perm.actions
    assert ("invoice", "pay") in cat.get("invoices").actions


def test_parse_permissions() -> None:
    cat = load_catalogue(Path(POLICIES) / "catalogue.toml")
    assert cat.parse("all") == PermissionSet.everything()
    assert cat.parse(["invoices", "tickets", "invoices"]) == PermissionSet.of(
        {"invoices", "tickets"}
    )
    with pytest.raises(UnknownPermission):
        cat.parse(["invoices", "root"])
    for bad in ([], "invoices", None, {"all": True}, [None], "ALL"):
        with pytest.raises(InvalidInput):
            cat.parse(bad)


def test_a_permission_on_every_resource_covers_it_on_single_ones() -> None:
    cat = load_catalogue(Path(POLICIES) / "catalogue.toml")
    some = ["managedomains@example.com", "manageproducts@p1"]
    bundle = cat.parse(["bundle:technical", *some])
    assert bundle.names >= {"managedomains", "manageproducts"} and not bundle.scoped
    mixed = cat.parse(["managedomains", *some])
    assert mixed.names == {"managedomains"}
    assert mixed.scoped == {("manageproducts", "p1")}


def test_covers() -> None:
    everything = PermissionSet.everything()
    some = PermissionSet.of({"a", "b"})
    assert everything.covers(some) and everything.covers(everything)
    assert some.covers(PermissionSet.of({"a"}))
    assert not some.covers(PermissionSet.of({"a", "c"}))
    assert not some.covers(everything)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"permissions": {"all": {"label": {"en": "x", "es": "y"}, "actions": ["a:b"]}}},
        {"permissions": {"Bad-Name": {"label": {"en": "x", "es": "y"}, "actions": ["a:b"]}}},
        {"permissions": {"x": {"label": {"en": "x"}, "actions": ["a:b"]}}},
        {"permissions": {"x": {"label": {"en": "x", "es": "y"}, "actions": []}}},
        {"permissions": {"x": {"label": {"en": "x", "es": "y"}, "actions": ["a,b:c"]}}},
        {"permissions": {"x": {"label": {"en": "x", "es": "y"}, "actions": ["a:*"]}}},
    ],
)
def test_malformed_catalogues_are_refused(data: dict) -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue(data)
