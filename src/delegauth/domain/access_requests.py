"""Access requests: a user asks an area's owner for permissions; a manager approves or declines.

Two ways in:

- from inside: a delegate asks the area they are in for more;
- by email: anyone with a verified email asks the owner of that address for access to the
  owner's own Client Area.

The second must not be a spam channel or an oracle for which emails have accounts:

- the answer is the same whether the address has an account or not: a request is stored
  either way (``area_id`` None when nobody verified owns the address, or when it is the
  requester's own), pending until it expires or is withdrawn, and its view never names the
  area it reached;
- only an existing owner gets an email, with the requester's verified address (never
  their self-chosen name) and the message quoted as plain text: links are refused, bare
  domains are defanged (``example[.]com``), nothing is rendered as HTML;
- rate limits in a sliding window, counted from the requests themselves (withdrawing does
  not give the allowance back): per requester, per requester by email, per address asked
  (the same whether it has an account), and per area asked from inside;
- one open request per requester and area (or address asked);
- the requester's own area's audit trail records what they asked by email in the same
  words either way, so their own Activity page cannot tell the cases apart either.

An approval is a grant change made by ``Members.add_within`` (the same no-escalation rules
as editing a member) in one transaction with the request's answer, its audit events, the
Casbin rules, the change log and the requester's email.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from delegauth.domain.access import require_grant, require_manager
from delegauth.domain.catalogue import Catalogue, CatalogueSource, PermissionSet, as_source
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import (
    AccessRequest,
    AccessRequestStatus,
    AuditEvent,
    Role,
    User,
)
from delegauth.domain.expiry import parse_valid_until
from delegauth.domain.ids import ACCESS_REQUEST, AREA, IdFactory, new_id, parse_id
from delegauth.domain.members import Change, Members
from delegauth.domain.ports import Clock, MailComposer, PolicyListener, Store, ignore_change
from delegauth.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    NotPending,
    RateLimited,
)

__all__ = ["AccessRequests", "Limits", "Submission", "clean_message", "defang"]

MAX_MESSAGE = 500
MAX_MESSAGE_LINES = 10
_LINK = re.compile(r"(?i)[a-z][a-z0-9+.\-]*://|\bwww\.")
# Something a mail client would turn into a link: a dotted name ending in letters.
_DOMAIN_DOT = re.compile(r"(?i)(?<=[a-z0-9\-])\.(?=[a-z0-9\-]*[a-z][a-z0-9\-]*\b)")


@dataclass(frozen=True)
class Limits:
    """How many requests may be made in ``window``: the defaults suit people, not scripts."""

    window: timedelta = timedelta(hours=24)
    per_requester: int = 10
    per_requester_by_email: int = 3
    per_address: int = 5  # by email, whether or not the address has an account
    per_area: int = 20  # from inside, by all its members


@dataclass(frozen=True)
class Submission:
    """What was asked, as the requester sent it: the area by id, or an owner by email."""

    request: AccessRequest
    resource_type: str  # "area" or "owner"
    resource_id: str


def clean_message(value: object) -> str:
    """The optional message as plain text, or InvalidInput saying what is wrong with it.

    Controls, bidi overrides, zero-width and other invisible characters are dropped: they
    could disguise what the owner reads. Links are refused, not rewritten.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("message must be a string", field="message")
    if len(value) > MAX_MESSAGE:
        raise InvalidInput(
            f"the message is longer than {MAX_MESSAGE} characters",
            field="message",
            code="message_too_long",
        )
    if value.count("\n") >= MAX_MESSAGE_LINES:
        raise InvalidInput(
            f"the message has more than {MAX_MESSAGE_LINES} lines",
            field="message",
            code="message_too_long",
        )
    if _LINK.search(value):
        raise InvalidInput(
            "links are not allowed in the message", field="message", code="message_has_link"
        )
    text = unicodedata.normalize("NFC", value)
    lines = ("".join(ch for ch in line if ch.isprintable()).strip() for line in text.split("\n"))
    return "\n".join(lines).strip()[:MAX_MESSAGE]


