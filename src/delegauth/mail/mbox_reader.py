"""Read the development mailbox (``file:`` mail URL) as a person reads mail.

The messages are stored as sent: quoted-printable bodies, where a long link is wrapped
with soft line breaks and every ``=`` becomes ``=3D``. Copying a link from the raw file
gives a wrong link; this prints each message decoded, with its links whole.
"""

from __future__ import annotations

import mailbox
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

__all__ = ["read_messages"]


def read_messages(path: str | Path, last: int | None = None) -> list[str]:
    """The last ``last`` messages (all when None), oldest first, each as readable text:
    its From, To, Date and Subject decoded, then its plain-text body."""
    box = mailbox.mbox(str(path), create=False)
    try:
        raw = [m.as_bytes() for m in box]
    finally:
        box.close()
    if last is not None:
        raw = raw[-last:] if last > 0 else []
    return [_readable(_parse(data)) for data in raw]


def _parse(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)  # what policy.default builds
    return msg


def _readable(msg: EmailMessage) -> str:
    head = [f"{name}: {msg[name]}" for name in ("From", "To", "Date", "Subject") if msg[name]]
    body = msg.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    return "\n".join(head) + "\n\n" + str(text).rstrip() + "\n"
