"""The one exception tree of delegauth.

    DelegauthError
    ├── InvalidInput            a value is malformed or not allowed
    │   ├── UnknownPermission   a permission name is not in the catalogue
    │   └── InvalidEmail        not an email address we accept (syntax, length, domain)
    │       ├── EmailCompatibilityCharacters  fullwidth letters, ligatures, the Kelvin sign
    │       ├── EmailDisallowedCharacters     spaces, controls, symbols, unassigned
    │       └── EmailConfusableScripts        look-alike letters from mixed scripts
    ├── InvalidToken            an emailed or bearer token is unknown, expired or used
    ├── Unauthenticated         no valid credentials were presented
    ├── Forbidden               the caller may not do this
    │   ├── WrongAccount        the invitation is addressed to someone else
    │   └── Escalation          the caller tried to give more than they hold
    ├── NotFound                no such object, or not in this area
    ├── Conflict                the object's state does not allow it
    │   ├── AlreadyMember       the invitee already belongs to the area
    │   ├── AlreadyRegistered   the email already has an account
    │   ├── NotPending          the invitation was already answered or expired
    │   └── VersionAhead        a consistency token names a change the log does not hold
    ├── RateLimited             too many of these lately: try again later
    ├── Unavailable             storage or policy cannot be reached: fail closed
    ├── DeliveryError           an email could not be handed to SMTP (mail.transport)
    └── WebhookDeliveryError    a webhook was not accepted by its endpoint (webhooks.http)

Each error carries a stable ``code`` (its class's, or a finer one given where it is
raised, e.g. "invitation_expired"); the pages translate codes, never ``detail``.
The domain raises these and never picks HTTP status codes; the API maps them to
problem+json in one table (delegauth.api.problems).
"""

from __future__ import annotations

__all__ = [
    "AlreadyMember",
    "AlreadyRegistered",
    "Conflict",
    "DelegauthError",
    "EmailCompatibilityCharacters",
    "EmailConfusableScripts",
    "EmailDisallowedCharacters",
    "Escalation",
    "Forbidden",
    "InvalidEmail",
    "InvalidInput",
    "InvalidToken",
    "NotFound",
    "NotPending",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "UnknownPermission",
    "VersionAhead",
    "WebhookDeliveryError",
    "WrongAccount",
]


class DelegauthError(Exception):
    """Base of every error delegauth raises on purpose."""

    code = "error"
    title = "Error"

    def __init__(
        self, detail: str = "", *, field: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        if code is not None:  # a finer code than the class's, for one case of it
            self.code = code


class InvalidInput(DelegauthError):
    code = "invalid_input"
    title = "Invalid input"


class UnknownPermission(InvalidInput):
    code = "unknown_permission"
    title = "Unknown permission"


class InvalidEmail(InvalidInput):
    """The subclasses say why an address is refused rather than mapped (domain/emails.py)."""

    code = "invalid_email"
    title = "Invalid email address"


class EmailCompatibilityCharacters(InvalidEmail):
    code = "email_compatibility_characters"
    title = "The email address contains compatibility characters"


class EmailDisallowedCharacters(InvalidEmail):
    code = "email_disallowed_characters"
    title = "The email address contains a character that is not allowed"


class EmailConfusableScripts(InvalidEmail):
    code = "email_confusable_scripts"
    title = "The email address mixes look-alike letters from different scripts"


class InvalidToken(DelegauthError):
    code = "invalid_token"
    title = "Invalid or expired token"


class Unauthenticated(DelegauthError):
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(DelegauthError):
    code = "forbidden"
    title = "Forbidden"


class WrongAccount(Forbidden):
    code = "wrong_account"
    title = "This invitation is addressed to another email"


class Escalation(Forbidden):
    code = "escalation"
    title = "You cannot grant more than you hold"


class NotFound(DelegauthError):
    code = "not_found"
    title = "Not found"


class Conflict(DelegauthError):
    code = "conflict"
    title = "Conflict"


class AlreadyMember(Conflict):
    code = "already_member"
    title = "Already a member of this area"


class AlreadyRegistered(Conflict):
    code = "already_registered"
    title = "An account with this email already exists"


class NotPending(Conflict):
    code = "not_pending"
    title = "The invitation is no longer pending"


class VersionAhead(Conflict):
    code = "policy_version_ahead"
    title = "policy_version is ahead of the change log"


class RateLimited(DelegauthError):
    code = "rate_limited"
    title = "Too many requests"


class Unavailable(DelegauthError):
    code = "unavailable"
    title = "Service unavailable"


class WebhookDeliveryError(DelegauthError):
    """An endpoint did not take a webhook: ``status`` is its answer's code, if it answered;
    ``transient`` False means trying again cannot help (the URL is refused)."""

    code = "webhook_delivery_failed"
    title = "Webhook not delivered"

    def __init__(self, detail: str, *, status: int | None = None, transient: bool = True) -> None:
        super().__init__(detail)
        self.status = status
        self.transient = transient
