"""Managing an area: members, invitations and the audit trail (in the token's area only)."""

from __future__ import annotations

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.api.params import count_param
from delegauth.api.views import audit_view, grant_view, invitation_view, member_view
from delegauth.domain.expiry import KEEP
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Members

__all__ = [
    "AuditResource",
    "InvitationResource",
    "InvitationsResource",
    "MemberResource",
    "MembersResource",
]


class MembersResource:
    def __init__(self, auth: Authenticator, members: Members) -> None:
        self._auth = auth
        self._members = members

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        members = self._members.listing(claims.sub, area_id)
        send_json(resp, {"members": [member_view(m) for m in members]})


class MemberResource:
    def __init__(self, auth: Authenticator, members: Members, max_body: int) -> None:
        self._auth = auth
        self._members = members
        self._max = max_body

    def on_patch(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("permissions", "valid_until"))
        change = self._members.change(
            claims.sub,
            area_id,
            user_id,
            data.get("permissions"),
            data.get("valid_until", KEEP),
        )
        assert change.grant is not None
        send_json(resp, {"member": grant_view(change.grant), "policy_version": change.version})

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, user_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        change = self._members.remove(claims.sub, area_id, user_id)
        send_json(resp, {"removed": user_id, "policy_version": change.version})


class InvitationsResource:
    def __init__(self, auth: Authenticator, invitations: Invitations, max_body: int) -> None:
        self._auth = auth
        self._invitations = invitations
        self._max = max_body

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        items = self._invitations.list_for_area(claims.sub, area_id)
        send_json(resp, {"invitations": [invitation_view(i) for i in items]})

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("email", "permissions", "valid_until", "language"))
        inv, created = self._invitations.invite(
            claims.sub,
            area_id,
            data.get("email"),
            data.get("permissions"),
            data.get("valid_until"),
            mail_locale=data.get("language"),
        )
        send_json(resp, {"invitation": invitation_view(inv)}, 201 if created else 200)


class InvitationResource:
    def __init__(self, auth: Authenticator, invitations: Invitations, max_body: int) -> None:
        self._auth = auth
        self._invitations = invitations
        self._max = max_body

    def on_patch(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, invitation_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        data = read_json(req, self._max, ("permissions", "valid_until"))
        inv = self._invitations.edit(
            claims.sub,
            area_id,
            invitation_id,
            data.get("permissions"),
            data.get("valid_until", KEEP),
        )
        send_json(resp, {"invitation": invitation_view(inv)})

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, invitation_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        inv = self._invitations.cancel(claims.sub, area_id, invitation_id)
        send_json(resp, {"invitation": invitation_view(inv)})

    def on_post_resend(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, invitation_id: str
    ) -> None:
        claims = self._auth.user_in_area(req, area_id)
        inv = self._invitations.resend(claims.sub, area_id, invitation_id)
        send_json(resp, {"invitation": invitation_view(inv)})


class AuditResource:
    def __init__(self, auth: Authenticator, members: Members) -> None:
        self._auth = auth
        self._members = members

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        claims = self._auth.user_in_area(req, area_id)
        before = count_param(req, "before")
        limit = count_param(req, "limit")
        limit = 50 if limit is None else limit
        events = self._members.audit(claims.sub, area_id, before, limit)
        next_cursor = events[-1].id if len(events) == limit else None
        send_json(resp, {"events": [audit_view(e) for e in events], "next_before": next_cursor})
