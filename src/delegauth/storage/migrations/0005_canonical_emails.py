"""Recompute the stored canonical emails of users and invitations (one email is one person).

The forms come from delegauth.domain.emails as it is when this runs: NFC, lower-cased local
part (ß stays ß), IDNA A-label domain. A row keeps the form it has, and is reported to the
operator (storage.schema.report: WARNING log, and `delegauth migrate` prints it), when
- its address is now refused (compatibility characters, a confusable mix of scripts, ...), or
- its new form would collide: with another user's, or with another pending invitation's in
  the same area. Nothing is merged: which rows are one person is the operator's call.
Reports name row ids and reason codes, never addresses.

Left alone on purpose: mail_outbox (where mail was sent), audit_events (append-only
history), signin_failures (keys are hashes that expire within minutes), area names.
Data only: the schema does not change, so there is nothing to undo.
"""

from collections import defaultdict

from peewee import CharField, Model

from delegauth.domain.emails import canonical_email
from delegauth.errors import InvalidInput
from delegauth.storage.schema import report


def up(migrator, db):
    class User(Model):
        id = CharField(primary_key=True)
        email = CharField()

        class Meta:
            database = db
            table_name = "users"

    class Invitation(Model):
        id = CharField(primary_key=True)
        area_id = CharField()
        email = CharField()
        status = CharField()

        class Meta:
            database = db
            table_name = "invitations"

    _recompute(
        "user",
        [(u.id, "", u.email) for u in User.select(User.id, User.email).order_by(User.id)],
        lambda scope, form: User.select(User.id).where(User.email == form),
        lambda row_id, form: User.update(email=form).where(User.id == row_id).execute(),
    )

    # Only pending invitations are unique per (area, email); the others are history.
    rows = Invitation.select(
        Invitation.id, Invitation.area_id, Invitation.email, Invitation.status
    ).order_by(Invitation.id)
    _recompute(
        "invitation",
        [(i.id, i.area_id if i.status == "pending" else f"#{i.id}", i.email) for i in rows],
        lambda area_id, form: Invitation.select(Invitation.id).where(
            (Invitation.area_id == area_id)
            & (Invitation.email == form)
            & (Invitation.status == "pending")
        ),
        lambda row_id, form: Invitation.update(email=form).where(Invitation.id == row_id).execute(),
    )


def _recompute(kind, rows, holders, move):
    """Move each row whose form changes, unless that would collide within its scope.

    rows: (id, scope, stored); holders(scope, form): the rows of that scope storing form.
    """
    groups = defaultdict(list)  # (scope, new form) -> ids of the rows that would move there
    for row_id, scope, stored in rows:
        try:
            form = canonical_email(stored)
        except InvalidInput as ex:
            report(f"{kind} {row_id}: address now refused ({ex.code}); stored form kept")
            continue
        if form != stored:
            groups[(scope, form)].append(row_id)
    for (scope, form), movers in sorted(groups.items()):
        # Anyone storing the form already is unchanged (forms are stable) or was refused.
        held = [r.id for r in holders(scope, form) if r.id not in movers]
        if len(movers) + len(held) > 1:
            ids = ", ".join(sorted(movers + held))
            where = f" pending in area {scope}" if kind == "invitation" else ""
            report(f"{kind}s {ids}{where}: one address after recomputing; not merged, kept")
            continue
        move(movers[0], form)
