"""The pages' static files: our stylesheet (with the provider's after it), script and logo."""

from __future__ import annotations

from pathlib import Path

import falcon

__all__ = ["StaticCss", "StaticLogo", "StaticScript"]

_STATIC = Path(__file__).with_name("static")


class StaticCss:
    """The stylesheet: ours, followed by the provider's own (DELEGAUTH_BRAND_CSS), so a
    hosting provider restyles the pages without touching them."""

    def __init__(self, brand_css: str = "") -> None:
        self._brand = Path(brand_css) if brand_css else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        css = (_STATIC / "delegauth.css").read_text("utf-8")
        if self._brand is not None:
            css += "\n/* provider stylesheet */\n" + self._brand.read_text("utf-8")
        resp.content_type = "text/css; charset=utf-8"
        resp.text = css
        resp.set_header("Cache-Control", "public, max-age=300")


class StaticScript:
    """The pages' one small script (CSP ``script-src 'self'``: no inline script)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/javascript; charset=utf-8"
        resp.text = (_STATIC / "delegauth.js").read_text("utf-8")
        resp.set_header("Cache-Control", "public, max-age=300")


class StaticLogo:
    """The provider's logo (DELEGAUTH_BRAND_LOGO), shown at the top of every page."""

    TYPES = {
        ".png": "image/png",
        ".svg": "image/svg+xml",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
    }

    def __init__(self, logo: str) -> None:
        self._path = Path(logo)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self.TYPES.get(self._path.suffix.lower(), "application/octet-stream")
        resp.data = self._path.read_bytes()
        resp.set_header("Cache-Control", "public, max-age=300")
