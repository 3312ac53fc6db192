"""Mail transports, chosen by URL: SMTP (plain, STARTTLS, implicit TLS), an mbox file, or the log.

    smtp://[user:password@]host[:25]            plain; credentials only to a loopback host
    smtp+starttls://[user:password@]host[:587]  upgraded with STARTTLS before any login
    smtps://[user:password@]host[:465]          TLS from the first byte
    file:var/mail.mbox                          appended to an mbox (development default)
    log:                                        one summary line per message, never the body

Every failure is raised as DeliveryError; ``transient`` says whether retrying can help.
"""

from __future__ import annotations

import ipaddress
import logging
import mailbox
import smtplib
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from delegauth.errors import DelegauthError

if TYPE_CHECKING:
    from delegauth.mail.sender import QueuedMail

__all__ = [
    "DeliveryError",
    "LogTransport",
    "MboxTransport",
    "SmtpTransport",
    "Transport",
    "build_message",
    "transport_from_url",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Headers the transport writes itself; the outbox's extra headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "return-path",
        "sender",
        "subject",
        "to",
    }
)


class DeliveryError(DelegauthError):
    """A message could not be handed over; retry only if ``transient``."""

    code = "delivery_failed"
    title = "Mail delivery failed"

    def __init__(self, detail: str, *, transient: bool) -> None:
        super().__init__(detail)
        self.transient = transient


class Transport(Protocol):
    def send(self, mail: QueuedMail) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_message(mail: QueuedMail, sender: str, now: datetime) -> EmailMessage:
    """Build the RFC 5322 message: text, plus an HTML alternative when there is one."""
    msg = EmailMessage()
    try:
        msg["From"] = sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = format_datetime(now if now.tzinfo else now.replace(tzinfo=UTC))
        # Derived from the outbox row, so a retried message keeps its Message-ID and
        # receivers can drop the duplicate of an at-least-once redelivery.
        msg["Message-ID"] = f"<{mail.created_at:%Y%m%d%H%M%S}.{mail.id}.outbox@{_domain(sender)}>"
        # quoted-printable keeps the body 7-bit clean for any relay, and wraps long links.
        msg.set_content(mail.text, cte="quoted-printable")
        if mail.html:
            msg.add_alternative(mail.html, subtype="html", cte="quoted-printable")
        # After the body: setting it drops (or moves into the parts) every Content-*
        # header, and Content-Language belongs on the whole message.
        for name, value in mail.headers.items():
            if name.lower() in _RESERVED_HEADERS:
                raise DeliveryError(f"header {name!r} may not be overridden", transient=False)
            msg[name] = value
    except (ValueError, TypeError) as ex:
        # e.g. a CR or LF in a header value: the message can never be sent.
        raise DeliveryError(f"malformed message: {ex}", transient=False) from ex
    return msg


def _domain(sender: str) -> str:
    _, addr = parseaddr(sender)
    return addr.rpartition("@")[2] or "localhost"


