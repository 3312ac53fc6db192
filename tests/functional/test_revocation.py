"""RFC 7009 revocation of an access token holds in every worker: the revocation is stored
by the hash of the jti only and announced in the change log; the worker that revoked it
refuses it at once, another after its follower's round (a cached verification
included), and one that starts later from the start; a consistency token makes an AuthZEN
call wait for it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from delegauth.api.app import Services, build_services
from delegauth.config import Settings
from delegauth.domain.revocations import REVOKED_DOMAIN, jti_hash
from delegauth.oauth.clients import CLIENT_CREDENTIALS
from delegauth.passwords import Argon2Hasher
from delegauth.storage.records import AccessRevocationRecord, ChangeRecord
from delegauth.tokens import KeyRing
from tests.conftest import Api, FrozenClock


def _basic(client_id: str, secret: str) -> dict[str, str]:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def billing(api: Api) -> tuple[str, str]:
    _row, secret = api.services.clients.create(
        "billing", grant_types=[CLIENT_CREDENTIALS], scopes=["decisions"]
    )
    assert secret is not None
    return "billing", secret


def _service_token(api: Api, billing: tuple[str, str]) -> str:
    res = api.client.simulate_post(
        "/oauth/token",
        headers=_basic(*billing),
        body="grant_type=client_credentials&scope=decisions",
    )
    assert res.status_code == 200, res.text
    return str(res.json["access_token"])


def _revoke(api: Api, billing: tuple[str, str], token: str) -> Any:
    res = api.client.simulate_post("/oauth/revoke", headers=_basic(*billing), body=f"token={token}")
    assert res.status_code == 200, res.text
    return res.json


def _evaluate(api: Api, token: str, policy_version: int | None = None) -> int:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "u_nobody"},
        "action": {"name": "read"},
        "resource": {"type": "invoice", "id": "1", "properties": {"area": "a_nowhere"}},
    }
    if policy_version is not None:
        body["context"] = {"policy_version": policy_version}
    res = api.call("POST", "/access/v1/evaluation", token, json=body)
    return res.status_code


@pytest.fixture
def other_worker(
    services: Services, settings: Settings, keyring: KeyRing, clock: FrozenClock
) -> Iterator[Api]:
    """A second worker on the same database: its own decider, revocation list and cache."""
    worker = build_services(
        settings,
        db=services.db,
        clock=clock,
        hasher=Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),
        keys=keyring,
        start_background=False,
    )
    yield Api(worker)
    worker.close()


def test_a_revoked_token_is_refused_by_the_worker_that_revoked_it(
    api: Api, billing: tuple[str, str]
) -> None:
    token = _service_token(api, billing)
    assert _evaluate(api, token) == 200  # verified and cached
    answer = _revoke(api, billing, token)
    assert answer["policy_version"] > 0
    assert _evaluate(api, token) == 401
    introspected = api.client.simulate_post(
        "/oauth/introspect", headers=_basic(*billing), body=f"token={token}"
    )
    assert introspected.json == {"active": False}
    # Asked again: the token no longer verifies, so there is nothing to revoke (still 200).
    assert _revoke(api, billing, token) == {"policy_version": 0}


def test_the_revocation_is_stored_by_hash_and_announced_in_the_change_log(
    api: Api, billing: tuple[str, str], services: Services
) -> None:
    token = _service_token(api, billing)
    jti = services.tokens.verify(token).jti
    version = _revoke(api, billing, token)["policy_version"]
    with services.db.connection_context():
        rows = list(AccessRevocationRecord.select().dicts())
        entry = ChangeRecord.get(ChangeRecord.version == version)
        stored = " ".join(
            str(v)
            for table in ("oauth_access_revocations", "policy_changes")
            for row in services.db.execute_sql(f"SELECT * FROM {table}").fetchall()  # noqa: S608
            for v in row
        )
    assert [(r["jti_hash"], r["version"]) for r in rows] == [(jti_hash(jti), version)]
    assert (entry.domain, entry.subject) == (REVOKED_DOMAIN, jti_hash(jti))
    assert jti not in stored and token.split(".")[2] not in stored


def test_another_worker_refuses_it_after_its_follower_round(
    api: Api, other_worker: Api, billing: tuple[str, str]
) -> None:
    token = _service_token(api, billing)
    assert _evaluate(other_worker, token) == 200
    assert other_worker.services.tokens.cached_verifications == 1
    _revoke(api, billing, token)
    other_worker.services.decider.sync()  # what its follower thread runs
    assert other_worker.services.tokens.cached_verifications == 0
    assert _evaluate(other_worker, token) == 401


def test_a_consistency_token_makes_another_worker_wait_for_the_revocation(
    api: Api, other_worker: Api, billing: tuple[str, str]
) -> None:
    token = _service_token(api, billing)
    assert _evaluate(other_worker, token) == 200
    version = _revoke(api, billing, token)["policy_version"]
    # No follower runs in this worker: the caller's consistency token makes it read the log
    # before answering, and the token, accepted before the wait, is refused after it.
    assert _evaluate(other_worker, token, policy_version=version) == 401


def test_a_worker_starting_after_the_revocation_refuses_it(
    api: Api,
    billing: tuple[str, str],
    services: Services,
    settings: Settings,
    keyring: KeyRing,
    clock: FrozenClock,
) -> None:
    token = _service_token(api, billing)
    _revoke(api, billing, token)
    later = build_services(
        settings, db=services.db, clock=clock, keys=keyring, start_background=False
    )
    try:
        assert _evaluate(Api(later), token) == 401
    finally:
        later.close()


def test_revoking_a_refresh_family_announces_its_access_tokens(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    jtis = ["jti-one", "jti-two"]
    expires = clock() + timedelta(minutes=10)
    with services.db.connection_context():
        for jti in jtis:
            services.oauth_store.record_access(jti, "family-1", expires)
    version = services.oauth_store.revoke_family("family-1", clock())
    services.decider.sync()
    with services.db.connection_context():
        entries = [
            e.subject for e in ChangeRecord.select().where(ChangeRecord.domain == REVOKED_DOMAIN)
        ]
    assert sorted(entries) == sorted(jti_hash(j) for j in jtis)
    assert version == services.decider.applied_version
    assert all(services.oauth_store.is_access_revoked(j) for j in jtis)


def test_the_change_log_entry_and_the_record_commit_together(
    services: Services, clock: FrozenClock
) -> None:
    class Boom(Exception):
        pass

    expires = clock()
    with pytest.raises(Boom), services.oauth_store.transaction():
        services.oauth_store.revoke_access("jti-rolled-back", expires)
        raise Boom
    with services.db.connection_context():
        assert not AccessRevocationRecord.select().exists()
        assert not ChangeRecord.select().where(ChangeRecord.domain == REVOKED_DOMAIN).exists()
