"""Invitations: offered by a manager of an area, answered by the owner of the email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from delegauth.domain.access import require_manager, require_may_give
from delegauth.domain.accounts import LOCALES
from delegauth.domain.catalogue import Catalogue, CatalogueSource, as_source
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import (
    AuditEvent,
    Grant,
    Invitation,
    InvitationStatus,
    Role,
    User,
)
from delegauth.domain.expiry import (
    KEEP,
    parse_valid_until,
    require_may_give_until,
    valid_until_text,
)
from delegauth.domain.ids import INVITATION, IdFactory, new_id, parse_id
from delegauth.domain.members import Change
from delegauth.domain.ports import Clock, MailComposer, PolicyListener, Store, ignore_change
from delegauth.domain.tokens import hash_secret, new_secret
from delegauth.errors import (
    AlreadyMember,
    InvalidInput,
    InvalidToken,
    NotFound,
    NotPending,
    WrongAccount,
)

__all__ = ["InvitationPreview", "Invitations"]


@dataclass(frozen=True)
class InvitationPreview:
    invitation: Invitation
    area_name: str
    inviter_name: str


def _snapshot(inv: Invitation) -> dict[str, object]:
    return {
        "email": inv.email,
        "permissions": inv.permissions.to_json(),
        "status": str(inv.status),
        "expires_at": inv.expires_at.isoformat(),
        "valid_until": valid_until_text(inv.valid_until),
    }


class Invitations:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue | CatalogueSource,
        mail: MailComposer,
        clock: Clock,
        *,
        ttl: timedelta = timedelta(days=7),
        ids: IdFactory = new_id,
        on_policy_change: PolicyListener = ignore_change,
    ) -> None:
        self._changed = on_policy_change
        self._store = store
        self._catalogue = as_source(catalogue)
        self._mail = mail
        self._clock = clock
        self._ttl = ttl
        self._ids = ids

    # -- the area's side -------------------------------------------------------------

    def invite(
        self,
        actor_id: str,
        area_id: str,
        email: object,
        permissions: object,
        valid_until: object = None,
        *,
        mail_locale: str | None = None,
    ) -> tuple[Invitation, bool]:
        """Invite an email; re-inviting updates and resends. Returns (invitation, created).

        ``valid_until``: when the access it offers ends (domain.expiry; None: never). The
        email goes in ``mail_locale`` when the inviter chose one ("en" or "es"); the
        invitation keeps the choice for resends (re-inviting without one keeps it too)."""
        canon = canonical_email(email)
        if mail_locale is not None and mail_locale not in LOCALES:
            raise InvalidInput("the email's language must be en or es", field="language")
        offered = self._catalogue().parse(permissions)
        now = self._clock()
        until = parse_valid_until(valid_until, now)
        with self._store.transaction():
            actor = require_manager(self._store, area_id, actor_id, now)
            require_may_give(actor, offered)
            require_may_give_until(actor, until)
            invitee = self._store.find_user_by_email(canon)
            if invitee is not None and self._store.get_grant(area_id, invitee.id) is not None:
                raise AlreadyMember("this person is already a member of the area", field="email")
            existing = self._store.find_pending_invitation(area_id, canon)
            if existing is not None and not existing.is_open(now):
                self._expire(existing, now)
                existing = None
            token = new_secret()
            if existing is None:
                inv = Invitation(
                    id=self._ids(INVITATION),
                    area_id=area_id,
                    email=canon,
                    permissions=offered,
                    invited_by=actor_id,
                    status=InvitationStatus.PENDING,
                    token_hash=hash_secret(token),
                    expires_at=now + self._ttl,
                    created_at=now,
                    updated_at=now,
                    valid_until=until,
                    mail_locale=mail_locale or "",
                )
                self._store.add_invitation(inv)
                self._audit(actor_id, "invitation.created", inv, None, _snapshot(inv), now)
                created = True
            else:
                before = _snapshot(existing)
                inv = existing
                inv.permissions = offered
                inv.valid_until = until
                inv.mail_locale = mail_locale or inv.mail_locale
                inv.invited_by = actor_id
                inv.token_hash = hash_secret(token)
                inv.expires_at = now + self._ttl
                inv.updated_at = now
                inv.sends += 1
                self._store.update_invitation(inv)
                self._audit(actor_id, "invitation.updated", inv, before, _snapshot(inv), now)
                created = False
            self._send(inv, actor_id, token, invitee, now)
        return inv, created

    def list_for_area(self, actor_id: str, area_id: str) -> list[Invitation]:
        now = self._clock()
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, now)
            return [i for i in self._store.list_area_invitations(area_id) if i.is_open(now)]

    def edit(
        self,
        actor_id: str,
        area_id: str,
        invitation_id: str,
        permissions: object,
        valid_until: object = KEEP,
    ) -> Invitation:
        """Change what a pending invitation offers; ``permissions`` None keeps them, and
        ``valid_until`` KEEP keeps the end (None: no end)."""
        now = self._clock()
        until = None if valid_until is KEEP else parse_valid_until(valid_until, now)
        with self._store.transaction():
            actor = require_manager(self._store, area_id, actor_id, now)
            inv = self._open_in_area(area_id, invitation_id, now)
            offered = (
                inv.permissions
                if permissions is None and valid_until is not KEEP
                else self._catalogue().parse(permissions)
            )
            require_may_give(actor, offered)
            if valid_until is KEEP:
                until = inv.valid_until
            require_may_give_until(actor, until)
            before = _snapshot(inv)
            inv.permissions = offered
            inv.valid_until = until
            inv.updated_at = now
            self._store.update_invitation(inv)
            self._audit(actor_id, "invitation.updated", inv, before, _snapshot(inv), now)
        return inv

    def resend(self, actor_id: str, area_id: str, invitation_id: str) -> Invitation:
        """Send a fresh link (the old one stops working) and restart the expiry, in the
        language chosen when inviting."""
        now = self._clock()
        with self._store.transaction():
            actor = require_manager(self._store, area_id, actor_id, now)
            inv = self._open_in_area(area_id, invitation_id, now)
            require_may_give(actor, inv.permissions)
            before = _snapshot(inv)
            token = new_secret()
            inv.token_hash = hash_secret(token)
            inv.expires_at = now + self._ttl
            inv.updated_at = now
            inv.sends += 1
            self._store.update_invitation(inv)
            self._audit(actor_id, "invitation.resent", inv, before, _snapshot(inv), now)
            self._send(inv, actor_id, token, self._store.find_user_by_email(inv.email), now)
        return inv

    def cancel(self, actor_id: str, area_id: str, invitation_id: str) -> Invitation:
        now = self._clock()
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, now)
            inv = self._open_in_area(area_id, invitation_id, now)
            before = _snapshot(inv)
            self._finish(inv, InvitationStatus.CANCELLED, now)
            self._audit(actor_id, "invitation.cancelled", inv, before, _snapshot(inv), now)
        return inv

    # -- the invitee's side ----------------------------------------------------------

    def addressed_to(self, user: User) -> list[Invitation]:
        """Open invitations for the user's verified email (none while it is unverified)."""
        if not user.email_verified:
            return []
        now = self._clock()
        return [i for i in self._store.list_invitations_for(user.email) if i.is_open(now)]

    def preview(self, token: object) -> InvitationPreview | None:
        """What an emailed link offers, while it is open: for the pages, before sign-in."""
        if not isinstance(token, str) or not token or len(token) > 200:
            return None
        inv = self._store.find_invitation_by_token(hash_secret(token))
        if inv is None or not inv.is_open(self._clock()):
            return None
        area = self._store.get_area(inv.area_id)
        inviter = self._store.get_user(inv.invited_by)
        return InvitationPreview(
            invitation=inv,
            area_name=area.name if area else "",
            inviter_name=(inviter.name or inviter.email) if inviter else "",
        )

    def accept(self, user_id: str, invitation_id: object) -> Change:
        """Turn the invitation into a grant; return it with the change-log version written."""
        inv_id = self._parse_invitation_id(invitation_id)
        now = self._clock()
        with self._store.transaction():
            user, inv = self._addressed(user_id, self._store.get_invitation(inv_id), now)
            accepted = self._accept(user, inv, now)
        return self._accepted(accepted)

    def accept_token(self, user_id: str, token: object) -> Change:
        """Accept through the emailed link's token (see accept)."""
        if not isinstance(token, str) or not token:
            raise InvalidInput("token is required", field="token")
        now = self._clock()
        with self._store.transaction():
            inv = self._store.find_invitation_by_token(hash_secret(token))
            if inv is None:
                raise InvalidToken("the invitation link is invalid or was already used")
            user, inv = self._addressed(user_id, inv, now)
            accepted = self._accept(user, inv, now)
        return self._accepted(accepted)

    def decline(self, user_id: str, invitation_id: object) -> Invitation:
        inv_id = self._parse_invitation_id(invitation_id)
        now = self._clock()
        with self._store.transaction():
            _user, inv = self._addressed(user_id, self._store.get_invitation(inv_id), now)
            if inv.status is InvitationStatus.PENDING:
                before = _snapshot(inv)
                self._finish(inv, InvitationStatus.DECLINED, now)
                self._audit(user_id, "invitation.declined", inv, before, _snapshot(inv), now)
        if inv.status is InvitationStatus.EXPIRED:
            raise NotPending("the invitation has expired", code="invitation_expired")
        return inv

    # -- internals -------------------------------------------------------------------

    @staticmethod
    def _parse_invitation_id(value: object) -> str:
        try:
            return parse_id(value, INVITATION, field="invitation")
        except InvalidInput as ex:
            raise NotFound("no such invitation") from ex

    def _addressed(
        self, user_id: str, inv: Invitation | None, now: datetime
    ) -> tuple[User, Invitation]:
        """Check the invitation is open and addressed to this user's verified email."""
        user = self._store.get_user(user_id)
        if inv is None or user is None:
            raise NotFound("no such invitation")
        if not user.email_verified or inv.email != user.email:
            raise WrongAccount()
        if inv.status is InvitationStatus.PENDING and now >= inv.expires_at:
            self._expire(inv, now)  # the caller commits this, then reports it
            return user, inv
        if inv.status is not InvitationStatus.PENDING:
            raise NotPending(f"the invitation is {inv.status}")
        return user, inv

    def _accepted(self, accepted: tuple[Grant, int] | None) -> Change:
        if accepted is None:
            raise NotPending("the invitation has expired", code="invitation_expired")
        grant, version = accepted
        self._changed(version)
        return Change(grant, version)

    def _accept(self, user: User, inv: Invitation, now: datetime) -> tuple[Grant, int] | None:
        if inv.status is InvitationStatus.EXPIRED:
            return None
        if self._store.get_grant(inv.area_id, user.id) is not None:
            raise AlreadyMember("you are already a member of this area")
        if inv.valid_until is not None and now >= inv.valid_until:
            raise NotPending("the access this invitation offered has ended", code="access_ended")
        before = _snapshot(inv)
        # The conditional transition is what makes concurrent accepts give one grant.
        if not self._store.transition_invitation(inv.id, InvitationStatus.ACCEPTED, now):
            raise NotPending()
        inv.status = InvitationStatus.ACCEPTED
        grant = Grant(
            area_id=inv.area_id,
            user_id=user.id,
            role=Role.DELEGATE,
            permissions=inv.permissions,
            granted_by=inv.invited_by,
            invitation_id=inv.id,
            created_at=now,
            updated_at=now,
            valid_until=inv.valid_until,
        )
        version = self._store.put_grant(grant, None)
        self._audit(user.id, "invitation.accepted", inv, before, _snapshot(inv), now)
        self._store.append_audit(
            AuditEvent(
                inv.area_id,
                user.id,
                "grant.created",
                f"user:{user.id}",
                None,
                {
                    "role": "delegate",
                    "permissions": grant.permissions.to_json(),
                    "invitation": inv.id,
                    "valid_until": valid_until_text(grant.valid_until),
                },
                now,
            )
        )
        return grant, version

    def _open_in_area(self, area_id: str, invitation_id: str, now: datetime) -> Invitation:
        inv = self._store.get_invitation(self._parse_invitation_id(invitation_id))
        if inv is None or inv.area_id != area_id:
            raise NotFound("no such invitation")
        if inv.status is not InvitationStatus.PENDING:
            raise NotPending(f"the invitation is {inv.status}")
        if now >= inv.expires_at:
            raise NotPending("the invitation has expired; invite again", code="invitation_expired")
        return inv

    def _finish(self, inv: Invitation, status: InvitationStatus, now: datetime) -> None:
        if not self._store.transition_invitation(inv.id, status, now):
            raise NotPending()
        inv.status = status

    def _expire(self, inv: Invitation, now: datetime) -> None:
        if self._store.transition_invitation(inv.id, InvitationStatus.EXPIRED, now):
            inv.status = InvitationStatus.EXPIRED
            self._audit(None, "invitation.expired", inv, None, _snapshot(inv), now)

    def _send(
        self,
        inv: Invitation,
        inviter_id: str,
        token: str,
        invitee: User | None,
        now: datetime,
    ) -> None:
        area = self._store.get_area(inv.area_id)
        inviter = self._store.get_user(inviter_id)
        assert area is not None and inviter is not None
        # The language chosen when inviting (kept on the invitation); else an invitee with
        # an account reads their own, a new one the inviter's.
        locale = inv.mail_locale or (invitee.locale if invitee is not None else inviter.locale)
        mail = self._mail.invitation(inv, area, inviter, token, locale, invitee)
        self._store.enqueue_mail(mail, now)

    def _audit(
        self,
        actor_id: str | None,
        action: str,
        inv: Invitation,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
        now: datetime,
    ) -> None:
        self._store.append_audit(
            AuditEvent(inv.area_id, actor_id, action, f"invitation:{inv.id}", before, after, now)
        )
