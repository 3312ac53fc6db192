"""Real browsers: Playwright drives Debian's Chromium against a real server.

Playwright's own browser download cannot work here, so the tests launch
/usr/bin/chromium (apt-get install chromium; .ci/run does it). Without that browser
or the playwright package they skip, except under CI, where they must run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import POLICIES, REPO
from tests.e2e.conftest import ISSUER, Server, _Inbox, free_port, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where the walks' screenshots go: DELEGAUTH_SHOTS (say /work/shots/11) or test-artifacts.
SCREENSHOTS = Path(
    os.environ.get("DELEGAUTH_SHOTS") or Path(REPO) / "test-artifacts" / "screenshots"
)


def _require_browser() -> None:
    missing = [
        what
        for what, present in (
            (f"Chromium at {CHROMIUM} (apt-get install chromium)", os.path.exists(CHROMIUM)),
            ("the playwright package (pip install -e '.[test]')", _has_playwright()),
        )
        if not present
    ]
    if not missing:
        return
    reason = "no browser: missing " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + "; browser tests cannot skip in CI")
    pytest.skip(reason)


def _has_playwright() -> bool:
    return importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[_Inbox, int]]:
    """The e2e SMTP inbox (aiosmtpd), shared by a module's tests."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def serve(
    tmp_path_factory: pytest.TempPathFactory, smtp_port: int, **settings: str
) -> Iterator[Server]:
    """A real `delegauth serve` on SQLite, mailing to the inbox, with these settings
    (DELEGAUTH_… names); for a fixture to ``yield from``: it stops after."""
    tmp = tmp_path_factory.mktemp("browser")
    env = {
        "DELEGAUTH_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
        "DELEGAUTH_ISSUER": ISSUER,
        "DELEGAUTH_POLICIES_DIR": POLICIES,
        "DELEGAUTH_KEY_DIR": str(tmp / "keys"),
        "DELEGAUTH_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        **settings,
    }
    server = start_server(env, tmp / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[_Inbox, int]
) -> Iterator[Server]:
    yield from serve(tmp_path_factory, mailbox[1], DELEGAUTH_CHANGE_POLL_MS="20")


@pytest.fixture(params=["en", "es"])
def lang(request: pytest.FixtureRequest) -> str:
    """The walk's language: every walk runs in English and in Spanish."""
    return str(request.param)


@pytest.fixture
def person(browser: Browser, live_server: Server, lang: str) -> Iterator[Callable[[], Page]]:
    """A maker of people, each a browser context of their own speaking ``lang``."""
    from tests.browser.walk import people

    yield from people(browser, live_server, lang)


Snap = Callable[["Page", str], Path]


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Snap:
    """Save a full-page screenshot per step: <SCREENSHOTS>/<module>/<test>/<NN-step>.png."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    folder = SCREENSHOTS / request.node.module.__name__.rsplit(".", 1)[-1] / test
    shutil.rmtree(folder, ignore_errors=True)  # no stale steps from an earlier run
    count = 0

    def take(page: Page, step: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
