from __future__ import annotations

import pytest

from delegauth.domain.emails import canonical_email
from delegauth.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.com\t", "bob@example.com"),
        ("ＣＡＲＯＬ@example.com", "carol@example.com"),  # fullwidth: NFKC
        ("STRASSE@example.de", "strasse@example.de"),
        ("straße@example.de", "strasse@example.de"),  # casefold, not lower
        ("ﬁle@example.com", "file@example.com"),  # ligature: NFKC
    ],
)
def test_canonical_form(raw: str, canon: str) -> None:
    assert canonical_email(raw) == canon


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "a@b .com",
        "a\n@b.com",
        None,
        5,
        ["a@b.c"],
        "x" * 65 + "@example.com",
    ],
)
def test_rejects_non_emails(raw: object) -> None:
    with pytest.raises(InvalidInput):
        canonical_email(raw)


def test_no_prefix_or_pattern_matching() -> None:
    assert canonical_email("a@example.com") != canonical_email("a@example.com.evil")
    assert canonical_email("*@example.com") == "*@example.com"  # stored as text, never a pattern
