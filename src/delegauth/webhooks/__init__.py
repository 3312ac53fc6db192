"""Webhooks for other systems: Standard Webhooks signing, delivery over HTTP, dispatch."""

from delegauth.webhooks.dispatcher import WebhookDispatcher
from delegauth.webhooks.http import HttpxSender
from delegauth.webhooks.signing import WebhookKey, new_salt, signed_headers

__all__ = ["HttpxSender", "WebhookDispatcher", "WebhookKey", "new_salt", "signed_headers"]
