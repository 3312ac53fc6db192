"""A Casbin adapter on peewee: load, filtered load, add, remove, batch and update.

Rules are stored one field per column (v0..v5) and handed to Casbin as lists,
never joined into a CSV line and re-split. A stored rule whose section or type
the model does not define raises PolicyLoadError instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee
from casbin import persist

from delegauth.storage.records import CasbinRuleRecord

__all__ = ["PeeweeCasbinAdapter", "PolicyLoadError", "RuleFilter"]

_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


class PolicyLoadError(RuntimeError):
    """A stored rule cannot be represented in the model."""


@dataclass(frozen=True)
class RuleFilter:
    """Load only rules whose ptype is in ``ptypes`` (if given) and whose fields match.

    ``fields`` maps a field index to the accepted values, e.g. ``{2: ["area:…"]}``.
    """

    ptypes: tuple[str, ...] = ()
    fields: dict[int, Sequence[str]] = field(default_factory=dict)


def _row_values(rule: Sequence[str]) -> dict[str, str]:
    if len(rule) > len(_FIELDS):
        raise ValueError(f"a rule has at most {len(_FIELDS)} fields")
    values = {name: "" for name in _FIELDS}
    for name, value in zip(_FIELDS, rule, strict=False):
        if not isinstance(value, str):
            raise TypeError("rule fields must be strings")
        values[name] = value
    return values


def _rule_of(row: CasbinRuleRecord, arity: int | None = None) -> list[str]:
    """The rule in ``row``: exactly ``arity`` fields if given, else without trailing blanks."""
    values = [getattr(row, name) for name in _FIELDS]
    if arity is None:
        while values and values[-1] == "":
            values.pop()
        return values
    if any(values[arity:]):
        raise PolicyLoadError(
            f"stored rule #{row.id} has more fields than type {row.ptype!r} defines ({arity})"
        )
    return values[:arity]


class PeeweeCasbinAdapter(
    persist.adapter_filtered.FilteredAdapter,
    persist.batch_adapter.BatchAdapter,
    persist.update_adapter.UpdateAdapter,
):
    def __init__(self, db: peewee.Database, model: type[CasbinRuleRecord] = CasbinRuleRecord):
        self._db = db
        self._model = model
        self._filtered = False

    # -- loading ---------------------------------------------------------------------

    def load_policy(self, model: Any) -> None:
        self._load(model, self._model.select().order_by(self._model.id))
        self._filtered = False

    def load_filtered_policy(self, model: Any, filter: RuleFilter) -> None:  # noqa: A002
        query = self._model.select()
        if filter.ptypes:
            query = query.where(self._model.ptype.in_(filter.ptypes))
        for index, accepted in filter.fields.items():
            column = getattr(self._model, _FIELDS[index])
            query = query.where(column.in_(list(accepted)))
        self._load(model, query.order_by(self._model.id))
        self._filtered = True

    def is_filtered(self) -> bool:
        return self._filtered

    def _load(self, model: Any, query: peewee.Query) -> None:
        with self._db.connection_context():
            for row in query.iterator():
                ptype = row.ptype
                sec = ptype[:1]
                # Only policy sections: r, e and m also hold assertions, which a rule must not join.
                assertion = model.model.get(sec, {}).get(ptype) if sec in ("p", "g") else None
                if assertion is None:
                    raise PolicyLoadError(
                        f"stored rule #{row.id} has type {ptype!r}, which the model does not define"
                    )
                # A conditional role definition (g = _, _, _, (_)) adds its parameters, the
                # grant's end, after the tokens: "" where a grant has none.
                arity = len(assertion.tokens) + len(getattr(assertion, "params_tokens", ()))
                model.add_policy(sec, ptype, _rule_of(row, arity))

    # -- writing ---------------------------------------------------------------------

    def save_policy(self, model: Any) -> bool:
        with self._db.atomic():
            self._model.delete().execute()
            rows: list[dict[str, str]] = []
            for sec in ("p", "g"):
                if sec not in model.model:
                    continue
                for ptype, assertion in model.model[sec].items():
                    rows.extend({"ptype": ptype, **_row_values(r)} for r in assertion.policy)
            for start in range(0, len(rows), 500):
                self._model.insert_many(rows[start : start + 500]).execute()
        return True

    def add_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> bool:
        return self.add_policies(sec, ptype, [rule])

    def add_policies(self, sec: str, ptype: str, rules: Iterable[Sequence[str]]) -> bool:
        rows = [{"ptype": ptype, **_row_values(r)} for r in rules]
        with self._db.atomic():
            for start in range(0, len(rows), 500):
                (self._model.insert_many(rows[start : start + 500]).on_conflict_ignore().execute())
        return True

    def remove_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> bool:
        return self.remove_policies(sec, ptype, [rule])

    def remove_policies(self, sec: str, ptype: str, rules: Iterable[Sequence[str]]) -> bool:
        removed = 0
        with self._db.atomic():
            for rule in rules:
                values = _row_values(rule)
                query = self._model.delete().where(self._model.ptype == ptype)
                for name, value in values.items():
                    query = query.where(getattr(self._model, name) == value)
                removed += query.execute()
        return removed > 0

    def remove_filtered_policy(
        self, sec: str, ptype: str, field_index: int, *field_values: str
    ) -> bool:
        if not 0 <= field_index < len(_FIELDS) or field_index + len(field_values) > len(_FIELDS):
            return False
        query = self._filtered_rows(self._model.delete(), ptype, field_index, field_values)
        with self._db.atomic():
            return bool(query.execute())

    def update_filtered_policies(
        self,
        sec: str,
        ptype: str,
        new_rules: Sequence[Sequence[str]],
        field_index: int,
        *field_values: str,
    ) -> list[list[str]]:
        """Replace the rules matching the filter with ``new_rules``; return the old ones."""
        if not 0 <= field_index < len(_FIELDS) or field_index + len(field_values) > len(_FIELDS):
            return []
        with self._db.atomic():
            select = self._filtered_rows(self._model.select(), ptype, field_index, field_values)
            old = [_rule_of(row) for row in select.order_by(self._model.id)]
            self.remove_filtered_policy(sec, ptype, field_index, *field_values)
            self.add_policies(sec, ptype, new_rules)
        return old

    def _filtered_rows(
        self, query: Any, ptype: str, field_index: int, field_values: Sequence[str]
    ) -> Any:
        query = query.where(self._model.ptype == ptype)
        for offset, value in enumerate(field_values):
            if value:  # Casbin's convention: an empty value matches anything
                column = getattr(self._model, _FIELDS[field_index + offset])
                query = query.where(column == value)
        return query

    def update_policy(
        self, sec: str, ptype: str, old_rule: Sequence[str], new_policy: Sequence[str]
    ) -> bool:
        return self.update_policies(sec, ptype, [old_rule], [new_policy])

    def update_policies(
        self,
        sec: str,
        ptype: str,
        old_rules: Sequence[Sequence[str]],
        new_rules: Sequence[Sequence[str]],
    ) -> bool:
        if len(old_rules) != len(new_rules):
            raise ValueError("old_rules and new_rules must have the same length")
        with self._db.atomic():
            self.remove_policies(sec, ptype, old_rules)
            self.add_policies(sec, ptype, new_rules)
        return True
