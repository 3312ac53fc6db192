"""Sign-up, verification, the signed-in user and the invitations addressed to them."""

from __future__ import annotations

import falcon

from delegauth.api.auth import Authenticator
from delegauth.api.body import read_json, send_json
from delegauth.api.views import access_view, area_view, grant_view, invitation_view, user_view
from delegauth.domain.accounts import Accounts
from delegauth.domain.invitations import Invitations
from delegauth.domain.members import Change
from delegauth.domain.ports import Store

__all__ = [
    "AcceptByTokenResource",
    "AnswerInvitationResource",
    "MeResource",
    "MyInvitationsResource",
    "SignupResource",
    "VerificationResource",
]

SIGNUP_FIELDS = ("email", "password", "name", "locale", "invitation_token")


class SignupResource:
    def __init__(self, accounts: Accounts, max_body: int) -> None:
        self._accounts = accounts
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_json(req, self._max, SIGNUP_FIELDS)
        user, area = self._accounts.signup(
            data.get("email"),
            data.get("password"),
            data.get("name"),
            data.get("locale"),
            data.get("invitation_token"),
        )
        send_json(resp, {"user": user_view(user), "area": area_view(area)}, 201)


class VerificationResource:
    def __init__(self, accounts: Accounts, max_body: int) -> None:
        self._accounts = accounts
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = self._accounts.verify_email(read_json(req, self._max, ("token",)).get("token"))
        send_json(resp, {"user": user_view(user)})


class MeResource:
    def __init__(self, auth: Authenticator, accounts: Accounts) -> None:
        self._auth = auth
        self._accounts = accounts

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = self._auth.user(req)
        user = self._accounts.get_user(claims.sub)
        send_json(
            resp,
            {
                "user": user_view(user),
                "current_area": claims.area,
                "areas": [access_view(a) for a in self._accounts.areas_of(user.id)],
            },
        )


class MyInvitationsResource:
    def __init__(
        self, auth: Authenticator, accounts: Accounts, invitations: Invitations, store: Store
    ) -> None:
        self._auth = auth
        self._accounts = accounts
        self._invitations = invitations
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = self._accounts.get_user(self._auth.user(req).sub)
        items = []
        for inv in self._invitations.addressed_to(user):
            area = self._store.get_area(inv.area_id)
            inviter = self._store.get_user(inv.invited_by)
            view = invitation_view(inv, area)
            view["invited_by_name"] = (inviter.name or inviter.email) if inviter else None
            items.append(view)
        send_json(resp, {"invitations": items})


class AnswerInvitationResource:
    """POST /v1/invitations/{id}/accept and /decline."""

    def __init__(self, auth: Authenticator, invitations: Invitations) -> None:
        self._auth = auth
        self._invitations = invitations

    def on_post_accept(
        self, req: falcon.Request, resp: falcon.Response, invitation_id: str
    ) -> None:
        change = self._invitations.accept(self._auth.user(req).sub, invitation_id)
        send_json(resp, _accepted_view(change), 201)

    def on_post_decline(
        self, req: falcon.Request, resp: falcon.Response, invitation_id: str
    ) -> None:
        inv = self._invitations.decline(self._auth.user(req).sub, invitation_id)
        send_json(resp, {"invitation": invitation_view(inv)})


class AcceptByTokenResource:
    def __init__(self, auth: Authenticator, invitations: Invitations, max_body: int) -> None:
        self._auth = auth
        self._invitations = invitations
        self._max = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user_id = self._auth.user(req).sub
        token = read_json(req, self._max, ("token",)).get("token")
        change = self._invitations.accept_token(user_id, token)
        send_json(resp, _accepted_view(change), 201)


def _accepted_view(change: Change) -> dict[str, object]:
    """An accept is a grant write: it answers with the policy_version it produced."""
    assert change.grant is not None
    return {"grant": grant_view(change.grant), "policy_version": change.version}
