"""Falcon guards: a middleware that verifies bearer tokens, and ``requires`` hooks.

    app = falcon.App(middleware=[DelegauthMiddleware(delegauth)])

    class Invoice:
        @requires("invoice", "pay", id_param="invoice_id")
        def on_post(self, req, resp, invoice_id): ...

Refusals are Falcon's own errors (HTTPUnauthorized with a Bearer challenge,
HTTPForbidden, HTTPServiceUnavailable), rendered by the app's error handlers. Works on
``falcon.App`` and ``falcon.asgi.App`` (there, delegauth is asked in a worker thread).
Imported on its own, so ``delegauth.client`` never pulls in Falcon.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import falcon

from delegauth.client._client import Delegauth
from delegauth.client._exceptions import ClientError, Unauthenticated, Unavailable
from delegauth.client._guard import Requirement, challenge, public_detail

__all__ = ["Delegauth", "DelegauthMiddleware", "requires"]  # Delegauth: one import line

T = TypeVar("T")


class DelegauthMiddleware:
    """Verify the bearer token of every routed request (401 otherwise) and keep it in
    ``req.context.token``; resources with ``delegauth_public = True`` are left open."""

    def __init__(self, delegauth: Delegauth) -> None:
        self._delegauth = delegauth

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.delegauth = self._delegauth
        if resource is None or getattr(resource, "delegauth_public", False):
            return
        try:
            req.context.token = self._delegauth.authenticate(req.get_header("Authorization"))
        except ClientError as ex:
            raise _http_error(ex) from ex

    async def process_resource_async(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        await asyncio.to_thread(self.process_resource, req, resp, resource, params)


def requires(
    resource_type: str,
    action: str,
    *,
    id_param: str | None = None,
    delegauth: Delegauth | None = None,
) -> Callable[[T], T]:
    """A hook for a responder (or every responder of a resource class): the caller's
    token must allow ``action`` on ``resource_type`` in its Client Area.

    The resource id is the route parameter ``id_param`` (else ``"*"``). The client is
    ``delegauth``, else the one DelegauthMiddleware put in ``req.context``.
    """

    def hook(req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        client = delegauth or getattr(req.context, "delegauth", None)
        if client is None:
            raise RuntimeError("requires(): add DelegauthMiddleware or pass delegauth=")
        resource_id = str(params[id_param]) if id_param else "*"
        requirement = Requirement(resource_type, action, resource_id)
        try:
            token = getattr(req.context, "token", None)
            if token is None:
                token = req.context.token = client.authenticate(req.get_header("Authorization"))
            client.check(token, requirement)
        except ClientError as ex:
            raise _http_error(ex) from ex

    async def async_hook(
        req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        await asyncio.to_thread(hook, req, resp, resource, params)

    def decorate(target: T) -> T:
        responders = (
            [v for k, v in vars(target).items() if k.startswith("on_")]
            if isinstance(target, type)
            else [target]
        )
        is_async = any(inspect.iscoroutinefunction(r) for r in responders)
        return falcon.before(async_hook if is_async else hook)(target)

    return decorate


def _http_error(ex: ClientError) -> falcon.HTTPError:
    if isinstance(ex, Unauthenticated):
        return falcon.HTTPUnauthorized(
            title="Unauthorized", description=ex.detail, challenges=[challenge(ex)]
        )
    if isinstance(ex, Unavailable):
        return falcon.HTTPServiceUnavailable(description=public_detail(ex), retry_after=1)
    return falcon.HTTPForbidden(description=public_detail(ex))