def defang(text: str) -> str:
    """``example.com`` → ``example[.]com``: no mail client makes a link of it."""
    return _DOMAIN_DOT.sub("[.]", text)


class AccessRequests:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue | CatalogueSource,
        members: Members,
        mail: MailComposer,
        clock: Clock,
        *,
        ttl: timedelta = timedelta(days=14),
        limits: Limits = Limits(),
        ids: IdFactory = new_id,
        on_policy_change: PolicyListener = ignore_change,
    ) -> None:
        self._store = store
        self._catalogue = as_source(catalogue)
        self._members = members
        self._mail = mail
        self.clock = self._clock = clock  # the edges read it to show a request's status
        self._ttl = ttl
        self._limits = limits
        self._ids = ids
        self._changed = on_policy_change

    # -- the requester's side --------------------------------------------------------

    def ask_area(
        self, user_id: str, area_id: object, permissions: object, message: object = None
    ) -> AccessRequest:
        """A member asks their area for more; the owner is mailed."""
        area_id = self._parse_area(area_id)
        wanted = self._catalogue().parse(permissions)
        text = clean_message(message)
        now = self._clock()
        with self._store.transaction():
            user = self._verified(user_id)
            grant = require_grant(self._store, area_id, user_id, now)
            if grant.role is Role.OWNER or grant.held().covers(wanted):
                raise Conflict(
                    "you already hold these permissions", field="permissions", code="already_held"
                )
            self._limit(user_id, now, area_id=area_id)
            request = self._new(user, area_id, "", wanted, text, now)
            self._audit(area_id, user_id, "access_request.created", request, None, now)
            self._tell_owner(request, user, now)
        return request

    def ask_owner(
        self, user_id: str, email: object, permissions: object, message: object = None
    ) -> AccessRequest:
        """Ask whoever owns ``email`` for access to their Client Area.

        Answers the same whether the address has an account or not (see the module's
        docstring); only an owner that exists is mailed.
        """
        asked = canonical_email(email)
        wanted = self._catalogue().parse(permissions)
        text = clean_message(message)
        now = self._clock()
        with self._store.transaction():
            user = self._verified(user_id)
            self._limit(user_id, now, asked_email=asked)
            owner = self._store.find_user_by_email(asked)
            area = None
            if owner is not None and owner.email_verified and owner.id != user_id:
                area = self._store.first_owned_area(owner.id)
            request = self._new(user, area.id if area else None, asked, wanted, text, now)
            own = self._store.first_owned_area(user_id)
            if own is not None:  # the same words either way: see the module's docstring
                self._audit(own.id, user_id, "access_request.created", request, None, now)
            if area is not None:
                self._audit(area.id, user_id, "access_request.created", request, None, now)
                self._tell_owner(request, user, now)
        return request

    def withdraw(self, user_id: str, request_id: object) -> AccessRequest:
        now = self._clock()
        with self._store.transaction():
            request = self._store.get_access_request(self._parse_request(request_id))
            if request is None or request.requester_id != user_id:
                raise NotFound("no such access request")
            self._require_open(request, now)
            before = _snapshot(request, now)
            self._finish(request, AccessRequestStatus.WITHDRAWN, now)
            for area_id in self._audit_areas(request):
                self._audit(area_id, user_id, "access_request.withdrawn", request, before, now)
        return request

    def get_mine(self, user_id: str, request_id: object) -> AccessRequest:
        with self._store.transaction():
            request = self._store.get_access_request(self._parse_request(request_id))
        if request is None or request.requester_id != user_id:
            raise NotFound("no such access request")
        return request

    def mine(self, user_id: str, limit: int = 50) -> list[AccessRequest]:
        """The user's requests, newest first."""
        with self._store.transaction():
            return self._store.list_user_access_requests(user_id, limit)

    # -- the area's side -------------------------------------------------------------

    def reviewer(self, area_id: str, request_id: object) -> User | None:
        """Whom the review link of this request was mailed to (the area's owner), or None
        when that area holds no such request: for the page that tells someone signed in as
        another account whom to sign in as."""
        with self._store.transaction():
            try:
                self._in_area(area_id, request_id)
            except NotFound:
                return None
            area = self._store.get_area(area_id)
            return self._store.get_user(area.owner_id) if area is not None else None

    def pending(self, actor_id: str, area_id: str) -> list[AccessRequest]:
        """Open requests to the area, oldest first: for its managers."""
        now = self._clock()
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, now)
            return self._store.list_area_access_requests(area_id, now)

    def get_in_area(self, actor_id: str, area_id: str, request_id: object) -> AccessRequest:
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, self._clock())
            return self._in_area(area_id, request_id)

    def approve(
        self,
        actor_id: str,
        area_id: str,
        request_id: object,
        permissions: object = None,
        valid_until: object = None,
    ) -> tuple[AccessRequest, Change]:
        """Give what was asked (``permissions`` None), or part of it; never more; until
        ``valid_until`` (domain.expiry; None: no end) for someone who holds no grant there.

        The grant change is ``Members.add_within``: the approver must hold what they give.
        """
        chosen = None if permissions is None else self._catalogue().parse(permissions)
        now = self._clock()
        until = parse_valid_until(valid_until, now)
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, now)
            request = self._in_area(area_id, request_id)
            self._require_open(request, now)
            given = request.permissions if chosen is None else chosen
            if not request.permissions.covers(given):
                raise Forbidden(
                    "approve only permissions that were asked for",
                    field="permissions",
                    code="beyond_request",
                )
            before = _snapshot(request, now)
            change = self._members.add_within(
                actor_id,
                area_id,
                request.requester_id,
                given,
                until,
                now,
                {"access_request": request.id},
            )
            self._finish(request, AccessRequestStatus.APPROVED, now, actor_id, given)
            for audit_area in self._audit_areas(request):
                self._audit(audit_area, actor_id, "access_request.approved", request, before, now)
            ends = change.grant.valid_until if change.grant is not None else None
            self._tell_requester(request, now, ends)
        self._changed(change.version)
        return request, change

    def decline(self, actor_id: str, area_id: str, request_id: object) -> AccessRequest:
        now = self._clock()
        with self._store.transaction():
            require_manager(self._store, area_id, actor_id, now)
            request = self._in_area(area_id, request_id)
            self._require_open(request, now)
            before = _snapshot(request, now)
            self._finish(request, AccessRequestStatus.DECLINED, now, actor_id)
            for audit_area in self._audit_areas(request):
                self._audit(audit_area, actor_id, "access_request.declined", request, before, now)
            self._tell_requester(request, now)
        return request

    # -- internals -------------------------------------------------------------------

    def _verified(self, user_id: str) -> User:
        user = self._store.get_user(user_id)
        if user is None:
            raise NotFound("no such user")
        if not user.email_verified:
            # The owner sees the requester's address: it must be theirs.
            raise Forbidden("verify your email address first", code="email_unverified")
        return user

    def _limit(
        self, user_id: str, now: datetime, *, area_id: str | None = None, asked_email: str = ""
    ) -> None:
        lim, store = self._limits, self._store
        since = now - lim.window
        counts = [(store.count_access_requests(since, requester_id=user_id), lim.per_requester)]
        if asked_email:
            mine_by_email = store.count_access_requests(since, requester_id=user_id, by_email=True)
            counts.append((mine_by_email, lim.per_requester_by_email))
            counts.append(
                (store.count_access_requests(since, asked_email=asked_email), lim.per_address)
            )
        if area_id is not None:
            counts.append(
                (store.count_access_requests(since, area_id=area_id, by_email=False), lim.per_area)
            )
        if any(count >= allowed for count, allowed in counts):
            raise RateLimited("too many access requests lately; try again later")
        existing = store.find_open_access_request(user_id, area_id, asked_email, now)
        if existing is not None:
            raise Conflict(
                "you already have an open request there; withdraw it to ask again",
                code="request_open",
            )

    def _new(
        self,
        user: User,
        area_id: str | None,
        asked_email: str,
        wanted: PermissionSet,
        message: str,
        now: datetime,
    ) -> AccessRequest:
        request = AccessRequest(
            id=self._ids(ACCESS_REQUEST),
            requester_id=user.id,
            area_id=area_id,
            asked_email=asked_email,
            permissions=wanted,
            message=message,
            status=AccessRequestStatus.PENDING,
            created_at=now,
            updated_at=now,
            expires_at=now + self._ttl,
        )
        self._store.add_access_request(request)
        return request

    def _in_area(self, area_id: str, request_id: object) -> AccessRequest:
        request = self._store.get_access_request(self._parse_request(request_id))
        if request is None or request.area_id != area_id:
            raise NotFound("no such access request")
        return request

    @staticmethod
    def _require_open(request: AccessRequest, now: datetime) -> None:
        status = request.status_at(now)
        if status is AccessRequestStatus.EXPIRED:
            raise NotPending("the access request has expired", code="request_expired")
        if status is not AccessRequestStatus.PENDING:
            raise NotPending(f"the access request is {status}", code="request_answered")

    def _finish(
        self,
        request: AccessRequest,
        to: AccessRequestStatus,
        now: datetime,
        decided_by: str | None = None,
        granted: PermissionSet | None = None,
    ) -> None:
        # Conditional on pending: two answers racing give exactly one.
        if not self._store.finish_access_request(request.id, to, now, decided_by, granted):
            raise NotPending("the access request was answered meanwhile", code="request_answered")
        request.status, request.updated_at = to, now
        request.decided_by, request.granted = decided_by, granted

    def _audit_areas(self, request: AccessRequest) -> list[str]:
        """Where a request's events are written: the area asked and, for one asked by
        email, the requester's own area too (whether or not it reached anyone)."""
        areas = [request.area_id] if request.area_id else []
        if request.asked_email:
            own = self._store.first_owned_area(request.requester_id)
            if own is not None and own.id not in areas:
                areas.insert(0, own.id)
        return areas

    def _audit(
        self,
        area_id: str,
        actor_id: str,
        action: str,
        request: AccessRequest,
        before: dict[str, object] | None,
        now: datetime,
    ) -> None:
        self._store.append_audit(
            AuditEvent(
                area_id,
                actor_id,
                action,
                f"access_request:{request.id}",
                before,
                _snapshot(request, now),
                now,
            )
        )

    def _tell_owner(self, request: AccessRequest, requester: User, now: datetime) -> None:
        assert request.area_id is not None
        area = self._store.get_area(request.area_id)
        owner = self._store.get_user(area.owner_id) if area is not None else None
        if area is None or owner is None:
            return
        self._store.enqueue_mail(self._mail.access_request(request, area, requester, owner), now)

    def _tell_requester(
        self, request: AccessRequest, now: datetime, until: datetime | None = None
    ) -> None:
        """The outcome, with the end of the access it gave (``until``), if it ends."""
        assert request.area_id is not None
        area = self._store.get_area(request.area_id)
        requester = self._store.get_user(request.requester_id)
        if area is None or requester is None:
            return
        mail = self._mail.access_request_answered(request, area, requester, until)
        self._store.enqueue_mail(mail, now)

    @staticmethod
    def _parse_request(value: object) -> str:
        try:
            return parse_id(value, ACCESS_REQUEST, field="request")
        except InvalidInput as ex:
            raise NotFound("no such access request") from ex

    @staticmethod
    def _parse_area(value: object) -> str:
        return parse_id(value, AREA, field="resource")


def _snapshot(request: AccessRequest, now: datetime) -> dict[str, object]:
    """What the audit trail keeps of a request: never the message (free text)."""
    body: dict[str, object] = {
        "requester": request.requester_id,
        "permissions": request.permissions.to_json(),
        "status": str(request.status_at(now)),
    }
    if request.asked_email:
        body["email"] = request.asked_email
    if request.granted is not None:
        body["granted"] = request.granted.to_json()
    return body