class SmtpTransport:
    """Send each message over a fresh SMTP session."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        if security not in {"plain", "starttls", "tls"}:
            raise ValueError(f"unknown SMTP security {security!r}")
        if security == "plain" and username and not _is_loopback(host):
            # NOTE: AUTH over an unencrypted connection would hand the password to anyone
            # on the path; only a relay on this machine may be reached that way.
            raise ValueError("SMTP credentials need smtp+starttls:// or smtps:// for a remote host")
        self._host = host
        self._port = port
        self._sender = sender
        self._envelope_from = parseaddr(sender)[1]
        if not self._envelope_from:
            raise ValueError(f"no address in mail sender {sender!r}")
        self._security = security
        self._username = username
        self._password = password or ""
        self._timeout_s = timeout_s
        # NOTE: the default context verifies the certificate and the host name.
        self._tls_context = tls_context or ssl.create_default_context()
        self._clock = clock

    def send(self, mail: QueuedMail) -> None:
        msg = build_message(mail, self._sender, self._clock())
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as ex:
            # Reaching, securing or logging in to the relay failing is never the
            # message's fault (even a 5xx there is configuration): retry it later.
            raise DeliveryError(f"SMTP session failed: {_describe(ex)}", transient=True) from ex
        try:
            self._submit(smtp, msg, mail.to)
        finally:
            _quit(smtp)

    def _submit(self, smtp: smtplib.SMTP, msg: EmailMessage, to: str) -> None:
        try:
            smtp.send_message(msg, from_addr=self._envelope_from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as ex:
            codes = [code for code, _ in ex.recipients.values()]
            transient = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"recipient refused: {_describe(ex)}", transient=transient) from ex
        except smtplib.SMTPResponseException as ex:
            transient = 400 <= ex.smtp_code < 500
            raise DeliveryError(f"SMTP refused: {_describe(ex)}", transient=transient) from ex
        except smtplib.SMTPNotSupportedError as ex:
            # An internationalized address the relay cannot take (no SMTPUTF8).
            raise DeliveryError(f"SMTP refused: {_describe(ex)}", transient=False) from ex
        except (smtplib.SMTPException, OSError) as ex:
            raise DeliveryError(f"SMTP failed: {_describe(ex)}", transient=True) from ex

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self._security == "tls":
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=self._tls_context
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        try:
            if self._security == "starttls":
                smtp.starttls(context=self._tls_context)
            if self._username:
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp


def _quit(smtp: smtplib.SMTP) -> None:
    # Once the relay accepted the message, a failed QUIT must not turn into a resend.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _describe(ex: BaseException) -> str:
    if isinstance(ex, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {_text(reply)}" for code, reply in ex.recipients.values())
    if isinstance(ex, smtplib.SMTPResponseException):
        return f"{ex.smtp_code} {_text(ex.smtp_error)}"
    return f"{type(ex).__name__}: {ex}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MboxTransport:
    """Append each message to an mbox file, for development and tests."""

    def __init__(self, path: str | Path, *, sender: str, clock: Clock = _utcnow) -> None:
        self._path = Path(path)
        self._sender = sender
        self._clock = clock
        self._lock = threading.Lock()  # mailbox's file lock guards other processes only

    @property
    def path(self) -> Path:
        return self._path

    def send(self, mail: QueuedMail) -> None:
        msg = build_message(mail, self._sender, self._clock())
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                box = mailbox.mbox(self._path, create=True)
                box.lock()
                try:
                    box.add(msg)
                    box.flush()
                finally:
                    box.unlock()
                    box.close()
        except (OSError, mailbox.Error) as ex:
            raise DeliveryError(f"cannot write {self._path}: {ex}", transient=True) from ex


class LogTransport:
    """Log one line per message. The body is never logged: it holds one-time links."""

    def send(self, mail: QueuedMail) -> None:
        # %r: a CR/LF in a recipient or subject must not forge extra log lines.
        logger.info(
            "mail id=%s kind=%s to=%r subject=%r (body not logged)",
            mail.id,
            mail.kind,
            mail.to,
            mail.subject,
        )


_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_SECURITY = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}


def transport_from_url(
    url: str,
    *,
    sender: str,
    timeout_s: float = 10.0,
    tls_context: ssl.SSLContext | None = None,
    clock: Clock = _utcnow,
) -> Transport:
    """Build the transport a mail URL names (see the module docstring for the schemes)."""
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme == "log":
        return LogTransport()
    if scheme == "file":
        path = urlsplit(url).path if rest.startswith("//") else rest
        if not path:
            raise ValueError("a file: mail URL needs a path, e.g. file:var/mail.mbox")
        return MboxTransport(unquote(path), sender=sender, clock=clock)
    if scheme in _SECURITY:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"no host in mail URL scheme {scheme!r}")
        return SmtpTransport(
            parts.hostname,
            parts.port or _DEFAULT_PORTS[scheme],
            sender=sender,
            security=_SECURITY[scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout_s=timeout_s,
            tls_context=tls_context,
            clock=clock,
        )
    raise ValueError(f"unsupported mail URL scheme: {scheme!r}")
