"""The email verification pages over HTTP: GET never uses the link up, POST verifies,
spent links offer a new one, and asking for one reveals nothing and is rate-limited."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import falcon.testing

from tests.conftest import Api

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _csrf(api: Api) -> str:
    res = api.call("GET", "/signin")
    return str(res.cookies["delegauth_csrf"].value)


def _post(api: Api, path: str, csrf: str, **fields: str) -> falcon.testing.Result:
    return api.client.simulate_post(
        path,
        body=urlencode({"csrf": csrf, **fields}),
        headers=FORM,
        cookies={"delegauth_csrf": csrf},
    )


def _verified(api: Api, email: str) -> bool:
    with api.services.db.connection_context():
        user = api.services.store.find_user_by_email(email)
    assert user is not None
    return user.email_verified


def _mails(api: Api, to: str) -> int:
    from delegauth.storage.records import MailRecord

    with api.services.db.connection_context():
        return int(MailRecord.select().where(MailRecord.to == to).count())


def test_get_shows_the_address_and_never_uses_the_link(api: Api) -> None:
    person = api.signup("gwen@example.com", verify=False)
    token = api.mail_token(person.email)
    for _ in range(3):  # a mail scanner, a preview, the person
        page = api.call("GET", "/verify-email?token=" + quote(token))
        assert page.status_code == 200, page.text
        assert "gwen@example.com" in page.text
        assert "Verify my email" in page.text and 'action="/verify-email"' in page.text
    assert not _verified(api, person.email)

    csrf = _csrf(api)
    done = _post(api, "/verify-email", csrf, token=token)
    assert done.status_code == 303
    # Signed out: on to sign-in, which says the address is verified.
    assert done.headers["Location"].startswith("/signin?verified=1")
    assert _verified(api, person.email)
    notice = api.call("GET", done.headers["Location"])
    assert "Your email address is verified. Sign in to continue." in notice.text

    again = _post(api, "/verify-email", csrf, token=token)
    assert again.status_code == 410
    assert "This link can no longer be used" in again.text
    assert "Send me a new link" in again.text
    assert api.call("GET", "/verify-email?token=" + quote(token)).status_code == 410


def test_verifying_needs_the_forms_csrf_token(api: Api) -> None:
    person = api.signup("hal@example.com", verify=False)
    token = api.mail_token(person.email)
    res = api.client.simulate_post(
        "/verify-email", body=urlencode({"token": token, "csrf": "forged"}), headers=FORM
    )
    assert res.status_code == 403
    assert not _verified(api, person.email)


def test_expired_and_unknown_links_get_the_new_link_page_in_spanish(api: Api, clock: Any) -> None:
    person = api.signup("ines@example.com", verify=False)
    token = api.mail_token(person.email)
    clock.advance(hours=49)
    for value in (token, "x" * 43, ""):
        page = api.call("GET", "/verify-email?token=" + value, headers={"Accept-Language": "es"})
        assert page.status_code == 410
        assert "Este enlace ya no se puede usar" in page.text
        assert "Envíame un enlace nuevo" in page.text and 'lang="es"' in page.text


def test_a_new_link_says_the_same_for_every_address_and_is_rate_limited(api: Api) -> None:
    api.signup("jo@example.com", verify=False)
    api.signup("kim@example.com", verify=True)
    csrf = _csrf(api)
    answers = {}
    for email in ("jo@example.com", "kim@example.com", "nobody@example.com"):
        res = _post(api, "/verify-email/resend", csrf, email=email)
        assert res.status_code == 200
        answers[email] = res.text.replace(email, "EMAIL")
    assert len(set(answers.values())) == 1  # nothing tells the three apart
    assert _mails(api, "jo@example.com") == 2  # the sign-up's, and this one
    assert _mails(api, "kim@example.com") == 1  # already verified: nothing new
    assert _mails(api, "nobody@example.com") == 0

    for _ in range(2):
        assert _post(api, "/verify-email/resend", csrf, email="jo@example.com").status_code == 200
    limited = _post(api, "/verify-email/resend", csrf, email="JO@example.com")
    assert limited.status_code == 429
    assert "Too many links were asked for" in limited.text
    assert _mails(api, "jo@example.com") == 4
    bad = _post(api, "/verify-email/resend", csrf, email="not-an-address")
    assert bad.status_code == 400 and "Type a valid email address" in bad.text
    spaced = _post(api, "/verify-email/resend", csrf, email="not an address")
    assert spaced.status_code == 400 and "such as a space" in spaced.text


def test_the_new_link_carries_a_safe_return_to(api: Api) -> None:
    api.signup("lea@example.com", verify=False)
    csrf = _csrf(api)
    back = "/invitations/accept?token=abc"
    sent = _post(api, "/verify-email/resend", csrf, email="lea@example.com", return_to=back)
    assert sent.status_code == 200
    assert "return_to=" + quote(back, safe="") in api.last_mail("lea@example.com").text
    token = api.mail_token("lea@example.com")
    page = api.call("GET", "/verify-email?" + urlencode({"token": token, "return_to": back}))
    assert f'name="return_to" value="{back}"' in page.text
    evil = api.call(
        "GET", "/verify-email?" + urlencode({"token": token, "return_to": "https://evil.test/"})
    )
    assert 'name="return_to" value="/"' in evil.text


def test_older_links_are_spent_once_the_address_is_verified(api: Api) -> None:
    api.signup("max@example.com", verify=False)
    first = api.mail_token("max@example.com")
    csrf = _csrf(api)
    assert _post(api, "/verify-email/resend", csrf, email="max@example.com").status_code == 200
    second = api.mail_token("max@example.com")
    assert first != second
    assert api.call("GET", "/verify-email?token=" + quote(first)).status_code == 200
    assert _post(api, "/verify-email", csrf, token=second).status_code == 303
    assert api.call("GET", "/verify-email?token=" + quote(first)).status_code == 410
