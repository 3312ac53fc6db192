"""Import and export carry grants on single resources (name@resource-id) both ways, in
JSONL and CSV, and the imported g lines decide as the API's do. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from delegauth.policy.bundle import PolicyBundle
from delegauth.policy.decider import Decider
from delegauth.storage.feed import PeeweePolicyFeed
from tests.functional.test_import import (  # noqa: F401 - fixtures, used by name
    AREA,
    GOOD,
    U,
    _file,
    _lines,
    bundle,
    fresh,
)

EVE = "u_" + "e" * 26
SCOPED = GOOD + _lines(
    {"kind": "user", "id": EVE, "email": "eve@example.com"},
    {"kind": "grant", "user": EVE, "area": "cust-1",
     "permissions": ["domains", "managedomains@example.com", "managedomains@example.net"]},
    {"kind": "grant", "user": EVE, "area": "cust-2", "permissions": ["managedomains@"]},
)  # fmt: skip


def test_scoped_grants_import_decide_and_round_trip(
    fresh: Any,  # noqa: F811 - the fixtures imported above
    tmp_path: Path,
    bundle: PolicyBundle,  # noqa: F811
) -> None:
    first = fresh()
    summary, bad = first.run(_file(tmp_path, SCOPED))
    assert [(b.line, b.reason) for b in bad] == [
        (len(SCOPED.splitlines()), "grant: managedomains@ needs a resource id after the @")
    ]
    decider = Decider(bundle, PeeweePolicyFeed(first.db), max_staleness=3600)
    decider.sync()
    eve, area = f"user:{EVE}", f"area:{AREA}"
    assert decider.decide(eve, area, "domain", "update", "example.com")
    assert decider.decide(eve, area, "domain", "renew", "example.net")
    assert not decider.decide(eve, area, "domain", "update", "example.org")
    assert decider.decide(eve, area, "domain", "read", "example.org")  # "domains"
    assert not decider.decide(f"user:{U['bo']}", area, "domain", "update", "example.com")

    exported = first.export()
    assert '"managedomains@example.com","managedomains@example.net"' in exported
    as_csv = first.export("csv")
    assert "domains managedomains@example.com managedomains@example.net" in as_csv
    second = fresh()
    summary, bad = second.run(_file(tmp_path, as_csv, "export.csv"), strict=True)
    assert bad == [] and second.export() == exported
