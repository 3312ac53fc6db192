"""PeeweeCasbinAdapter under a real casbin.Enforcer and the real model in policies/model.conf.

Every test runs on SQLite and, when DELEGAUTH_TEST_PG_URL is set, on PostgreSQL. Persistence
is always proved the same way: a second, fresh Enforcer loads what the first one wrote.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import casbin
import peewee
import pytest
from casbin.model import Model

from delegauth.policy.mapping import resource_value
from delegauth.storage.casbin_adapter import PeeweeCasbinAdapter, PolicyLoadError, RuleFilter
from delegauth.storage.db import open_database
from delegauth.storage.records import CasbinRuleRecord, database_proxy
from delegauth.storage.schema import migrate

SHIPPED_MODEL_TEXT = (Path(__file__).resolve().parents[2] / "policies" / "model.conf").read_text()
# These tests are about rules round-tripping through the table: the shipped model without
# grants' ends (its g lines have three fields). Ends are tested on their own below.
MODEL_TEXT = SHIPPED_MODEL_TEXT.replace("g = _, _, _, (_)", "g = _, _, _")
assert MODEL_TEXT != SHIPPED_MODEL_TEXT

ALICE, BOB = "user:u_alice", "user:u_bob"
A1, A2 = "area:a1", "area:a2"

# p, perm:<name>, *, <type>, <action>  (as generated from catalogue.toml)
P_INVOICE_READ = ["perm:invoices", "*", "invoice", "read"]
P_INVOICE_PAY = ["perm:invoices", "*", "invoice", "pay"]
P_PROFILE_READ = ["perm:profile", "*", "profile", "read"]
# g, user:<id>, perm:<name> | perm:all | role:owner, area:<id>
G_ALICE_A1 = [ALICE, "perm:invoices", A1]
G_ALICE_A2 = [ALICE, "perm:profile", A2]
G_BOB_A1 = [BOB, "perm:profile", A1]
G_BOB_A2 = [BOB, "role:owner", A2]

Row = tuple[str, str, str, str, str, str, str]


# -- fixtures and builders -------------------------------------------------------------------


@pytest.fixture
def db(database_url: str) -> Iterator[peewee.Database]:
    db = open_database(database_url)
    database_proxy.initialize(db)
    migrate(db)
    yield db
    close_all = getattr(db, "close_all", None)  # the PostgreSQL pool
    if close_all is not None:
        close_all()
    elif not db.is_closed():
        db.close()


@pytest.fixture
def adapter(db: peewee.Database) -> PeeweeCasbinAdapter:
    return PeeweeCasbinAdapter(db)


def _model() -> Model:
    model = Model()
    model.load_model_from_text(MODEL_TEXT)
    return model


def _enforce(enforcer: casbin.Enforcer, sub: str, dom: str, obj: str, act: str) -> bool:
    """Ask as the service does: the shipped matcher reads r.obj.id (grants on single
    resources), so r.obj is the resource type with an id."""
    return bool(enforcer.enforce(sub, dom, resource_value(obj), act))


def _enforcer(db: peewee.Database) -> casbin.Enforcer:
    """A fresh Enforcer on its own adapter: it sees only what was stored."""
    return casbin.Enforcer(_model(), PeeweeCasbinAdapter(db))


def _stored(db: peewee.Database) -> list[Row]:
    with db.connection_context():
        rows = CasbinRuleRecord.select().order_by(CasbinRuleRecord.id)
        return [(r.ptype, r.v0, r.v1, r.v2, r.v3, r.v4, r.v5) for r in rows]


def _row(ptype: str, rule: Sequence[str]) -> Row:
    padded = [*rule, "", "", "", "", "", ""][:6]
    return (ptype, padded[0], padded[1], padded[2], padded[3], padded[4], padded[5])


def _insert(db: peewee.Database, ptype: str, *values: str) -> None:
    """A row as another process, or an older release, might have written it."""
    with db.connection_context():
        CasbinRuleRecord.create(ptype=ptype, **{f"v{i}": v for i, v in enumerate(values)})


def _sorted(rules: Sequence[Sequence[str]]) -> list[list[str]]:
    return sorted(list(r) for r in rules)


def _seed(adapter: PeeweeCasbinAdapter) -> None:
    adapter.add_policies("p", "p", [P_INVOICE_READ, P_INVOICE_PAY, P_PROFILE_READ])
    adapter.add_policies("g", "g", [G_ALICE_A1, G_ALICE_A2, G_BOB_A1, G_BOB_A2])


# -- loading ---------------------------------------------------------------------------------


def test_load_policy_reads_what_the_adapter_stored(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    adapter.add_policy("p", "p", P_INVOICE_READ)
    adapter.add_policies("g", "g", [G_ALICE_A1, G_BOB_A1])

    enforcer = _enforcer(db)

    assert enforcer.get_policy() == [P_INVOICE_READ]
    assert _sorted(enforcer.get_grouping_policy()) == _sorted([G_ALICE_A1, G_BOB_A1])
    assert _enforce(enforcer, ALICE, A1, "invoice", "read")
    assert not _enforce(enforcer, ALICE, A2, "invoice", "read")  # the grant is for a1 only
    assert not _enforce(enforcer, BOB, A1, "invoice", "read")


def test_an_empty_table_loads_an_empty_policy_that_denies(db: peewee.Database) -> None:
    enforcer = _enforcer(db)

    assert enforcer.get_policy() == []
    assert enforcer.get_grouping_policy() == []
    assert not _enforce(enforcer, ALICE, A1, "invoice", "read")


def test_adding_a_stored_rule_again_keeps_one_row(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    adapter.add_policy("g", "g", G_ALICE_A1)
    adapter.add_policies("g", "g", [G_ALICE_A1, G_BOB_A1])

    assert _stored(db) == [_row("g", G_ALICE_A1), _row("g", G_BOB_A1)]


# -- writing through the enforcer ------------------------------------------------------------


def test_enforcer_additions_persist(db: peewee.Database) -> None:
    enforcer = _enforcer(db)

    assert enforcer.add_policy(*P_INVOICE_READ)
    assert enforcer.add_grouping_policy(*G_ALICE_A1)
    assert enforcer.add_named_grouping_policy("g", G_BOB_A2)

    reloaded = _enforcer(db)
    assert reloaded.get_policy() == enforcer.get_policy() == [P_INVOICE_READ]
    assert _sorted(reloaded.get_grouping_policy()) == _sorted(enforcer.get_grouping_policy())
    assert _sorted(reloaded.get_grouping_policy()) == _sorted([G_ALICE_A1, G_BOB_A2])
    assert _stored(db) == [
        _row("p", P_INVOICE_READ),
        _row("g", G_ALICE_A1),
        _row("g", G_BOB_A2),
    ]
    assert _enforce(reloaded, ALICE, A1, "invoice", "read")


def test_remove_policy_persists(db: peewee.Database, adapter: PeeweeCasbinAdapter) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)

    assert enforcer.remove_policy(*P_INVOICE_PAY)
    assert enforcer.remove_grouping_policy(*G_ALICE_A1)

    reloaded = _enforcer(db)
    assert _sorted(reloaded.get_policy()) == _sorted([P_INVOICE_READ, P_PROFILE_READ])
    assert _sorted(reloaded.get_grouping_policy()) == _sorted([G_ALICE_A2, G_BOB_A1, G_BOB_A2])
    assert not _enforce(reloaded, ALICE, A1, "invoice", "read")


def test_removing_a_rule_that_is_not_stored_reports_false(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    before = _stored(db)

    assert adapter.remove_policy("g", "g", [ALICE, "perm:invoices", "area:elsewhere"]) is False
    assert adapter.remove_policy("p", "p", G_ALICE_A1) is False  # the right values, wrong ptype
    assert adapter.remove_policy("g", "g", G_ALICE_A1[:2]) is False  # a prefix is not the rule
    assert _stored(db) == before


def test_remove_filtered_policy_persists(db: peewee.Database, adapter: PeeweeCasbinAdapter) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)

    assert enforcer.remove_filtered_grouping_policy(0, ALICE)
    assert enforcer.remove_filtered_policy(3, "pay")  # a field index past the first

    reloaded = _enforcer(db)
    assert _sorted(reloaded.get_grouping_policy()) == _sorted([G_BOB_A1, G_BOB_A2])
    assert _sorted(reloaded.get_policy()) == _sorted([P_INVOICE_READ, P_PROFILE_READ])


def test_an_empty_field_value_in_remove_filtered_policy_matches_any(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    """Casbin's convention: "" in a filter is a wildcard, not a match for an empty field."""
    _seed(adapter)
    enforcer = _enforcer(db)

    # Everyone's grants in a1, whatever they are.
    assert enforcer.remove_filtered_grouping_policy(0, "", "", A1)

    reloaded = _enforcer(db)
    assert _sorted(reloaded.get_grouping_policy()) == _sorted([G_ALICE_A2, G_BOB_A2])
    assert len(reloaded.get_policy()) == 3  # another ptype: untouched


