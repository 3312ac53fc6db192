"""The gettext catalogues: every message exists in every language, and is translated."""

from __future__ import annotations

from delegauth.pages.text import LOCALES, TEXT, t


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
