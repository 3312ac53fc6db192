"""Sign-up mistakes come back on the form: the error's code in the user's words, beside
its field, with what was typed kept; never the domain's English detail.

Through HTTP against the in-process app and a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import pytest

from delegauth.pages.text import t
from tests.conftest import PASSWORD, Api
from tests.functional.test_console_forms import Pages, _text

CYRILLIC_A = "\u0430"
FULLWIDTH_A = "\uff41"


SHORT = "short"
CASES = {  # the typed email and password, and the English detail the domain gives
    "email_confusable_scripts": (f"p{CYRILLIC_A}ypal@example.com", PASSWORD, "looks like a"),
    "email_compatibility_characters": (f"{FULLWIDTH_A}na@example.com", PASSWORD, "compatib"),
    "email_disallowed_characters": ("ana smith@example.com", PASSWORD, "not allowed"),
    "invalid_email": ("ana@", PASSWORD, "@-sign"),
    "password_length": ("ana@example.com", SHORT, "password must be"),
    "already_registered": ("Taken@example.com", PASSWORD, "Conflict"),
}


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("code", sorted(CASES))
def test_signup_errors_are_translated_codes_on_the_form(api: Api, language: str, code: str) -> None:
    email, password, english = CASES[code]
    field = "password" if password == SHORT else "email"
    status = 409 if code == "already_registered" else 400
    api.signup("taken@example.com")
    pages = Pages(api, language)
    csrf = pages.csrf("/signup")
    name = "Zoë Typed"
    res = pages.post(
        "/signup",
        [("csrf", csrf), ("name", name), ("email", email), ("password", password)],
    )
    assert res.status_code == status, res.text
    text = _text(res.text)
    assert t(language, "problem." + code) in text
    assert english not in text  # the domain's detail never reaches the page
    assert f'value="{name}"' in res.text and f'value="{email}"' in res.text
    # beside its field, and the field says so
    assert f'id="{field}-error"' in res.text
    assert f'aria-describedby="{field}-error"' in res.text
    assert '<footer class="languages">' in res.text  # the switcher stays


def test_spanish_words_for_a_look_alike_letter() -> None:
    assert t("es", "problem.email_confusable_scripts") == (
        "La dirección de correo mezcla letras parecidas de alfabetos distintos."
        " Escríbela en un solo alfabeto."
    )
