"""Settings read from the environment, and the misconfigurations `serve` refuses."""

from __future__ import annotations

import pytest

from delegauth.config import load_settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",  # the README's two commands
        "http://localhost",
        "http://[::1]:8000",
        "http://127.0.0.2",
        "https://auth.example.com",
    ],
)
def test_https_or_loopback_http_serves(url: str) -> None:
    assert load_settings({"DELEGAUTH_ISSUER": url}).transport_problem() is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DELEGAUTH_ISSUER": "http://auth.example.com"}, "DELEGAUTH_ISSUER"),
        ({"DELEGAUTH_ISSUER": "http://10.0.0.5:8000"}, "DELEGAUTH_ISSUER"),
        ({"DELEGAUTH_ISSUER": "http://localhost.example.com"}, "DELEGAUTH_ISSUER"),
        (
            {"DELEGAUTH_ISSUER": "https://a.example", "DELEGAUTH_PUBLIC_URL": "http://a.example"},
            "DELEGAUTH_PUBLIC_URL",
        ),
        ({"DELEGAUTH_ISSUER": "ftp://a.example"}, "DELEGAUTH_ISSUER"),
    ],
)
def test_plain_http_beyond_loopback_needs_the_development_switch(
    env: dict[str, str], named: str
) -> None:
    problem = load_settings(env).transport_problem()
    assert problem is not None and named in problem and "DELEGAUTH_INSECURE_HTTP=1" in problem
    switched = load_settings({**env, "DELEGAUTH_INSECURE_HTTP": "1"})
    assert switched.insecure_http and switched.transport_problem() is None


def test_area_cache_is_a_count_or_a_size() -> None:
    from delegauth.config import parse_area_cache

    assert load_settings({}).area_cache_bound == (500_000, 0)
    assert load_settings({"DELEGAUTH_AREA_CACHE": "1000"}).area_cache_bound == (1000, 0)
    assert parse_area_cache("512MiB") == (0, 512 * 2**20)
    assert parse_area_cache("1.5 GiB") == (0, 3 * 2**29)
    assert parse_area_cache("200MB") == (0, 200_000_000)
    for bad in ("", "0", "-5", "1.5", "12 apples", "MiB", "0KiB"):
        with pytest.raises(ValueError, match="AREA_CACHE"):
            parse_area_cache(bad)
    with pytest.raises(ValueError, match="AREA_CACHE"):
        load_settings({"DELEGAUTH_AREA_CACHE": "lots"})
