"""A hosting provider restyles the pages with its own stylesheet, logo and name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import falcon.testing

from delegauth.api.app import create_app

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def test_provider_stylesheet_logo_and_name(services: Any, tmp_path: Path) -> None:
    css = tmp_path / "brand.css"
    css.write_text(":root { --accent: #c2185b; }")
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    settings = services.settings.with_overrides(
        brand_css=str(css), brand_logo=str(logo), brand_name="Hostly"
    )
    client = falcon.testing.TestClient(create_app(settings, services=services))
    sheet = client.simulate_get("/static/delegauth.css")
    assert sheet.text.startswith(":root") and sheet.text.endswith("--accent: #c2185b; }")
    page = client.simulate_get("/signin")
    assert '<img src="/static/logo" alt="Hostly"' in page.text
    image = client.simulate_get("/static/logo")
    assert image.headers["content-type"] == "image/png" and image.content == PNG


def test_without_branding_no_logo(api: Any) -> None:
    page = api.call("GET", "/signin")
    assert "/static/logo" not in page.text
    assert api.call("GET", "/static/logo").status_code == 404
