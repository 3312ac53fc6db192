"""The gettext catalogues: every message exists in every language, and is translated."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import delegauth
from delegauth.errors import DelegauthError, EmailConfusableScripts, InvalidEmail, InvalidInput
from delegauth.pages.text import LOCALES, TEXT, error_text, t


def test_every_language_has_every_message() -> None:
    keys = set(TEXT["en"])
    assert len(keys) > 50
    for locale in LOCALES:
        assert set(TEXT[locale]) == keys, locale


def test_spanish_is_translated_and_formats() -> None:
    same = [k for k in TEXT["en"] if TEXT["en"][k] == TEXT["es"][k]]
    assert same == [], same
    assert t("es", "invite.sent", email="a@b.c") == "Invitación enviada a a@b.c."
    assert t("fr", "signin.title") == "Sign in"  # unknown language: English


def _error_classes() -> list[type[DelegauthError]]:
    for module in pkgutil.walk_packages(delegauth.__path__, "delegauth."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = [], [DelegauthError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _codes_given_where_raised(names: set[str]) -> set[str]:
    """Every finer code given as ``SomeError(..., code="…")`` anywhere in src/delegauth."""
    codes = set()
    for path in Path(delegauth.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in names:
                continue
            for kw in node.keywords:
                if kw.arg == "code":
                    assert isinstance(kw.value, ast.Constant), f"{path}: a code must be literal"
                    codes.add(kw.value.value)
    return codes


def test_every_domain_error_code_has_page_text_in_every_language() -> None:
    classes = _error_classes()
    codes = {cls.code for cls in classes} | _codes_given_where_raised(
        {cls.__name__ for cls in classes}
    )
    assert {"email_confusable_scripts", "password_length", "invitation_expired"} <= codes
    for locale in LOCALES:
        missing = sorted(code for code in codes if "problem." + code not in TEXT[locale])
        assert missing == [], (locale, missing)


def test_error_text_is_the_codes_words_never_the_detail() -> None:
    ex = EmailConfusableScripts("the address mixes Cyrillic and Latin letters", field="email")
    assert error_text("es", ex) == TEXT["es"]["problem.email_confusable_scripts"]
    finer = InvalidInput("password must be 10 to 1024 characters", code="password_length")
    assert error_text("en", finer) == "The password must have 10 to 1024 characters."
    unknown = InvalidEmail("nope", code="no_such_code")  # falls back to its class's words
    assert error_text("es", unknown) == TEXT["es"]["problem.invalid_email"]
