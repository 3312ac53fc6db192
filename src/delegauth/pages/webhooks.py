"""Webhooks pages (an area's owner): register, list and remove the area's webhooks, read
each one's delivery log and ask for a redelivery. The signing secret shows once, on the
page that answers the registration, never in a URL."""

from __future__ import annotations

import falcon

from delegauth.api.catalogue import negotiate_locale
from delegauth.api.params import parse_count
from delegauth.domain.webhooks import Endpoint, Webhooks
from delegauth.errors import Conflict, DelegauthError, InvalidInput, NotFound
from delegauth.pages.console import Console
from delegauth.pages.forms import field_value
from delegauth.pages.rendering import Flash
from delegauth.pages.text import error_text, t
from delegauth.storage.oauth_store import SessionRow

__all__ = ["webhook_routes"]

_DONE = ("webhook_removed", "redelivered")
_PAGE = 25


def webhook_routes(console: Console, webhooks: Webhooks) -> list[tuple[str, object]]:
    return [
        ("/areas/{area_id}/webhooks", _List(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}", _Log(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}/remove", _Remove(console, webhooks)),
        (
            "/areas/{area_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            _Redeliver(console, webhooks),
        ),
    ]


def _flashes(locale: str, req: falcon.Request) -> list[Flash]:
    done = req.get_param("done") or ""
    return [Flash("notice", t(locale, "done." + done))] if done in _DONE else []


class _Base:
    def __init__(self, console: Console, webhooks: Webhooks) -> None:
        self.c = console
        self.webhooks = webhooks


class _List(_Base):
    def _show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        *,
        url: str = "",
        description: str = "",
        problem: str = "",
        created: tuple[Endpoint, str] | None = None,
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        try:
            endpoints = self.webhooks.listing(session.user_id, area_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        self.c.page(
            req,
            resp,
            "webhooks.html",
            session,
            area_id,
            title=t(locale, "webhooks.title"),
            wide=True,
            status=status,
            flashes=_flashes(locale, req),
            area_id=area_id,
            endpoints=endpoints,
            url=url,
            description=description,
            url_error=problem,
            created=created,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        self._show(req, resp, self.c.session(req), area_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response, area_id: str) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        url = field_value(form, "url").strip()
        description = field_value(form, "description").strip()
        try:
            created = self.webhooks.add(session.user_id, area_id, url, description)
        except (InvalidInput, Conflict) as ex:
            self._show(
                req,
                resp,
                session,
                area_id,
                url=url,
                description=description,
                problem=error_text(locale, ex),
                status=400,
            )
            return
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        self._show(req, resp, session, area_id, created=created, status=201)


class _Log(_Base):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        locale = negotiate_locale(req)
        session = self.c.session(req)
        before = parse_count(req.get_param("before"))
        try:
            endpoint = self.webhooks.get(session.user_id, area_id, webhook_id)
            log = self.webhooks.deliveries(session.user_id, area_id, webhook_id, before, _PAGE)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        here = f"/areas/{area_id}/webhooks/{webhook_id}"
        self.c.page(
            req,
            resp,
            "webhook_log.html",
            session,
            area_id,
            title=t(locale, "webhooks.log_title"),
            wide=True,
            flashes=_flashes(locale, req),
            area_id=area_id,
            endpoint=endpoint,
            deliveries=log,
            older=f"{here}?before={log[-1].id}" if len(log) == _PAGE else "",
        )


class _Remove(_Base):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        _locale, session, _form = posted
        try:
            self.webhooks.remove(session.user_id, area_id, webhook_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/webhooks?done=webhook_removed")


class _Redeliver(_Base):
    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        area_id: str,
        webhook_id: str,
        delivery_id: str,
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        _locale, session, _form = posted
        number = parse_count(delivery_id)
        try:
            if number is None:
                raise NotFound("no such delivery")
            self.webhooks.redeliver(session.user_id, area_id, webhook_id, number)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/webhooks/{webhook_id}?done=redelivered")
