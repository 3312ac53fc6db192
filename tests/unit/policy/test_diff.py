from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from delegauth.policy.bundle import load_bundle
from delegauth.policy.diff import DecisionChange, diff_policies
from tests.conftest import POLICIES
from tests.unit.policy.conftest import PoliciesCopy

OWNER, HELPER, OTHER = "user:u_" + "a" * 26, "user:u_" + "b" * 26, "user:u_" + "c" * 26
AREA = "area:a_" + "d" * 26
GRANTS = [
    ("g", OWNER, "role:owner", AREA),
    ("g", HELPER, "perm:invoices", AREA),
    ("g", OTHER, "perm:tickets", AREA),
]


def test_no_change_no_diff() -> None:
    bundle = load_bundle(POLICIES)
    assert diff_policies(bundle, bundle, GRANTS) == []


def test_removing_an_action_lists_exactly_who_loses_it(tmp_path: Path) -> None:
    new_dir = tmp_path / "new"
    shutil.copytree(POLICIES, new_dir)
    catalogue = new_dir / "catalogue.toml"
    catalogue.write_text(
        catalogue.read_text().replace(
            'actions = ["invoice:read", "invoice:pay"]', 'actions = ["invoice:read"]'
        )
    )
    changes = diff_policies(load_bundle(POLICIES), load_bundle(new_dir), GRANTS)
    assert sorted(changes) == sorted(
        [
            DecisionChange(OWNER, AREA, "invoice", "pay", True, False),
            DecisionChange(HELPER, AREA, "invoice", "pay", True, False),
        ]
    )
    assert str(changes[0]).endswith("invoice:pay: allow -> deny")


def test_adding_a_permission_action_shows_new_allows(tmp_path: Path) -> None:
    new_dir = tmp_path / "new"
    shutil.copytree(POLICIES, new_dir)
    catalogue = new_dir / "catalogue.toml"
    catalogue.write_text(
        catalogue.read_text().replace(
            '"ticket:read", "ticket:create", "ticket:reply"',
            '"ticket:read", "ticket:create", "ticket:reply", "ticket:close"',
        )
    )
    changes = diff_policies(load_bundle(POLICIES), load_bundle(new_dir), GRANTS)
    assert {(c.subject, c.obj, c.act, c.after) for c in changes} == {
        (OWNER, "ticket", "close", True),
        (OTHER, "ticket", "close", True),
    }


def test_a_removed_permission_still_held_is_denied(tmp_path: Path) -> None:
    new_dir = tmp_path / "new"
    shutil.copytree(POLICIES, new_dir)
    catalogue = new_dir / "catalogue.toml"
    text = catalogue.read_text()
    start, end = text.index("[permissions.emails]"), text.index("[permissions.orders]")
    catalogue.write_text(text[:start] + text[end:])
    grants = [*GRANTS, ("g", OTHER, "perm:emails", AREA)]
    changes = diff_policies(load_bundle(POLICIES), load_bundle(new_dir), grants)
    # The grant (perm:emails) is untouched in storage, but nothing allows it any more:
    # its holder and the owner lose email:read; nothing is gained.
    assert sorted(changes) == sorted(
        [
            DecisionChange(OWNER, AREA, "email", "read", True, False),
            DecisionChange(OTHER, AREA, "email", "read", True, False),
        ]
    )


def test_a_grant_counts_until_its_end_and_the_change_names_the_end(
    policies: PoliciesCopy,
) -> None:
    invoices = 'actions = ["invoice:read", "invoice:pay"]'
    policies.replace("catalogue.toml", invoices, 'actions = ["invoice:read"]')
    end = "2030-01-01T00:00:00Z"
    grants = [GRANTS[0], ("g", HELPER, "perm:invoices", AREA, end), GRANTS[2]]
    old, new = load_bundle(POLICIES), load_bundle(policies.root)
    before_end = diff_policies(old, new, grants, datetime(2029, 12, 31, 23, 59, 59))
    assert sorted(before_end) == [
        DecisionChange(OWNER, AREA, "invoice", "pay", True, False),
        DecisionChange(HELPER, AREA, "invoice", "pay", True, False, end, ended=False),
    ]
    line = next(str(c) for c in before_end if c.subject == HELPER)
    assert line.endswith(f"invoice:pay: allow -> deny (grant ends {end})")
    # From the instant on the grant gives nothing under either policy: nothing flips for it.
    at_end = diff_policies(old, new, grants, datetime(2030, 1, 1))
    assert [c.subject for c in at_end] == [OWNER]
    # Without an instant: now, and this end is years away.
    assert len(diff_policies(old, new, grants)) == 2
