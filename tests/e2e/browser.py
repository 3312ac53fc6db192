"""A tiny form-filling browser on requests: enough to walk the hosted pages."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import requests


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get"),
                    "fields": [],
                    "radios": [],
                    "buttons": [],
                }
            )
        elif tag == "input" and self.forms:
            kind = a.get("type", "text")
            if kind == "radio":
                self.forms[-1]["radios"].append(a)
            else:
                self.forms[-1]["fields"].append(a)
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(a)
        elif tag == "label":
            self._label_for = a.get("for")

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None


def parse(html: str) -> _Forms:
    p = _Forms()
    p.feed(html)
    return p


class Browser:
    def __init__(self, base: str, language: str = "en") -> None:
        self.base = base
        self.s = requests.Session()
        self.s.headers["Accept-Language"] = language

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.s.get(urljoin(self.base, url), allow_redirects=False, timeout=10, **kw)

    def follow(self, res: requests.Response, stop_at: str | None = None) -> requests.Response:
        """Follow redirects on our server; stop at one leaving it (returned as is)."""
        while res.status_code in (302, 303):
            location = urljoin(res.url, res.headers["Location"])
            if not location.startswith(self.base) or (stop_at and location.startswith(stop_at)):
                return res
            res = self.get(location)
        return res

    def submit(
        self,
        res: requests.Response,
        values: dict[str, str],
        button: tuple[str, str] | None = None,
        form_index: int = 0,
    ) -> requests.Response:
        form = parse(res.text).forms[form_index]
        data = {f["name"]: f.get("value", "") for f in form["fields"] if f.get("name")}
        data.update({r["name"]: r["value"] for r in form["radios"] if "checked" in r})
        data.update(values)
        if button:
            data[button[0]] = button[1]
        url = urljoin(res.url, form["action"])
        return self.s.post(url, data=data, allow_redirects=False, timeout=10)
