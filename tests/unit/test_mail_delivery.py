"""Outbox delivery against a real SMTP server (aiosmtpd), a real mbox file and a real database."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import mailbox
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import peewee
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delegauth.domain.entities import OutgoingMail
from delegauth.errors import Unavailable
from delegauth.mail.sender import OutboxSender, QueuedMail
from delegauth.mail.transport import (
    DeliveryError,
    LogTransport,
    MboxTransport,
    SmtpTransport,
    build_message,
    transport_from_url,
)
from delegauth.storage.db import open_database
from delegauth.storage.outbox import PeeweeOutbox
from delegauth.storage.records import MailRecord, database_proxy
from delegauth.storage.schema import migrate
from delegauth.storage.store import PeeweeStore

SENDER = "delegauth <no-reply@example.test>"
T0 = dt.datetime(2030, 1, 1, 12, 0, 0)
SECRET_LINK = "https://app.example.test/invitations/accept?token=s3cr3t-t0ken"


class FakeClock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# -- database -------------------------------------------------------------------------

_PG_URL = os.environ.get("DELEGAUTH_TEST_PG_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not _PG_URL, reason="DELEGAUTH_TEST_PG_URL is not set"),
            ],
        ),
    ]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[peewee.Database]:
    url = f"sqlite:///{tmp_path}/outbox.sqlite3" if request.param == "sqlite" else _PG_URL
    assert url is not None
    database = open_database(url)
    migrate(database)
    database_proxy.initialize(database)
    with database.connection_context():
        MailRecord.delete().execute()
    yield database
    if hasattr(database, "close_all"):  # the PostgreSQL pool
        database.close_all()
    else:
        database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(db: peewee.Database) -> PeeweeOutbox:
    return PeeweeOutbox(db)


def enqueue(db: peewee.Database, clock: FakeClock, **fields: object) -> None:
    """Queue a mail the way the domain does: through the store, in a transaction."""
    values: dict[str, Any] = {
        "to": "ana@example.test",
        "subject": "Ana invited you to manage Acme",
        "text": f"Hello,\n\nAccept here:\n\n{SECRET_LINK}\n",
        "html": f'<p>Accept <a href="{SECRET_LINK}">here</a></p>',
        "kind": "invitation",
        "headers": {"Content-Language": "en"},
    }
    values.update(fields)
    store = PeeweeStore(db)
    with store.transaction():
        store.enqueue_mail(OutgoingMail(**values), clock())


def row(db: peewee.Database, index: int = 0) -> MailRecord:
    with db.connection_context():
        return list(MailRecord.select().order_by(MailRecord.id))[index]


# -- SMTP server ----------------------------------------------------------------------


class Collector:
    """An aiosmtpd handler that keeps envelopes, or answers DATA with queued replies."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.data_replies:
            return self.data_replies.pop(0)
        with self._lock:
            self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        """The received messages, with the wire's CRLF line ends turned back into LF."""
        return [
            message_from_bytes(
                e.original_content.replace(b"\r\n", b"\n"),  # type: ignore[union-attr]
                policy=default_policy,
            )
            for e in self.envelopes
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def smtp_sender(outbox: PeeweeOutbox, port: int, clock: FakeClock, **options: Any) -> OutboxSender:
    transport = transport_from_url(f"smtp://127.0.0.1:{port}", sender=SENDER, timeout_s=5)
    return OutboxSender(outbox, transport, clock=clock, **options)


# -- delivery over SMTP ---------------------------------------------------------------


def test_queued_mail_is_delivered_as_multipart_alternative(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    enqueue(
        db, clock, subject="Ana te ha invitado a gestionar Acmé", text=f"Hola:\n\n{SECRET_LINK}\n"
    )

    assert outbox.depth() == 1
    assert smtp_sender(outbox, port, clock).deliver_due() == 1

    (envelope,) = handler.envelopes
    assert envelope.mail_from == "no-reply@example.test"
    assert envelope.rcpt_tos == ["ana@example.test"]
    (msg,) = handler.messages()
    assert msg["To"] == "ana@example.test"
    assert msg["From"] == SENDER
    assert msg["Subject"] == "Ana te ha invitado a gestionar Acmé"
    assert msg["Content-Language"] == "en"
    assert msg["Date"] is not None
    assert msg["Message-ID"].endswith("@example.test>")
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content() == f"Hola:\n\n{SECRET_LINK}\n"
    assert html.get_content_type() == "text/html"
    assert f'href="{SECRET_LINK}"' in html.get_content()
    # Every byte on the wire is 7-bit, whatever relay sits in between.
    assert all(b < 128 for b in envelope.original_content)  # type: ignore[union-attr]

    sent = row(db)
    assert (sent.status, sent.attempts, sent.sent_at, sent.locked_until) == ("sent", 1, T0, None)
    assert outbox.depth() == 0
    assert smtp_sender(outbox, port, clock).deliver_due() == 0
    assert len(handler.envelopes) == 1


def test_text_only_mail_is_a_single_part(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    enqueue(db, clock, html=None, headers={})

    assert smtp_sender(outbox, port, clock).deliver_due() == 1

    (msg,) = handler.messages()
    assert msg.get_content_type() == "text/plain"
    assert SECRET_LINK in msg.get_content()


def test_451_is_retried_after_backoff_then_delivered(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    handler.data_replies.append("451 4.3.0 Try again later")
    enqueue(db, clock)
    sender = smtp_sender(outbox, port, clock, base_delay_s=5)

    assert sender.deliver_due() == 0
    waiting = row(db)
    assert waiting.status == "pending"
    assert waiting.attempts == 1
    assert waiting.next_attempt_at == T0 + dt.timedelta(seconds=5)
    assert waiting.locked_until is None
    assert "451" in str(waiting.last_error)
    assert outbox.depth() == 1

    clock.advance(4)
    assert sender.deliver_due() == 0  # not due yet
    assert row(db).attempts == 1

    clock.advance(1)
    assert sender.deliver_due() == 1
    done = row(db)
    assert (done.status, done.attempts, done.sent_at) == ("sent", 2, clock.now)
    assert len(handler.envelopes) == 1


def test_550_fails_at_once(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    handler.data_replies.append("550 5.7.1 Rejected")
    enqueue(db, clock)

    assert smtp_sender(outbox, port, clock).deliver_due() == 0

    failed = row(db)
    assert (failed.status, failed.attempts, failed.locked_until) == ("failed", 1, None)
    assert "550" in str(failed.last_error)
    assert outbox.depth() == 0
    clock.advance(10_000)
    assert smtp_sender(outbox, port, clock).deliver_due() == 0
    assert handler.envelopes == []


def test_refused_recipient_is_classified_by_its_code(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    handler.rcpt_replies += ["450 4.2.1 Mailbox busy", "550 5.1.1 No such user"]
    enqueue(db, clock)
    sender = smtp_sender(outbox, port, clock)

    sender.deliver_due()
    assert (row(db).status, row(db).attempts) == ("pending", 1)
    clock.advance(5)
    sender.deliver_due()
    failed = row(db)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert "550 5.1.1 No such user" in str(failed.last_error)


def test_backoff_doubles_up_to_the_cap_and_max_attempts_fail(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    handler.data_replies += ["451 busy"] * 10
    enqueue(db, clock)
    sender = smtp_sender(outbox, port, clock, max_attempts=4, base_delay_s=5, max_delay_s=12)

    delays = []
    for _ in range(3):
        assert sender.deliver_due() == 0
        waiting = row(db)
        assert waiting.status == "pending"
        delays.append((waiting.next_attempt_at - clock.now).total_seconds())
        clock.now = waiting.next_attempt_at
    assert delays == [5, 10, 12]

    assert sender.deliver_due() == 0
    failed = row(db)
    assert (failed.status, failed.attempts) == ("failed", 4)
    assert "451" in str(failed.last_error)
    assert handler.envelopes == []


def test_unreachable_server_is_transient(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock
) -> None:
    enqueue(db, clock)

    assert smtp_sender(outbox, _free_port(), clock).deliver_due() == 0

    waiting = row(db)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "SMTP session failed" in str(waiting.last_error)


def test_two_senders_racing_deliver_each_message_once(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, smtp_server: tuple[Collector, int]
) -> None:
    handler, port = smtp_server
    for i in range(30):
        enqueue(db, clock, subject=f"message {i}")
    senders = [smtp_sender(PeeweeOutbox(db), port, clock) for _ in range(2)]
    start = threading.Barrier(len(senders))
    counts: list[int] = []

    def work(sender: OutboxSender) -> None:
        start.wait()
        counts.append(sender.deliver_due(limit=100))

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    subjects = sorted(str(m["Subject"]) for m in handler.messages())
    assert subjects == sorted(f"message {i}" for i in range(30))
    assert sum(counts) == 30
    with db.connection_context():
        assert {(r.status, r.attempts) for r in MailRecord.select()} == {("sent", 1)}


def test_a_claim_is_exclusive_until_its_lease_runs_out(
    db: peewee.Database, clock: FakeClock
) -> None:
    enqueue(db, clock)
    enqueue(db, clock)
    first, second = PeeweeOutbox(db), PeeweeOutbox(db)

    claimed = first.claim_due(clock(), 10, lease_s=60)
    assert [m.attempts for m in claimed] == [1, 1]
    assert second.claim_due(clock(), 10, lease_s=60) == []
    assert second.claim_due(clock() + dt.timedelta(seconds=60), 10, lease_s=60) == []

    # The worker died: once the lease is over another one takes the messages over.
    reclaimed = second.claim_due(clock() + dt.timedelta(seconds=61), 1, lease_s=60)
    assert [(m.id, m.attempts) for m in reclaimed] == [(claimed[0].id, 2)]
    assert first.depth() == 2


def test_claimed_mail_carries_the_row(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock
) -> None:
    enqueue(db, clock, headers={"Content-Language": "es"})

    (mail,) = outbox.claim_due(clock(), 5, lease_s=30)

    assert mail.to == "ana@example.test"
    assert mail.kind == "invitation"
    assert mail.headers == {"Content-Language": "es"}
    assert mail.created_at == T0
    assert SECRET_LINK not in repr(mail)


def test_database_errors_are_wrapped(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path}/empty.sqlite3")  # never migrated
    database_proxy.initialize(database)

    with pytest.raises(Unavailable):
        PeeweeOutbox(database).depth()


# -- TLS and authentication -----------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())
        self.seen: list[tuple[bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        assert isinstance(auth_data, LoginPassword)
        self.seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == self.expected)


def _queued(**fields: object) -> QueuedMail:
    values: dict[str, Any] = {
        "id": 7,
        "to": "ana@example.test",
        "subject": "Hello",
        "text": f"Open {SECRET_LINK}\n",
        "html": None,
        "kind": "verification",
        "headers": {},
        "attempts": 1,
        "created_at": T0,
    }
    values.update(fields)
    return QueuedMail(**values)


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_tls_with_url_encoded_credentials(tmp_path: Path, scheme: str) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    handler = Collector()
    auth = _Authenticator("mailer@example.test", "p@ss:w/rd %")
    options: dict[str, Any] = {"authenticator": auth}
    if scheme == "smtps":
        # aiosmtpd only counts STARTTLS as TLS; this session is TLS from the first byte.
        options.update(ssl_context=server_ctx, auth_require_tls=False)
    else:
        options.update(tls_context=server_ctx, require_starttls=True, auth_require_tls=True)
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **options)
    controller.start()
    try:
        transport = transport_from_url(
            f"{scheme}://mailer%40example.test:p%40ss%3Aw%2Frd%20%25@127.0.0.1:{controller.port}",
            sender=SENDER,
            tls_context=client_ctx,
        )
        transport.send(_queued())
    finally:
        controller.stop()

    assert auth.seen == [(b"mailer@example.test", b"p@ss:w/rd %")]
    (msg,) = handler.messages()
    assert msg["Subject"] == "Hello"


def test_untrusted_certificate_is_a_transient_error(tmp_path: Path) -> None:
    server_ctx, _ = _self_signed(tmp_path)
    controller = Controller(
        Collector(), hostname="127.0.0.1", port=_free_port(), ssl_context=server_ctx
    )
    controller.start()
    try:
        transport = transport_from_url(f"smtps://127.0.0.1:{controller.port}", sender=SENDER)
        with pytest.raises(DeliveryError) as caught:
            transport.send(_queued())
    finally:
        controller.stop()
    assert caught.value.transient


def test_transport_urls() -> None:
    assert isinstance(transport_from_url("log:", sender=SENDER), LogTransport)
    assert isinstance(transport_from_url("smtp://localhost", sender=SENDER), SmtpTransport)
    relative = transport_from_url("file:var/mail.mbox", sender=SENDER)
    assert isinstance(relative, MboxTransport)
    assert relative.path == Path("var/mail.mbox")
    absolute = transport_from_url("file:///srv/mail/out.mbox", sender=SENDER)
    assert isinstance(absolute, MboxTransport)
    assert absolute.path == Path("/srv/mail/out.mbox")
    # Never send a password in the clear to another host.
    with pytest.raises(ValueError, match="starttls"):
        transport_from_url("smtp://u:secret@mail.example.test", sender=SENDER)
    with pytest.raises(ValueError) as caught:
        transport_from_url("smtpx://u:secret@mail.example.test", sender=SENDER)
    assert "secret" not in str(caught.value)


def test_headers_cannot_be_forged() -> None:
    with pytest.raises(DeliveryError) as reserved:
        build_message(_queued(headers={"Bcc": "eve@example.test"}), SENDER, T0)
    assert not reserved.value.transient
    with pytest.raises(DeliveryError) as injected:
        build_message(_queued(subject="Hi\r\nBcc: eve@example.test"), SENDER, T0)
    assert not injected.value.transient


def test_message_id_is_stable_across_retries() -> None:
    first = build_message(_queued(attempts=1), SENDER, T0)
    again = build_message(_queued(attempts=2), SENDER, T0 + dt.timedelta(minutes=5))
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Date"] != again["Date"]


# -- file: and log: -------------------------------------------------------------------


def test_file_transport_writes_a_readable_mbox(
    db: peewee.Database,
    outbox: PeeweeOutbox,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    enqueue(db, clock, to="ana@example.test", subject="First")
    enqueue(db, clock, to="bob@example.test", subject="Second", html=None)
    transport = transport_from_url("file:var/mail.mbox", sender=SENDER)

    assert OutboxSender(outbox, transport, clock=clock).deliver_due() == 2

    box = mailbox.mbox(tmp_path / "var" / "mail.mbox")
    try:
        first, second = (
            message_from_bytes(box.get_bytes(key), policy=default_policy) for key in box.iterkeys()
        )
    finally:
        box.close()
    assert (first["To"], first["Subject"]) == ("ana@example.test", "First")
    plain, html = first.get_body(("plain",)), first.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == f"Hello,\n\nAccept here:\n\n{SECRET_LINK}\n"
    assert SECRET_LINK in html.get_content()
    assert (second["To"], second["Subject"]) == ("bob@example.test", "Second")
    assert second.get_content_type() == "text/plain"


def test_log_transport_never_logs_the_body(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(db, clock, subject="Confirm your email address")
    caplog.set_level(logging.DEBUG)

    sent = OutboxSender(
        outbox, transport_from_url("log:", sender=SENDER), clock=clock
    ).deliver_due()

    assert sent == 1
    assert "Confirm your email address" in caplog.text
    assert "ana@example.test" in caplog.text
    assert "s3cr3t-t0ken" not in caplog.text
    assert row(db).status == "sent"


def test_failures_are_logged_without_the_body(
    db: peewee.Database, outbox: PeeweeOutbox, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def send(self, mail: QueuedMail) -> None:
            raise RuntimeError("bug")

    enqueue(db, clock)
    caplog.set_level(logging.DEBUG)

    assert OutboxSender(outbox, Broken(), clock=clock).deliver_due() == 0

    assert row(db).status == "pending"  # a transport bug is retried, not lost
    assert "s3cr3t-t0ken" not in caplog.text


# -- the background loop --------------------------------------------------------------


def test_background_loop_survives_errors(db: peewee.Database, clock: FakeClock) -> None:
    delivered = threading.Event()

    class FlakyOutbox(PeeweeOutbox):
        calls = 0

        def claim_due(self, now: dt.datetime, limit: int, lease_s: float) -> list[QueuedMail]:
            FlakyOutbox.calls += 1
            if FlakyOutbox.calls == 1:
                raise Unavailable("the database is unavailable")
            return super().claim_due(now, limit, lease_s)

    class Signalling:
        def send(self, mail: QueuedMail) -> None:
            delivered.set()

    enqueue(db, clock)
    sender = OutboxSender(FlakyOutbox(db), Signalling(), clock=clock)

    stop = sender.start(interval_s=0.01)
    try:
        assert delivered.wait(timeout=10)
    finally:
        stop()
    assert FlakyOutbox.calls >= 2
    assert row(db).status == "sent"
