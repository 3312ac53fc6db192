"""A process starts deciding with a policy it checked: the snapshot it reads (or the one
``serve`` checked and handed to its workers) is checked and is exactly what decides."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from delegauth.api.app import Services, build_services
from delegauth.config import Settings
from delegauth.policy.bundle import PolicyError, PolicySnapshot, read_snapshot
from delegauth.storage.db import open_database
from delegauth.storage.records import database_proxy
from delegauth.storage.schema import migrate
from tests.conftest import POLICIES

OUTSIDER = "user:u_" + "q" * 26
BAD = f"p, {OUTSIDER}, *, invoice, pay\n"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    return root


def _build(settings: Settings, policies: Path, policy: PolicySnapshot | None = None) -> Services:
    db = open_database(settings.database_url)
    database_proxy.initialize(db)
    migrate(db)
    try:
        return build_services(
            dataclasses.replace(settings, policies_dir=str(policies)),
            db=db,
            start_background=False,
            policy=policy,
        )
    except Exception:
        db.close()
        raise


def test_a_process_refuses_to_start_on_a_policy_that_fails_the_check(
    settings: Settings, policies: Path
) -> None:
    (policies / "policy.csv").write_text(BAD, "utf-8")
    with pytest.raises(PolicyError, match="naming a user"):
        _build(settings, policies)


def test_a_worker_starts_from_the_checked_snapshot_not_the_files_now_on_disk(
    settings: Settings, policies: Path
) -> None:
    checked = read_snapshot(policies)  # what serve checked before forking its workers
    (policies / "policy.csv").write_text(BAD, "utf-8")  # then the files changed
    services = _build(settings, policies, policy=checked)
    try:
        decider, watcher = services.decider, services.watcher
        assert decider.bundle.snapshot is checked
        assert decider.policy_hash == watcher.status.version == checked.version
        area = "area:a_" + "b" * 26
        assert decider.decide(OUTSIDER, area, "invoice", "pay") is False
        # The watcher's first look finds the change and refuses it.
        assert watcher.check_now() is False
        status = watcher.status
        assert status.version == checked.version
        assert status.refused_version == read_snapshot(policies).version
        assert decider.decide(OUTSIDER, area, "invoice", "pay") is False
    finally:
        services.close()
        services.db.close()
