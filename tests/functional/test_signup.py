"""Sign-up, email verification and the signed-in user's view, over the JSON API."""

from __future__ import annotations

from tests.conftest import PASSWORD, Api


def test_signup_creates_owner_area_and_sends_verification(api: Api) -> None:
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "  Alice@Example.COM ", "password": PASSWORD, "name": "Alice"},
    )
    assert res.status_code == 201, res.text
    user, area = res.json["user"], res.json["area"]
    assert user["email"] == "alice@example.com"
    assert user["email_verified"] is False
    assert area["owner"] == user["id"]
    mail = api.last_mail("alice@example.com")
    assert mail.kind == "verification"
    assert "token=" in mail.text
    # The secret is not stored anywhere in clear: only its hash is.
    token = api.mail_token("alice@example.com")
    from delegauth.storage.records import SecretRecord

    with api.services.db.connection_context():
        stored = [r.token_hash for r in SecretRecord.select()]
    assert token not in stored and len(stored) == 1

    me = api.call(
        "GET",
        "/v1/me",
        api.services.tokens.issue(sub=user["id"], client_id="t", scope=[], area=area["id"]),
    )
    assert me.status_code == 200
    assert me.json["areas"] == [
        {"id": area["id"], "name": "Alice", "role": "owner", "permissions": "all"}
    ]


def test_verification_link_works_once(api: Api) -> None:
    person = api.signup("bob@example.com", verify=False)
    token = api.mail_token(person.email)
    ok = api.call("POST", "/v1/email-verifications", json={"token": token})
    assert ok.status_code == 200 and ok.json["user"]["email_verified"] is True
    again = api.call("POST", "/v1/email-verifications", json={"token": token})
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json["code"] == "invalid_token"
    bogus = api.call("POST", "/v1/email-verifications", json={"token": "x" * 43})
    assert bogus.status_code == 400


def test_verification_link_expires(api: Api, clock) -> None:
    person = api.signup("late@example.com", verify=False)
    token = api.mail_token(person.email)
    clock.advance(hours=49)
    res = api.call("POST", "/v1/email-verifications", json={"token": token})
    assert res.status_code == 400


def test_duplicate_email_in_another_form_is_409(api: Api) -> None:
    api.signup("carol@bücher.example")
    for other_form in ["CAROL@Bücher.Example ", "carol@xn--bcher-kva.example"]:
        res = api.call("POST", "/v1/signup", json={"email": other_form, "password": PASSWORD})
        assert res.status_code == 409, res.text
        assert res.json["code"] == "already_registered"


def test_fullwidth_email_is_refused_not_folded(api: Api) -> None:
    api.signup("carol@example.com")
    res = api.call(
        "POST", "/v1/signup", json={"email": "ＣＡＲＯＬ@example.com", "password": PASSWORD}
    )
    assert res.status_code == 400, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json["field"] == "email"
    assert res.json["code"] == "email_compatibility_characters"
    assert "FULLWIDTH LATIN CAPITAL LETTER C" in res.json["detail"]


def test_sharp_s_signs_up_a_person_of_its_own(api: Api) -> None:
    first = api.signup("strasse@example.com")
    second = api.signup("STRAßE@example.com")
    assert second.email == "straße@example.com"
    assert second.user_id != first.user_id


def test_bad_signup_input_is_400_and_writes_nothing(api: Api) -> None:
    cases = [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com", "password": "short"},
        {"email": ["a@example.com"], "password": PASSWORD},
        {"email": "a@example.com", "password": 12345678901},
        {"email": "a@example.com", "password": PASSWORD, "name": {"x": 1}},
        {"email": "a@example.com", "password": PASSWORD, "name": "x" * 101},
        {"password": PASSWORD},
    ]
    for body in cases:
        res = api.call("POST", "/v1/signup", json=body)
        assert res.status_code == 400, (body, res.text)
        assert res.headers["content-type"] == "application/problem+json"
    from delegauth.storage.records import AreaRecord, UserRecord

    with api.services.db.connection_context():
        assert UserRecord.select().count() == 0
        assert AreaRecord.select().count() == 0


def test_malformed_and_oversized_bodies_are_4xx(api: Api) -> None:
    res = api.call(
        "POST", "/v1/signup", body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 400
    res = api.call(
        "POST", "/v1/signup", body=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 400
    res = api.call(
        "POST", "/v1/signup", body=b"\xff\xfe", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 400
    big = b'{"email": "' + b"a" * 70_000 + b'"}'
    res = api.call("POST", "/v1/signup", body=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    res = api.call(
        "POST",
        "/v1/signup",
        body=b"email=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert res.status_code == 415
    assert res.headers["content-type"] == "application/problem+json"


def test_unknown_fields_are_refused(api: Api) -> None:
    # Nothing can be mass-assigned, and a misspelt optional field is not silently dropped.
    res = api.call(
        "POST",
        "/v1/signup",
        json={"email": "dan@example.com", "password": PASSWORD, "role": "admin", "is_owner": True},
    )
    assert res.status_code == 400
    assert res.json["field"] in ("role", "is_owner")
    again = api.call("POST", "/v1/signup", json={"email": "dan@example.com", "password": PASSWORD})
    assert again.status_code == 201, again.text


def test_unknown_route_is_problem_json(api: Api) -> None:
    res = api.call("GET", "/v1/nope")
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/problem+json"


def test_me_needs_a_valid_token(api: Api) -> None:
    assert api.call("GET", "/v1/me").status_code == 401
    assert api.call("GET", "/v1/me", "garbage").status_code == 401
    service = api.service_token()
    assert api.call("GET", "/v1/me", service).status_code == 403


def test_catalogue_in_spanish(api: Api) -> None:
    res = api.call("GET", "/v1/permissions", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert res.status_code == 200
    labels = {p["name"]: p["label"] for p in res.json["permissions"]}
    assert labels["invoices"] == "Ver y pagar facturas"
    en = api.call("GET", "/v1/permissions")
    assert {p["name"]: p["label"] for p in en.json["permissions"]}[
        "invoices"
    ] == "View and pay invoices"
