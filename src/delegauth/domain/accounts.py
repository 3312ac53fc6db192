"""Sign-up, email verification and the signed-in user's view of their areas."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from delegauth.domain.catalogue import PermissionSet
from delegauth.domain.emails import canonical_email
from delegauth.domain.entities import Area, AuditEvent, Grant, Role, User
from delegauth.domain.ids import AREA, USER, IdFactory, new_id
from delegauth.domain.ports import (
    Clock,
    MailComposer,
    PasswordHasher,
    PolicyListener,
    Store,
    ignore_change,
)
from delegauth.domain.time_zones import known_zone
from delegauth.domain.tokens import hash_secret, new_secret
from delegauth.errors import (
    AlreadyRegistered,
    InvalidInput,
    InvalidToken,
    NotFound,
    WrongAccount,
)

__all__ = ["Accounts", "AreaAccess", "clean_text", "parse_locale"]

LOCALES = ("en", "es")
VERIFY = "verify"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


def parse_locale(value: object) -> str:
    if value is None:
        return "en"
    if not isinstance(value, str):
        raise InvalidInput("locale must be a string", field="locale")
    short = value.strip().lower()[:2]
    return short if short in LOCALES else "en"


def clean_text(value: object, *, field: str, max_len: int = 100) -> str:
    """Return display text with control characters removed, or raise for non-strings."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    text = "".join(ch for ch in unicodedata.normalize("NFC", value) if ch.isprintable()).strip()
    if len(text) > max_len:
        raise InvalidInput(
            f"{field} is longer than {max_len} characters", field=field, code="too_long"
        )
    return text


@dataclass(frozen=True)
class AreaAccess:
    area: Area
    role: Role
    permissions: PermissionSet
    valid_until: datetime | None = None  # the grant ends then (naive UTC)