def test_an_empty_field_value_matches_any_at_the_adapter_too(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)

    assert adapter.remove_filtered_policy("g", "g", 1, "", A2)

    assert _stored(db) == [
        _row(ptype, r)
        for ptype, r in [
            ("p", P_INVOICE_READ),
            ("p", P_INVOICE_PAY),
            ("p", P_PROFILE_READ),
            ("g", G_ALICE_A1),
            ("g", G_BOB_A1),
        ]
    ]


def test_remove_filtered_policy_touches_only_its_ptype(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    adapter.add_policy("p", "p", [ALICE, A1, "x", "y"])
    adapter.add_policy("g", "g", [ALICE, "perm:x", A1])

    assert adapter.remove_filtered_policy("g", "g", 0, ALICE)

    assert _stored(db) == [_row("p", [ALICE, A1, "x", "y"])]


def test_batch_add_and_remove_persist(db: peewee.Database) -> None:
    enforcer = _enforcer(db)

    assert enforcer.add_policies([P_INVOICE_READ, P_INVOICE_PAY, P_PROFILE_READ])
    assert enforcer.add_grouping_policies([G_ALICE_A1, G_ALICE_A2, G_BOB_A1])
    assert _sorted(_enforcer(db).get_policy()) == _sorted(
        [P_INVOICE_READ, P_INVOICE_PAY, P_PROFILE_READ]
    )

    assert enforcer.remove_policies([P_INVOICE_READ, P_PROFILE_READ])
    assert enforcer.remove_grouping_policies([G_ALICE_A1, G_BOB_A1])

    reloaded = _enforcer(db)
    assert reloaded.get_policy() == [P_INVOICE_PAY]
    assert reloaded.get_grouping_policy() == [G_ALICE_A2]
    assert _stored(db) == [_row("p", P_INVOICE_PAY), _row("g", G_ALICE_A2)]


def test_a_large_batch_is_stored_whole(db: peewee.Database) -> None:
    """More rows than one INSERT carries (the adapter writes 500 at a time)."""
    rules = [[f"user:u_{n:05d}", "perm:invoices", A1] for n in range(1201)]

    assert _enforcer(db).add_grouping_policies(rules)

    assert _sorted(_enforcer(db).get_grouping_policy()) == _sorted(rules)


def test_update_policy_persists(db: peewee.Database, adapter: PeeweeCasbinAdapter) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    paid_by_card = ["perm:invoices", "*", "invoice", "pay_by_card"]

    assert enforcer.update_policy(P_INVOICE_PAY, paid_by_card)

    reloaded = _enforcer(db)
    assert _sorted(reloaded.get_policy()) == _sorted([P_INVOICE_READ, paid_by_card, P_PROFILE_READ])
    assert _row("p", P_INVOICE_PAY) not in _stored(db)


def test_update_policies_persists(db: peewee.Database, adapter: PeeweeCasbinAdapter) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    new = [["perm:invoices", "*", "invoice", "list"], ["perm:profile", "*", "profile", "list"]]

    assert enforcer.update_policies([P_INVOICE_READ, P_PROFILE_READ], new)

    assert _sorted(_enforcer(db).get_policy()) == _sorted([P_INVOICE_PAY, *new])


def test_update_filtered_policies_persists(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    new = [["perm:invoices", "*", "invoice", "list"]]

    assert enforcer.update_filtered_policies(new, 0, "perm:invoices")

    assert _sorted(_enforcer(db).get_policy()) == _sorted([P_PROFILE_READ, *new])


# -- filtered loading ------------------------------------------------------------------------


def test_load_filtered_policy_loads_one_area(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    adapter.add_policy("p", "p", ["perm:odd", "*", A1, "read"])  # field 2 matches, ptype not
    enforcer = _enforcer(db)

    enforcer.load_filtered_policy(RuleFilter(ptypes=("g",), fields={2: [A1]}))

    assert _sorted(enforcer.get_grouping_policy()) == _sorted([G_ALICE_A1, G_BOB_A1])
    assert enforcer.get_policy() == []  # only g was asked for
    assert enforcer.is_filtered()
    assert enforcer.adapter.is_filtered()


def test_a_filtered_area_plus_the_permissions_decides_for_that_area(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)

    enforcer.load_filtered_policy(RuleFilter(ptypes=("g",), fields={2: [A1]}))
    enforcer.load_increment_filtered_policy(RuleFilter(ptypes=("p",)))

    assert len(enforcer.get_policy()) == 3
    assert _enforce(enforcer, ALICE, A1, "invoice", "read")
    assert not _enforce(enforcer, ALICE, A2, "profile", "read")  # a2's grants were not loaded


def test_a_filter_may_accept_several_values_and_any_ptype(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)

    enforcer = _enforcer(db)
    enforcer.load_filtered_policy(RuleFilter(fields={0: [BOB, "perm:profile"]}))

    assert enforcer.get_policy() == [P_PROFILE_READ]
    assert _sorted(enforcer.get_grouping_policy()) == _sorted([G_BOB_A1, G_BOB_A2])


def test_a_filtered_policy_cannot_overwrite_the_store(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    before = _stored(db)
    enforcer = _enforcer(db)
    enforcer.load_filtered_policy(RuleFilter(ptypes=("g",), fields={2: [A1]}))

    with pytest.raises(RuntimeError):
        enforcer.save_policy()

    assert _stored(db) == before
    enforcer.load_policy()
    assert not enforcer.is_filtered()
    assert len(enforcer.get_grouping_policy()) == 4


# -- values are data, never re-split ----------------------------------------------------------

AWKWARD = [
    'user:"quoted, with a comma"',
    "area:[a1], {b: 2}",
    "  leading and trailing spaces  ",
    "it's; -- 'drop' \\ \"x\"",
    "line\nbreak\ttab",
    "ü ☃ 𝄞",
]


def test_awkward_values_come_back_byte_identical(db: peewee.Database) -> None:
    p_rule = AWKWARD[2:6]
    g_rule = AWKWARD[0:3]
    enforcer = _enforcer(db)

    assert enforcer.add_policy(*p_rule)
    assert enforcer.add_grouping_policy(*g_rule)

    assert _stored(db) == [_row("p", p_rule), _row("g", g_rule)]  # one column per field
    reloaded = _enforcer(db)
    assert reloaded.get_policy() == [p_rule]
    assert reloaded.get_grouping_policy() == [g_rule]
    for loaded, original in zip(
        [*reloaded.get_policy()[0], *reloaded.get_grouping_policy()[0]],
        [*p_rule, *g_rule],
        strict=True,
    ):
        assert loaded.encode() == original.encode()


def test_a_rule_with_awkward_values_decides(db: peewee.Database) -> None:
    user, perm, area = AWKWARD[0], "perm:[a, b]", AWKWARD[1]
    enforcer = _enforcer(db)
    enforcer.add_policy(perm, "*", "invoice, legacy", "read")
    enforcer.add_grouping_policy(user, perm, area)

    reloaded = _enforcer(db)

    assert _enforce(reloaded, user, area, "invoice, legacy", "read")
    assert not _enforce(reloaded, user, area, "invoice", "read")
    assert not _enforce(reloaded, 'user:"quoted', area, "invoice, legacy", "read")


def test_awkward_values_can_be_removed_exactly(db: peewee.Database) -> None:
    enforcer = _enforcer(db)
    enforcer.add_grouping_policies([AWKWARD[0:3], AWKWARD[1:4]])

    assert enforcer.remove_grouping_policy(*AWKWARD[0:3])
    assert enforcer.remove_filtered_grouping_policy(0, AWKWARD[1])

    assert _stored(db) == []


def test_a_trailing_empty_field_survives_the_round_trip(db: peewee.Database) -> None:
    rule = [ALICE, "perm:invoices", ""]
    assert _enforcer(db).add_grouping_policy(*rule)

    assert _enforcer(db).get_grouping_policy() == [rule]


# -- nothing is silently dropped --------------------------------------------------------------


@pytest.mark.parametrize("ptype", ["x", "p2", "g2"])
def test_a_stored_rule_of_an_unknown_type_fails_the_load(
    db: peewee.Database, adapter: PeeweeCasbinAdapter, ptype: str
) -> None:
    _seed(adapter)
    _insert(db, ptype, ALICE, "perm:all", A1)

    with pytest.raises(PolicyLoadError, match=repr(ptype)):
        _enforcer(db)


@pytest.mark.parametrize("ptype", ["r", "e", "m"])
def test_a_stored_rule_in_a_non_policy_section_fails_the_load(
    db: peewee.Database, adapter: PeeweeCasbinAdapter, ptype: str
) -> None:
    _seed(adapter)
    _insert(db, ptype, ALICE, A1, "invoice", "read")

    with pytest.raises(PolicyLoadError):
        _enforcer(db)


def test_a_stored_rule_with_an_empty_type_fails_the_load(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _insert(db, "", ALICE, A1, "invoice", "read")

    with pytest.raises(PolicyLoadError):
        _enforcer(db)


def test_a_failed_reload_keeps_the_policy_already_loaded(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    _insert(db, "x", ALICE, "perm:all", A1)

    with pytest.raises(PolicyLoadError):
        enforcer.load_policy()

    assert len(enforcer.get_policy()) == 3
    assert _enforce(enforcer, ALICE, A1, "invoice", "read")


def test_a_filtered_load_that_meets_an_unknown_type_fails(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    _insert(db, "x", ALICE, "perm:all", A1)

    with pytest.raises(PolicyLoadError):
        enforcer.load_filtered_policy(RuleFilter(fields={2: [A1]}))


# -- save_policy -----------------------------------------------------------------------------


def test_save_policy_replaces_everything(db: peewee.Database, adapter: PeeweeCasbinAdapter) -> None:
    adapter.add_policies("p", "p", [P_INVOICE_READ, P_INVOICE_PAY])
    adapter.add_policies("g", "g", [G_ALICE_A1, G_BOB_A1])
    enforcer = _enforcer(db)
    enforcer.enable_auto_save(False)
    enforcer.remove_policy(*P_INVOICE_PAY)
    enforcer.remove_grouping_policy(*G_BOB_A1)
    enforcer.add_policy(*P_PROFILE_READ)
    enforcer.add_grouping_policy(*G_BOB_A2)
    assert len(_stored(db)) == 4  # auto-save off: nothing written yet

    enforcer.save_policy()

    assert sorted(_stored(db)) == sorted(
        [
            _row("p", P_INVOICE_READ),
            _row("p", P_PROFILE_READ),
            _row("g", G_ALICE_A1),
            _row("g", G_BOB_A2),
        ]
    )
    reloaded = _enforcer(db)
    assert _sorted(reloaded.get_policy()) == _sorted(enforcer.get_policy())
    assert _sorted(reloaded.get_grouping_policy()) == _sorted(enforcer.get_grouping_policy())


def test_save_policy_of_an_empty_model_empties_the_store(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    _seed(adapter)
    enforcer = _enforcer(db)
    enforcer.clear_policy()

    enforcer.save_policy()

    assert _stored(db) == []


def test_save_policy_stores_a_large_policy_whole(db: peewee.Database) -> None:
    rules = [[f"user:u_{n:05d}", "perm:invoices", A2] for n in range(1201)]
    enforcer = _enforcer(db)
    enforcer.enable_auto_save(False)
    enforcer.add_grouping_policies(rules)

    enforcer.save_policy()

    assert _sorted(_enforcer(db).get_grouping_policy()) == _sorted(rules)


def test_the_shipped_model_loads_each_g_line_with_its_end(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    """With g = _, _, _, (_), a stored end (v3) loads as the link condition's parameter."""
    adapter.add_policy("p", "p", P_INVOICE_READ)
    adapter.add_policies("g", "g", [[*G_ALICE_A1, "2030-01-02T03:04:05Z"], G_BOB_A1])
    model = Model()
    model.load_model_from_text(SHIPPED_MODEL_TEXT)
    enforcer = casbin.Enforcer(model, PeeweeCasbinAdapter(db))
    assert _sorted(enforcer.get_grouping_policy()) == _sorted(
        [[*G_ALICE_A1, "2030-01-02T03:04:05Z"], [*G_BOB_A1, ""]]
    )


def test_an_end_under_a_model_without_ends_is_refused(
    db: peewee.Database, adapter: PeeweeCasbinAdapter
) -> None:
    """A model that cannot hold the end must not load the grant as if it had none."""
    adapter.add_policies("g", "g", [[*G_ALICE_A1, "2030-01-02T03:04:05Z"]])
    with pytest.raises(PolicyLoadError):
        _enforcer(db)
