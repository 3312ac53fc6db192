"""PeeweeOAuthStore: OAuth clients, codes, refresh-token families, revocations, sessions.

Every secret (client secret, code, refresh token, session id) is stored as a hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from delegauth.domain.revocations import REVOKED_DOMAIN, jti_hash
from delegauth.errors import Unavailable
from delegauth.storage.records import (
    AccessIssueRecord,
    AccessRevocationRecord,
    AuthCodeRecord,
    BrowserSessionRecord,
    OAuthClientRecord,
    RefreshTokenRecord,
    SignInFailureRecord,
)
from delegauth.storage.store import append_change

__all__ = ["ClientRow", "CodeRow", "PeeweeOAuthStore", "RefreshRow", "SessionRow"]

# How long a revocation is kept past its token's expiry (verifiers allow seconds of skew).
_KEEP = timedelta(hours=1)
# What execute_sql wraps a statement in: driver errors raised as peewee's own.
_DRIVER_ERRORS = peewee.__exception_wrapper__  # type: ignore[attr-defined]
# Client rows kept parsed, by their columns' values (emptied when full).
_PARSED_CLIENTS = 1024


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    secret_hash: str | None
    name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    first_party: bool
    created_at: datetime


@dataclass(frozen=True)
class CodeRow:
    code_hash: str
    client_id: str
    user_id: str
    area_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime
    expires_at: datetime
    used_at: datetime | None
    family_id: str | None


@dataclass(frozen=True)
class RefreshRow:
    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    area_id: str
    scope: str
    created_at: datetime
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class SessionRow:
    id_hash: str
    user_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime


def _client(row: OAuthClientRecord) -> ClientRow:
    return ClientRow(
        client_id=row.client_id,
        secret_hash=row.secret_hash,
        name=row.name,
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        grant_types=tuple(json.loads(row.grant_types)),
        scopes=tuple(json.loads(row.scopes)),
        first_party=bool(row.first_party),
        created_at=row.created_at,
    )


_CLIENT_COLUMNS = (
    "client_id, secret_hash, name, redirect_uris, grant_types, scopes, first_party, created_at"
)


class PeeweeOAuthStore:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._parsed_clients: dict[tuple[Any, ...], ClientRow] = {}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._db.connection_context(), self._db.atomic():
                yield
        except (peewee.OperationalError, peewee.InterfaceError) as ex:
            raise Unavailable("the database is unavailable") from ex

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One SELECT on this thread's kept connection, outside a transaction.

        Opening a connection per lookup was most of a token request: SQLite checkpoints
        and deletes the WAL when its last connection closes, and a checkout from peewee's
        PostgreSQL pool pings the server first. A single statement reads one snapshot, so
        no transaction is needed (and SQLite's BEGIN IMMEDIATE would queue reads behind
        writers). Nothing is cached: a deleted client is refused at its next request.
        """
        try:
            self._db.connect(reuse_if_open=True)
            yield
        except (peewee.DatabaseError, peewee.InterfaceError) as ex:
            # The connection may be dead (a server restarted, a bound passed): the next
            # call opens another.
            with suppress(Exception):
                self._db.close()
            raise Unavailable("the database is unavailable") from ex

    # -- clients ---------------------------------------------------------------------

    def add_client(self, client: ClientRow) -> None:
        with self.transaction():
            OAuthClientRecord.insert(
                client_id=client.client_id,
                secret_hash=client.secret_hash,
                name=client.name,
                redirect_uris=json.dumps(list(client.redirect_uris)),
                grant_types=json.dumps(list(client.grant_types)),
                scopes=json.dumps(list(client.scopes)),
                first_party=client.first_party,
                created_at=client.created_at,
            ).execute()

    def get_client(self, client_id: str) -> ClientRow | None:
        # The SQL as text, on the driver's cursor: this is the one statement of a
        # client_credentials request, and peewee building it, then its execute_sql around
        # it, each cost as much as the database running it. Driver errors still become
        # peewee's (its exception wrapper, as execute_sql does), which _read answers.
        sql = f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = {self._db.param}"
        with self._read(), _DRIVER_ERRORS:
            cursor = self._db.connection().cursor()
            cursor.execute(sql, (client_id,))
            found = cursor.fetchone()
        if found is None:
            return None
        # The row is read every time (a deleted or changed client is seen at once); only
        # turning the same columns into a ClientRow again is skipped.
        found = tuple(found)
        parsed = self._parsed_clients.get(found)
        if parsed is None:
            parsed = self._parse_client(found)
            if len(self._parsed_clients) >= _PARSED_CLIENTS:
                self._parsed_clients.clear()
            self._parsed_clients[found] = parsed
        return parsed

    @staticmethod
    def _parse_client(found: tuple[Any, ...]) -> ClientRow:
        cid, secret_hash, name, uris, grant_types, scopes, first_party, created_at = found
        return ClientRow(
            client_id=cid,
            secret_hash=secret_hash,
            name=name,
            redirect_uris=tuple(json.loads(uris)),
            grant_types=tuple(json.loads(grant_types)),
            scopes=tuple(json.loads(scopes)),
            first_party=bool(first_party),
            created_at=OAuthClientRecord.created_at.python_value(created_at),
        )

    def list_clients(self) -> list[ClientRow]:
        with self.transaction():
            return [
                _client(r)
                for r in OAuthClientRecord.select().order_by(OAuthClientRecord.created_at)
            ]

    def delete_client(self, client_id: str, now: datetime) -> bool:
        with self.transaction():
            deleted = (
                OAuthClientRecord.delete().where(OAuthClientRecord.client_id == client_id).execute()
            )
            RefreshTokenRecord.update(revoked_at=now).where(
                (RefreshTokenRecord.client_id == client_id)
                & RefreshTokenRecord.revoked_at.is_null()
            ).execute()
            return bool(deleted)

    # -- authorization codes ---------------------------------------------------------

    def add_code(self, code: CodeRow) -> None:
        with self.transaction():
            AuthCodeRecord.insert(**vars(code)).execute()

    def get_code(self, code_hash: str) -> CodeRow | None:
        with self.transaction():
            row = AuthCodeRecord.get_or_none(AuthCodeRecord.code_hash == code_hash)
            return None if row is None else CodeRow(**row.__data__)

    def use_code(self, code_hash: str, family_id: str, now: datetime) -> bool:
        """Mark a code used, recording the family its tokens belong to; False if already used."""
        with self.transaction():
            return (
                AuthCodeRecord.update(used_at=now, family_id=family_id)
                .where((AuthCodeRecord.code_hash == code_hash) & AuthCodeRecord.used_at.is_null())
                .execute()
                == 1
            )

    # -- refresh-token families and access-token revocation --------------------------

    def add_refresh(self, row: RefreshRow) -> None:
        with self.transaction():
            RefreshTokenRecord.insert(**vars(row)).execute()

    def get_refresh(self, token_hash: str) -> RefreshRow | None:
        with self.transaction():
            row = RefreshTokenRecord.get_or_none(RefreshTokenRecord.token_hash == token_hash)
            return None if row is None else RefreshRow(**row.__data__)

    def rotate_refresh(self, token_hash: str, now: datetime) -> bool:
        """Mark a refresh token used; False if it was already rotated or revoked."""
        with self.transaction():
            return (
                RefreshTokenRecord.update(rotated_at=now)
                .where(
                    (RefreshTokenRecord.token_hash == token_hash)
                    & RefreshTokenRecord.rotated_at.is_null()
                    & RefreshTokenRecord.revoked_at.is_null()
                )
                .execute()
                == 1
            )

    def record_access(self, jti: str, family_id: str, expires_at: datetime) -> None:
        with self.transaction():
            AccessIssueRecord.insert(jti=jti, family_id=family_id, expires_at=expires_at).execute()

    def revoke_family(self, family_id: str, now: datetime) -> int:
        """Revoke every refresh token of a family and the access tokens it issued; return
        the change-log version that announces the last of them (0: none was live)."""
        version = 0
        with self.transaction():
            RefreshTokenRecord.update(revoked_at=now).where(
                (RefreshTokenRecord.family_id == family_id)
                & RefreshTokenRecord.revoked_at.is_null()
            ).execute()
            issued = AccessIssueRecord.select().where(
                (AccessIssueRecord.family_id == family_id) & (AccessIssueRecord.expires_at > now)
            )
            for row in issued:
                version = max(version, self.revoke_access(row.jti, row.expires_at))
        return version

    def revoke_access(self, jti: str, expires_at: datetime) -> int:
        """Record an access token's revocation (by the hash of its jti) and announce it in
        the change log, in one transaction; return the entry's version (revoked before:
        that revocation's)."""
        digest = jti_hash(jti)
        with self.transaction():
            known = AccessRevocationRecord.get_or_none(AccessRevocationRecord.jti_hash == digest)
            if known is not None:
                return int(known.version)
            exp = int(expires_at.replace(tzinfo=UTC).timestamp())
            version = append_change(self._db, REVOKED_DOMAIN, digest, [str(exp)])
            AccessRevocationRecord.insert(
                jti_hash=digest, expires_at=expires_at, version=version
            ).on_conflict_ignore().execute()
            # Tokens long expired need no revocation: keep the list every process loads short.
            AccessRevocationRecord.delete().where(
                AccessRevocationRecord.expires_at < datetime.now(UTC).replace(tzinfo=None) - _KEEP
            ).execute()
            return version

    def is_access_revoked(self, jti: str) -> bool:
        with self._read():
            return (
                AccessRevocationRecord.select()
                .where(AccessRevocationRecord.jti_hash == jti_hash(jti))
                .exists()
            )

    # -- browser sessions and sign-in failures ---------------------------------------

    def add_session(self, row: SessionRow) -> None:
        with self.transaction():
            BrowserSessionRecord.insert(**vars(row)).execute()

    def get_session(self, id_hash: str, now: datetime) -> SessionRow | None:
        with self._read():
            row = BrowserSessionRecord.get_or_none(
                (BrowserSessionRecord.id_hash == id_hash) & (BrowserSessionRecord.expires_at > now)
            )
            return None if row is None else SessionRow(**row.__data__)

    def delete_session(self, id_hash: str) -> None:
        with self.transaction():
            BrowserSessionRecord.delete().where(BrowserSessionRecord.id_hash == id_hash).execute()

    def count_failures(self, key: str, since: datetime) -> int:
        with self.transaction():
            return int(
                SignInFailureRecord.select()
                .where((SignInFailureRecord.key == key) & (SignInFailureRecord.at > since))
                .count()
            )

    def add_failure(self, key: str, now: datetime) -> None:
        with self.transaction():
            SignInFailureRecord.insert(key=key, at=now).execute()

    def clear_failures(self, key: str) -> None:
        with self.transaction():
            SignInFailureRecord.delete().where(SignInFailureRecord.key == key).execute()
