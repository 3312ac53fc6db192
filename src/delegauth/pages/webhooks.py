"""Webhooks pages (an area's owner): register, list and remove the area's webhooks, read
each one's delivery log and ask for a redelivery, choose which event types each receives,
and rotate its signing secret. A secret shows once, on the page that answers the
registration or the rotation, never in a URL."""

from __future__ import annotations

from dataclasses import dataclass, replace

import falcon

from delegauth.api.catalogue import negotiate_locale
from delegauth.api.params import parse_count
from delegauth.domain.events import PUBLISHED_TYPES
from delegauth.domain.webhooks import Endpoint, Webhooks
from delegauth.errors import Conflict, DelegauthError, InvalidInput, NotFound
from delegauth.pages.console import Console
from delegauth.pages.forms import field_value
from delegauth.pages.rendering import Flash
from delegauth.pages.text import error_text, t
from delegauth.pages.zones import zone_of
from delegauth.storage.oauth_store import SessionRow

__all__ = ["webhook_routes"]

_DONE = ("webhook_removed", "redelivered", "events_saved")
_PAGE = 25


@dataclass(frozen=True)
class _Events:
    """The "which events" control: every type, or the ticked ones; its error, if any."""

    every: bool
    ticked: frozenset[str]
    error: str = ""
    types: tuple[str, ...] = PUBLISHED_TYPES

    @classmethod
    def of(cls, endpoint: Endpoint | None) -> _Events:
        if endpoint is None or endpoint.event_types is None:
            return cls(True, frozenset())
        return cls(False, frozenset(endpoint.event_types))

    @classmethod
    def posted(cls, form: dict[str, list[str]]) -> _Events:
        return cls(field_value(form, "events") != "some", frozenset(form.get("event_type", [])))

    def asked(self) -> list[str] | None:
        """What the domain is asked for: None for every type, else the ticked list (an
        empty one is refused there, with the field named)."""
        return None if self.every else sorted(self.ticked)


def webhook_routes(console: Console, webhooks: Webhooks) -> list[tuple[str, object]]:
    return [
        ("/areas/{area_id}/webhooks", _List(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}", _Log(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}/remove", _Remove(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}/events", _SetEvents(console, webhooks)),
        ("/areas/{area_id}/webhooks/{webhook_id}/rotate", _Rotate(console, webhooks)),
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
        events: _Events | None = None,
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
            events=events or _Events.of(None),
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
        events = _Events.posted(form)
        try:
            created = self.webhooks.add(session.user_id, area_id, url, description, events.asked())
        except (InvalidInput, Conflict) as ex:
            on_events = ex.field == "event_types"
            self._show(
                req,
                resp,
                session,
                area_id,
                url=url,
                description=description,
                problem="" if on_events else error_text(locale, ex),
                events=replace(events, error=error_text(locale, ex)) if on_events else events,
                status=400,
            )
            return
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id)
            return
        self._show(req, resp, session, area_id, created=created, status=201)


class _Log(_Base):
    """One webhook: its delivery log, the events it receives, its secret's rotation."""

    def show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        session: SessionRow,
        area_id: str,
        webhook_id: str,
        *,
        events: _Events | None = None,
        rotated: str = "",
        status: int = 200,
    ) -> None:
        locale = negotiate_locale(req)
        before = parse_count(req.get_param("before"))
        try:
            endpoint = self.webhooks.get(session.user_id, area_id, webhook_id)
            log = self.webhooks.deliveries(session.user_id, area_id, webhook_id, before, _PAGE)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        here = f"/areas/{area_id}/webhooks/{webhook_id}"
        until = endpoint.previous_until_at(self.webhooks.now())
        self.c.page(
            req,
            resp,
            "webhook_log.html",
            session,
            area_id,
            title=t(locale, "webhooks.log_title"),
            wide=True,
            status=status,
            flashes=_flashes(locale, req),
            area_id=area_id,
            endpoint=endpoint,
            deliveries=log,
            older=f"{here}?before={log[-1].id}" if len(log) == _PAGE else "",
            events=events or _Events.of(endpoint),
            rotated=rotated,
            previous_until=zone_of(req).shown(until) if until else "",
        )

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        self.show(req, resp, self.c.session(req), area_id, webhook_id)


class _SetEvents(_Log):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        locale, session, form = posted
        events = _Events.posted(form)
        try:
            self.webhooks.set_event_types(session.user_id, area_id, webhook_id, events.asked())
        except InvalidInput as ex:
            problem = replace(events, error=error_text(locale, ex))
            self.show(req, resp, session, area_id, webhook_id, events=problem, status=400)
            return
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        raise falcon.HTTPSeeOther(f"/areas/{area_id}/webhooks/{webhook_id}?done=events_saved")


class _Rotate(_Log):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, area_id: str, webhook_id: str
    ) -> None:
        posted = self.c.posted(req, resp)
        if posted is None:
            return
        _locale, session, _form = posted
        try:
            _endpoint, secret = self.webhooks.rotate_secret(session.user_id, area_id, webhook_id)
        except DelegauthError as ex:
            self.c.fail(req, resp, ex, session, area_id, here=f"/areas/{area_id}/webhooks")
            return
        # The new secret shows on this answer only: never in a URL to redirect to.
        self.show(req, resp, session, area_id, webhook_id, rotated=secret)


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