class Accounts:
    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        mail: MailComposer,
        clock: Clock,
        *,
        verification_ttl: timedelta = timedelta(hours=48),
        ids: IdFactory = new_id,
        on_policy_change: PolicyListener = ignore_change,
    ) -> None:
        self._changed = on_policy_change
        self._store = store
        self._hasher = hasher
        self._mail = mail
        self._clock = clock
        self._ttl = verification_ttl
        self._ids = ids

    def signup(
        self,
        email: object,
        password: object,
        name: object = None,
        locale: object = None,
        invitation_token: object = None,
    ) -> tuple[User, Area]:
        """Create a user and their own Client Area; mail a verification link unless verified."""
        canon = canonical_email(email)
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidInput(
                f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                field="password",
                code="password_length",
            )
        display = clean_text(name, field="name")
        lang = parse_locale(locale)
        if invitation_token is not None and not isinstance(invitation_token, str):
            raise InvalidInput("invitation_token must be a string", field="invitation_token")
        password_hash = self._hasher.hash(password)  # slow: keep it outside the transaction
        now = self._clock()
        with self._store.transaction():
            verified = False
            if invitation_token:
                inv = self._store.find_invitation_by_token(hash_secret(invitation_token))
                if inv is None or not inv.is_open(now):
                    raise InvalidToken("the invitation link is invalid or has expired")
                if inv.email != canon:
                    raise WrongAccount("this invitation was sent to another email address")
                verified = True
            if self._store.find_user_by_email(canon) is not None:
                raise AlreadyRegistered(field="email")
            user = User(
                id=self._ids(USER),
                email=canon,
                name=display,
                locale=lang,
                password_hash=password_hash,
                email_verified=verified,
                created_at=now,
            )
            self._store.add_user(user)
            area = Area(id=self._ids(AREA), name=display or canon, owner_id=user.id, created_at=now)
            self._store.add_area(area)
            owner = Grant(
                area_id=area.id,
                user_id=user.id,
                role=Role.OWNER,
                permissions=PermissionSet.everything(),
                granted_by=None,
                invitation_id=None,
                created_at=now,
                updated_at=now,
            )
            version = self._store.put_grant(owner, None)
            self._store.append_audit(
                AuditEvent(
                    area.id,
                    user.id,
                    "area.created",
                    f"user:{user.id}",
                    None,
                    {"role": "owner"},
                    now,
                )
            )
            if not verified:
                token = new_secret()
                self._store.add_secret(VERIFY, hash_secret(token), user.id, now + self._ttl)
                self._store.enqueue_mail(self._mail.verification(user, token), now)
        self._changed(version)
        return user, area

    def verify_email(self, token: object) -> User:
        if not isinstance(token, str) or not token:
            raise InvalidInput("token is required", field="token")
        now = self._clock()
        with self._store.transaction():
            user_id = self._store.consume_secret(VERIFY, hash_secret(token), now)
            if user_id is None:
                raise InvalidToken("the verification link is invalid, used or expired")
            user = self._store.get_user(user_id)
            if user is None:
                raise InvalidToken("the verification link is invalid, used or expired")
            user.email_verified = True
            self._store.update_user(user)
        return user

    def pending_verification(self, token: object) -> User | None:
        """The unverified user an unused, unexpired link is for; the link stays usable."""
        if not isinstance(token, str) or not token or len(token) > 200:
            return None
        user_id = self._store.peek_secret(VERIFY, hash_secret(token), self._clock())
        user = None if user_id is None else self._store.get_user(user_id)
        return None if user is None or user.email_verified else user

    def resend_verification(self, email: object, return_to: str = "") -> None:
        """Mail a new verification link if the address is an unverified user's.

        Says nothing either way, so that callers cannot tell whether an account exists.
        ``return_to`` rides along in the link, for the page to send the person back.
        """
        canon = canonical_email(email)
        now = self._clock()
        with self._store.transaction():
            user = self._store.find_user_by_email(canon)
            if user is None or user.email_verified:
                return
            token = new_secret()
            self._store.add_secret(VERIFY, hash_secret(token), user.id, now + self._ttl)
            self._store.enqueue_mail(self._mail.verification(user, token, return_to), now)

    def authenticate(self, email: object, password: object) -> User | None:
        """Return the user when the password matches; None otherwise (same cost either way)."""
        try:
            canon = canonical_email(email)
        except InvalidInput:
            return None
        user = self._store.find_user_by_email(canon)
        if not isinstance(password, str):
            return None
        if user is None:
            self._hasher.verify(_DUMMY_HASH[0] or self._dummy(), password)
            return None
        return user if self._hasher.verify(user.password_hash, password) else None

    def _dummy(self) -> str:
        _DUMMY_HASH[0] = self._hasher.hash("not-a-real-password")
        return _DUMMY_HASH[0]

    def user_by_email(self, email: str) -> User | None:
        """The user whose canonical email equals ``email``'s; InvalidEmail if not an address."""
        canon = canonical_email(email)
        with self._store.transaction():
            return self._store.find_user_by_email(canon)

    def remember_time_zone(self, user_id: str, zone: object) -> None:
        """Keep the time zone the user's browser reported, for the mail they get
        (domain.time_zones); a name zoneinfo does not know is ignored. Writes only when
        it changed."""
        known = known_zone(zone)
        if not known:
            return
        with self._store.transaction():
            user = self._store.get_user(user_id)
            if user is not None and user.time_zone != known:
                self._store.set_user_time_zone(user_id, known)

    def get_user(self, user_id: str) -> User:
        user = self._store.get_user(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    def areas_of(self, user_id: str) -> list[AreaAccess]:
        """The areas the user can act in: their own first, then the others by name (not
        those whose grant has ended: its owner may extend it)."""
        now = self._clock()
        out = []
        for grant in self._store.list_user_grants(user_id):
            if grant.ended(now):
                continue
            area = self._store.get_area(grant.area_id)
            if area is not None:
                out.append(AreaAccess(area, grant.role, grant.held(), grant.valid_until))
        out.sort(key=lambda a: (a.role is not Role.OWNER, a.area.name, a.area.id))
        return out


_DUMMY_HASH: list[str] = [""]
