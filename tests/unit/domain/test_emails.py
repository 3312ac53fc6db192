"""One email address is one person: canonical forms never merge two mailboxes."""

from __future__ import annotations

import pytest

from delegauth.domain.emails import canonical_email
from delegauth.errors import (
    EmailCompatibilityCharacters,
    EmailConfusableScripts,
    EmailDisallowedCharacters,
    InvalidEmail,
    InvalidInput,
)


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.com\t", "bob@example.com"),
        ("STRAßE@example.de", "straße@example.de"),  # lower-cased, never case-folded
        ("ẞ@example.de", "ß@example.de"),  # capital sharp s lowers to ß, not "ss"
        ("STRASSE@example.de", "strasse@example.de"),
        ("e\u0301@example.com", "\u00e9@example.com"),  # NFC
        ("bob@BÜCHER.example", "bob@xn--bcher-kva.example"),  # IDNA A-label, lower case
        ("日本語テスト@example.jp", "日本語テスト@example.jp"),  # Han with kana is one writing
        ("петр@пример.рф", "петр@xn--e1afmkfd.xn--p1ai"),  # one script throughout
        ("o'brien+tag@example.com", "o'brien+tag@example.com"),
    ],
)
def test_canonical_form(raw: str, canon: str) -> None:
    assert canonical_email(raw) == canon
    assert canonical_email(canon) == canon  # stable: the migration can recompute it


def test_sharp_s_and_double_s_are_two_people() -> None:
    assert canonical_email("STRAßE@example.com") != canonical_email("strasse@example.com")
    assert canonical_email("straße@example.com") != canonical_email("STRASSE@example.com")


def test_ascii_case_is_one_person() -> None:
    assert canonical_email("ALICE@EXAMPLE.COM") == canonical_email("alice@example.com")


def test_both_spellings_of_an_idn_domain_are_one_domain() -> None:
    spellings = [
        "bob@bücher.example",
        "bob@BÜCHER.EXAMPLE",
        "bob@xn--bcher-kva.example",
        "bob@XN--BCHER-KVA.example",
    ]
    assert len({canonical_email(s) for s in spellings}) == 1


@pytest.mark.parametrize(
    "raw",
    [
        "ＣＡＲＯＬ@example.com",  # fullwidth letters
        "bob@ｅxample.com",  # fullwidth in the domain: refused too, not mapped by IDNA
        "ﬁle@example.com",  # ligature
        "\u212aelvin@example.com",  # KELVIN SIGN (NFC alone would map it to K)
        "\u2126m@example.com",  # OHM SIGN
        "a\u00a0b@example.com",  # no-break space
        "bob@example\uff0ecom",  # fullwidth full stop
    ],
)
def test_compatibility_characters_are_refused_not_mapped(raw: str) -> None:
    with pytest.raises(EmailCompatibilityCharacters) as ex:
        canonical_email(raw)
    assert ex.value.code == "email_compatibility_characters"
    assert ex.value.field == "email"
    assert "type it in its plain form" in ex.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        "a\ud800@example.com",  # lone surrogate: not Unicode
        "a\udfff@example.com",
        "a\u200db@example.com",  # zero-width joiner out of context
        "a\u2603@example.com",  # a symbol
        "a\u0378@example.com",  # unassigned
        "a\x00b@example.com",
        "a b@example.com",
        "a\n@example.com",
        "bob@example\u3002com",  # ideographic full stop: IDNA would map it to "."
    ],
)
def test_disallowed_code_points_are_refused(raw: str) -> None:
    with pytest.raises(EmailDisallowedCharacters) as ex:
        canonical_email(raw)
    assert ex.value.code == "email_disallowed_characters"
    assert "U+" in ex.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        "p\u0430ypal@example.com",  # Cyrillic а among Latin letters
        "\u0430pple@example.com",
        "ivan.\u043f\u0435\u0442\u0440\u043e\u0432@example.ru",
        "bob@p\u0430ypal.com",  # in a domain label
        "\u03bflga@example.com",  # Greek omicron among Latin letters
    ],
)
def test_confusable_mix_of_scripts_is_refused(raw: str) -> None:
    with pytest.raises(EmailConfusableScripts) as ex:
        canonical_email(raw)
    assert ex.value.code == "email_confusable_scripts"
    assert "looks like" in ex.value.detail


def test_the_odd_letter_out_is_named() -> None:
    with pytest.raises(EmailConfusableScripts) as ex:
        canonical_email("p\u0430ypal@example.com")
    assert "U+0430 CYRILLIC SMALL LETTER A looks like a Latin letter" in ex.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "a@b",
        "a@@b.com",
        "a@b .com",
        "a@example.com.",
        '"quoted"@example.com',
        "a@[127.0.0.1]",
        "Alice <alice@example.com>",
        "a@example.test",  # special-use domain
        "a@localhost",
        None,
        5,
        ["a@b.c"],
        "x" * 65 + "@example.com",  # local part over 64
        "x@" + ".".join(c * 63 for c in "abcd") + ".com",  # domain over 253
        "x" * 10_000 + "@example.com",
    ],
)
def test_rejects_non_emails(raw: object) -> None:
    with pytest.raises(InvalidEmail) as ex:
        canonical_email(raw)
    assert isinstance(ex.value, InvalidInput)  # a 400 wherever it is raised
    assert ex.value.code.startswith(("invalid_email", "email_"))


def test_no_prefix_or_pattern_matching() -> None:
    assert canonical_email("a@example.com") != canonical_email("a@example.com.evil")
    assert canonical_email("*@example.com") == "*@example.com"  # stored as text, never a pattern


def test_the_field_is_named() -> None:
    with pytest.raises(InvalidEmail) as ex:
        canonical_email("ﬁ@example.com", field="invitee")
    assert ex.value.field == "invitee"
